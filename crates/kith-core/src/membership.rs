//! Removing members, the circle key's epochs, and stewards' approvals.
//!
//! A removal is a marker on the member's roster entry, written by a steward in the same
//! change as a new key epoch wrapped for everyone else: the removed member's later writes
//! no longer count, and nothing written afterwards is sealed with a key they hold. The
//! cryptography (making keys, wrapping and unwrapping them) is the caller's: this module
//! only says what the document holds and what the local member should do about it
//! ([`Circle::key_plan`]). `docs/document.md` ("Removal and key epochs") has the rules.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use automerge::{
    ActorId, ObjId, ReadDoc, ScalarValueRef, Value, ValueRef, transaction::Transactable,
};
use autosurgeon::bytes::ByteArray;
use autosurgeon::{Hydrate, reconcile_prop};

use crate::circle::{Circle, roster_touched};
use crate::feed::{Touched, child_map};
use crate::schema::{
    APPROVALS, CUTOFF, DONE, EPOCHS, EpochDoc, INVITES, MEMBERS, POLICY, PROPOSALS, ProposalDoc,
    REMOVED, RENEWALS, WRAPS,
};
use crate::types::in_alphabet;

use crate::{CoreError, DIRECT_EPOCH, MAX_EPOCHS, MemberView, Role, actor_for_member};

/// Length of a wrapped epoch key (kith-crypto's `WRAPPED_KEY_LEN`).
pub const WRAPPED_LEN: usize = 81;
/// The most stewards' approvals a policy may ask for.
pub const MAX_APPROVALS: u32 = 50;

/// One epoch of the circle key as the document holds it (epoch 0, made with the circle,
/// is not in the document and not listed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochView {
    pub id: u32,
    pub generation: u64,
    pub commitment: [u8; 32],
    /// The member who made it, counted or not (admitted by someone removed concurrently);
    /// empty if no roster entry names them. An epoch its maker's standing does not count
    /// is listed all the same: members who applied its change depend on it, so every
    /// member must be able to get its key.
    pub creator: String,
    pub created_at: i64,
    /// How many removals the roster held when it was made, its own included.
    pub removals: u64,
    /// False for an epoch a removed member made after their cutoff (or a member the roster
    /// does not count): its key still opens what was sealed with it, but nobody writes
    /// with it.
    pub counted: bool,
    pub wraps: Vec<WrapView>,
}

/// The epoch key wrapped for `recipient` by `sender` (the member who wrote it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrapView {
    pub recipient: String,
    pub sender: String,
    pub wrapped: Vec<u8>,
}

/// A new epoch, made by the caller: a fresh id (not 0, not in use), the next generation,
/// the key's commitment and the key wrapped for each recipient.
#[derive(Clone, Debug)]
pub struct NewEpoch {
    pub id: u32,
    pub generation: u64,
    pub commitment: [u8; 32],
    pub wraps: Vec<(String, Vec<u8>)>,
}

/// Why the local member should make a new epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rotation {
    /// Every epoch key it holds is also held by someone since removed.
    NoCleanKey,
    /// The newest epoch is older than the rotation period.
    Scheduled,
}

/// What the local member should do about the circle's keys, given the epochs it holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyPlan {
    /// The epoch to seal new envelopes with: the newest one it holds that no removed
    /// member holds. `None`: it holds none, and must rotate before writing.
    pub write_epoch: Option<u32>,
    /// Wraps addressed to it for epochs it does not hold yet: (epoch, sender, wrapped key,
    /// commitment).
    pub to_open: Vec<(u32, String, Vec<u8>, [u8; 32])>,
    /// Epochs it holds and should wrap for current members who lack them.
    pub to_share: Vec<(u32, Vec<String>)>,
    pub rotate: Option<Rotation>,
    /// Who a new epoch is for: every current member.
    pub recipients: Vec<String>,
    /// The generation a new epoch takes.
    pub next_generation: u64,
    /// Epoch ids in use (a new one must differ).
    pub used_ids: BTreeSet<u32>,
    /// Who holds each epoch, as far as the document tells.
    pub holders: BTreeMap<u32, BTreeSet<String>>,
    /// Every epoch id, oldest first (by generation, then id).
    pub order: Vec<u32>,
    /// The clean epochs (no removal since they were made), oldest first.
    pub clean: Vec<u32>,
    /// Epochs no removed member holds as far as the document tells (weaker than clean: a
    /// key can still reach a removed member outside the document), oldest first.
    pub unexposed: Vec<u32>,
    /// How many removals the roster holds: what a new epoch records.
    pub removals: u64,
}

impl KeyPlan {
    /// The newest epoch in `held` that every one of `readers` holds (as the document
    /// tells): what a removal is sealed with, so that the remaining members can open it
    /// even when they lack the newest key. Clean epochs first: a removed member may hold
    /// the others.
    pub fn common_epoch(&self, held: &BTreeSet<u32>, readers: &[String]) -> Option<u32> {
        let all_hold = |epoch: &u32| {
            held.contains(epoch)
                && readers.iter().all(|r| {
                    self.holders
                        .get(epoch)
                        .is_some_and(|h| h.contains(r.as_str()))
                })
        };
        self.clean
            .iter()
            .rev()
            .copied()
            .find(all_hold)
            .or_else(|| self.unexposed.iter().rev().copied().find(all_hold))
            .or_else(|| self.order.iter().rev().copied().find(all_hold))
    }
}

