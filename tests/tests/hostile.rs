//! A hostile *member* against a real daemon: Mal is in the circle, so the connection gate lets
//! Mal in, and everything Mal sends over `/kith/sync/1` is built by hand in this test with
//! Mal's own device key (read from Mal's store with the passphrase, as the daemon does) and
//! the circle's epoch key. Ann's daemon must drop each bad message (with a log line and no
//! plaintext), keep its feed and store unchanged, show the equivocation in `kith status`,
//! keep serving the honest member Cy, and keep Mal out after repeated offences.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use kith_crypto::{CircleId, DeviceIdentity, Envelope, EpochKey, Hash, MemberId};
use kith_net::{NetConfig, NetError, NetEvent, NetHandle, PeerId, Protocol};
use kith_sync::Message;
use kith_testkit::{Node, PASSPHRASE, circle_of, wait_until};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

/// Plaintext Mal puts inside its hand-made envelopes: must never show up in Ann's log.
const MARKER: &str = "mal-wrote-this-marker";

/// Mal's device, outside any daemon: a bare libp2p node holding Mal's key.
struct Hostile {
    runtime: tokio::runtime::Runtime,
    net: NetHandle,
    ann: PeerId,
    identity: DeviceIdentity,
    circle: CircleId,
    epoch: u32,
    key: EpochKey,
}

impl Hostile {
    /// Sends one raw `/kith/sync/1` request and returns what came back.
    fn send(&self, bytes: Vec<u8>) -> Result<Vec<u8>, NetError> {
        self.runtime.block_on(async {
            tokio::time::timeout(WAIT, self.net.request(self.ann, Protocol::Sync, bytes))
                .await
                .unwrap_or(Err(NetError::Timeout))
        })
    }

    /// Like [`Hostile::send`]; an answer is required (empty: Ann had nothing to say).
    fn send_ok(&self, what: &str, bytes: Vec<u8>) -> Result<Vec<u8>> {
        self.send(bytes)
            .map_err(|e| anyhow!("{what}: Ann gave no answer: {e}"))
    }

    fn connected_to_ann(&self) -> bool {
        self.runtime
            .block_on(self.net.connected_peers())
            .is_ok_and(|peers| peers.contains(&self.ann))
    }

    /// An envelope of Mal's at `(seq, prev)` holding `plaintext`, properly sealed and signed.
    fn seal(&self, seq: u64, prev: Hash, plaintext: &[u8]) -> Result<Envelope> {
        Ok(Envelope::seal(
            &self.identity,
            &self.key,
            self.circle,
            seq,
            prev,
            self.epoch,
            plaintext,
            &mut rand::rng(),
        )?)
    }

    fn envelopes(&self, envelopes: Vec<Envelope>) -> Result<Vec<u8>> {
        Ok(Message::Envelopes {
            circle: self.circle,
            more: false,
            envelopes,
        }
        .encode()?)
    }
}

fn status(node: &Node) -> Result<Value> {
    node.json(&["status"])
}

fn equivocations(node: &Node) -> Result<u64> {
    status(node)?["equivocations"]
        .as_u64()
        .context("status has no equivocations count")
}

/// A node's whole feed as JSON (nothing in it changes by itself).
fn feed(node: &Node) -> Result<Value> {
    node.json(&["feed"])
}

fn log_count(node: &Node, needle: &str) -> usize {
    node.log().matches(needle).count()
}

