//! Several real daemons on 127.0.0.1 forming one circle: invites, joining, sync both ways,
//! catch-up after being offline, delivery through a third member, outsiders refused.

use std::time::Duration;

use anyhow::Result;
use kith_testkit::{Node, circle_of, wait_until};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

fn has(node: &Node, id: &str) -> Option<Value> {
    node.item(id)
}

fn wait_for_item(node: &Node, id: &str, what: &str) -> Result<Value> {
    wait_until(WAIT, what, || has(node, id))
}

#[test]
fn invite_join_and_sync_both_ways() -> Result<()> {
    let nodes = circle_of("Family", &["Ann", "Bob"])?;
    let (ann, bob) = (&nodes[0], &nodes[1]);

    // Bob sees the circle and its roster as soon as `join` returns.
    let circles = bob.json(&["circle", "list"])?;
    assert_eq!(circles[0]["name"], "Family");
    let members = bob.json(&["members"])?;
    let names: Vec<&str> = members
        .as_array()
        .map(|m| m.iter().filter_map(|x| x["name"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        names.contains(&"Ann") && names.contains(&"Bob"),
        "{members}"
    );
    assert_eq!(
        members
            .as_array()
            .and_then(|m| m.iter().find(|x| x["name"] == "Bob"))
            .map(|b| b["role"].clone()),
        Some("member".into())
    );

    // Check-ins both ways.
    let from_ann = ann.ok(&["checkin", "--mood", "good", "--note", "made it home"])?;
    let from_bob = bob.ok(&["checkin", "--mood", "low", "--note", "long day"])?;
    let seen = wait_for_item(bob, &from_ann, "Ann's check-in at Bob")?;
    assert_eq!(seen["author"]["name"], "Ann");
    assert_eq!(seen["note"], "made it home");
    let seen = wait_for_item(ann, &from_bob, "Bob's check-in at Ann")?;
    assert_eq!(seen["author"]["name"], "Bob");

    // A request, a claim by the other member, a reply, and the asker closing it.
    let ask = ann.ok(&["ask", "--kind", "meals", "Soup on Thursday", "--urgent"])?;
    wait_for_item(bob, &ask, "Ann's request at Bob")?;
    bob.ok(&["claim", &ask])?;
    bob.ok(&["reply", &ask, "I'll bring lentil soup"])?;
    let claimed = wait_until(WAIT, "Bob's claim and reply at Ann", || {
        let item = has(ann, &ask)?;
        (item["status"] == "claimed" && item["replies"][0]["text"] == "I'll bring lentil soup")
            .then_some(item)
    })?;
    assert_eq!(claimed["claimed_by"][0]["name"], "Bob");
    // Only the asker closes it.
    let out = bob.run(&["done", &ask])?;
    assert_eq!(out.status.code(), Some(1));
    ann.ok(&["done", &ask])?;
    wait_until(WAIT, "fulfilled at Bob", || {
        (has(bob, &ask)?["status"] == "fulfilled").then_some(())
    })?;

    // Both see the other as a connected peer.
    let status = ann.json(&["status"])?;
    assert!(
        status["connected_peers"]
            .as_array()
            .is_some_and(|p| !p.is_empty()),
        "{status}"
    );
    Ok(())
}

#[test]
fn watch_shows_items_arriving_from_another_member() -> Result<()> {
    let nodes = circle_of("Family", &["Ann", "Bob"])?;
    let watcher = nodes[1].watch(&[])?;
    // The watch is registered once `kith watch` has its answer; posting until a line
    // arrives keeps this free of fixed sleeps.
    let line = wait_until(WAIT, "a watch line at Bob", || {
        let id = nodes[0].ok(&["checkin", "--mood", "great"]).ok()?;
        watcher
            .next_matching(Duration::from_secs(3), |v| v["id"] == id.as_str())
            .ok()
    })?;
    assert_eq!(line["author"]["name"], "Ann");
    assert_eq!(line["mood_word"], "great");
    Ok(())
}

#[test]
fn a_member_who_was_offline_catches_up() -> Result<()> {
    let mut nodes = circle_of("Family", &["Ann", "Bob"])?;
    nodes[1].stop()?;
    let mut last = String::new();
    for i in 0..320 {
        last = nodes[0].ok(&[
            "checkin",
            "--mood",
            "okay",
            "--note",
            &format!("while you were away {i}"),
        ])?;
    }
    nodes[1].start_networked()?;
    let bob = &nodes[1];
    wait_for_item(bob, &last, "Bob to catch up")?;
    let count = wait_until(WAIT, "all 320 at Bob", || {
        let n = bob.feed_ids().len();
        (n >= 320).then_some(n)
    })?;
    assert_eq!(count, 320);
    Ok(())
}

#[test]
fn members_never_online_together_reach_each_other_through_a_third() -> Result<()> {
    let mut nodes = circle_of("Family", &["Ann", "Bea", "Cal"])?;
    // Cal goes away; Ann posts; Ann goes away; Cal comes back and gets Ann's post from Bea.
    nodes[2].stop()?;
    let from_ann = nodes[0].ok(&["checkin", "--mood", "good", "--note", "for Cal, via Bea"])?;
    wait_for_item(&nodes[1], &from_ann, "Ann's post at Bea")?;
    nodes[0].stop()?;
    nodes[2].start_networked()?;
    let got = wait_for_item(&nodes[2], &from_ann, "Ann's post at Cal through Bea")?;
    assert_eq!(got["author"]["name"], "Ann");

    // Cal answers; Cal goes away; Ann comes back and gets it from Bea.
    let from_cal = nodes[2].ok(&["checkin", "--mood", "okay", "--note", "for Ann, via Bea"])?;
    wait_for_item(&nodes[1], &from_cal, "Cal's post at Bea")?;
    nodes[2].stop()?;
    nodes[0].start_networked()?;
    let got = wait_for_item(&nodes[0], &from_cal, "Cal's post at Ann through Bea")?;
    assert_eq!(got["author"]["name"], "Cal");
    Ok(())
}

#[test]
fn used_expired_forged_and_mistyped_invites_are_refused() -> Result<()> {
    let nodes = circle_of("Family", &["Ann", "Bob"])?;
    let ann = &nodes[0];
    let code = ann.invite(&[])?;
    let cy = Node::networked("Cy")?;
    cy.join(&code)?;

    // Used: the one use is spent.
    let dee = Node::networked("Dee")?;
    let out = dee.run(&["join", &code])?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("error: ") && err.contains("used up"),
        "{err}"
    );

    // Mistyped: one character changed is caught before any network use.
    let mut typo: Vec<char> = ann.invite(&[])?.chars().collect();
    let at = typo.len() / 2;
    typo[at] = if typo[at] == 'a' { 'b' } else { 'a' };
    let typo: String = typo.into_iter().collect();
    let out = dee.run(&["join", &typo])?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("checksum") || err.contains("mistyped"),
        "{err}"
    );

    // Forged: a well-formed code for the right circle and inviter with a secret nobody
    // issued.
    let real = kith_crypto::InviteCode::parse(&ann.invite(&[])?)?;
    let forged = kith_crypto::InviteCode::generate(
        real.circle(),
        real.inviter(),
        real.addresses().to_vec(),
        real.expires_at(),
        &mut rand::rng(),
    )?;
    let out = dee.run(&["join", &forged.encode()])?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("unknown invite"), "{err}");

    // Expired.
    let short = ann.invite(&["--ttl", "1s"])?;
    let expiry = kith_crypto::InviteCode::parse(&short)?.expires_at();
    wait_until(WAIT, "the short invite to expire", || {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_secs();
        (now > expiry).then_some(())
    })?;
    let out = dee.run(&["join", &short])?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("expired"), "{err}");

    // None of it let Dee in, and nothing changed for the members.
    assert!(
        dee.json(&["circle", "list"])?
            .as_array()
            .is_some_and(Vec::is_empty)
    );
    let roster = ann.json(&["members"])?;
    assert_eq!(roster.as_array().map(Vec::len), Some(3), "{roster}");
    Ok(())
}

