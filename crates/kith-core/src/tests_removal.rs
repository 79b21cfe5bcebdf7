//! Unit tests of the membership layer (`membership.rs`, and what `validate.rs` and `feed.rs`
//! do with it): removing members, key epochs and their wraps, the key plan, stewards'
//! proposals and approvals, the approvals policy; the forged writes every other member
//! refuses, and concurrent removals delivered in every order.
//!
//! Wrapped keys are any 81 bytes and commitments any 32 bytes here: kith-core never opens
//! them.
//!
//! Tests named `bug_*` show bugs found in the code under test: each fails until its bug is
//! fixed, and its doc comment says where, what happens and what should.

use std::collections::BTreeSet;

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ObjId, ObjType, ROOT};

use super::*;
use crate::tests::{DAY, T0, iid, map_at, raw_edit};

const WEEK: i64 = 7 * DAY;

/// Ann, Bob, Cat, Dan and Eve are members 1 to 5 (`World::c[0..5]`); Fay (6) is not.
const ANN: usize = 0;
const BOB: usize = 1;
const CAT: usize = 2;
const DAN: usize = 3;
const EVE: usize = 4;

fn id(n: u8) -> String {
    member_id(&[n; 32])
}

/// The member id of `who` (`ANN` ..= `EVE`, or 5 for Fay).
fn who(n: usize) -> String {
    id(n as u8 + 1)
}

fn fay() -> String {
    id(6)
}

fn inv(n: u8) -> String {
    invite_id(&[n; 16])
}

fn wrapped(n: u8) -> Vec<u8> {
    vec![n; WRAPPED_LEN]
}

fn commitment(epoch: u32) -> [u8; 32] {
    [epoch as u8; 32]
}

/// A new epoch `id` of `generation`, its key wrapped for `recipients`.
fn epoch(id: u32, generation: u64, recipients: &[String]) -> NewEpoch {
    NewEpoch {
        id,
        generation,
        commitment: commitment(id),
        wraps: recipients
            .iter()
            .map(|r| (r.clone(), wrapped(id as u8)))
            .collect(),
    }
}

fn ids(members: &[usize]) -> Vec<String> {
    members.iter().map(|n| who(*n)).collect()
}

fn held(epochs: &[u32]) -> BTreeSet<u32> {
    epochs.iter().copied().collect()
}

/// The change of a removal (or policy change) carried out at once.
fn done(outcome: Result<RemoveOutcome, CoreError>) -> Vec<u8> {
    match outcome {
        Ok(RemoveOutcome::Removed(change)) => change,
        other => panic!("not carried out: {other:?}"),
    }
}

fn meals(helpers: Option<u32>) -> NewRequest {
    NewRequest {
        kind: HelpKind::Meals,
        title: "Soup for the week".into(),
        needed_by: Some(T0 + 7 * DAY),
        helpers,
        ..NewRequest::default()
    }
}

/// Ann founds the circle, adds Bob, Cat, Dan and Eve, and makes Bob a steward; each has a
/// circle loaded from those changes.
struct World {
    c: Vec<Circle>,
    /// Every change shared so far, in order.
    log: Vec<Vec<u8>>,
}

fn world() -> World {
    let (mut ann, genesis) = Circle::found(&who(ANN), "Ann", "Tuesday people", T0).unwrap();
    let mut log = vec![genesis];
    for (n, name) in [(BOB, "Bob"), (CAT, "Cat"), (DAN, "Dan"), (EVE, "Eve")] {
        log.push(
            ann.add_member(&who(n), name, Role::Member, T0 + n as i64)
                .unwrap(),
        );
    }
    log.push(ann.set_role(&who(BOB), Role::Steward, T0 + 5).unwrap());
    let mut c = vec![ann];
    for n in BOB..=EVE {
        c.push(Circle::load(&who(n), &log).unwrap());
    }
    World { c, log }
}

impl World {
    /// Delivers `changes` to every member (their own are already there) and logs them.
    fn share(&mut self, changes: &[Vec<u8>]) {
        self.log.extend_from_slice(changes);
        for c in &mut self.c {
            c.apply_changes(changes).unwrap();
        }
    }

    /// Member `n` rebuilt from the log.
    fn fresh(&self, n: usize) -> Circle {
        Circle::load(&who(n), &self.log).unwrap()
    }
}

/// What a circle shows about its roster, keys, approvals and items.
#[derive(Debug, PartialEq)]
struct Shown {
    members: Vec<MemberView>,
    former: Vec<MemberView>,
    epochs: Vec<EpochView>,
    policy: u32,
    proposals: Vec<ProposalView>,
    items: Vec<ItemView>,
    invites: Vec<InviteView>,
}

fn shown(c: &Circle) -> Shown {
    Shown {
        members: c.members(),
        former: c.former_members(),
        epochs: c.epochs(),
        policy: c.policy(),
        proposals: c.proposals(),
        items: c.items(),
        invites: c.invites(),
    }
}

fn member_ids(members: &[MemberView]) -> Vec<String> {
    members.iter().map(|m| m.id.clone()).collect()
}

/// The epochs that count (members write with them); the others only open what was
/// sealed with them.
fn epoch_ids(c: &Circle) -> Vec<u32> {
    c.epochs()
        .iter()
        .filter(|e| e.counted)
        .map(|e| e.id)
        .collect()
}

/// Every order of `n` things.
fn orders(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![Vec::new()];
    }
    let mut out = Vec::new();
    for rest in orders(n - 1) {
        for at in 0..=rest.len() {
            let mut order = rest.clone();
            order.insert(at, n - 1);
            out.push(order);
        }
    }
    out
}

/// Delivers `changes` on top of `base` to a fresh circle of each of `observers`: one at a
/// time in every order, and all at once. Every one of them accepts every change and shows
/// the same; returns the one that got them in one batch.
fn converge(base: &[Vec<u8>], changes: &[Vec<u8>], observers: &[String]) -> Circle {
    let mut first: Option<Shown> = None;
    let mut check = |c: &Circle, how: &str| {
        assert_eq!(c.rejected_count(), 0, "{how}");
        let now = shown(c);
        match &first {
            None => first = Some(now),
            Some(expected) => assert_eq!(&now, expected, "{how}"),
        }
    };
    for order in orders(changes.len()) {
        for observer in observers {
            let mut c = Circle::load(observer, base).unwrap();
            for &n in &order {
                c.apply_changes(std::slice::from_ref(&changes[n])).unwrap();
            }
            check(&c, &format!("one at a time in order {order:?}"));
        }
    }
    let mut all = base.to_vec();
    all.extend(changes.iter().rev().cloned());
    let loaded = Circle::load(&observers[0], &all).unwrap();
    check(&loaded, "loaded all at once");
    let mut c = Circle::load(&observers[0], base).unwrap();
    c.apply_changes(changes).unwrap();
    check(&c, "applied in one batch");
    c
}

/// Delivers a forged change to every member but its `forger`: each refuses it, counts it
/// against the forger, and shows nothing new. Returns the reasons given.
fn refused_by_all(w: &mut World, forger: usize, forged: &[u8], what: &str) -> Vec<String> {
    let mut reasons = Vec::new();
    for (n, c) in w.c.iter_mut().enumerate() {
        if n == forger {
            continue;
        }
        let (before, rejected) = (shown(c), c.rejected_count());
        assert!(
            c.apply_changes(&[forged.to_vec()]).is_err(),
            "accepted by member {n}: {what}"
        );
        assert_eq!(c.rejected_count(), rejected + 1, "{what}");
        assert_eq!(shown(c), before, "{what}");
        let new = c.rejections_since(rejected);
        assert_eq!(new.len(), 1, "{what}");
        assert_eq!(new[0].writer, who(forger), "{what}");
        reasons.push(new[0].reason.clone());
    }
    reasons
}

/// Delivers a change to every member but its writer: each accepts it.
fn accepted_by_all(w: &mut World, writer: usize, change: &[u8], what: &str) {
    w.log.push(change.to_vec());
    for (n, c) in w.c.iter_mut().enumerate() {
        if n == writer {
            continue;
        }
        c.apply_changes(&[change.to_vec()])
            .unwrap_or_else(|e| panic!("refused by member {n}: {what}: {e}"));
    }
}

/// The highest op counter of `member`'s changes that `c` holds.
fn max_op_of(c: &mut Circle, member: &str) -> u64 {
    let actor = ActorId::from(actor_for_member(member).unwrap());
    c.doc
        .get_changes(&[])
        .iter()
        .filter(|ch| *ch.actor_id() == actor)
        .map(|ch| ch.max_op())
        .max()
        .unwrap_or(0)
}

/// The map keys one change writes (made or put).
fn keys_written(change: &[u8]) -> BTreeSet<String> {
    let change = automerge::Change::try_from(change).unwrap();
    change
        .decode()
        .operations
        .iter()
        .filter_map(|op| match &op.key {
            automerge::legacy::Key::Map(key) => Some(key.to_string()),
            automerge::legacy::Key::Seq(_) => None,
        })
        .collect()
}

// Raw writes, as a hostile member's daemon would make them.

/// Member `member`'s roster entry.
fn entry(doc: &AutoCommit, member: &str) -> ObjId {
    map_at(doc, &map_at(doc, &ROOT, schema::MEMBERS), member)
}

/// Epoch `id` (as the document spells it).
fn epoch_obj(doc: &AutoCommit, id: &str) -> ObjId {
    map_at(doc, &map_at(doc, &ROOT, schema::EPOCHS), id)
}

/// The wrapped keys of epoch `id`.
fn wraps_of(doc: &AutoCommit, id: &str) -> ObjId {
    map_at(doc, &epoch_obj(doc, id), schema::WRAPS)
}

/// A removal marker and cutoff on `member`'s entry (the epoch is written apart).
fn raw_mark(doc: &mut AutoCommit, member: &str, cutoff: u64) {
    let e = entry(doc, member);
    doc.put(&e, schema::REMOVED, T0 + 50).unwrap();
    doc.put(&e, schema::CUTOFF, cutoff).unwrap();
}

/// A new epoch `key` of generation 2, wrapped for `recipients`.
fn raw_epoch(doc: &mut AutoCommit, key: &str, recipients: &[&str]) {
    let epochs = map_at(doc, &ROOT, schema::EPOCHS);
    let e = doc.put_object(&epochs, key, ObjType::Map).unwrap();
    doc.put(&e, schema::GENERATION, 2_u64).unwrap();
    doc.put(&e, schema::COMMITMENT, vec![9_u8; 32]).unwrap();
    doc.put(&e, schema::CREATED_AT, T0 + 50).unwrap();
    // The removals the roster holds with it, this change's included.
    let roster = map_at(doc, &ROOT, schema::MEMBERS);
    let removals = {
        use automerge::ReadDoc;
        let read: &AutoCommit = doc;
        read.map_range(&roster, ..)
            .filter(|entry| matches!(read.get(entry.id(), schema::REMOVED), Ok(Some(_))))
            .count() as u64
    };
    doc.put(&e, schema::EPOCH_REMOVALS, removals).unwrap();
    let w = doc.put_object(&e, schema::WRAPS, ObjType::Map).unwrap();
    for r in recipients {
        doc.put(&w, *r, wrapped(9)).unwrap();
    }
}

/// Proposal `id`.
fn proposal_obj(doc: &AutoCommit, id: &str) -> ObjId {
    map_at(doc, &map_at(doc, &ROOT, schema::PROPOSALS), id)
}

/// A new roster entry for `member` ("Fay"), through `invite` if given.
fn raw_entry(doc: &mut AutoCommit, member: &str, role: &str, invite: Option<&str>) {
    let roster = map_at(doc, &ROOT, schema::MEMBERS);
    let e = doc.put_object(&roster, member, ObjType::Map).unwrap();
    doc.put(&e, "n", "Fay").unwrap();
    doc.put(&e, schema::ROLE, role).unwrap();
    doc.put(&e, "j", T0 + 60).unwrap();
    if let Some(invite) = invite {
        doc.put(&e, schema::INVITED_VIA, invite).unwrap();
    }
    doc.put(&e, schema::HANDED, "0").unwrap();
}

