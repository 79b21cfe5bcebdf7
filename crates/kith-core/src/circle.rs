//! One circle's automerge document, read and edited as the local member.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, AutoCommit, Change, ChangeHash, ObjId, ReadDoc};
use autosurgeon::{reconcile, reconcile_prop};

use crate::feed::{Feed, Touched, child_map};
use crate::schema::{
    ADDRESSES, CHECKINS, CLAIMS, CheckinDoc, ClaimDoc, Genesis, INVITES, InviteDoc, MEMBERS,
    MemberDoc, REPLIES, REQUESTS, REVOKED, ROLE, ReplyDoc, RequestDoc, STATUS, STATUS_CANCELLED,
    STATUS_FULFILLED, STATUS_OPEN, UPDATED_AT,
};
use crate::types::in_alphabet;
use crate::validate;
use crate::{
    CoreError, InviteView, ItemId, ItemView, MAX_CIRCLE_NAME_CHARS, MAX_DETAILS_CHARS,
    MAX_MEMBER_NAME_CHARS, MAX_NOTE_CHARS, MAX_REPLY_CHARS, MAX_TITLE_CHARS, MemberView, Mood,
    NewRequest, Role, actor_for_member, invite_id_bytes, rules,
};

/// Chunk type byte of an uncompressed change (after 4 magic and 4 checksum bytes).
const CHUNK_TYPE_CHANGE: u8 = 1;

/// One circle's document, edited as the local member `me`.
#[derive(Debug)]
pub struct Circle {
    pub(crate) doc: AutoCommit,
    /// Member id of the local member; its actor signs every local change.
    me: String,
    /// Received changes whose dependencies have not arrived. Kept here rather than in
    /// automerge's own queue so that a change automerge cannot apply is found and dropped
    /// when it becomes ready, instead of poisoning every later batch.
    pending: Vec<Change>,
    /// The document as read, refreshed key by key after every write (see `feed`).
    feed: Feed,
    /// Received changes refused for breaking the rules: how many, and the latest few.
    rejected: u64,
    recent_rejections: VecDeque<Rejection>,
}

/// How many refused changes a circle remembers the reason of.
const RECENT_REJECTIONS: usize = 16;

/// A received change refused because its writer may not make it (see `validate`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The member who signed or wrote the change (their member id), or the change's actor
    /// in hex when it names no member.
    pub writer: String,
    /// Why, in words (never content).
    pub reason: String,
}

fn doc_err(e: impl std::fmt::Display) -> CoreError {
    CoreError::Document(e.to_string())
}

/// Parses one change as received. Refuses compressed chunks (a small envelope could inflate
/// into gigabytes, and no member writes them) and a wrong checksum, which automerge does not
/// check when parsing a single change.
fn parse_change(bytes: &[u8]) -> Result<Change, CoreError> {
    if bytes.get(8) != Some(&CHUNK_TYPE_CHANGE) {
        return Err(CoreError::Document(
            "not an uncompressed automerge change".into(),
        ));
    }
    let change = Change::try_from(bytes).map_err(|e| doc_err(format_args!("bad change: {e}")))?;
    if bytes.get(4..8) != change.hash().0.get(..4) {
        return Err(CoreError::Document("bad change: checksum mismatch".into()));
    }
    Ok(change)
}

impl Circle {
    fn empty(me: &str) -> Result<Circle, CoreError> {
        let actor = actor_for_member(me)?;
        Ok(Circle {
            doc: AutoCommit::new().with_actor(ActorId::from(actor)),
            me: me.to_string(),
            pending: Vec::new(),
            feed: Feed::default(),
            rejected: 0,
            recent_rejections: VecDeque::new(),
        })
    }