/// What [`Circle::key_plan`] reads from the document, kept until the document changes.
#[derive(Debug, Default)]
pub(crate) struct KeyCache {
    epochs: Vec<EpochView>,
    holders: BTreeMap<u32, BTreeSet<String>>,
}

/// Members (current and former) by automerge actor: their id, and their cutoff if removed.
struct Writers {
    by_actor: HashMap<[u8; 16], (String, Standing)>,
}

/// Whether a roster entry's writes count: up to a removal's cutoff, or not at all.
#[derive(Clone, Copy)]
enum Standing {
    Counts { cutoff: Option<u64> },
    NotCounted,
}

impl Writers {
    fn lookup(&self, obj: &ObjId) -> Option<(u64, &(String, Standing))> {
        let ObjId::Id(counter, actor, _) = obj else {
            return None;
        };
        let actor: [u8; 16] = actor.to_bytes().try_into().ok()?;
        self.by_actor.get(&actor).map(|w| (*counter, w))
    }

    /// The member (removed, or on no roster that counts) whose op made `obj`: keys a
    /// removed member wrapped before anyone knew still open what was sealed with them.
    fn any(&self, obj: &ObjId) -> Option<String> {
        self.lookup(obj).map(|(_, (id, _))| id.clone())
    }

    /// The member whose op made `obj`, if that op counts (a removed member's ops count up
    /// to their cutoff only).
    fn counted(&self, obj: &ObjId) -> Option<String> {
        match self.lookup(obj)? {
            (_, (_, Standing::NotCounted)) => None,
            (
                counter,
                (
                    _,
                    Standing::Counts {
                        cutoff: Some(cutoff),
                    },
                ),
            ) if counter > *cutoff => None,
            (_, (id, Standing::Counts { .. })) => Some(id.clone()),
        }
    }
}

/// A roster change waiting for stewards' approvals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProposalView {
    pub id: String,
    pub action: ProposalAction,
    pub proposer: String,
    pub created_at: i64,
    /// Stewards who approved (current stewards only), the proposer first.
    pub approvals: Vec<String>,
    /// Whether it has been carried out (the member removed, the policy set).
    pub done: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProposalAction {
    Remove(String),
    Policy(u32),
    /// Give a member a role (appointing a steward, or making one a member again).
    Role(String, Role),
}

impl ProposalAction {
    pub(crate) fn parts(&self) -> (&'static str, String) {
        match self {
            ProposalAction::Remove(member) => ("remove", member.clone()),
            ProposalAction::Policy(k) => ("policy", k.to_string()),
            ProposalAction::Role(member, role) => ("role", format!("{member}={}", role.as_str())),
        }
    }

    pub(crate) fn parse(action: &str, target: &str) -> Option<ProposalAction> {
        match action {
            "remove" => actor_for_member(target)
                .ok()
                .map(|_| ProposalAction::Remove(target.to_string())),
            "policy" => target
                .parse::<u32>()
                .ok()
                .filter(|k| (1..=MAX_APPROVALS).contains(k))
                .map(ProposalAction::Policy),
            "role" => {
                let (member, role) = target.split_once('=')?;
                actor_for_member(member).ok()?;
                let role = match role {
                    "steward" => Role::Steward,
                    "member" => Role::Member,
                    _ => return None,
                };
                Some(ProposalAction::Role(member.to_string(), role))
            }
            _ => None,
        }
    }
}

/// What `kith remove` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoveOutcome {
    /// The member is removed; the change carries the new epoch.
    Removed(Vec<u8>),
    /// The removal waits for more approvals: the proposal, and how many more it needs.
    Pending {
        change: Vec<u8>,
        proposal: String,
        missing: u32,
    },
}

fn doc_err(e: impl std::fmt::Display) -> CoreError {
    CoreError::Document(e.to_string())
}

/// An epoch id as the document spells it: decimal, 1 ..= u32::MAX - 1, no leading zero
/// (u32::MAX marks envelopes sealed for named readers, `kith_crypto::DIRECT_EPOCH`).
pub(crate) fn parse_epoch_id(key: &str) -> Option<u32> {
    if key.starts_with('0') || key.len() > 10 {
        return None;
    }
    key.parse::<u32>()
        .ok()
        .filter(|id| *id != 0 && *id != DIRECT_EPOCH)
}

/// A proposal id: like an item id, 10 characters of the id alphabet.
pub(crate) fn is_proposal_id(key: &str) -> bool {
    key.len() == 10 && key.chars().all(in_alphabet)
}

fn scalar_u64(value: &Value<'_>) -> Option<u64> {
    match value {
        Value::Scalar(s) => match s.as_ref() {
            automerge::ScalarValue::Uint(u) => Some(*u),
            automerge::ScalarValue::Int(i) => u64::try_from(*i).ok(),
            _ => None,
        },
        Value::Object(_) => None,
    }
}

impl Circle {
    /// Members a steward removed, oldest first.
    pub fn former_members(&self) -> Vec<MemberView> {
        self.feed.former().to_vec()
    }

    /// Whether `member` was removed from the circle.
    pub fn is_removed(&self, member: &str) -> bool {
        self.feed.former().iter().any(|m| m.id == member)
    }

    /// How many stewards must approve adding or removing a member (1: any steward alone).
    pub fn policy(&self) -> u32 {
        match self.doc.get(&automerge::ROOT, POLICY) {
            Ok(Some((value, _))) => scalar_u64(&value)
                .and_then(|k| u32::try_from(k).ok())
                .filter(|k| (1..=MAX_APPROVALS).contains(k))
                .unwrap_or(1),
            _ => 1,
        }
    }