// ---------------------------------------------------------------------------------------
// 1. A removal, honestly made.
// ---------------------------------------------------------------------------------------

/// A steward's removal carries the marker and a new epoch not wrapped for the member;
/// every member applies it in any order among concurrent changes and agrees: the member is
/// former, their items stay theirs, their claim frees its spot, their invite stops
/// counting, and they cannot come back by invite or by a new roster entry.
#[test]
fn a_steward_removes_a_member_for_good() {
    let mut w = world();
    // Bob (a steward) makes an invite, checks in and claims Cat's one-helper request.
    let changes = [
        w.c[BOB]
            .create_invite(&inv(1), [1; 32], T0 + 30 * DAY, 3, T0 + 10)
            .unwrap(),
        w.c[BOB]
            .checkin(&iid(1), Mood::Low, Some("rough week"), T0 + 10)
            .unwrap(),
        w.c[CAT].ask(&iid(2), &meals(Some(1)), T0 + 10).unwrap(),
        w.c[ANN]
            .create_invite(&inv(2), [2; 32], T0 + 30 * DAY, 3, T0 + 10)
            .unwrap(),
    ];
    w.share(&changes);
    let claim = w.c[BOB].claim(&iid(2), T0 + 11).unwrap();
    w.share(&[claim]);
    assert_eq!(
        w.c[CAT].item(iid(2).as_str()).unwrap().status,
        Some(RequestStatus::Claimed)
    );
    assert_eq!(w.c[CAT].invites().len(), 2);
    let base = w.log.clone();

    // Ann removes Bob while Cat checks in and Dan replies to Bob's check-in.
    let stays = ids(&[ANN, CAT, DAN, EVE]);
    let cutoff = max_op_of(&mut w.c[ANN], &who(BOB));
    let removal =
        done(w.c[ANN].remove_member(&who(BOB), &epoch(7, 1, &stays), iid(90).as_str(), T0 + 100));
    let keys = keys_written(&removal);
    for key in [schema::REMOVED, schema::CUTOFF, "7", schema::WRAPS] {
        assert!(keys.contains(key), "the removal change writes {key:?}");
    }
    assert!(
        !keys.contains(&who(BOB)),
        "the new key is not wrapped for Bob"
    );
    let concurrent = [
        removal.clone(),
        w.c[CAT]
            .checkin(&iid(3), Mood::Good, None, T0 + 100)
            .unwrap(),
        w.c[DAN]
            .reply(&iid(1), &iid(4), "thinking of you", T0 + 100)
            .unwrap(),
    ];
    let seen = converge(&base, &concurrent, &ids(&[CAT, DAN, EVE, BOB]));
    w.share(&concurrent);
    for c in &w.c {
        assert_eq!(shown(c), shown(&seen));
    }

    let c = &w.c[CAT];
    assert_eq!(member_ids(&c.members()), stays);
    assert_eq!(member_ids(&c.former_members()), vec![who(BOB)]);
    assert_eq!(
        c.former_members()[0].removed,
        Some(Removal {
            at: T0 + 100,
            cutoff
        })
    );
    assert!(cutoff > 0);
    assert!(c.is_removed(&who(BOB)) && !c.is_removed(&who(CAT)));
    assert!(w.c[BOB].is_removed(&who(BOB)), "Bob's own circle knows");
    // The new epoch, as every member reads it.
    let epochs = c.epochs();
    assert_eq!(epochs.len(), 1);
    assert_eq!(
        (
            epochs[0].id,
            epochs[0].generation,
            epochs[0].commitment,
            epochs[0].creator.as_str(),
            epochs[0].created_at
        ),
        (7, 1, commitment(7), who(ANN).as_str(), T0 + 100)
    );
    let mut recipients: Vec<String> = epochs[0]
        .wraps
        .iter()
        .map(|w| w.recipient.clone())
        .collect();
    recipients.sort();
    let mut expected = stays.clone();
    expected.sort();
    assert_eq!(recipients, expected);
    assert!(epochs[0].wraps.iter().all(|w| w.sender == who(ANN)));

    // What Bob wrote before stays, attributed to him; so do replies to it.
    let bobs = c.item(iid(1).as_str()).unwrap();
    assert_eq!(bobs.author, who(BOB));
    assert_eq!(bobs.note.as_deref(), Some("rough week"));
    assert_eq!(bobs.replies.len(), 1);
    assert!(c.item(iid(3).as_str()).is_some());
    // His claim no longer holds the spot: the request is open again, and Dan takes it.
    let request = c.item(iid(2).as_str()).unwrap();
    assert_eq!(request.status, Some(RequestStatus::Open));
    assert!(request.claims.is_empty());
    let dans = w.c[DAN].claim(&iid(2), T0 + 101).unwrap();
    w.share(&[dans]);
    let request = w.c[CAT].item(iid(2).as_str()).unwrap();
    assert_eq!(request.status, Some(RequestStatus::Claimed));
    assert_eq!(request.claims.len(), 1);
    assert_eq!(
        (request.claims[0].member.as_str(), request.claims[0].standby),
        (who(DAN).as_str(), false)
    );

    // His invite stops counting; Ann's still does.
    let listed: Vec<String> = w.c[CAT].invites().iter().map(|i| i.id.clone()).collect();
    assert_eq!(listed, vec![inv(2)]);
    assert_eq!(
        w.c[CAT].admit(&fay(), "Fay", &inv(1), &[7], T0 + 102),
        Err(CoreError::UnknownInvite(inv(1)))
    );
    // He cannot be admitted again, through any invite.
    assert_eq!(
        w.c[CAT].admit(&who(BOB), "Bob", &inv(2), &[7], T0 + 102),
        Err(CoreError::Removed(who(BOB)))
    );
    assert_eq!(
        w.c[ANN].admit(&who(BOB), "Bob again", &inv(2), &[7], T0 + 102),
        Err(CoreError::Removed(who(BOB)))
    );
    // Nor re-added by a new roster entry written over his (raw, by Ann: refused).
    let readd = raw_edit(&mut w.c[ANN], |doc| {
        raw_entry(doc, &who(BOB), "steward", None);
    });
    let reasons = refused_by_all(&mut w, ANN, &readd, "Ann writes Bob's entry again");
    assert!(
        reasons.iter().all(|r| r.contains("written once")),
        "{reasons:?}"
    );

    // Loading the log rebuilds the same.
    for n in [ANN, BOB, CAT, DAN] {
        let fresh = w.fresh(n);
        assert_eq!(fresh.members(), w.c[CAT].members());
        assert_eq!(fresh.former_members(), w.c[CAT].former_members());
        assert_eq!(fresh.items(), w.c[CAT].items());
    }
}

/// BUG (circle.rs `Circle::add_member`, with `rules::check_add_member`): a steward's
/// `add_member` of a removed member is not refused. `check_add_member` only looks at the
/// current roster (which leaves the removed member out) and `add_member` lacks the
/// `is_removed` check `admit` has, so it reconciles a new entry into the removed member's
/// existing one: the change is written, every member accepts it (a steward may write the
/// fields of any entry), and the former member's role and join time are rewritten. She
/// stays removed (the marker is untouched), so nothing is re-admitted, but the API says
/// yes to something that does not happen. Expected: `CoreError::Removed`, as `admit`.
#[test]
fn bug_add_member_rewrites_a_removed_members_entry() {
    let mut w = world();
    let removal = done(w.c[ANN].remove_member(
        &who(EVE),
        &epoch(7, 1, &ids(&[ANN, BOB, CAT, DAN])),
        iid(90).as_str(),
        T0 + 10,
    ));
    w.share(&[removal]);
    let before = w.c[CAT].former_members();
    let result = w.c[BOB].add_member(&who(EVE), "Eve", Role::Steward, T0 + 11);
    if let Ok(change) = &result {
        accepted_by_all(&mut w, BOB, change, "Bob adds Eve again");
        // She stays removed everywhere; her former entry is rewritten.
        for c in &w.c {
            assert!(c.is_removed(&who(EVE)));
            assert!(!member_ids(&c.members()).contains(&who(EVE)));
        }
        let after = w.c[CAT].former_members();
        assert_eq!(
            (before[0].role, after[0].role),
            (Role::Member, Role::Steward)
        );
        assert_eq!((before[0].joined_at, after[0].joined_at), (T0 + 4, T0 + 11));
    }
    assert_eq!(result.map(|_| ()), Err(CoreError::Removed(who(EVE))));
}

// ---------------------------------------------------------------------------------------
// 2. Refused locally, with clear errors.
// ---------------------------------------------------------------------------------------

/// Every removal the rules do not allow is refused before anything is written, with an
/// error that says why.
#[test]
fn bad_removals_are_refused_locally() {
    let mut w = world();
    let all_but_dan = ids(&[ANN, BOB, CAT, EVE]);
    let good = epoch(7, 1, &all_but_dan);
    let heads = w.c[ANN].doc.get_heads();
    let p = iid(90);
    let p = p.as_str();
    // A member who is not a steward.
    assert_eq!(
        w.c[CAT].remove_member(&who(DAN), &good, p, T0 + 10),
        Err(CoreError::NotSteward)
    );
    assert_eq!(
        w.c[CAT].check_removal(&who(DAN)),
        Err(CoreError::NotSteward)
    );
    // Oneself.
    assert!(matches!(
        w.c[ANN].remove_member(&who(ANN), &epoch(7, 1, &ids(&[BOB, CAT, DAN, EVE])), p, T0 + 10),
        Err(CoreError::Invalid { what: "remove", ref why }) if why.contains("yourself")
    ));
    // Someone not in the circle.
    assert_eq!(
        w.c[ANN].remove_member(&fay(), &good, p, T0 + 10),
        Err(CoreError::NotMember(fay()))
    );
    // A new key wrapped for the member being removed, for a non-member, of the wrong
    // length, or twice for one member.
    assert!(matches!(
        w.c[ANN].remove_member(&who(DAN), &epoch(7, 1, &ids(&[ANN, BOB, CAT, DAN, EVE])), p, T0 + 10),
        Err(CoreError::Invalid { what: "epoch", ref why }) if why.contains("removed")
    ));
    let mut odd = epoch(7, 1, &all_but_dan);
    odd.wraps.push((fay(), wrapped(7)));
    assert_eq!(
        w.c[ANN].remove_member(&who(DAN), &odd, p, T0 + 10),
        Err(CoreError::NotMember(fay()))
    );
    let mut short = epoch(7, 1, &all_but_dan);
    short.wraps[0].1.pop();
    assert!(matches!(
        w.c[ANN].remove_member(&who(DAN), &short, p, T0 + 10),
        Err(CoreError::Invalid { what: "epoch", .. })
    ));
    let mut twice = epoch(7, 1, &all_but_dan);
    twice.wraps.push((who(BOB), wrapped(8)));
    assert!(matches!(
        w.c[ANN].remove_member(&who(DAN), &twice, p, T0 + 10),
        Err(CoreError::Invalid { what: "epoch", .. })
    ));
    // Epoch 0 is the circle's first key, never in the document.
    assert_eq!(
        w.c[ANN].remove_member(&who(DAN), &epoch(0, 1, &all_but_dan), p, T0 + 10),
        Err(CoreError::IdInUse("0".into()))
    );
    assert_eq!(w.c[ANN].doc.get_heads(), heads, "nothing was written");

    // An epoch id already in use.
    let rotation = w.c[BOB]
        .rotate(&epoch(7, 1, &all_but_dan), T0 + 10)
        .unwrap();
    w.share(&[rotation]);
    let heads = w.c[ANN].doc.get_heads();
    assert_eq!(
        w.c[ANN].remove_member(&who(DAN), &epoch(7, 2, &all_but_dan), p, T0 + 11),
        Err(CoreError::IdInUse("7".into()))
    );
    assert_eq!(w.c[ANN].doc.get_heads(), heads, "nothing was written");

    // Removed, then removed again.
    let removal = done(w.c[ANN].remove_member(&who(DAN), &epoch(8, 2, &all_but_dan), p, T0 + 12));
    w.share(&[removal]);
    for by in [ANN, BOB] {
        assert!(matches!(
            w.c[by].remove_member(&who(DAN), &epoch(9, 3, &all_but_dan), p, T0 + 13),
            Err(CoreError::Invalid { what: "remove", ref why }) if why.contains("already removed")
        ));
    }
}

