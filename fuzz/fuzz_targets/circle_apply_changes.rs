//! `Circle::apply_changes` on arbitrary bytes: a change body that a hostile member sealed
//! validly. Must never panic through the API (kith-core catches automerge's own panics; see
//! docs/fuzzing.md for how this target tells those apart from real crashes), and the feed
//! must still read afterwards.
//!
//! The input is split before each automerge chunk magic (85 6f 4a 83), so one input can be
//! several changes and reach the dependency ordering; with no magic it is one change.
#![no_main]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Mutex, Once, OnceLock};

use kith_core::{Circle, member_id};
use libfuzzer_sys::fuzz_target;

const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];

/// The local member (Ann) and the genesis change of her circle, made once.
fn base() -> &'static (String, Vec<u8>) {
    static BASE: OnceLock<(String, Vec<u8>)> = OnceLock::new();
    BASE.get_or_init(|| {
        let ann = member_id(&[1; 32]);
        let (_, genesis) = Circle::found(&ann, "Ann", "Tuesday people", 1_000).expect("found");
        (ann, genesis)
    })
}

fn split_changes(data: &[u8]) -> Vec<Vec<u8>> {
    let mut starts: Vec<usize> = data
        .windows(MAGIC.len())
        .enumerate()
        .filter(|(_, w)| *w == MAGIC)
        .map(|(i, _)| i)
        .collect();
    if starts.first() != Some(&0) {
        starts.insert(0, 0);
    }
    starts.push(data.len());
    starts
        .windows(2)
        .map(|w| data[w[0]..w[1]].to_vec())
        .collect()
}

fuzz_target!(|data: &[u8]| {
    static HOOK: Once = Once::new();
    static LAST_PANIC: Mutex<String> = Mutex::new(String::new());
    HOOK.call_once(|| {
        // libfuzzer-sys installs a panic hook that aborts at once, before any unwinding, so
        // even a panic kith-core catches (automerge's, by design) would count as a crash.
        // Replace it with one that only remembers the message; a panic that escapes
        // kith-core is caught below, printed and turned into an abort, so it still counts.
        std::panic::set_hook(Box::new(|info| {
            if let Ok(mut last) = LAST_PANIC.lock() {
                *last = info.to_string();
            }
        }));
    });
    let (ann, genesis) = base();
    let changes = split_changes(data);
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let mut circle = Circle::load(ann, &[genesis.clone()]).expect("genesis loads");
        let _ = circle.apply_changes(&changes);
        let items = circle.items();
        for item in &items {
            let _ = circle.item(&item.id);
        }
        let _ = circle.members();
        let _ = circle.name();
    }));
    if outcome.is_err() {
        let message = LAST_PANIC.lock().map(|m| m.clone()).unwrap_or_default();
        eprintln!("a panic escaped kith-core's Circle API: {message}");
        std::process::abort();
    }
});