    /// The epochs the document holds, by id. Epochs a removed member made after their
    /// cutoff (or someone the roster does not count made) are listed as not counted;
    /// wraps by someone with no roster entry, and malformed epochs, are left out.
    pub fn epochs(&self) -> Vec<EpochView> {
        self.key_cache().epochs.clone()
    }

    /// The commitment the document holds for epoch `id` (none for epoch 0).
    pub fn epoch_commitment(&self, id: u32) -> Option<[u8; 32]> {
        self.key_cache()
            .epochs
            .iter()
            .find(|e| e.id == id)
            .map(|e| e.commitment)
    }

    /// The epochs and their holders as the document holds them now, read once.
    fn key_cache(&self) -> &KeyCache {
        self.key_cache.get_or_init(|| {
            let epochs = self.read_epochs();
            let holders = self.holders(&epochs);
            KeyCache { epochs, holders }
        })
    }

    fn read_epochs(&self) -> Vec<EpochView> {
        let Some(map) = self.root_map(EPOCHS) else {
            return Vec::new();
        };
        let writers = self.writers();
        let mut out = Vec::new();
        for entry in self.doc.map_range(&map, ..).take(MAX_EPOCHS) {
            let Some(id) = parse_epoch_id(&entry.key) else {
                continue;
            };
            let obj = entry.id();
            let counted = writers.counted(&obj);
            let creator = counted
                .clone()
                .or_else(|| writers.any(&obj))
                .unwrap_or_default();
            let Ok(doc) = EpochDoc::hydrate_map(&self.doc, &obj) else {
                continue;
            };
            let mut wraps = Vec::new();
            if let Some(wrap_map) = child_map(&self.doc, &obj, WRAPS) {
                for wrap in self.doc.map_range(&wrap_map, ..) {
                    if actor_for_member(&wrap.key).is_err() {
                        continue;
                    }
                    let mut push = |bytes: &[u8], op: &ObjId| {
                        if bytes.len() != WRAPPED_LEN {
                            return;
                        }
                        if let Some(sender) = writers.any(op) {
                            wraps.push(WrapView {
                                recipient: wrap.key.to_string(),
                                sender,
                                wrapped: bytes.to_vec(),
                            });
                        }
                    };
                    if !wrap.conflict {
                        // The usual case (wraps are written once): no second lookup.
                        if let ValueRef::Scalar(ScalarValueRef::Bytes(bytes)) = &wrap.value {
                            push(bytes, &wrap.id());
                        }
                        continue;
                    }
                    // Every value written for this recipient, each with its writer.
                    for (value, op) in self
                        .doc
                        .get_all(&wrap_map, wrap.key.as_ref())
                        .unwrap_or_default()
                    {
                        let Value::Scalar(s) = value else { continue };
                        if let automerge::ScalarValue::Bytes(bytes) = s.as_ref() {
                            push(bytes, &op);
                        }
                    }
                }
            }
            out.push(EpochView {
                id,
                generation: doc.generation,
                commitment: doc.commitment.into(),
                creator,
                created_at: doc.created_at,
                removals: doc.removals,
                counted: counted.is_some(),
                wraps,
            });
        }
        out
    }

    /// The current stewards' member ids.
    fn steward_ids(&self) -> BTreeSet<&str> {
        self.feed
            .members()
            .iter()
            .filter(|m| m.role == Role::Steward)
            .map(|m| m.id.as_str())
            .collect()
    }

    /// Who wrote what, looked up by actor: built once per read, since every wrap and
    /// approval asks (decoding each member id per question cost ~40 ms for a key plan over
    /// three years of weekly epochs in a circle of 50).
    fn writers(&self) -> Writers {
        let mut by_actor: HashMap<[u8; 16], (String, Standing)> = self
            .feed
            .members()
            .iter()
            .chain(self.feed.former())
            .filter_map(|m| {
                let actor = actor_for_member(&m.id).ok()?;
                let cutoff = m.removed.map(|r| r.cutoff);
                Some((actor, (m.id.clone(), Standing::Counts { cutoff })))
            })
            .collect();
        // Entries the roster does not count (written by someone removed concurrently):
        // their wraps still open (a member who applied them may depend on them), though
        // nothing they write counts.
        if let Some(roster) = self.root_map(MEMBERS) {
            for entry in self.doc.map_range(&roster, ..) {
                if let Ok(actor) = actor_for_member(&entry.key) {
                    by_actor
                        .entry(actor)
                        .or_insert_with(|| (entry.key.to_string(), Standing::NotCounted));
                }
            }
        }
        Writers { by_actor }
    }

    /// How many roster entries carry a removal marker, as the validator counts them.
    pub fn removal_markers(&self) -> u64 {
        let Some(roster) = self.root_map(MEMBERS) else {
            return 0;
        };
        self.doc
            .map_range(&roster, ..)
            .filter(|e| matches!(self.doc.get(e.id(), REMOVED), Ok(Some(_))))
            .count() as u64
    }

