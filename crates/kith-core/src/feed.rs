//! The circle as read: roster, items and replies, hydrated from the document with
//! autosurgeon and kept up to date one key at a time.
//!
//! Reading an item costs a few document lookups (tens of microseconds each at 10,000
//! items), so the whole feed is read once (on load) and then only the keys that an edit
//! or a received batch touched are read again. Automerge's patches name those keys.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use automerge::{
    ActorId, AutoCommit, ObjId, ObjType, Patch, PatchAction, Prop, ReadDoc, Value, ValueRef,
};
use autosurgeon::{Hydrate, hydrate_prop};

use crate::private::{self, Content, ItemKeys, ItemSecret, Keyring};
use crate::schema::{
    ADDRESSES, APPROVALS, CHECKINS, CLAIMS, CUTOFF, CheckinDoc, ClaimDoc, EPOCHS, HANDED, HELP,
    INVITED_VIA, INVITES, InviteDoc, MEMBERS, MemberDoc, NAME, NUDGES, OFFERS, OfferDoc, POLICY,
    PROPOSALS, QUIET, REMOVED, RENEWALS, REPLIES, REQUESTS, REVOKED, ReplyDoc, RequestDoc, SEALED,
    SLOTS, STATUS, STATUS_CANCELLED, STATUS_FULFILLED, STATUS_OPEN, STATUS_WITHDRAWN, SealedDoc,
    SealedReplyDoc, THANKS, UPDATED_AT,
};
use crate::types::in_alphabet;
use crate::{
    ClaimView, HelpKind, Horizon, InviteView, ItemKind, ItemView, MemberView, Mood, Removal,
    ReplyView, RequestStatus, Role, SlotView, ThanksView, actor_for_member, invite_id_bytes,
};

/// The kinds of item, in the order their containers are read: a check-in wins over a
/// request, offer or nudge under the same id (ids are checked unused when written, so only
/// a hostile writer makes two).
const ITEM_KINDS: [ItemKind; 4] = [
    ItemKind::CheckIn,
    ItemKind::Request,
    ItemKind::Offer,
    ItemKind::Nudge,
];

/// What a write touched, so that only that is read again.
#[derive(Debug)]
pub(crate) enum Touched {
    /// The roster or the root changed: authorship of everything may have changed.
    All,
    /// These `(container, key)` entries of the check-ins, requests, replies or invites
    /// maps; `(MEMBERS, _)` means fields inside roster entries (roles, addresses) changed,
    /// which re-reads the roster and the invites (the whole feed if the set of readable
    /// members changed).
    Keys(Vec<(&'static str, String)>),
}

/// A reply, with the item it answers.
#[derive(Clone, Debug)]
struct Reply {
    item: String,
    /// Sealed under the item's key. Only sealed replies show on a private item; this is
    /// checked when replies are attached, since an open reply may be read before the item.
    sealed: bool,
    view: ReplyView,
}

impl Reply {
    /// Whether this reply shows on `item`, the item it names.
    fn shows_on(&self, item: &ItemView) -> bool {
        self.sealed || item.audience.is_none()
    }
}

#[derive(Debug, Default)]
pub(crate) struct Feed {
    name: String,
    /// The current roster (members a steward has not removed).
    members: Vec<MemberView>,
    /// Members a steward removed, with what of theirs still counts.
    former: Vec<MemberView>,
    /// Member ids by actor, removed members included: names the member whose change
    /// created an object.
    by_actor: HashMap<ActorId, String>,
    /// Removed members' actors, with the highest op counter of theirs that still counts:
    /// what they wrote later (concurrently with their removal, or after it) is not shown.
    cutoffs: HashMap<ActorId, u64>,
    /// Readable check-ins and requests by id, without their replies.
    /// Boxed: an `ItemView` is ~380 bytes, and a B-tree node holds eleven values inline.
    items: BTreeMap<String, Box<ItemView>>,
    /// Readable replies by reply id.
    replies: HashMap<String, Reply>,
    /// Invites that count (created by a steward), by id, with `used` left at 0: it is
    /// counted from the roster when asked for.
    invites: BTreeMap<String, InviteView>,
    /// Seals and opens private items as the local member, when the caller gave one.
    keyring: Option<Arc<dyn Keyring>>,
    /// Keys of the private items this member opened, by item id.
    keys: HashMap<String, ItemKeys>,
    /// Ids of the items the last refresh read again (`None`: all of them).
    touched: Option<Vec<String>>,
}

/// The map that holds items of `kind`.
pub(crate) fn container_of(kind: ItemKind) -> &'static str {
    match kind {
        ItemKind::CheckIn => CHECKINS,
        ItemKind::Request => REQUESTS,
        ItemKind::Offer => OFFERS,
        ItemKind::Nudge => NUDGES,
    }
}

fn is_item_key(key: &str) -> bool {
    key.len() == 10 && key.chars().all(in_alphabet)
}

/// The map object at `obj[key]`, if that is a map.
pub(crate) fn child_map(doc: &AutoCommit, obj: &ObjId, key: &str) -> Option<ObjId> {
    match doc.get(obj, key) {
        Ok(Some((Value::Object(ObjType::Map), id))) => Some(id),
        _ => None,
    }
}

/// The actor bytes of the op that created `id`.
pub(crate) fn creator_actor(id: &ObjId) -> Option<&[u8]> {
    match id {
        ObjId::Id(_, actor, _) => Some(actor.to_bytes()),
        ObjId::Root => None,
    }
}

impl Feed {
    pub(crate) fn set_keyring(&mut self, keyring: Arc<dyn Keyring>) {
        self.keyring = Some(keyring);
    }