/// Opens Mal's stopped home the way the daemon does (store + passphrase → identity), and
/// connects to Ann as Mal.
fn become_mal(mal: &Node, ann: &Node) -> Result<Hostile> {
    let store = kith_store::Store::open(mal.home(), PASSPHRASE.as_bytes())?;
    let identity = DeviceIdentity::from_secret(&store.identity_secret()?);
    let record = store
        .circles()?
        .into_iter()
        .next()
        .context("Mal's store holds no circle")?;
    let (epoch, key) = record
        .epoch_keys
        .into_iter()
        .max_by_key(|(epoch, _)| *epoch)
        .context("Mal holds no epoch key")?;
    let circle = record.id;
    drop(store);

    let status = status(ann)?;
    let ann_peer: PeerId = status["peer_id"].as_str().unwrap_or_default().parse()?;
    let ann_addr: kith_net::Multiaddr = status["listen"][0].as_str().unwrap_or_default().parse()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let net = runtime.block_on(async {
        let mut config = NetConfig::new(identity.libp2p_keypair());
        // Room to send a frame larger than the daemon accepts.
        config.max_message = 3 * 1024 * 1024;
        let (net, mut events) = kith_net::spawn(config)?;
        // Ann asks Mal for its vector on connect and on her timer: answer with nothing.
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                if let NetEvent::InboundRequest { respond, .. } = event {
                    let _ = respond.send(Vec::new());
                }
            }
        });
        net.admit(ann_peer).await?;
        net.add_address(ann_peer, ann_addr).await?;
        net.dial(ann_peer).await?;
        anyhow::Ok(net)
    })?;
    Ok(Hostile {
        runtime,
        net,
        ann: ann_peer,
        identity,
        circle,
        epoch,
        key,
    })
}

