//! How long reading and applying take as a circle grows. `timings` is ignored by default
//! (it only prints); run it with
//! `cargo test -p kith-core --release --test timing -- --ignored --nocapture`. The key plan
//! test runs always and asserts its cache; `--release -- --nocapture` prints its timings.

use std::time::{Duration, Instant};

use kith_core::{Circle, HelpKind, ItemId, Mood, NewRequest, Role, member_id};

const T0: i64 = 1_700_000_000_000;

fn member(n: u8) -> String {
    member_id(&[n; 32])
}

fn iid(n: u64) -> ItemId {
    ItemId::from_random(n.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes())
}

fn time<T>(runs: u32, mut f: impl FnMut() -> T) -> Duration {
    let start = Instant::now();
    for _ in 0..runs {
        std::hint::black_box(f());
    }
    start.elapsed() / runs
}

/// `n` items by three members: 60% check-ins, 40% requests (a third of them claimed),
/// and a reply on every third item.
fn circle_with(n: u64) -> (Circle, Vec<Vec<u8>>) {
    let (mut ann, genesis) = Circle::found(&member(1), "Ann", "Circle", T0).unwrap();
    let mut log = vec![genesis];
    log.push(ann.add_member(&member(2), "Bob", Role::Member, T0).unwrap());
    let mut bob = Circle::load(&member(2), &log).unwrap();
    let req = NewRequest {
        kind: HelpKind::Meals,
        title: "Soup on Thursday".into(),
        details: None,
        needed_by: None,
        urgent: false,
        ..NewRequest::default()
    };
    let mut ann_new = Vec::new();
    let mut bob_new = Vec::new();
    for i in 0..n {
        let now = T0 + i64::try_from(i).unwrap() * 1000;
        let id = iid(i);
        let (author, out) = if i % 2 == 0 {
            (&mut ann, &mut ann_new)
        } else {
            (&mut bob, &mut bob_new)
        };
        if i % 5 < 3 {
            out.push(
                author
                    .checkin(&id, Mood::Okay, Some("long day, ok now."), now)
                    .unwrap(),
            );
        } else {
            out.push(author.ask(&id, &req, now).unwrap());
        }
        if i % 3 == 0 {
            out.push(
                author
                    .reply(&id, &iid(i + 1_000_000), "thinking of you", now)
                    .unwrap(),
            );
        }
        // Exchange now and then, so the other side can claim.
        if i % 50 == 49 {
            ann.apply_changes(&bob_new).unwrap();
            bob.apply_changes(&ann_new).unwrap();
            log.append(&mut ann_new);
            log.append(&mut bob_new);
            for j in (i - 49..=i).filter(|j| j % 5 >= 3 && j % 3 == 1) {
                let (claimer, out) = if j % 2 == 0 {
                    (&mut bob, &mut bob_new)
                } else {
                    (&mut ann, &mut ann_new)
                };
                out.push(claimer.claim(&iid(j), now).unwrap());
            }
        }
    }
    log.append(&mut ann_new);
    log.append(&mut bob_new);
    let everyone = Circle::load(&member(3), &log).unwrap();
    (everyone, log)
}

#[test]
#[ignore = "prints timings; run explicitly with --release -- --ignored --nocapture"]
fn timings() {
    for n in [1_000u64, 10_000] {
        let start = Instant::now();
        let (circle, log) = circle_with(n);
        let built = start.elapsed();
        let items = circle.items();
        assert_eq!(items.len(), usize::try_from(n).unwrap());
        let bytes: usize = log.iter().map(Vec::len).sum();
        let load = time(3, || Circle::load(&member(3), &log).unwrap());
        let list = time(5, || circle.items());
        let one = time(20, || circle.item(iid(n / 2).as_str()));
        let resolve = time(20, || circle.resolve_item(&iid(n / 2).as_str()[..4]));
        let mut c = Circle::load(&member(1), &log).unwrap();
        let mut k = 0u64;
        let edit = time(20, || {
            k += 1;
            c.checkin(&iid(5_000_000 + k), Mood::Good, None, T0)
                .unwrap()
        });
        // Received one at a time, each ready (its dependencies already applied).
        let mut writer = Circle::load(&member(1), &log).unwrap();
        let fresh: Vec<Vec<u8>> = (0..20u64)
            .map(|k| {
                writer
                    .checkin(&iid(6_000_000 + k), Mood::Good, None, T0)
                    .unwrap()
            })
            .collect();
        let mut other = Circle::load(&member(2), &log).unwrap();
        let mut it = fresh.into_iter();
        let apply_one = time(20, || other.apply_changes(&[it.next().unwrap()]).unwrap());
        assert_eq!(other.items().len(), items.len() + 20);
        eprintln!(
            "{n} items ({} changes, {} KB raw): built in {built:.2?}; load {load:.2?}; items() {list:.2?}; \
             item() {one:.2?}; resolve_item() {resolve:.2?}; local check-in {edit:.2?}; \
             apply one received change {apply_one:.2?}",
            log.len(),
            bytes / 1024
        );
    }
}