    pub(crate) fn keyring(&self) -> Option<&dyn Keyring> {
        self.keyring.as_deref()
    }

    /// The key of private item `id`, if this member could open it.
    pub(crate) fn item_key(&self, id: &str) -> Option<&ItemKeys> {
        self.keys.get(id)
    }

    /// Reads everything.
    pub(crate) fn read(doc: &AutoCommit, keyring: Option<Arc<dyn Keyring>>) -> Feed {
        let (members, former) = read_members(doc);
        let mut feed = Feed {
            name: hydrate_prop::<_, String, _, _>(doc, automerge::ROOT, NAME).unwrap_or_default(),
            members,
            former,
            keyring,
            ..Feed::default()
        };
        feed.by_actor = feed
            .members
            .iter()
            .chain(&feed.former)
            .filter_map(|m| Some((ActorId::from(actor_for_member(&m.id).ok()?), m.id.clone())))
            .collect();
        feed.cutoffs = feed
            .former
            .iter()
            .filter_map(|m| {
                let actor = ActorId::from(actor_for_member(&m.id).ok()?);
                Some((actor, m.removed.map_or(0, |r| r.cutoff)))
            })
            .collect();
        for kind in ITEM_KINDS {
            let Some(map) = child_map(doc, &automerge::ROOT, container_of(kind)) else {
                continue;
            };
            for entry in doc.map_range(&map, ..) {
                let ValueRef::Object(ObjType::Map) = entry.value else {
                    continue;
                };
                let id = entry.key.as_ref();
                // The same id in two containers: the first wins, as in `read_key`.
                if !is_item_key(id) || feed.items.contains_key(id) {
                    continue;
                }
                if let Some((item, key)) = feed.read_item(doc, kind, id, &entry.id()) {
                    if let Some(key) = key {
                        feed.keys.insert(item.id.clone(), key);
                    }
                    feed.items.insert(item.id.clone(), Box::new(item));
                }
            }
        }
        if let Some(map) = child_map(doc, &automerge::ROOT, REPLIES) {
            for entry in doc.map_range(&map, ..) {
                if let ValueRef::Object(ObjType::Map) = entry.value
                    && let Some(reply) = feed.read_reply(doc, &entry.key, &entry.id())
                {
                    feed.replies.insert(entry.key.to_string(), reply);
                }
            }
        }
        feed.read_invites(doc);
        feed
    }

    /// Reads every invite again.
    fn read_invites(&mut self, doc: &AutoCommit) {
        self.invites.clear();
        let Some(map) = child_map(doc, &automerge::ROOT, INVITES) else {
            return;
        };
        for entry in doc.map_range(&map, ..) {
            if let ValueRef::Object(ObjType::Map) = entry.value
                && let Some(invite) = self.read_invite(doc, &entry.key, &entry.id())
            {
                self.invites.insert(invite.id.clone(), invite);
            }
        }
    }

    /// Ids of the items the last refresh read again; `None` when it read everything.
    pub(crate) fn last_touched(&self) -> Option<&[String]> {
        self.touched.as_deref()
    }

    /// Reads again what `touched` names.
    pub(crate) fn refresh(&mut self, doc: &AutoCommit, touched: Touched) {
        let keys = match touched {
            Touched::All => {
                *self = Feed::read(doc, self.keyring.take());
                return;
            }
            Touched::Keys(keys) => keys,
        };
        let written = keys.clone();
        self.refresh_keys(doc, keys);
        if self.touched.is_none() {
            // A roster change read everything again.
            return;
        }
        let mut items_touched: Vec<String> = written
            .into_iter()
            .filter_map(|(container, key)| match container {
                MEMBERS | INVITES => None,
                REPLIES => self.replies.get(&key).map(|r| r.item.clone()),
                _ => Some(key),
            })
            .collect();
        items_touched.sort();
        items_touched.dedup();
        self.touched = Some(items_touched);
    }