#[test]
fn an_outsider_is_refused_and_receives_nothing() -> Result<()> {
    let mut nodes = circle_of("Family", &["Ann", "Bob"])?;
    let ann = &nodes[0];
    ann.ok(&["checkin", "--mood", "okay", "--note", "members only"])?;
    let status = ann.json(&["status"])?;
    let ann_peer: kith_net::PeerId = status["peer_id"].as_str().unwrap_or_default().parse()?;
    let ann_addr: kith_net::Multiaddr = status["listen"][0].as_str().unwrap_or_default().parse()?;
    let circle = ann.json(&["circle", "list"])?[0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    // A raw libp2p peer that is not a member: it dials Ann and asks to sync the circle.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(async {
        let keypair = kith_crypto::DeviceIdentity::generate(&mut rand::rng()).libp2p_keypair();
        let (net, _events) = kith_net::spawn(kith_net::NetConfig::new(keypair))?;
        net.admit(ann_peer).await?;
        net.add_address(ann_peer, ann_addr).await?;
        let circle: kith_crypto::CircleId = circle.parse()?;
        let hello = kith_sync_hello(circle);
        let result = tokio::time::timeout(
            Duration::from_secs(20),
            net.request(ann_peer, kith_net::Protocol::Sync, hello),
        )
        .await;
        let connected = net.connected_peers().await?;
        anyhow::Ok((result, connected))
    })?;
    let (result, connected) = outcome;
    if let Ok(Ok(answer)) = result {
        panic!("an outsider got an answer of {} bytes", answer.len());
    }
    assert!(
        !connected.contains(&ann_peer),
        "the outsider stayed connected"
    );
    wait_until(WAIT, "Ann to log the refusal", || {
        ann.log().contains("refused a peer").then_some(())
    })?;
    assert!(nodes[0].is_running());
    Ok(())
}

