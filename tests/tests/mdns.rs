//! Members find each other on the local network by mDNS. Two members' daemons run on separate
//! hosts (network namespaces on one bridge, where multicast works as on a home LAN), join one
//! circle, stop, and come back on new ports: every address either holds for the other is
//! stale, so only mDNS can bring them together. The control does the same with `--no-mdns`
//! and must stay apart.
//!
//! Needs root (namespaces). Elsewhere it says why it skips; CI runs as root and must run it.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use kith_testkit::{NetLab, Node, wait_until};

/// Ports before and after the restart.
const FIRST_PORT: u16 = 7440;
const NEW_PORT: u16 = 7441;
/// The daemon's sync interval (`SYNC_INTERVAL`, 5 s) several times over, plus the 1 s first
/// redial: long enough for stale addresses to be tried and fail more than once.
const APART: Duration = Duration::from_secs(20);
const WAIT: Duration = Duration::from_secs(60);

fn lab(hosts: usize) -> Result<Option<NetLab>> {
    if NetLab::available() {
        return NetLab::new(hosts).map(Some);
    }
    if std::env::var_os("CI").is_some() {
        bail!("CI must be able to create network namespaces (root and nftables)");
    }
    eprintln!("skipped: cannot create network namespaces here (needs root and nftables)");
    Ok(None)
}

/// Ann (host 0) and Bob (host 1) in one circle, then both stopped and restarted on new ports
/// with `extra` daemon arguments. Returns them running, having never met at the new addresses.
fn circle_then_new_ports(lab: &NetLab, extra: &[&str]) -> Result<(Node, Node)> {
    let mut ann = Node::init("Ann")?;
    ann.start_in(lab, 0, FIRST_PORT, &["--no-mdns"])?;
    let mut bob = Node::init("Bob")?;
    bob.start_in(lab, 1, FIRST_PORT, &["--no-mdns"])?;
    ann.ok(&["circle", "create", "Next door"])?;
    bob.join(&ann.invite(&[])?)?;
    // A post each way: each then holds the other's roster entry and, normally, the address
    // the other published on joining; after the restart that address is stale.
    let hello = ann.ok(&["checkin", "--mood", "okay", "--note", "before the move"])?;
    wait_until(WAIT, "Ann's first post at Bob", || bob.item(&hello))?;
    let reply = bob.ok(&["checkin", "--mood", "okay", "--note", "welcome"])?;
    wait_until(WAIT, "Bob's first post at Ann", || ann.item(&reply))?;
    ann.stop()?;
    bob.stop()?;
    ann.start_in(lab, 0, NEW_PORT, extra)?;
    bob.start_in(lab, 1, NEW_PORT, extra)?;
    Ok((ann, bob))
}

fn connected(node: &Node) -> bool {
    node.json(&["status"])
        .ok()
        .and_then(|s| s["connected_peers"].as_array().map(|p| !p.is_empty()))
        .unwrap_or(false)
}

#[test]
fn members_on_new_ports_find_each_other_by_mdns() -> Result<()> {
    let Some(lab) = lab(2)? else { return Ok(()) };
    let (ann, bob) = circle_then_new_ports(&lab, &[])?;
    let post = ann.ok(&["checkin", "--mood", "good", "--note", "found you"])?;
    let seen = wait_until(WAIT, "Ann's post at Bob through mDNS", || bob.item(&post))?;
    assert_eq!(seen["note"], "found you");
    let back = bob.ok(&["checkin", "--mood", "okay", "--note", "and back"])?;
    wait_until(WAIT, "Bob's post at Ann", || ann.item(&back))?;
    assert!(connected(&ann) && connected(&bob));
    Ok(())
}

#[test]
fn without_mdns_members_on_new_ports_stay_apart() -> Result<()> {
    let Some(lab) = lab(2)? else { return Ok(()) };
    let (ann, bob) = circle_then_new_ports(&lab, &["--no-mdns"])?;
    let post = ann.ok(&["checkin", "--mood", "good", "--note", "anyone there"])?;
    // Polled until the deadline; any sign of contact fails at once.
    let deadline = Instant::now() + APART;
    while Instant::now() < deadline {
        if bob.item(&post).is_some() {
            bail!("Ann's post reached Bob without mDNS: the test would not show mDNS works");
        }
        if connected(&ann) || connected(&bob) {
            bail!("Ann and Bob connected without mDNS");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Ok(())
}