    fn refresh_keys(&mut self, doc: &AutoCommit, keys: Vec<(&'static str, String)>) {
        // Stays `None` if a roster change below reads everything again.
        self.touched = Some(Vec::new());
        for (container, key) in keys {
            if container == MEMBERS {
                let (members, former) = read_members(doc);
                // Who counts, and what of the removed counts (a cutoff can change).
                let shape = |ms: &[MemberView], fs: &[MemberView]| {
                    let mut out: Vec<(String, Option<u64>)> = ms
                        .iter()
                        .map(|m| (m.id.clone(), None))
                        .chain(
                            fs.iter()
                                .map(|m| (m.id.clone(), m.removed.map(|r| r.cutoff))),
                        )
                        .collect();
                    out.sort();
                    out
                };
                if shape(&self.members, &self.former) != shape(&members, &former) {
                    // Someone's entry became readable or unreadable: authorship changed.
                    *self = Feed::read(doc, self.keyring.take());
                    return;
                }
                self.members = members;
                self.former = former;
                // Whether an invite counts depends on its creator's role.
                self.read_invites(doc);
            } else if container == INVITES {
                self.invites.remove(&key);
                let invite = child_map(doc, &automerge::ROOT, INVITES)
                    .and_then(|map| child_map(doc, &map, &key))
                    .and_then(|obj| self.read_invite(doc, &key, &obj));
                if let Some(invite) = invite {
                    self.invites.insert(key, invite);
                }
            } else if container == REPLIES {
                self.replies.remove(&key);
                let reply = child_map(doc, &automerge::ROOT, REPLIES)
                    .and_then(|map| child_map(doc, &map, &key))
                    .and_then(|obj| self.read_reply(doc, &key, &obj));
                if let Some(reply) = reply {
                    self.replies.insert(key, reply);
                }
            } else {
                self.items.remove(&key);
                if let Some((item, secret)) = self.read_key(doc, &key) {
                    if let Some(secret) = secret {
                        self.keys.insert(key.clone(), secret);
                    }
                    self.items.insert(key, Box::new(item));
                }
            }
        }
    }

    /// What a set of patches touched. Changes inside roster entries re-read the roster and
    /// the invites; anything else outside the item, reply and invite maps (entries added to
    /// or removed from the roster, the root, or shapes this schema never writes) reads
    /// everything again.
    pub(crate) fn touched_by(patches: &[Patch]) -> Touched {
        let mut keys = Vec::new();
        for patch in patches {
            if let (Some((_, Prop::Map(c))), Some(_)) = (patch.path.first(), patch.path.get(1))
                && c == MEMBERS
            {
                keys.push((MEMBERS, String::new()));
                continue;
            }
            let container = match patch.path.first() {
                Some((_, Prop::Map(c))) if c == CHECKINS => CHECKINS,
                Some((_, Prop::Map(c))) if c == REQUESTS => REQUESTS,
                Some((_, Prop::Map(c))) if c == REPLIES => REPLIES,
                Some((_, Prop::Map(c))) if c == INVITES => INVITES,
                Some((_, Prop::Map(c))) if c == OFFERS => OFFERS,
                Some((_, Prop::Map(c))) if c == NUDGES => NUDGES,
                // Epochs, proposals and the policy change nothing the feed shows.
                Some((_, Prop::Map(c))) if c == EPOCHS || c == PROPOSALS => continue,
                None if matches!(&patch.action, PatchAction::PutMap { key, .. } if key == POLICY) =>
                {
                    continue;
                }
                _ => return Touched::All,
            };
            let key = match (patch.path.get(1), &patch.action) {
                (Some((_, Prop::Map(key))), _) => key.clone(),
                (None, PatchAction::PutMap { key, .. } | PatchAction::DeleteMap { key }) => {
                    key.clone()
                }
                (
                    None,
                    PatchAction::Conflict {
                        prop: Prop::Map(key),
                    },
                ) => key.clone(),
                _ => return Touched::All,
            };
            keys.push((container, key));
        }
        keys.sort();
        keys.dedup();
        Touched::Keys(keys)
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn members(&self) -> &[MemberView] {
        &self.members
    }

    /// Invites that count, by id, with `used` counted from the roster.
    pub(crate) fn invites(&self) -> Vec<InviteView> {
        self.invites
            .values()
            .map(|i| self.with_used(i.clone()))
            .collect()
    }

    pub(crate) fn invite(&self, id: &str) -> Option<InviteView> {
        self.invites.get(id).map(|i| self.with_used(i.clone()))
    }

    fn with_used(&self, mut invite: InviteView) -> InviteView {
        // Members since removed used it too.
        let used = self
            .members
            .iter()
            .chain(&self.former)
            .filter(|m| m.invited_via.as_deref() == Some(invite.id.as_str()))
            .count();
        invite.used = u32::try_from(used).unwrap_or(u32::MAX);
        invite
    }

    fn role(&self, member: &str) -> Option<Role> {
        self.members.iter().find(|m| m.id == member).map(|m| m.role)
    }

    /// Reads one invite. `None` if its key is not an invite id, its fields do not read, or
    /// its creator is not a steward of the roster: an invite made by anyone else admits
    /// nobody. Only a revocation written by the creator or a steward counts.
    fn read_invite(&self, doc: &AutoCommit, id: &str, obj: &ObjId) -> Option<InviteView> {
        invite_id_bytes(id).ok()?;
        let creator = self.creator(obj)?.to_string();
        if self.role(&creator) != Some(Role::Steward) {
            return None;
        }
        let invite = InviteDoc::hydrate_map(doc, obj).ok()?;
        let revoked = doc
            .get_all(obj, REVOKED)
            .unwrap_or_default()
            .into_iter()
            .filter(|(_, op)| {
                self.creator(op)
                    .is_some_and(|w| w == creator || self.role(w) == Some(Role::Steward))
            })
            .any(|(v, _)| matches!(v, Value::Scalar(s) if s.as_bool() == Some(true)));
        let mut approvals = vec![creator.clone()];
        if let Some(votes) = child_map(doc, obj, APPROVALS) {
            for vote in doc.map_range(&votes, ..) {
                let steward = vote.key.as_ref();
                // Counts only if written by the steward it names.
                if self.creator(&vote.id()) == Some(steward)
                    && self.role(steward) == Some(Role::Steward)
                    && !approvals.iter().any(|a| a == steward)
                {
                    approvals.push(steward.to_string());
                }
            }
        }
        Some(InviteView {
            id: id.to_string(),
            creator,
            verifier: *invite.verifier,
            expires_at: invite.expires_at,
            uses: invite.uses,
            used: 0,
            revoked,
            created_at: invite.created_at,
            approvals,
        })
    }

    /// The check-in or request `id`, without replies.
    pub(crate) fn get(&self, id: &str) -> Option<&ItemView> {
        self.items.get(id).map(|item| &**item)
    }

    /// Ids of readable items starting with `prefix`, in order.
    pub(crate) fn ids_with_prefix<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = &'a str> + 'a {
        self.items
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .map(|(id, _)| id.as_str())
            .take_while(move |id| id.starts_with(prefix))
    }

    /// `item` with its replies attached.
    pub(crate) fn with_replies(&self, item: &ItemView) -> ItemView {
        let mut item = item.clone();
        let replies = self
            .replies
            .values()
            .filter(|r| r.item == item.id && r.shows_on(&item))
            .map(|r| r.view.clone())
            .collect();
        attach_replies(&mut item, replies);
        item
    }

    /// Every readable item, in id order, without replies.
    pub(crate) fn visit_items(&self, visit: impl FnMut(&ItemView)) {
        self.items.values().map(|item| &**item).for_each(visit);
    }

    /// How many items [`Feed::items`] would return, without copying them.
    pub(crate) fn item_count(&self) -> usize {
        self.items.len()
    }

    pub(crate) fn items(&self) -> Vec<ItemView> {
        let mut replies: HashMap<&str, Vec<&Reply>> = HashMap::new();
        for r in self.replies.values() {
            replies.entry(r.item.as_str()).or_default().push(r);
        }
        let mut items: Vec<ItemView> = self
            .items
            .values()
            .map(|item| {
                let mut item = ItemView::clone(item);
                let own = replies
                    .remove(item.id.as_str())
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|r| r.shows_on(&item))
                    .map(|r| r.view.clone())
                    .collect();
                attach_replies(&mut item, own);
                item
            })
            .collect();
        items.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        items
    }

    /// The member whose actor created the object `id`, if that actor is in the roster
    /// and, for a removed member, the object was made before their cutoff.
    fn creator(&self, id: &ObjId) -> Option<&str> {
        match id {
            ObjId::Id(counter, actor, _) => {
                if self.cutoffs.get(actor).is_some_and(|cut| counter > cut) {
                    return None;
                }
                self.by_actor.get(actor).map(String::as_str)
            }
            ObjId::Root => None,
        }
    }

    pub(crate) fn former(&self) -> &[MemberView] {
        &self.former
    }

    /// Whether `actor` belongs to a removed member: their claims no longer count.
    fn is_removed_actor(&self, actor: &ActorId) -> bool {
        self.cutoffs.contains_key(actor)
    }

    /// The item under `id` in any item container, with its key if it is private.
    fn read_key(&self, doc: &AutoCommit, id: &str) -> Option<(ItemView, Option<ItemKeys>)> {
        if !is_item_key(id) {
            return None;
        }
        ITEM_KINDS.into_iter().find_map(|kind| {
            let container = child_map(doc, &automerge::ROOT, container_of(kind))?;
            let obj = child_map(doc, &container, id)?;
            self.read_item(doc, kind, id, &obj)
        })
    }

    /// Reads one item, and the key of a private one. `None` if its author is not in the
    /// roster, a field is unreadable, or it is private and this member is not a reader: a
    /// damaged or hostile entry is skipped, never fatal.
    fn read_item(
        &self,
        doc: &AutoCommit,
        kind: ItemKind,
        id: &str,
        obj: &ObjId,
    ) -> Option<(ItemView, Option<ItemKeys>)> {
        let author = self.creator(obj)?.to_string();
        // Items in the open are read first: looking for the sealed key on every item would
        // cost a lookup each (a tenth of a second over 10,000 items).
        let mut view = blank_view(id, kind, &author);
        if self.read_plain(doc, &mut view, obj).is_some() {
            return Some((view, None));
        }
        if !matches!(doc.get(obj, SEALED), Ok(Some(_))) {
            return None;
        }
        let mut view = blank_view(id, kind, &author);
        let (content, key) = self.open_sealed(doc, &view, obj)?;
        let keys = self.renewed_keys(doc, &view, obj, key);
        self.fill_private(doc, &mut view, obj, &content, &keys)?;
        Some((view, Some(keys)))
    }

    /// Reads an item written in the open; `None` if it is not one (or does not read).
    fn read_plain(&self, doc: &AutoCommit, view: &mut ItemView, obj: &ObjId) -> Option<()> {
        let kind = view.kind;
        match kind {
            ItemKind::CheckIn => {
                let c = CheckinDoc::hydrate_map(doc, obj).ok()?;
                view.mood = Some(Mood::from_value(c.mood)?);
                view.note = c.note;
                view.help = hydrate_prop::<_, Option<String>, _, _>(doc, obj, HELP)
                    .ok()
                    .flatten();
                view.created_at = c.created_at;
                view.updated_at = c.created_at;
            }
            ItemKind::Request => {
                let r = RequestDoc::hydrate_map(doc, obj).ok()?;
                view.created_at = r.created_at;
                view.title = Some(r.title);
                view.details = r.details;
                view.category = Some(HelpKind::from_stored(&r.kind));
                view.needed_by = r.needed_by;
                view.urgent = r.urgent;
                view.window_start = r.window_start;
                view.horizon = r.horizon.as_deref().and_then(Horizon::from_stored);
                view.helpers = r.helpers;
                let slot_times = read_slot_times(doc, obj);
                self.fill_open_parts(doc, view, obj, &r.status, r.updated_at, &slot_times, None)?;
            }
            ItemKind::Offer => {
                let o = OfferDoc::hydrate_map(doc, obj).ok()?;
                view.created_at = o.created_at;
                view.title = Some(o.title);
                view.details = o.details;
                view.category = Some(HelpKind::from_stored(&o.kind));
                view.when = o.when;
                self.fill_open_parts(
                    doc,
                    view,
                    obj,
                    &o.status,
                    o.updated_at,
                    &BTreeMap::new(),
                    None,
                )?;
            }
            // Nudges are always sealed.
            ItemKind::Nudge => return None,
        }
        Some(())
    }

    /// Opens a private item's content, if this member is one of its readers.
    fn open_sealed(
        &self,
        doc: &AutoCommit,
        view: &ItemView,
        obj: &ObjId,
    ) -> Option<(Content, ItemSecret)> {
        let keyring = self.keyring.as_deref()?;
        let sealed = SealedDoc::hydrate_map(doc, obj).ok()?;
        if sealed.sealed.len() > private::MAX_SEALED_BYTES {
            return None;
        }
        let (key, plaintext) =
            keyring.open_item(&view.id, &view.author, &sealed.key_slots, &sealed.sealed)?;
        let content = Content::from_json(&plaintext)?;
        Some((content, key))
    }

    /// The item's key and the renewals of it this member can open (`xr`: generation ->
    /// renewal, written by the item's author only).
    fn renewed_keys(
        &self,
        doc: &AutoCommit,
        view: &ItemView,
        obj: &ObjId,
        first: ItemSecret,
    ) -> ItemKeys {
        let mut keys = ItemKeys::new(first);
        let (Some(keyring), Some(renewals)) =
            (self.keyring.as_deref(), child_map(doc, obj, RENEWALS))
        else {
            return keys;
        };
        let author = actor_for_member(&view.author).ok();
        for entry in doc.map_range(&renewals, ..).take(crate::MAX_EPOCHS) {
            let Some(generation) = crate::membership::parse_epoch_id(&entry.key) else {
                continue;
            };
            let op = entry.id();
            let ValueRef::Scalar(automerge::ScalarValueRef::Bytes(bytes)) = entry.value else {
                continue;
            };
            // Only the author renews an item's key.
            let by_author = creator_actor(&op)
                .is_some_and(|actor| author.is_some_and(|a| a.as_slice() == actor));
            if !by_author {
                continue;
            }
            if let Some(key) = keyring.open_rekey(&view.id, &view.author, generation, &bytes) {
                keys.add(generation, key);
            }
        }
        keys
    }

    /// Fills a private item's view from its opened content and its open parts.
    fn fill_private(
        &self,
        doc: &AutoCommit,
        view: &mut ItemView,
        obj: &ObjId,
        content: &Content,
        keys: &ItemKeys,
    ) -> Option<()> {
        let created_at = SealedDoc::hydrate_map(doc, obj).ok()?.created_at;
        view.created_at = created_at;
        view.updated_at = created_at;
        view.audience = Some(content.audience.clone());
        view.note = content.note.clone();
        match view.kind {
            ItemKind::CheckIn => {
                view.mood = Some(Mood::from_value(content.mood?)?);
                view.help = content.help.clone();
            }
            ItemKind::Nudge => {
                view.target = Some(content.target.clone()?);
            }
            ItemKind::Request | ItemKind::Offer => {
                view.title = Some(content.title.clone()?);
                view.details = content.details.clone();
                view.category = Some(HelpKind::from_stored(content.kind.as_deref()?));
                view.needed_by = content.needed_by;
                view.urgent = content.urgent;
                view.window_start = content.window_start;
                view.horizon = content.horizon.as_deref().and_then(Horizon::from_stored);
                view.helpers = content.helpers;
                view.when = content.when.clone();
                let status: String = hydrate_prop(doc, obj, STATUS).ok()?;
                let updated_at: i64 = hydrate_prop(doc, obj, UPDATED_AT).ok()?;
                let keyring = self.keyring.as_deref()?;
                let id = view.id.clone();
                let opener = Opener {
                    keyring,
                    keys,
                    item: &id,
                };
                self.fill_open_parts(
                    doc,
                    view,
                    obj,
                    &status,
                    updated_at,
                    &content.slots,
                    Some(&opener),
                )?;
            }
        }
        Some(())
    }

    /// Status, claims, slots and thanks: the parts of a request or offer kept in the open.
    #[allow(clippy::too_many_arguments)]
    fn fill_open_parts(
        &self,
        doc: &AutoCommit,
        view: &mut ItemView,
        obj: &ObjId,
        status: &str,
        updated_at: i64,
        slot_times: &BTreeMap<String, i64>,
        opener: Option<&Opener<'_>>,
    ) -> Option<()> {
        let stored = match status {
            STATUS_OPEN => RequestStatus::Open,
            STATUS_FULFILLED if view.kind == ItemKind::Request => RequestStatus::Fulfilled,
            STATUS_CANCELLED if view.kind == ItemKind::Request => RequestStatus::Cancelled,
            STATUS_WITHDRAWN if view.kind == ItemKind::Offer => RequestStatus::Withdrawn,
            // A status this version does not know: its rules cannot be applied.
            _ => return None,
        };
        let spots = match view.kind {
            ItemKind::Request => view.helpers.map(|n| n as usize),
            _ => None,
        };
        view.claims = read_claims(doc, obj, None, spots, opener, &|a| self.is_removed_actor(a));
        if let Some(slots) = child_map(doc, obj, SLOTS) {
            for (slot, at) in slot_times {
                let Some(slot_obj) = child_map(doc, &slots, slot) else {
                    continue;
                };
                view.slots.push(SlotView {
                    id: slot.clone(),
                    at: *at,
                    claims: read_claims(doc, &slot_obj, Some(slot), Some(1), opener, &|a| {
                        self.is_removed_actor(a)
                    }),
                });
            }
            view.slots.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
        }
        view.thanks = read_thanks(doc, obj, opener);
        let claimed = view.all_claims().any(|c| !c.standby);
        view.status = Some(match stored {
            RequestStatus::Open if claimed && view.kind == ItemKind::Request => {
                RequestStatus::Claimed
            }
            s => s,
        });
        view.updated_at = view.all_claims().map(|c| c.at).fold(updated_at, i64::max);
        Some(())
    }

    fn read_reply(&self, doc: &AutoCommit, id: &str, obj: &ObjId) -> Option<Reply> {
        let author = self.creator(obj)?.to_string();
        // In the open first, as for items.
        let plain = ReplyDoc::hydrate_map(doc, obj).ok();
        if plain.is_none() && matches!(doc.get(obj, SEALED), Ok(Some(_))) {
            let reply = SealedReplyDoc::hydrate_map(doc, obj).ok()?;
            let opener = Opener {
                keyring: self.keyring.as_deref()?,
                keys: self.keys.get(&reply.item)?,
                item: &reply.item,
            };
            let text = opener.open_text(&private::reply_part(id), &reply.sealed)?;
            return Some(Reply {
                item: reply.item,
                sealed: true,
                view: ReplyView {
                    id: id.to_string(),
                    author,
                    text,
                    created_at: reply.created_at,
                },
            });
        }
        let reply = plain?;
        // A reply in the open on a private item would show its readers words that others
        // can read too: only sealed replies count there.
        if self.keys.contains_key(&reply.item) {
            return None;
        }
        Some(Reply {
            item: reply.item,
            sealed: false,
            view: ReplyView {
                id: id.to_string(),
                author,
                text: reply.text,
                created_at: reply.created_at,
            },
        })
    }
}

/// An item with nothing read yet.
fn blank_view(id: &str, kind: ItemKind, author: &str) -> ItemView {
    ItemView {
        id: id.to_string(),
        kind,
        author: author.to_string(),
        created_at: 0,
        updated_at: 0,
        mood: None,
        note: None,
        title: None,
        details: None,
        category: None,
        needed_by: None,
        urgent: false,
        status: None,
        claims: Vec::new(),
        replies: Vec::new(),
        help: None,
        window_start: None,
        horizon: None,
        helpers: None,
        slots: Vec::new(),
        thanks: Vec::new(),
        when: None,
        target: None,
        audience: None,
    }
}

/// Opens the sealed parts of one private item.
struct Opener<'a> {
    keyring: &'a dyn Keyring,
    keys: &'a ItemKeys,
    item: &'a str,
}

impl Opener<'_> {
    /// Opens a part with the key of the generation it names.
    fn open_text(&self, part: &str, sealed: &[u8]) -> Option<String> {
        let key = self.keys.get(self.keyring.part_generation(sealed)?)?;
        let plain = self.keyring.open_part(key, self.item, part, sealed)?;
        String::from_utf8(plain.to_vec()).ok()
    }
}