/// The key plan (run after every received batch and before every write) in a circle of 50
/// members after three years of weekly rotations, each epoch wrapped for everyone: what it
/// reads is kept until the document changes, and a change is seen at once. Runs in every
/// test run (about a second in a debug build); the timings it prints are meaningful in a
/// release build (`--release -- --nocapture`).
#[test]
fn key_plan_is_read_once_per_document_state() {
    use std::collections::BTreeSet;

    use kith_core::NewEpoch;
    const WEEK: i64 = 7 * 24 * 3600 * 1000;
    let (mut ann, genesis) = Circle::found(&member(1), "Ann", "Circle", T0).unwrap();
    let mut log = vec![genesis];
    let everyone: Vec<String> = (1..=50).map(member).collect();
    for (n, id) in everyone.iter().enumerate().skip(1) {
        log.push(
            ann.add_member(id, "M", Role::Member, T0 + n as i64)
                .unwrap(),
        );
    }
    let mut held = BTreeSet::from([0u32]);
    for week in 1..=156u32 {
        let epoch = NewEpoch {
            id: week,
            generation: u64::from(week),
            commitment: [7; 32],
            wraps: everyone
                .iter()
                .skip(1)
                .map(|m| (m.clone(), vec![9u8; 81]))
                .collect(),
        };
        let now = T0 + i64::from(week) * WEEK;
        log.push(ann.rotate(&epoch, now).unwrap());
        held.insert(week);
    }
    let now = T0 + 157 * WEEK;
    // The first plan after a change reads every epoch and wrap; later ones reuse that.
    let mut cold = Duration::ZERO;
    for _ in 0..5 {
        let fresh = Circle::load(&member(2), &log).unwrap();
        let start = Instant::now();
        std::hint::black_box(fresh.key_plan(&held, now, WEEK));
        cold += start.elapsed() / 5;
    }
    let mut bob = Circle::load(&member(2), &log).unwrap();
    let plan = time(20, || bob.key_plan(&held, now, WEEK));
    let cached = bob.key_plan(&held, now, WEEK);
    assert_eq!(cached.write_epoch, Some(156));
    assert_eq!(
        cached,
        Circle::load(&member(2), &log)
            .unwrap()
            .key_plan(&held, now, WEEK),
        "a cached plan is the plan a fresh read gives"
    );
    // Bob's own rotation, and Ann's received one, show in the next plan.
    let newer = NewEpoch {
        id: 157,
        generation: 157,
        commitment: [7; 32],
        wraps: vec![(member(1), vec![9u8; 81])],
    };
    let rotation = bob.rotate(&newer, now).unwrap();
    held.insert(157);
    let after = bob.key_plan(&held, now, WEEK);
    assert_eq!((after.write_epoch, after.order.len()), (Some(157), 158));
    assert!(after.holders[&157].contains(&member(1)));
    let mut anns = Circle::load(&member(1), &log).unwrap();
    assert_eq!(anns.key_plan(&held, now, WEEK).write_epoch, Some(156));
    anns.apply_changes(&[rotation]).unwrap();
    assert_eq!(anns.key_plan(&held, now, WEEK).write_epoch, Some(157));
    eprintln!(
        "50 members, 156 epochs of 49 wraps ({} changes): key_plan() {cold:.2?} after a \
         change, {plan:.2?} again",
        log.len()
    );
}
