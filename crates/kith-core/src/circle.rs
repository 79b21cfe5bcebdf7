//! One circle's automerge document, read and edited as the local member.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, AutoCommit, Change, ChangeHash, ObjId, ReadDoc};
use autosurgeon::{reconcile, reconcile_prop};

use automerge::ScalarValue;

use crate::feed::{self, Feed, Touched, child_map, container_of};
use crate::private::{self, Content, Keyring};
use crate::schema::{
    ADDRESSES, CHECKINS, CLAIMS, CheckinDoc, ClaimDoc, Genesis, HANDED, HELP, INVITES, InviteDoc,
    MEMBERS, MESSAGE, MemberDoc, NUDGES, OFFERS, OfferDoc, QUIET, REPLIES, REQUESTS, REVOKED,
    ReplyDoc, RequestDoc, SEALED_MESSAGE, SLOTS, STATUS, STATUS_CANCELLED, STATUS_FULFILLED,
    STATUS_OPEN, STATUS_WITHDRAWN, SealedDoc, SealedReplyDoc, SealedRequestDoc, SlotDoc, THANKS,
    UPDATED_AT,
};
use crate::types::in_alphabet;
use crate::validate;
use crate::{
    CoreError, InviteView, ItemEdit, ItemId, ItemKind, ItemView, MAX_AUDIENCE,
    MAX_CIRCLE_NAME_CHARS, MAX_DETAILS_CHARS, MAX_HELP_CHARS, MAX_MEMBER_NAME_CHARS,
    MAX_MESSAGE_CHARS, MAX_NOTE_CHARS, MAX_QUIET_CHARS, MAX_REPLY_CHARS, MAX_TITLE_CHARS,
    MAX_WHEN_CHARS, MemberView, Mood, NewCheckin, NewOffer, NewRequest, Role, actor_for_member,
    invite_id_bytes, rules,
};

/// Chunk type byte of an uncompressed change (after 4 magic and 4 checksum bytes).
const CHUNK_TYPE_CHANGE: u8 = 1;