/// Slot id -> time of a public request's slots.
fn read_slot_times(doc: &AutoCommit, request: &ObjId) -> BTreeMap<String, i64> {
    let Some(slots) = child_map(doc, request, SLOTS) else {
        return BTreeMap::new();
    };
    doc.map_range(&slots, ..)
        .filter_map(|e| {
            let at: Option<i64> = hydrate_prop(doc, e.id(), "d").ok()?;
            Some((e.key.to_string(), at?))
        })
        .collect()
}

/// The asker's thanks: member id -> note, as written by the item's author.
fn read_thanks(doc: &AutoCommit, item: &ObjId, opener: Option<&Opener<'_>>) -> Vec<ThanksView> {
    let Some(thanks) = child_map(doc, item, THANKS) else {
        return Vec::new();
    };
    let Some(author) = creator_actor(item) else {
        return Vec::new();
    };
    if creator_actor(&thanks) != Some(author) {
        return Vec::new();
    }
    doc.map_range(&thanks, ..)
        .filter(|e| actor_for_member(&e.key).is_ok())
        .filter_map(|e| {
            let note = match (&e.value, opener) {
                (ValueRef::Scalar(automerge::ScalarValueRef::Str(s)), None) => s.to_string(),
                (ValueRef::Scalar(automerge::ScalarValueRef::Bytes(b)), Some(opener)) => {
                    opener.open_text(&private::thanks_part(&e.key), b)?
                }
                (ValueRef::Scalar(automerge::ScalarValueRef::Str(s)), Some(_)) if s.is_empty() => {
                    String::new()
                }
                _ => return None,
            };
            Some(ThanksView {
                member: e.key.to_string(),
                note: (!note.is_empty()).then_some(note),
            })
        })
        .collect()
}