/// The last steward: a steward cannot remove themself, so the sole steward is never
/// removed by anyone; `remove_member` refuses it as self-removal (the `LastSteward`
/// branch of `check_removal` can never be reached: a second steward is needed to remove a
/// steward at all, and then the target is not the last one).
#[test]
fn the_last_steward_cannot_be_removed() {
    let (mut ann, genesis) = Circle::found(&who(ANN), "Ann", "Alone", T0).unwrap();
    let add = ann
        .add_member(&who(BOB), "Bob", Role::Member, T0 + 1)
        .unwrap();
    let mut bob = Circle::load(&who(BOB), &[genesis, add]).unwrap();
    assert!(matches!(
        ann.remove_member(
            &who(ANN),
            &epoch(7, 1, &ids(&[BOB])),
            iid(90).as_str(),
            T0 + 2
        ),
        Err(CoreError::Invalid { what: "remove", .. })
    ));
    assert_eq!(
        bob.remove_member(
            &who(ANN),
            &epoch(7, 1, &ids(&[BOB])),
            iid(90).as_str(),
            T0 + 2
        ),
        Err(CoreError::NotSteward)
    );
    // As for stepping down: the last steward stays.
    assert_eq!(
        ann.set_role(&who(ANN), Role::Member, T0 + 2),
        Err(CoreError::LastSteward)
    );
    assert_eq!(ann.members().len(), 2);
}

/// A circle founded before epochs and proposals existed (no `k`, `y` maps) cannot hold
/// removals, rotations or policies: refused with `OldCircle`, nothing written.
#[test]
fn old_circles_cannot_hold_removals() {
    let mut blank = Circle::load(&who(ANN), &[]).unwrap();
    let genesis = raw_edit(&mut blank, |doc| {
        doc.put(&ROOT, schema::NAME, "Old circle").unwrap();
        let roster = doc
            .put_object(&ROOT, schema::MEMBERS, ObjType::Map)
            .unwrap();
        let ann = doc.put_object(&roster, who(ANN), ObjType::Map).unwrap();
        doc.put(&ann, "n", "Ann").unwrap();
        doc.put(&ann, schema::ROLE, "steward").unwrap();
        doc.put(&ann, "j", T0).unwrap();
        for key in [
            schema::CHECKINS,
            schema::REQUESTS,
            schema::REPLIES,
            schema::INVITES,
        ] {
            doc.put_object(&ROOT, key, ObjType::Map).unwrap();
        }
    });
    let mut ann = Circle::load(&who(ANN), std::slice::from_ref(&genesis)).unwrap();
    assert_eq!(ann.name(), "Old circle");
    let add = ann
        .add_member(&who(BOB), "Bob", Role::Member, T0 + 1)
        .unwrap();
    let bob = Circle::load(&who(BOB), &[genesis, add]).unwrap();
    let heads = ann.doc.get_heads();
    assert_eq!(
        ann.remove_member(
            &who(BOB),
            &epoch(7, 1, &ids(&[ANN])),
            iid(90).as_str(),
            T0 + 2
        ),
        Err(CoreError::OldCircle("removals"))
    );
    assert_eq!(
        ann.rotate(&epoch(7, 1, &ids(&[ANN, BOB])), T0 + 2),
        Err(CoreError::OldCircle("key rotations"))
    );
    assert_eq!(
        ann.set_policy(1, iid(91).as_str(), T0 + 2),
        Err(CoreError::OldCircle("approval policies"))
    );
    assert_eq!(ann.doc.get_heads(), heads, "nothing was written");
    // Reading works: epoch 0 only, policy 1, nothing pending.
    assert!(ann.epochs().is_empty() && ann.proposals().is_empty());
    assert_eq!(ann.policy(), 1);
    let plan = bob.key_plan(&held(&[0]), T0 + 2, WEEK);
    assert_eq!(plan.write_epoch, Some(0));
    assert_eq!(plan.rotate, None);
}

/// Dan asks for help (Cat claims it) and checks in; then Bob removes him. Returns the
/// world with the removal shared.
fn dan_removed() -> World {
    let mut w = world();
    let changes = [
        w.c[DAN].ask(&iid(1), &meals(None), T0 + 10).unwrap(),
        w.c[DAN]
            .checkin(&iid(2), Mood::Okay, None, T0 + 10)
            .unwrap(),
        w.c[CAT].ask(&iid(3), &meals(None), T0 + 10).unwrap(),
        w.c[ANN]
            .create_invite(&inv(1), [1; 32], T0 + 30 * DAY, 3, T0 + 10)
            .unwrap(),
    ];
    w.share(&changes);
    let claims = [
        w.c[DAN].claim(&iid(3), T0 + 11).unwrap(),
        w.c[CAT].claim(&iid(1), T0 + 11).unwrap(),
    ];
    w.share(&claims);
    let removal = done(w.c[BOB].remove_member(
        &who(DAN),
        &epoch(7, 1, &ids(&[ANN, BOB, CAT, EVE])),
        iid(90).as_str(),
        T0 + 20,
    ));
    w.share(&[removal]);
    w
}

fn gone<T>() -> Result<T, CoreError> {
    Err(CoreError::Removed(who(DAN)))
}

/// Once a member's circle holds their removal, it refuses their further writes with
/// `CoreError::Removed` (every other member would refuse them anyway); the few writes
/// that need a current member's entry say `NotMember`. Nothing is written.
#[test]
fn a_removed_member_cannot_write_any_more() {
    let mut w = dan_removed();
    let dan = &mut w.c[DAN];
    let heads = dan.doc.get_heads();
    assert_eq!(dan.checkin(&iid(10), Mood::Good, None, T0 + 30), gone());
    assert_eq!(dan.ask(&iid(11), &meals(None), T0 + 30), gone());
    assert_eq!(dan.reply(&iid(3), &iid(12), "still here", T0 + 30), gone());
    assert_eq!(dan.claim(&iid(3), T0 + 30), gone());
    let soup = NewOffer {
        kind: HelpKind::Meals,
        title: "Soup".into(),
        ..NewOffer::default()
    };
    assert_eq!(dan.offer(&iid(13), &soup, &[], T0 + 30), gone());
    assert_eq!(dan.nudge(&iid(14), &who(ANN), None, T0 + 30), gone());
    assert_eq!(dan.rotate(&epoch(9, 2, &ids(&[DAN])), T0 + 30), gone());
    assert_eq!(
        dan.remove_member(
            &who(ANN),
            &epoch(9, 2, &ids(&[DAN])),
            iid(91).as_str(),
            T0 + 30
        ),
        gone()
    );
    assert_eq!(dan.check_removal(&who(ANN)), gone());
    assert_eq!(dan.set_policy(1, iid(91).as_str(), T0 + 30), gone());
    assert_eq!(dan.approve_invite(&inv(1), T0 + 30), gone());
    fn not_member<T>() -> Result<T, CoreError> {
        Err(CoreError::NotMember(who(DAN)))
    }
    assert_eq!(
        dan.admit(&fay(), "Fay", &inv(1), &[0], T0 + 30),
        not_member()
    );
    assert_eq!(dan.set_my_quiet_hours(Some("22-7"), T0 + 30), not_member());
    assert_eq!(
        dan.set_my_addresses(&["/ip4/192.0.2.1/tcp/1".to_string()], T0 + 30),
        not_member()
    );
    // His claim no longer counts, even to him.
    assert_eq!(
        dan.unclaim(&iid(3), T0 + 30),
        Err(CoreError::NotClaimed(iid(3).to_string()))
    );
    assert_eq!(dan.doc.get_heads(), heads, "nothing was written");
}

/// BUG (circle.rs `done`/`cancel`/`close`, `edit`, `thank`): a removed member's own circle
/// still lets them close, edit and thank on their own items. These checks (`rules::
/// check_close`, `check_edit`, `check_thank`) only look at authorship, never at
/// `require_member`, so the circle writes a change that every other member refuses
/// (`CoreError::Removed`: it follows the removal), and the removed member's copy shows
/// the request fulfilled while no one else's does. Expected: `CoreError::Removed`, nothing
/// written, as for posts and claims.
#[test]
fn bug_a_removed_member_still_closes_edits_and_thanks_their_items() {
    type Write = fn(&mut Circle) -> Result<Vec<u8>, CoreError>;
    let writes: [(&str, Write); 4] = [
        ("done", |dan| dan.done(&iid(1), T0 + 30)),
        ("cancel", |dan| dan.cancel(&iid(1), T0 + 30)),
        ("thank", |dan| dan.thank(&iid(1), &[], None, T0 + 30)),
        ("edit", |dan| {
            let edit = ItemEdit {
                note: Some("edited".into()),
                ..ItemEdit::default()
            };
            dan.edit(&iid(2), &edit, T0 + 30)
        }),
    ];
    let mut wrong = Vec::new();
    for (what, write) in writes {
        let mut w = dan_removed();
        let heads = w.c[DAN].doc.get_heads();
        let result = write(&mut w.c[DAN]);
        if let Ok(change) = &result {
            // Written anyway: every other member refuses it, as following the removal.
            let reasons = refused_by_all(&mut w, DAN, change, what);
            assert!(
                reasons
                    .iter()
                    .all(|r| *r == CoreError::Removed(who(DAN)).to_string())
            );
            assert_eq!(
                w.fresh(ANN).item(iid(1).as_str()).unwrap().status,
                Some(RequestStatus::Claimed),
                "nobody else sees a change"
            );
        }
        if result != gone() || w.c[DAN].doc.get_heads() != heads {
            wrong.push((what, result.map(|_| "a change written")));
        }
    }
    assert!(wrong.is_empty(), "not refused with Removed: {wrong:?}");
}

// ---------------------------------------------------------------------------------------
// 3. Forgeries: raw changes every other member refuses.
// ---------------------------------------------------------------------------------------

/// What forgeries name.
struct Names {
    ann: String,
    bob: String,
    cat: String,
    dan: String,
    eve: String,
    fay: String,
    /// A pending proposal (Ann's, to remove Dan) and an invite only Ann approved, under
    /// policy 2 (`policy_two`).
    proposal: String,
    invite: String,
}

fn names() -> Names {
    Names {
        ann: who(ANN),
        bob: who(BOB),
        cat: who(CAT),
        dan: who(DAN),
        eve: who(EVE),
        fay: fay(),
        proposal: iid(41).to_string(),
        invite: inv(3),
    }
}

/// Ann has removed Eve with epoch 7 (generation 1), wrapped for Ann, Bob and Cat (Dan
/// lacks it); everyone, Eve included, has the removal. Policy 1.
fn eve_removed() -> World {
    let mut w = world();
    let removal = done(w.c[ANN].remove_member(
        &who(EVE),
        &epoch(7, 1, &ids(&[ANN, BOB, CAT])),
        iid(90).as_str(),
        T0 + 10,
    ));
    w.share(&[removal]);
    w
}

type Forge = fn(&mut AutoCommit, &Names);

