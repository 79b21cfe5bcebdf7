//! Real swarms in one process on 127.0.0.1, port 0. Every wait has a deadline; no fixed sleeps.

use std::{collections::HashSet, future::Future, time::Duration};

use kith_net::{Multiaddr, NetConfig, NetError, NetEvent, NetHandle, PeerId, Protocol, spawn};
use libp2p_identity::Keypair;
use tokio::sync::{mpsc, oneshot};

const DEADLINE: Duration = Duration::from_secs(20);

/// A node whose inbound requests are answered with `re:` + the request, and whose events
/// (requests included, minus their reply channel) are forwarded for the test to inspect.
struct Node {
    net: NetHandle,
    events: mpsc::Receiver<NetEvent>,
    peer: PeerId,
    addr: Multiaddr,
    key: Keypair,
}

fn loopback() -> Multiaddr {
    "/ip4/127.0.0.1/tcp/0".parse().unwrap()
}

async fn start(key: Keypair, tweak: impl FnOnce(&mut NetConfig)) -> Node {
    let mut config = NetConfig::new(key.clone());
    config.listen = vec![loopback()];
    tweak(&mut config);
    let listen = config.listen.clone();
    let (net, raw) = spawn(config).unwrap();
    let mut events = echo(raw);
    let addr = wait_for(&mut events, |e| match e {
        NetEvent::Listening { addr } => Some(addr),
        _ => None,
    })
    .await;
    if listen.first() != Some(&loopback()) {
        assert_eq!(Some(&addr), listen.first());
    }
    Node {
        peer: key.public().to_peer_id(),
        net,
        events,
        addr,
        key,
    }
}

async fn node() -> Node {
    start(Keypair::generate_ed25519(), |_| {}).await
}

fn echo(mut raw: mpsc::Receiver<NetEvent>) -> mpsc::Receiver<NetEvent> {
    let (tx, rx) = mpsc::channel(1024);
    tokio::spawn(async move {
        while let Some(event) = raw.recv().await {
            let event = match event {
                NetEvent::InboundRequest {
                    peer,
                    protocol,
                    bytes,
                    respond,
                } => {
                    let mut answer = b"re:".to_vec();
                    answer.extend_from_slice(&bytes);
                    let _ = respond.send(answer);
                    let (dummy, _) = oneshot::channel();
                    NetEvent::InboundRequest {
                        peer,
                        protocol,
                        bytes,
                        respond: dummy,
                    }
                }
                other => other,
            };
            if tx.send(event).await.is_err() {
                break;
            }
        }
    });
    rx
}

async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Consumes events until `f` matches one.
async fn wait_for<T>(
    events: &mut mpsc::Receiver<NetEvent>,
    mut f: impl FnMut(NetEvent) -> Option<T>,
) -> T {
    within("an event", async {
        loop {
            let event = events.recv().await.expect("event stream ended");
            if let Some(t) = f(event) {
                return t;
            }
        }
    })
    .await
}

async fn connected(events: &mut mpsc::Receiver<NetEvent>, who: PeerId) -> bool {
    wait_for(events, |e| match e {
        NetEvent::Connected {
            peer, probation, ..
        } if peer == who => Some(probation),
        _ => None,
    })
    .await
}

async fn disconnected(events: &mut mpsc::Receiver<NetEvent>, who: PeerId) {
    wait_for(events, |e| match e {
        NetEvent::Disconnected { peer } if peer == who => Some(()),
        _ => None,
    })
    .await
}

async fn refused(events: &mut mpsc::Receiver<NetEvent>, who: PeerId) {
    wait_for(events, |e| match e {
        NetEvent::Refused { peer } if peer == who => Some(()),
        _ => None,
    })
    .await
}

/// Everything already in the stream, without waiting.
fn drain(events: &mut mpsc::Receiver<NetEvent>) -> Vec<NetEvent> {
    let mut out = Vec::new();
    while let Ok(e) = events.try_recv() {
        out.push(e);
    }
    out
}

fn requests_from(events: &[NetEvent], who: PeerId) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, NetEvent::InboundRequest { peer, .. } if *peer == who))
        .count()
}

async fn allow(node: &Node, peers: &[PeerId]) {
    node.net
        .set_allowed(peers.iter().copied().collect::<HashSet<_>>())
        .await
        .unwrap();
}

/// Lets `joiner` dial `inviter` as a joiner does: inviter allowed and its address known.
async fn knows(joiner: &Node, inviter: &Node) {
    allow(joiner, &[inviter.peer]).await;
    joiner
        .net
        .add_address(inviter.peer, inviter.addr.clone())
        .await
        .unwrap();
}

