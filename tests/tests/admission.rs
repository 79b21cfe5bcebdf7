//! Any member who is online admits the holder of a valid invite, not only the inviter: the
//! invite code names other members beside the inviter, `kith join` asks them in turn, and
//! the uses of an invite are counted across members.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use kith_crypto::InviteCode;
use kith_testkit::{Node, circle_of, wait_until};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

fn member_id(node: &Node) -> Result<String> {
    Ok(node.json(&["status"])?["member_id"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

fn member_names(node: &Node) -> Vec<String> {
    node.json(&["members"])
        .ok()
        .and_then(|m| m.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|m| m["name"].as_str().map(str::to_string))
        .collect()
}

fn wait_for_item(node: &Node, id: &str, what: &str) -> Result<Value> {
    wait_until(WAIT, what, || node.item(id))
}

/// `kith join CODE` on `node`, expected to fail: its one-line error.
fn refused_join(node: &Node, code: &str) -> Result<String> {
    let out = node.run(&["join", code])?;
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    ensure!(out.status.code() == Some(1), "join did not fail: {err}");
    ensure!(
        err.starts_with("error: ") && err.lines().count() == 1,
        "{err}"
    );
    Ok(err)
}

#[test]
fn a_member_admits_while_the_inviter_is_offline() -> Result<()> {
    let mut nodes = circle_of("Family", &["Ann", "Bob"])?;
    let bob_id = member_id(&nodes[1])?;
    let ann_id = member_id(&nodes[0])?;

    // Once Bob's published addresses have reached Ann, her invites name him too. Short-lived
    // probes until then, so that no stray invite stays usable.
    wait_until(WAIT, "Bob's addresses at Ann", || {
        let code = InviteCode::parse(&nodes[0].invite(&["--ttl", "1s"]).ok()?).ok()?;
        code.contacts()
            .iter()
            .any(|c| c.member.to_string() == bob_id)
            .then_some(())
    })?;
    // The probes expire a second after they were made; each node closes its join window
    // then (a timer at the first expiry), which the test waits out before Dee asks below.
    let probes_expired = Instant::now() + Duration::from_millis(1500);
    let code = nodes[0].invite(&[])?;
    let parsed = InviteCode::parse(&code)?;
    assert_eq!(parsed.version(), 2);
    assert_eq!(parsed.inviter().to_string(), ann_id);
    let contacts: Vec<String> = parsed
        .contacts()
        .iter()
        .map(|c| c.member.to_string())
        .collect();
    assert_eq!(contacts, [ann_id.clone(), bob_id.clone()]);
    assert!(
        parsed.contacts().iter().all(
            |c| !c.addresses.is_empty() && c.addresses.iter().all(|a| !a.contains("/0.0.0.0/"))
        )
    );
    eprintln!("invite with 2 contacts: {} characters", code.len());

    // Bob learns of the invite: Ann's later post arrives after it (her chain is in order).
    let marker = nodes[0].ok(&["checkin", "--mood", "okay", "--note", "going offline"])?;
    wait_for_item(&nodes[1], &marker, "Ann's post after the invite at Bob")?;
    nodes[0].stop()?;

    // Cy joins with Ann offline: Bob admits.
    let cy = Node::networked("Cy")?;
    let circle = cy.join(&code)?;
    assert_eq!(
        nodes[1].json(&["circle", "list"])?[0]["id"].as_str(),
        Some(circle.as_str())
    );
    let names = member_names(&cy);
    for name in ["Ann", "Bob", "Cy"] {
        assert!(names.iter().any(|n| n == name), "{names:?}");
    }
    wait_until(WAIT, "Cy in Bob's roster", || {
        member_names(&nodes[1])
            .iter()
            .any(|n| n == "Cy")
            .then_some(())
    })?;

    // Cy and Bob exchange check-ins.
    let from_cy = cy.ok(&["checkin", "--mood", "good", "--note", "hello from Cy"])?;
    let from_bob = nodes[1].ok(&["checkin", "--mood", "okay", "--note", "welcome, Cy"])?;
    let seen = wait_for_item(&nodes[1], &from_cy, "Cy's check-in at Bob")?;
    assert_eq!(seen["author"]["name"], "Cy");
    let seen = wait_for_item(&cy, &from_bob, "Bob's check-in at Cy")?;
    assert_eq!(seen["author"]["name"], "Bob");
    // Ann's history reached Cy through Bob.
    wait_for_item(&cy, &marker, "Ann's post at Cy")?;

    // Ann comes back, where her invite says she listens: she finds Cy in the roster and
    // Cy's post.
    let ann_listen = parsed.contacts()[0].addresses.clone();
    let mut args = vec!["--no-mdns"];
    for address in &ann_listen {
        args.extend(["--listen", address.as_str()]);
    }
    nodes[0].start_with(&args)?;
    let seen = wait_for_item(&nodes[0], &from_cy, "Cy's check-in at Ann")?;
    assert_eq!(seen["author"]["name"], "Cy");
    wait_until(WAIT, "Cy in Ann's roster", || {
        member_names(&nodes[0])
            .iter()
            .any(|n| n == "Cy")
            .then_some(())
    })?;
    // And Ann's new posts reach Cy.
    let from_ann = nodes[0].ok(&["checkin", "--mood", "good", "--note", "back, hi Cy"])?;
    wait_for_item(&cy, &from_ann, "Ann's check-in at Cy")?;

    // The one use was spent at Bob: Dee is refused with the same code. No invite is usable,
    // so neither Ann nor Bob lets a stranger in at all.
    let dee = Node::networked("Dee")?;
    wait_until(WAIT, "the probe invites expired", || {
        (Instant::now() >= probes_expired).then_some(())
    })?;
    let err = refused_join(&dee, &code)?;
    assert!(err.contains("used up"), "{err}");
    // Ann counts the use made at Bob: with Bob gone and another invite pending (so that her
    // node lets Dee ask), her own rules refuse the spent code.
    nodes[1].stop()?;
    nodes[0].invite(&[])?;
    let err = refused_join(&dee, &code)?;
    assert!(err.contains("used as many times as it allows"), "{err}");
    assert!(
        dee.json(&["circle", "list"])?
            .as_array()
            .is_some_and(Vec::is_empty)
    );
    let roster = nodes[0].json(&["members"])?;
    assert_eq!(roster.as_array().map(Vec::len), Some(3), "{roster}");
    Ok(())
}