    /// Who holds each epoch's key, as far as the document tells: its maker, everyone it
    /// was wrapped for, and everyone an admitter handed it to at their join. Epoch 0 (made
    /// with the circle) is held by the founder and every member admitted with it.
    fn holders(&self, epochs: &[EpochView]) -> BTreeMap<u32, BTreeSet<String>> {
        let everyone: Vec<&MemberView> = self
            .feed
            .members()
            .iter()
            .chain(self.feed.former())
            .collect();
        let mut holders: BTreeMap<u32, BTreeSet<String>> = BTreeMap::new();
        for member in &everyone {
            match &member.handed {
                None => {
                    holders.entry(0).or_default().insert(member.id.clone());
                }
                Some(handed) => {
                    for epoch in handed {
                        holders.entry(*epoch).or_default().insert(member.id.clone());
                    }
                }
            }
        }
        for epoch in epochs {
            let set = holders.entry(epoch.id).or_default();
            set.insert(epoch.creator.clone());
            for wrap in &epoch.wraps {
                set.insert(wrap.recipient.clone());
            }
        }
        holders
    }

    /// What the local member should do about the circle's keys, holding the epochs in
    /// `held`, at `now`, with epochs meant to last `period_ms`.
    ///
    /// - It writes with the newest epoch (by generation, then id) that it holds and that no
    ///   removed member holds.
    /// - It opens wraps addressed to it.
    /// - It wraps epochs it holds for current members who lack them, when it made the
    ///   epoch or is a steward, or is the first current holder of an epoch no steward
    ///   holds (so that a member admitted while someone rotated can read what is written
    ///   with the new key).
    /// - It rotates when it holds no clean key, or when the newest clean epoch is older
    ///   than the period (a day later for members who are not stewards, so that stewards
    ///   usually do it and members only stand in).
    pub fn key_plan(&self, held: &BTreeSet<u32>, now: i64, period_ms: i64) -> KeyPlan {
        let KeyCache { epochs, holders } = self.key_cache();
        // An epoch is clean when no removal happened since it was made: then nobody who
        // holds it has been removed (a wrap for a removed member is refused once they are,
        // and anyone who knows the epoch knows every removal before it). Counted
        // epochs only: a removed member's late epoch is for reading.
        let removals = self.removal_markers();
        let clean_ids: BTreeSet<u32> = epochs
            .iter()
            .filter(|e| e.counted && e.removals == removals)
            .map(|e| e.id)
            .chain((removals == 0).then_some(0))
            .collect();
        let clean = |id: u32| clean_ids.contains(&id);
        let founded_at = self
            .feed
            .members()
            .iter()
            .chain(self.feed.former())
            .map(|m| m.joined_at)
            .min()
            .unwrap_or(now);
        // (generation, id, created_at) of every epoch, epoch 0 included.
        let mut all: Vec<(u64, u32, i64)> = vec![(0, 0, founded_at)];
        all.extend(epochs.iter().map(|e| (e.generation, e.id, e.created_at)));
        let clean_order: Vec<u32> = {
            let mut c: Vec<(u64, u32)> = all
                .iter()
                .filter(|(_, id, _)| clean(*id))
                .map(|(g, id, _)| (*g, *id))
                .collect();
            c.sort();
            c.into_iter().map(|(_, id)| id).collect()
        };
        let write_epoch = all
            .iter()
            .filter(|(_, id, _)| held.contains(id) && clean(*id))
            .max_by_key(|(g, id, _)| (*g, *id))
            .map(|(_, id, _)| *id);
        let me = self.me.as_str();
        let member = self.feed.members().iter().find(|m| m.id == me);
        let steward = member.is_some_and(|m| m.role == Role::Steward);
        let mut order: Vec<(u64, u32)> = all.iter().map(|(g, id, _)| (*g, *id)).collect();
        order.sort();
        let former: BTreeSet<&str> = self.feed.former().iter().map(|m| m.id.as_str()).collect();
        let mut plan = KeyPlan {
            write_epoch,
            removals,
            clean: clean_order,
            unexposed: order
                .iter()
                .map(|(_, id)| *id)
                .filter(|id| {
                    holders
                        .get(id)
                        .is_none_or(|h| h.iter().all(|m| !former.contains(m.as_str())))
                })
                .collect(),
            order: order.into_iter().map(|(_, id)| id).collect(),
            next_generation: all.iter().map(|(g, _, _)| *g).max().unwrap_or(0) + 1,
            used_ids: all
                .iter()
                .map(|(_, id, _)| *id)
                .chain([DIRECT_EPOCH])
                .collect(),
            recipients: self.feed.members().iter().map(|m| m.id.clone()).collect(),
            ..KeyPlan::default()
        };
        for epoch in epochs {
            if held.contains(&epoch.id) {
                continue;
            }
            for wrap in epoch.wraps.iter().filter(|w| w.recipient == me) {
                plan.to_open.push((
                    epoch.id,
                    wrap.sender.clone(),
                    wrap.wrapped.clone(),
                    epoch.commitment,
                ));
            }
        }
        if member.is_none() {
            // Not (or no longer) a member: nothing to share or rotate.
            plan.holders = holders.clone();
            return plan;
        }
        let stewards = self.steward_ids();
        let current: BTreeSet<&str> = self.feed.members().iter().map(|m| m.id.as_str()).collect();
        for epoch in epochs {
            if !held.contains(&epoch.id) {
                continue;
            }
            let has = holders.get(&epoch.id);
            // Stewards and the epoch's maker share it. When no current steward holds it
            // (two stewards removed each other, say), its first current holder does, so
            // that a member admitted meanwhile is not left without it.
            let first_holder = || {
                has.and_then(|h| h.iter().find(|m| current.contains(m.as_str())))
                    .is_some_and(|first| *first == me)
            };
            let steward_holds =
                || has.is_some_and(|h| h.iter().any(|m| stewards.contains(m.as_str())));
            if !(steward || epoch.creator == me || (!steward_holds() && first_holder())) {
                continue;
            }
            let missing: Vec<String> = self
                .feed
                .members()
                .iter()
                .filter(|m| m.id != me && !has.is_some_and(|h| h.contains(&m.id)))
                .map(|m| m.id.clone())
                .collect();
            if !missing.is_empty() {
                plan.to_share.push((epoch.id, missing));
            }
        }
        if write_epoch.is_none() {
            plan.rotate = Some(Rotation::NoCleanKey);
        } else {
            let newest_clean = all
                .iter()
                .filter(|(_, id, _)| clean(*id))
                .map(|(_, _, at)| *at)
                .max()
                .unwrap_or(founded_at);
            let grace = if steward { 0 } else { 24 * 3600 * 1000 };
            if now.saturating_sub(newest_clean) > period_ms.saturating_add(grace) {
                plan.rotate = Some(Rotation::Scheduled);
            }
        }
        plan.holders = holders.clone();
        plan
    }