/// Forged removals, epochs, wraps and policies; each written by `forger` on top of
/// `eve_removed`, and refused by every other member with nothing shown.
#[test]
fn forged_removals_and_epochs_are_refused_by_every_member() {
    let forgeries: Vec<(&str, usize, Forge)> = vec![
        ("Cat, not a steward, removes Dan", CAT, |doc, n| {
            raw_mark(doc, &n.dan, 1);
            raw_epoch(doc, "8", &[&n.ann, &n.bob, &n.cat]);
        }),
        ("Bob removes Dan without a new epoch", BOB, |doc, n| {
            raw_mark(doc, &n.dan, 1);
        }),
        (
            "Bob removes Dan with a new epoch wrapped for Dan",
            BOB,
            |doc, n| {
                raw_mark(doc, &n.dan, 1);
                raw_epoch(doc, "8", &[&n.ann, &n.bob, &n.cat, &n.dan]);
            },
        ),
        (
            "Bob removes Dan and wraps epoch 7 for him",
            BOB,
            |doc, n| {
                raw_mark(doc, &n.dan, 1);
                raw_epoch(doc, "8", &[&n.ann, &n.bob, &n.cat]);
                doc.put(wraps_of(doc, "7"), &n.dan, wrapped(1)).unwrap();
            },
        ),
        ("Bob removes himself", BOB, |doc, n| {
            raw_mark(doc, &n.bob, 1);
            raw_epoch(doc, "8", &[&n.ann, &n.cat, &n.dan]);
        }),
        ("Bob writes Eve's removal marker again", BOB, |doc, n| {
            doc.put(entry(doc, &n.eve), schema::REMOVED, T0 + 99)
                .unwrap();
            raw_epoch(doc, "8", &[&n.ann, &n.bob, &n.cat, &n.dan]);
        }),
        ("Bob moves Eve's cutoff", BOB, |doc, n| {
            doc.put(entry(doc, &n.eve), schema::CUTOFF, 1_000_u64)
                .unwrap();
        }),
        ("Bob deletes Eve's removal marker", BOB, |doc, n| {
            doc.delete(entry(doc, &n.eve), schema::REMOVED).unwrap();
        }),
        ("Bob deletes Eve's cutoff", BOB, |doc, n| {
            doc.delete(entry(doc, &n.eve), schema::CUTOFF).unwrap();
        }),
        ("Bob writes Eve's roster entry anew", BOB, |doc, n| {
            raw_entry(doc, &n.eve, "member", None);
        }),
        ("Bob deletes Eve's roster entry", BOB, |doc, n| {
            doc.delete(map_at(doc, &ROOT, schema::MEMBERS), &n.eve)
                .unwrap();
        }),
        ("Cat wraps epoch 7 for Dan in 80 bytes", CAT, |doc, n| {
            doc.put(wraps_of(doc, "7"), &n.dan, vec![1_u8; WRAPPED_LEN - 1])
                .unwrap();
        }),
        ("Cat wraps epoch 7 for Dan as text", CAT, |doc, n| {
            doc.put(wraps_of(doc, "7"), &n.dan, "key").unwrap();
        }),
        ("Cat overwrites Bob's wrap of epoch 7", CAT, |doc, n| {
            doc.put(wraps_of(doc, "7"), &n.bob, wrapped(1)).unwrap();
        }),
        ("Cat deletes Bob's wrap of epoch 7", CAT, |doc, n| {
            doc.delete(wraps_of(doc, "7"), &n.bob).unwrap();
        }),
        ("Cat wraps epoch 7 for Eve, removed", CAT, |doc, n| {
            doc.put(wraps_of(doc, "7"), &n.eve, wrapped(1)).unwrap();
        }),
        (
            "Cat wraps epoch 7 for a key that is no member id",
            CAT,
            |doc, _| {
                doc.put(wraps_of(doc, "7"), "everyone", wrapped(1)).unwrap();
            },
        ),
        (
            "Cat makes an epoch wrapped for Eve, removed",
            CAT,
            |doc, n| {
                raw_epoch(doc, "8", &[&n.cat, &n.eve]);
            },
        ),
        (
            "Ann, its maker, changes epoch 7's generation",
            ANN,
            |doc, _| {
                doc.put(epoch_obj(doc, "7"), schema::GENERATION, 9_u64)
                    .unwrap();
            },
        ),
        ("Bob changes epoch 7's commitment", BOB, |doc, _| {
            doc.put(epoch_obj(doc, "7"), schema::COMMITMENT, vec![0_u8; 32])
                .unwrap();
        }),
        ("Ann changes epoch 7's time", ANN, |doc, _| {
            doc.put(epoch_obj(doc, "7"), schema::CREATED_AT, T0)
                .unwrap();
        }),
        ("Bob adds a field to epoch 7", BOB, |doc, _| {
            doc.put(epoch_obj(doc, "7"), "z", 1_u64).unwrap();
        }),
        ("Bob replaces epoch 7's wraps map", BOB, |doc, n| {
            let w = doc
                .put_object(epoch_obj(doc, "7"), schema::WRAPS, ObjType::Map)
                .unwrap();
            doc.put(&w, &n.bob, wrapped(1)).unwrap();
        }),
        ("Bob makes epoch 0", BOB, |doc, n| {
            raw_epoch(doc, "0", &[&n.ann]);
        }),
        ("Bob makes epoch 007", BOB, |doc, n| {
            raw_epoch(doc, "007", &[&n.ann]);
        }),
        ("Bob makes epoch 4294967296", BOB, |doc, n| {
            raw_epoch(doc, "4294967296", &[&n.ann]);
        }),
        ("Bob makes epoch 7 again", BOB, |doc, n| {
            raw_epoch(doc, "7", &[&n.ann, &n.bob, &n.cat, &n.dan]);
        }),
        ("Bob deletes epoch 7", BOB, |doc, _| {
            doc.delete(map_at(doc, &ROOT, schema::EPOCHS), "7").unwrap();
        }),
        ("Bob puts a value into the epochs map", BOB, |doc, _| {
            doc.put(map_at(doc, &ROOT, schema::EPOCHS), "9", 1_u64)
                .unwrap();
        }),
        ("Cat replaces the epochs map", CAT, |doc, _| {
            doc.put_object(&ROOT, schema::EPOCHS, ObjType::Map).unwrap();
        }),
        ("Cat, not a steward, sets the policy", CAT, |doc, _| {
            doc.put(&ROOT, schema::POLICY, 2_u64).unwrap();
        }),
        ("Bob sets the policy to 0", BOB, |doc, _| {
            doc.put(&ROOT, schema::POLICY, 0_u64).unwrap();
        }),
        ("Bob sets the policy to 51", BOB, |doc, _| {
            doc.put(&ROOT, schema::POLICY, 51_u64).unwrap();
        }),
        ("Bob sets the policy to a word", BOB, |doc, _| {
            doc.put(&ROOT, schema::POLICY, "two").unwrap();
        }),
        ("Cat, not a steward, makes a proposal", CAT, |doc, n| {
            let proposals = map_at(doc, &ROOT, schema::PROPOSALS);
            let p = doc
                .put_object(&proposals, iid(50).as_str(), ObjType::Map)
                .unwrap();
            doc.put(&p, "o", "remove").unwrap();
            doc.put(&p, "a", n.dan.as_str()).unwrap();
            doc.put(&p, "c", T0 + 50).unwrap();
            let s = doc.put_object(&p, schema::APPROVALS, ObjType::Map).unwrap();
            doc.put(&s, n.cat.as_str(), T0 + 50).unwrap();
        }),
        ("Bob makes a proposal with a bad id", BOB, |doc, n| {
            let proposals = map_at(doc, &ROOT, schema::PROPOSALS);
            let p = doc.put_object(&proposals, "p1", ObjType::Map).unwrap();
            doc.put(&p, "o", "remove").unwrap();
            doc.put(&p, "a", n.dan.as_str()).unwrap();
        }),
    ];
    let mut removed_reason = Vec::new();
    for (what, forger, forge) in forgeries {
        let mut w = eve_removed();
        let forged = raw_edit(&mut w.c[forger], |doc| forge(doc, &names()));
        refused_by_all(&mut w, forger, &forged, what);
    }
    // Eve, having seen her removal, writes anyway: refused as removed, whatever she writes.
    let eve_writes: [(&str, Forge); 3] = [
        ("a check-in", |doc, _| {
            let checkins = map_at(doc, &ROOT, schema::CHECKINS);
            let item = doc
                .put_object(&checkins, iid(60).as_str(), ObjType::Map)
                .unwrap();
            doc.put(&item, "m", 3_u64).unwrap();
            doc.put(&item, "c", T0 + 60).unwrap();
        }),
        ("a new epoch", |doc, n| {
            raw_epoch(doc, "8", &[&n.eve, &n.dan]);
        }),
        ("her addresses", |doc, n| {
            doc.put(
                entry(doc, &n.eve),
                schema::ADDRESSES,
                "/ip4/192.0.2.9/tcp/1",
            )
            .unwrap();
        }),
    ];
    for (what, forge) in eve_writes {
        let mut w = eve_removed();
        let forged = raw_edit(&mut w.c[EVE], |doc| forge(doc, &names()));
        let reasons = refused_by_all(&mut w, EVE, &forged, what);
        removed_reason.extend(reasons);
    }
    let expected = CoreError::Removed(who(EVE)).to_string();
    assert!(
        removed_reason.iter().all(|r| *r == expected),
        "{removed_reason:?}"
    );
}

/// The honest raw counterparts of the forgeries pass: a steward's removal with a fresh
/// epoch not wrapped for the member (recording the removals), a steward's policy (so the refusals above are for what they forge, not for being raw).
#[test]
fn honest_raw_removals_wraps_and_policies_pass() {
    let mut w = eve_removed();
    let n = names();
    let checkin = w.c[DAN]
        .checkin(&iid(1), Mood::Okay, None, T0 + 20)
        .unwrap();
    w.share(&[checkin]);
    let cutoff = max_op_of(&mut w.c[BOB], &n.dan);
    let removal = raw_edit(&mut w.c[BOB], |doc| {
        raw_mark(doc, &n.dan, cutoff);
        raw_epoch(doc, "8", &[&n.ann, &n.bob, &n.cat]);
    });
    accepted_by_all(&mut w, BOB, &removal, "Bob removes Dan");
    let policy = raw_edit(&mut w.c[ANN], |doc| {
        doc.put(&ROOT, schema::POLICY, 2_u64).unwrap();
    });
    accepted_by_all(&mut w, ANN, &policy, "Ann sets the policy");
    for c in &w.c {
        assert_eq!(c.rejected_count(), 0);
        assert_eq!(c.policy(), 2);
        assert_eq!(member_ids(&c.former_members()), ids(&[DAN, EVE]));
        assert_eq!(epoch_ids(c), vec![7, 8]);
        assert_eq!(c.items()[0].author, n.dan, "his check-in stays");
    }
}

/// BUG (validate.rs `Checker::may_put_key_field`, `may_finish_removals`): a steward may
/// write a cutoff (`xc`) on a member's entry without a removal marker. Only `x` counts as
/// a removal (so no epoch and no approvals are asked for), yet `xc` is "written once":
/// every later honest removal of that member writes `xc` again, has a predecessor, and is
/// refused by every other member ("a removal is written once"). The member can no longer
/// be removed, even under a policy of 2 (the lone `xc` needs no approvals), and the
/// steward who tries is cut off: their own circle shows the removal, and every change
/// they make afterwards depends on one everybody refused. Expected: a cutoff only in the
/// change that writes the marker (and the marker only with its cutoff).
#[test]
fn bug_a_lone_cutoff_makes_a_member_unremovable() {
    let mut w = eve_removed();
    let n = names();
    let lone = raw_edit(&mut w.c[BOB], |doc| {
        doc.put(entry(doc, &n.dan), schema::CUTOFF, 5_u64).unwrap();
    });
    let refused: Vec<bool> =
        w.c.iter_mut()
            .enumerate()
            .filter(|(k, _)| *k != BOB)
            .map(|(_, c)| c.apply_changes(std::slice::from_ref(&lone)).is_err())
            .collect();
    if refused.iter().all(|r| !r) {
        // Accepted: then Ann's honest removal of Dan splits the circle.
        w.log.push(lone);
        let removal = done(w.c[ANN].remove_member(
            &n.dan,
            &epoch(8, 2, &ids(&[ANN, BOB, CAT])),
            iid(91).as_str(),
            T0 + 30,
        ));
        assert!(
            w.c[ANN].is_removed(&n.dan),
            "Ann's circle shows Dan removed"
        );
        let after = w.c[ANN]
            .checkin(&iid(5), Mood::Okay, None, T0 + 31)
            .unwrap();
        for k in [BOB, CAT, DAN] {
            let c = &mut w.c[k];
            let result = c.apply_changes(&[removal.clone(), after.clone()]);
            assert!(
                result.is_ok() && c.is_removed(&n.dan) && c.items().len() == 1,
                "member {k} refuses Ann's honest removal ({result:?}) and everything after it"
            );
        }
    }
    assert_eq!(
        refused,
        vec![true; 4],
        "a cutoff without a removal is refused"
    );
}

