//! The network-namespace lab itself: connectivity, random loss and partitions behave as the
//! multi-daemon tests assume. Needs root; CI runs as root and must run it.

use std::{
    process::{Child, Stdio},
    time::Duration,
};

use anyhow::Result;
use kith_testkit::{NetLab, wait_until};

/// Skips (with the reason) where namespaces cannot be made, except in CI, which must run it.
fn lab(hosts: usize) -> Result<Option<NetLab>> {
    if NetLab::available() {
        return NetLab::new(hosts).map(Some);
    }
    if std::env::var_os("CI").is_some() {
        anyhow::bail!(
            "CI must be able to create network namespaces (run as root with nftables installed)"
        );
    }
    eprintln!("skipped: cannot create network namespaces here (needs root and nftables)");
    Ok(None)
}

/// A TCP listener on `host`:`port` that accepts forever (killed on drop).
struct Listener(Child);

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn listen(lab: &NetLab, host: usize, port: u16) -> Result<Listener> {
    let script = format!(
        "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\ns.bind(('{}', {port}))\ns.listen(64)\nwhile True:\n    c, _ = s.accept()\n    c.close()\n",
        lab.addr(host)
    );
    let child = lab
        .command_in(host, std::path::Path::new("python3"))
        .args(["-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    Ok(Listener(child))
}

#[test]
fn hosts_connect_partitions_cut_and_heal() -> Result<()> {
    let Some(lab) = lab(3)? else { return Ok(()) };
    let _l1 = listen(&lab, 1, 7001)?;
    let _l2 = listen(&lab, 2, 7002)?;
    wait_until(Duration::from_secs(10), "host 0 to reach host 1", || {
        lab.can_connect(0, 1, 7001).then_some(())
    })?;
    wait_until(Duration::from_secs(10), "host 0 to reach host 2", || {
        lab.can_connect(0, 2, 7002).then_some(())
    })?;

    lab.partition(&[&[0, 1], &[2]])?;
    assert!(lab.can_connect(0, 1, 7001), "same side still connects");
    assert!(!lab.can_connect(0, 2, 7002), "the partition cuts 0 from 2");
    assert!(!lab.can_connect(1, 2, 7002), "the partition cuts 1 from 2");

    lab.heal()?;
    assert!(lab.can_connect(0, 2, 7002), "healed");

    lab.set_loss(100)?;
    assert!(!lab.can_connect(0, 1, 7001), "total loss cuts everything");
    lab.set_loss(20)?;
    // With 20 % loss TCP retransmits: a connection still gets through within a few tries.
    wait_until(
        Duration::from_secs(20),
        "a connection through 20 % loss",
        || lab.can_connect(0, 1, 7001).then_some(()),
    )?;
    Ok(())
}