    /// Writes a new epoch (a rotation). Any current member may; every wrap must be for a
    /// current member.
    pub fn rotate(&mut self, epoch: &NewEpoch, now: i64) -> Result<Vec<u8>, CoreError> {
        self.require_current()?;
        let epochs = self.epochs_container()?;
        self.check_new_epoch(epoch, None)?;
        let removals = self.removal_markers();
        self.write(Touched::Keys(Vec::new()), |doc| {
            put_epoch(doc, &epochs, epoch, removals, now)
        })
    }

    /// A steward removes `member`. Under a policy of one approval the removal is written
    /// at once, with `epoch` (wrapped for everyone but `member`); otherwise the steward's
    /// approval is added to the removal's proposal (made if there is none), and the
    /// removal is written with the approval that completes it.
    pub fn remove_member(
        &mut self,
        member: &str,
        epoch: &NewEpoch,
        proposal_id: &str,
        now: i64,
    ) -> Result<RemoveOutcome, CoreError> {
        self.check_removal(member)?;
        let action = ProposalAction::Remove(member.to_string());
        let completing = match self.approval_step(&action, proposal_id, now)? {
            Approval::Waiting(pending) => return Ok(pending),
            Approval::Ready(completing) => completing,
        };
        self.check_new_epoch(epoch, Some(member))?;
        let cutoff = self.max_op_of(member);
        // The new epoch counts the removal it comes with.
        let removals = self.removal_markers() + 1;
        let entry = child_map(&self.doc, &self.container(MEMBERS)?, member)
            .ok_or_else(|| CoreError::NotMember(member.to_string()))?;
        let epochs = self.epochs_container()?;
        let me = self.me.clone();
        let change = self.write(roster_touched(), |doc| {
            // A removal's proposal reads done once the member is removed: no mark.
            if let Some((_, approvals)) = &completing {
                doc.put(approvals, me.as_str(), now).map_err(doc_err)?;
            }
            doc.put(&entry, REMOVED, now).map_err(doc_err)?;
            doc.put(&entry, CUTOFF, cutoff).map_err(doc_err)?;
            put_epoch(doc, &epochs, epoch, removals, now)
        })?;
        Ok(RemoveOutcome::Removed(change))
    }

    /// Whether the local steward may remove `member` now (before any approvals).
    pub fn check_removal(&self, member: &str) -> Result<(), CoreError> {
        self.require_current()?;
        if self.is_removed(member) {
            return Err(CoreError::Invalid {
                what: "remove",
                why: format!("{member} was already removed"),
            });
        }
        let members = self.feed.members();
        let writer = members.iter().find(|m| m.id == self.me);
        if writer.map(|m| m.role) != Some(Role::Steward) {
            return Err(CoreError::NotSteward);
        }
        let target = members
            .iter()
            .find(|m| m.id == member)
            .ok_or_else(|| CoreError::NotMember(member.to_string()))?;
        if member == self.me {
            return Err(CoreError::Invalid {
                what: "remove",
                why: "you cannot remove yourself; ask another steward".into(),
            });
        }
        let stewards = members.iter().filter(|m| m.role == Role::Steward).count();
        if target.role == Role::Steward && stewards <= 1 {
            return Err(CoreError::LastSteward);
        }
        if self.root_map(EPOCHS).is_none() {
            return Err(CoreError::OldCircle("removals"));
        }
        Ok(())
    }

    /// The highest op counter of `member`'s changes in the document: their cutoff.
    fn max_op_of(&mut self, member: &str) -> u64 {
        let Ok(actor) = actor_for_member(member) else {
            return 0;
        };
        let actor = ActorId::from(actor);
        self.doc
            .get_changes_meta(&[])
            .iter()
            .filter(|c| *c.actor == actor)
            .map(|c| c.max_op)
            .max()
            .unwrap_or(0)
    }