/// BUG (validate.rs `Checker::may_put_key_field`): the cutoff a removal carries is not
/// checked. It is meant to be the highest op of the member's that the remover had seen,
/// which every member can compute from the change's own history, but any number (or none:
/// read as 0) is accepted. A steward who writes 0 or leaves it out hides everything the
/// member ever wrote, at every member, where "their items from before stay"; one who
/// writes a huge cutoff makes the member's concurrent writes count. Expected: refused
/// unless `xc` equals the member's highest op as of the change's dependencies.
#[test]
fn bug_a_removals_cutoff_is_not_checked() {
    let mut accepted = Vec::new();
    for cutoff in [Some(0_u64), None, Some(1 << 40)] {
        let mut w = eve_removed();
        let n = names();
        let checkin = w.c[DAN]
            .checkin(&iid(1), Mood::Okay, Some("before"), T0 + 20)
            .unwrap();
        w.share(&[checkin]);
        let removal = raw_edit(&mut w.c[BOB], |doc| {
            let e = entry(doc, &n.dan);
            doc.put(&e, schema::REMOVED, T0 + 50).unwrap();
            if let Some(cutoff) = cutoff {
                doc.put(&e, schema::CUTOFF, cutoff).unwrap();
            }
            raw_epoch(doc, "8", &[&n.ann, &n.bob, &n.cat]);
        });
        let cat = &mut w.c[CAT];
        if cat.apply_changes(&[removal]).is_ok() {
            accepted.push((cutoff, cat.items().len()));
        }
    }
    assert!(
        accepted.is_empty(),
        "removals with a made-up cutoff accepted, as (cutoff, Dan's earlier items shown): {accepted:?}"
    );
}

/// Policy 2 (set by Ann alone, under policy 1); Ann's proposal `iid(41)` to remove Dan waits
/// for a second approval; Ann's invite `inv(3)` is approved by her alone.
fn policy_two() -> World {
    let mut w = world();
    let policy = done(w.c[ANN].set_policy(2, iid(40).as_str(), T0 + 10));
    w.share(&[policy]);
    let outcome = w.c[ANN]
        .remove_member(
            &who(DAN),
            &epoch(8, 1, &ids(&[ANN, BOB, CAT, EVE])),
            iid(41).as_str(),
            T0 + 11,
        )
        .unwrap();
    let RemoveOutcome::Pending { change, .. } = outcome else {
        panic!("carried out alone under policy 2: {outcome:?}");
    };
    let invite = w.c[ANN]
        .create_invite(&inv(3), [3; 32], T0 + 30 * DAY, 2, T0 + 12)
        .unwrap();
    w.share(&[change, invite]);
    w
}

/// Under policy 2, what one steward (or a member) forges alone is refused by every member:
/// approvals in another's name, removals and policy changes with one approval, admissions
/// through an invite only its maker approved, proposals by members.
#[test]
fn forged_approvals_are_refused_under_policy_two() {
    let forgeries: Vec<(&str, usize, Forge)> = vec![
        ("Ann approves her proposal in Bob's name", ANN, |doc, n| {
            let s = map_at(doc, &proposal_obj(doc, &n.proposal), schema::APPROVALS);
            doc.put(&s, n.bob.as_str(), T0 + 60).unwrap();
        }),
        (
            "Ann approves in Bob's name and removes Dan",
            ANN,
            |doc, n| {
                let s = map_at(doc, &proposal_obj(doc, &n.proposal), schema::APPROVALS);
                doc.put(&s, n.bob.as_str(), T0 + 60).unwrap();
                raw_mark(doc, &n.dan, 1);
                raw_epoch(doc, "9", &[&n.ann, &n.bob, &n.cat]);
            },
        ),
        ("Ann removes Dan with her approval alone", ANN, |doc, n| {
            raw_mark(doc, &n.dan, 1);
            raw_epoch(doc, "9", &[&n.ann, &n.bob, &n.cat]);
        }),
        ("Ann removes Cat with no proposal at all", ANN, |doc, n| {
            raw_mark(doc, &n.cat, 1);
            raw_epoch(doc, "9", &[&n.ann, &n.bob, &n.dan]);
        }),
        ("Ann sets the policy back to 1 alone", ANN, |doc, _| {
            doc.put(&ROOT, schema::POLICY, 1_u64).unwrap();
        }),
        (
            "Ann proposes policy 1 and carries it out alone",
            ANN,
            |doc, _| {
                let proposals = map_at(doc, &ROOT, schema::PROPOSALS);
                let p = doc
                    .put_object(&proposals, iid(50).as_str(), ObjType::Map)
                    .unwrap();
                doc.put(&p, "o", "policy").unwrap();
                doc.put(&p, "a", "1").unwrap();
                doc.put(&p, "c", T0 + 60).unwrap();
                let s = doc.put_object(&p, schema::APPROVALS, ObjType::Map).unwrap();
                doc.put(&s, who(ANN).as_str(), T0 + 60).unwrap();
                doc.put(&p, schema::DONE, T0 + 60).unwrap();
                doc.put(&ROOT, schema::POLICY, 1_u64).unwrap();
            },
        ),
        ("Bob marks the removal proposal done", BOB, |doc, n| {
            doc.put(proposal_obj(doc, &n.proposal), schema::DONE, T0 + 60)
                .unwrap();
        }),
        ("Bob deletes the policy", BOB, |doc, _| {
            doc.delete(&ROOT, schema::POLICY).unwrap();
        }),
        ("Bob overwrites Ann's approval", BOB, |doc, n| {
            let s = map_at(doc, &proposal_obj(doc, &n.proposal), schema::APPROVALS);
            doc.put(&s, n.ann.as_str(), T0 + 60).unwrap();
        }),
        ("Bob deletes Ann's approval", BOB, |doc, n| {
            let s = map_at(doc, &proposal_obj(doc, &n.proposal), schema::APPROVALS);
            doc.delete(&s, n.ann.as_str()).unwrap();
        }),
        ("Bob retargets Ann's proposal at Cat", BOB, |doc, n| {
            doc.put(proposal_obj(doc, &n.proposal), "a", n.cat.as_str())
                .unwrap();
        }),
        ("Ann retargets her own proposal at Cat", ANN, |doc, n| {
            doc.put(proposal_obj(doc, &n.proposal), "a", n.cat.as_str())
                .unwrap();
        }),
        ("Bob deletes Ann's proposal", BOB, |doc, n| {
            doc.delete(map_at(doc, &ROOT, schema::PROPOSALS), &n.proposal)
                .unwrap();
        }),
        (
            "Bob replaces the proposal's approvals map",
            BOB,
            |doc, n| {
                let s = doc
                    .put_object(
                        proposal_obj(doc, &n.proposal),
                        schema::APPROVALS,
                        ObjType::Map,
                    )
                    .unwrap();
                doc.put(&s, n.bob.as_str(), T0 + 60).unwrap();
            },
        ),
        (
            "Cat, not a steward, approves the proposal",
            CAT,
            |doc, n| {
                let s = map_at(doc, &proposal_obj(doc, &n.proposal), schema::APPROVALS);
                doc.put(&s, n.cat.as_str(), T0 + 60).unwrap();
            },
        ),
        (
            "Cat admits Fay through an invite only Ann approved",
            CAT,
            |doc, n| {
                raw_entry(doc, &n.fay, "member", Some(&n.invite));
            },
        ),
        ("Cat approves the invite in Bob's name", CAT, |doc, n| {
            let invite = map_at(doc, &map_at(doc, &ROOT, schema::INVITES), &n.invite);
            let s = map_at(doc, &invite, schema::APPROVALS);
            doc.put(&s, n.bob.as_str(), T0 + 60).unwrap();
        }),
        ("Ann approves her invite in Bob's name", ANN, |doc, n| {
            let invite = map_at(doc, &map_at(doc, &ROOT, schema::INVITES), &n.invite);
            let s = map_at(doc, &invite, schema::APPROVALS);
            doc.put(&s, n.bob.as_str(), T0 + 60).unwrap();
        }),
    ];
    for (what, forger, forge) in forgeries {
        let mut w = policy_two();
        let forged = raw_edit(&mut w.c[forger], |doc| forge(doc, &names()));
        refused_by_all(&mut w, forger, &forged, what);
    }
    // The refusals name the approvals missing.
    let mut w = policy_two();
    let alone = raw_edit(&mut w.c[ANN], |doc| {
        let n = names();
        raw_mark(doc, &n.dan, 1);
        raw_epoch(doc, "9", &[&n.ann, &n.bob, &n.cat]);
    });
    let reasons = refused_by_all(&mut w, ANN, &alone, "Ann removes Dan alone");
    let expected = CoreError::NeedsApprovals {
        what: format!("removing {}", who(DAN)),
        missing: 1,
    };
    assert!(
        reasons.iter().all(|r| *r == expected.to_string()),
        "{reasons:?}"
    );
}

/// Under policy 2, the same with two stewards' approvals passes: Bob's approval completes
/// the removal (in the approving change, or after a separate approval); a policy change
/// approved by both is carried out; an invite approved by both admits.
#[test]
fn two_stewards_approvals_are_accepted_under_policy_two() {
    // Bob's approval carries out the removal in the same change.
    let mut w = policy_two();
    let removal = done(w.c[BOB].approve(
        &iid(41).to_string(),
        &epoch(8, 1, &ids(&[ANN, BOB, CAT, EVE])),
        T0 + 20,
    ));
    accepted_by_all(&mut w, BOB, &removal, "Bob approves the removal");
    for c in &w.c {
        assert!(c.is_removed(&who(DAN)));
    }

    // Bob approves in a change of his own (raw, in his own name); Ann then carries it out.
    let mut w = policy_two();
    let n = names();
    let approval = raw_edit(&mut w.c[BOB], |doc| {
        let s = map_at(doc, &proposal_obj(doc, &n.proposal), schema::APPROVALS);
        doc.put(&s, n.bob.as_str(), T0 + 20).unwrap();
    });
    accepted_by_all(&mut w, BOB, &approval, "Bob approves alone");
    let proposal = &w.c[CAT].proposals()[0];
    assert_eq!(proposal.approvals, ids(&[ANN, BOB]));
    assert!(!proposal.done);
    let removal = done(w.c[ANN].remove_member(
        &n.dan,
        &epoch(8, 1, &ids(&[ANN, BOB, CAT, EVE])),
        iid(99).as_str(),
        T0 + 21,
    ));
    accepted_by_all(&mut w, ANN, &removal, "Ann carries out the removal");
    for c in &w.c {
        assert!(c.is_removed(&n.dan));
        assert!(c.proposals()[0].done);
    }

    // The policy goes back to 1 with both stewards' approvals.
    let pending = w.c[ANN].set_policy(1, iid(42).as_str(), T0 + 22).unwrap();
    let RemoveOutcome::Pending {
        change,
        proposal,
        missing,
    } = pending
    else {
        panic!("policy changed alone: {pending:?}");
    };
    assert_eq!((proposal.as_str(), missing), (iid(42).as_str(), 1));
    accepted_by_all(&mut w, ANN, &change, "Ann proposes policy 1");
    assert_eq!(w.c[CAT].policy(), 2);
    let change = done(w.c[BOB].set_policy(1, iid(43).as_str(), T0 + 23));
    accepted_by_all(&mut w, BOB, &change, "Bob completes policy 1");
    for c in &w.c {
        assert_eq!(c.policy(), 1);
        let p = c
            .proposals()
            .into_iter()
            .find(|p| p.id == iid(42).as_str())
            .unwrap();
        assert_eq!(p.action, ProposalAction::Policy(1));
        assert_eq!(p.approvals, ids(&[ANN, BOB]));
        assert!(p.done);
    }

    // An invite both approved admits.
    let mut w = policy_two();
    let approval = w.c[BOB].approve_invite(&inv(3), T0 + 20).unwrap();
    accepted_by_all(&mut w, BOB, &approval, "Bob approves the invite");
    let admission = w.c[CAT]
        .admit(&fay(), "Fay", &inv(3), &[0], T0 + 21)
        .unwrap();
    accepted_by_all(&mut w, CAT, &admission, "Cat admits Fay");
    for c in &w.c {
        assert!(member_ids(&c.members()).contains(&fay()));
        assert_eq!(c.rejected_count(), 0);
    }
}

