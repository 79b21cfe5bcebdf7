//! Test hosts in network namespaces this process creates: N hosts on one bridge, with random
//! packet loss and partitions made by nftables rules inside each host. Needs root (CI runs as
//! root); [`NetLab::available`] says whether this machine allows it, so a test can say why it
//! skips.
//!
//! Addresses are 10.203.0.(i+1)/24, private to the lab's own namespaces: no packet leaves
//! them. Daemons run inside a host with `ip netns exec`; the `kith` command line reaches them
//! through the Unix socket in their home, which network namespaces do not separate.
//!
//! Everything the lab made is deleted when it is dropped.

use std::{
    net::Ipv4Addr,
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
};

use anyhow::{Context, Result, bail};

static LABS: AtomicU32 = AtomicU32::new(0);
static PROBES: AtomicU32 = AtomicU32::new(0);

/// A set of hosts on one virtual switch.
#[derive(Debug)]
pub struct NetLab {
    /// Short unique prefix: interface names are limited to 15 bytes.
    prefix: String,
    hub: String,
    hosts: Vec<String>,
}

fn run(program: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Runs `nft -f -` inside namespace `ns` with `script` on stdin.
fn nft(ns: &str, script: &str) -> Result<()> {
    use std::io::Write;
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("cannot run nft (apt-get install nftables)")?;
    child
        .stdin
        .take()
        .context("no stdin")?
        .write_all(script.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "nft in {ns} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl NetLab {
    /// Whether namespaces, veth pairs and nftables can be used here (root, tools present).
    pub fn available() -> bool {
        // Unique per call: tests of one binary run in parallel, and two probes of one name
        // would make each other fail.
        let probe = format!(
            "kp{}x{}",
            std::process::id() % 100_000,
            PROBES.fetch_add(1, Ordering::SeqCst)
        );
        let ok = run("ip", &["netns", "add", &probe]).is_ok()
            && nft(&probe, "table inet probe { }\n").is_ok();
        let _ = run("ip", &["netns", "del", &probe]);
        ok
    }

    /// `hosts` hosts, connected, with no loss.
    pub fn new(hosts: usize) -> Result<NetLab> {
        let lab = LABS.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("k{}x{lab}", std::process::id() % 100_000);
        let hub = format!("{prefix}hub");
        let mut made = NetLab {
            prefix: prefix.clone(),
            hub: hub.clone(),
            hosts: Vec::new(),
        };
        run("ip", &["netns", "add", &hub])?;
        run("ip", &["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        run("ip", &["-n", &hub, "link", "set", "br0", "up"])?;
        for i in 0..hosts {
            let ns = format!("{prefix}h{i}");
            run("ip", &["netns", "add", &ns])?;
            made.hosts.push(ns.clone());
            let outside = format!("{prefix}v{i}");
            run(
                "ip",
                &[
                    "-n", &ns, "link", "add", "eth0", "type", "veth", "peer", "name", &outside,
                    "netns", &hub,
                ],
            )?;
            run(
                "ip",
                &["-n", &hub, "link", "set", &outside, "master", "br0"],
            )?;
            run("ip", &["-n", &hub, "link", "set", &outside, "up"])?;
            let cidr = format!("{}/24", made.addr(i));
            run("ip", &["-n", &ns, "addr", "add", &cidr, "dev", "eth0"])?;
            run("ip", &["-n", &ns, "link", "set", "eth0", "up"])?;
            run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
            nft(
                &ns,
                "table inet kithlab {\n\
                   chain loss { }\n\
                   chain partition { }\n\
                   chain input { type filter hook input priority 0; policy accept;\n\
                     iifname \"lo\" accept\n\
                     jump partition\n\
                     jump loss\n\
                   }\n\
                 }\n",
            )?;
        }
        Ok(made)
    }

    /// The network namespace of host `i`.
    pub fn ns(&self, i: usize) -> &str {
        self.hosts.get(i).map(String::as_str).unwrap_or("")
    }

    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// Host `i`'s address.
    pub fn addr(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 203, 0, u8::try_from(i + 1).unwrap_or(250))
    }

    /// A TCP listen multiaddr on host `i`.
    pub fn listen_addr(&self, i: usize, port: u16) -> String {
        format!("/ip4/{}/tcp/{port}", self.addr(i))
    }

    /// Every host drops `percent` % of the packets it receives, at random.
    pub fn set_loss(&self, percent: u8) -> Result<()> {
        for ns in &self.hosts {
            let mut script = String::from("flush chain inet kithlab loss\n");
            if percent >= 100 {
                script.push_str("add rule inet kithlab loss drop\n");
            } else if percent > 0 {
                script.push_str(&format!(
                    "add rule inet kithlab loss numgen random mod 100 < {percent} drop\n"
                ));
            }
            nft(ns, &script)?;
        }
        Ok(())
    }

    /// Hosts in different groups cannot reach each other; hosts in no group reach nobody.
    pub fn partition(&self, groups: &[&[usize]]) -> Result<()> {
        for (i, ns) in self.hosts.iter().enumerate() {
            let mine = groups.iter().find(|g| g.contains(&i));
            let mut script = String::from("flush chain inet kithlab partition\n");
            for j in 0..self.hosts.len() {
                let together = mine.is_some_and(|g| g.contains(&j));
                if j != i && !together {
                    script.push_str(&format!(
                        "add rule inet kithlab partition ip saddr {} drop\n",
                        self.addr(j)
                    ));
                }
            }
            nft(ns, &script)?;
        }
        Ok(())
    }

    /// Removes every partition (loss stays as set).
    pub fn heal(&self) -> Result<()> {
        for ns in &self.hosts {
            nft(ns, "flush chain inet kithlab partition\n")?;
        }
        Ok(())
    }

    /// Whether host `from` can open a TCP connection to `to`:`port` right now (a probe for
    /// tests of the lab itself).
    pub fn can_connect(&self, from: usize, to: usize, port: u16) -> bool {
        let script = format!("exec 3<>/dev/tcp/{}/{port} && exec 3>&-", self.addr(to));
        Command::new("ip")
            .args([
                "netns",
                "exec",
                self.ns(from),
                "timeout",
                "2",
                "bash",
                "-c",
                &script,
            ])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    /// A command that runs inside host `i`.
    pub fn command_in(&self, i: usize, program: &std::path::Path) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", self.ns(i)]).arg(program);
        command
    }

    /// The lab's name prefix (for log messages).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

impl Drop for NetLab {
    fn drop(&mut self) {
        for ns in self.hosts.iter().chain(std::iter::once(&self.hub)) {
            let _ = run("ip", &["netns", "del", ns]);
        }
    }
}