    /// Roster changes waiting for approvals, and done ones, oldest first.
    pub fn proposals(&self) -> Vec<ProposalView> {
        let Some(map) = self.root_map(PROPOSALS) else {
            return Vec::new();
        };
        let stewards = self.steward_ids();
        let writers = self.writers();
        let mut out = Vec::new();
        for entry in self.doc.map_range(&map, ..) {
            if !is_proposal_id(&entry.key) {
                continue;
            }
            let obj = entry.id();
            let Some(proposer) = writers.counted(&obj) else {
                continue;
            };
            let Ok(doc) = ProposalDoc::hydrate_map(&self.doc, &obj) else {
                continue;
            };
            let Some(action) = ProposalAction::parse(&doc.action, &doc.target) else {
                continue;
            };
            let mut approvals: Vec<(i64, String)> = Vec::new();
            if let Some(votes) = child_map(&self.doc, &obj, APPROVALS) {
                for vote in self.doc.map_range(&votes, ..) {
                    // An approval counts only if the steward it names wrote it.
                    let writer = writers.counted(&vote.id());
                    if writer.as_deref() == Some(vote.key.as_ref())
                        && stewards.contains(vote.key.as_ref())
                    {
                        let at = match vote.value {
                            automerge::ValueRef::Scalar(automerge::ScalarValueRef::Int(i)) => i,
                            _ => 0,
                        };
                        approvals.push((at, vote.key.to_string()));
                    }
                }
            }
            approvals.sort();
            let mut approvals: Vec<String> = approvals.into_iter().map(|(_, s)| s).collect();
            if let Some(pos) = approvals.iter().position(|a| *a == proposer) {
                let first = approvals.remove(pos);
                approvals.insert(0, first);
            }
            let done = match &action {
                ProposalAction::Remove(member) => self.is_removed(member),
                ProposalAction::Policy(_) | ProposalAction::Role(..) => {
                    matches!(self.doc.get(&obj, DONE), Ok(Some(_)))
                }
            };
            out.push(ProposalView {
                id: entry.key.to_string(),
                action,
                proposer,
                created_at: doc.created_at,
                approvals,
                done,
            });
        }
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        out
    }

    /// A steward approves proposal `id` (a removal or a policy change) and, when that is
    /// the last approval needed, carries it out in the same change: `epoch` is the new
    /// epoch a removal needs.
    pub fn approve(
        &mut self,
        id: &str,
        epoch: &NewEpoch,
        now: i64,
    ) -> Result<RemoveOutcome, CoreError> {
        let proposal = self
            .proposals()
            .into_iter()
            .find(|p| p.id == id)
            .ok_or_else(|| CoreError::Invalid {
                what: "approve",
                why: format!("no pending change {id}"),
            })?;
        if proposal.done {
            return Err(CoreError::Invalid {
                what: "approve",
                why: format!("{id} is already done"),
            });
        }
        match proposal.action.clone() {
            ProposalAction::Remove(member) => self.remove_member(&member, epoch, id, now),
            ProposalAction::Policy(k) => self.set_policy(k, id, now),
            ProposalAction::Role(member, role) => self.change_role(&member, role, id, now),
        }
    }

    /// A steward sets how many stewards must approve adding or removing a member. While
    /// the policy asks for more than one, changing it takes that many approvals too.
    pub fn set_policy(
        &mut self,
        approvals: u32,
        proposal_id: &str,
        now: i64,
    ) -> Result<RemoveOutcome, CoreError> {
        self.require_current()?;
        let members = self.feed.members();
        if members.iter().find(|m| m.id == self.me).map(|m| m.role) != Some(Role::Steward) {
            return Err(CoreError::NotSteward);
        }
        let stewards = members.iter().filter(|m| m.role == Role::Steward).count() as u32;
        if approvals == 0 || approvals > stewards.min(MAX_APPROVALS) {
            return Err(CoreError::Invalid {
                what: "policy",
                why: format!("approvals must be between 1 and the number of stewards ({stewards})"),
            });
        }
        if self.root_map(PROPOSALS).is_none() {
            return Err(CoreError::OldCircle("approval policies"));
        }
        let action = ProposalAction::Policy(approvals);
        let completing = match self.approval_step(&action, proposal_id, now)? {
            Approval::Waiting(pending) => return Ok(pending),
            Approval::Ready(completing) => completing,
        };
        let me = self.me.clone();
        let change = self.write(Touched::Keys(Vec::new()), |doc| {
            complete(doc, completing.as_ref(), &me, now)?;
            doc.put(&automerge::ROOT, POLICY, u64::from(approvals))
                .map_err(doc_err)
        })?;
        Ok(RemoveOutcome::Removed(change))
    }

    /// A steward gives `member` a role. Under a policy of K approvals this takes K
    /// stewards too (appointing a steward is choosing who approves), as a proposal.
    pub fn change_role(
        &mut self,
        member: &str,
        role: Role,
        proposal_id: &str,
        now: i64,
    ) -> Result<RemoveOutcome, CoreError> {
        self.require_current()?;
        crate::rules::check_set_role(self.feed.members(), &self.me, member, role)?;
        if self
            .feed
            .members()
            .iter()
            .any(|m| m.id == member && m.role == role)
        {
            return Err(CoreError::Invalid {
                what: "role",
                why: format!("{member} is already a {}", role.as_str()),
            });
        }
        let action = ProposalAction::Role(member.to_string(), role);
        let completing = match self.approval_step(&action, proposal_id, now)? {
            Approval::Waiting(pending) => return Ok(pending),
            Approval::Ready(completing) => completing,
        };
        let entry = child_map(&self.doc, &self.container(MEMBERS)?, member)
            .ok_or_else(|| CoreError::NotMember(member.to_string()))?;
        let me = self.me.clone();
        let change = self.write(roster_touched(), |doc| {
            complete(doc, completing.as_ref(), &me, now)?;
            doc.put(&entry, crate::schema::ROLE, role.as_str())
                .map_err(doc_err)
        })?;
        Ok(RemoveOutcome::Removed(change))
    }

