//! Durable posts per second through a real `kith daemon` process, and bytes on disk per short
//! check-in. Run with `scripts/bench` (builds the release binary first); results go in
//! docs/performance.md.
//!
//! Every post is acknowledged only after its envelope is durable (fsync), so the numbers are
//! for durable posts. Clients talk to the daemon's control socket directly (what `kith`
//! does, minus starting a process per post); a separate figure includes the process start.

use std::{path::Path, time::Instant};

use anyhow::Result;
use kith_testkit::{Node, percentile};

mod common;
use common::{NOTE, post_concurrently};

fn main() -> Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let posts = if quick { 400 } else { 4000 };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;

    println!("kith throughput benchmark ({posts} posts per run)");
    for clients in [1usize, 8] {
        let mut node = Node::init("bench")?;
        node.start()?;
        node.ok(&["circle", "create", "Bench"])?;
        let (elapsed, latencies) =
            runtime.block_on(post_concurrently(node.home(), clients, posts))?;
        let rate = posts as f64 / elapsed.as_secs_f64();
        println!(
            "  {clients} client(s): {rate:>8.0} durable posts/s   latency p50 {:.2} ms, p99 {:.2} ms",
            percentile(&latencies, 0.50),
            percentile(&latencies, 0.99)
        );
        node.stop()?;
    }

    // Through the command line: one `kith checkin` process per post.
    let mut node = Node::init("bench")?;
    node.start()?;
    node.ok(&["circle", "create", "Bench"])?;
    let count = if quick { 50 } else { 300 };
    let started = Instant::now();
    for _ in 0..count {
        node.ok(&["checkin", "--mood", "okay", "--note", NOTE])?;
    }
    let per = started.elapsed().as_secs_f64() * 1000.0 / count as f64;
    println!("  `kith checkin` end to end (process start included): {per:.2} ms per post");
    node.stop()?;

    // Bytes on disk per short check-in: the home's size before and after, after a clean stop.
    let mut node = Node::init("bench")?;
    node.start()?;
    node.ok(&["circle", "create", "Bench"])?;
    node.stop()?;
    let before = dir_size(node.home())?;
    node.start()?;
    let count = if quick { 1000 } else { 10_000 };
    runtime.block_on(post_concurrently(node.home(), 8, count))?;
    let running = dir_size(node.home())?;
    node.stop()?;
    let after = dir_size(node.home())?;
    println!(
        "  disk: {:.0} bytes per short check-in ({count} check-ins of {} note characters; {:.0} bytes/check-in while running, WAL included)",
        (after - before) as f64 / count as f64,
        NOTE.len(),
        (running.saturating_sub(before)) as f64 / count as f64,
    );
    Ok(())
}

fn dir_size(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_dir() {
            total += dir_size(&entry.path())?;
        } else if meta.is_file() {
            total += meta.len();
        }
    }
    Ok(total)
}