#[test]
fn a_hostile_member_is_dropped_logged_and_kept_out_and_harms_nothing() -> Result<()> {
    let mut nodes = circle_of("Family", &["Ann", "Mal", "Cy"])?;
    let from_ann = nodes[0].ok(&["checkin", "--mood", "okay", "--note", "ann-private-note"])?;
    let from_mal = nodes[1].ok(&["checkin", "--mood", "good", "--note", "mal-honest-note"])?;
    for node in [&nodes[0], &nodes[2]] {
        wait_until(WAIT, &format!("both posts at {}", node.name), || {
            let have = node.feed_ids();
            (have.contains(&from_ann) && have.contains(&from_mal)).then_some(())
        })?;
    }
    nodes[1].stop()?;
    let ann = &nodes[0];
    let feed_before = feed(ann)?;
    let equivocations_before = equivocations(ann)?;

    let mal = become_mal(&nodes[1], ann)?;
    let mal_peer = mal.identity.peer_id();
    wait_until(WAIT, "Ann to list Mal as connected", || {
        status(ann).ok()?["connected_peers"]
            .as_array()?
            .iter()
            .any(|p| p.as_str() == Some(&mal_peer.to_string()))
            .then_some(())
    })?;

    // An honest request first: Mal's empty vector gets the whole circle, which tells Mal how
    // long its own chain is at Ann.
    let hello = Message::Vector {
        circle: mal.circle,
        heads: Vec::new(),
    }
    .encode()?;
    let answer = Message::decode(&mal.send_ok("an empty vector", hello.clone())?)?;
    let Message::Envelopes {
        more: false,
        envelopes,
        ..
    } = answer
    else {
        bail!("expected every envelope in one batch, got {answer:?}");
    };
    let me: MemberId = mal.identity.member_id();
    let head = envelopes
        .iter()
        .filter(|e| e.header.author == me)
        .max_by_key(|e| e.header.seq)
        .context("Ann holds nothing of Mal's")?;
    let (n, head_hash) = (head.header.seq, head.hash());

    // 1. A flood of honest requests: 400 vectors at once. Not an offence: Ann answers what
    //    fits in the 8 streams a connection may have open, libp2p drops the rest (one warning
    //    line each), and Ann keeps serving her own user and her other members.
    let flood = mal.runtime.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..400 {
            let net = mal.net.clone();
            let (peer, bytes) = (mal.ann, hello.clone());
            tasks.spawn(async move { net.request(peer, Protocol::Sync, bytes).await });
        }
        let mut answered = 0usize;
        while let Some(result) = tasks.join_next().await {
            if matches!(result, Ok(Ok(ref bytes)) if !bytes.is_empty()) {
                answered += 1;
            }
        }
        answered
    });
    eprintln!("flood: {flood} of 400 answered");
    assert!(flood > 0, "no request of the flood was answered");
    status(ann)?;
    assert!(
        mal.connected_to_ann(),
        "honest requests got Mal disconnected"
    );

    // 2. A vector for a circle Ann is not in: dropped, no answer, an offence.
    let unknown = Message::Vector {
        circle: CircleId::random(&mut rand::rng()),
        heads: Vec::new(),
    }
    .encode()?;
    assert!(mal.send_ok("an unknown circle", unknown)?.is_empty());
    wait_until(WAIT, "Ann to log the unknown circle", || {
        (log_count(ann, "offence=UnknownCircle") > 0).then_some(())
    })?;

    // 3. A frame over the 2 MiB limit: only its length prefix is read, the stream is reset
    //    and it counts as an offence; the connection and the daemon stay.
    let huge = vec![0x5a; 2 * 1024 * 1024 + 1];
    assert!(mal.send(huge).is_err(), "Ann answered an oversized frame");
    wait_until(WAIT, "Ann to log the oversized frame", || {
        (log_count(ann, "offence=Oversized") > 0).then_some(())
    })?;
    status(ann)?;

    // 4. Equivocation: a second envelope, validly signed by Mal, at Mal's seq 1. Not an
    //    offence of the peer; kept as evidence and counted in `kith status`.
    let second = mal.seal(1, [0; 32], MARKER.as_bytes())?;
    mal.send_ok("an equivocation", mal.envelopes(vec![second])?)?;
    wait_until(WAIT, "the equivocation in Ann's status", || {
        (equivocations(ann).ok()? > equivocations_before).then_some(())
    })?;

    // 5. A broken chain: Mal's next seq naming a previous envelope that is not the one Ann
    //    holds. Evidence again, never appended.
    let forked = mal.seal(n + 1, [7; 32], MARKER.as_bytes())?;
    mal.send_ok("a broken chain", mal.envelopes(vec![forked])?)?;
    wait_until(WAIT, "the broken chain in Ann's status", || {
        (equivocations(ann).ok()? > equivocations_before + 1).then_some(())
    })?;
    assert_eq!(feed(ann)?, feed_before, "evidence changed Ann's feed");

    // Offences, one per message; the fifth within ten minutes gets Mal banned. The vector
    // for an unknown circle (2.) and the oversized frame (3.) were the first two.
    let offences_logged = || log_count(ann, "bad sync message dropped");
    assert_eq!(offences_logged(), 2, "{}", ann.log());

    // 6. Garbage bytes.
    assert!(
        mal.send_ok("garbage", b"\xffnot a sync message at all".to_vec())?
            .is_empty()
    );
    // 7. An oversized envelope inside a well-framed message (its length is over the
    //    envelope limit, so the message does not decode).
    let mut oversized = vec![1u8, 2];
    oversized.extend_from_slice(&mal.circle.0);
    oversized.push(0); // flags
    oversized.push(1); // one envelope
    let len = kith_crypto::MAX_ENVELOPE_LEN + 1;
    let mut varint = len;
    while varint >= 0x80 {
        oversized.push((varint as u8) | 0x80);
        varint >>= 7;
    }
    oversized.push(varint as u8);
    oversized.resize(oversized.len() + len, 0x11);
    assert!(mal.send_ok("an oversized envelope", oversized)?.is_empty());
    wait_until(WAIT, "four offences in Ann's log", || {
        (offences_logged() >= 4).then_some(())
    })?;
    assert!(
        mal.connected_to_ann(),
        "Mal was disconnected before the limit"
    );
    assert_eq!(log_count(ann, "too many bad messages"), 0, "{}", ann.log());

    // 8. Mal's next envelope with its signature broken: the fifth offence, so its answer
    //    may not arrive.
    let mut bad = mal.seal(n + 1, head_hash, MARKER.as_bytes())?;
    bad.signature[0] ^= 1;
    let _ = mal.send(mal.envelopes(vec![bad])?);
    wait_until(WAIT, "the bad signature in Ann's log", || {
        (log_count(ann, "offence=BadSignature") > 0).then_some(())
    })?;

    // 9. A forgery: Mal's envelope relabelled as Cy's (the signature is Mal's); Mal may be
    //    banned already, so its answer may not arrive.
    let cy_member: MemberId = nodes[2].json(&["status"])?["member_id"]
        .as_str()
        .unwrap_or_default()
        .parse()?;
    let mut forged = mal.seal(1, [0; 32], MARKER.as_bytes())?;
    forged.header.author = cy_member;
    let _ = mal.send(mal.envelopes(vec![forged])?);

    // 10. More bad messages (envelopes for another circle inside Mal's circle's message),
    //     in case the forgery's answer raced the ban: Mal is banned; requests fail.
    for _ in 0..20 {
        let other = Envelope::seal(
            &mal.identity,
            &mal.key,
            CircleId::random(&mut rand::rng()),
            1,
            [0; 32],
            mal.epoch,
            MARKER.as_bytes(),
            &mut rand::rng(),
        )?;
        if mal.send(mal.envelopes(vec![other])?).is_err() {
            break;
        }
    }
    wait_until(WAIT, "Ann to ban Mal", || {
        (log_count(ann, "too many bad messages") > 0).then_some(())
    })?;
    wait_until(WAIT, "Ann to drop Mal's connection", || {
        let status = status(ann).ok()?;
        let listed = status["connected_peers"]
            .as_array()?
            .iter()
            .any(|p| p.as_str() == Some(&mal_peer.to_string()));
        (!listed).then_some(())
    })?;
    // Mal's node redials on its own; every new connection is refused and no request gets
    // through.
    for attempt in 0..3 {
        if let Ok(answer) = mal.send(hello.clone()) {
            bail!(
                "a banned member's request {attempt} got an answer of {} bytes",
                answer.len()
            );
        }
    }
    wait_until(WAIT, "Ann to log refusing Mal's new connection", || {
        (log_count(ann, "refused a peer that is not a member") > 0).then_some(())
    })?;
    assert!(nodes[0].is_running(), "Ann's daemon stopped");

    // Nothing Mal sent reached Ann's feed, and an honest member still gets through.
    let ann = &nodes[0];
    assert_eq!(feed(ann)?, feed_before, "Mal's messages changed Ann's feed");
    let from_cy = nodes[2].ok(&["checkin", "--mood", "okay", "--note", "cy-after-the-storm"])?;
    wait_until(WAIT, "Cy's post at Ann", || ann.item(&from_cy))?;
    let back = ann.ok(&["checkin", "--mood", "good", "--note", "ann-answers-cy"])?;
    wait_until(WAIT, "Ann's answer at Cy", || nodes[2].item(&back))?;

    // The log names what was dropped and why, never content.
    let log = ann.log();
    for needle in [
        "offence=UnknownCircle",
        "offence=Malformed",
        "offence=BadSignature",
    ] {
        assert!(log.contains(needle), "no {needle} in Ann's log:\n{log}");
    }
    for secret in [
        MARKER,
        "ann-private-note",
        "mal-honest-note",
        "cy-after-the-storm",
        "Family",
    ] {
        assert!(!log.contains(secret), "{secret:?} in Ann's log:\n{log}");
    }

    // The store is intact: after a restart Ann has exactly what she had, plus the honest
    // posts, and no trace of Mal's envelopes.
    let feed_after = feed(ann)?;
    drop(mal);
    nodes[0].stop()?;
    nodes[0].start_networked()?;
    assert_eq!(
        feed(&nodes[0])?,
        feed_after,
        "Ann's store changed across a restart"
    );
    assert!(
        nodes[0].grep_home(MARKER.as_bytes())?.is_empty(),
        "plaintext in Ann's home"
    );
    Ok(())
}

