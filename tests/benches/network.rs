//! Network benchmarks with real `kith daemon` processes (release build) on 127.0.0.1: how
//! fast a post reaches another member, how fast it reaches a 20-member circle, how long and
//! how many bytes a member who was offline needs to catch up on 10,000 entries, and what an
//! idle daemon holding 10,000 entries costs. Run with `scripts/bench` (builds the release
//! binary first; `--quick` for a short run, `--only NAME` for one part: propagation,
//! circle20, catchup); results go in docs/performance.md.
//!
//! Bytes on the wire are read from the kernel's per-socket TCP counters (`ss -tinp`:
//! `bytes_received` and `bytes_acked` of every established TCP socket of the daemon's
//! process): TCP payload, so Noise encryption, yamux framing and libp2p's own traffic
//! (identify, ping) are included; IP and TCP headers are not.

use std::{
    path::{Path, PathBuf},
    process::Command,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail};
use automerge::sync::SyncDoc;
use kith_core::{Circle, ItemId, Mood, Payload};
use kith_crypto::{CircleId, DeviceIdentity, Envelope, EpochKey};
use kith_ipc::{Client, Reply, Request};
use kith_testkit::{circle_of, percentile, wait_until};

mod common;
use common::{NOTE, post_concurrently};

const WAIT: Duration = Duration::from_secs(60);

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1).cloned());
    let wants = |name: &str| only.as_deref().is_none_or(|o| o == name);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;

    println!(
        "kith network benchmark{}",
        if quick { " (--quick)" } else { "" }
    );
    if wants("propagation") {
        propagation(if quick { 50 } else { 200 })?;
    }
    if wants("circle20") {
        circle20(&runtime, 20, if quick { 3 } else { 10 })?;
    }
    if wants("catchup") {
        let entries = if quick { 2_000 } else { 10_000 };
        let idle = Duration::from_secs(if quick { 20 } else { 60 });
        catchup_and_idle(&runtime, entries, idle)?;
        automerge_sync(entries)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 1. Propagation between two daemons

fn propagation(posts: usize) -> Result<()> {
    println!("\n1. propagation A → B ({posts} check-ins, one at a time)");
    let nodes = circle_of("Bench", &["Ann", "Bob"])?;
    let (ann, bob) = (&nodes[0], &nodes[1]);
    let watcher = bob.watch(&[])?;
    // The watch is registered once `kith watch` has its answer: post until a line arrives.
    wait_until(WAIT, "a first watch line at Bob", || {
        let id = ann.ok(&["checkin", "--mood", "okay"]).ok()?;
        watcher.seen_at(&id, Duration::from_secs(3)).ok()
    })?;

    let mut latencies = Vec::with_capacity(posts);
    let mut cli_times = Vec::with_capacity(posts);
    for _ in 0..posts {
        let started = Instant::now();
        let output = ann
            .command(&["checkin", "--mood", "okay", "--note", NOTE])
            .output()?;
        cli_times.push(ms(started.elapsed()));
        if !output.status.success() {
            bail!(
                "kith checkin failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let id = String::from_utf8_lossy(&output.stdout).trim().to_string();
        let seen = watcher.seen_at(&id, Duration::from_secs(10))?;
        latencies.push(ms(seen.duration_since(started)));
    }
    println!(
        "   `kith checkin` on A spawned → line in B's `kith watch --json`: p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms  (targets p50 ≤ 10, p95 ≤ 30)",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.95),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0),
    );
    println!(
        "   for comparison, the `kith checkin` process itself (spawn → exit): p50 {:.1} ms, p95 {:.1} ms",
        percentile(&cli_times, 0.50),
        percentile(&cli_times, 0.95),
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 2. A 20-daemon circle

fn circle20(runtime: &tokio::runtime::Runtime, size: usize, rounds: usize) -> Result<()> {
    println!("\n2. a {size}-daemon circle: one post reaching all {size} ({rounds} rounds)");
    let formed = Instant::now();
    let names: Vec<String> = (0..size).map(|i| format!("M{i:02}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let nodes = circle_of("Bench", &refs)?;
    println!(
        "   formed in {:.1} s (each member: kith init + daemon start, argon2 twice; one invite at a time)",
        formed.elapsed().as_secs_f64()
    );
    let homes: Vec<PathBuf> = nodes.iter().map(|n| n.home().to_path_buf()).collect();

    // Settle: a warm-up post from the founder must reach everyone (connections come up as
    // rosters with addresses spread).
    let settled = Instant::now();
    let base = runtime.block_on(item_counts(&homes))?;
    nodes[0].ok(&["checkin", "--mood", "okay", "--note", "warm-up"])?;
    let target: Vec<usize> = base.iter().map(|b| b + 1).collect();
    runtime.block_on(wait_counts(&homes, &target, WAIT))?;
    println!(
        "   warm-up post reached all {size} {:.2} s after the circle was formed",
        settled.elapsed().as_secs_f64()
    );

    let mut all = Vec::new();
    let mut medians = Vec::new();
    for round in 0..rounds {
        // Posts come from different members in turn: the founder, then others.
        let poster = (round * 7) % size;
        let base = runtime.block_on(item_counts(&homes))?;
        let target: Vec<usize> = base.iter().map(|b| b + 1).collect();
        let started = Instant::now();
        nodes[poster].ok(&["checkin", "--mood", "okay", "--note", NOTE])?;
        let reached = runtime.block_on(wait_counts(&homes, &target, WAIT))?;
        let times: Vec<f64> = reached
            .iter()
            .map(|t| ms(t.duration_since(started)))
            .collect();
        let last = times.iter().copied().fold(0.0, f64::max);
        medians.push(percentile(&times, 0.5));
        println!(
            "   round {round:>2} (poster {}): all {size} after {last:.0} ms (median member {:.0} ms)",
            names[poster],
            percentile(&times, 0.5)
        );
        all.push(last);
    }
    println!(
        "   time for one post to reach all {size}: p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms  (target p95 ≤ 1000 ms)",
        percentile(&all, 0.5),
        percentile(&all, 0.95),
        percentile(&all, 1.0)
    );
    println!(
        "   (measured from just before spawning `kith checkin`; each member's item count polled over its control socket every ~5 ms)"
    );
    let peers = runtime.block_on(peer_counts(&homes))?;
    println!(
        "   connected peers per member at the end: min {}, max {}",
        peers.iter().min().unwrap_or(&0),
        peers.iter().max().unwrap_or(&0)
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 3. Catch-up of N entries, and 4. an idle daemon holding them

fn catchup_and_idle(
    runtime: &tokio::runtime::Runtime,
    entries: usize,
    idle: Duration,
) -> Result<()> {
    println!("\n3. catch-up: B offline while A posts {entries} check-ins, then B starts");
    let mut nodes = circle_of("Bench", &["Ann", "Bob", "Cal"])?;
    nodes[1].stop()?;
    nodes[2].stop()?;
    let ann_home = nodes[0].home().to_path_buf();
    let posted = Instant::now();
    runtime.block_on(post_concurrently(&ann_home, 8, entries))?;
    println!(
        "   A: {entries} durable check-ins from 8 socket clients in {:.1} s",
        posted.elapsed().as_secs_f64()
    );
    let want = runtime.block_on(item_count(&ann_home))?;

    // B starts: from the spawn of `kith daemon` to B's status answering, then to all there.
    let spawned = Instant::now();
    nodes[1].start_networked()?;
    let answering = Instant::now();
    let bob_home = nodes[1].home().to_path_buf();
    let bob_pid = nodes[1].pid().ok_or_else(|| anyhow!("no pid"))?;
    runtime.block_on(wait_counts(
        std::slice::from_ref(&bob_home),
        &[want],
        Duration::from_secs(600),
    ))?;
    let done = Instant::now();
    let wire = tcp_bytes(bob_pid)?;
    println!(
        "   B has all {want} items {:.2} s after `kith daemon` was spawned ({:.2} s of that to answer status: argon2 + store load; {:.2} s from answering to all there)",
        ms(done.duration_since(spawned)) / 1000.0,
        ms(answering.duration_since(spawned)) / 1000.0,
        ms(done.duration_since(answering)) / 1000.0,
    );
    let envelopes = envelope_bytes(entries)?;
    let (received, sent) = wire.iter().fold((0, 0), |(r, s), c| (r + c.1, s + c.2));
    println!(
        "   bytes on B's TCP sockets ({} connection(s)): received {} B, sent {} B, total {} B",
        wire.len(),
        received,
        sent,
        received + sent
    );
    println!(
        "   the {entries} missing envelopes (Envelope::encode, same check-in built in process): {envelopes} B ({:.0} B each)",
        envelopes as f64 / entries as f64
    );
    println!(
        "   wire / envelopes: received {:.3}×, both directions {:.3}×  (target ≤ 1.15×)",
        received as f64 / envelopes as f64,
        (received + sent) as f64 / envelopes as f64
    );

    // Cal comes back too, so that A idles with two peers.
    nodes[2].start_networked()?;
    let cal_home = nodes[2].home().to_path_buf();
    runtime.block_on(wait_counts(
        std::slice::from_ref(&cal_home),
        &[want],
        Duration::from_secs(600),
    ))?;
    let homes = [ann_home.clone(), bob_home, cal_home];
    // Everyone holds everything and every pair is connected; then a short pause for
    // whatever follows a sync round to finish.
    wait_until(WAIT, "all three connected to each other", || {
        let peers = runtime.block_on(peer_counts(&homes)).ok()?;
        peers.iter().all(|p| *p >= 2).then_some(())
    })?;
    thread::sleep(Duration::from_secs(5));

    println!(
        "\n4. idle: A holding {want} items with 2 connected peers, sampled over {} s",
        idle.as_secs()
    );
    let ann_pid = nodes[0].pid().ok_or_else(|| anyhow!("no pid"))?;
    let cpu_before = cpu_ticks(ann_pid)?;
    let wire_before = tcp_bytes(ann_pid)?;
    let rss_before = rss_kib(ann_pid)?;
    let started = Instant::now();
    let mut rss_max = rss_before;
    while started.elapsed() < idle {
        thread::sleep(Duration::from_secs(1));
        rss_max = rss_max.max(rss_kib(ann_pid)?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = (cpu_ticks(ann_pid)? - cpu_before) as f64 / clock_ticks()? as f64;
    let wire_after = tcp_bytes(ann_pid)?;
    let rss_after = rss_kib(ann_pid)?;
    println!(
        "   CPU {:.3} % of one core ({cpu:.2} s user+system in {elapsed:.0} s)  (target ≤ 0.5 %)",
        cpu / elapsed * 100.0
    );
    println!(
        "   RSS {:.1} MB at the start, {:.1} MB at the end, {:.1} MB at most  (target ≤ 30 MB)",
        rss_before as f64 / 1024.0,
        rss_after as f64 / 1024.0,
        rss_max as f64 / 1024.0
    );
    // What the resident memory is made of: the heap and stacks, or pages of the binary
    // and libraries.
    let part = |key: &str| -> Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{ann_pid}/status"))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .map(|kib| kib / 1024.0)
            .ok_or_else(|| anyhow!("no {key} for {ann_pid}"))
    };
    println!(
        "   of which anonymous (heap, stacks) {:.1} MB, file-backed (binary, libraries) {:.1} MB",
        part("RssAnon:")?,
        part("RssFile:")?
    );
    let minutes = elapsed / 60.0;
    for (key, received, sent) in &wire_after {
        let (r0, s0) = wire_before
            .iter()
            .find(|c| &c.0 == key)
            .map(|c| (c.1, c.2))
            .unwrap_or((0, 0));
        println!(
            "   connection {key}: {:.0} B/min received, {:.0} B/min sent",
            (received - r0) as f64 / minutes,
            (sent - s0) as f64 / minutes
        );
    }
    let sum = |w: &[(String, u64, u64)]| w.iter().map(|c| c.1 + c.2).sum::<u64>();
    let peers = wire_after.len().max(1) as f64;
    println!(
        "   both directions, per peer: {:.0} B/min",
        (sum(&wire_after).saturating_sub(sum(&wire_before))) as f64 / minutes / peers
    );
    Ok(())
}

/// The same `entries` check-ins as A posts, built in process with kith-core and sealed with
/// kith-crypto: the sum of `Envelope::encode().len()`, what B lacks.
fn envelope_bytes(entries: usize) -> Result<usize> {
    let (identity, key, circle_id, changes) = checkin_changes(entries)?;
    let mut prev = [0u8; 32];
    let mut total = 0;
    let mut rng = rand::rng();
    // The genesis envelope is sealed for the chain but not counted: B already has it.
    for (i, change) in changes.iter().enumerate() {
        let payload = Payload::Change(change.clone()).encode();
        let envelope = Envelope::seal(
            &identity,
            &key,
            circle_id,
            i as u64 + 1,
            prev,
            0,
            &payload,
            &mut rng,
        )?;
        prev = envelope.hash();
        if i > 0 {
            total += envelope.encode().len();
        }
    }
    Ok(total)
}

/// A circle founded in process plus `entries` check-ins like the daemon's (mood okay, the
/// same note, time now): the genesis change first, then one change per check-in.
#[allow(clippy::type_complexity)]
fn checkin_changes(entries: usize) -> Result<(DeviceIdentity, EpochKey, CircleId, Vec<Vec<u8>>)> {
    let mut rng = rand::rng();
    let identity = DeviceIdentity::generate(&mut rng);
    let key = EpochKey::generate(&mut rng);
    let circle_id = CircleId::random(&mut rng);
    let now = now_ms();
    let (mut circle, genesis) =
        Circle::found(&identity.member_id().to_string(), "Ann", "Bench", now)?;
    let mut changes = vec![genesis];
    for i in 0..entries {
        let id = ItemId::from_random(rand::random());
        changes.push(circle.checkin(&id, Mood::Okay, Some(NOTE), now + i as i64)?);
    }
    Ok((identity, key, circle_id, changes))
}

/// Automerge's own sync protocol on the same changes, in process: one document with the
/// genesis and `entries` check-ins, one with the genesis only.
fn automerge_sync(entries: usize) -> Result<()> {
    println!(
        "\n3b. automerge's own sync protocol on the same {entries} check-in changes (in process, no encryption or signatures)"
    );
    let (_, _, _, changes) = checkin_changes(entries)?;
    let parse = |bytes: &Vec<u8>| {
        automerge::Change::from_bytes(bytes.clone()).map_err(|e| anyhow!("change: {e}"))
    };
    let mut full = automerge::Automerge::new();
    full.apply_changes(changes.iter().map(parse).collect::<Result<Vec<_>>>()?)?;
    let mut empty = automerge::Automerge::new();
    empty.apply_changes([parse(&changes[0])?])?;
    let change_bytes: usize = changes.iter().skip(1).map(Vec::len).sum();

    let started = Instant::now();
    let (mut full_state, mut empty_state) =
        (automerge::sync::State::new(), automerge::sync::State::new());
    let (mut bytes, mut messages) = (0usize, 0usize);
    loop {
        let mut moved = false;
        if let Some(message) = full.generate_sync_message(&mut full_state) {
            let encoded = message.encode();
            bytes += encoded.len();
            messages += 1;
            empty.receive_sync_message(
                &mut empty_state,
                automerge::sync::Message::decode(&encoded)?,
            )?;
            moved = true;
        }
        if let Some(message) = empty.generate_sync_message(&mut empty_state) {
            let encoded = message.encode();
            bytes += encoded.len();
            messages += 1;
            full.receive_sync_message(
                &mut full_state,
                automerge::sync::Message::decode(&encoded)?,
            )?;
            moved = true;
        }
        if !moved {
            break;
        }
    }
    let elapsed = started.elapsed();
    if empty.get_heads() != full.get_heads() {
        bail!("automerge sync did not converge");
    }
    println!(
        "   converged in {messages} messages, {bytes} B, {:.0} ms; the changes themselves are {change_bytes} B ({:.0} B each): {:.3}× of the changes",
        ms(elapsed),
        change_bytes as f64 / entries as f64,
        bytes as f64 / change_bytes as f64
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Helpers

async fn status(client: &mut Client) -> Result<Box<kith_ipc::StatusInfo>> {
    match client.request(&Request::Status).await? {
        Reply::Status(info) => Ok(info),
        other => bail!("unexpected reply {other:?}"),
    }
}

async fn item_count(home: &Path) -> Result<usize> {
    let mut client = Client::connect(home).await?;
    Ok(status(&mut client)
        .await?
        .circles
        .first()
        .map_or(0, |c| c.items))
}

async fn item_counts(homes: &[PathBuf]) -> Result<Vec<usize>> {
    let mut counts = Vec::new();
    for home in homes {
        counts.push(item_count(home).await?);
    }
    Ok(counts)
}

async fn peer_counts(homes: &[PathBuf]) -> Result<Vec<usize>> {
    let mut counts = Vec::new();
    for home in homes {
        let mut client = Client::connect(home).await?;
        counts.push(status(&mut client).await?.connected_peers.len());
    }
    Ok(counts)
}

/// Polls each home's item count (one status request per node per pass, ~5 ms apart) until
/// each reaches its target; returns when each did.
async fn wait_counts(
    homes: &[PathBuf],
    targets: &[usize],
    timeout: Duration,
) -> Result<Vec<Instant>> {
    let mut clients = Vec::new();
    for home in homes {
        clients.push(Client::connect(home).await?);
    }
    let deadline = Instant::now() + timeout;
    let mut reached: Vec<Option<Instant>> = vec![None; homes.len()];
    loop {
        for (i, client) in clients.iter_mut().enumerate() {
            if reached[i].is_some() {
                continue;
            }
            let items = status(client).await?.circles.first().map_or(0, |c| c.items);
            if items >= targets[i] {
                reached[i] = Some(Instant::now());
            }
        }
        if reached.iter().all(Option::is_some) {
            return Ok(reached.into_iter().flatten().collect());
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for item counts {targets:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Established TCP sockets of process `pid` with their kernel byte counters:
/// (local → remote, bytes_received, bytes_acked), from `ss -tinpH`.
fn tcp_bytes(pid: u32) -> Result<Vec<(String, u64, u64)>> {
    let output = Command::new("ss")
        .args(["-tinpH", "state", "established"])
        .output()
        .context("cannot run ss")?;
    let text = String::from_utf8_lossy(&output.stdout);
    let marker = format!("pid={pid},");
    let mut sockets = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if !line.starts_with(char::is_whitespace) {
            current = line.contains(&marker).then(|| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                format!(
                    "{} → {}",
                    fields.get(2).unwrap_or(&"?"),
                    fields.get(3).unwrap_or(&"?")
                )
            });
            continue;
        }
        if let Some(key) = current.take() {
            let counter = |name: &str| {
                line.split_whitespace()
                    .find_map(|f| f.strip_prefix(name))
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            sockets.push((key, counter("bytes_received:"), counter("bytes_acked:")));
        }
    }
    Ok(sockets)
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("odd /proc/{pid}/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime 15.
    let utime: u64 = fields.get(11).ok_or_else(|| anyhow!("no utime"))?.parse()?;
    let stime: u64 = fields.get(12).ok_or_else(|| anyhow!("no stime"))?.parse()?;
    Ok(utime + stime)
}

fn clock_ticks() -> Result<u64> {
    let output = Command::new("getconf").arg("CLK_TCK").output()?;
    Ok(String::from_utf8_lossy(&output.stdout).trim().parse()?)
}

/// VmRSS of `pid` in KiB.
fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow!("no VmRSS for {pid}"))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