/// The roster, oldest member first: the current members, then those a steward removed.
/// Entries with an invalid id or unreadable fields are left out, and so are entries a
/// removed member made after their cutoff.
fn read_members(doc: &AutoCommit) -> (Vec<MemberView>, Vec<MemberView>) {
    let Some(members) = child_map(doc, &automerge::ROOT, MEMBERS) else {
        return (Vec::new(), Vec::new());
    };
    let mut all: Vec<(MemberView, ObjId)> = doc
        .map_range(&members, ..)
        .filter(|e| actor_for_member(&e.key).is_ok())
        .filter_map(|e| {
            let obj = e.id();
            let m = MemberDoc::hydrate_map(doc, &obj).ok()?;
            let owner = actor_for_member(&e.key).ok()?;
            // The invite counts only as written with the entry, by the entry's creator.
            let entry_creator = creator_actor(&obj)?;
            let invited_via = m.invited_via.and_then(|via| {
                let (_, op) = doc.get(&obj, INVITED_VIA).ok()??;
                (creator_actor(&op)? == entry_creator).then_some(via)
            });
            let handed = match doc.get(&obj, HANDED) {
                Ok(Some((Value::Scalar(s), _))) => s.as_str().map(parse_epoch_list),
                _ => None,
            };
            let removed = read_removal(doc, &obj);
            let view = MemberView {
                id: e.key.to_string(),
                name: m.name,
                role: Role::from_stored(&m.role),
                joined_at: m.joined_at,
                addresses: read_addresses(doc, &obj, &owner),
                quiet: read_own_text(doc, &obj, &owner, QUIET),
                invited_via,
                handed,
                removed,
            };
            Some((view, obj))
        })
        .collect();
    // An entry made by a removed member after their cutoff does not count.
    let cutoffs: HashMap<Vec<u8>, u64> = all
        .iter()
        .filter_map(|(m, _)| {
            let removal = m.removed?;
            Some((actor_for_member(&m.id).ok()?.to_vec(), removal.cutoff))
        })
        .collect();
    // An entry made by a removed member after their cutoff does not count, nor one made
    // by such a member, and so on: nobody comes back in two steps.
    let mut void_actors: HashSet<Vec<u8>> = HashSet::new();
    loop {
        let before = all.len();
        all.retain(|(m, obj)| {
            let counts = match obj {
                ObjId::Id(counter, actor, _) => {
                    let actor = actor.to_bytes();
                    cutoffs.get(actor).is_none_or(|cut| counter <= cut)
                        && !void_actors.contains(actor)
                }
                ObjId::Root => false,
            };
            if !counts && let Ok(actor) = actor_for_member(&m.id) {
                void_actors.insert(actor.to_vec());
            }
            counts
        });
        if all.len() == before {
            break;
        }
    }
    let (mut former, mut current): (Vec<MemberView>, Vec<MemberView>) = all
        .into_iter()
        .map(|(m, _)| m)
        .partition(|m| m.removed.is_some());
    current.sort_by(|a, b| (a.joined_at, &a.id).cmp(&(b.joined_at, &b.id)));
    former.sort_by(|a, b| (a.joined_at, &a.id).cmp(&(b.joined_at, &b.id)));
    (current, former)
}

