//! Dev-only helpers for end-to-end tests: a node in its own temporary home, the real `kith`
//! binary, real daemon processes, and waiting on conditions with a deadline (never a fixed
//! sleep).
//!
//! ```no_run
//! let mut ann = kith_testkit::Node::init("ann").unwrap();
//! ann.start().unwrap();
//! let circle = ann.ok(&["circle", "create", "Family"]).unwrap();
//! let id = ann.ok(&["checkin", "--mood", "okay"]).unwrap();
//! let feed = ann.json(&["feed"]).unwrap();
//! assert_eq!(feed[0]["id"], id.as_str());
//! ann.stop().unwrap();
//! # let _ = circle;
//! ```
#![forbid(unsafe_code)]

pub mod netlab;

pub use netlab::NetLab;

use std::{
    ffi::{OsStr, OsString},
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Output, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

/// The passphrase every test node uses.
pub const PASSPHRASE: &str = "correct horse battery staple";

/// How long to wait for a daemon to come up or go down.
pub const STARTUP: Duration = Duration::from_secs(30);

/// The `kith` binary: `KITH_BIN` if set, else the one cargo built next to the test binary.
pub fn kith_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("KITH_BIN") {
        return PathBuf::from(path);
    }
    // target/<profile>/deps/<test-binary> → target/<profile>/kith
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join("kith")
}