/// One circle's document, edited as the local member `me`.
#[derive(Debug)]
pub struct Circle {
    pub(crate) doc: AutoCommit,
    /// Member id of the local member; its actor signs every local change.
    pub(crate) me: String,
    /// Received changes whose dependencies have not arrived. Kept here rather than in
    /// automerge's own queue so that a change automerge cannot apply is found and dropped
    /// when it becomes ready, instead of poisoning every later batch.
    pending: Vec<Change>,
    /// The document as read, refreshed key by key after every write (see `feed`).
    pub(crate) feed: Feed,
    /// The circle's id, once known (see [`Circle::bind`]).
    bound_to: Option<[u8; 16]>,
    /// The hash of the change that founded the circle, once applied.
    genesis: Option<ChangeHash>,
    /// Received changes refused for breaking the rules: how many, and the latest few.
    rejected: u64,
    recent_rejections: VecDeque<Rejection>,
    /// The epochs and who holds them, read once per state of the document: the key plan
    /// runs after every received batch and before every write, and reading every wrap
    /// costs ~40 ms after three years of weekly epochs in a circle of 50. Emptied by
    /// [`Circle::doc_changed`].
    pub(crate) key_cache: OnceLock<crate::membership::KeyCache>,
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
            bound_to: None,
            genesis: None,
            rejected: 0,
            recent_rejections: VecDeque::new(),
            key_cache: OnceLock::new(),
        })
    }

    /// The id of the circle `genesis` founds: the first 16 bytes of its change hash. A
    /// random nonce in the genesis makes every circle's different.
    pub fn id_of_genesis(genesis: &[u8]) -> Result<[u8; 16], CoreError> {
        let change = parse_change(genesis)?;
        let mut id = [0u8; 16];
        id.copy_from_slice(change.hash().0.get(..16).unwrap_or(&[0; 16]));
        Ok(id)
    }

    /// Whether the genesis this circle holds is the one `id` names (false for circles
    /// founded before ids committed to their genesis, and before the genesis arrived).
    pub fn id_of_genesis_matches(&self, id: [u8; 16]) -> bool {
        self.genesis
            .is_some_and(|h| h.0.get(..16) == Some(id.as_slice()))
    }

    /// Binds the circle to its id: from now on a change without history (a genesis) is
    /// refused unless it is the one the id names.
    pub fn bind(&mut self, id: [u8; 16]) {
        self.bound_to = Some(id);
    }

    /// A new circle with `founder` as its first steward. Returns the genesis change, which
    /// every member applies before anything else.
    pub fn found(
        founder_id: &str,
        founder_name: &str,
        circle_name: &str,
        now: i64,
    ) -> Result<(Circle, Vec<u8>), CoreError> {
        Circle::found_with_nonce(founder_id, founder_name, circle_name, [0; 16], now)
    }

    /// [`Circle::found`] with a random `nonce` in the genesis, so that its hash (the
    /// circle's id, [`Circle::id_of_genesis`]) is unique.
    pub fn found_with_nonce(
        founder_id: &str,
        founder_name: &str,
        circle_name: &str,
        nonce: [u8; 16],
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
            offers: BTreeMap::new(),
            nudges: BTreeMap::new(),
            epochs: BTreeMap::new(),
            proposals: BTreeMap::new(),
            nonce: nonce.into(),
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
        if self.genesis.is_none() {
            // Found once per circle: the one change without dependencies.
            self.genesis = self
                .doc
                .get_changes_meta(&[])
                .iter()
                .find(|c| c.deps.is_empty())
                .map(|c| c.hash);
        }
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
                Ok((copy, bad)) if bad.is_empty() => self.set_doc(copy),
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
                            Ok((copy, bad)) if bad.is_empty() => self.set_doc(copy),
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
        let mut checker = validate::Checker::new(&copy, genesis_allowed, self.bound_to);
        let mut bad = Vec::new();
        for change in changes {
            if let Err(error) = checker.check(change) {
                bad.push((change.hash(), checker.writer_name(change.actor_id()), error));
            }
        }
        let cutoffs = std::mem::take(&mut checker.cutoffs_to_verify);
        let writers: HashMap<ChangeHash, String> = changes
            .iter()
            .map(|c| (c.hash(), checker.writer_name(c.actor_id())))
            .collect();
        drop(checker);
        let mut copy = copy;
        for hash in validate::verify_cutoffs(&mut copy, cutoffs) {
            if !bad.iter().any(|(h, _, _)| *h == hash) {
                let writer = writers.get(&hash).cloned().unwrap_or_default();
                let error = CoreError::Document(
                    "a removal's cutoff is not the member's last operation".into(),
                );
                bad.push((hash, writer, error));
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
        if self.is_removed(&self.me) {
            return Err(CoreError::Removed(self.me.clone()));
        }
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
        let copy = self.applied_copy(changes)?;
        self.set_doc(copy);
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
        self.doc_changed();
    }

    fn set_doc(&mut self, doc: AutoCommit) {
        self.doc = doc;
        self.doc_changed();
    }

    /// Forgets what was read from the document (after any change to it).
    pub(crate) fn doc_changed(&mut self) {
        self.key_cache = OnceLock::new();
    }

    /// Moves the diff cursor to the current heads with a fresh patch log. Truncating the
    /// old log would keep its capacity, and automerge logs every applied op (even with no
    /// cursor set): after loading 10,000 changes that is about 10 MB held for nothing.
    fn move_diff_cursor(&mut self) {
        self.doc.reset_diff_cursor();
        self.doc.update_diff_cursor();
    }

    /// Ids of the items the last edit or apply touched (created, changed, claimed, replied
    /// to); `None` when it read the whole circle again (a roster change, a first load).
    pub fn last_touched(&self) -> Option<&[String]> {
        self.feed.last_touched()
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

    /// One item by its full id, without its replies and without copying.
    pub fn item_without_replies(&self, id: &str) -> Option<&ItemView> {
        self.feed.get(id)
    }

    /// Calls `visit` with every readable item, without its replies and without copying:
    /// for callers that scan the whole circle but keep little of it.
    pub fn visit_items(&self, visit: impl FnMut(&ItemView)) {
        self.feed.visit_items(visit);
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

    /// Finds the member `text` names: a member id, an unambiguous prefix of one, or a
    /// unique name (case-insensitive).
    pub fn resolve_member(&self, text: &str) -> Result<String, CoreError> {
        let t = text.trim();
        let members = self.feed.members();
        if let Some(m) = members.iter().find(|m| m.id == t) {
            return Ok(m.id.clone());
        }
        let lower = t.to_ascii_lowercase();
        let by_prefix: Vec<&MemberView> = if lower.len() >= 4 {
            members
                .iter()
                .filter(|m| m.id.starts_with(&lower))
                .collect()
        } else {
            Vec::new()
        };
        let by_name: Vec<&MemberView> = members
            .iter()
            .filter(|m| m.name.to_lowercase() == t.to_lowercase())
            .collect();
        match (by_name.as_slice(), by_prefix.as_slice()) {
            ([one], _) | ([], [one]) => Ok(one.id.clone()),
            ([], []) => Err(CoreError::NotMember(text.to_string())),
            _ => Err(CoreError::Invalid {
                what: "member",
                why: format!("{text:?} names more than one member; give more of the id"),
            }),
        }
    }

    /// A member's name, for messages.
    pub fn member_name(&self, id: &str) -> Option<String> {
        self.feed
            .members()
            .iter()
            .find(|m| m.id == id)
            .map(|m| m.name.clone())
    }

    pub(crate) fn root_map(&self, key: &str) -> Option<ObjId> {
        child_map(&self.doc, &automerge::ROOT, key)
    }

    /// A root container for writing. Missing only before the genesis change is applied.
    pub(crate) fn container(&self, key: &str) -> Result<ObjId, CoreError> {
        self.root_map(key).ok_or_else(|| {
            CoreError::Document("the circle's genesis change has not been applied".into())
        })
    }

    /// Refuses an id already used by any item or reply, so an edit never overwrites.
    fn require_unused(&self, id: &ItemId) -> Result<(), CoreError> {
        for key in [CHECKINS, REQUESTS, REPLIES, OFFERS, NUDGES] {
            let Some(map) = self.root_map(key) else {
                continue;
            };
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

    /// Lets the circle seal and open private items as the local member. The feed is read
    /// again, so that private items already held become readable.
    pub fn set_keyring(&mut self, keyring: std::sync::Arc<dyn Keyring>) {
        self.feed.set_keyring(keyring);
        self.feed.refresh(&self.doc, Touched::All);
    }

    /// Runs one edit as one change, committed with time 0 (times live in fields, and a
    /// commit time would tell a seized disk more than the item does). On error nothing stays.
    pub(crate) fn write(
        &mut self,
        touched: Touched,
        edit: impl FnOnce(&mut AutoCommit) -> Result<(), CoreError>,
    ) -> Result<Vec<u8>, CoreError> {
        // A removed member's changes count nowhere: write none (every edit passes here).
        if self.is_removed(&self.me) {
            return Err(CoreError::Removed(self.me.clone()));
        }
        let edited = edit(&mut self.doc);
        self.doc_changed();
        if let Err(e) = edited {
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
        self.doc_changed();
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
        if self.is_removed(id) {
            return Err(CoreError::Removed(id.to_string()));
        }
        rules::check_add_member(&self.members(), &self.me, id)?;
        if self.policy() > 1 {
            // Under a policy of K approvals members come in only through approved invites.
            return Err(CoreError::NeedsApprovals {
                what: format!("adding {id}"),
                missing: self.policy() - 1,
            });
        }
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
            approvals: Some(BTreeMap::new()),
        };
        let touched = Touched::Keys(vec![(INVITES, invite_id.to_string())]);
        self.write_entry(touched, &invites, invite_id, &invite)
    }

    /// The invite's creator or a steward revokes it: nobody else can join with it.
    pub fn revoke_invite(&mut self, invite_id: &str, _now: i64) -> Result<Vec<u8>, CoreError> {
        let view = self.feed.invite(invite_id);
        rules::check_revoke_invite(self.feed.members(), &self.me, view.as_ref(), invite_id)?;
        if view.as_ref().is_some_and(|v| v.revoked) {
            return Err(CoreError::Invalid {
                what: "revoke",
                why: format!("invite {invite_id} is already revoked"),
            });
        }
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
        handed: &[u32],
        now: i64,
    ) -> Result<Vec<u8>, CoreError> {
        actor_for_member(new_member_id)?;
        let name = rules::check_text("member name", name, MAX_MEMBER_NAME_CHARS)?;
        if self.is_removed(new_member_id) {
            // Removal is for good: a new invite does not bring the same identity back.
            return Err(CoreError::Removed(new_member_id.to_string()));
        }
        let invite = self.feed.invite(invite_id);
        rules::check_admit(
            self.feed.members(),
            &self.me,
            new_member_id,
            invite.as_ref(),
            invite_id,
            now,
        )?;
        let approved = invite.as_ref().map_or(0, |i| i.approvals.len() as u32);
        let needed = self.policy();
        if approved < needed {
            return Err(CoreError::NeedsApprovals {
                what: format!("invite {invite_id}"),
                missing: needed - approved,
            });
        }
        let members = self.container(MEMBERS)?;
        let member = MemberDoc {
            name,
            role: Role::Member.as_str().to_string(),
            joined_at: now,
            invited_via: Some(invite_id.to_string()),
        };
        let handed = handed
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        self.write(Touched::All, |doc| {
            reconcile_prop(doc, &members, new_member_id, &member).map_err(doc_err)?;
            let entry = child_map(doc, &members, new_member_id)
                .ok_or_else(|| CoreError::Document("the new entry is missing".into()))?;
            doc.put(&entry, HANDED, handed).map_err(doc_err)
        })
    }

    /// A steward sets `member`'s role: stewards appoint stewards. The last steward cannot
    /// step down.
    pub fn set_role(&mut self, member: &str, role: Role, now: i64) -> Result<Vec<u8>, CoreError> {
        if self.policy() > 1 {
            // Under a policy of K approvals a role change is a proposal
            // (`Circle::change_role`); nothing is written here.
            return Err(CoreError::NeedsApprovals {
                what: "changing a role".into(),
                missing: self.policy() - 1,
            });
        }
        // With one approval needed, `change_role` writes at once and never proposes, so
        // the proposal id is never used.
        match self.change_role(member, role, "", now)? {
            crate::RemoveOutcome::Removed(change) => Ok(change),
            crate::RemoveOutcome::Pending { missing, .. } => Err(CoreError::NeedsApprovals {
                what: "changing a role".into(),
                missing,
            }),
        }
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
        let checkin = NewCheckin {
            mood,
            note: note.map(str::to_string),
            help: None,
        };
        self.post_checkin(id, &checkin, &[], now)
    }

    /// Posts a check-in; with an `audience`, only those members (and the local member) can
    /// read it.
    pub fn post_checkin(
        &mut self,
        id: &ItemId,
        checkin: &NewCheckin,
        audience: &[String],
        now: i64,
    ) -> Result<Vec<u8>, CoreError> {
        self.require_member()?;
        let note = rules::check_optional_text("note", checkin.note.as_deref(), MAX_NOTE_CHARS)?;
        let help =
            rules::check_optional_text("what would help", checkin.help.as_deref(), MAX_HELP_CHARS)?;
        self.require_unused(id)?;
        let checkins = self.container(CHECKINS)?;
        let touched = Touched::Keys(vec![(CHECKINS, id.to_string())]);
        if audience.is_empty() {
            let checkin = CheckinDoc {
                mood: checkin.mood.value(),
                note,
                created_at: now,
            };
            return self.write(touched, |doc| {
                reconcile_prop(doc, &checkins, id.as_str(), &checkin).map_err(doc_err)?;
                if let Some(help) = help {
                    let obj = child_map(doc, &checkins, id.as_str())
                        .ok_or_else(|| CoreError::Document("the new check-in is missing".into()))?;
                    doc.put(&obj, HELP, help).map_err(doc_err)?;
                }
                Ok(())
            });
        }
        let content = Content {
            mood: Some(checkin.mood.value()),
            note,
            help,
            ..Content::default()
        };
        let (sealed, key_slots) = self.seal(id, audience, content)?;
        let doc_item = SealedDoc {
            sealed: sealed.into(),
            key_slots: key_slots.into(),
            created_at: now,
        };
        self.write_entry(touched, &checkins, id.as_str(), &doc_item)
    }

    /// Posts a help request every member can read.
    pub fn ask(
        &mut self,
        id: &ItemId,
        request: &NewRequest,
        now: i64,
    ) -> Result<Vec<u8>, CoreError> {
        self.ask_to(id, request, &[], now)
    }

    /// Posts a help request; with an `audience`, only those members (and the local member)
    /// can read what it asks.
    pub fn ask_to(
        &mut self,
        id: &ItemId,
        request: &NewRequest,
        audience: &[String],
        now: i64,
    ) -> Result<Vec<u8>, CoreError> {
        self.require_member()?;
        let title = rules::check_text("title", &request.title, MAX_TITLE_CHARS)?;
        let details =
            rules::check_optional_text("details", request.details.as_deref(), MAX_DETAILS_CHARS)?;
        rules::check_request_terms(request)?;
        self.require_unused(id)?;
        let requests = self.container(REQUESTS)?;
        // Slot ids follow time ("1" is the earliest), whatever order the times came in.
        let mut times = request.slots.clone();
        times.sort_unstable();
        let slot_times: BTreeMap<String, i64> = times
            .into_iter()
            .enumerate()
            .map(|(i, at)| (slot_id(i), at))
            .collect();
        let touched = Touched::Keys(vec![(REQUESTS, id.to_string())]);
        if audience.is_empty() {
            let doc_request = RequestDoc {
                kind: request.kind.as_str().to_string(),
                title,
                details,
                needed_by: request.needed_by,
                urgent: request.urgent,
                window_start: request.window_start,
                horizon: request.horizon.map(|h| h.as_str().to_string()),
                helpers: request.helpers,
                status: STATUS_OPEN.to_string(),
                created_at: now,
                updated_at: now,
                claims: BTreeMap::new(),
                slots: slot_times
                    .iter()
                    .map(|(slot, at)| (slot.clone(), new_slot(Some(*at))))
                    .collect(),
            };
            return self.write_entry(touched, &requests, id.as_str(), &doc_request);
        }
        let content = Content {
            kind: Some(request.kind.as_str().to_string()),
            title: Some(title),
            details,
            needed_by: request.needed_by,
            urgent: request.urgent,
            window_start: request.window_start,
            horizon: request.horizon.map(|h| h.as_str().to_string()),
            helpers: request.helpers,
            slots: slot_times.clone(),
            ..Content::default()
        };
        let (sealed, key_slots) = self.seal(id, audience, content)?;
        let doc_request = SealedRequestDoc {
            sealed: sealed.into(),
            key_slots: key_slots.into(),
            created_at: now,
            status: STATUS_OPEN.to_string(),
            updated_at: now,
            claims: BTreeMap::new(),
            slots: Some(
                slot_times
                    .keys()
                    .map(|slot| (slot.clone(), new_slot(None)))
                    .collect(),
            ),
        };
        self.write_entry(touched, &requests, id.as_str(), &doc_request)
    }

    /// Posts a standing offer of help; others accept it with [`Circle::claim_with`].
    pub fn offer(
        &mut self,
        id: &ItemId,
        offer: &NewOffer,
        audience: &[String],
        now: i64,
    ) -> Result<Vec<u8>, CoreError> {
        self.require_member()?;
        let title = rules::check_text("offer", &offer.title, MAX_TITLE_CHARS)?;
        let details =
            rules::check_optional_text("details", offer.details.as_deref(), MAX_DETAILS_CHARS)?;
        let when = rules::check_optional_text("when", offer.when.as_deref(), MAX_WHEN_CHARS)?;
        self.require_unused(id)?;
        let offers = self
            .root_map(OFFERS)
            .ok_or(CoreError::OldCircle("offers"))?;
        let touched = Touched::Keys(vec![(OFFERS, id.to_string())]);
        if audience.is_empty() {
            let doc_offer = OfferDoc {
                kind: offer.kind.as_str().to_string(),
                title,
                details,
                when,
                status: STATUS_OPEN.to_string(),
                created_at: now,
                updated_at: now,
                claims: BTreeMap::new(),
            };
            return self.write_entry(touched, &offers, id.as_str(), &doc_offer);
        }
        let content = Content {
            kind: Some(offer.kind.as_str().to_string()),
            title: Some(title),
            details,
            when,
            ..Content::default()
        };
        let (sealed, key_slots) = self.seal(id, audience, content)?;
        let doc_offer = SealedRequestDoc {
            sealed: sealed.into(),
            key_slots: key_slots.into(),
            created_at: now,
            status: STATUS_OPEN.to_string(),
            updated_at: now,
            claims: BTreeMap::new(),
            slots: None,
        };
        self.write_entry(touched, &offers, id.as_str(), &doc_offer)
    }

    /// Gently asks `target` to check in. A nudge is always private to its target: nobody
    /// else learns who was nudged, or by whom.
    pub fn nudge(
        &mut self,
        id: &ItemId,
        target: &str,
        note: Option<&str>,
        now: i64,
    ) -> Result<Vec<u8>, CoreError> {
        self.require_member()?;
        if target == self.me {
            return Err(CoreError::Invalid {
                what: "nudge",
                why: "you cannot nudge yourself".into(),
            });
        }
        let note = rules::check_optional_text("note", note, MAX_MESSAGE_CHARS)?;
        self.require_unused(id)?;
        let nudges = self
            .root_map(NUDGES)
            .ok_or(CoreError::OldCircle("nudges"))?;
        let content = Content {
            note,
            target: Some(target.to_string()),
            ..Content::default()
        };
        let (sealed, key_slots) = self.seal(id, &[target.to_string()], content)?;
        let doc_item = SealedDoc {
            sealed: sealed.into(),
            key_slots: key_slots.into(),
            created_at: now,
        };
        let touched = Touched::Keys(vec![(NUDGES, id.to_string())]);
        self.write_entry(touched, &nudges, id.as_str(), &doc_item)
    }

    /// Seals `content` of item `id` for `audience`, which must name members; returns the
    /// sealed content and the key slots.
    fn seal(
        &self,
        id: &ItemId,
        audience: &[String],
        mut content: Content,
    ) -> Result<(Vec<u8>, Vec<u8>), CoreError> {
        let mut readers: Vec<String> = Vec::new();
        for member in audience {
            if !self.feed.members().iter().any(|m| &m.id == member) {
                return Err(CoreError::NotMember(member.clone()));
            }
            if *member != self.me && !readers.contains(member) {
                readers.push(member.clone());
            }
        }
        if readers.len() > MAX_AUDIENCE {
            return Err(CoreError::Invalid {
                what: "audience",
                why: format!("at most {MAX_AUDIENCE} members"),
            });
        }
        let keyring = self.feed.keyring().ok_or_else(|| {
            CoreError::Document(
                "private items need this member's keys, which are not loaded".into(),
            )
        })?;
        content.audience = readers.clone();
        let json = content.to_json()?;
        let (_, key_slots, sealed) = keyring.seal_item(id.as_str(), &readers, &json)?;
        Ok((sealed, key_slots))
    }

    /// The local member offers to help with a request.
    pub fn claim(&mut self, id: &ItemId, now: i64) -> Result<Vec<u8>, CoreError> {
        self.claim_with(id, None, None, now)
    }

    /// The local member offers to help with a request (one of its slots, for a recurring
    /// need) or accepts an offer, with an optional message. Claiming again with another
    /// message changes the message and keeps the claim's place in line; claiming again
    /// without one, or with the same, is `AlreadyClaimed`.
    pub fn claim_with(
        &mut self,
        id: &ItemId,
        slot: Option<&str>,
        message: Option<&str>,
        now: i64,
    ) -> Result<Vec<u8>, CoreError> {
        self.require_member()?;
        let message = rules::check_optional_text("message", message, MAX_MESSAGE_CHARS)?;
        let item = self.existing_item(id)?.clone();
        let me = self.me.clone();
        let already = rules::check_claim_update(&item, &me, slot).is_ok();
        // The same message again changes nothing (automerge would record no change).
        let current = match slot {
            None => item.claims.iter().find(|c| c.member == me),
            Some(slot) => item
                .slots
                .iter()
                .find(|s| s.id == slot)
                .and_then(|s| s.claims.iter().find(|c| c.member == me)),
        }
        .and_then(|c| c.message.as_ref());
        if already && (message.is_none() || message.as_ref() == current) {
            return Err(CoreError::AlreadyClaimed(id.to_string()));
        }
        if !already {
            rules::check_claim_at(&item, &me, slot, now)?;
        }
        let claims = self.claims_map(id, &item, slot)?;
        let mine = self
            .doc
            .get(&claims, &me)
            .ok()
            .flatten()
            .and_then(|(_, obj)| {
                let own = actor_for_member(&me).ok();
                (feed::creator_actor(&obj) == own.as_ref().map(|a| a.as_slice())).then_some(obj)
            });
        let sealed_message = match (&message, item.audience.is_some()) {
            (Some(text), true) => {
                Some(self.seal_part(id, &private::claim_part(slot, &me), text.as_bytes())?)
            }
            _ => None,
        };
        let plain_message = if item.audience.is_some() {
            None
        } else {
            message
        };
        let touched = self.item_touched(id, item.kind);
        if let (true, Some(existing)) = (already, mine) {
            // Already ours: only the message changes, so the claim keeps its place.
            return self.write(touched, |doc| {
                match (&plain_message, &sealed_message) {
                    (Some(text), _) => doc.put(&existing, MESSAGE, text.as_str()),
                    (None, Some(bytes)) => doc.put(&existing, SEALED_MESSAGE, bytes.clone()),
                    (None, None) => doc.delete(&existing, MESSAGE),
                }
                .map_err(doc_err)
            });
        }
        let claim = ClaimDoc {
            at: now,
            message: plain_message,
            sealed_message: sealed_message.map(Into::into),
        };
        self.write(touched, |doc| {
            // A leftover entry not created by us (so not counted) must not be reused: the
            // claim object has to be ours for the claim to count.
            if doc.get(&claims, &me).map_err(doc_err)?.is_some() {
                doc.delete(&claims, &me).map_err(doc_err)?;
            }
            reconcile_prop(doc, &claims, me.as_str(), &claim).map_err(doc_err)
        })
    }

    /// Withdraws the local member's claim. The claim's key goes; the request's own times are
    /// the author's to write.
    pub fn unclaim(&mut self, id: &ItemId, now: i64) -> Result<Vec<u8>, CoreError> {
        self.unclaim_slot(id, None, now)
    }

    /// Withdraws the local member's claim on a request, one of its slots, or an offer.
    /// Without a slot on a recurring need, withdraws from the only slot the member holds.
    pub fn unclaim_slot(
        &mut self,
        id: &ItemId,
        slot: Option<&str>,
        _now: i64,
    ) -> Result<Vec<u8>, CoreError> {
        let item = self.existing_item(id)?.clone();
        let slot = match slot {
            Some(slot) => Some(slot.to_string()),
            None if !item.slots.is_empty() => {
                let mine: Vec<&str> = item
                    .slots
                    .iter()
                    .filter(|s| s.claims.iter().any(|c| c.member == self.me))
                    .map(|s| s.id.as_str())
                    .collect();
                match mine.as_slice() {
                    [one] => Some((*one).to_string()),
                    [] => return Err(CoreError::NotClaimed(id.to_string())),
                    _ => return Err(CoreError::NeedsSlot(id.to_string())),
                }
            }
            None => None,
        };
        rules::check_unclaim_at(&item, &self.me, slot.as_deref())?;
        let claims = self.claims_map(id, &item, slot.as_deref())?;
        let me = self.me.clone();
        let touched = self.item_touched(id, item.kind);
        self.write(touched, |doc| doc.delete(&claims, &me).map_err(doc_err))
    }

    pub fn done(&mut self, id: &ItemId, now: i64) -> Result<Vec<u8>, CoreError> {
        let item = self.existing_item(id)?;
        if item.kind != ItemKind::Request {
            return Err(CoreError::NotARequest(id.to_string()));
        }
        self.close(id, STATUS_FULFILLED, now)
    }

    /// Cancels a request, or withdraws an offer.
    pub fn cancel(&mut self, id: &ItemId, now: i64) -> Result<Vec<u8>, CoreError> {
        let status = match self.existing_item(id)?.kind {
            ItemKind::Offer => STATUS_WITHDRAWN,
            _ => STATUS_CANCELLED,
        };
        self.close(id, status, now)
    }

    fn close(&mut self, id: &ItemId, status: &str, now: i64) -> Result<Vec<u8>, CoreError> {
        let item = self.existing_item(id)?;
        rules::check_close(item, &self.me)?;
        let kind = item.kind;
        let obj = self.item_obj(id, kind)?;
        let status = status.to_string();
        let touched = self.item_touched(id, kind);
        self.write(touched, |doc| {
            reconcile_prop(doc, &obj, STATUS, &status).map_err(doc_err)?;
            reconcile_prop(doc, &obj, UPDATED_AT, now).map_err(doc_err)
        })
    }

    /// The asker thanks members who helped, with an optional note; with no `members`,
    /// everyone holding a spot.
    pub fn thank(
        &mut self,
        id: &ItemId,
        members: &[String],
        note: Option<&str>,
        now: i64,
    ) -> Result<Vec<u8>, CoreError> {
        let note = rules::check_optional_text("thanks", note, MAX_MESSAGE_CHARS)?;
        let item = self.existing_item(id)?.clone();
        let mut helpers: Vec<String> = members.to_vec();
        if helpers.is_empty() {
            for claim in item.all_claims().filter(|c| !c.standby) {
                if !helpers.contains(&claim.member) {
                    helpers.push(claim.member.clone());
                }
            }
            if helpers.is_empty() {
                // Who may thank comes first (this errs `NotClaimed` only for the asker).
                rules::check_thank(&item, &self.me, "")?;
                return Err(CoreError::NotClaimed(id.to_string()));
            }
        }
        let mut values: Vec<(String, ScalarValue)> = Vec::new();
        for member in &helpers {
            rules::check_thank(&item, &self.me, member)?;
            let value = match (&note, item.audience.is_some()) {
                (Some(text), true) => ScalarValue::Bytes(self.seal_part(
                    id,
                    &private::thanks_part(member),
                    text.as_bytes(),
                )?),
                (Some(text), false) => ScalarValue::Str(text.as_str().into()),
                (None, _) => ScalarValue::Str("".into()),
            };
            values.push((member.clone(), value));
        }
        let obj = self.item_obj(id, item.kind)?;
        let thanks = child_map(&self.doc, &obj, THANKS);
        let touched = self.item_touched(id, item.kind);
        self.write(touched, |doc| {
            let thanks = match thanks {
                Some(map) => map,
                None => doc
                    .put_object(&obj, THANKS, automerge::ObjType::Map)
                    .map_err(doc_err)?,
            };
            for (member, value) in values {
                doc.put(&thanks, member.as_str(), value).map_err(doc_err)?;
            }
            reconcile_prop(doc, &obj, UPDATED_AT, now).map_err(doc_err)
        })
    }

    /// The author changes an item's words or times. Private items are not edited (their
    /// content is sealed once).
    pub fn edit(&mut self, id: &ItemId, edit: &ItemEdit, now: i64) -> Result<Vec<u8>, CoreError> {
        let item = self.existing_item(id)?.clone();
        rules::check_edit(&item, &self.me)?;
        let mut puts: Vec<(&'static str, ScalarValue)> = Vec::new();
        let text = |field, value: &Option<String>, max| {
            rules::check_optional_text(field, value.as_deref(), max)
        };
        match item.kind {
            ItemKind::CheckIn => {
                // A check-in has no updated time: the same note again would write nothing.
                if let Some(note) = text("note", &edit.note, MAX_NOTE_CHARS)?
                    && item.note.as_ref() != Some(&note)
                {
                    puts.push(("n", note.into()));
                }
            }
            ItemKind::Request | ItemKind::Offer => {
                if let Some(title) = &edit.title {
                    let title = rules::check_text("title", title, MAX_TITLE_CHARS)?;
                    puts.push(("t", title.into()));
                }
                if let Some(details) = text("details", &edit.details, MAX_DETAILS_CHARS)? {
                    puts.push(("d", details.into()));
                }
                if item.kind == ItemKind::Request
                    && let Some(at) = edit.needed_by
                {
                    // As when asking: a window ends after it starts.
                    if item.window_start.is_some_and(|start| start >= at) {
                        return Err(CoreError::Invalid {
                            what: "time window",
                            why: "it must end after it starts".into(),
                        });
                    }
                    puts.push(("b", at.into()));
                }
                if item.kind == ItemKind::Offer
                    && let Some(when) = text("when", &edit.when, MAX_WHEN_CHARS)?
                {
                    puts.push(("w", when.into()));
                }
            }
            ItemKind::Nudge => {}
        }
        if puts.is_empty() {
            return Err(CoreError::Invalid {
                what: "edit",
                why: "nothing to change for this kind of item".into(),
            });
        }
        let obj = self.item_obj(id, item.kind)?;
        let kind = item.kind;
        let touched = self.item_touched(id, kind);
        self.write(touched, |doc| {
            for (key, value) in puts {
                doc.put(&obj, key, value).map_err(doc_err)?;
            }
            if kind != ItemKind::CheckIn {
                reconcile_prop(doc, &obj, UPDATED_AT, now).map_err(doc_err)?;
            }
            Ok(())
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
        let private = self
            .feed
            .get(item.as_str())
            .is_some_and(|i| i.audience.is_some());
        let replies = self.container(REPLIES)?;
        let touched = Touched::Keys(vec![(REPLIES, reply_id.to_string())]);
        if private {
            let sealed = self.seal_part(
                item,
                &private::reply_part(reply_id.as_str()),
                text.as_bytes(),
            )?;
            let reply = SealedReplyDoc {
                item: item.to_string(),
                sealed: sealed.into(),
                created_at: now,
            };
            return self.write_entry(touched, &replies, reply_id.as_str(), &reply);
        }
        let reply = ReplyDoc {
            item: item.to_string(),
            text,
            created_at: now,
        };
        self.write_entry(touched, &replies, reply_id.as_str(), &reply)
    }

    /// Publishes the local member's quiet hours (as they write them, e.g. "22:00-07:00")
    /// on their roster entry; `None` withdraws them.
    pub fn set_my_quiet_hours(
        &mut self,
        quiet: Option<&str>,
        _now: i64,
    ) -> Result<Vec<u8>, CoreError> {
        let value = rules::check_optional_text("quiet hours", quiet, MAX_QUIET_CHARS)?;
        rules::authorize(
            &rules::Write::Addresses { owner: &self.me },
            &self.me,
            self.feed
                .members()
                .iter()
                .find(|m| m.id == self.me)
                .map(|m| m.role),
        )?;
        let entry = child_map(&self.doc, &self.container(MEMBERS)?, &self.me)
            .ok_or_else(|| CoreError::NotMember(self.me.clone()))?;
        self.write(roster_touched(), |doc| {
            // Automerge records nothing for a put of the value already there or a delete of
            // an absent key, and every call must still make the one change its caller seals
            // (setting the same hours again, or clearing twice, is no error): clear, then set.
            doc.put(&entry, QUIET, ScalarValue::Null).map_err(doc_err)?;
            match value {
                Some(v) => doc.put(&entry, QUIET, v),
                None => doc.delete(&entry, QUIET),
            }
            .map_err(doc_err)
        })
    }

    /// Seals a part of private item `item` under its key.
    fn seal_part(&self, item: &ItemId, part: &str, plaintext: &[u8]) -> Result<Vec<u8>, CoreError> {
        let keyring = self.feed.keyring().ok_or_else(|| {
            CoreError::Document(
                "private items need this member's keys, which are not loaded".into(),
            )
        })?;
        // The newest key: after a reader's removal, one they never got.
        let (generation, key) = self
            .feed
            .item_key(item.as_str())
            .and_then(|keys| keys.newest())
            .ok_or_else(|| CoreError::UnknownItem(item.to_string()))?;
        Ok(keyring.seal_part(key, generation, item.as_str(), part, plaintext))
    }

    /// The claims map a claim on `item` (in `slot`, if given) goes in.
    fn claims_map(
        &self,
        id: &ItemId,
        item: &ItemView,
        slot: Option<&str>,
    ) -> Result<ObjId, CoreError> {
        let obj = self.item_obj(id, item.kind)?;
        let holder = match slot {
            None => obj,
            Some(slot) => child_map(&self.doc, &obj, SLOTS)
                .and_then(|slots| child_map(&self.doc, &slots, slot))
                .ok_or_else(|| CoreError::UnknownSlot {
                    id: id.to_string(),
                    slot: slot.to_string(),
                })?,
        };
        child_map(&self.doc, &holder, CLAIMS)
            .ok_or_else(|| CoreError::Document(format!("item {id} has no claims map")))
    }

    /// The map of item `id`, of kind `kind`.
    pub(crate) fn item_obj(&self, id: &ItemId, kind: ItemKind) -> Result<ObjId, CoreError> {
        child_map(&self.doc, &self.container(container_of(kind))?, id.as_str())
            .ok_or_else(|| CoreError::UnknownItem(id.to_string()))
    }

    fn item_touched(&self, id: &ItemId, kind: ItemKind) -> Touched {
        Touched::Keys(vec![(container_of(kind), id.to_string())])
    }

    /// Writes a new entry `key` into the container map `map` as one change.
    fn write_entry<T: autosurgeon::Reconcile>(
        &mut self,
        touched: Touched,
        map: &ObjId,
        key: &str,
        value: &T,
    ) -> Result<Vec<u8>, CoreError> {
        self.write(touched, |doc| {
            reconcile_prop(doc, map, key, value).map_err(doc_err)
        })
    }
}

/// Slot ids: "1", "2", ... in time order.
fn slot_id(index: usize) -> String {
    (index + 1).to_string()
}

fn new_slot(at: Option<i64>) -> SlotDoc {
    SlotDoc {
        at,
        claims: BTreeMap::new(),
    }
}

/// What an edit of fields inside roster entries touches.
pub(crate) fn roster_touched() -> Touched {
    Touched::Keys(vec![(MEMBERS, String::new())])
}