    /// Where `action` stands once the local steward approves it: still waiting for
    /// others (the change that records the approval, already written), or ready to carry
    /// out, with the proposal (its map and approvals map) the carrying-out completes when
    /// the policy asks for more than one approval.
    fn approval_step(
        &mut self,
        action: &ProposalAction,
        proposal_id: &str,
        now: i64,
    ) -> Result<Approval, CoreError> {
        let needed = self.policy();
        let existing = self
            .proposals()
            .into_iter()
            .find(|p| p.action == *action && !p.done);
        let others = existing.as_ref().map_or(0, |p| {
            p.approvals.iter().filter(|a| **a != self.me).count() as u32
        });
        if others + 1 < needed {
            let (change, proposal) = self.approve_or_propose(action, existing, proposal_id, now)?;
            return Ok(Approval::Waiting(RemoveOutcome::Pending {
                change,
                proposal,
                missing: needed - others - 1,
            }));
        }
        match existing {
            Some(p) if needed > 1 => Ok(Approval::Ready(Some(self.proposal_and_approvals(&p.id)?))),
            _ => Ok(Approval::Ready(None)),
        }
    }

    /// A proposal's map and its approvals map.
    fn proposal_and_approvals(&self, id: &str) -> Result<(ObjId, ObjId), CoreError> {
        let proposals = self.container(PROPOSALS)?;
        let obj = child_map(&self.doc, &proposals, id).ok_or_else(|| CoreError::Invalid {
            what: "approve",
            why: format!("no pending change {id}"),
        })?;
        Ok((obj, self.approval_map(id)?))
    }

    /// Adds the local steward's approval to `existing`, or makes a new proposal.
    fn approve_or_propose(
        &mut self,
        action: &ProposalAction,
        existing: Option<ProposalView>,
        proposal_id: &str,
        now: i64,
    ) -> Result<(Vec<u8>, String), CoreError> {
        let me = self.me.clone();
        if let Some(p) = existing {
            if p.approvals.contains(&me) {
                return Err(CoreError::Invalid {
                    what: "approve",
                    why: format!("you already approved {}; it needs another steward", p.id),
                });
            }
            let map = self.approval_map(&p.id)?;
            let change = self.write(Touched::Keys(Vec::new()), |doc| {
                doc.put(&map, me.as_str(), now).map_err(doc_err)
            })?;
            return Ok((change, p.id));
        }
        if !is_proposal_id(proposal_id) {
            return Err(CoreError::InvalidId(proposal_id.to_string()));
        }
        let proposals = self
            .root_map(PROPOSALS)
            .ok_or(CoreError::OldCircle("approval policies"))?;
        if matches!(self.doc.get(&proposals, proposal_id), Ok(Some(_))) {
            return Err(CoreError::IdInUse(proposal_id.to_string()));
        }
        let (verb, target) = action.parts();
        let doc_value = ProposalDoc {
            action: verb.to_string(),
            target,
            created_at: now,
            approvals: BTreeMap::from([(me.clone(), now)]),
        };
        let change = self.write(Touched::Keys(Vec::new()), |doc| {
            reconcile_prop(doc, &proposals, proposal_id, &doc_value).map_err(doc_err)
        })?;
        Ok((change, proposal_id.to_string()))
    }

    fn approval_map(&self, proposal: &str) -> Result<ObjId, CoreError> {
        let proposals = self
            .root_map(PROPOSALS)
            .ok_or(CoreError::OldCircle("approval policies"))?;
        child_map(&self.doc, &proposals, proposal)
            .and_then(|p| child_map(&self.doc, &p, APPROVALS))
            .ok_or_else(|| CoreError::Invalid {
                what: "approve",
                why: format!("no pending change {proposal}"),
            })
    }

    /// A steward approves invite `invite` (needed while the policy asks for more than
    /// one approval: the invite admits nobody until enough stewards approved it).
    pub fn approve_invite(&mut self, invite: &str, now: i64) -> Result<Vec<u8>, CoreError> {
        self.require_current()?;
        if self
            .feed
            .members()
            .iter()
            .find(|m| m.id == self.me)
            .map(|m| m.role)
            != Some(Role::Steward)
        {
            return Err(CoreError::NotSteward);
        }
        let view = self
            .feed
            .invite(invite)
            .ok_or_else(|| CoreError::UnknownInvite(invite.to_string()))?;
        if view.approvals.contains(&self.me) {
            return Err(CoreError::Invalid {
                what: "approve",
                why: format!("you already approved invite {invite}"),
            });
        }
        let invites = self.container(INVITES)?;
        let map = child_map(&self.doc, &invites, invite)
            .and_then(|obj| child_map(&self.doc, &obj, APPROVALS))
            .ok_or(CoreError::OldCircle("approvals of invites"))?;
        let me = self.me.clone();
        let touched = Touched::Keys(vec![(INVITES, invite.to_string())]);
        self.write(touched, |doc| {
            doc.put(&map, me.as_str(), now).map_err(doc_err)
        })
    }