/// An empty sync vector for `circle`, encoded as a member would send it.
fn kith_sync_hello(circle: kith_crypto::CircleId) -> Vec<u8> {
    kith_sync::Message::Vector {
        circle,
        heads: Vec::new(),
    }
    .encode()
    .unwrap_or_default()
}

#[test]
fn kill_9_on_either_side_during_a_burst_loses_nothing_acknowledged() -> Result<()> {
    let mut nodes = circle_of("Family", &["Ann", "Bob"])?;
    // Bob dies without warning in the middle of Ann's burst.
    let mut acknowledged = Vec::new();
    for i in 0..60 {
        acknowledged.push(nodes[0].ok(&[
            "checkin",
            "--mood",
            "okay",
            "--note",
            &format!("a{i}"),
        ])?);
        if i == 30 {
            nodes[1].kill9()?;
        }
    }
    nodes[1].start_networked()?;
    // Then Ann dies in the middle of Bob's burst.
    for i in 0..60 {
        acknowledged.push(nodes[1].ok(&[
            "checkin",
            "--mood",
            "good",
            "--note",
            &format!("b{i}"),
        ])?);
        if i == 30 {
            nodes[0].kill9()?;
        }
    }
    nodes[0].start_networked()?;
    for node in &nodes {
        wait_until(
            WAIT,
            &format!("every acknowledged post at {}", node.name),
            || {
                let have = node.feed_ids();
                acknowledged
                    .iter()
                    .all(|id| have.contains(id))
                    .then_some(())
            },
        )?;
    }
    Ok(())
}

#[test]
fn members_join_and_sync_over_quic() -> Result<()> {
    let quic = ["--no-mdns", "--listen", "/ip4/127.0.0.1/udp/0/quic-v1"];
    let mut ann = Node::init("Ann")?;
    ann.start_with(&quic)?;
    let mut bob = Node::init("Bob")?;
    bob.start_with(&quic)?;
    ann.ok(&["circle", "create", "Family"])?;
    let status = ann.json(&["status"])?;
    assert!(
        status["listen"][0]
            .as_str()
            .is_some_and(|a| a.contains("/quic-v1")),
        "{status}"
    );
    let code = ann.invite(&[])?;
    bob.join(&code)?;
    let id = ann.ok(&["checkin", "--mood", "good", "--note", "over quic"])?;
    let seen = wait_for_item(&bob, &id, "Ann's post at Bob over QUIC")?;
    assert_eq!(seen["note"], "over quic");
    let back = bob.ok(&["checkin", "--mood", "okay"])?;
    wait_for_item(&ann, &back, "Bob's post at Ann over QUIC")?;
    Ok(())
}