    /// A new circle with `founder` as its first steward. Returns the genesis change, which
    /// every member applies before anything else.
    pub fn found(
        founder_id: &str,
        founder_name: &str,
        circle_name: &str,
        now: i64,
    ) -> Result<(Circle, Vec<u8>), CoreError> {
        let name = rules::check_text("circle name", circle_name, MAX_CIRCLE_NAME_CHARS)?;
        let founder_name = rules::check_text("member name", founder_name, MAX_MEMBER_NAME_CHARS)?;
        let mut circle = Circle::empty(founder_id)?;
        let founder = MemberDoc {
            name: founder_name,
            role: Role::Steward.as_str().to_string(),
            joined_at: now,
            invited_via: None,
        };
        let genesis = Genesis {
            name,
            members: BTreeMap::from([(founder_id.to_string(), founder)]),
            checkins: BTreeMap::new(),
            requests: BTreeMap::new(),
            replies: BTreeMap::new(),
            invites: BTreeMap::new(),
        };
        let change = circle.write(Touched::All, |doc| {
            reconcile(doc, &genesis).map_err(doc_err)
        })?;
        Ok((circle, change))
    }

    /// Rebuilds a circle from its stored changes (applied in one batch), editing as `me`.
    ///
    /// Fails if any change is refused. To keep a circle whose store holds a bad change,
    /// load with no changes and call [`Circle::apply_changes`], which keeps the good ones.
    pub fn load(me: &str, changes: &[Vec<u8>]) -> Result<Circle, CoreError> {
        let mut circle = Circle::empty(me)?;
        circle.apply_changes(changes)?;
        Ok(circle)
    }

    /// [`Circle::apply_changes`] for changes that arrived signed: each with the member id
    /// of its signer. A change whose automerge actor is not its signer's is refused (and
    /// counted in [`Circle::rejected_count`]): otherwise a member could sign a change
    /// made as another member's actor and write as them.
    pub fn apply_signed(&mut self, changes: &[(String, Vec<u8>)]) -> Result<(), CoreError> {
        let mut refused = Vec::new();
        for (signer, bytes) in changes {
            match parse_change(bytes) {
                Ok(change) => {
                    let bound = actor_for_member(signer)
                        .is_ok_and(|actor| change.actor_id().to_bytes() == actor.as_slice());
                    if bound {
                        self.pending.push(change);
                    } else {
                        let error = CoreError::Document(
                            "the change was made as another member than its signer".into(),
                        );
                        self.reject(signer.clone(), &error);
                        refused.push(error);
                    }
                }
                Err(e) => refused.push(e),
            }
        }
        self.finish_apply(refused)
    }

    /// Applies changes received from others, in one automerge batch when all is well.
    /// Changes whose dependencies have not arrived wait inside the circle and are applied
    /// when they do.
    ///
    /// Each change stands alone: one that does not parse, or that automerge refuses (or
    /// panics on: a hostile member can craft such changes), is dropped, every other change
    /// is applied, and the result is `CoreError::Document` saying how many were refused.
    /// The document is never left half-changed by a refused change.
    ///
    /// Every change is checked against the rules (`validate`): one whose writer (the member
    /// of its actor) may not make every write in it is refused, counted in
    /// [`Circle::rejected_count`], and so is every change that depends on it.
    pub fn apply_changes(&mut self, changes: &[Vec<u8>]) -> Result<(), CoreError> {
        let mut refused = Vec::new();
        for bytes in changes {
            match parse_change(bytes) {
                Ok(change) => self.pending.push(change),
                Err(e) => refused.push(e),
            }
        }
        self.finish_apply(refused)
    }

    fn finish_apply(&mut self, mut refused: Vec<CoreError>) -> Result<(), CoreError> {
        self.apply_ready(&mut refused);
        self.refresh_after_apply();
        match refused.first() {
            None => Ok(()),
            Some(first) => Err(CoreError::Document(format!(
                "refused {} change(s); first: {first}",
                refused.len()
            ))),
        }
    }

