//! Property tests: members editing forks of one genesis converge whatever the order and
//! batching of delivery; the rules never let a member close another's request or write in
//! another's name; hostile bytes never panic the decoders.

use std::collections::{HashMap, HashSet};

use kith_core::{
    Circle, CoreError, HelpKind, ItemId, ItemKind, Mood, NewRequest, Payload, RequestStatus, Role,
    member_id,
};
use proptest::prelude::*;

const T0: i64 = 1_700_000_000_000;

fn member(n: usize) -> String {
    member_id(&[u8::try_from(n + 1).unwrap(); 32])
}

fn iid(n: u64) -> ItemId {
    ItemId::from_random(n.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes())
}

/// Deterministic shuffling from a proptest-chosen seed (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n.max(1)).unwrap()).unwrap()
    }
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i + 1));
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    CheckIn { who: usize, mood: u8, note: bool },
    Ask { who: usize, urgent: bool },
    Claim { who: usize, pick: usize },
    Unclaim { who: usize, pick: usize },
    Done { who: usize, pick: usize },
    Cancel { who: usize, pick: usize },
    Reply { who: usize, pick: usize },
    Addresses { who: usize, n: u8 },
    Sync { from: usize, to: usize },
}

fn op() -> impl Strategy<Value = Op> {
    let who = 0..4usize;
    let pick = 0..16usize;
    prop_oneof![
        (who.clone(), 1..=5u8, any::<bool>()).prop_map(|(who, mood, note)| Op::CheckIn {
            who,
            mood,
            note
        }),
        (who.clone(), any::<bool>()).prop_map(|(who, urgent)| Op::Ask { who, urgent }),
        (who.clone(), pick.clone()).prop_map(|(who, pick)| Op::Claim { who, pick }),
        (who.clone(), pick.clone()).prop_map(|(who, pick)| Op::Unclaim { who, pick }),
        (who.clone(), pick.clone()).prop_map(|(who, pick)| Op::Done { who, pick }),
        (who.clone(), pick.clone()).prop_map(|(who, pick)| Op::Cancel { who, pick }),
        (who.clone(), pick).prop_map(|(who, pick)| Op::Reply { who, pick }),
        (who.clone(), 0..4u8).prop_map(|(who, n)| Op::Addresses { who, n }),
        (who.clone(), who).prop_map(|(from, to)| Op::Sync { from, to }),
        (0..4usize, 0..4usize).prop_map(|(from, to)| Op::Sync { from, to }),
    ]
}

struct Node {
    circle: Circle,
    /// Every change this node holds, in the order it got them.
    known: Vec<Vec<u8>>,
    seen: HashSet<Vec<u8>>,
}

impl Node {
    fn learn(&mut self, change: Vec<u8>) {
        if self.seen.insert(change.clone()) {
            self.known.push(change);
        }
    }
}

/// Delivers `changes` to `node` shuffled and cut into random batches.
fn deliver(node: &mut Node, mut changes: Vec<Vec<u8>>, rng: &mut Rng) {
    changes.retain(|c| !node.seen.contains(c));
    rng.shuffle(&mut changes);
    while !changes.is_empty() {
        let n = 1 + rng.below(changes.len());
        let batch: Vec<Vec<u8>> = changes.drain(..n).collect();
        node.circle.apply_changes(&batch).unwrap();
        for c in batch {
            node.learn(c);
        }
    }
}

/// What the test saw succeed, to check the final state against.
#[derive(Default)]
struct Record {
    creator: HashMap<String, String>,
    closed_by: HashMap<String, String>,
    claimed_by: HashSet<(String, String)>,
    reply_author: HashMap<String, String>,
    /// The addresses each member last published.
    addresses: HashMap<String, Vec<String>>,
}