/// Makes `a` and `b` members of each other, connects them, and waits for both to see it.
async fn pair(a: &mut Node, b: &mut Node) {
    allow(a, &[b.peer]).await;
    allow(b, &[a.peer]).await;
    a.net.add_address(b.peer, b.addr.clone()).await.unwrap();
    within("dial", a.net.dial(b.peer)).await.unwrap();
    assert!(!connected(&mut a.events, b.peer).await);
    assert!(!connected(&mut b.events, a.peer).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_exchange_requests_both_ways_on_both_protocols() {
    let mut a = start(Keypair::generate_ed25519(), |c| {
        // a may send more than b accepts, to test b's limit.
        c.max_message = 3 * 1024 * 1024;
    })
    .await;
    let mut b = node().await;
    pair(&mut a, &mut b).await;

    for protocol in [Protocol::Sync, Protocol::Join] {
        let got = within(
            "request",
            a.net.request(b.peer, protocol, b"from a".to_vec()),
        )
        .await;
        assert_eq!(got.unwrap(), b"re:from a");
        let got = within(
            "request",
            b.net.request(a.peer, protocol, b"from b".to_vec()),
        )
        .await;
        assert_eq!(got.unwrap(), b"re:from b");
    }
    let seen = drain(&mut b.events);
    assert_eq!(requests_from(&seen, a.peer), 2);

    // Over our own limit: refused locally, nothing sent.
    let huge = vec![0u8; 2 * 1024 * 1024 + 1];
    match b.net.request(a.peer, Protocol::Sync, huge.clone()).await {
        Err(NetError::TooLarge { .. }) => {}
        other => panic!("expected TooLarge, got {other:?}"),
    }
    // Over the receiver's limit: b refuses to read it; a's request fails.
    let err = within("request", a.net.request(b.peer, Protocol::Sync, huge))
        .await
        .unwrap_err();
    assert!(!matches!(err, NetError::Stopped), "{err:?}");
    // A response over the limit (the echo adds 3 bytes to a request at the limit) is not sent.
    let at_limit = vec![1u8; 2 * 1024 * 1024];
    let err = within("request", a.net.request(b.peer, Protocol::Join, at_limit))
        .await
        .unwrap_err();
    assert!(!matches!(err, NetError::Stopped), "{err:?}");

    // Both actors are alive and the members still talk.
    for protocol in [Protocol::Sync, Protocol::Join] {
        let got = within(
            "request",
            a.net.request(b.peer, protocol, b"again".to_vec()),
        )
        .await;
        assert_eq!(got.unwrap(), b"re:again");
        let got = within(
            "request",
            b.net.request(a.peer, protocol, b"again".to_vec()),
        )
        .await;
        assert_eq!(got.unwrap(), b"re:again");
    }
    assert!(a.net.connected_peers().await.unwrap().contains(&b.peer));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outsider_is_refused_and_reaches_nothing() {
    let mut a = node().await;
    let member = Keypair::generate_ed25519().public().to_peer_id();
    allow(&a, &[member]).await;

    // The outsider allows a on its side, so its own gate lets it dial.
    let mut outsider = node().await;
    allow(&outsider, &[a.peer]).await;
    outsider
        .net
        .add_address(a.peer, a.addr.clone())
        .await
        .unwrap();
    let result = within(
        "request",
        outsider
            .net
            .request(a.peer, Protocol::Sync, b"let me in".to_vec()),
    )
    .await;
    assert!(result.is_err(), "outsider got an answer: {result:?}");
    refused(&mut a.events, outsider.peer).await;

    // The join protocol is closed too (the window is closed).
    let result = within(
        "request",
        outsider
            .net
            .request(a.peer, Protocol::Join, b"join".to_vec()),
    )
    .await;
    assert!(result.is_err(), "outsider got an answer: {result:?}");
    refused(&mut a.events, outsider.peer).await;

    let seen = drain(&mut a.events);
    assert_eq!(requests_from(&seen, outsider.peer), 0);
    assert!(
        !seen
            .iter()
            .any(|e| matches!(e, NetEvent::Connected { peer, .. } if *peer == outsider.peer))
    );
    assert!(
        !a.net
            .connected_peers()
            .await
            .unwrap()
            .contains(&outsider.peer)
    );
    // Nothing reached the outsider either.
    let seen = drain(&mut outsider.events);
    assert_eq!(requests_from(&seen, a.peer), 0);

    // And a does not dial peers it does not allow.
    a.net
        .add_address(outsider.peer, outsider.addr.clone())
        .await
        .unwrap();
    assert!(matches!(
        a.net.dial(outsider.peer).await,
        Err(NetError::NotAllowed)
    ));
    assert!(matches!(
        a.net
            .request(outsider.peer, Protocol::Sync, b"x".to_vec())
            .await,
        Err(NetError::NotAllowed)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_window_lets_a_joiner_use_join_only_until_admitted() {
    let mut a = node().await;
    let joiner = node().await;
    // The joiner adds the inviter to its allowed set first, then dials.
    knows(&joiner, &a).await;

    // Window closed: refused.
    let result = within(
        "request",
        joiner
            .net
            .request(a.peer, Protocol::Join, b"hello".to_vec()),
    )
    .await;
    assert!(result.is_err(), "{result:?}");
    refused(&mut a.events, joiner.peer).await;

    // Window open: join works, on probation.
    a.net.set_join_window(true).await.unwrap();
    let got = within(
        "request",
        joiner
            .net
            .request(a.peer, Protocol::Join, b"hello".to_vec()),
    )
    .await;
    assert_eq!(got.unwrap(), b"re:hello");
    assert!(
        connected(&mut a.events, joiner.peer).await,
        "not on probation"
    );
    let request = wait_for(&mut a.events, |e| match e {
        NetEvent::InboundRequest {
            peer,
            protocol,
            bytes,
            ..
        } if peer == joiner.peer => Some((protocol, bytes)),
        _ => None,
    })
    .await;
    assert_eq!(request, (Protocol::Join, b"hello".to_vec()));

    // Sync on probation: refused, never delivered, and the joiner is disconnected.
    let result = within(
        "request",
        joiner
            .net
            .request(a.peer, Protocol::Sync, b"sync?".to_vec()),
    )
    .await;
    assert!(result.is_err(), "{result:?}");
    refused(&mut a.events, joiner.peer).await;
    disconnected(&mut a.events, joiner.peer).await;
    let seen = drain(&mut a.events);
    assert_eq!(requests_from(&seen, joiner.peer), 0);

    // It may join again while the window is open; once admitted, it syncs.
    let got = within(
        "request",
        joiner
            .net
            .request(a.peer, Protocol::Join, b"again".to_vec()),
    )
    .await;
    assert_eq!(got.unwrap(), b"re:again");
    a.net.admit(joiner.peer).await.unwrap();
    a.net.set_join_window(false).await.unwrap();
    let got = within(
        "request",
        joiner.net.request(a.peer, Protocol::Sync, b"sync".to_vec()),
    )
    .await;
    assert_eq!(got.unwrap(), b"re:sync");
    // a can now reach the joiner too.
    let got = within(
        "request",
        a.net
            .request(joiner.peer, Protocol::Sync, b"welcome".to_vec()),
    )
    .await;
    assert_eq!(got.unwrap(), b"re:welcome");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probation_deadline_closes_an_idle_unknown_peer() {
    let mut a = start(Keypair::generate_ed25519(), |c| {
        c.probation_timeout = Duration::from_secs(1);
        c.idle_timeout = Duration::from_secs(600);
    })
    .await;
    a.net.set_join_window(true).await.unwrap();
    let mut joiner = start(Keypair::generate_ed25519(), |c| {
        c.idle_timeout = Duration::from_secs(600);
    })
    .await;
    knows(&joiner, &a).await;
    within("dial", joiner.net.dial(a.peer)).await.unwrap();
    assert!(connected(&mut a.events, joiner.peer).await);
    let started = tokio::time::Instant::now();
    disconnected(&mut a.events, joiner.peer).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    disconnected(&mut joiner.events, a.peer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probation_is_limited_in_number() {
    let mut a = start(Keypair::generate_ed25519(), |c| c.max_probation = 1).await;
    a.net.set_join_window(true).await.unwrap();
    // Joiners are started one after the other: each dials as soon as it knows a's address.
    let mut joiners = Vec::new();
    for (i, expect_ok) in [(0u8, true), (1, false)] {
        let j = node().await;
        allow(&j, &[a.peer]).await;
        j.net.add_address(a.peer, a.addr.clone()).await.unwrap();
        let got = within("request", j.net.request(a.peer, Protocol::Join, vec![i])).await;
        if expect_ok {
            assert_eq!(got.unwrap(), [b'r', b'e', b':', i]);
        } else {
            assert!(got.is_err(), "{got:?}");
            refused(&mut a.events, j.peer).await;
        }
        joiners.push(j);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disallowing_a_connected_peer_closes_it() {
    let mut a = node().await;
    let mut b = node().await;
    pair(&mut a, &mut b).await;
    b.net.add_address(a.peer, a.addr.clone()).await.unwrap();
    allow(&a, &[]).await;
    disconnected(&mut a.events, b.peer).await;
    disconnected(&mut b.events, a.peer).await;
    // b keeps trying with backoff (it still allows a and knows its address), and a keeps
    // refusing.
    refused(&mut a.events, b.peer).await;
    refused(&mut a.events, b.peer).await;
    assert!(!a.net.connected_peers().await.unwrap().contains(&b.peer));
    let got = within(
        "request",
        b.net.request(a.peer, Protocol::Sync, b"x".to_vec()),
    )
    .await;
    assert!(got.is_err(), "{got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_the_other_side_restarts() {
    let mut a = node().await;
    let mut b = node().await;
    pair(&mut a, &mut b).await;

    // b restarts: same key, same port.
    let (b_key, b_addr) = (b.key.clone(), b.addr.clone());
    b.net.shutdown().await.unwrap();
    drop(b);
    disconnected(&mut a.events, b_key.public().to_peer_id()).await;
    let mut b = start(b_key, |c| c.listen = vec![b_addr.clone()]).await;
    allow(&b, &[a.peer]).await;
    // a redials on its own (b does not know a's address).
    assert!(!connected(&mut a.events, b.peer).await);
    assert!(!connected(&mut b.events, a.peer).await);
    let got = within(
        "request",
        a.net.request(b.peer, Protocol::Sync, b"back".to_vec()),
    )
    .await;
    assert_eq!(got.unwrap(), b"re:back");

    // b restarts again on a new port; a learns the new address and reconnects.
    let b_key = b.key.clone();
    b.net.shutdown().await.unwrap();
    drop(b);
    disconnected(&mut a.events, b_key.public().to_peer_id()).await;
    let mut b = start(b_key, |_| {}).await;
    allow(&b, &[a.peer]).await;
    a.net.add_address(b.peer, b.addr.clone()).await.unwrap();
    assert!(!connected(&mut a.events, b.peer).await);
    assert!(!connected(&mut b.events, a.peer).await);
    let got = within(
        "request",
        b.net.request(a.peer, Protocol::Join, b"hi".to_vec()),
    )
    .await;
    assert_eq!(got.unwrap(), b"re:hi");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_clean() {
    let mut a = node().await;
    let mut b = node().await;
    pair(&mut a, &mut b).await;

    let other = a.net.clone();
    a.net.shutdown().await.unwrap();
    disconnected(&mut b.events, a.peer).await;
    // Every handle now gets Stopped, not a panic.
    assert!(matches!(other.shutdown().await, Err(NetError::Stopped)));
    assert!(matches!(
        other.request(b.peer, Protocol::Sync, b"x".to_vec()).await,
        Err(NetError::Stopped)
    ));
    assert!(matches!(other.listen_addrs().await, Err(NetError::Stopped)));
    assert!(matches!(
        other.connected_peers().await,
        Err(NetError::Stopped)
    ));
    // The event stream ends.
    within("end of events", async {
        while a.events.recv().await.is_some() {}
    })
    .await;

    // Dropping every handle also ends the actor.
    let Node {
        net, mut events, ..
    } = node().await;
    drop(net);
    within("end of events", async {
        while events.recv().await.is_some() {}
    })
    .await;

    // A request in flight when the actor stops fails cleanly.
    let b_peer = b.peer;
    let mut c = node().await;
    allow(&c, &[b_peer]).await;
    // No address known for b: the request fails, and the actor survives.
    let got = within(
        "request",
        c.net.request(b_peer, Protocol::Sync, b"x".to_vec()),
    )
    .await;
    assert!(got.is_err());
    assert!(c.net.listen_addrs().await.unwrap().len() == 1);
    c.net.shutdown().await.unwrap();
    drop(drain(&mut c.events));
}

#[test]
fn spawn_needs_a_runtime() {
    let config = NetConfig::new(Keypair::generate_ed25519());
    assert!(matches!(spawn(config), Err(NetError::NoRuntime)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_answer_fails_at_the_remote() {
    let a = node().await;
    let b_key = Keypair::generate_ed25519();
    let b_peer = b_key.public().to_peer_id();
    // b does not answer: it drops every `respond`.
    let mut config = NetConfig::new(b_key);
    config.listen = vec![loopback()];
    let (b_net, mut b_events) = spawn(config).unwrap();
    let b_addr = wait_for(&mut b_events, |e| match e {
        NetEvent::Listening { addr } => Some(addr),
        _ => None,
    })
    .await;
    b_net.set_allowed(HashSet::from([a.peer])).await.unwrap();
    allow(&a, &[b_peer]).await;
    a.net.add_address(b_peer, b_addr).await.unwrap();
    let request = a.net.request(b_peer, Protocol::Sync, b"anyone?".to_vec());
    let drop_it = async {
        wait_for(&mut b_events, |e| match e {
            NetEvent::InboundRequest { respond, .. } => {
                drop(respond);
                Some(())
            }
            _ => None,
        })
        .await
    };
    let (got, ()) = within("request", async { tokio::join!(request, drop_it) }).await;
    assert!(got.is_err(), "{got:?}");
    // Still alive.
    assert_eq!(b_net.connected_peers().await.unwrap(), vec![a.peer]);
}

// mDNS is tested where multicast exists: loopback has none, so tests/tests/mdns.rs runs two
// daemons in network namespaces on a bridge (members on new ports find each other only by
// mDNS; with --no-mdns they stay apart).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_join_window_ends_probation() {
    let mut a = node().await;
    a.net.set_join_window(true).await.unwrap();
    let joiner = node().await;
    knows(&joiner, &a).await;
    within("dial", joiner.net.dial(a.peer)).await.unwrap();
    assert!(connected(&mut a.events, joiner.peer).await);
    a.net.set_join_window(false).await.unwrap();
    disconnected(&mut a.events, joiner.peer).await;
    // It keeps redialing (it allows a) and is now refused outright.
    refused(&mut a.events, joiner.peer).await;
    assert!(
        !a.net
            .connected_peers()
            .await
            .unwrap()
            .contains(&joiner.peer)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redials_back_off() {
    let mut a = node().await;
    // b allows a and knows its address; a does not allow b.
    let b = start(Keypair::generate_ed25519(), |c| {
        c.backoff_initial = Duration::from_millis(100);
    })
    .await;
    let started = tokio::time::Instant::now();
    allow(&b, &[a.peer]).await;
    b.net.add_address(a.peer, a.addr.clone()).await.unwrap();
    for _ in 0..5 {
        refused(&mut a.events, b.peer).await;
    }
    // Attempts at about 0, 0.2, 0.6, 1.4 and 3.0 s: doubling, not hammering.
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(1200), "{elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_request_is_reported_with_its_sender_and_not_answered() {
    let mut a = node().await;
    let mut b = start(Keypair::generate_ed25519(), |config| {
        config.max_message = 1024;
        config.max_join_request = 256;
    })
    .await;
    pair(&mut a, &mut b).await;
    let request = a.net.request(b.peer, Protocol::Sync, vec![7; 4096]);
    let got = within("request", request).await;
    assert!(got.is_err(), "{got:?}");
    let (protocol, len) = wait_for(&mut b.events, |e| match e {
        NetEvent::Oversized {
            peer,
            protocol,
            len,
        } if peer == a.peer => Some((protocol, len)),
        NetEvent::InboundRequest { peer, .. } if peer == a.peer => {
            panic!("the oversized request reached the daemon")
        }
        _ => None,
    })
    .await;
    assert_eq!((protocol, len), (Protocol::Sync, 4096));
    // A member's join request has its own, smaller limit.
    let got = within(
        "request",
        a.net.request(b.peer, Protocol::Join, vec![1; 300]),
    )
    .await;
    assert!(got.is_err(), "{got:?}");
    let len = wait_for(&mut b.events, |e| match e {
        NetEvent::Oversized { peer, len, .. } if peer == a.peer => Some(len),
        _ => None,
    })
    .await;
    assert_eq!(len, 300);
    // Within the limits, the connection still works.
    let got = within(
        "request",
        a.net.request(b.peer, Protocol::Sync, vec![7; 1000]),
    )
    .await;
    assert_eq!(got.unwrap().len(), 1003);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_join_request_on_probation_ends_it() {
    let mut a = start(Keypair::generate_ed25519(), |config| {
        config.max_join_request = 256;
    })
    .await;
    let joiner = node().await;
    knows(&joiner, &a).await;
    a.net.set_join_window(true).await.unwrap();
    let got = within(
        "request",
        joiner.net.request(a.peer, Protocol::Join, vec![1; 4096]),
    )
    .await;
    assert!(got.is_err(), "{got:?}");
    refused(&mut a.events, joiner.peer).await;
    disconnected(&mut a.events, joiner.peer).await;
}