    /// Applies every pending change whose dependencies are present and that keeps the
    /// rules, isolating and dropping the ones automerge cannot apply and the ones the rules
    /// refuse (with every change that depends on them).
    fn apply_ready(&mut self, refused: &mut Vec<CoreError>) {
        loop {
            let ready = self.take_ready();
            if ready.is_empty() {
                return;
            }
            match self.checked_copy(&ready) {
                Ok((copy, bad)) if bad.is_empty() => self.doc = copy,
                Ok((_, bad)) => {
                    // Keep what neither broke a rule nor depends on a change that did.
                    let mut dropped: HashSet<ChangeHash> = HashSet::new();
                    for (hash, writer, error) in bad {
                        self.reject(writer, &error);
                        refused.push(error);
                        dropped.insert(hash);
                    }
                    let mut keep = Vec::new();
                    for change in ready {
                        if dropped.contains(&change.hash()) {
                            continue;
                        }
                        if change.deps().iter().any(|d| dropped.contains(d)) {
                            dropped.insert(change.hash());
                            refused.push(CoreError::Document(
                                "the change depends on a refused change".into(),
                            ));
                        } else {
                            keep.push(change);
                        }
                    }
                    if !keep.is_empty()
                        && let Err(e) = self.try_apply(keep)
                    {
                        refused.push(e);
                    }
                }
                Err(_) => {
                    // Automerge refused the batch: one change at a time, in dependency order.
                    for change in ready {
                        let deps = change.deps().to_vec();
                        if !self.doc.get_missing_deps(&deps).is_empty() {
                            // A dependency was refused; this one can never apply.
                            continue;
                        }
                        match self.checked_copy(std::slice::from_ref(&change)) {
                            Ok((copy, bad)) if bad.is_empty() => self.doc = copy,
                            Ok((_, bad)) => {
                                for (_, writer, error) in bad {
                                    self.reject(writer, &error);
                                    refused.push(error);
                                }
                            }
                            Err(e) => refused.push(e),
                        }
                    }
                }
            }
        }
    }

    /// The document with `changes` applied, and the changes among them that break the
    /// rules (hash, writer, why). Errs when automerge itself refuses the batch.
    #[allow(clippy::type_complexity)]
    fn checked_copy(
        &self,
        changes: &[Change],
    ) -> Result<(AutoCommit, Vec<(ChangeHash, String, CoreError)>), CoreError> {
        let genesis_allowed = self.root_map(MEMBERS).is_none();
        let copy = self.applied_copy(changes.to_vec())?;
        let mut checker = validate::Checker::new(&copy, genesis_allowed);
        let mut bad = Vec::new();
        for change in changes {
            if let Err(error) = checker.check(change) {
                bad.push((change.hash(), checker.writer_name(change.actor_id()), error));
            }
        }
        Ok((copy, bad))
    }

    /// Applies changes without the rules, so that tests can hand the reader data a hostile
    /// member's daemon would have (every real path checks the rules).
    #[cfg(test)]
    pub(crate) fn apply_unchecked(&mut self, changes: &[Vec<u8>]) -> Result<(), CoreError> {
        let parsed = changes
            .iter()
            .map(|bytes| parse_change(bytes))
            .collect::<Result<Vec<_>, _>>()?;
        self.try_apply(parsed)?;
        self.refresh_after_apply();
        Ok(())
    }

    /// A change written before this member's roster entry arrived would not follow their
    /// admission, and every other member would refuse it and everything after it: refuse
    /// it here instead, with a clear error.
    fn require_member(&self) -> Result<(), CoreError> {
        if self.feed.members().iter().any(|m| m.id == self.me) {
            Ok(())
        } else {
            Err(CoreError::NotMember(self.me.clone()))
        }
    }

    /// Counts a refused change and remembers why.
    fn reject(&mut self, writer: String, error: &CoreError) {
        self.rejected = self.rejected.saturating_add(1);
        if self.recent_rejections.len() == RECENT_REJECTIONS {
            self.recent_rejections.pop_front();
        }
        self.recent_rejections.push_back(Rejection {
            writer,
            reason: error.to_string(),
        });
    }

    /// How many received changes were refused for breaking the rules since this circle
    /// was loaded (a restart counts the stored ones again).
    pub fn rejected_count(&self) -> u64 {
        self.rejected
    }