/// Item 5 of issue 4 against real daemons: Mal's device writes a raw automerge change that
/// marks Ann's request fulfilled (only the asker may) and seals it properly as Mal's next
/// envelope. The envelope itself is valid, so Ann stores and relays it; the change inside
/// is refused by Ann and, when it reaches her through Ann, by Cy: the request stays open
/// everywhere, both show the refusal in `kith status`, and Ann's log names it.
#[test]
fn a_forged_change_is_refused_by_every_member_and_shown_in_status() -> Result<()> {
    use automerge::transaction::{CommitOptions, Transactable};
    use automerge::{ActorId, ReadDoc};

    let mut nodes = circle_of("Family", &["Ann", "Mal", "Cy"])?;
    let request = nodes[0].ok(&["ask", "--kind", "ride", "to the clinic"])?;
    for node in [&nodes[1], &nodes[2]] {
        wait_until(WAIT, &format!("the request at {}", node.name), || {
            node.item(&request).map(|_| ())
        })?;
    }
    nodes[1].stop()?;
    let ann = &nodes[0];
    let mal = become_mal(&nodes[1], ann)?;
    let hello = Message::Vector {
        circle: mal.circle,
        heads: Vec::new(),
    }
    .encode()?;
    let Message::Envelopes { envelopes, .. } =
        Message::decode(&mal.send_ok("an empty vector", hello)?)?
    else {
        bail!("expected envelopes");
    };

    // Mal's copy of the document, rebuilt from the envelopes, edited as Mal's own actor.
    let me = mal.identity.member_id();
    let mut doc = automerge::AutoCommit::new()
        .with_actor(ActorId::from(kith_core::actor_for_member(&me.to_string())?));
    let mut changes = Vec::new();
    let mut head = (0, [0; 32]);
    for envelope in &envelopes {
        let plaintext = envelope.open(&mal.key)?;
        if let kith_core::Payload::Change(bytes) = kith_core::Payload::decode(&plaintext)? {
            changes.push(automerge::Change::from_bytes(bytes)?);
        }
        if envelope.header.author == me && envelope.header.seq > head.0 {
            head = (envelope.header.seq, envelope.hash());
        }
    }
    doc.apply_changes(changes)?;
    let map =
        |doc: &automerge::AutoCommit, obj: &automerge::ObjId, key: &str| match doc.get(obj, key) {
            Ok(Some((automerge::Value::Object(_), id))) => Ok(id),
            other => Err(anyhow!("no map at {key}: {other:?}")),
        };
    let requests = map(&doc, &automerge::ROOT, "q")?;
    let item = map(&doc, &requests, &request)?;
    doc.put(&item, "s", "fulfilled")?;
    doc.commit_with(CommitOptions::default().with_time(0));
    let forged = doc
        .get_last_local_change()
        .context("no change")?
        .raw_bytes()
        .to_vec();
    let envelope = mal.seal(
        head.0 + 1,
        head.1,
        &kith_core::Payload::Change(forged).encode(),
    )?;
    mal.send_ok("the forged change", mal.envelopes(vec![envelope])?)?;

    for node in [&nodes[0], &nodes[2]] {
        wait_until(WAIT, &format!("{} to refuse the change", node.name), || {
            let circle = status(node).ok()?["circles"][0].clone();
            (circle["rejected_changes"].as_u64()? >= 1).then_some(circle)
        })
        .and_then(|circle| {
            let latest = &circle["recent_rejections"][0];
            if latest["writer"].as_str() != Some(&me.to_string()) {
                bail!("{}'s status names another writer: {circle}", node.name);
            }
            Ok(())
        })?;
        let item = node.item(&request).context("the request is gone")?;
        assert_eq!(item["status"], "open", "{}: {item}", node.name);
    }
    assert!(
        log_count(ann, "breaks the circle's rules; refused") >= 1,
        "{}",
        ann.log()
    );
    // The honest members still talk.
    let from_cy = nodes[2].ok(&["checkin", "--mood", "okay"])?;
    wait_until(WAIT, "Cy's post at Ann", || nodes[0].item(&from_cy))?;
    Ok(())
}