/// Polls `check` until it returns `Some`, or fails after `timeout` naming `what`.
pub fn wait_until<T>(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(value) = check() {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// The value at fraction `p` (0.0..=1.0) of `values` once sorted; 0 when empty.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).copied().unwrap_or(0.0)
}

/// A circle of real daemons on loopback: the first name founds `circle`, each other name
/// joins through an invite from the founder.
pub fn circle_of(circle: &str, names: &[&str]) -> Result<Vec<Node>> {
    let mut nodes: Vec<Node> = Vec::new();
    for name in names {
        let node = Node::networked(name)?;
        match nodes.first() {
            None => {
                node.ok(&["circle", "create", circle])?;
            }
            Some(founder) => {
                let code = founder.invite(&[])?;
                node.join(&code)?;
            }
        }
        nodes.push(node);
    }
    Ok(nodes)
}

/// One Kith node: a temporary home and, once started, a `kith daemon` process.
#[derive(Debug)]
pub struct Node {
    pub name: String,
    home: tempfile::TempDir,
    /// Daemon logs live outside the home so that scans of the home see only the store.
    logs: tempfile::TempDir,
    daemon: Option<Child>,
    /// Extra environment for the daemon process (see [`Node::set_daemon_env`]).
    daemon_env: Vec<(OsString, OsString)>,
}

impl Node {
    /// A new home with an identity (`kith init --name NAME`).
    pub fn init(name: &str) -> Result<Node> {
        let node = Node::uninitialised(name)?;
        node.ok_with_passphrase(&["init", "--name", name])?;
        Ok(node)
    }

    /// A new identity whose daemon runs networked on loopback ([`Node::start_networked`]).
    pub fn networked(name: &str) -> Result<Node> {
        let mut node = Node::init(name)?;
        node.start_networked()?;
        Ok(node)
    }

    /// A new, empty home.
    pub fn uninitialised(name: &str) -> Result<Node> {
        Ok(Node {
            name: name.to_string(),
            home: tempfile::Builder::new().prefix("kith-").tempdir()?,
            logs: tempfile::Builder::new().prefix("kith-log-").tempdir()?,
            daemon: None,
            daemon_env: Vec::new(),
        })
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.logs.path().join("daemon.log")).unwrap_or_default()
    }

    /// Sets `key=value` in the environment of this node's daemon from its next start on
    /// (e.g. `KITH_NOTIFY_FILE`); other `kith` commands do not get it.
    pub fn set_daemon_env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) {
        let key = key.as_ref().to_os_string();
        self.daemon_env.retain(|(k, _)| *k != key);
        self.daemon_env.push((key, value.as_ref().to_os_string()));
    }

    /// A `kith` command for this node, without a passphrase in its environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(kith_bin());
        command
            .args(args)
            .env("KITH_HOME", self.home())
            .env_remove("KITH_PASSPHRASE")
            .stdin(Stdio::null());
        command
    }

    /// Runs `kith ARGS` and returns what it did.
    pub fn run(&self, args: &[&str]) -> Result<Output> {
        self.command(args)
            .output()
            .with_context(|| format!("cannot run {}", kith_bin().display()))
    }

    /// Runs `kith ARGS` with the passphrase in the environment.
    pub fn run_with_passphrase(&self, args: &[&str]) -> Result<Output> {
        Ok(self
            .command(args)
            .env("KITH_PASSPHRASE", PASSPHRASE)
            .output()?)
    }

    /// Runs `kith ARGS`, requires exit 0, returns stdout trimmed.
    pub fn ok(&self, args: &[&str]) -> Result<String> {
        expect_success(args, self.run(args)?)
    }

    fn ok_with_passphrase(&self, args: &[&str]) -> Result<String> {
        expect_success(args, self.run_with_passphrase(args)?)
    }

    /// Runs `kith ARGS --json` and parses stdout.
    pub fn json(&self, args: &[&str]) -> Result<Value> {
        let mut all = args.to_vec();
        all.push("--json");
        let text = self.ok(&all)?;
        serde_json::from_str(&text).with_context(|| format!("kith {all:?} printed {text:?}"))
    }

    /// Starts `kith daemon` and waits until it answers `kith status`.
    pub fn start(&mut self) -> Result<()> {
        self.start_with(&[])
    }

    /// Like [`Node::start`], with extra daemon arguments.
    pub fn start_with(&mut self, extra: &[&str]) -> Result<()> {
        let command = self.command(&[]);
        self.spawn_daemon(command, extra)
    }

    /// Starts the daemon listening on a free loopback port, without mDNS (tests must not
    /// find each other's daemons by accident).
    pub fn start_networked(&mut self) -> Result<()> {
        self.start_with(&["--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0"])
    }

    /// A new invite code of this node's only circle.
    pub fn invite(&self, extra: &[&str]) -> Result<String> {
        let mut args = vec!["invite"];
        args.extend_from_slice(extra);
        self.ok(&args)
    }

    /// `kith join CODE` on this node; returns the circle id.
    pub fn join(&self, code: &str) -> Result<String> {
        self.ok(&["join", code])
    }

    /// Item ids in this node's feed (empty when it cannot be read).
    pub fn feed_ids(&self) -> Vec<String> {
        self.json(&["feed"])
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|i| i["id"].as_str().map(str::to_string))
            .collect()
    }

    /// The item `id` in this node's feed, if it is there.
    pub fn item(&self, id: &str) -> Option<Value> {
        self.json(&["feed"])
            .ok()?
            .as_array()?
            .iter()
            .find(|i| i["id"] == id)
            .cloned()
    }

    /// Starts the daemon inside host `host` of `lab`, listening on its address at `port`.
    pub fn start_in(&mut self, lab: &NetLab, host: usize, port: u16, extra: &[&str]) -> Result<()> {
        let mut command = lab.command_in(host, &kith_bin());
        command
            .env("KITH_HOME", self.home())
            .env_remove("KITH_PASSPHRASE")
            .stdin(Stdio::null());
        let listen = lab.listen_addr(host, port);
        let mut args = vec!["--listen", listen.as_str()];
        args.extend_from_slice(extra);
        self.spawn_daemon(command, &args)
    }

    /// Spawns `command daemon ARGS` and waits until the daemon answers `kith status`.
    fn spawn_daemon(&mut self, mut command: Command, extra: &[&str]) -> Result<()> {
        if self.daemon.is_some() {
            bail!("{} already runs a daemon", self.name);
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.path().join("daemon.log"))?;
        let child = command
            .arg("daemon")
            .args(extra)
            .env("KITH_PASSPHRASE", PASSPHRASE)
            .env("KITH_LOG", "info")
            .envs(self.daemon_env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        self.daemon = Some(child);
        let name = self.name.clone();
        wait_until(STARTUP, &format!("{name}'s daemon to answer"), || {
            if let Some(child) = self.daemon.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Some(Err(anyhow!(
                    "{name}'s daemon exited with {status} during startup: {}",
                    self.log()
                )));
            }
            let status = self.run(&["status"]).ok()?;
            status.status.success().then_some(Ok(()))
        })?
    }

    /// Whether the daemon process is still alive.
    pub fn is_running(&mut self) -> bool {
        match self.daemon.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The daemon's process id.
    pub fn pid(&self) -> Option<u32> {
        self.daemon.as_ref().map(Child::id)
    }

    /// Sends a signal with the system `kill` command.
    pub fn signal(&self, signal: &str) -> Result<()> {
        let pid = self
            .pid()
            .ok_or_else(|| anyhow!("{} runs no daemon", self.name))?;
        let status = Command::new("kill")
            .args([format!("-{signal}"), pid.to_string()])
            .status()?;
        if !status.success() {
            bail!("kill -{signal} {pid} failed");
        }
        Ok(())
    }

    /// SIGTERM, then waits for the daemon to exit; returns its exit status.
    pub fn stop(&mut self) -> Result<ExitStatus> {
        self.signal("TERM")?;
        self.wait_exit()
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self) -> Result<()> {
        self.signal("KILL")?;
        self.wait_exit()?;
        Ok(())
    }

    /// Waits for the daemon process to exit by itself.
    pub fn wait_exit(&mut self) -> Result<ExitStatus> {
        let mut child = self
            .daemon
            .take()
            .ok_or_else(|| anyhow!("{} runs no daemon", self.name))?;
        let name = self.name.clone();
        wait_until(STARTUP, &format!("{name}'s daemon to exit"), || {
            child.try_wait().ok().flatten()
        })
    }

    /// Starts `kith watch --json` and returns its lines as they come.
    pub fn watch(&self, args: &[&str]) -> Result<Watcher> {
        let mut all = vec!["watch"];
        all.extend_from_slice(args);
        all.push("--json");
        let mut child = self
            .command(&all)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        Ok(Watcher { child, lines: rx })
    }

    /// A second node with a copy of this (stopped) node's home: the same identity, as an
    /// attacker with a backup of it would have.
    pub fn copy_home(&self, name: &str) -> Result<Node> {
        if self.daemon.is_some() {
            bail!("{}: stop the daemon before copying its home", self.name);
        }
        let copy = Node::uninitialised(name)?;
        for (path, bytes) in self.home_files()? {
            let relative = path.strip_prefix(self.home())?;
            let target = copy.home().join(relative);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&target, bytes)?;
        }
        Ok(copy)
    }

    /// Every file under the home, with its bytes.
    pub fn home_files(&self) -> Result<Vec<(PathBuf, Vec<u8>)>> {
        let mut files = Vec::new();
        let mut dirs = vec![self.home().to_path_buf()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir)? {
                let entry = entry?;
                let kind = entry.file_type()?;
                if kind.is_dir() {
                    dirs.push(entry.path());
                } else if kind.is_file() {
                    files.push((entry.path(), std::fs::read(entry.path())?));
                }
            }
        }
        Ok(files)
    }

    /// Files under the home that contain `needle` (as `grep -r` would find it).
    pub fn grep_home(&self, needle: &[u8]) -> Result<Vec<PathBuf>> {
        Ok(self
            .home_files()?
            .into_iter()
            .filter(|(_, bytes)| {
                !needle.is_empty() && bytes.windows(needle.len()).any(|w| w == needle)
            })
            .map(|(path, _)| path)
            .collect())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn expect_success(args: &[&str], output: Output) -> Result<String> {
    if !output.status.success() {
        bail!(
            "kith {args:?} exited with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// A running `kith watch --json`.
#[derive(Debug)]
pub struct Watcher {
    child: Child,
    /// Each line with the moment it was read (benchmarks time propagation by it).
    lines: mpsc::Receiver<(Instant, String)>,
}

impl Watcher {
    /// The next line parsed as JSON, within `timeout`.
    pub fn next(&self, timeout: Duration) -> Result<Value> {
        self.next_timed(timeout).map(|(_, value)| value)
    }

    /// The next line parsed as JSON, with when it was read, within `timeout`.
    pub fn next_timed(&self, timeout: Duration) -> Result<(Instant, Value)> {
        let (at, line) = self
            .lines
            .recv_timeout(timeout)
            .map_err(|e| anyhow!("no watch line within {timeout:?}: {e}"))?;
        let value =
            serde_json::from_str(&line).with_context(|| format!("watch printed {line:?}"))?;
        Ok((at, value))
    }

    /// When the line for item `id` was read, within `timeout` overall.
    pub fn seen_at(&self, id: &str, timeout: Duration) -> Result<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (at, value) = self
                .next_timed(left)
                .with_context(|| format!("waiting for item {id}"))?;
            if value["id"] == id {
                return Ok(at);
            }
        }
    }

    /// Reads lines until one satisfies `matches`, within `timeout` overall.
    pub fn next_matching(
        &self,
        timeout: Duration,
        mut matches: impl FnMut(&Value) -> bool,
    ) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let value = self.next(left)?;
            if matches(&value) {
                return Ok(value);
            }
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