/// BUG (validate.rs `Checker::may_add_entry`, circle.rs `Circle::add_member`): under a
/// policy of 2, one steward still adds anyone alone, as a steward even, by writing the
/// roster entry directly (`add_member`) instead of through an invite: neither the local
/// check nor the validator asks for approvals when the writer is a steward. The new
/// identity (a puppet of the same person) then supplies the second approval for any
/// removal. docs/threat-model.md says that under K >= 2 a single steward cannot "admit
/// anyone" alone. Expected: `NeedsApprovals` locally, and the entry refused by every
/// member, unless K stewards approved it.
#[test]
fn bug_under_policy_two_a_steward_adds_a_member_alone() {
    let mut w = policy_two();
    let added = w.c[ANN].add_member(&fay(), "Fay", Role::Steward, T0 + 20);
    let mut accepted_by = Vec::new();
    if let Ok(change) = &added {
        for (k, c) in w.c.iter_mut().enumerate().skip(1) {
            if c.apply_changes(std::slice::from_ref(change)).is_ok()
                && member_ids(&c.members()).contains(&fay())
            {
                accepted_by.push(k);
            }
        }
    }
    assert!(
        added.is_err() && accepted_by.is_empty(),
        "Ann added Fay alone under policy 2: locally {:?}, accepted by members {accepted_by:?}",
        added.map(|_| ())
    );
}

// ---------------------------------------------------------------------------------------
// 4. Concurrency, delivered in every order.
// ---------------------------------------------------------------------------------------

/// Ann removes Dan while Bob makes him a steward: in every order, at every member, the
/// removal wins (a removed member has no role) and both changes are kept.
#[test]
fn a_removal_wins_over_a_concurrent_role_change() {
    let mut w = world();
    let base = w.log.clone();
    let removal = done(w.c[ANN].remove_member(
        &who(DAN),
        &epoch(7, 1, &ids(&[ANN, BOB, CAT, EVE])),
        iid(90).as_str(),
        T0 + 10,
    ));
    let promotion = w.c[BOB]
        .set_role(&who(DAN), Role::Steward, T0 + 10)
        .unwrap();
    let c = converge(
        &base,
        &[removal.clone(), promotion.clone()],
        &ids(&[CAT, DAN, EVE, ANN, BOB]),
    );
    assert_eq!(member_ids(&c.members()), ids(&[ANN, BOB, CAT, EVE]));
    assert_eq!(member_ids(&c.former_members()), vec![who(DAN)]);
    assert!(c.is_removed(&who(DAN)));
    assert_eq!(epoch_ids(&c), vec![7]);
    assert_eq!(c.policy(), 1);
    // Dan, steward on paper, can do nothing a steward does.
    let mut dan = Circle::load(&who(DAN), &[base, vec![removal, promotion]].concat()).unwrap();
    assert_eq!(
        dan.create_invite(&inv(5), [5; 32], T0 + DAY, 1, T0 + 11),
        Err(CoreError::NotSteward)
    );
    assert_eq!(
        dan.check_removal(&who(CAT)),
        Err(CoreError::Removed(who(DAN)))
    );
}

/// Ann and Bob each remove someone at once (Cat and Dan): both removals hold everywhere.
/// Each new epoch was wrapped for the member the other removed, so neither is clean: a
/// member holding both must still rotate before writing.
#[test]
fn two_stewards_remove_two_members_at_once() {
    let mut w = world();
    let base = w.log.clone();
    let anns = done(w.c[ANN].remove_member(
        &who(CAT),
        &epoch(11, 1, &ids(&[ANN, BOB, DAN, EVE])),
        iid(90).as_str(),
        T0 + 10,
    ));
    let bobs = done(w.c[BOB].remove_member(
        &who(DAN),
        &epoch(12, 1, &ids(&[ANN, BOB, CAT, EVE])),
        iid(91).as_str(),
        T0 + 10,
    ));
    let c = converge(
        &base,
        &[anns.clone(), bobs.clone()],
        &ids(&[EVE, ANN, BOB, CAT, DAN]),
    );
    assert_eq!(member_ids(&c.members()), ids(&[ANN, BOB, EVE]));
    assert_eq!(member_ids(&c.former_members()), ids(&[CAT, DAN]));
    assert_eq!(epoch_ids(&c), vec![11, 12]);
    let mut eve = Circle::load(&who(EVE), &[base, vec![anns, bobs]].concat()).unwrap();
    let plan = eve.key_plan(&held(&[0, 11, 12]), T0 + 11, WEEK);
    assert_eq!(plan.write_epoch, None);
    assert_eq!(plan.rotate, Some(Rotation::NoCleanKey));
    assert_eq!(plan.recipients, ids(&[ANN, BOB, EVE]));
    // Eve's rotation for those who stay is clean.
    let rotation = eve
        .rotate(&epoch(13, 2, &ids(&[ANN, BOB])), T0 + 12)
        .unwrap();
    eve.apply_changes(&[rotation]).unwrap();
    assert_eq!(
        eve.key_plan(&held(&[0, 11, 12, 13]), T0 + 13, WEEK)
            .write_epoch,
        Some(13)
    );
}

/// Ann and Bob remove the same member at once: both changes are kept, she is removed
/// once, and both epochs (wrapped for everyone else) are clean; the newer by (generation,
/// id) is written with.
#[test]
fn two_stewards_remove_the_same_member_at_once() {
    let mut w = world();
    let base = w.log.clone();
    let stays = ids(&[ANN, BOB, CAT, DAN]);
    let anns =
        done(w.c[ANN].remove_member(&who(EVE), &epoch(21, 1, &stays), iid(90).as_str(), T0 + 10));
    let bobs =
        done(w.c[BOB].remove_member(&who(EVE), &epoch(22, 1, &stays), iid(91).as_str(), T0 + 11));
    let c = converge(&base, &[anns, bobs], &ids(&[CAT, DAN, EVE]));
    assert_eq!(member_ids(&c.former_members()), vec![who(EVE)]);
    assert_eq!(epoch_ids(&c), vec![21, 22]);
    let plan = c.key_plan(&held(&[0, 21, 22]), T0 + 12, WEEK);
    assert_eq!(plan.write_epoch, Some(22));
    assert_eq!(
        c.key_plan(&held(&[0, 21]), T0 + 12, WEEK).write_epoch,
        Some(21)
    );
}

/// Ann and Bob, the only stewards, remove each other at once. What the code does: both
/// removals hold (each was valid as of its own history), at every member in every order;
/// the circle is left with no steward. Both new epochs were made by the member the other
/// removed, after their cutoff, so neither counts (`epochs()` is empty) and the members
/// left must rotate. Nobody left can remove, invite or set the policy.
#[test]
fn two_stewards_remove_each_other() {
    let mut w = world();
    let base = w.log.clone();
    let anns = done(w.c[ANN].remove_member(
        &who(BOB),
        &epoch(21, 1, &ids(&[ANN, CAT, DAN, EVE])),
        iid(90).as_str(),
        T0 + 10,
    ));
    let bobs = done(w.c[BOB].remove_member(
        &who(ANN),
        &epoch(22, 1, &ids(&[BOB, CAT, DAN, EVE])),
        iid(91).as_str(),
        T0 + 10,
    ));
    let c = converge(
        &base,
        &[anns.clone(), bobs.clone()],
        &ids(&[CAT, DAN, EVE, ANN, BOB]),
    );
    assert_eq!(member_ids(&c.members()), ids(&[CAT, DAN, EVE]));
    assert_eq!(member_ids(&c.former_members()), ids(&[ANN, BOB]));
    assert!(
        c.members().iter().all(|m| m.role == Role::Member),
        "no steward left"
    );
    assert!(
        epoch_ids(&c).is_empty(),
        "both epochs come after their maker's cutoff"
    );
    let mut log = base;
    log.extend([anns, bobs]);
    let mut cat = Circle::load(&who(CAT), &log).unwrap();
    let plan = cat.key_plan(&held(&[0, 21, 22]), T0 + 11, WEEK);
    assert_eq!(plan.write_epoch, None);
    assert_eq!(plan.rotate, Some(Rotation::NoCleanKey));
    assert!(plan.to_open.is_empty());
    assert_eq!(cat.check_removal(&who(DAN)), Err(CoreError::NotSteward));
    assert_eq!(
        cat.set_policy(1, iid(92).as_str(), T0 + 11),
        Err(CoreError::NotSteward)
    );
    assert_eq!(
        cat.create_invite(&inv(5), [5; 32], T0 + DAY, 1, T0 + 11),
        Err(CoreError::NotSteward)
    );
    // Any member may still rotate, and writes with that.
    let rotation = cat
        .rotate(&epoch(23, 2, &ids(&[DAN, EVE])), T0 + 12)
        .unwrap();
    let mut dan = Circle::load(&who(DAN), &log).unwrap();
    dan.apply_changes(&[rotation]).unwrap();
    assert_eq!(
        dan.key_plan(&held(&[0, 23]), T0 + 13, WEEK).write_epoch,
        Some(23)
    );
}

/// Dan writes without knowing he is being removed: a check-in, a claim and a reply on
/// Cat's request, a rotation. In every order, at every member, these changes are applied
/// but everything they created is hidden (cutoff), while his check-in from before stays.
#[test]
fn a_removed_members_concurrent_writes_are_hidden() {
    let mut w = world();
    let before = [
        w.c[DAN]
            .checkin(&iid(1), Mood::Good, Some("before"), T0 + 10)
            .unwrap(),
        w.c[CAT].ask(&iid(2), &meals(Some(1)), T0 + 10).unwrap(),
    ];
    w.share(&before);
    let base = w.log.clone();
    let removal = done(w.c[ANN].remove_member(
        &who(DAN),
        &epoch(7, 1, &ids(&[ANN, BOB, CAT, EVE])),
        iid(90).as_str(),
        T0 + 20,
    ));
    let dans = [
        w.c[DAN]
            .checkin(&iid(3), Mood::Low, Some("after"), T0 + 20)
            .unwrap(),
        w.c[DAN].claim(&iid(2), T0 + 21).unwrap(),
        w.c[DAN]
            .reply(&iid(2), &iid(4), "I'll bring soup", T0 + 22)
            .unwrap(),
        w.c[DAN]
            .rotate(&epoch(31, 1, &ids(&[ANN, BOB, CAT, EVE])), T0 + 23)
            .unwrap(),
    ];
    let mut changes = vec![removal];
    changes.extend(dans.iter().cloned());
    let c = converge(&base, &changes, &ids(&[BOB, EVE]));
    let items = c.items();
    assert_eq!(
        items.len(),
        2,
        "Dan's check-in from before and Cat's request"
    );
    assert!(
        c.item(iid(3).as_str()).is_none(),
        "his check-in after is hidden"
    );
    let dans_before = c.item(iid(1).as_str()).unwrap();
    assert_eq!(
        (dans_before.author.as_str(), dans_before.note.as_deref()),
        (who(DAN).as_str(), Some("before"))
    );
    let request = c.item(iid(2).as_str()).unwrap();
    assert!(request.claims.is_empty() && request.replies.is_empty());
    assert_eq!(request.status, Some(RequestStatus::Open));
    assert_eq!(epoch_ids(&c), vec![7], "his epoch is hidden too");
    assert_eq!(member_ids(&c.former_members()), vec![who(DAN)]);

    // Seen before the removal arrives, hidden once it does.
    let mut eve = Circle::load(&who(EVE), &base).unwrap();
    eve.apply_changes(&dans).unwrap();
    assert!(eve.item(iid(3).as_str()).is_some());
    assert_eq!(eve.item(iid(2).as_str()).unwrap().claims.len(), 1);
    assert_eq!(epoch_ids(&eve), vec![31]);
    eve.apply_changes(&changes[..1]).unwrap();
    assert_eq!(shown(&eve), shown(&c));
}

