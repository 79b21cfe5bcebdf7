//! Checking received changes against the rules before they are kept.
//!
//! Every member's daemon runs every change it receives through [`Checker::check`]: each
//! operation is placed in the document's schema by the object it writes to (the check-ins
//! map, request `x`, the claims of request `x`, member `m`'s roster entry, ...) and allowed
//! only if [`rules::authorize`] allows its writer to make that write. The writer is the
//! member whose actor made the change; the daemon has already bound that actor to the
//! envelope's signer ([`crate::Circle::apply_signed`]).
//!
//! What a change may do must not depend on what else a member happens to have received, or
//! members would disagree. Most checks are structural (an object's place in the schema and
//! the actor that created it never change). The few that need state (is the writer a
//! steward, is the invite of an admission valid) read the document as it was at the
//! change's own dependencies, which every member sees alike.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

use automerge::{ActorId, AutoCommit, Change, ChangeHash, ObjId, ObjType, Prop, ReadDoc, Value};

use crate::membership::{ProposalAction, is_proposal_id, parse_epoch_id};
use crate::rules::{self, Write};
use crate::schema::{
    ADDRESSES, APPROVALS, CHECKINS, CLAIMS, COMMITMENT, CREATED_AT, CUTOFF, DONE, EPOCH_REMOVALS,
    EPOCHS, GENERATION, HANDED, INVITED_VIA, INVITES, MEMBERS, NAME, NUDGES, OFFERS, POLICY,
    PROPOSALS, QUIET, REMOVED, RENEWALS, REPLIES, REQUESTS, REVOKED, ROLE, SLOTS, THANKS, WRAPS,
};
use crate::types::in_alphabet;
use crate::{CoreError, ItemKind, Role, actor_for_member, invite_id_bytes};
use crate::{MAX_APPROVALS, WRAPPED_LEN};

/// Keys of an invite map (`docs/document.md`).
const INVITE_EXPIRES: &str = "x";
const INVITE_USES: &str = "u";
/// Key of a roster entry's join time.
const JOINED_AT: &str = "j";

/// Where an object sits in the schema.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Place {
    Root,
    Roster,
    Checkins,
    Requests,
    Replies,
    Invites,
    Offers,
    Nudges,
    /// Member `m`'s roster entry.
    Entry(String),
    /// A check-in, request, offer or nudge, created by `author` (an actor).
    Item {
        author: ActorId,
        kind: ItemKind,
    },
    /// A request's slots map, its slots and its thanks map: the request's author's.
    Slots {
        author: ActorId,
    },
    Slot {
        author: ActorId,
    },
    Thanks {
        author: ActorId,
    },
    /// A private item's key renewals, written by its author.
    Renewals {
        author: ActorId,
    },
    /// The claims map of a request, offer or slot.
    Claims,
    /// The claim keyed by member `owner`.
    Claim(String),
    /// A reply created by `author`.
    Reply {
        author: ActorId,
    },
    /// An invite created by `creator`.
    Invite {
        creator: ActorId,
    },
    /// The key epochs, one epoch (made by `creator`), and its wrapped keys.
    Epochs,
    Epoch {
        creator: ActorId,
    },
    Wraps,
    /// Roster changes waiting for approvals, one of them, and the approvals of a
    /// proposal or an invite (keyed by steward).
    Proposals,
    Proposal {
        creator: ActorId,
    },
    Approvals,
    /// Anywhere the schema has nothing.
    Outside,
}

/// The place of a new map written at `key` inside `parent` by `actor`.
fn child_place(parent: &Place, key: &str, actor: &ActorId) -> Place {
    match parent {
        Place::Root => match key {
            MEMBERS => Place::Roster,
            CHECKINS => Place::Checkins,
            REQUESTS => Place::Requests,
            REPLIES => Place::Replies,
            INVITES => Place::Invites,
            OFFERS => Place::Offers,
            NUDGES => Place::Nudges,
            EPOCHS => Place::Epochs,
            PROPOSALS => Place::Proposals,
            _ => Place::Outside,
        },
        Place::Epochs => Place::Epoch {
            creator: actor.clone(),
        },
        Place::Epoch { .. } if key == WRAPS => Place::Wraps,
        Place::Proposals => Place::Proposal {
            creator: actor.clone(),
        },
        Place::Proposal { .. } | Place::Invite { .. } if key == APPROVALS => Place::Approvals,
        Place::Roster => Place::Entry(key.to_string()),
        Place::Checkins | Place::Requests | Place::Offers | Place::Nudges => Place::Item {
            author: actor.clone(),
            kind: match parent {
                Place::Checkins => ItemKind::CheckIn,
                Place::Requests => ItemKind::Request,
                Place::Offers => ItemKind::Offer,
                _ => ItemKind::Nudge,
            },
        },
        Place::Item {
            kind: ItemKind::Request | ItemKind::Offer,
            ..
        } if key == CLAIMS => Place::Claims,
        Place::Item {
            kind: ItemKind::Request,
            author,
        } if key == SLOTS => Place::Slots {
            author: author.clone(),
        },
        Place::Item {
            kind: ItemKind::Request,
            author,
        } if key == THANKS => Place::Thanks {
            author: author.clone(),
        },
        Place::Item { author, .. } if key == RENEWALS => Place::Renewals {
            author: author.clone(),
        },
        Place::Slots { author } => Place::Slot {
            author: author.clone(),
        },
        Place::Slot { .. } if key == CLAIMS => Place::Claims,
        Place::Claims => Place::Claim(key.to_string()),
        Place::Replies => Place::Reply {
            author: actor.clone(),
        },
        Place::Invites => Place::Invite {
            creator: actor.clone(),
        },
        _ => Place::Outside,
    }
}

