//! `kith demo`: a throwaway circle of three members on this machine. Three homes in one
//! temporary directory, three `kith daemon` children listening on 127.0.0.1 only, one watch
//! per member printing what reaches that member, and a scripted minute of posts. At the end,
//! on Ctrl-C and on any error, the children are stopped and the directory removed. The
//! user's own home is never read or written.

use std::{
    collections::HashMap,
    fs::File,
    io::Read as _,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context as _, anyhow, bail};
use kith_ipc::{Client, Event, ItemInfo, Reply, Request};
use tokio::time::Instant;
use zeroize::Zeroizing;

use crate::{Failure, output::one_line};

/// The demo's fictional members, in the order they join.
const NAMES: [&str; 3] = ["Ann", "Bob", "Cy"];
const ANN: usize = 0;
const BOB: usize = 1;
const CY: usize = 2;
/// How long a daemon may take to answer, a join to be admitted, a post to reach everyone.
const WAIT: Duration = Duration::from_secs(30);
/// How long a daemon may take to stop after SIGTERM before it is killed.
const STOP: Duration = Duration::from_secs(10);
/// The scripted steps (the pauses between them share the chosen duration).
const STEPS: u32 = 9;

pub fn run(fast: bool, seconds: Option<u64>) -> Result<(), Failure> {
    let length = Duration::from_secs(seconds.unwrap_or(if fast { 4 } else { 60 }));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let started = std::time::Instant::now();
    let interrupted = runtime.block_on(async {
        // Signal handlers first: from here on Ctrl-C means "clean up", not "die at once".
        let signals = stop_signal()?;
        let mut demo = Demo::new()?;
        let result = tokio::select! {
            result = script(&mut demo, length) => result.map(|()| false),
            () = signals => Ok(true),
        };
        let cleaned = demo.cleanup().await;
        let interrupted = result?;
        cleaned?;
        anyhow::Ok(interrupted)
    })?;
    let took = humantime::format_duration(Duration::from_secs(started.elapsed().as_secs()));
    if interrupted {
        eprintln!("kith: demo stopped after {took}; its nodes are stopped and its files removed");
        std::process::exit(130);
    }
    eprintln!("kith: demo finished in {took}; its nodes are stopped and its files removed");
    Ok(())
}

/// Resolves on SIGINT, SIGTERM or SIGHUP.
fn stop_signal() -> anyhow::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt()).context("cannot watch for Ctrl-C")?;
    let mut term = signal(SignalKind::terminate()).context("cannot watch for SIGTERM")?;
    let mut hup = signal(SignalKind::hangup()).context("cannot watch for SIGHUP")?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
            _ = hup.recv() => {}
        }
    })
}

/// What each member's watch has seen so far: member index → item id → latest state.
type Seen = Arc<Mutex<HashMap<usize, HashMap<String, ItemInfo>>>>;

/// Everything the demo made; [`Demo::cleanup`] (or, after a panic, `Drop`) removes it.
struct Demo {
    dir: Option<tempfile::TempDir>,
    daemons: Vec<Daemon>,
    watchers: Vec<tokio::task::JoinHandle<()>>,
    seen: Seen,
}

struct Daemon {
    name: &'static str,
    home: PathBuf,
    log: PathBuf,
    child: Child,
}

impl Demo {
    fn new() -> anyhow::Result<Demo> {
        // A Unix socket path holds about 100 bytes: under a long TMPDIR, use /tmp.
        let mut base = std::env::temp_dir();
        if base.as_os_str().len() > 60 {
            base = PathBuf::from("/tmp");
        }
        let dir = tempfile::Builder::new()
            .prefix("kith-demo-")
            .tempdir_in(&base)
            .context("cannot create a temporary directory")?;
        eprintln!(
            "kith: demo files in {} (removed at the end)",
            dir.path().display()
        );
        Ok(Demo {
            dir: Some(dir),
            daemons: Vec::new(),
            watchers: Vec::new(),
            seen: Seen::default(),
        })
    }

    fn dir(&self) -> anyhow::Result<&Path> {
        self.dir
            .as_ref()
            .map(tempfile::TempDir::path)
            .ok_or_else(|| anyhow!("the demo directory is gone"))
    }