// ---------------------------------------------------------------------------------------
// 5. The key plan.
// ---------------------------------------------------------------------------------------

/// Each member writes with the newest epoch it holds by (generation, id), opens the wraps
/// addressed to it, and (as the epoch's maker or a steward) shares what others lack;
/// `common_epoch` picks the newest epoch every reader holds.
#[test]
fn the_key_plan_writes_with_the_newest_epoch_held() {
    let mut w = world();
    let everyone = ids(&[ANN, BOB, CAT, DAN, EVE]);
    let plan = w.c[ANN].key_plan(&held(&[0]), T0 + 10, WEEK);
    assert_eq!(
        plan,
        KeyPlan {
            write_epoch: Some(0),
            to_open: Vec::new(),
            to_share: Vec::new(),
            rotate: None,
            recipients: everyone.clone(),
            next_generation: 1,
            // u32::MAX marks direct envelopes: no epoch takes it.
            used_ids: held(&[0, u32::MAX]),
            holders: [(0, everyone.iter().cloned().collect())].into(),
            order: vec![0],
            clean: vec![0],
            unexposed: vec![0],
            removals: 0,
        }
    );

    // Ann rotates to epoch 5, wrapped for Bob and Cat only.
    let rotation = w.c[ANN]
        .rotate(&epoch(5, 1, &ids(&[BOB, CAT])), T0 + 20)
        .unwrap();
    w.share(&[rotation]);
    let bob = w.c[BOB].key_plan(&held(&[0]), T0 + 21, WEEK);
    assert_eq!(bob.write_epoch, Some(0), "until he opens his wrap");
    assert_eq!(bob.to_open, vec![(5, who(ANN), wrapped(5), commitment(5))]);
    assert_eq!((bob.next_generation, bob.order.clone()), (2, vec![0, 5]));
    assert_eq!(bob.used_ids, held(&[0, 5, u32::MAX]));
    assert_eq!(bob.holders[&5], ids(&[ANN, BOB, CAT]).into_iter().collect());
    let bob = w.c[BOB].key_plan(&held(&[0, 5]), T0 + 21, WEEK);
    assert_eq!(bob.write_epoch, Some(5));
    assert!(bob.to_open.is_empty());
    // The maker and the stewards share it with those who lack it; Cat does not.
    let lack = vec![(5, ids(&[DAN, EVE]))];
    assert_eq!(bob.to_share, lack);
    assert_eq!(
        w.c[ANN].key_plan(&held(&[0, 5]), T0 + 21, WEEK).to_share,
        lack
    );
    assert!(
        w.c[CAT]
            .key_plan(&held(&[0, 5]), T0 + 21, WEEK)
            .to_share
            .is_empty()
    );
    let dan = w.c[DAN].key_plan(&held(&[0]), T0 + 21, WEEK);
    assert_eq!((dan.write_epoch, dan.to_open.len()), (Some(0), 0));
    assert!(
        dan.to_share.is_empty(),
        "nobody shares what they do not hold"
    );

    // Two epochs of one generation made at once: the higher id wins, alike everywhere;
    // a newer generation wins whatever its id.
    let bobs = w.c[BOB].rotate(&epoch(9, 2, &everyone), T0 + 30).unwrap();
    let cats = w.c[CAT].rotate(&epoch(3, 2, &everyone), T0 + 30).unwrap();
    w.share(&[bobs, cats]);
    for c in &w.c {
        let plan = c.key_plan(&held(&[0, 5, 3, 9]), T0 + 31, WEEK);
        assert_eq!(plan.write_epoch, Some(9));
        assert_eq!(plan.order, vec![0, 5, 3, 9]);
        assert_eq!(
            c.key_plan(&held(&[0, 5, 3]), T0 + 31, WEEK).write_epoch,
            Some(3)
        );
    }
    let dans = w.c[DAN].rotate(&epoch(4, 3, &everyone), T0 + 40).unwrap();
    w.share(&[dans]);
    let plan = w.c[EVE].key_plan(&held(&[0, 5, 3, 9, 4]), T0 + 41, WEEK);
    assert_eq!(plan.write_epoch, Some(4));
    assert_eq!(
        (plan.next_generation, plan.order.clone()),
        (4, vec![0, 5, 3, 9, 4])
    );

    // The newest epoch every reader holds.
    assert_eq!(
        plan.common_epoch(&held(&[0, 5, 3, 9, 4]), &everyone),
        Some(4)
    );
    assert_eq!(
        plan.common_epoch(&held(&[0, 5]), &ids(&[BOB, CAT])),
        Some(5)
    );
    assert_eq!(
        plan.common_epoch(&held(&[0, 5]), &ids(&[BOB, DAN])),
        Some(0)
    );
    assert_eq!(plan.common_epoch(&held(&[5]), &ids(&[DAN])), None);
    assert_eq!(plan.common_epoch(&held(&[0, 5]), &[]), Some(5));
    assert_eq!(plan.common_epoch(&held(&[0]), &[fay()]), None);
}

/// After a removal every epoch the removed member holds is unclean, epoch 0 included: a
/// member holding only those must rotate before writing (`NoCleanKey`); with the new
/// epoch it writes with that. The removed member's own plan asks nothing of them.
#[test]
fn after_a_removal_only_the_new_epoch_is_clean() {
    let mut w = world();
    let everyone = ids(&[ANN, BOB, CAT, DAN, EVE]);
    let rotation = w.c[ANN].rotate(&epoch(5, 1, &everyone), T0 + 10).unwrap();
    w.share(&[rotation]);
    assert_eq!(
        w.c[CAT].key_plan(&held(&[0, 5]), T0 + 11, WEEK).write_epoch,
        Some(5)
    );
    let stays = ids(&[ANN, BOB, CAT, DAN]);
    let removal =
        done(w.c[BOB].remove_member(&who(EVE), &epoch(7, 2, &stays), iid(90).as_str(), T0 + 20));
    w.share(&[removal]);
    for n in [ANN, CAT, DAN] {
        let plan = w.c[n].key_plan(&held(&[0, 5]), T0 + 21, WEEK);
        assert_eq!(plan.write_epoch, None, "member {n}");
        assert_eq!(plan.rotate, Some(Rotation::NoCleanKey));
        assert_eq!(plan.to_open, vec![(7, who(BOB), wrapped(7), commitment(7))]);
        assert_eq!(plan.recipients, stays);
        assert!(plan.holders[&0].contains(&who(EVE)));
        assert!(plan.holders[&5].contains(&who(EVE)));
        assert!(!plan.holders[&7].contains(&who(EVE)));
        let only_zero = w.c[n].key_plan(&held(&[0]), T0 + 21, WEEK);
        assert_eq!(only_zero.write_epoch, None);
        assert_eq!(only_zero.rotate, Some(Rotation::NoCleanKey));
        let plan = w.c[n].key_plan(&held(&[0, 5, 7]), T0 + 21, WEEK);
        assert_eq!((plan.write_epoch, plan.rotate), (Some(7), None));
        assert!(plan.to_share.is_empty());
    }
    // Eve: nothing to open (nothing was wrapped for her), share or rotate.
    let eve = w.c[EVE].key_plan(&held(&[0, 5]), T0 + 21, WEEK);
    assert_eq!(eve.write_epoch, None);
    assert!(eve.to_open.is_empty() && eve.to_share.is_empty());
    assert_eq!(eve.rotate, None);
}

/// A member admitted while a steward rotated (the admitter handed over epoch 0 only) lacks
/// the new epoch: its maker and the stewards list it in `to_share`, a wrap for the member
/// clears that, and the member then finds it in `to_open`. Handing the epoch at the join
/// leaves nothing to share.
#[test]
fn an_epoch_no_steward_holds_is_shared_by_its_first_current_holder() {
    let mut w = world();
    // Cat makes epoch 7 for Dan and Eve: no steward (Ann, Bob) holds it.
    let rotation = w.c[CAT]
        .rotate(&epoch(7, 1, &ids(&[DAN, EVE])), T0 + 20)
        .unwrap();
    w.share(&[rotation]);
    let holders = ids(&[CAT, DAN, EVE]);
    let first = holders.iter().min().unwrap().clone();
    let lack = vec![(7, ids(&[ANN, BOB]))];
    for n in [CAT, DAN, EVE] {
        let plan = w.c[n].key_plan(&held(&[0, 7]), T0 + 21, WEEK);
        let shares = n == CAT || who(n) == first;
        let expected = if shares { lack.clone() } else { Vec::new() };
        assert_eq!(
            plan.to_share, expected,
            "member {n} (the first holder: {first})"
        );
    }
    // Once a steward holds it, only stewards and its maker share it.
    let mut w = world();
    let rotation = w.c[CAT]
        .rotate(&epoch(8, 1, &ids(&[BOB, DAN, EVE])), T0 + 20)
        .unwrap();
    w.share(&[rotation]);
    for n in [DAN, EVE] {
        let plan = w.c[n].key_plan(&held(&[0, 8]), T0 + 21, WEEK);
        assert!(plan.to_share.is_empty(), "member {n} shares");
    }
    let plan = w.c[BOB].key_plan(&held(&[0, 8]), T0 + 21, WEEK);
    assert_eq!(plan.to_share, vec![(8, ids(&[ANN]))]);
}

#[test]
fn epochs_are_shared_with_members_admitted_during_a_rotation() {
    let mut w = world();
    let invite = w.c[ANN]
        .create_invite(&inv(1), [1; 32], T0 + DAY, 3, T0 + 10)
        .unwrap();
    w.share(&[invite]);
    let rotation = w.c[BOB]
        .rotate(&epoch(50, 1, &ids(&[ANN, CAT, DAN, EVE])), T0 + 20)
        .unwrap();
    let admission = w.c[CAT]
        .admit(&fay(), "Fay", &inv(1), &[0], T0 + 20)
        .unwrap();
    let base = w.log.clone();
    converge(
        &base,
        &[rotation.clone(), admission.clone()],
        &ids(&[ANN, DAN]),
    );
    w.share(&[rotation, admission]);
    let lacks = vec![(50, vec![fay()])];
    for n in [ANN, BOB] {
        assert_eq!(
            w.c[n].key_plan(&held(&[0, 50]), T0 + 21, WEEK).to_share,
            lacks
        );
    }
    assert!(
        w.c[CAT]
            .key_plan(&held(&[0, 50]), T0 + 21, WEEK)
            .to_share
            .is_empty()
    );
    assert!(
        w.c[ANN]
            .key_plan(&held(&[0]), T0 + 21, WEEK)
            .to_share
            .is_empty()
    );
    let fays = Circle::load(&fay(), &w.log).unwrap();
    let plan = fays.key_plan(&held(&[0]), T0 + 21, WEEK);
    assert_eq!((plan.write_epoch, plan.to_open.len()), (Some(0), 0));
    assert!(plan.holders[&0].contains(&fay()));

    // Keys reach members who lack them in key shares outside the document; a wrap
    // written into an existing epoch later is refused by every member.
    let late_wrap = raw_edit(&mut w.c[BOB], |doc| {
        let epochs = map_at(doc, &automerge::ROOT, "k");
        let epoch = map_at(doc, &epochs, "50");
        let wraps = map_at(doc, &epoch, "w");
        doc.put(&wraps, fay().as_str(), wrapped(50)).unwrap();
    });
    for n in [ANN, CAT] {
        let before = w.c[n].rejected_count();
        let _ = w.c[n].apply_changes(std::slice::from_ref(&late_wrap));
        assert_eq!(w.c[n].rejected_count(), before + 1);
    }
    // Fay, handed nothing of epoch 50, stays listed as lacking it.
    assert_eq!(
        w.c[ANN].key_plan(&held(&[0, 50]), T0 + 22, WEEK).to_share,
        lacks
    );

    // Handed at the join: held, nothing to share.
    let admission = w.c[DAN]
        .admit(&id(7), "Gus", &inv(1), &[0, 50], T0 + 23)
        .unwrap();
    w.share(&[admission]);
    let plan = w.c[BOB].key_plan(&held(&[0, 50]), T0 + 24, WEEK);
    assert!(plan.holders[&50].contains(&id(7)));
    assert!(plan.to_share.is_empty());
}