fn is_item_container(place: &Place) -> bool {
    matches!(
        place,
        Place::Checkins | Place::Requests | Place::Replies | Place::Offers | Place::Nudges
    )
}

fn is_item_key(key: &str) -> bool {
    key.len() == 10 && key.chars().all(in_alphabet)
}

fn refused(why: impl Into<String>) -> CoreError {
    CoreError::Document(why.into())
}

/// Checks changes against a document that already holds them (a copy with the batch
/// applied), so that objects created anywhere in the batch can be placed.
pub(crate) struct Checker<'a> {
    doc: &'a AutoCommit,
    /// Whether a change without dependencies may still found the circle: only while the
    /// document had no roster before this batch, and only once.
    genesis_allowed: bool,
    /// The circle's id, when the caller knows it: a genesis counts only if the id is the
    /// first 16 bytes of its hash (so nobody can hand a newcomer a competing genesis).
    bound_to: Option<[u8; 16]>,
    /// Roster keys by actor, from the document with the batch applied.
    members_by_actor: HashMap<ActorId, String>,
    places: HashMap<(u64, ActorId), Place>,
    /// Removals whose cutoff is checked once every change is read (it needs the change
    /// history, which [`verify_cutoffs`] reads).
    pub(crate) cutoffs_to_verify: Vec<CutoffCheck>,
}

/// A removal's cutoff, to be checked against the removed member's history.
pub(crate) struct CutoffCheck {
    pub change: ChangeHash,
    heads: Vec<ChangeHash>,
    member: String,
    cutoff: u64,
}

/// Checks each removal's cutoff: it must be the highest op counter of the removed
/// member's changes as of the removal's own history, which every member computes alike.
/// Returns the removals whose cutoff is wrong.
pub(crate) fn verify_cutoffs(doc: &mut AutoCommit, checks: Vec<CutoffCheck>) -> Vec<ChangeHash> {
    let mut wrong = Vec::new();
    for check in checks {
        let Ok(actor) = actor_for_member(&check.member) else {
            wrong.push(check.change);
            continue;
        };
        let actor = ActorId::from(actor);
        let later: std::collections::HashSet<ChangeHash> = doc
            .get_changes(&check.heads)
            .iter()
            .map(Change::hash)
            .collect();
        let expected = doc
            .get_changes_meta(&[])
            .iter()
            .filter(|c| *c.actor == actor && !later.contains(&c.hash))
            .map(|c| c.max_op)
            .max()
            .unwrap_or(0);
        if expected != check.cutoff {
            wrong.push(check.change);
        }
    }
    wrong
}

