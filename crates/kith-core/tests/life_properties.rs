//! Property tests of circle life: members post public and private check-ins, requests
//! (one-off, with a helpers count, or recurring with slots that pass while the test runs)
//! and offers, claim with messages, let go, accept, withdraw, close, thank, edit and reply,
//! on forks that sync in random orders and batches. Whatever happens:
//!
//! - all members converge: an item is shown to exactly the members who may read it (every
//!   member for a public item, its author and audience for a private one), identically to
//!   each of them, and as a member rebuilt from scratch shows it;
//! - nobody changes another member's item (status, fields, thanks) or claim: what everyone
//!   shows in the end is what each author and claimer last did themselves;
//! - standby decisions (who holds a spot, who waits) agree on every member.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use kith_core::{
    Circle, CoreError, HelpKind, ItemEdit, ItemId, ItemKind, ItemView, Keyring, Mood, NewCheckin,
    NewOffer, NewRequest, RequestStatus, Role,
};
use kith_crypto::DeviceIdentity;
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

const T0: i64 = 1_700_000_000_000;
/// Time between two operations.
const STEP: i64 = 1000;

mod support {
    pub mod test_keyring;
}
use support::test_keyring::TestKeyring;

fn keyring(identity: &DeviceIdentity, seed: u64) -> Arc<dyn Keyring> {
    TestKeyring::shared(identity, seed)
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

/// `to`: a bit mask of members the item is for; 0 posts it for everyone.
#[derive(Clone, Debug)]
enum Op {
    CheckIn {
        who: usize,
        to: u8,
    },
    Ask {
        who: usize,
        slots: usize,
        helpers: Option<u32>,
        soon: bool,
        to: u8,
    },
    Offer {
        who: usize,
        to: u8,
    },
    /// With `again`, on one of the member's own claims (changing or repeating its
    /// message); otherwise on any item.
    Claim {
        who: usize,
        pick: usize,
        slot: usize,
        message: Option<u8>,
        again: bool,
    },
    Unclaim {
        who: usize,
        pick: usize,
        slot: usize,
    },
    Done {
        who: usize,
        pick: usize,
    },
    Cancel {
        who: usize,
        pick: usize,
    },
    Thank {
        who: usize,
        pick: usize,
        whom: Option<usize>,
        note: bool,
    },
    Edit {
        who: usize,
        pick: usize,
        text: u8,
    },
    Reply {
        who: usize,
        pick: usize,
    },
    Sync {
        from: usize,
        to: usize,
    },
}

fn audience() -> impl Strategy<Value = u8> {
    prop_oneof![Just(0u8), 1..16u8]
}

fn op() -> impl Strategy<Value = Op> {
    let who = 0..4usize;
    let pick = 0..16usize;
    prop_oneof![
        1 => (who.clone(), audience()).prop_map(|(who, to)| Op::CheckIn { who, to }),
        1 => (
            who.clone(),
            0..4usize,
            proptest::option::of(1..3u32),
            any::<bool>(),
            audience()
        )
            .prop_map(|(who, slots, helpers, soon, to)| Op::Ask {
                who,
                slots,
                // A recurring need takes one helper per slot.
                helpers: helpers.filter(|_| slots == 0),
                soon,
                to
            }),
        1 => (who.clone(), audience()).prop_map(|(who, to)| Op::Offer { who, to }),
        4 => (
            who.clone(),
            pick.clone(),
            0..4usize,
            proptest::option::of(0..2u8),
            proptest::bool::weighted(0.5)
        )
            .prop_map(|(who, pick, slot, message, again)| Op::Claim {
                who,
                pick,
                slot,
                message,
                again
            }),
        1 => (who.clone(), pick.clone(), 0..4usize)
            .prop_map(|(who, pick, slot)| Op::Unclaim { who, pick, slot }),
        1 => (who.clone(), pick.clone()).prop_map(|(who, pick)| Op::Done { who, pick }),
        1 => (who.clone(), pick.clone()).prop_map(|(who, pick)| Op::Cancel { who, pick }),
        1 => (
            who.clone(),
            pick.clone(),
            proptest::option::of(0..4usize),
            any::<bool>()
        )
            .prop_map(|(who, pick, whom, note)| Op::Thank {
                who,
                pick,
                whom,
                note
            }),
        1 => (who.clone(), pick.clone(), 0..3u8).prop_map(|(who, pick, text)| Op::Edit {
            who,
            pick,
            text
        }),
        1 => (who.clone(), pick).prop_map(|(who, pick)| Op::Reply { who, pick }),
        3 => (who.clone(), who).prop_map(|(from, to)| Op::Sync { from, to }),
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

/// What one item should end as, from what its author and its claimers did.
#[derive(Debug)]
struct Expect {
    author: String,
    kind: ItemKind,
    /// `None`: public. Otherwise the author and the audience.
    readers: Option<BTreeSet<String>>,
    /// The audience as the item lists it (its readers besides the author).
    audience: Option<Vec<String>>,
    /// The title of a request or offer, the note of a check-in, as last written.
    text: Option<String>,
    closed: Option<RequestStatus>,
    helpers: Option<u32>,
    /// (slot, member) -> (claimed at, message): each member's current claims.
    claims: BTreeMap<(Option<String>, String), (i64, Option<String>)>,
    /// member -> note, as the author last thanked them.
    thanks: BTreeMap<String, Option<String>>,
    /// reply id -> (author, text).
    replies: BTreeMap<String, (String, String)>,
}

/// The claims a claim in `slot` goes among.
fn claims_in<'a>(item: &'a ItemView, slot: Option<&str>) -> &'a [kith_core::ClaimView] {
    match slot {
        None => &item.claims,
        Some(slot) => item
            .slots
            .iter()
            .find(|s| s.id == slot)
            .map_or(&[], |s| s.claims.as_slice()),
    }
}

fn fresh(member: &str, identity: &DeviceIdentity, changes: &[Vec<u8>]) -> Circle {
    let mut circle = Circle::load(member, changes).unwrap();
    circle.set_keyring(keyring(identity, 7));
    circle
}

#[allow(clippy::too_many_lines)]
fn run(members: usize, ops: Vec<Op>, seed: u64) -> Result<(), TestCaseError> {
    let mut rng = Rng(seed | 1);
    let people: Vec<DeviceIdentity> = (0..members)
        .map(|m| DeviceIdentity::generate(&mut StdRng::seed_from_u64(m as u64 + 1)))
        .collect();
    let ids: Vec<String> = people.iter().map(|p| p.member_id().to_string()).collect();
    let (mut founder, genesis) = Circle::found(&ids[0], "M0", "Circle", T0).unwrap();
    let mut base = vec![genesis];
    for (m, id) in ids.iter().enumerate().skip(1) {
        base.push(
            founder
                .add_member(id, &format!("M{m}"), Role::Member, T0)
                .unwrap(),
        );
    }
    let mut nodes: Vec<Node> = (0..members)
        .map(|m| {
            let mut circle = Circle::load(&ids[m], &base).unwrap();
            circle.set_keyring(keyring(&people[m], seed ^ m as u64));
            Node {
                circle,
                known: base.clone(),
                seen: base.iter().cloned().collect(),
            }
        })
        .collect();
    let mut expect: BTreeMap<String, Expect> = BTreeMap::new();
    let mut next_id = 0u64;
    let mut now = T0;

    for op in ops {
        now += STEP;
        next_id += 1;
        let new_id = iid(next_id);
        let readers_of = |who: usize, to: u8| -> (Vec<String>, Option<BTreeSet<String>>) {
            // Bits of members beyond the circle name nobody; no audience is public.
            let to = to & ((1u8 << members) - 1);
            if to == 0 {
                return (Vec::new(), None);
            }
            let audience: Vec<String> = (0..members)
                .filter(|m| to & (1 << m) != 0)
                .map(|m| ids[m].clone())
                .collect();
            let mut readers: BTreeSet<String> = audience.iter().cloned().collect();
            readers.insert(ids[who].clone());
            (audience, Some(readers))
        };
        let listed = |who: usize, audience: &[String], private: bool| {
            private.then(|| {
                audience
                    .iter()
                    .filter(|m| **m != ids[who])
                    .cloned()
                    .collect::<Vec<_>>()
            })
        };
        match op {
            Op::Sync { from, to } => {
                let (from, to) = (from % members, to % members);
                if from != to {
                    let changes = nodes[from].known.clone();
                    deliver(&mut nodes[to], changes, &mut rng);
                    // The feed, refreshed key by key, matches one read from scratch.
                    let rebuilt = fresh(&ids[to], &people[to], &nodes[to].known);
                    prop_assert_eq!(nodes[to].circle.items(), rebuilt.items());
                    prop_assert_eq!(nodes[to].circle.members(), rebuilt.members());
                }
            }
            Op::CheckIn { who, to } => {
                let who = who % members;
                let (audience, readers) = readers_of(who, to);
                let note = format!("note {next_id}");
                let checkin = NewCheckin {
                    mood: Mood::Low,
                    note: Some(note.clone()),
                    help: None,
                };
                let c = nodes[who]
                    .circle
                    .post_checkin(&new_id, &checkin, &audience, now)
                    .unwrap();
                nodes[who].learn(c);
                expect.insert(
                    new_id.to_string(),
                    Expect {
                        author: ids[who].clone(),
                        kind: ItemKind::CheckIn,
                        audience: listed(who, &audience, readers.is_some()),
                        readers,
                        text: Some(note),
                        closed: None,
                        helpers: None,
                        claims: BTreeMap::new(),
                        thanks: BTreeMap::new(),
                        replies: BTreeMap::new(),
                    },
                );
            }
            Op::Ask {
                who,
                slots,
                helpers,
                soon,
                to,
            } => {
                let who = who % members;
                let (audience, readers) = readers_of(who, to);
                let title = format!("ask {next_id}");
                // Slots and short deadlines pass while the test runs.
                let request = NewRequest {
                    kind: HelpKind::Meals,
                    title: title.clone(),
                    needed_by: soon.then_some(now + 20 * STEP),
                    helpers,
                    slots: (1..=slots as i64)
                        .rev()
                        .map(|n| now + n * 8 * STEP)
                        .collect(),
                    ..NewRequest::default()
                };
                let c = nodes[who]
                    .circle
                    .ask_to(&new_id, &request, &audience, now)
                    .unwrap();
                nodes[who].learn(c);
                let view = nodes[who].circle.item(new_id.as_str()).unwrap();
                let times: Vec<i64> = view.slots.iter().map(|s| s.at).collect();
                let mut sorted = request.slots.clone();
                sorted.sort_unstable();
                prop_assert_eq!(times, sorted);
                let slot_ids: Vec<String> = view.slots.iter().map(|s| s.id.clone()).collect();
                let expected_ids: Vec<String> = (1..=slots).map(|n| n.to_string()).collect();
                prop_assert_eq!(slot_ids, expected_ids);
                expect.insert(
                    new_id.to_string(),
                    Expect {
                        author: ids[who].clone(),
                        kind: ItemKind::Request,
                        audience: listed(who, &audience, readers.is_some()),
                        readers,
                        text: Some(title),
                        closed: None,
                        helpers,
                        claims: BTreeMap::new(),
                        thanks: BTreeMap::new(),
                        replies: BTreeMap::new(),
                    },
                );
            }
            Op::Offer { who, to } => {
                let who = who % members;
                let (audience, readers) = readers_of(who, to);
                let title = format!("offer {next_id}");
                let offer = NewOffer {
                    kind: HelpKind::Talk,
                    title: title.clone(),
                    details: None,
                    when: Some("evenings".into()),
                };
                let c = nodes[who]
                    .circle
                    .offer(&new_id, &offer, &audience, now)
                    .unwrap();
                nodes[who].learn(c);
                expect.insert(
                    new_id.to_string(),
                    Expect {
                        author: ids[who].clone(),
                        kind: ItemKind::Offer,
                        audience: listed(who, &audience, readers.is_some()),
                        readers,
                        text: Some(title),
                        closed: None,
                        helpers: None,
                        claims: BTreeMap::new(),
                        thanks: BTreeMap::new(),
                        replies: BTreeMap::new(),
                    },
                );
            }
            Op::Claim { who, pick, .. }
            | Op::Unclaim { who, pick, .. }
            | Op::Done { who, pick }
            | Op::Cancel { who, pick }
            | Op::Thank { who, pick, .. }
            | Op::Edit { who, pick, .. }
            | Op::Reply { who, pick } => {
                let who = who % members;
                let me = ids[who].clone();
                let mut items = nodes[who].circle.items();
                let mut own_slot = None;
                if let Op::Claim { again: true, .. } = op {
                    // (item, slot) pairs where this member has a claim.
                    let mut mine: Vec<(ItemView, Option<String>)> = Vec::new();
                    for item in &items {
                        if item.claims.iter().any(|c| c.member == me) {
                            mine.push((item.clone(), None));
                        }
                        for s in &item.slots {
                            if s.claims.iter().any(|c| c.member == me) {
                                mine.push((item.clone(), Some(s.id.clone())));
                            }
                        }
                    }
                    if mine.is_empty() {
                        continue;
                    }
                    let (item, slot) = mine.swap_remove(pick % mine.len());
                    items = vec![item];
                    own_slot = Some(slot);
                }
                if items.is_empty() {
                    continue;
                }
                let item = items[pick % items.len()].clone();
                let id = ItemId::parse(&item.id).unwrap();
                let own = item.author == me;
                let claimable = matches!(item.kind, ItemKind::Request | ItemKind::Offer);
                let closed = item.status.is_some_and(RequestStatus::is_closed);
                let slot = match &op {
                    _ if own_slot.is_some() => own_slot.flatten(),
                    Op::Claim { slot, .. } | Op::Unclaim { slot, .. } if !item.slots.is_empty() => {
                        Some(item.slots[slot % item.slots.len()].id.clone())
                    }
                    _ => None,
                };
                let mine = claims_in(&item, slot.as_deref())
                    .iter()
                    .find(|c| c.member == me)
                    .cloned();
                let circle = &mut nodes[who].circle;
                let result = match &op {
                    Op::Claim { message, .. } => {
                        let message = message.map(|n| format!("message {n}"));
                        let result =
                            circle.claim_with(&id, slot.as_deref(), message.as_deref(), now);
                        if result.is_ok() {
                            prop_assert!(claimable && !own && !closed, "{:?}", item);
                            match &mine {
                                // A changed message on the same claim.
                                Some(c) => prop_assert!(message.is_some() && message != c.message),
                                None => {
                                    prop_assert!(
                                        item.status_at(now) != Some(RequestStatus::Expired)
                                    );
                                    let taken = claims_in(&item, slot.as_deref());
                                    if let Some(slot) = &slot {
                                        let at = item.slots.iter().find(|s| s.id == *slot);
                                        prop_assert!(at.is_some_and(|s| s.at >= now));
                                        prop_assert!(taken.is_empty());
                                    } else if let (ItemKind::Request, Some(n)) =
                                        (item.kind, item.helpers)
                                    {
                                        let holding = taken.iter().filter(|c| !c.standby).count();
                                        prop_assert!(holding < n as usize);
                                    }
                                }
                            }
                            let at = mine.as_ref().map_or(now, |c| c.at);
                            let e = expect.get_mut(&item.id).unwrap();
                            e.claims.insert((slot.clone(), me.clone()), (at, message));
                        } else if claimable && own {
                            prop_assert_eq!(&result, &Err(CoreError::OwnRequest(item.id.clone())));
                        } else if !claimable {
                            prop_assert_eq!(&result, &Err(CoreError::NotARequest(item.id.clone())));
                        }
                        result
                    }
                    Op::Unclaim { .. } => {
                        let result = circle.unclaim_slot(&id, slot.as_deref(), now);
                        if claimable {
                            prop_assert_eq!(result.is_ok(), mine.is_some(), "{:?}", &result);
                        }
                        if result.is_ok() {
                            let e = expect.get_mut(&item.id).unwrap();
                            e.claims.remove(&(slot.clone(), me.clone()));
                        }
                        result
                    }
                    Op::Done { .. } | Op::Cancel { .. } => {
                        let done = matches!(op, Op::Done { .. });
                        let result = if done {
                            circle.done(&id, now)
                        } else {
                            circle.cancel(&id, now)
                        };
                        let not_a_request = Err(CoreError::NotARequest(item.id.clone()));
                        if !claimable || (done && item.kind == ItemKind::Offer) {
                            prop_assert_eq!(&result, &not_a_request);
                        } else if !own {
                            prop_assert_eq!(&result, &Err(CoreError::NotAuthor(item.id.clone())));
                        } else {
                            prop_assert_eq!(result.is_ok(), !closed, "{:?}", &result);
                        }
                        if result.is_ok() {
                            let status = match (done, item.kind) {
                                (true, _) => RequestStatus::Fulfilled,
                                (false, ItemKind::Offer) => RequestStatus::Withdrawn,
                                (false, _) => RequestStatus::Cancelled,
                            };
                            expect.get_mut(&item.id).unwrap().closed = Some(status);
                        }
                        result
                    }
                    Op::Thank { whom, note, .. } => {
                        let whom: Vec<String> =
                            whom.map(|m| ids[m % members].clone()).into_iter().collect();
                        let note = note.then(|| format!("thanks {next_id}"));
                        let result = circle.thank(&id, &whom, note.as_deref(), now);
                        let thanked: Vec<String> = if whom.is_empty() {
                            let mut holders: Vec<String> = item
                                .all_claims()
                                .filter(|c| !c.standby)
                                .map(|c| c.member.clone())
                                .collect();
                            holders.sort();
                            holders.dedup();
                            holders
                        } else {
                            whom.clone()
                        };
                        let claimed = thanked
                            .iter()
                            .all(|m| item.all_claims().any(|c| c.member == *m));
                        if item.kind != ItemKind::Request {
                            prop_assert_eq!(&result, &Err(CoreError::NotARequest(item.id.clone())));
                        } else if !own {
                            prop_assert_eq!(&result, &Err(CoreError::NotAuthor(item.id.clone())));
                        } else if thanked.is_empty() || !claimed {
                            prop_assert_eq!(&result, &Err(CoreError::NotClaimed(item.id.clone())));
                        } else {
                            prop_assert!(result.is_ok(), "{:?}", &result);
                            let e = expect.get_mut(&item.id).unwrap();
                            for m in thanked {
                                e.thanks.insert(m, note.clone());
                            }
                        }
                        result
                    }
                    Op::Edit { text, .. } => {
                        let text = format!("edited {text}");
                        let edit = match item.kind {
                            ItemKind::CheckIn => ItemEdit {
                                note: Some(text.clone()),
                                ..ItemEdit::default()
                            },
                            _ => ItemEdit {
                                title: Some(text.clone()),
                                ..ItemEdit::default()
                            },
                        };
                        let result = circle.edit(&id, &edit, now);
                        if !own {
                            prop_assert_eq!(&result, &Err(CoreError::NotAuthor(item.id.clone())));
                        } else if item.audience.is_some() {
                            prop_assert_eq!(&result, &Err(CoreError::PrivateEdit(item.id.clone())));
                        } else if closed {
                            prop_assert!(
                                matches!(result, Err(CoreError::RequestClosed { .. })),
                                "{:?}",
                                &result
                            );
                        } else if item.kind == ItemKind::CheckIn
                            && item.note.as_ref() == Some(&text)
                        {
                            prop_assert!(
                                matches!(result, Err(CoreError::Invalid { .. })),
                                "{:?}",
                                &result
                            );
                        } else {
                            prop_assert!(result.is_ok(), "{:?}", &result);
                            expect.get_mut(&item.id).unwrap().text = Some(text);
                        }
                        result
                    }
                    _ => {
                        let text = format!("reply {next_id}");
                        let result = circle.reply(&id, &new_id, &text, now);
                        prop_assert!(result.is_ok(), "reply refused: {:?}", &result);
                        let e = expect.get_mut(&item.id).unwrap();
                        e.replies.insert(new_id.to_string(), (me.clone(), text));
                        result
                    }
                };
                if let Err(CoreError::Document(e)) = &result {
                    prop_assert!(false, "document error on {:?}: {}", op, e);
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
        prop_assert_eq!(node.circle.rejected_count(), 0);
    }
    let mut views: HashMap<String, ItemView> = HashMap::new();
    for (n, node) in nodes.iter().enumerate() {
        let items = node.circle.items();
        let mut shuffled = all.clone();
        rng.shuffle(&mut shuffled);
        prop_assert_eq!(&fresh(&ids[n], &people[n], &shuffled).items(), &items);
        prop_assert_eq!(node.circle.members(), nodes[0].circle.members());
        // Exactly the items this member may read, each as every other reader shows it.
        let shown: BTreeSet<&str> = items.iter().map(|i| i.id.as_str()).collect();
        let readable: BTreeSet<&str> = expect
            .iter()
            .filter(|(_, e)| e.readers.as_ref().is_none_or(|r| r.contains(&ids[n])))
            .map(|(id, _)| id.as_str())
            .collect();
        prop_assert_eq!(shown, readable);
        for item in items {
            match views.get(&item.id) {
                Some(view) => prop_assert_eq!(view, &item),
                None => {
                    views.insert(item.id.clone(), item);
                }
            }
        }
    }

    // Each item is what its author, its claimers and its repliers last made it.
    for (id, e) in &expect {
        let Some(item) = views.get(id) else {
            // Private to members who are all... never: the author always reads it.
            prop_assert!(false, "nobody shows {}", id);
            continue;
        };
        prop_assert_eq!(&item.author, &e.author);
        prop_assert_eq!(item.kind, e.kind);
        prop_assert_eq!(&item.audience, &e.audience);
        let text = match e.kind {
            ItemKind::CheckIn => &item.note,
            _ => &item.title,
        };
        prop_assert_eq!(text, &e.text);
        let mut claims = BTreeMap::new();
        for c in &item.claims {
            claims.insert((None, c.member.clone()), (c.at, c.message.clone()));
        }
        for s in &item.slots {
            for c in &s.claims {
                claims.insert(
                    (Some(s.id.clone()), c.member.clone()),
                    (c.at, c.message.clone()),
                );
            }
        }
        prop_assert_eq!(&claims, &e.claims, "claims of {}", id);
        prop_assert!(claims.keys().all(|(_, m)| *m != e.author));
        // Who holds a spot and who waits: the first `helpers` claims (one per slot).
        let spots = match e.kind {
            ItemKind::Request => e.helpers.map(|n| n as usize),
            _ => None,
        };
        for (n, c) in item.claims.iter().enumerate() {
            prop_assert_eq!(c.standby, spots.is_some_and(|s| n >= s));
        }
        for s in &item.slots {
            for (n, c) in s.claims.iter().enumerate() {
                prop_assert_eq!(c.standby, n >= 1);
            }
        }
        let thanks: BTreeMap<String, Option<String>> = item
            .thanks
            .iter()
            .map(|t| (t.member.clone(), t.note.clone()))
            .collect();
        prop_assert_eq!(&thanks, &e.thanks);
        let replies: BTreeMap<String, (String, String)> = item
            .replies
            .iter()
            .map(|r| (r.id.clone(), (r.author.clone(), r.text.clone())))
            .collect();
        prop_assert_eq!(&replies, &e.replies);
        let holding = item.all_claims().any(|c| !c.standby);
        let status = match (e.kind, e.closed) {
            (ItemKind::CheckIn | ItemKind::Nudge, _) => None,
            (_, Some(closed)) => Some(closed),
            (ItemKind::Request, None) if holding => Some(RequestStatus::Claimed),
            (_, None) => Some(RequestStatus::Open),
        };
        prop_assert_eq!(item.status, status);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn circle_life_converges_and_rules_hold(
        members in 3..=4usize,
        ops in proptest::collection::vec(op(), 1..60),
        seed in any::<u64>(),
    ) {
        run(members, ops, seed)?;
    }
}