    /// Creates `name`'s home and starts its daemon (without waiting for it).
    fn start(&mut self, name: &'static str, passphrase: &str) -> anyhow::Result<()> {
        let lower = name.to_lowercase();
        let home = self.dir()?.join(&lower);
        let log = self.dir()?.join(format!("{lower}.log"));
        kith_daemon::init_home(&home, name, passphrase.as_bytes())
            .with_context(|| format!("cannot create {name}'s identity"))?;
        let exe = std::env::current_exe().context("cannot find the kith executable")?;
        let log_file = File::create(&log).context("cannot create a daemon log")?;
        let child = Command::new(exe)
            .args(["daemon", "--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0"])
            .env("KITH_HOME", &home)
            .env("KITH_PASSPHRASE", passphrase)
            .env("KITH_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            // Its own process group: Ctrl-C reaches only the demo, which stops the daemons
            // in order instead of racing them.
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start {name}'s daemon"))?;
        self.daemons.push(Daemon {
            name,
            home,
            log,
            child,
        });
        Ok(())
    }

    /// Waits until daemon `index` answers a status request.
    async fn ready(&mut self, index: usize) -> anyhow::Result<()> {
        let daemon = self
            .daemons
            .get_mut(index)
            .ok_or_else(|| anyhow!("no daemon {index}"))?;
        let deadline = Instant::now() + WAIT;
        let mut pause = Duration::from_millis(10);
        loop {
            if let Ok(Some(status)) = daemon.child.try_wait() {
                bail!(
                    "{}'s daemon stopped during startup ({status}): {}",
                    daemon.name,
                    last_line(&daemon.log)
                );
            }
            if let Ok(mut client) = Client::connect(&daemon.home).await
                && let Ok(Reply::Status(_)) = client.request(&Request::Status).await
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "{}'s daemon did not answer within {} s: {}",
                    daemon.name,
                    WAIT.as_secs(),
                    last_line(&daemon.log)
                );
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    async fn client(&self, index: usize) -> anyhow::Result<Client> {
        let daemon = self
            .daemons
            .get(index)
            .ok_or_else(|| anyhow!("no daemon {index}"))?;
        Client::connect(&daemon.home)
            .await
            .with_context(|| format!("cannot reach {}'s daemon", daemon.name))
    }

    /// Opens member `index`'s watch and prints what reaches that member from the others.
    async fn watch(&mut self, index: usize) -> anyhow::Result<()> {
        let mut client = self.client(index).await?;
        let reply = timed(client.request(&Request::Watch { circle: None })).await?;
        if !matches!(reply, Reply::Watching { .. }) {
            bail!("unexpected answer to a watch: {reply:?}");
        }
        let viewer = NAMES[index];
        let seen = self.seen.clone();
        self.watchers.push(tokio::spawn(async move {
            while let Ok(Some(event)) = client.next_event().await {
                match event {
                    Event::Item { item } => {
                        let Ok(mut seen) = seen.lock() else { return };
                        let known = seen.entry(index).or_default();
                        for (actor, line) in changes(known.get(&item.id), &item) {
                            if actor != viewer {
                                println!("    [{viewer} sees] {line}");
                            }
                        }
                        known.insert(item.id.clone(), *item);
                    }
                    Event::Lagged { missed } => {
                        println!("    [{viewer} sees] ({missed} updates skipped)");
                    }
                }
            }
        }));
        Ok(())
    }

    /// Waits until every member's watch shows item `id` in a state where `ready` holds.
    async fn everyone_sees(&self, id: &str, ready: impl Fn(&ItemInfo) -> bool) -> bool {
        let deadline = Instant::now() + WAIT;
        loop {
            let all = self.seen.lock().is_ok_and(|seen| {
                (0..NAMES.len()).all(|member| {
                    seen.get(&member)
                        .and_then(|items| items.get(id))
                        .is_some_and(&ready)
                })
            });
            if all {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the watches, then the daemons (SIGTERM, then SIGKILL after [`STOP`]), then
    /// removes the directory.
    async fn cleanup(&mut self) -> anyhow::Result<()> {
        for watcher in self.watchers.drain(..) {
            watcher.abort();
            let _ = watcher.await;
        }
        self.stop_daemons();
        if let Some(dir) = self.dir.take() {
            let path = dir.path().to_path_buf();
            dir.close()
                .with_context(|| format!("cannot remove {}", path.display()))?;
        }
        Ok(())
    }

    fn stop_daemons(&mut self) {
        for daemon in &mut self.daemons {
            if matches!(daemon.child.try_wait(), Ok(None)) {
                let _ = Command::new("kill")
                    .args(["-TERM", &daemon.child.id().to_string()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
        let deadline = std::time::Instant::now() + STOP;
        for mut daemon in self.daemons.drain(..) {
            loop {
                match daemon.child.try_wait() {
                    Ok(None) if std::time::Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Ok(None) => {
                        let _ = daemon.child.kill();
                        let _ = daemon.child.wait();
                        break;
                    }
                    Ok(Some(_)) | Err(_) => break,
                }
            }
        }
    }
}

impl Drop for Demo {
    /// Only reached with something left after a panic: the same cleanup, without waiting
    /// for the watch tasks.
    fn drop(&mut self) {
        for watcher in &self.watchers {
            watcher.abort();
        }
        self.stop_daemons();
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
    }
}

/// The demo itself: three members, a circle, then the scripted posts.
async fn script(demo: &mut Demo, length: Duration) -> anyhow::Result<()> {
    let passphrase = throwaway_passphrase()?;
    for name in NAMES {
        demo.start(name, &passphrase)?;
    }
    for index in 0..NAMES.len() {
        demo.ready(index).await?;
    }
    println!("Three members, each with a node of their own on this machine: Ann, Bob and Cy.");

    let mut clients = vec![demo.client(ANN).await?];
    expect_created(timed(clients[ANN].request(&Request::CircleCreate {
        name: "Demo circle".into(),
    })))
    .await?;
    println!("Ann creates \"Demo circle\".");
    demo.watch(ANN).await?;
    for joiner in [BOB, CY] {
        let name = NAMES[joiner];
        let reply = timed(clients[ANN].request(&Request::Invite {
            circle: None,
            ttl_secs: 600,
            uses: 1,
        }))
        .await?;
        let Reply::Invite { code, .. } = reply else {
            bail!("unexpected answer to an invite: {reply:?}");
        };
        println!("Ann invites {name} with a one-time code.");
        let mut client = demo.client(joiner).await?;
        expect_created(timed(client.request(&Request::Join { code })))
            .await
            .with_context(|| format!("{name} could not join"))?;
        println!("{name} joins the circle.");
        demo.watch(joiner).await?;
        clients.push(client);
    }

    let pause = length / STEPS;
    let mut step = Step {
        demo,
        clients,
        pause,
    };
    step.check_in(ANN, "okay", "slept badly").await?;
    step.check_in(BOB, "good", "finally finished the move")
        .await?;
    step.check_in(CY, "low", "a hard week").await?;
    let ride = step
        .post(
            CY,
            "Cy asks for a ride: to the clinic on Thursday".into(),
            Request::Ask {
                circle: None,
                kind: "ride".into(),
                title: "To the clinic on Thursday".into(),
                details: Some("the appointment is at 10".into()),
                needed_by: None,
                urgent: false,
                window_start: None,
                horizon: Some("this week".into()),
                helpers: Some(1),
                slots: Vec::new(),
                to: Vec::new(),
            },
            |_| true,
        )
        .await?;
    step.post(
        BOB,
        "Bob offers to help with Cy's ride.".into(),
        Request::Claim {
            item: ride.clone(),
            slot: None,
            message: Some("I have the car that day".into()),
        },
        |item| claimed_by(item, "Bob"),
    )
    .await?;
    let text = "I'll pick you up at 9:30";
    step.post(
        BOB,
        format!("Bob replies to Cy: {text}"),
        Request::Reply {
            item: ride.clone(),
            text: text.into(),
        },
        |item| item.replies.iter().any(|r| r.text == text),
    )
    .await?;
    let text = "thinking of you, call if you want company";
    step.post(
        ANN,
        format!("Ann replies to Cy: {text}"),
        Request::Reply {
            item: ride.clone(),
            text: text.into(),
        },
        |item| item.replies.iter().any(|r| r.text == text),
    )
    .await?;
    step.post(
        CY,
        "Cy marks the ride done.".into(),
        Request::Done { item: ride.clone() },
        |item| item.status.as_deref() == Some("fulfilled"),
    )
    .await?;
    step.post(
        CY,
        "Cy thanks Bob.".into(),
        Request::Thank {
            item: ride,
            member: None,
            note: Some("you made it easy".into()),
        },
        |item| !item.thanks.is_empty(),
    )
    .await?;
    step.check_in(CY, "good", "thank you both").await?;
    println!("That is the demo: every post reached every member, end-to-end encrypted.");
    Ok(())
}

/// One scripted step at a time: print it, make it, wait until everyone has it, pause.
struct Step<'a> {
    demo: &'a Demo,
    clients: Vec<Client>,
    pause: Duration,
}

impl Step<'_> {
    async fn check_in(&mut self, member: usize, mood: &str, note: &str) -> anyhow::Result<String> {
        self.post(
            member,
            format!("{} checks in: {mood} — {note}", NAMES[member]),
            Request::CheckIn {
                circle: None,
                mood: mood.into(),
                note: Some(note.into()),
                help: None,
                to: Vec::new(),
            },
            |_| true,
        )
        .await
    }

    /// Makes `request` as `member`; returns the item id.
    async fn post(
        &mut self,
        member: usize,
        what: String,
        request: Request,
        arrived: impl Fn(&ItemInfo) -> bool,
    ) -> anyhow::Result<String> {
        println!("{what}");
        let client = self
            .clients
            .get_mut(member)
            .ok_or_else(|| anyhow!("no client for member {member}"))?;
        let id = match timed(client.request(&request)).await? {
            Reply::Created { id } | Reply::Done { id } => id,
            other => bail!(
                "unexpected answer from {}'s daemon: {other:?}",
                NAMES[member]
            ),
        };
        if !self.demo.everyone_sees(&id, arrived).await {
            bail!(
                "a post did not reach every member within {} s",
                WAIT.as_secs()
            );
        }
        tokio::time::sleep(self.pause).await;
        Ok(id)
    }
}

/// Awaits a daemon's answer for at most [`WAIT`].
async fn timed(
    request: impl Future<Output = Result<Reply, kith_ipc::ClientError>>,
) -> anyhow::Result<Reply> {
    match tokio::time::timeout(WAIT, request).await {
        Ok(reply) => Ok(reply?),
        Err(_) => bail!("a daemon did not answer within {} s", WAIT.as_secs()),
    }
}

async fn expect_created(reply: impl Future<Output = anyhow::Result<Reply>>) -> anyhow::Result<()> {
    match reply.await? {
        Reply::Created { .. } => Ok(()),
        other => bail!("unexpected answer from a daemon: {other:?}"),
    }
}

fn claimed_by(item: &ItemInfo, name: &str) -> bool {
    item.claimed_by
        .as_ref()
        .is_some_and(|c| c.iter().any(|a| a.name == name))
}

/// What changed between two states of an item, as (who did it, a line to print).
fn changes(before: Option<&ItemInfo>, after: &ItemInfo) -> Vec<(String, String)> {
    let author = one_line(&after.author.name);
    let what = if after.kind == "checkin" {
        format!("{author}'s check-in")
    } else {
        format!(
            "{author}'s request \"{}\"",
            one_line(after.title.as_deref().unwrap_or(""))
        )
    };
    let title = format!(
        "the request \"{}\"",
        one_line(after.title.as_deref().unwrap_or(""))
    );
    let mut lines = Vec::new();
    if before.is_none() {
        let line = if after.kind == "checkin" {
            let note = after
                .note
                .as_deref()
                .map(|n| format!(" — {}", one_line(n)))
                .unwrap_or_default();
            format!(
                "{author} checked in: {}{note}",
                after.mood_word.as_deref().unwrap_or("?")
            )
        } else {
            format!(
                "{author} asks for help ({}): {}{}",
                after.category.as_deref().unwrap_or("other"),
                one_line(after.title.as_deref().unwrap_or("")),
                if after.urgent == Some(true) {
                    " — URGENT"
                } else {
                    ""
                }
            )
        };
        lines.push((after.author.name.clone(), line));
    }
    let claims_before: Vec<&str> = before
        .and_then(|b| b.claimed_by.as_ref())
        .map(|c| c.iter().map(|a| a.id.as_str()).collect())
        .unwrap_or_default();
    let claims_after = after.claimed_by.as_deref().unwrap_or_default();
    for helper in claims_after {
        if !claims_before.contains(&helper.id.as_str()) {
            let name = one_line(&helper.name);
            lines.push((
                helper.name.clone(),
                format!("{name} offers to help with {what}"),
            ));
        }
    }
    if let Some(before) = before {
        for helper in before.claimed_by.as_deref().unwrap_or_default() {
            if !claims_after.iter().any(|a| a.id == helper.id) {
                let name = one_line(&helper.name);
                lines.push((helper.name.clone(), format!("{name} withdrew from {what}")));
            }
        }
    }
    for reply in &after.replies {
        let known = before.is_some_and(|b| b.replies.iter().any(|r| r.id == reply.id));
        if !known {
            lines.push((
                reply.author.name.clone(),
                format!(
                    "{} replied to {what}: {}",
                    one_line(&reply.author.name),
                    one_line(&reply.text)
                ),
            ));
        }
    }
    let status_before = before.and_then(|b| b.status.as_deref());
    let status = after.status.as_deref();
    if status != status_before {
        match status {
            Some("fulfilled") => lines.push((
                after.author.name.clone(),
                format!("{author} marked {title} fulfilled"),
            )),
            Some("cancelled") => lines.push((
                after.author.name.clone(),
                format!("{author} cancelled {title}"),
            )),
            _ => {}
        }
    }
    lines
}

/// 32 random bytes from the system, hex-encoded: it only has to outlive the demo.
fn throwaway_passphrase() -> anyhow::Result<Zeroizing<String>> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(bytes.as_mut()))
        .context("cannot read random bytes for a throwaway passphrase")?;
    let mut text = Zeroizing::new(String::with_capacity(64));
    for byte in bytes.iter() {
        text.push_str(&format!("{byte:02x}"));
    }
    Ok(text)
}

/// The last line of a daemon's log, to explain a failed start.
fn last_line(log: &Path) -> String {
    std::fs::read_to_string(log)
        .ok()
        .and_then(|text| text.lines().last().map(str::to_string))
        .map(|line| one_line(&line))
        .unwrap_or_else(|| "no log".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kith_ipc::{AuthorInfo, ReplyInfo};

    fn person(name: &str) -> AuthorInfo {
        AuthorInfo {
            id: format!("id-{name}"),
            name: name.into(),
        }
    }

    fn request() -> ItemInfo {
        ItemInfo {
            id: "item".into(),
            circle: "circle".into(),
            kind: "request".into(),
            author: person("Cy"),
            created_at: "2026-11-22T10:00:00Z".into(),
            updated_at: "2026-11-22T10:00:00Z".into(),
            mood: None,
            mood_word: None,
            note: None,
            title: Some("A ride".into()),
            details: None,
            category: Some("ride".into()),
            needed_by: None,
            urgent: Some(false),
            status: Some("open".into()),
            claimed_by: Some(Vec::new()),
            replies: Vec::new(),
            ..ItemInfo::default()
        }
    }

    #[test]
    fn changes_name_who_did_what() {
        let first = request();
        let lines = changes(None, &first);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0].0, "Cy");
        assert_eq!(lines[0].1, "Cy asks for help (ride): A ride");

        let mut second = first.clone();
        second.status = Some("claimed".into());
        second.claimed_by = Some(vec![person("Bob")]);
        second.replies.push(ReplyInfo {
            id: "r1".into(),
            author: person("Ann"),
            text: "on my way\n".into(),
            created_at: "2026-11-22T10:01:00Z".into(),
        });
        let lines = changes(Some(&first), &second);
        assert_eq!(
            lines,
            vec![
                (
                    "Bob".to_string(),
                    "Bob offers to help with Cy's request \"A ride\"".to_string()
                ),
                (
                    "Ann".to_string(),
                    "Ann replied to Cy's request \"A ride\": on my way ".to_string()
                ),
            ]
        );

        let mut third = second.clone();
        third.status = Some("fulfilled".into());
        let lines = changes(Some(&second), &third);
        assert_eq!(
            lines,
            vec![(
                "Cy".to_string(),
                "Cy marked the request \"A ride\" fulfilled".to_string()
            )]
        );
        // A first sight of an item that already changed shows all of it.
        assert_eq!(changes(None, &third).len(), 4);
    }

    #[test]
    fn passphrases_are_fresh() {
        let a = throwaway_passphrase().unwrap();
        let b = throwaway_passphrase().unwrap();
        assert_eq!(a.len(), 64);
        assert_ne!(*a, *b);
    }
}