impl<'a> Checker<'a> {
    pub(crate) fn new(
        doc: &'a AutoCommit,
        genesis_allowed: bool,
        bound_to: Option<[u8; 16]>,
    ) -> Checker<'a> {
        let mut members_by_actor = HashMap::new();
        if let Some(roster) = map_at(doc, &automerge::ROOT, MEMBERS, None) {
            for entry in doc.map_range(&roster, ..) {
                if let Ok(actor) = actor_for_member(&entry.key) {
                    members_by_actor.insert(ActorId::from(actor), entry.key.to_string());
                }
            }
        }
        Checker {
            doc,
            genesis_allowed,
            bound_to,
            cutoffs_to_verify: Vec::new(),
            members_by_actor,
            places: HashMap::new(),
        }
    }

    /// The member id of `actor`, or the actor in hex when the roster has none.
    pub(crate) fn writer_name(&self, actor: &ActorId) -> String {
        self.members_by_actor
            .get(actor)
            .cloned()
            .unwrap_or_else(|| actor.to_hex_string())
    }

    /// Whether every operation of `change` is one its writer may make.
    pub(crate) fn check(&mut self, change: &Change) -> Result<(), CoreError> {
        // Decoding asserts on some malformed input instead of failing.
        let expanded = catch_unwind(AssertUnwindSafe(|| change.decode()))
            .map_err(|_| refused("the change's operations do not decode"))?;
        let actor = change.actor_id().clone();
        let heads = change.deps().to_vec();
        let writer = self.members_by_actor.get(&actor).cloned();
        let genesis = heads.is_empty();
        if genesis && !self.genesis_allowed {
            return Err(refused(
                "a change without history after the circle was founded",
            ));
        }
        if genesis
            && let Some(id) = self.bound_to
            && change.hash().0.get(..16) != Some(id.as_slice())
        {
            return Err(refused("a first change that did not found this circle"));
        }
        let Some(writer) = writer else {
            return Err(CoreError::NotMember(actor.to_hex_string()));
        };
        // A writer's first change must come after its admission; every later change of
        // theirs depends on the first, so this one check (as of the change's own history,
        // the same for every member) covers them all.
        // The same check on every change refuses a removed member's changes made after
        // they saw their removal (their role as of the change's history is gone).
        if !genesis && self.role_at(&writer, &heads).is_none() {
            if self.removed_at(&writer, &heads) {
                return Err(CoreError::Removed(writer));
            }
            return Err(CoreError::NotMember(writer));
        }
        let mut change_state = ChangeState::default();
        let start = change.start_op().get();
        for (index, op) in expanded.operations.iter().enumerate() {
            let automerge::legacy::Key::Map(key) = &op.key else {
                return Err(refused("the change writes to a list; the circle has none"));
            };
            if op.insert {
                return Err(refused(
                    "the change inserts into a list; the circle has none",
                ));
            }
            let key = key.as_str();
            let (parent, fresh_parent) = self.place_of(&op.obj, &actor, start)?;
            let pred_actors: Vec<&ActorId> = op.pred.iter().map(|p| p.actor()).collect();
            match &op.action {
                automerge::legacy::OpType::Make(ObjType::Map) => {
                    let place = child_place(&parent, key, &actor);
                    self.may_make(&parent, &place, key, &writer, &heads, genesis, fresh_parent)?;
                    self.may_overwrite(&parent, key, &actor, &pred_actors, &writer)?;
                    if !pred_actors.is_empty() && !is_item_container(&parent) {
                        return Err(refused(format!(
                            "the change replaces the object at {key:?}, written once"
                        )));
                    }
                    match &place {
                        Place::Entry(member) => change_state.new_entries.push(member.clone()),
                        Place::Epoch { .. } => change_state.new_epochs += 1,
                        _ => {}
                    }
                    let counter = start.saturating_add(index as u64);
                    self.places.insert((counter, actor.clone()), place);
                }
                automerge::legacy::OpType::Make(_) => {
                    return Err(refused("the change makes an object the schema has not"));
                }
                automerge::legacy::OpType::Put(value) => {
                    if is_item_container(&parent) {
                        return Err(refused("the change puts a value where items are kept"));
                    }
                    self.may_write_field(&parent, fresh_parent, key, &actor, &writer, &heads)?;
                    self.may_overwrite(&parent, key, &actor, &pred_actors, &writer)?;
                    self.may_put_key_field(
                        &parent,
                        key,
                        value,
                        &pred_actors,
                        &writer,
                        &heads,
                        &mut change_state,
                    )?;
                    if let Place::Entry(member) = &parent {
                        change_state.entry_fields.push((
                            member.clone(),
                            key.to_string(),
                            value.clone(),
                        ));
                    }
                }
                automerge::legacy::OpType::Delete | automerge::legacy::OpType::Increment(_) => {
                    if matches!(
                        parent,
                        Place::Roster
                            | Place::Epochs
                            | Place::Epoch { .. }
                            | Place::Wraps
                            | Place::Proposals
                            | Place::Proposal { .. }
                            | Place::Approvals
                            | Place::Renewals { .. }
                    ) || (matches!(parent, Place::Entry(_))
                        && [REMOVED, CUTOFF, HANDED].contains(&key))
                        || (parent == Place::Root && key == POLICY)
                    {
                        return Err(refused(format!(
                            "the change deletes or counts {key:?}, which is written once"
                        )));
                    }
                    self.may_write_field(&parent, fresh_parent, key, &actor, &writer, &heads)?;
                    self.may_overwrite(&parent, key, &actor, &pred_actors, &writer)?;
                }
                automerge::legacy::OpType::MarkBegin(_) | automerge::legacy::OpType::MarkEnd(_) => {
                    return Err(refused("the change marks text; the circle has none"));
                }
            }
        }
        for member in &change_state.new_entries {
            self.may_add_entry(member, &writer, &heads, genesis, &change_state)?;
        }
        self.may_finish_removals(change, &heads, &change_state)?;
        for (member, cutoff) in change_state.cutoffs {
            self.cutoffs_to_verify.push(CutoffCheck {
                change: change.hash(),
                heads: heads.clone(),
                member,
                cutoff,
            });
        }
        if genesis {
            self.genesis_allowed = false;
        }
        Ok(())
    }

    /// The place of the object `obj`, and whether this change created it.
    fn place_of(
        &mut self,
        obj: &automerge::legacy::ObjectId,
        actor: &ActorId,
        start: u64,
    ) -> Result<(Place, bool), CoreError> {
        let automerge::legacy::ObjectId::Id(id) = obj else {
            return Ok((Place::Root, false));
        };
        let fresh = id.actor() == actor && id.counter() >= start;
        let key = (id.counter(), id.actor().clone());
        if let Some(place) = self.places.get(&key) {
            return Ok((place.clone(), fresh));
        }
        let place = self.locate(id.counter(), id.actor());
        self.places.insert(key, place.clone());
        Ok((place, fresh))
    }

    /// Finds an object the document holds by its path from the root.
    fn locate(&self, counter: u64, actor: &ActorId) -> Place {
        let Ok(obj) = self.doc.import_obj(&format!("{counter}@{actor}")) else {
            return Place::Outside;
        };
        let Ok(parents) = self.doc.parents(&obj) else {
            return Place::Outside;
        };
        let mut place = Place::Root;
        let path = parents.path();
        for (step, (_, prop)) in path.iter().enumerate() {
            let Prop::Map(key) = prop else {
                return Place::Outside;
            };
            // The object at this step was created by the actor in its id: the path's next
            // element's parent, or the object itself at the end.
            let creator = match path.get(step + 1) {
                Some((next_parent, _)) => actor_of(next_parent),
                None => Some(actor.clone()),
            };
            let Some(creator) = creator else {
                return Place::Outside;
            };
            place = child_place(&place, key, &creator);
        }
        place
    }

    /// May `writer` create the map `place` at `key` in `parent`?
    #[allow(clippy::too_many_arguments)]
    fn may_make(
        &self,
        parent: &Place,
        place: &Place,
        key: &str,
        writer: &str,
        heads: &[ChangeHash],
        genesis: bool,
        fresh_parent: bool,
    ) -> Result<(), CoreError> {
        match (parent, place) {
            (_, Place::Outside) => Err(refused(format!(
                "the change makes an object at {key:?}, outside the schema"
            ))),
            (Place::Root, _) if genesis => Ok(()),
            (Place::Root, _) => Err(refused(
                "only the circle's first change creates its containers",
            )),
            // Checked with the entry's fields once the whole change is read.
            (Place::Roster, Place::Entry(_)) => Ok(()),
            (
                Place::Checkins | Place::Requests | Place::Replies | Place::Offers | Place::Nudges,
                _,
            ) => {
                if !is_item_key(key) {
                    return Err(CoreError::InvalidId(key.to_string()));
                }
                for container in [CHECKINS, REQUESTS, REPLIES, OFFERS, NUDGES] {
                    if let Some(map) = map_at(self.doc, &automerge::ROOT, container, Some(heads))
                        && matches!(self.doc.get_at(&map, key, heads), Ok(Some(_)))
                    {
                        return Err(CoreError::IdInUse(key.to_string()));
                    }
                }
                Ok(())
            }
            (
                Place::Item { author, .. } | Place::Slots { author } | Place::Slot { author },
                Place::Claims
                | Place::Slots { .. }
                | Place::Slot { .. }
                | Place::Thanks { .. }
                | Place::Renewals { .. },
            ) => self.only_author(key, author, writer, false),
            (Place::Claims, Place::Claim(owner)) => rules::authorize(
                &Write::Claim { request: "", owner },
                writer,
                Some(Role::Member),
            ),
            (Place::Invites, Place::Invite { .. }) => {
                invite_id_bytes(key)?;
                rules::authorize(&Write::InviteCreate, writer, self.role_at(writer, heads))
            }
            (Place::Epochs, Place::Epoch { .. }) => {
                if parse_epoch_id(key).is_none() {
                    return Err(CoreError::InvalidId(key.to_string()));
                }
                if map_at(self.doc, &automerge::ROOT, EPOCHS, Some(heads))
                    .is_some_and(|map| matches!(self.doc.get_at(&map, key, heads), Ok(Some(_))))
                {
                    return Err(CoreError::IdInUse(key.to_string()));
                }
                // Any member may rotate; the writer's membership is checked for every change.
                Ok(())
            }
            (Place::Proposals, Place::Proposal { .. }) => {
                if !is_proposal_id(key) {
                    return Err(CoreError::InvalidId(key.to_string()));
                }
                if map_at(self.doc, &automerge::ROOT, PROPOSALS, Some(heads))
                    .is_some_and(|map| matches!(self.doc.get_at(&map, key, heads), Ok(Some(_))))
                {
                    return Err(CoreError::IdInUse(key.to_string()));
                }
                rules::authorize(&Write::Roster, writer, self.role_at(writer, heads))
            }
            // Made with their epoch, proposal or invite, never later (two stewards making
            // one at once would lose one of them).
            (Place::Epoch { .. }, Place::Wraps)
            | (Place::Proposal { .. } | Place::Invite { .. }, Place::Approvals)
                if fresh_parent =>
            {
                Ok(())
            }
            _ => Err(refused(format!(
                "the change makes an object at {key:?}, outside the schema"
            ))),
        }
    }

    /// May `writer` put or delete field `key` of an object at `parent`? `fresh`: the
    /// object was created by this same change.
    fn may_write_field(
        &self,
        parent: &Place,
        fresh: bool,
        key: &str,
        actor: &ActorId,
        writer: &str,
        heads: &[ChangeHash],
    ) -> Result<(), CoreError> {
        match parent {
            Place::Root if (key == NAME || key == crate::schema::NONCE) && heads.is_empty() => {
                Ok(())
            }
            Place::Root if key == NAME => {
                rules::authorize(&Write::Roster, writer, self.role_at(writer, heads))
            }
            // The approvals a new policy needs are checked once the change is read.
            Place::Root if key == POLICY => {
                rules::authorize(&Write::Roster, writer, self.role_at(writer, heads))
            }
            Place::Root => Err(refused(format!(
                "the change writes {key:?} at the top of the document"
            ))),
            Place::Roster => rules::authorize(&Write::Roster, writer, self.role_at(writer, heads)),
            Place::Claims => rules::authorize(
                &Write::Claim {
                    request: "",
                    owner: key,
                },
                writer,
                Some(Role::Member),
            ),
            Place::Checkins | Place::Requests | Place::Replies | Place::Offers | Place::Nudges => {
                // Deleting an item: `may_overwrite` holds it to the item's author.
                Ok(())
            }
            Place::Invites => Err(refused("only invites are written in the invites map")),
            Place::Entry(owner) if !fresh && self.removed_at(owner, heads) => Err(refused(
                "a removed member's roster entry is not written again",
            )),
            Place::Entry(_) if key == HANDED && !fresh => Err(refused(
                "the epochs handed to a member are written with their entry",
            )),
            // Checked (steward, written once, with a new epoch) in `may_put_key_field`.
            Place::Entry(_) if key == REMOVED || key == CUTOFF => Ok(()),
            Place::Entry(owner) => match key {
                ADDRESSES | QUIET => {
                    rules::authorize(&Write::Addresses { owner }, writer, Some(Role::Member))
                }
                ROLE if !fresh => {
                    rules::authorize(&Write::Role, writer, self.role_at(writer, heads))
                }
                _ if fresh => Ok(()),
                _ => rules::authorize(&Write::Roster, writer, self.role_at(writer, heads)),
            },
            Place::Item { author, .. }
            | Place::Slots { author }
            | Place::Slot { author }
            | Place::Thanks { author } => self.only_author(key, author, writer, false),
            Place::Renewals { author } => {
                if parse_epoch_id(key).is_none() {
                    return Err(refused("a key renewal is numbered from 1"));
                }
                self.only_author(key, author, writer, false)
            }
            Place::Claim(owner) => rules::authorize(
                &Write::Claim { request: "", owner },
                writer,
                Some(Role::Member),
            ),
            Place::Reply { author } => self.only_author(key, author, writer, true),
            Place::Invite { creator } => {
                if key == REVOKED {
                    let creator = self
                        .members_by_actor
                        .get(creator)
                        .map_or("", String::as_str);
                    rules::authorize(
                        &Write::InviteRevoke { id: key, creator },
                        writer,
                        self.role_at(writer, heads),
                    )
                } else if fresh && creator == actor {
                    Ok(())
                } else {
                    Err(refused(
                        "an invite's terms are written only when it is made",
                    ))
                }
            }
            Place::Epoch { creator } => {
                if fresh
                    && creator == actor
                    && [GENERATION, COMMITMENT, CREATED_AT, EPOCH_REMOVALS].contains(&key)
                {
                    Ok(())
                } else {
                    Err(refused("an epoch's terms are written only when it is made"))
                }
            }
            Place::Proposal { creator } => {
                if key == DONE {
                    rules::authorize(&Write::Roster, writer, self.role_at(writer, heads))
                } else if fresh && creator == actor && ["o", "a", "c"].contains(&key) {
                    Ok(())
                } else {
                    Err(refused(
                        "a proposal's terms are written only when it is made",
                    ))
                }
            }
            // Checked in `may_put_key_field`. Keys reach members who lack them in key
            // shares outside the document (`Payload::Keys`), never in a later change.
            Place::Wraps if fresh => Ok(()),
            Place::Wraps => Err(refused(
                "keys are wrapped in the change that makes their epoch",
            )),
            Place::Approvals => {
                if key != writer {
                    return Err(refused("a steward approves only in their own name"));
                }
                rules::authorize(&Write::Roster, writer, self.role_at(writer, heads))
            }
            Place::Epochs | Place::Proposals => Err(refused(format!(
                "the change puts {key:?} where epochs or proposals are kept"
            ))),
            Place::Outside => Err(refused(format!(
                "the change writes {key:?} outside the schema"
            ))),
        }
    }

    /// The parts of removal and rotation a put makes: a removal marker (by a steward,
    /// written once, not on their own entry), a wrapped key (81 bytes, written once, for
    /// a member not removed), a policy (a number of approvals).
    #[allow(clippy::too_many_arguments)]
    fn may_put_key_field(
        &self,
        parent: &Place,
        key: &str,
        value: &automerge::ScalarValue,
        preds: &[&ActorId],
        writer: &str,
        heads: &[ChangeHash],
        state: &mut ChangeState,
    ) -> Result<(), CoreError> {
        match parent {
            Place::Entry(member) if key == REMOVED || key == CUTOFF => {
                rules::authorize(&Write::Roster, writer, self.role_at(writer, heads))?;
                if !preds.is_empty() || self.removed_at(member, heads) {
                    return Err(refused("a removal is written once"));
                }
                if member == writer {
                    return Err(refused("a steward does not remove themself"));
                }
                if scalar_i64(value).is_none() {
                    return Err(refused("a removal's time and cutoff are numbers"));
                }
                if key == REMOVED {
                    state.removed.push(member.clone());
                } else {
                    let cutoff = scalar_i64(value)
                        .and_then(|c| u64::try_from(c).ok())
                        .ok_or_else(|| refused("a cutoff is a number"))?;
                    state.cutoffs.push((member.clone(), cutoff));
                }
                Ok(())
            }
            Place::Wraps => {
                actor_for_member(key)?;
                let automerge::ScalarValue::Bytes(bytes) = value else {
                    return Err(refused("a wrapped key is bytes"));
                };
                if bytes.len() != WRAPPED_LEN {
                    return Err(refused(format!("a wrapped key is {WRAPPED_LEN} bytes")));
                }
                if !preds.is_empty() {
                    return Err(refused("a wrapped key is written once"));
                }
                if self.removed_at(key, heads) {
                    return Err(refused("a key is never wrapped for a removed member"));
                }
                state.wrapped_for.push(key.to_string());
                Ok(())
            }
            Place::Entry(member) if key == ROLE && !state.new_entries.contains(member) => {
                let role = value.as_str().map_or(Role::Member, Role::from_stored);
                state.roles.push((member.clone(), role));
                Ok(())
            }
            Place::Root if key == POLICY => {
                let ok = scalar_i64(value)
                    .and_then(|k| u32::try_from(k).ok())
                    .is_some_and(|k| (1..=MAX_APPROVALS).contains(&k));
                if !ok {
                    return Err(refused("a policy is a number of approvals from 1 to 50"));
                }
                state.policy = Some(value.clone());
                Ok(())
            }
            Place::Proposal { .. } if key == DONE => {
                state.marks_done = true;
                Ok(())
            }
            Place::Epoch { .. } if key == EPOCH_REMOVALS => {
                let count = scalar_i64(value)
                    .and_then(|c| u64::try_from(c).ok())
                    .ok_or_else(|| refused("an epoch's removal count is a number"))?;
                state.epoch_removals.push(count);
                Ok(())
            }
            Place::Renewals { .. } => {
                if !matches!(value, automerge::ScalarValue::Bytes(_)) || !preds.is_empty() {
                    return Err(refused("a key renewal is bytes, written once"));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// A removal comes with a new epoch that is not wrapped for anyone removed, and with
    /// the approvals the policy asks for; so does a new policy.
    fn may_finish_removals(
        &self,
        change: &Change,
        heads: &[ChangeHash],
        state: &ChangeState,
    ) -> Result<(), CoreError> {
        // A removal is its time and its cutoff together, never one alone.
        let mut removed: Vec<&String> = state.removed.iter().collect();
        let mut cut: Vec<&String> = state.cutoffs.iter().map(|(m, _)| m).collect();
        removed.sort();
        cut.sort();
        if removed != cut {
            return Err(refused("a removal writes its time and its cutoff together"));
        }
        for member in &state.removed {
            if state.new_epochs == 0 {
                return Err(refused("a removal comes with a new key epoch"));
            }
            if state.wrapped_for.contains(member) {
                return Err(refused(
                    "the new key is wrapped for the member being removed",
                ));
            }
        }
        // A new epoch records how many removals the roster holds with it; members write
        // with it only while that is still the count.
        if state.epoch_removals.len() != state.new_epochs {
            return Err(refused("a new epoch records the removals before it"));
        }
        if !state.epoch_removals.is_empty() {
            let expected = self.removal_markers_at(heads) + state.removed.len() as u64;
            if state.epoch_removals.iter().any(|r| *r != expected) {
                return Err(refused("a new epoch's removal count is not the roster's"));
            }
        }
        if state.marks_done && state.policy.is_none() && state.roles.is_empty() {
            return Err(refused(
                "only setting the policy or a role carries out such a proposal",
            ));
        }
        let needed = self.policy_at(heads);
        if needed <= 1 {
            return Ok(());
        }
        let after = [change.hash()];
        for member in &state.removed {
            let action = ProposalAction::Remove(member.clone());
            let have = self.approvals_at(&action, heads, &after);
            if have < needed {
                return Err(CoreError::NeedsApprovals {
                    what: format!("removing {member}"),
                    missing: needed - have,
                });
            }
        }
        for (member, role) in &state.roles {
            let action = ProposalAction::Role(member.clone(), *role);
            let have = self.approvals_at(&action, heads, &after);
            if have < needed {
                return Err(CoreError::NeedsApprovals {
                    what: "changing a role".into(),
                    missing: needed - have,
                });
            }
        }
        if let Some(value) = &state.policy {
            let k = scalar_i64(value)
                .and_then(|k| u32::try_from(k).ok())
                .unwrap_or(0);
            let have = self.approvals_at(&ProposalAction::Policy(k), heads, &after);
            if have < needed {
                return Err(CoreError::NeedsApprovals {
                    what: "changing the policy".into(),
                    missing: needed - have,
                });
            }
        }
        Ok(())
    }

    /// The policy (approvals needed) as of `heads`.
    fn policy_at(&self, heads: &[ChangeHash]) -> u32 {
        match self.doc.get_at(&automerge::ROOT, POLICY, heads) {
            Ok(Some((Value::Scalar(s), _))) => scalar_i64(&s)
                .and_then(|k| u32::try_from(k).ok())
                .filter(|k| (1..=MAX_APPROVALS).contains(k))
                .unwrap_or(1),
            _ => 1,
        }
    }

    /// The most approvals any proposal for `action` has as of `after` (the change itself
    /// included), counting stewards as of `heads` who wrote their own approval.
    fn approvals_at(
        &self,
        action: &ProposalAction,
        heads: &[ChangeHash],
        after: &[ChangeHash],
    ) -> u32 {
        let Some(proposals) = map_at(self.doc, &automerge::ROOT, PROPOSALS, Some(after)) else {
            return 0;
        };
        let text = |obj: &ObjId, key: &str| match self.doc.get_at(obj, key, after) {
            Ok(Some((Value::Scalar(s), _))) => s.as_str().map(str::to_string),
            _ => None,
        };
        let mut best = 0;
        for entry in self.doc.map_range_at(&proposals, .., after) {
            let obj = entry.id();
            let parsed = match (text(&obj, "o"), text(&obj, "a")) {
                (Some(o), Some(a)) => ProposalAction::parse(&o, &a),
                _ => None,
            };
            if parsed.as_ref() != Some(action) {
                continue;
            }
            let Some(votes) = map_at(self.doc, &obj, APPROVALS, Some(after)) else {
                continue;
            };
            let count = self
                .doc
                .map_range_at(&votes, .., after)
                .filter(|vote| {
                    let steward = vote.key.as_ref();
                    actor_of(&vote.id()).is_some_and(|actor| {
                        self.members_by_actor.get(&actor).map(String::as_str) == Some(steward)
                    }) && self.role_at(steward, heads) == Some(Role::Steward)
                })
                .count();
            best = best.max(u32::try_from(count).unwrap_or(u32::MAX));
        }
        best
    }

    /// How many roster entries carry a removal marker as of `heads`.
    fn removal_markers_at(&self, heads: &[ChangeHash]) -> u64 {
        let Some(roster) = map_at(self.doc, &automerge::ROOT, MEMBERS, Some(heads)) else {
            return 0;
        };
        self.doc
            .map_range_at(&roster, .., heads)
            .filter(|e| matches!(self.doc.get_at(e.id(), REMOVED, heads), Ok(Some(_))))
            .count() as u64
    }

    /// Whether `member`'s entry carries a removal marker as of `heads`.
    fn removed_at(&self, member: &str, heads: &[ChangeHash]) -> bool {
        map_at(self.doc, &automerge::ROOT, MEMBERS, Some(heads))
            .and_then(|roster| map_at(self.doc, &roster, member, Some(heads)))
            .is_some_and(|entry| matches!(self.doc.get_at(&entry, REMOVED, heads), Ok(Some(_))))
    }

    /// Overwriting or deleting a value someone else wrote in an item container is
    /// replacing their item: only its author may.
    fn may_overwrite(
        &self,
        parent: &Place,
        key: &str,
        actor: &ActorId,
        preds: &[&ActorId],
        writer: &str,
    ) -> Result<(), CoreError> {
        if !is_item_container(parent) {
            return Ok(());
        }
        match preds.iter().find(|p| **p != actor) {
            None => Ok(()),
            Some(other) => {
                let author = self.members_by_actor.get(*other).map_or("", String::as_str);
                rules::authorize(&Write::Item { id: key, author }, writer, Some(Role::Member))
            }
        }
    }

    /// A new roster entry: a steward's addition, the founder's own entry in the genesis,
    /// or an admission by any member with a valid invite, checked as of the change's
    /// dependencies (`rules::check_admit`, with the entry's join time for "now").
    fn may_add_entry(
        &self,
        member: &str,
        writer: &str,
        heads: &[ChangeHash],
        genesis: bool,
        change: &ChangeState,
    ) -> Result<(), CoreError> {
        actor_for_member(member)?;
        let field = |name: &str| {
            change
                .entry_fields
                .iter()
                .rev()
                .find(|(m, key, _)| m == member && key == name)
                .map(|(_, _, value)| value)
        };
        let role = field(ROLE).and_then(|v| v.as_str()).map(Role::from_stored);
        if genesis {
            return if member == writer && role == Some(Role::Steward) {
                Ok(())
            } else {
                Err(refused(
                    "the first change may only list its own writer, as steward",
                ))
            };
        }
        let writer_role = self.role_at(writer, heads);
        // Under a policy of K approvals, a steward adds nobody alone: every new entry is
        // an admission through an invite K stewards approved.
        if writer_role == Some(Role::Steward) && self.policy_at(heads) <= 1 {
            return Ok(());
        }
        rules::authorize(&Write::Admit { invite: "" }, writer, writer_role)?;
        if role != Some(Role::Member) {
            return Err(CoreError::NotSteward);
        }
        let invite = field(INVITED_VIA)
            .and_then(|v| v.as_str())
            .ok_or(CoreError::NotSteward)?;
        let joined_at = field(JOINED_AT).and_then(scalar_i64).unwrap_or(i64::MAX);
        self.invite_admits(invite, joined_at, heads)
    }

    /// Whether invite `id`, as of `heads`, admits someone joining at `at`.
    fn invite_admits(&self, id: &str, at: i64, heads: &[ChangeHash]) -> Result<(), CoreError> {
        let unknown = || CoreError::UnknownInvite(id.to_string());
        let invites =
            map_at(self.doc, &automerge::ROOT, INVITES, Some(heads)).ok_or_else(unknown)?;
        let invite = map_at(self.doc, &invites, id, Some(heads)).ok_or_else(unknown)?;
        let creator = actor_of(&invite)
            .and_then(|a| self.members_by_actor.get(&a).cloned())
            .ok_or_else(unknown)?;
        if self.role_at(&creator, heads) != Some(Role::Steward) {
            return Err(unknown());
        }
        let get = |key: &str| match self.doc.get_at(&invite, key, heads) {
            Ok(Some((Value::Scalar(s), _))) => Some(s.into_owned()),
            _ => None,
        };
        if get(REVOKED).and_then(|v| v.as_bool()) == Some(true) {
            return Err(CoreError::InviteRevoked(id.to_string()));
        }
        let expires = get(INVITE_EXPIRES)
            .as_ref()
            .and_then(scalar_i64)
            .unwrap_or(0);
        if at >= expires {
            return Err(CoreError::InviteExpired(id.to_string()));
        }
        let uses = get(INVITE_USES).as_ref().and_then(scalar_i64).unwrap_or(0);
        let roster =
            map_at(self.doc, &automerge::ROOT, MEMBERS, Some(heads)).ok_or_else(unknown)?;
        let used = self
            .doc
            .map_range_at(&roster, .., heads)
            .filter(|entry| {
                matches!(
                    self.doc.get_at(entry.id(), INVITED_VIA, heads),
                    Ok(Some((Value::Scalar(s), _))) if s.as_str() == Some(id)
                )
            })
            .count();
        if i64::try_from(used).unwrap_or(i64::MAX) >= uses {
            return Err(CoreError::InviteUsedUp(id.to_string()));
        }
        let needed = self.policy_at(heads);
        if needed > 1 {
            // The creator approves by making it; other stewards in its approvals map.
            let mut approvers = vec![creator];
            if let Some(votes) = map_at(self.doc, &invite, APPROVALS, Some(heads)) {
                for vote in self.doc.map_range_at(&votes, .., heads) {
                    let steward = vote.key.as_ref();
                    let own = actor_of(&vote.id()).is_some_and(|actor| {
                        self.members_by_actor.get(&actor).map(String::as_str) == Some(steward)
                    });
                    if own
                        && self.role_at(steward, heads) == Some(Role::Steward)
                        && !approvers.iter().any(|a| a == steward)
                    {
                        approvers.push(steward.to_string());
                    }
                }
            }
            let have = u32::try_from(approvers.len()).unwrap_or(u32::MAX);
            if have < needed {
                return Err(CoreError::NeedsApprovals {
                    what: format!("invite {id}"),
                    missing: needed - have,
                });
            }
        }
        Ok(())
    }

    /// An item or reply is written only by the member whose actor created it.
    fn only_author(
        &self,
        id: &str,
        author: &ActorId,
        writer: &str,
        reply: bool,
    ) -> Result<(), CoreError> {
        let author = self.members_by_actor.get(author).map_or("", String::as_str);
        let write = if reply {
            Write::Reply { id, author }
        } else {
            Write::Item { id, author }
        };
        rules::authorize(&write, writer, Some(Role::Member))
    }

    /// `member`'s role as of `heads` (`None`: not in the roster then).
    fn role_at(&self, member: &str, heads: &[ChangeHash]) -> Option<Role> {
        let roster = map_at(self.doc, &automerge::ROOT, MEMBERS, Some(heads))?;
        let entry = map_at(self.doc, &roster, member, Some(heads))?;
        if matches!(self.doc.get_at(&entry, REMOVED, heads), Ok(Some(_))) {
            return None;
        }
        match self.doc.get_at(&entry, ROLE, heads) {
            Ok(Some((Value::Scalar(s), _))) => {
                Some(s.as_str().map_or(Role::Member, Role::from_stored))
            }
            _ => Some(Role::Member),
        }
    }
}

/// Fields a change writes on roster entries, and the entries it creates.
#[derive(Default)]
struct ChangeState {
    new_entries: Vec<String>,
    entry_fields: Vec<(String, String, automerge::ScalarValue)>,
    /// Members this change removes, and the cutoffs it writes (member, value).
    removed: Vec<String>,
    cutoffs: Vec<(String, u64)>,
    /// Epochs this change makes, and the recipients of the wraps it writes (in any epoch).
    new_epochs: usize,
    wrapped_for: Vec<String>,
    /// The policy this change sets, the roles it changes, and whether it marks a
    /// proposal done.
    policy: Option<automerge::ScalarValue>,
    roles: Vec<(String, Role)>,
    /// The removal counts the epochs this change makes record.
    epoch_removals: Vec<u64>,
    marks_done: bool,
}

/// The actor whose op created `obj`.
fn actor_of(obj: &ObjId) -> Option<ActorId> {
    match obj {
        ObjId::Id(_, actor, _) => Some(actor.clone()),
        ObjId::Root => None,
    }
}

/// The map at `parent[key]`, as of `heads` when given.
fn map_at(
    doc: &AutoCommit,
    parent: &ObjId,
    key: &str,
    heads: Option<&[ChangeHash]>,
) -> Option<ObjId> {
    let got = match heads {
        Some(heads) => doc.get_at(parent, key, heads),
        None => doc.get(parent, key),
    };
    match got {
        Ok(Some((Value::Object(ObjType::Map), id))) => Some(id),
        _ => None,
    }
}

fn scalar_i64(value: &automerge::ScalarValue) -> Option<i64> {
    match value {
        automerge::ScalarValue::Int(i) => Some(*i),
        automerge::ScalarValue::Uint(u) => i64::try_from(*u).ok(),
        _ => None,
    }
}