/// A roster entry's removal marker, if a steward wrote one.
fn read_removal(doc: &AutoCommit, entry: &ObjId) -> Option<Removal> {
    let at = match doc.get(entry, REMOVED) {
        Ok(Some((Value::Scalar(s), _))) => scalar_i64(&s)?,
        _ => return None,
    };
    let cutoff = match doc.get(entry, CUTOFF) {
        Ok(Some((Value::Scalar(s), _))) => scalar_i64(&s).and_then(|c| u64::try_from(c).ok()),
        _ => None,
    };
    Some(Removal {
        at,
        cutoff: cutoff.unwrap_or(0),
    })
}

fn scalar_i64(value: &automerge::ScalarValue) -> Option<i64> {
    match value {
        automerge::ScalarValue::Int(i) => Some(*i),
        automerge::ScalarValue::Uint(u) => i64::try_from(*u).ok(),
        _ => None,
    }
}

/// Parses "0,17,42": the epochs an admitter handed over. Anything unreadable is skipped.
pub(crate) fn parse_epoch_list(text: &str) -> Vec<u32> {
    text.split(',')
        .filter_map(|e| e.parse::<u32>().ok())
        .take(crate::MAX_EPOCHS)
        .collect()
}

/// The addresses on a roster entry, as written by its owner (whose actor is `owner`):
/// values anyone else wrote are ignored, and lines that are not valid addresses are
/// dropped.
fn read_addresses(doc: &AutoCommit, entry: &ObjId, owner: &[u8; 16]) -> Vec<String> {
    let own = doc
        .get_all(entry, ADDRESSES)
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, op)| creator_actor(op) == Some(owner.as_slice()))
        .filter_map(|(v, _)| match v {
            Value::Scalar(s) => s.as_str().map(str::to_string),
            _ => None,
        })
        .next_back();
    own.map(|joined| parse_addresses(&joined))
        .unwrap_or_default()
}

