//! The circle as read: roster, items and replies, hydrated from the document with
//! autosurgeon and kept up to date one key at a time.
//!
//! Reading an item costs a few document lookups (tens of microseconds each at 10,000
//! items), so the whole feed is read once (on load) and then only the keys that an edit
//! or a received batch touched are read again. Automerge's patches name those keys.

use std::collections::{BTreeMap, HashMap};

use automerge::{
    ActorId, AutoCommit, ObjId, ObjType, Patch, PatchAction, Prop, ReadDoc, Value, ValueRef,
};
use autosurgeon::{Hydrate, hydrate_prop};

use crate::schema::{
    ADDRESSES, CHECKINS, CLAIMS, CheckinDoc, ClaimDoc, INVITED_VIA, INVITES, InviteDoc, MEMBERS,
    MemberDoc, NAME, REPLIES, REQUESTS, REVOKED, ReplyDoc, RequestDoc, STATUS_CANCELLED,
    STATUS_FULFILLED, STATUS_OPEN,
};
use crate::types::in_alphabet;
use crate::{
    ClaimView, HelpKind, InviteView, ItemKind, ItemView, MemberView, Mood, ReplyView,
    RequestStatus, Role, actor_for_member, invite_id_bytes,
};

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
    view: ReplyView,
}

#[derive(Debug, Default)]
pub(crate) struct Feed {
    name: String,
    members: Vec<MemberView>,
    /// Member ids by actor: names the member whose change created an object.
    by_actor: HashMap<ActorId, String>,
    /// Readable check-ins and requests by id, without their replies.
    items: BTreeMap<String, ItemView>,
    /// Readable replies by reply id.
    replies: HashMap<String, Reply>,
    /// Invites that count (created by a steward), by id, with `used` left at 0: it is
    /// counted from the roster when asked for.
    invites: BTreeMap<String, InviteView>,
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
fn creator_actor(id: &ObjId) -> Option<&[u8]> {
    match id {
        ObjId::Id(_, actor, _) => Some(actor.to_bytes()),
        ObjId::Root => None,
    }
}

impl Feed {
    /// Reads everything.
    pub(crate) fn read(doc: &AutoCommit) -> Feed {
        let mut feed = Feed {
            name: hydrate_prop::<_, String, _, _>(doc, automerge::ROOT, NAME).unwrap_or_default(),
            members: read_members(doc),
            ..Feed::default()
        };
        feed.by_actor = feed
            .members
            .iter()
            .filter_map(|m| Some((ActorId::from(actor_for_member(&m.id).ok()?), m.id.clone())))
            .collect();
        for (kind, key) in [(ItemKind::CheckIn, CHECKINS), (ItemKind::Request, REQUESTS)] {
            let Some(map) = child_map(doc, &automerge::ROOT, key) else {
                continue;
            };
            for entry in doc.map_range(&map, ..) {
                let ValueRef::Object(ObjType::Map) = entry.value else {
                    continue;
                };
                let id = entry.key.as_ref();
                // A check-in and a request under one id: the check-in wins, as in `read_key`.
                if !is_item_key(id) || feed.items.contains_key(id) {
                    continue;
                }
                if let Some(item) = feed.read_item(doc, kind, id, &entry.id()) {
                    feed.items.insert(item.id.clone(), item);
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

    /// Reads again what `touched` names.
    pub(crate) fn refresh(&mut self, doc: &AutoCommit, touched: Touched) {
        let keys = match touched {
            Touched::All => {
                *self = Feed::read(doc);
                return;
            }
            Touched::Keys(keys) => keys,
        };
        for (container, key) in keys {
            if container == MEMBERS {
                let members = read_members(doc);
                let ids = |ms: &[MemberView]| ms.iter().map(|m| m.id.clone()).collect::<Vec<_>>();
                let mut old = ids(&self.members);
                let mut new = ids(&members);
                old.sort();
                new.sort();
                if old != new {
                    // Someone's entry became readable or unreadable: authorship changed.
                    *self = Feed::read(doc);
                    return;
                }
                self.members = members;
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
                if let Some(item) = self.read_key(doc, &key) {
                    self.items.insert(key, item);
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
        let used = self
            .members
            .iter()
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
        Some(InviteView {
            id: id.to_string(),
            creator,
            verifier: *invite.verifier,
            expires_at: invite.expires_at,
            uses: invite.uses,
            used: 0,
            revoked,
            created_at: invite.created_at,
        })
    }

    /// The check-in or request `id`, without replies.
    pub(crate) fn get(&self, id: &str) -> Option<&ItemView> {
        self.items.get(id)
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
            .filter(|r| r.item == item.id)
            .map(|r| r.view.clone())
            .collect();
        attach_replies(&mut item, replies);
        item
    }

    /// Items newest first (ties by id), with their replies.
    /// How many items [`Feed::items`] would return, without copying them.
    pub(crate) fn item_count(&self) -> usize {
        self.items.len()
    }

    pub(crate) fn items(&self) -> Vec<ItemView> {
        let mut replies: HashMap<&str, Vec<ReplyView>> = HashMap::new();
        for r in self.replies.values() {
            replies
                .entry(r.item.as_str())
                .or_default()
                .push(r.view.clone());
        }
        let mut items: Vec<ItemView> = self
            .items
            .values()
            .map(|item| {
                let mut item = item.clone();
                let own = replies.remove(item.id.as_str()).unwrap_or_default();
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

    /// The member whose actor created the object `id`, if that actor is in the roster.
    fn creator(&self, id: &ObjId) -> Option<&str> {
        match id {
            ObjId::Id(_, actor, _) => self.by_actor.get(actor).map(String::as_str),
            ObjId::Root => None,
        }
    }

    /// The item under `id` in either map; a check-in wins over a request with the same id.
    fn read_key(&self, doc: &AutoCommit, id: &str) -> Option<ItemView> {
        if !is_item_key(id) {
            return None;
        }
        [(ItemKind::CheckIn, CHECKINS), (ItemKind::Request, REQUESTS)]
            .into_iter()
            .find_map(|(kind, key)| {
                let obj = child_map(doc, &child_map(doc, &automerge::ROOT, key)?, id)?;
                self.read_item(doc, kind, id, &obj)
            })
    }

    /// Reads one item. `None` if its author is not in the roster or a field is unreadable:
    /// a damaged or hostile entry is skipped, never fatal.
    fn read_item(
        &self,
        doc: &AutoCommit,
        kind: ItemKind,
        id: &str,
        obj: &ObjId,
    ) -> Option<ItemView> {
        let author = self.creator(obj)?.to_string();
        let mut view = ItemView {
            id: id.to_string(),
            kind,
            author,
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
        };
        match kind {
            ItemKind::CheckIn => {
                let c = CheckinDoc::hydrate_map(doc, obj).ok()?;
                view.mood = Some(Mood::from_value(c.mood)?);
                view.note = c.note;
                view.created_at = c.created_at;
                view.updated_at = c.created_at;
            }
            ItemKind::Request => {
                let r = RequestDoc::hydrate_map(doc, obj).ok()?;
                let stored = match r.status.as_str() {
                    STATUS_OPEN => RequestStatus::Open,
                    STATUS_FULFILLED => RequestStatus::Fulfilled,
                    STATUS_CANCELLED => RequestStatus::Cancelled,
                    // A status this version does not know: its rules cannot be applied.
                    _ => return None,
                };
                view.claims = read_claims(doc, obj);
                view.status = Some(match stored {
                    RequestStatus::Open if !view.claims.is_empty() => RequestStatus::Claimed,
                    s => s,
                });
                view.updated_at = view
                    .claims
                    .iter()
                    .map(|c| c.at)
                    .fold(r.updated_at, i64::max);
                view.created_at = r.created_at;
                view.title = Some(r.title);
                view.details = r.details;
                view.category = Some(HelpKind::from_stored(&r.kind));
                view.needed_by = r.needed_by;
                view.urgent = r.urgent;
            }
        }
        Some(view)
    }

    fn read_reply(&self, doc: &AutoCommit, id: &str, obj: &ObjId) -> Option<Reply> {
        let author = self.creator(obj)?.to_string();
        let reply = ReplyDoc::hydrate_map(doc, obj).ok()?;
        Some(Reply {
            item: reply.item,
            view: ReplyView {
                id: id.to_string(),
                author,
                text: reply.text,
                created_at: reply.created_at,
            },
        })
    }
}

/// The roster, oldest member first. Entries with an invalid id or unreadable fields are
/// left out.
fn read_members(doc: &AutoCommit) -> Vec<MemberView> {
    let Some(members) = child_map(doc, &automerge::ROOT, MEMBERS) else {
        return Vec::new();
    };
    let mut out: Vec<MemberView> = doc
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
            Some(MemberView {
                id: e.key.to_string(),
                name: m.name,
                role: Role::from_stored(&m.role),
                joined_at: m.joined_at,
                addresses: read_addresses(doc, &obj, &owner),
                invited_via,
            })
        })
        .collect();
    out.sort_by(|a, b| (a.joined_at, &a.id).cmp(&(b.joined_at, &b.id)));
    out
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

/// The claims on a request, oldest first. A claim counts only if the member its key names
/// created it: nobody can offer help in someone else's name.
fn read_claims(doc: &AutoCommit, request: &ObjId) -> Vec<ClaimView> {
    let Some(claims) = child_map(doc, request, CLAIMS) else {
        return Vec::new();
    };
    let mut out: Vec<ClaimView> = doc
        .map_range(&claims, ..)
        .filter(|e| matches!(e.value, ValueRef::Object(ObjType::Map)))
        .filter_map(|e| {
            let owner = actor_for_member(&e.key).ok()?;
            let id = e.id();
            if creator_actor(&id)? != owner.as_slice() {
                return None;
            }
            let claim = ClaimDoc::hydrate_map(doc, &id).ok()?;
            Some(ClaimView {
                member: e.key.to_string(),
                at: claim.at,
            })
        })
        .collect();
    out.sort_by(|a, b| (a.at, &a.member).cmp(&(b.at, &b.member)));
    out
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
