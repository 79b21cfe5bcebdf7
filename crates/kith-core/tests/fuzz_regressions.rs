//! Inputs that crashed the `circle_apply_changes` fuzz target, or are known to be dangerous,
//! kept as files under `tests/fuzz-crashers/circle_apply_changes/` so the bug stays fixed
//! without a fuzzer (docs/fuzzing.md, "Crashes and fixtures").
//!
//! Each file is handled exactly as the fuzz target handles its input: split before each
//! automerge chunk magic, applied to a circle freshly loaded from the target's genesis.
//! `Circle::apply_changes` must refuse it with an error, without panicking, and the circle
//! must still read afterwards.
//!
//! The hand-built fixtures (a file per kind; fuzzer finds keep libFuzzer's names):
//!
//! - `automerge_panic`: Bob and Cat added, then a change of Cat's that sets a field of an
//!   object made by a change it does not depend on (which never arrives). automerge 0.12
//!   panics applying it; kith-core catches that and refuses the change (the unit test
//!   `changes_automerge_panics_on_are_refused` builds the same kind of change).
//! - `compressed_chunk`: a check-in with a long note as automerge compresses it (chunk type
//!   2): a small envelope could inflate into gigabytes, so it is refused unread.
//! - `bad_checksum`: Bob's admission with one checksum byte changed (automerge does not
//!   check it when parsing a single change).
//! - `truncated`: Bob's admission, then Cat's cut off in the middle of its chunk.
//! - `forged_policy`: Bob, a member but not a steward, sets the approvals policy (`p`).
//! - `short_wrap`: Ann makes key epoch 1 with a wrapped key of 80 bytes instead of 81.
//! - `removal_without_epoch`: Ann marks Bob removed (`x`, `xc`) without the new key epoch
//!   a removal must carry.
//!
//! `built_fixtures_match_the_committed_ones` rebuilds the hand-built ones and requires the
//! committed bytes; `KITH_WRITE_FIXTURES=1 cargo test -p kith-core --test fuzz_regressions`
//! writes them again after a deliberate change.

use std::path::{Path, PathBuf};

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, AutoCommit, ObjId, ObjType, ROOT, ReadDoc};
use kith_core::{Circle, ItemId, Mood, Role, actor_for_member, member_id};

/// The chunk magic every automerge change starts with.
const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];

fn crashers() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-crashers/circle_apply_changes")
}

/// The fuzz target's local member and genesis (fuzz/fuzz_targets/circle_apply_changes.rs).
fn target_base() -> (String, Vec<u8>) {
    let ann = member_id(&[1; 32]);
    let (_, genesis) = Circle::found(&ann, "Ann", "Tuesday people", 1_000).unwrap();
    (ann, genesis)
}

/// Splits an input as the fuzz target does: before each chunk magic; with none, one change.
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

#[test]
fn circle_apply_changes_crashers_are_refused() {
    let (ann, genesis) = target_base();
    let mut files: Vec<PathBuf> = std::fs::read_dir(crashers())
        .expect("the fixture directory exists")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", crashers().display());
    for path in &files {
        let data = std::fs::read(path).unwrap();
        let changes = split_changes(&data);
        let mut circle = Circle::load(&ann, std::slice::from_ref(&genesis)).unwrap();
        match circle.apply_changes(&changes) {
            Ok(()) => panic!(
                "{} was accepted ({} change(s))",
                path.display(),
                changes.len()
            ),
            Err(e) => eprintln!("{}: {e}", path.display()),
        }
        // The circle still reads, and its founder is still there.
        let members = circle.members();
        assert!(
            members.iter().any(|m| m.id == ann),
            "{}: the founder is gone",
            path.display()
        );
        for item in circle.items() {
            assert!(circle.item(item.id.as_str()).is_some());
        }
        assert_eq!(circle.name(), "Tuesday people");
    }
}

/// A raw automerge document holding `changes`, editing as `member`: what a hostile
/// member's daemon can write, outside kith-core's checks.
fn raw_doc(changes: &[Vec<u8>], member: &str) -> AutoCommit {
    let mut doc = AutoCommit::new();
    let parsed: Vec<automerge::Change> = changes
        .iter()
        .map(|c| automerge::Change::from_bytes(c.clone()).unwrap())
        .collect();
    doc.apply_changes(parsed).unwrap();
    doc.set_actor(ActorId::from(actor_for_member(member).unwrap()));
    doc
}

/// Commits one edit (time 0, as kith-core does) and returns the change's bytes.
fn raw_edit(doc: &mut AutoCommit, edit: impl FnOnce(&mut AutoCommit)) -> Vec<u8> {
    edit(doc);
    let hash = doc
        .commit_with(CommitOptions::default().with_time(0))
        .unwrap();
    doc.get_change_by_hash(&hash).unwrap().raw_bytes().to_vec()
}

fn map_at(doc: &AutoCommit, parent: &ObjId, key: &str) -> ObjId {
    match doc.get(parent, key).unwrap() {
        Some((automerge::Value::Object(ObjType::Map), id)) => id,
        other => panic!("no map at {key:?}: {other:?}"),
    }
}