    /// The refusals counted after [`Circle::rejected_count`] was `before` (at most the
    /// latest 16), oldest first: what one apply refused.
    pub fn rejections_since(&self, before: u64) -> Vec<Rejection> {
        let new = usize::try_from(self.rejected.saturating_sub(before)).unwrap_or(usize::MAX);
        let skip = self.recent_rejections.len().saturating_sub(new);
        self.recent_rejections.iter().skip(skip).cloned().collect()
    }

    /// The latest refused changes, oldest first (at most 16).
    pub fn recent_rejections(&self) -> Vec<Rejection> {
        self.recent_rejections.iter().cloned().collect()
    }

    /// Removes from `pending`, in dependency order, the changes that can be applied now:
    /// their dependencies are in the document or earlier in the returned list. Changes
    /// already in the document, and duplicates, are dropped.
    fn take_ready(&mut self) -> Vec<Change> {
        let mut by_hash: HashMap<ChangeHash, Change> = HashMap::new();
        for change in std::mem::take(&mut self.pending) {
            by_hash.entry(change.hash()).or_insert(change);
        }
        let hashes: Vec<ChangeHash> = by_hash.keys().copied().collect();
        let absent: HashSet<ChangeHash> = self.doc.get_missing_deps(&hashes).into_iter().collect();
        by_hash.retain(|h, _| absent.contains(h));
        let deps: Vec<ChangeHash> = by_hash
            .values()
            .flat_map(|c| c.deps().iter().copied())
            .collect();
        let missing: HashSet<ChangeHash> = self.doc.get_missing_deps(&deps).into_iter().collect();

        // Kahn's algorithm over the pending changes.
        let mut waiting_on: HashMap<ChangeHash, usize> = HashMap::new();
        let mut dependents: HashMap<ChangeHash, Vec<ChangeHash>> = HashMap::new();
        let mut queue = VecDeque::new();
        for (hash, change) in &by_hash {
            let mut n = 0;
            for dep in change.deps().iter().filter(|d| missing.contains(*d)) {
                dependents.entry(*dep).or_default().push(*hash);
                n += 1;
            }
            if n == 0 {
                queue.push_back(*hash);
            } else {
                waiting_on.insert(*hash, n);
            }
        }
        let mut ready = Vec::new();
        while let Some(hash) = queue.pop_front() {
            let Some(change) = by_hash.remove(&hash) else {
                continue;
            };
            ready.push(change);
            for dependent in dependents.remove(&hash).unwrap_or_default() {
                if let Some(n) = waiting_on.get_mut(&dependent) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        waiting_on.remove(&dependent);
                        queue.push_back(dependent);
                    }
                }
            }
        }
        self.pending = by_hash.into_values().collect();
        ready
    }

    /// Applies `changes` (all ready) to a copy of the document and keeps the copy only if
    /// automerge neither errs nor panics: its batch code unwraps on some malformed input.
    fn try_apply(&mut self, changes: Vec<Change>) -> Result<(), CoreError> {
        self.doc = self.applied_copy(changes)?;
        Ok(())
    }

    /// A copy of the document with `changes` applied, if automerge neither errs nor panics.
    fn applied_copy(&self, changes: Vec<Change>) -> Result<AutoCommit, CoreError> {
        let mut copy = self.doc.clone();
        let outcome = catch_unwind(AssertUnwindSafe(move || {
            copy.apply_changes(changes).map(|()| copy)
        }));
        match outcome {
            Ok(Ok(copy)) => Ok(copy),
            Ok(Err(e)) => Err(doc_err(format_args!("change not applied: {e}"))),
            Err(_) => Err(CoreError::Document(
                "change not applied: malformed operations".into(),
            )),
        }
    }

    /// Brings the feed up to date with what the last apply changed, using automerge's
    /// indexed diff; the first time (a fresh load), reads everything instead.
    fn refresh_after_apply(&mut self) {
        let touched = if self.doc.diff_cursor().is_empty() {
            Touched::All
        } else {
            Feed::touched_by(&self.doc.diff_incremental())
        };
        self.feed.refresh(&self.doc, touched);
        self.move_diff_cursor();
    }

    /// Moves the diff cursor to the current heads with a fresh patch log. Truncating the
    /// old log would keep its capacity, and automerge logs every applied op (even with no
    /// cursor set): after loading 10,000 changes that is about 10 MB held for nothing.
    fn move_diff_cursor(&mut self) {
        self.doc.reset_diff_cursor();
        self.doc.update_diff_cursor();
    }

    /// The local member's id.
    pub fn me(&self) -> &str {
        &self.me
    }

    pub fn name(&self) -> String {
        self.feed.name().to_string()
    }

    /// The roster, oldest member first. Entries with an invalid id or unreadable fields are
    /// left out.
    pub fn members(&self) -> Vec<MemberView> {
        self.feed.members().to_vec()
    }

    /// Invites that count (made by a current steward), by id, whatever their state.
    pub fn invites(&self) -> Vec<InviteView> {
        self.feed.invites()
    }

    /// One invite that counts, by its id.
    pub fn invite(&self, id: &str) -> Option<InviteView> {
        self.feed.invite(id)
    }

    /// Items newest first (ties by id). Items whose author is not in the roster, or whose
    /// fields cannot be read, are skipped rather than failing the whole feed.
    pub fn items(&self) -> Vec<ItemView> {
        self.feed.items()
    }

    /// How many items [`Circle::items`] returns, without copying them.
    pub fn item_count(&self) -> usize {
        self.feed.item_count()
    }

    /// One item with its claims and replies, by its full id.
    pub fn item(&self, id: &str) -> Option<ItemView> {
        self.feed.get(id).map(|item| self.feed.with_replies(item))
    }

    /// Finds the item a full id or unambiguous prefix names. Only readable check-ins and
    /// requests count; reply ids are not items.
    pub fn resolve_item(&self, id_or_prefix: &str) -> Result<ItemId, CoreError> {
        let unknown = || CoreError::UnknownItem(id_or_prefix.to_string());
        let prefix = id_or_prefix.trim().to_ascii_lowercase();
        if prefix.is_empty() || !prefix.chars().all(in_alphabet) {
            return Err(unknown());
        }
        let mut found = self.feed.ids_with_prefix(&prefix);
        match (found.next(), found.next()) {
            (Some(id), None) => ItemId::parse(id),
            (Some(_), Some(_)) => Err(CoreError::AmbiguousItem(id_or_prefix.to_string())),
            (None, _) => Err(unknown()),
        }
    }

    fn root_map(&self, key: &str) -> Option<ObjId> {
        child_map(&self.doc, &automerge::ROOT, key)
    }

    /// A root container for writing. Missing only before the genesis change is applied.
    fn container(&self, key: &str) -> Result<ObjId, CoreError> {
        self.root_map(key).ok_or_else(|| {
            CoreError::Document("the circle's genesis change has not been applied".into())
        })
    }

    /// Refuses an id already used by any item or reply, so an edit never overwrites.
    fn require_unused(&self, id: &ItemId) -> Result<(), CoreError> {
        for key in [CHECKINS, REQUESTS, REPLIES] {
            let map = self.container(key)?;
            if self.doc.get(&map, id.as_str()).map_err(doc_err)?.is_some() {
                return Err(CoreError::IdInUse(id.to_string()));
            }
        }
        Ok(())
    }

    /// The item `id` for an edit, or UnknownItem.
    fn existing_item(&self, id: &ItemId) -> Result<&ItemView, CoreError> {
        self.feed
            .get(id.as_str())
            .ok_or_else(|| CoreError::UnknownItem(id.to_string()))
    }

    /// The request object `id` for an edit.
    fn request_obj(&self, id: &ItemId) -> Result<ObjId, CoreError> {
        child_map(&self.doc, &self.container(REQUESTS)?, id.as_str())
            .ok_or_else(|| CoreError::UnknownItem(id.to_string()))
    }

    /// Runs one edit as one change, committed with time 0 (times live in fields, and a
    /// commit time would tell a seized disk more than the item does). On error nothing stays.
    fn write(
        &mut self,
        touched: Touched,
        edit: impl FnOnce(&mut AutoCommit) -> Result<(), CoreError>,
    ) -> Result<Vec<u8>, CoreError> {
        if let Err(e) = edit(&mut self.doc) {
            self.doc.rollback();
            return Err(e);
        }
        let hash = self
            .doc
            .commit_with(CommitOptions::default().with_time(0))
            .ok_or_else(|| CoreError::Document("the edit wrote nothing".into()))?;
        let change = self
            .doc
            .get_change_by_hash(&hash)
            .ok_or_else(|| CoreError::Document("the committed change is missing".into()))?;
        // The edit says what it touched: no diff needed.
        self.feed.refresh(&self.doc, touched);
        self.move_diff_cursor();
        Ok(change.raw_bytes().to_vec())
    }

    /// A steward adds a member to the roster, which is what makes their items, claims and
    /// replies readable by everyone.
    pub fn add_member(
        &mut self,
        id: &str,
        name: &str,
        role: Role,
        now: i64,
    ) -> Result<Vec<u8>, CoreError> {
        actor_for_member(id)?;
        let name = rules::check_text("member name", name, MAX_MEMBER_NAME_CHARS)?;
        rules::check_add_member(&self.members(), &self.me, id)?;
        let members = self.container(MEMBERS)?;
        let member = MemberDoc {
            name,
            role: role.as_str().to_string(),
            joined_at: now,
            invited_via: None,
        };
        self.write(Touched::All, |doc| {
            reconcile_prop(doc, &members, id, &member).map_err(doc_err)
        })
    }

    /// A steward makes an invite `invite_id` (see [`crate::invite_id`]) that lets `uses`
    /// people join until `expires_at`. Only the `verifier` of the invite's secret is stored.
    pub fn create_invite(
        &mut self,
        invite_id: &str,
        verifier: [u8; 32],
        expires_at: i64,
        uses: u32,
        now: i64,
    ) -> Result<Vec<u8>, CoreError> {
        invite_id_bytes(invite_id)?;
        rules::check_create_invite(self.feed.members(), &self.me, expires_at, uses, now)?;
        let invites = self.invites_container()?;
        if self
            .doc
            .get(&invites, invite_id)
            .map_err(doc_err)?
            .is_some()
        {
            return Err(CoreError::IdInUse(invite_id.to_string()));
        }
        let invite = InviteDoc {
            verifier: verifier.into(),
            expires_at,
            uses,
            created_at: now,
            revoked: false,
        };
        let touched = Touched::Keys(vec![(INVITES, invite_id.to_string())]);
        self.write(touched, |doc| {
            reconcile_prop(doc, &invites, invite_id, &invite).map_err(doc_err)
        })
    }

    /// The invite's creator or a steward revokes it: nobody else can join with it.
    pub fn revoke_invite(&mut self, invite_id: &str, _now: i64) -> Result<Vec<u8>, CoreError> {
        let view = self.feed.invite(invite_id);
        rules::check_revoke_invite(self.feed.members(), &self.me, view.as_ref(), invite_id)?;
        let invite = child_map(&self.doc, &self.invites_container()?, invite_id)
            .ok_or_else(|| CoreError::UnknownInvite(invite_id.to_string()))?;
        let touched = Touched::Keys(vec![(INVITES, invite_id.to_string())]);
        self.write(touched, |doc| {
            doc.put(&invite, REVOKED, true).map_err(doc_err)
        })
    }

    /// Any member admits `new_member_id`, who holds a valid invite `invite_id`: it exists,
    /// is not revoked, has not expired at `now`, and fewer members than it allows came
    /// through it. The new entry (role member) names the invite.
    ///
    /// The use count is checked against the roster this member has seen: two members
    /// admitting concurrently with the last use of an invite both succeed, and the roster
    /// then names it once more than it allows.
    pub fn admit(
        &mut self,
        new_member_id: &str,
        name: &str,
        invite_id: &str,
        now: i64,
    ) -> Result<Vec<u8>, CoreError> {
        actor_for_member(new_member_id)?;
        let name = rules::check_text("member name", name, MAX_MEMBER_NAME_CHARS)?;
        let invite = self.feed.invite(invite_id);
        rules::check_admit(
            self.feed.members(),
            &self.me,
            new_member_id,
            invite.as_ref(),
            invite_id,
            now,
        )?;
        let members = self.container(MEMBERS)?;
        let member = MemberDoc {
            name,
            role: Role::Member.as_str().to_string(),
            joined_at: now,
            invited_via: Some(invite_id.to_string()),
        };
        self.write(Touched::All, |doc| {
            reconcile_prop(doc, &members, new_member_id, &member).map_err(doc_err)
        })
    }

    /// A steward sets `member`'s role: stewards appoint stewards. The last steward cannot
    /// step down.
    pub fn set_role(&mut self, member: &str, role: Role, _now: i64) -> Result<Vec<u8>, CoreError> {
        rules::check_set_role(self.feed.members(), &self.me, member, role)?;
        let entry = child_map(&self.doc, &self.container(MEMBERS)?, member)
            .ok_or_else(|| CoreError::NotMember(member.to_string()))?;
        self.write(roster_touched(), |doc| {
            doc.put(&entry, ROLE, role.as_str()).map_err(doc_err)
        })
    }

    /// Publishes the local member's network addresses (multiaddr strings) on their own
    /// roster entry, replacing any published before; an empty list withdraws them. Returns
    /// `None`, and writes nothing, when they are already what is published.
    pub fn set_my_addresses(
        &mut self,
        addresses: &[String],
        _now: i64,
    ) -> Result<Option<Vec<u8>>, CoreError> {
        let joined = rules::check_addresses(self.feed.members(), &self.me, addresses)?;
        let current = self
            .feed
            .members()
            .iter()
            .find(|m| m.id == self.me)
            .map(|m| m.addresses.as_slice());
        if current == Some(addresses) {
            return Ok(None);
        }
        let entry = child_map(&self.doc, &self.container(MEMBERS)?, &self.me)
            .ok_or_else(|| CoreError::NotMember(self.me.clone()))?;
        self.write(roster_touched(), |doc| {
            doc.put(&entry, ADDRESSES, joined).map_err(doc_err)
        })
        .map(Some)
    }

    /// The invites map. Circles founded before invites existed have none, and cannot make
    /// any: creating it now could race with another steward's and lose invites.
    fn invites_container(&self) -> Result<ObjId, CoreError> {
        self.root_map(INVITES).ok_or_else(|| {
            CoreError::Document(
                "this circle was founded before invites existed and cannot hold them".into(),
            )
        })
    }

    pub fn checkin(
        &mut self,
        id: &ItemId,
        mood: Mood,
        note: Option<&str>,
        now: i64,
    ) -> Result<Vec<u8>, CoreError> {
        self.require_member()?;
        let note = rules::check_optional_text("note", note, MAX_NOTE_CHARS)?;
        self.require_unused(id)?;
        let checkins = self.container(CHECKINS)?;
        let checkin = CheckinDoc {
            mood: mood.value(),
            note,
            created_at: now,
        };
        let touched = Touched::Keys(vec![(CHECKINS, id.to_string())]);
        self.write(touched, |doc| {
            reconcile_prop(doc, &checkins, id.as_str(), &checkin).map_err(doc_err)
        })
    }

    pub fn ask(
        &mut self,
        id: &ItemId,
        request: &NewRequest,
        now: i64,
    ) -> Result<Vec<u8>, CoreError> {
        self.require_member()?;
        let title = rules::check_text("title", &request.title, MAX_TITLE_CHARS)?;
        let details =
            rules::check_optional_text("details", request.details.as_deref(), MAX_DETAILS_CHARS)?;
        self.require_unused(id)?;
        let requests = self.container(REQUESTS)?;
        let doc_request = RequestDoc {
            kind: request.kind.as_str().to_string(),
            title,
            details,
            needed_by: request.needed_by,
            urgent: request.urgent,
            status: STATUS_OPEN.to_string(),
            created_at: now,
            updated_at: now,
            claims: BTreeMap::new(),
        };
        let touched = Touched::Keys(vec![(REQUESTS, id.to_string())]);
        self.write(touched, |doc| {
            reconcile_prop(doc, &requests, id.as_str(), &doc_request).map_err(doc_err)
        })
    }

    pub fn claim(&mut self, id: &ItemId, now: i64) -> Result<Vec<u8>, CoreError> {
        self.require_member()?;
        rules::check_claim(self.existing_item(id)?, &self.me)?;
        let claims = self.claims_obj(id)?;
        let me = self.me.clone();
        self.write(request_touched(id), |doc| {
            // A leftover entry not created by us (so not counted) must not be reused: the
            // claim object has to be ours for the claim to count.
            if doc.get(&claims, &me).map_err(doc_err)?.is_some() {
                doc.delete(&claims, &me).map_err(doc_err)?;
            }
            reconcile_prop(doc, &claims, me.as_str(), &ClaimDoc { at: now }).map_err(doc_err)
        })
    }

    /// Withdraws the local member's claim. The claim's key goes; the request's own times are
    /// the author's to write.
    pub fn unclaim(&mut self, id: &ItemId, _now: i64) -> Result<Vec<u8>, CoreError> {
        rules::check_unclaim(self.existing_item(id)?, &self.me)?;
        let claims = self.claims_obj(id)?;
        let me = self.me.clone();
        self.write(request_touched(id), |doc| {
            doc.delete(&claims, &me).map_err(doc_err)
        })
    }

    pub fn done(&mut self, id: &ItemId, now: i64) -> Result<Vec<u8>, CoreError> {
        self.close(id, STATUS_FULFILLED, now)
    }

    pub fn cancel(&mut self, id: &ItemId, now: i64) -> Result<Vec<u8>, CoreError> {
        self.close(id, STATUS_CANCELLED, now)
    }

    fn close(&mut self, id: &ItemId, status: &str, now: i64) -> Result<Vec<u8>, CoreError> {
        rules::check_close(self.existing_item(id)?, &self.me)?;
        let request = self.request_obj(id)?;
        let status = status.to_string();
        self.write(request_touched(id), |doc| {
            reconcile_prop(doc, &request, STATUS, &status).map_err(doc_err)?;
            reconcile_prop(doc, &request, UPDATED_AT, now).map_err(doc_err)
        })
    }

    pub fn reply(
        &mut self,
        item: &ItemId,
        reply_id: &ItemId,
        text: &str,
        now: i64,
    ) -> Result<Vec<u8>, CoreError> {
        self.require_member()?;
        let text = rules::check_text("reply", text, MAX_REPLY_CHARS)?;
        rules::check_reply(self.feed.get(item.as_str()), item.as_str())?;
        self.require_unused(reply_id)?;
        let replies = self.container(REPLIES)?;
        let reply = ReplyDoc {
            item: item.to_string(),
            text,
            created_at: now,
        };
        let touched = Touched::Keys(vec![(REPLIES, reply_id.to_string())]);
        self.write(touched, |doc| {
            reconcile_prop(doc, &replies, reply_id.as_str(), &reply).map_err(doc_err)
        })
    }

    fn claims_obj(&self, id: &ItemId) -> Result<ObjId, CoreError> {
        child_map(&self.doc, &self.request_obj(id)?, CLAIMS)
            .ok_or_else(|| CoreError::Document(format!("request {id} has no claims map")))
    }
}

/// What an edit of fields inside roster entries touches.
fn roster_touched() -> Touched {
    Touched::Keys(vec![(MEMBERS, String::new())])
}

/// What an edit of request `id` touches.
fn request_touched(id: &ItemId) -> Touched {
    Touched::Keys(vec![(REQUESTS, id.to_string())])
}