fn run(members: usize, ops: Vec<Op>, seed: u64) -> Result<(), TestCaseError> {
    let mut rng = Rng(seed | 1);
    let (mut founder, genesis) = Circle::found(&member(0), "M0", "Circle", T0).unwrap();
    let mut base = vec![genesis];
    for m in 1..members {
        base.push(
            founder
                .add_member(&member(m), &format!("M{m}"), Role::Member, T0)
                .unwrap(),
        );
    }
    let mut nodes: Vec<Node> = (0..members)
        .map(|m| {
            // The founder too reloads from its changes, and must keep counting its own seq.
            let circle = Circle::load(&member(m), &base).unwrap();
            Node {
                circle,
                known: base.clone(),
                seen: base.iter().cloned().collect(),
            }
        })
        .collect();
    let mut record = Record::default();
    let mut next_id = 0u64;
    let mut now = T0;

    for op in ops {
        now += 1000;
        next_id += 1;
        let new_id = iid(next_id);
        match op {
            Op::Sync { from, to } => {
                let (from, to) = (from % members, to % members);
                if from != to {
                    let changes = nodes[from].known.clone();
                    deliver(&mut nodes[to], changes, &mut rng);
                    // The feed, refreshed key by key, matches one read from scratch.
                    let fresh = Circle::load(&member(to), &nodes[to].known).unwrap();
                    prop_assert_eq!(nodes[to].circle.items(), fresh.items());
                    prop_assert_eq!(nodes[to].circle.members(), fresh.members());
                }
            }
            Op::CheckIn { who, mood, note } => {
                let who = who % members;
                let note = note.then_some("a note, kept short");
                let c = nodes[who]
                    .circle
                    .checkin(&new_id, Mood::from_value(mood).unwrap(), note, now)
                    .unwrap();
                nodes[who].learn(c);
                record.creator.insert(new_id.to_string(), member(who));
            }
            Op::Addresses { who, n } => {
                let who = who % members;
                // n = 0 withdraws them.
                let list: Vec<String> = (0..n)
                    .map(|i| format!("/ip4/10.0.{who}.{i}/tcp/4001"))
                    .collect();
                let written = nodes[who].circle.set_my_addresses(&list, now).unwrap();
                let before = record
                    .addresses
                    .get(&member(who))
                    .cloned()
                    .unwrap_or_default();
                prop_assert_eq!(written.is_none(), before == list);
                if let Some(c) = written {
                    nodes[who].learn(c);
                }
                record.addresses.insert(member(who), list);
            }
            Op::Ask { who, urgent } => {
                let who = who % members;
                let req = NewRequest {
                    kind: HelpKind::Meals,
                    title: "soup".into(),
                    details: None,
                    needed_by: None,
                    urgent,
                    ..NewRequest::default()
                };
                let c = nodes[who].circle.ask(&new_id, &req, now).unwrap();
                nodes[who].learn(c);
                record.creator.insert(new_id.to_string(), member(who));
            }
            Op::Claim { who, pick }
            | Op::Unclaim { who, pick }
            | Op::Done { who, pick }
            | Op::Cancel { who, pick }
            | Op::Reply { who, pick } => {
                let who = who % members;
                let me = member(who);
                let items = nodes[who].circle.items();
                if items.is_empty() {
                    continue;
                }
                let item = items[pick % items.len()].clone();
                let id = ItemId::parse(&item.id).unwrap();
                let is_request = item.kind == ItemKind::Request;
                let circle = &mut nodes[who].circle;
                let result = match op {
                    Op::Claim { .. } => circle.claim(&id, now),
                    Op::Unclaim { .. } => circle.unclaim(&id, now),
                    Op::Done { .. } => circle.done(&id, now),
                    Op::Cancel { .. } => circle.cancel(&id, now),
                    _ => circle.reply(&id, &new_id, "with you", now),
                };
                // The rules, as the local member sees the item.
                match (&op, &result) {
                    (_, Err(CoreError::Document(e))) => prop_assert!(false, "document error {e}"),
                    (Op::Done { .. } | Op::Cancel { .. }, _) if !is_request => {
                        prop_assert_eq!(&result, &Err(CoreError::NotARequest(item.id.clone())))
                    }
                    (Op::Done { .. } | Op::Cancel { .. }, _) if item.author != me => {
                        prop_assert_eq!(&result, &Err(CoreError::NotAuthor(item.id.clone())))
                    }
                    (Op::Claim { .. }, Ok(_)) => {
                        prop_assert!(
                            item.author != me && item.status.is_some_and(|s| !s.is_closed())
                        );
                        record.claimed_by.insert((item.id.clone(), me.clone()));
                    }
                    (Op::Claim { .. }, _) if is_request && item.author == me => {
                        prop_assert_eq!(&result, &Err(CoreError::OwnRequest(item.id.clone())))
                    }
                    (Op::Done { .. } | Op::Cancel { .. }, Ok(_)) => {
                        record.closed_by.insert(item.id.clone(), me.clone());
                    }
                    (Op::Unclaim { .. }, Ok(_)) => {
                        prop_assert!(item.claims.iter().any(|c| c.member == me));
                    }
                    (Op::Reply { .. }, r) => prop_assert!(r.is_ok(), "reply refused: {r:?}"),
                    _ => {}
                }
                if let (Op::Reply { .. }, Ok(_)) = (&op, &result) {
                    record.reply_author.insert(new_id.to_string(), me.clone());
                }
                if let Ok(c) = result {
                    nodes[who].learn(c);
                }
            }
        }
    }

    // Everyone gets everything, in their own random order and batches.
    let all: Vec<Vec<u8>> = {
        let mut seen = HashSet::new();
        nodes
            .iter()
            .flat_map(|n| n.known.clone())
            .filter(|c| seen.insert(c.clone()))
            .collect()
    };
    for node in &mut nodes {
        deliver(node, all.clone(), &mut rng);
    }
    let items = nodes[0].circle.items();
    for node in &nodes[1..] {
        prop_assert_eq!(&node.circle.items(), &items);
        prop_assert_eq!(node.circle.members(), nodes[0].circle.members());
    }
    let mut shuffled = all.clone();
    rng.shuffle(&mut shuffled);
    prop_assert_eq!(
        &Circle::load(&member(0), &shuffled).unwrap().items(),
        &items
    );

    // Each member's addresses are the ones they last published, everywhere.
    for m in nodes[0].circle.members() {
        let expected = record.addresses.get(&m.id).cloned().unwrap_or_default();
        prop_assert_eq!(m.addresses, expected);
    }

    // Nobody wrote as someone else, closed someone else's request or claimed for another.
    prop_assert_eq!(items.len(), record.creator.len());
    for item in &items {
        prop_assert_eq!(Some(&item.author), record.creator.get(&item.id));
        if item.status.is_some_and(RequestStatus::is_closed) {
            prop_assert_eq!(Some(&item.author), record.closed_by.get(&item.id));
        }
        for claim in &item.claims {
            prop_assert!(claim.member != item.author);
            prop_assert!(
                record
                    .claimed_by
                    .contains(&(item.id.clone(), claim.member.clone()))
            );
        }
        for reply in &item.replies {
            prop_assert_eq!(Some(&reply.author), record.reply_author.get(&reply.id));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn forks_converge_and_rules_hold(
        members in 2..=4usize,
        ops in proptest::collection::vec(op(), 1..60),
        seed in any::<u64>(),
    ) {
        run(members, ops, seed)?;
    }
}

/// Valid changes of every kind, to mutate.
fn sample_changes() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let (mut ann, genesis) = Circle::found(&member(0), "Ann", "Circle", T0).unwrap();
    let add = ann.add_member(&member(1), "Bob", Role::Member, T0).unwrap();
    let base = vec![genesis, add];
    let mut bob = Circle::load(&member(1), &base).unwrap();
    let req = NewRequest {
        kind: HelpKind::Ride,
        title: "ride".into(),
        details: Some("d".into()),
        needed_by: Some(T0),
        urgent: true,
        ..NewRequest::default()
    };
    let mut edits = vec![
        ann.checkin(&iid(1), Mood::Low, Some("note"), T0).unwrap(),
        ann.ask(&iid(2), &req, T0).unwrap(),
    ];
    bob.apply_changes(&edits).unwrap();
    edits.push(bob.claim(&iid(2), T0).unwrap());
    edits.push(bob.reply(&iid(1), &iid(3), "hi", T0).unwrap());
    edits.push(ann.done(&iid(2), T0).unwrap());
    (base, edits)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn payload_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        match Payload::decode(&bytes) {
            Ok(Payload::Change(body)) => {
                prop_assert!(!body.is_empty());
                prop_assert_eq!(Payload::Change(body).encode(), bytes);
            }
            // A key share has exactly one encoding.
            Ok(share @ Payload::Keys(_)) => prop_assert_eq!(share.encode(), bytes),
            Err(e) => prop_assert!(matches!(e, CoreError::Document(_))),
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_apply(
        batch in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..4),
        with_magic in any::<bool>(),
    ) {
        let (base, _) = sample_changes();
        let mut circle = Circle::load(&member(0), &base).unwrap();
        let batch: Vec<Vec<u8>> = batch
            .into_iter()
            .map(|b| if with_magic { [&[0x85, 0x6f, 0x4a, 0x83][..], &b].concat() } else { b })
            .collect();
        let _ = circle.apply_changes(&batch);
        let _ = circle.items();
        let _ = circle.members();
    }

    /// Mutated real changes with their checksum made valid again reach automerge's decoder
    /// and op application: errors are fine, panics are not.
    #[test]
    fn mutated_changes_never_panic(
        which in 0..5usize,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
    ) {
        let (base, edits) = sample_changes();
        let mut change = edits[which].clone();
        for (pos, byte) in flips {
            let len = change.len();
            // Leave magic, checksum and chunk type alone: those are refused up front.
            let pos = 9 + pos % (len - 9);
            change[pos] = byte;
        }
        if let Ok(parsed) = automerge::Change::try_from(&change[..]) {
            change[4..8].copy_from_slice(&parsed.hash().0[..4]);
        }
        let mut circle = Circle::load(&member(0), &base).unwrap();
        let mut batch = edits.clone();
        batch[which] = change;
        let _ = circle.apply_changes(&batch);
        let _ = circle.items();
        let _ = circle.members();
        let _ = circle.resolve_item("a");
    }
}