#[test]
fn built_fixtures_match_the_committed_ones() {
    let (ann, genesis) = target_base();
    let bob = member_id(&[2; 32]);
    let cat = member_id(&[3; 32]);
    let zed = member_id(&[9; 32]);
    let mut circle = Circle::load(&ann, std::slice::from_ref(&genesis)).unwrap();
    let add_bob = circle.add_member(&bob, "Bob", Role::Member, 1_001).unwrap();
    let add_cat = circle.add_member(&cat, "Cat", Role::Member, 1_002).unwrap();
    let log = vec![genesis.clone(), add_bob.clone(), add_cat.clone()];
    let mut fixtures: Vec<(&str, Vec<u8>)> = Vec::new();

    // Zed (never a member) makes a check-in object; Cat, having seen it, sets a field of
    // it. Cat's change is then rewritten to depend only on the roster, so it names an
    // object the document never gets.
    let mut zeds = raw_doc(&log, &zed);
    let zed_change = raw_edit(&mut zeds, |doc| {
        let checkins = map_at(doc, &ROOT, "c");
        let obj = doc
            .put_object(&checkins, "zzzzzzzzzz", ObjType::Map)
            .unwrap();
        doc.put(&obj, "m", 3_u64).unwrap();
    });
    let mut with_zed = log.clone();
    with_zed.push(zed_change);
    let mut cats = raw_doc(&with_zed, &cat);
    let cat_change = raw_edit(&mut cats, |doc| {
        let checkins = map_at(doc, &ROOT, "c");
        let obj = map_at(doc, &checkins, "zzzzzzzzzz");
        doc.put(&obj, "c", 1_003_i64).unwrap();
    });
    let mut expanded = automerge::Change::from_bytes(cat_change).unwrap().decode();
    expanded.deps = vec![
        automerge::Change::from_bytes(add_cat.clone())
            .unwrap()
            .hash(),
    ];
    expanded.hash = None;
    let poisoned = automerge::Change::from(expanded).raw_bytes().to_vec();
    // Plain automerge panics on it (the reason it is kept).
    let mut plain = raw_doc(&log, &ann);
    let change = automerge::Change::from_bytes(poisoned.clone()).unwrap();
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        plain.apply_changes([change])
    }))
    .is_err();
    assert!(
        panicked,
        "automerge no longer panics on the poisoned change"
    );
    fixtures.push((
        "automerge_panic",
        [add_bob.clone(), add_cat.clone(), poisoned].concat(),
    ));

    // A change long enough for automerge to compress it.
    let long = circle
        .checkin(
            &ItemId::from_random([1; 8]),
            Mood::Okay,
            Some(&"a long and very repetitive note. ".repeat(20)),
            1_004,
        )
        .unwrap();
    let mut change = automerge::Change::from_bytes(long).unwrap();
    let compressed = change.bytes().to_vec();
    assert_eq!(compressed.get(8), Some(&2), "not compressed");
    fixtures.push(("compressed_chunk", compressed));

    let mut bad_checksum = add_bob.clone();
    bad_checksum[4] ^= 0x01;
    fixtures.push(("bad_checksum", bad_checksum));

    fixtures.push((
        "truncated",
        [add_bob.clone(), add_cat[..add_cat.len() / 2].to_vec()].concat(),
    ));

    let mut bobs = raw_doc(&log, &bob);
    let forged_policy = raw_edit(&mut bobs, |doc| {
        doc.put(&ROOT, "p", 2_u64).unwrap();
    });
    fixtures.push((
        "forged_policy",
        [add_bob.clone(), add_cat.clone(), forged_policy].concat(),
    ));

    let mut anns = raw_doc(&log, &ann);
    let short_wrap = raw_edit(&mut anns, |doc| {
        let epochs = map_at(doc, &ROOT, "k");
        let epoch = doc.put_object(&epochs, "1", ObjType::Map).unwrap();
        doc.put(&epoch, "g", 1_u64).unwrap();
        doc.put(&epoch, "c", vec![1_u8; 32]).unwrap();
        doc.put(&epoch, "t", 1_004_i64).unwrap();
        let wraps = doc.put_object(&epoch, "w", ObjType::Map).unwrap();
        doc.put(&wraps, ann.as_str(), vec![1_u8; 80]).unwrap();
    });
    fixtures.push((
        "short_wrap",
        [add_bob.clone(), add_cat.clone(), short_wrap].concat(),
    ));

    let mut anns = raw_doc(&log, &ann);
    let removal = raw_edit(&mut anns, |doc| {
        let roster = map_at(doc, &ROOT, "m");
        let entry = map_at(doc, &roster, &bob);
        doc.put(&entry, "x", 1_004_i64).unwrap();
        doc.put(&entry, "xc", 1_i64).unwrap();
    });
    fixtures.push((
        "removal_without_epoch",
        [add_bob, add_cat, removal].concat(),
    ));

    let write = std::env::var_os("KITH_WRITE_FIXTURES").is_some();
    if write {
        std::fs::create_dir_all(crashers()).unwrap();
    }
    for (name, bytes) in fixtures {
        let path = crashers().join(name);
        if write {
            std::fs::write(&path, bytes).unwrap();
        } else {
            let committed = std::fs::read(&path).unwrap_or_default();
            assert_eq!(
                committed,
                bytes,
                "{} differs from what is built",
                path.display()
            );
        }
    }
}
