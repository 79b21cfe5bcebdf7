//! Daemons on separate hosts (network namespaces this test creates), with 20 % of packets
//! dropped at random, then a partition with posts on both sides, then healing: every member
//! ends with every post. The assertions wait on conditions; they never repeat an action.
//!
//! Needs root (namespaces, nftables). Elsewhere it says why it skips; CI runs as root and
//! must run it.

use std::time::Duration;

use anyhow::Result;
use kith_testkit::{NetLab, Node, wait_until};

const PORT: u16 = 7420;
const CONVERGE: Duration = Duration::from_secs(120);

fn lab(hosts: usize) -> Result<Option<NetLab>> {
    if NetLab::available() {
        return NetLab::new(hosts).map(Some);
    }
    if std::env::var_os("CI").is_some() {
        anyhow::bail!("CI must be able to create network namespaces (root and nftables)");
    }
    eprintln!("skipped: cannot create network namespaces here (needs root and nftables)");
    Ok(None)
}

/// Waits until every node's feed holds every id in `ids`.
fn converge(nodes: &[Node], ids: &[String], what: &str) -> Result<()> {
    for node in nodes {
        wait_until(CONVERGE, &format!("{what} at {}", node.name), || {
            let have = node.feed_ids();
            ids.iter().all(|id| have.contains(id)).then_some(())
        })?;
    }
    Ok(())
}

#[test]
fn loss_then_partition_then_healing_loses_nothing() -> Result<()> {
    let Some(lab) = lab(3)? else { return Ok(()) };
    let names = ["Ann", "Bea", "Cal"];
    let mut nodes = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let mut node = Node::init(name)?;
        node.start_in(&lab, i, PORT, &["--no-mdns"])?;
        nodes.push(node);
    }
    nodes[0].ok(&["circle", "create", "Across the street"])?;
    for node in nodes.iter().skip(1) {
        let code = nodes[0].invite(&[])?;
        node.join(&code)?;
    }

    // 20 % of packets dropped at random on every host.
    lab.set_loss(20)?;
    let mut ids = Vec::new();
    for round in 0..5 {
        for node in &nodes {
            ids.push(node.ok(&[
                "checkin",
                "--mood",
                "okay",
                "--note",
                &format!("lossy {round}"),
            ])?);
        }
    }
    converge(&nodes, &ids, "every post through 20 % loss")?;

    // Partition: Ann and Bea on one side, Cal alone; both sides keep posting.
    lab.partition(&[&[0, 1], &[2]])?;
    let mut side_a = Vec::new();
    for round in 0..5 {
        side_a.push(nodes[0].ok(&[
            "checkin",
            "--mood",
            "low",
            "--note",
            &format!("side A {round}"),
        ])?);
        ids.push(nodes[2].ok(&[
            "checkin",
            "--mood",
            "good",
            "--note",
            &format!("side B {round}"),
        ])?);
    }
    let ask = nodes[2].ok(&["ask", "--kind", "ride", "Lift to the station"])?;
    ids.push(ask.clone());
    // Within a side, posts still travel.
    converge(&nodes[..2], &side_a, "side A's posts on side A")?;
    ids.extend(side_a);

    // Heal (loss stays): everything reaches everyone.
    lab.heal()?;
    converge(&nodes, &ids, "every post after healing")?;
    // And a claim made after healing, across the former partition, arrives too.
    nodes[0].ok(&["claim", &ask])?;
    wait_until(CONVERGE, "Ann's claim at Cal", || {
        (nodes[2].item(&ask)?["status"] == "claimed").then_some(())
    })?;
    for node in &mut nodes {
        assert!(node.is_running(), "{} stopped", node.name);
    }
    Ok(())
}
