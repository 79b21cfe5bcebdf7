//! What both benchmarks need: the check-in they post, and posting many over the socket.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Result, bail};
use kith_ipc::{Client, Reply, Request};

/// The note of every benchmark check-in (21 characters).
pub const NOTE: &str = "slept badly, okay now";

/// `clients` connections post `total` check-ins between them; returns the wall time and each
/// post's latency in milliseconds.
pub async fn post_concurrently(
    home: &Path,
    clients: usize,
    total: usize,
) -> Result<(Duration, Vec<f64>)> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let home = home.to_path_buf();
        let share = total / clients + usize::from(c < total % clients);
        tasks.push(tokio::spawn(async move {
            let mut client = Client::connect(&home).await?;
            let mut latencies = Vec::with_capacity(share);
            for _ in 0..share {
                let t = Instant::now();
                let reply = client
                    .request(&Request::CheckIn {
                        circle: None,
                        mood: "okay".into(),
                        note: Some(NOTE.into()),
                        help: None,
                        to: Vec::new(),
                    })
                    .await?;
                if !matches!(reply, Reply::Created { .. }) {
                    bail!("unexpected reply {reply:?}");
                }
                latencies.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    Ok((started.elapsed(), all))
}