/// A scheduled rotation comes once the newest clean epoch is older than the period:
/// stewards at the period, members a day later; a new epoch restarts the clock.
#[test]
fn rotation_is_scheduled_after_the_period() {
    let mut w = world();
    let at = |c: &Circle, now: i64| c.key_plan(&held(&[0]), now, WEEK).rotate;
    // Epoch 0 dates from the founding (T0).
    for steward in [ANN, BOB] {
        assert_eq!(at(&w.c[steward], T0 + WEEK), None);
        assert_eq!(at(&w.c[steward], T0 + WEEK + 1), Some(Rotation::Scheduled));
    }
    for member in [CAT, DAN, EVE] {
        assert_eq!(at(&w.c[member], T0 + WEEK + 1), None);
        assert_eq!(at(&w.c[member], T0 + WEEK + DAY), None);
        assert_eq!(
            at(&w.c[member], T0 + WEEK + DAY + 1),
            Some(Rotation::Scheduled)
        );
    }
    // The period is the caller's.
    assert_eq!(at(&w.c[ANN], T0 + DAY + 1), None);
    assert_eq!(
        w.c[ANN].key_plan(&held(&[0]), T0 + DAY + 1, DAY).rotate,
        Some(Rotation::Scheduled)
    );
    // Bob rotates: the clock restarts from the new epoch, for everyone.
    let now = T0 + WEEK + 1;
    let everyone = ids(&[ANN, BOB, CAT, DAN, EVE]);
    let rotation = w.c[BOB].rotate(&epoch(6, 1, &everyone), now).unwrap();
    w.share(&[rotation]);
    for c in &w.c {
        let plan = |t| c.key_plan(&held(&[0, 6]), t, WEEK);
        assert_eq!(plan(now + 1).write_epoch, Some(6));
        assert_eq!(plan(now + 1).rotate, None);
        assert_eq!(plan(now + WEEK).rotate, None);
    }
    assert_eq!(
        w.c[ANN]
            .key_plan(&held(&[0, 6]), now + WEEK + 1, WEEK)
            .rotate,
        Some(Rotation::Scheduled)
    );
    assert_eq!(
        w.c[CAT]
            .key_plan(&held(&[0, 6]), now + WEEK + 1, WEEK)
            .rotate,
        None
    );
}

// ---------------------------------------------------------------------------------------
// 6. Proposals and approvals, through the API.
// ---------------------------------------------------------------------------------------

/// Under policy 2 a removal waits as a proposal every member sees; the proposer cannot
/// approve twice; a second steward's approval carries it out and marks it done; a policy
/// above the number of stewards is refused.
#[test]
fn a_removal_waits_for_a_second_steward() {
    let mut w = world();
    // The policy: between 1 and the number of stewards (2), by a steward.
    assert!(matches!(
        w.c[ANN].set_policy(3, iid(40).as_str(), T0 + 10),
        Err(CoreError::Invalid { what: "policy", .. })
    ));
    assert!(matches!(
        w.c[ANN].set_policy(0, iid(40).as_str(), T0 + 10),
        Err(CoreError::Invalid { what: "policy", .. })
    ));
    assert_eq!(
        w.c[CAT].set_policy(2, iid(40).as_str(), T0 + 10),
        Err(CoreError::NotSteward)
    );
    let policy = done(w.c[ANN].set_policy(2, iid(40).as_str(), T0 + 10));
    w.share(&[policy]);
    assert!(w.c.iter().all(|c| c.policy() == 2));
    assert!(w.c.iter().all(|c| c.proposals().is_empty()), "set at once");

    let stays = ids(&[ANN, BOB, CAT, EVE]);
    let p = iid(41).to_string();
    // A bad proposal id, and a member who is not a steward, are refused.
    assert_eq!(
        w.c[ANN].remove_member(&who(DAN), &epoch(8, 1, &stays), "nope", T0 + 11),
        Err(CoreError::InvalidId("nope".into()))
    );
    assert_eq!(
        w.c[CAT].remove_member(&who(DAN), &epoch(8, 1, &stays), &p, T0 + 11),
        Err(CoreError::NotSteward)
    );
    let outcome = w.c[ANN]
        .remove_member(&who(DAN), &epoch(8, 1, &stays), &p, T0 + 11)
        .unwrap();
    let RemoveOutcome::Pending {
        change,
        proposal,
        missing,
    } = outcome
    else {
        panic!("removed alone under policy 2: {outcome:?}");
    };
    assert_eq!((proposal.as_str(), missing), (p.as_str(), 1));
    assert!(
        !keys_written(&change).contains(schema::REMOVED),
        "a proposal removes nobody yet"
    );
    w.share(&[change]);
    let expected = ProposalView {
        id: p.clone(),
        action: ProposalAction::Remove(who(DAN)),
        proposer: who(ANN),
        created_at: T0 + 11,
        approvals: vec![who(ANN)],
        done: false,
    };
    for n in ANN..=EVE {
        assert_eq!(w.c[n].proposals(), vec![expected.clone()], "member {n}");
        assert_eq!(w.fresh(n).proposals(), vec![expected.clone()], "fresh {n}");
        assert!(!w.c[n].is_removed(&who(DAN)));
        assert!(w.c[n].epochs().is_empty(), "no epoch before the removal");
    }
    // Ann cannot approve twice, by either way in.
    let heads = w.c[ANN].doc.get_heads();
    let twice = |r: Result<RemoveOutcome, CoreError>| matches!(r, Err(CoreError::Invalid { what: "approve", ref why }) if why.contains("already approved"));
    assert!(twice(w.c[ANN].remove_member(
        &who(DAN),
        &epoch(8, 1, &stays),
        &p,
        T0 + 12
    )));
    assert!(twice(w.c[ANN].approve(&p, &epoch(8, 1, &stays), T0 + 12)));
    assert_eq!(w.c[ANN].doc.get_heads(), heads);
    // A member who is not a steward cannot approve; an unknown proposal is refused.
    assert_eq!(
        w.c[CAT].approve(&p, &epoch(8, 1, &stays), T0 + 12),
        Err(CoreError::NotSteward)
    );
    assert!(matches!(
        w.c[BOB].approve(iid(77).as_str(), &epoch(8, 1, &stays), T0 + 12),
        Err(CoreError::Invalid {
            what: "approve",
            ..
        })
    ));
    // Bob's approval carries it out, with the new epoch.
    let removal = done(w.c[BOB].approve(&p, &epoch(8, 1, &stays), T0 + 13));
    let keys = keys_written(&removal);
    assert!(keys.contains(schema::REMOVED) && keys.contains("8") && keys.contains(&who(BOB)));
    w.share(&[removal]);
    for c in &w.c {
        assert!(c.is_removed(&who(DAN)));
        let proposals = c.proposals();
        assert_eq!(proposals.len(), 1);
        assert!(proposals[0].done);
        assert_eq!(proposals[0].approvals, ids(&[ANN, BOB]));
        assert_eq!(epoch_ids(c), vec![8]);
        assert_eq!(c.rejected_count(), 0);
    }
    // Done is done.
    assert!(matches!(
        w.c[BOB].approve(&p, &epoch(9, 2, &stays), T0 + 14),
        Err(CoreError::Invalid { what: "approve", ref why }) if why.contains("already done")
    ));
}

/// Under policy 2 an invite admits nobody until a second steward approves it; approvals
/// show in `InviteView::approvals` at every member, each steward approves once, and
/// members who are not stewards cannot approve.
#[test]
fn invites_wait_for_a_second_stewards_approval() {
    let mut w = policy_two();
    let view = w.c[CAT].invite(&inv(3)).unwrap();
    assert_eq!(
        view.approvals,
        vec![who(ANN)],
        "its maker approves by making it"
    );
    assert_eq!(
        w.c[CAT].admit(&fay(), "Fay", &inv(3), &[0], T0 + 20),
        Err(CoreError::NeedsApprovals {
            what: format!("invite {}", inv(3)),
            missing: 1
        })
    );
    assert!(matches!(
        w.c[ANN].approve_invite(&inv(3), T0 + 20),
        Err(CoreError::Invalid {
            what: "approve",
            ..
        })
    ));
    assert_eq!(
        w.c[CAT].approve_invite(&inv(3), T0 + 20),
        Err(CoreError::NotSteward)
    );
    assert_eq!(
        w.c[BOB].approve_invite(&inv(9), T0 + 20),
        Err(CoreError::UnknownInvite(inv(9)))
    );
    let approval = w.c[BOB].approve_invite(&inv(3), T0 + 20).unwrap();
    w.share(&[approval]);
    for c in &w.c {
        assert_eq!(c.invite(&inv(3)).unwrap().approvals, ids(&[ANN, BOB]));
    }
    assert!(matches!(
        w.c[BOB].approve_invite(&inv(3), T0 + 21),
        Err(CoreError::Invalid {
            what: "approve",
            ..
        })
    ));
    let admission = w.c[CAT]
        .admit(&fay(), "Fay", &inv(3), &[0], T0 + 22)
        .unwrap();
    w.share(&[admission]);
    for c in &w.c {
        assert!(member_ids(&c.members()).contains(&fay()));
        assert_eq!(c.invite(&inv(3)).unwrap().used, 1);
        assert_eq!(c.rejected_count(), 0);
    }
    // Under policy 1 the maker's own approval is enough.
    let mut w = world();
    let invite = w.c[ANN]
        .create_invite(&inv(4), [4; 32], T0 + DAY, 1, T0 + 10)
        .unwrap();
    w.share(&[invite]);
    let admission = w.c[CAT]
        .admit(&fay(), "Fay", &inv(4), &[0], T0 + 11)
        .unwrap();
    w.share(&[admission]);
    assert!(w.c.iter().all(|c| c.rejected_count() == 0));
}

/// Ann removes Bob, a steward, while Bob (not knowing) admits Fay with his invite; Fay then
/// makes an epoch for Cat. Bob wrote Fay's entry after his cutoff, so the roster does not
/// count her and nothing she writes counts. Her epoch is listed all the same (not counted,
/// with her as its maker), and her wrap for Cat is there for Cat to open: a member who
/// applied her change depends on it (a simulated seed left Cat without the key before).
#[test]
fn an_epoch_by_a_member_the_roster_does_not_count_is_listed_with_its_wraps() {
    let mut w = world();
    let invite = w.c[BOB]
        .create_invite(&inv(1), [1; 32], T0 + DAY, 3, T0 + 10)
        .unwrap();
    w.share(&[invite]);
    let base = w.log.clone();
    let removal = done(w.c[ANN].remove_member(
        &who(BOB),
        &epoch(20, 1, &ids(&[ANN, CAT, DAN, EVE])),
        iid(90).as_str(),
        T0 + 20,
    ));
    let admission = w.c[BOB]
        .admit(&fay(), "Fay", &inv(1), &[0], T0 + 20)
        .unwrap();
    let mut fays = Circle::load(&fay(), &[base.clone(), vec![admission.clone()]].concat()).unwrap();
    let rotation = fays.rotate(&epoch(30, 1, &[who(CAT)]), T0 + 21).unwrap();
    let cat = converge(&base, &[removal, admission, rotation], &ids(&[CAT]));
    assert!(
        !member_ids(&cat.members()).contains(&fay()),
        "Fay does not count"
    );
    let view = cat
        .epochs()
        .into_iter()
        .find(|e| e.id == 30)
        .expect("Fay's epoch is listed");
    assert!(!view.counted);
    assert_eq!(view.creator, fay());
    assert_eq!(view.wraps.len(), 1);
    assert_eq!(
        (
            view.wraps[0].recipient.clone(),
            view.wraps[0].sender.clone()
        ),
        (who(CAT), fay())
    );
    let plan = cat.key_plan(&held(&[0, 20]), T0 + 22, WEEK);
    assert_eq!(plan.write_epoch, Some(20), "nobody writes with Fay's epoch");
    assert_eq!(plan.to_open, vec![(30, fay(), wrapped(30), commitment(30))]);
}