/// A text field of a roster entry as its owner wrote it; anyone else's value is ignored.
fn read_own_text(doc: &AutoCommit, entry: &ObjId, owner: &[u8; 16], key: &str) -> Option<String> {
    doc.get_all(entry, key)
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, op)| creator_actor(op) == Some(owner.as_slice()))
        .filter_map(|(v, _)| match v {
            Value::Scalar(s) => s.as_str().map(str::to_string),
            _ => None,
        })
        .next_back()
}

/// Splits a stored address list, keeping only lines that are valid addresses.
pub(crate) fn parse_addresses(joined: &str) -> Vec<String> {
    joined
        .split('\n')
        .filter(|a| {
            !a.is_empty()
                && a.len() <= crate::MAX_ADDRESS_CHARS
                && a.bytes().all(|b| b.is_ascii_graphic())
        })
        .take(crate::MAX_ADDRESSES)
        .map(str::to_string)
        .collect()
}

/// The claims in the claims map of `holder` (a request, an offer or a slot), in the order
/// they were made. A claim counts only if the member its key names created it: nobody can
/// offer help in someone else's name.
///
/// With `spots`, the claims after the first `spots` are on standby. "First" is the order
/// of the claims' automerge op ids (Lamport counter, then actor): a claim made after its
/// maker saw another always comes after it, and claims made apart are ordered the same way
/// by every member, whatever arrived first. Self-reported times play no part.
fn read_claims(
    doc: &AutoCommit,
    holder: &ObjId,
    slot: Option<&str>,
    spots: Option<usize>,
    opener: Option<&Opener<'_>>,
    removed: &dyn Fn(&ActorId) -> bool,
) -> Vec<ClaimView> {
    let Some(claims) = child_map(doc, holder, CLAIMS) else {
        return Vec::new();
    };
    let mut out: Vec<((u64, Vec<u8>), ClaimView)> = doc
        .map_range(&claims, ..)
        .filter(|e| matches!(e.value, ValueRef::Object(ObjType::Map)))
        .filter_map(|e| {
            let owner = actor_for_member(&e.key).ok()?;
            let id = e.id();
            let ObjId::Id(counter, actor, _) = &id else {
                return None;
            };
            // A removed member's claims no longer hold a spot: they are out of the circle.
            if actor.to_bytes() != owner.as_slice() || removed(actor) {
                return None;
            }
            let claim = ClaimDoc::hydrate_map(doc, &id).ok()?;
            let message = match opener {
                None => claim.message,
                Some(opener) => claim.sealed_message.and_then(|sealed| {
                    opener.open_text(&private::claim_part(slot, &e.key), &sealed)
                }),
            };
            Some((
                (*counter, owner.to_vec()),
                ClaimView {
                    member: e.key.to_string(),
                    at: claim.at,
                    message,
                    standby: false,
                },
            ))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.into_iter()
        .enumerate()
        .map(|(place, (_, mut claim))| {
            claim.standby = spots.is_some_and(|spots| place >= spots);
            claim
        })
        .collect()
}

/// Adds `replies` (oldest first) and moves `updated_at` to the latest of them.
fn attach_replies(item: &mut ItemView, mut replies: Vec<ReplyView>) {
    replies.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    item.updated_at = replies
        .iter()
        .map(|r| r.created_at)
        .fold(item.updated_at, i64::max);
    item.replies = replies;
}