    /// Renews the key of every private item the local member wrote whose audience
    /// includes someone since removed, unless renewed since (a renewal's generation is
    /// the number of removed members when it was made). Parts written from then on are
    /// sealed under a key the removed readers never get. One change for all such items;
    /// `None` when there are none.
    pub fn renew_private_keys(&mut self) -> Result<Option<Vec<u8>>, CoreError> {
        if self.require_current().is_err() {
            return Ok(None);
        }
        let removed: BTreeSet<String> = self.feed.former().iter().map(|m| m.id.clone()).collect();
        let Ok(generation) = u32::try_from(removed.len()) else {
            return Ok(None);
        };
        if generation == 0 {
            return Ok(None);
        }
        let me = self.me.clone();
        let mut stale: Vec<(String, crate::ItemKind, Vec<String>)> = Vec::new();
        self.feed.visit_items(|item| {
            let Some(audience) = &item.audience else {
                return;
            };
            if item.author == me && audience.iter().any(|r| removed.contains(r)) {
                let readers = audience
                    .iter()
                    .filter(|r| !removed.contains(*r))
                    .cloned()
                    .collect();
                stale.push((item.id.clone(), item.kind, readers));
            }
        });
        stale.retain(|(id, _, _)| {
            self.feed
                .item_key(id)
                .and_then(|keys| keys.newest())
                .is_some_and(|(newest, _)| newest < generation)
        });
        if stale.is_empty() {
            return Ok(None);
        }
        let keyring = self
            .feed
            .keyring()
            .ok_or_else(|| CoreError::Document("this member's keys are not loaded".into()))?;
        let mut writes = Vec::with_capacity(stale.len());
        for (id, kind, readers) in &stale {
            let (_, renewal) = keyring.rekey_item(id, readers, generation)?;
            let item = crate::ItemId::parse(id)?;
            let obj = self.item_obj(&item, *kind)?;
            writes.push((obj, renewal));
        }
        let touched = Touched::Keys(
            stale
                .iter()
                .map(|(id, kind, _)| (crate::feed::container_of(*kind), id.clone()))
                .collect(),
        );
        let key = generation.to_string();
        self.write(touched, |doc| {
            for (obj, renewal) in writes {
                let map = match child_map(doc, &obj, RENEWALS) {
                    Some(map) => map,
                    None => doc
                        .put_object(&obj, RENEWALS, automerge::ObjType::Map)
                        .map_err(doc_err)?,
                };
                doc.put(&map, key.as_str(), renewal).map_err(doc_err)?;
            }
            Ok(())
        })
        .map(Some)
    }

    fn require_current(&self) -> Result<(), CoreError> {
        if self.is_removed(&self.me) {
            return Err(CoreError::Removed(self.me.clone()));
        }
        if self.feed.members().iter().any(|m| m.id == self.me) {
            Ok(())
        } else {
            Err(CoreError::NotMember(self.me.clone()))
        }
    }

    fn epochs_container(&self) -> Result<ObjId, CoreError> {
        self.root_map(EPOCHS)
            .ok_or(CoreError::OldCircle("key rotations"))
    }

    fn check_recipient(&self, recipient: &str, wrapped: &[u8]) -> Result<(), CoreError> {
        if wrapped.len() != WRAPPED_LEN {
            return Err(CoreError::Invalid {
                what: "epoch",
                why: format!("a wrapped key is {WRAPPED_LEN} bytes"),
            });
        }
        if !self.feed.members().iter().any(|m| m.id == recipient) {
            return Err(CoreError::NotMember(recipient.to_string()));
        }
        Ok(())
    }

    /// A new epoch's id is fresh and its wraps are for current members (other than
    /// `leaving`, who must have none).
    fn check_new_epoch(&self, epoch: &NewEpoch, leaving: Option<&str>) -> Result<(), CoreError> {
        let map = self.epochs_container()?;
        if epoch.id == 0
            || epoch.id == DIRECT_EPOCH
            || matches!(self.doc.get(&map, epoch.id.to_string()), Ok(Some(_)))
        {
            return Err(CoreError::IdInUse(epoch.id.to_string()));
        }
        let mut seen = BTreeSet::new();
        for (recipient, wrapped) in &epoch.wraps {
            if Some(recipient.as_str()) == leaving {
                return Err(CoreError::Invalid {
                    what: "epoch",
                    why: "the new key must not be wrapped for the member being removed".into(),
                });
            }
            self.check_recipient(recipient, wrapped)?;
            if !seen.insert(recipient) {
                return Err(CoreError::Invalid {
                    what: "epoch",
                    why: format!("two wraps for {recipient}"),
                });
            }
        }
        Ok(())
    }
}

/// See [`Circle::approval_step`].
enum Approval {
    Waiting(RemoveOutcome),
    Ready(Option<(ObjId, ObjId)>),
}

/// Inside a write: the approval that completes a policy or role proposal, and its mark of
/// being carried out.
fn complete(
    doc: &mut automerge::AutoCommit,
    completing: Option<&(ObjId, ObjId)>,
    me: &str,
    now: i64,
) -> Result<(), CoreError> {
    if let Some((proposal, approvals)) = completing {
        doc.put(approvals, me, now).map_err(doc_err)?;
        doc.put(proposal, DONE, now).map_err(doc_err)?;
    }
    Ok(())
}

/// Writes epoch `epoch` into the epochs map.
fn put_epoch(
    doc: &mut automerge::AutoCommit,
    epochs: &ObjId,
    epoch: &NewEpoch,
    removals: u64,
    now: i64,
) -> Result<(), CoreError> {
    let value = EpochDoc {
        generation: epoch.generation,
        commitment: ByteArray::from(epoch.commitment),
        created_at: now,
        removals,
        wraps: epoch
            .wraps
            .iter()
            .map(|(r, w)| (r.clone(), w.clone().into()))
            .collect(),
    };
    reconcile_prop(doc, epochs, epoch.id.to_string().as_str(), &value).map_err(doc_err)
}
