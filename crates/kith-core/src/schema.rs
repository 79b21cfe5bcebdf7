//! The document's schema: private structs mapped with autosurgeon, with one- or two-letter
//! keys because every key is spelled out in every change that writes it (a short check-in
//! must stay near 150 bytes). docs/document.md lists the keys with their full names.
//!
//! Enum-like fields are stored as plain strings and numbers and parsed leniently on read,
//! so that a newer or hostile writer never makes reading fail as a whole.

use std::collections::BTreeMap;

use autosurgeon::bytes::{ByteArray, ByteVec};
use autosurgeon::{Hydrate, HydrateError, Prop, ReadDoc, Reconcile};

/// Root keys. Every one of them is created in the genesis change, so no two members ever
/// create the same container concurrently (which would make one of them lose).
pub(crate) const NAME: &str = "n";
pub(crate) const MEMBERS: &str = "m";
pub(crate) const CHECKINS: &str = "c";
pub(crate) const REQUESTS: &str = "q";
pub(crate) const REPLIES: &str = "r";
pub(crate) const INVITES: &str = "i";
/// Root keys added after the first circles were founded: circles founded earlier have
/// none, and cannot hold offers or nudges (creating them later could race and lose).
pub(crate) const OFFERS: &str = "o";
pub(crate) const NUDGES: &str = "g";
/// Root keys added with removal (circles founded from 30 Nov 2026, issue 5): the circle's
/// key epochs, and changes to the roster waiting for stewards' approvals.
pub(crate) const EPOCHS: &str = "k";
pub(crate) const PROPOSALS: &str = "y";
/// Root key of the genesis's random nonce: the circle's id is its change's hash.
pub(crate) const NONCE: &str = "z";
/// Root key of the approvals policy (a number; absent means 1), written by stewards.
pub(crate) const POLICY: &str = "p";

/// Keys of a roster entry: when a steward removed the member, and the removed member's
/// last operation that still counts (the highest op counter the remover had seen).
pub(crate) const REMOVED: &str = "x";
pub(crate) const CUTOFF: &str = "xc";
/// Key of a roster entry naming the epochs the admitter handed over at the join
/// ("0,17"), written with the entry.
pub(crate) const HANDED: &str = "k";

/// Keys of an epoch (`k/<epoch id>`): generation, key commitment, creation time and the
/// wrapped keys (member id -> 81 bytes).
pub(crate) const GENERATION: &str = "g";
pub(crate) const COMMITMENT: &str = "c";
pub(crate) const CREATED_AT: &str = "t";
pub(crate) const EPOCH_REMOVALS: &str = "r";
pub(crate) const WRAPS: &str = "w";
/// Key of the stewards' approvals map of a proposal or an invite (steward id -> time),
/// and of a policy proposal's mark of being carried out.
pub(crate) const APPROVALS: &str = "s";
pub(crate) const DONE: &str = "d";

/// Keys of a roster entry written after it was created: the role (by a steward) and the
/// member's own network addresses (by that member only).
pub(crate) const ROLE: &str = "r";
pub(crate) const ADDRESSES: &str = "a";
/// Key of a roster entry naming the invite it came through, written with the entry.
pub(crate) const INVITED_VIA: &str = "i";
/// Key of an invite's revoked flag.
pub(crate) const REVOKED: &str = "r";

/// Key of a request's (or offer's, or slot's) claims map, inside it.
pub(crate) const CLAIMS: &str = "l";
/// Key of a request's slots map (recurring needs), written with the request.
pub(crate) const SLOTS: &str = "v";
/// Key of a request's thanks map (member id -> note), written by the asker only.
pub(crate) const THANKS: &str = "y";
/// Key of a claim's message.
pub(crate) const MESSAGE: &str = "m";
/// Key of a claim's message sealed under a private item's key.
pub(crate) const SEALED_MESSAGE: &str = "mx";
/// Key of a private item's key renewals (generation -> renewal), written by its author
/// after a reader was removed from the circle.
pub(crate) const RENEWALS: &str = "xr";
/// Key of a private item's sealed content (its readers' key slots are under "xk").
pub(crate) const SEALED: &str = "x";
/// Key of a check-in's "what would help", written only when given.
pub(crate) const HELP: &str = "w";
/// Key of a roster entry's quiet hours, written by the member alone.
pub(crate) const QUIET: &str = "q";
/// Keys of a request's status and updated time, written by done/cancel.
pub(crate) const STATUS: &str = "s";
pub(crate) const UPDATED_AT: &str = "e";

pub(crate) const STATUS_OPEN: &str = "open";
pub(crate) const STATUS_FULFILLED: &str = "fulfilled";
pub(crate) const STATUS_CANCELLED: &str = "cancelled";
/// An offer its author took back.
pub(crate) const STATUS_WITHDRAWN: &str = "withdrawn";

/// What the founder writes in the genesis change: every container the document will have.
#[derive(Debug, Reconcile)]
pub(crate) struct Genesis {
    #[autosurgeon(rename = "n")]
    pub name: String,
    #[autosurgeon(rename = "m")]
    pub members: BTreeMap<String, MemberDoc>,
    #[autosurgeon(rename = "c")]
    pub checkins: BTreeMap<String, CheckinDoc>,
    #[autosurgeon(rename = "q")]
    pub requests: BTreeMap<String, RequestDoc>,
    #[autosurgeon(rename = "r")]
    pub replies: BTreeMap<String, ReplyDoc>,
    #[autosurgeon(rename = "i")]
    pub invites: BTreeMap<String, InviteDoc>,
    #[autosurgeon(rename = "o")]
    pub offers: BTreeMap<String, OfferDoc>,
    #[autosurgeon(rename = "g")]
    pub nudges: BTreeMap<String, SealedDoc>,
    #[autosurgeon(rename = "k")]
    pub epochs: BTreeMap<String, EpochDoc>,
    #[autosurgeon(rename = "y")]
    pub proposals: BTreeMap<String, ProposalDoc>,
    #[autosurgeon(rename = "z")]
    pub nonce: ByteArray<16>,
}

/// One epoch of the circle key: made by any member, with the key wrapped for each member
/// it was meant for. Epoch 0, made with the circle, is not in the document.
#[derive(Debug, Reconcile, Hydrate)]
pub(crate) struct EpochDoc {
    /// One more than the highest generation its maker knew: newer epochs win.
    #[autosurgeon(rename = "g")]
    pub generation: u64,
    /// Commits to the key, so that a member handed a different key under this id knows.
    #[autosurgeon(rename = "c")]
    pub commitment: ByteArray<32>,
    #[autosurgeon(rename = "t")]
    pub created_at: i64,
    /// How many removals the roster held when it was made (its own included): an epoch
    /// is written with only while no removal has happened since (`Circle::key_plan`).
    #[autosurgeon(rename = "r", missing = "Default::default")]
    pub removals: u64,
    /// Recipient member id -> wrapped key; read with each value's writer (the sender).
    #[autosurgeon(rename = "w", hydrate = "skip_wraps")]
    pub wraps: BTreeMap<String, ByteVec>,
}

/// A change to the roster that waits for stewards' approvals (policy `p` above 1).
#[derive(Debug, Reconcile, Hydrate)]
pub(crate) struct ProposalDoc {
    /// "remove" or "policy".
    #[autosurgeon(rename = "o")]
    pub action: String,
    /// The member to remove, or the new number of approvals.
    #[autosurgeon(rename = "a")]
    pub target: String,
    #[autosurgeon(rename = "c")]
    pub created_at: i64,
    /// Steward id -> when they approved; the proposer approves in the proposal's change.
    #[autosurgeon(rename = "s", hydrate = "skip_approvals")]
    pub approvals: BTreeMap<String, i64>,
}

#[derive(Debug, Reconcile, Hydrate)]
pub(crate) struct MemberDoc {
    #[autosurgeon(rename = "n")]
    pub name: String,
    /// "steward" or "member".
    #[autosurgeon(rename = "r")]
    pub role: String,
    #[autosurgeon(rename = "j")]
    pub joined_at: i64,
    /// The invite this member joined through; absent for the founder and for members a
    /// steward added. Counts only if written with the entry (see `feed::read_members`).
    #[autosurgeon(rename = "i", missing = "Default::default")]
    pub invited_via: Option<String>,
    // `a` (addresses) is not here: it is written by the member alone, after the entry
    // exists, and read with its writer checked (see `feed::read_addresses`).
}

#[derive(Debug, Reconcile, Hydrate)]
pub(crate) struct InviteDoc {
    /// What the joiner proves knowledge of; the secret itself never enters the document.
    #[autosurgeon(rename = "v")]
    pub verifier: ByteArray<32>,
    #[autosurgeon(rename = "x")]
    pub expires_at: i64,
    /// How many people may join with it.
    #[autosurgeon(rename = "u")]
    pub uses: u32,
    #[autosurgeon(rename = "c")]
    pub created_at: i64,
    #[autosurgeon(rename = "r", missing = "Default::default")]
    pub revoked: bool,
    /// Stewards' approvals (steward id -> time), created empty with the invite so that
    /// approvers only add keys; counted while the policy asks for more than one.
    #[autosurgeon(
        rename = "s",
        hydrate = "skip_approvals_opt",
        missing = "Default::default"
    )]
    pub approvals: Option<BTreeMap<String, i64>>,
}

#[derive(Debug, Reconcile, Hydrate)]
pub(crate) struct CheckinDoc {
    /// 1..=5; anything else makes the check-in unreadable and it is skipped.
    #[autosurgeon(rename = "m")]
    pub mood: u8,
    #[autosurgeon(rename = "n", missing = "Default::default")]
    pub note: Option<String>,
    #[autosurgeon(rename = "c")]
    pub created_at: i64,
    // `w` (what would help) is not here: written only when given, so that a check-in
    // without it carries no null (see `Circle::post_checkin`), and read on its own.
}

#[derive(Debug, Reconcile, Hydrate)]
pub(crate) struct RequestDoc {
    /// A `HelpKind` word; unknown words read as `Other`.
    #[autosurgeon(rename = "k")]
    pub kind: String,
    #[autosurgeon(rename = "t")]
    pub title: String,
    #[autosurgeon(rename = "d", missing = "Default::default")]
    pub details: Option<String>,
    #[autosurgeon(rename = "b", missing = "Default::default")]
    pub needed_by: Option<i64>,
    #[autosurgeon(rename = "u", missing = "Default::default")]
    pub urgent: bool,
    /// Start of the time window that ends at `needed_by`.
    #[autosurgeon(rename = "w", missing = "Default::default")]
    pub window_start: Option<i64>,
    /// The urgency word: "today", "this week" or "whenever".
    #[autosurgeon(rename = "h", missing = "Default::default")]
    pub horizon: Option<String>,
    /// How many helpers or portions are wanted; absent: any number.
    #[autosurgeon(rename = "p", missing = "Default::default")]
    pub helpers: Option<u32>,
    /// "open", "fulfilled" or "cancelled"; "claimed" is derived, never stored.
    #[autosurgeon(rename = "s")]
    pub status: String,
    #[autosurgeon(rename = "c")]
    pub created_at: i64,
    #[autosurgeon(rename = "e")]
    pub updated_at: i64,
    /// Member id → claim. Created (empty) in the request's own change, so that claimers only
    /// ever add keys to it. Read separately, because each claim's writer must be checked.
    #[autosurgeon(rename = "l", hydrate = "skip_claims")]
    pub claims: BTreeMap<String, ClaimDoc>,
    /// Slot id -> slot, for recurring needs; written with the request and never after.
    #[autosurgeon(rename = "v", hydrate = "skip_slots")]
    pub slots: BTreeMap<String, SlotDoc>,
}

/// One dated slot of a recurring need, with its own claims.
#[derive(Debug, Reconcile, Hydrate)]
pub(crate) struct SlotDoc {
    /// When the slot is (Unix ms); absent in a private request, whose content holds it.
    #[autosurgeon(rename = "d", missing = "Default::default")]
    pub at: Option<i64>,
    #[autosurgeon(rename = "l", hydrate = "skip_claims")]
    pub claims: BTreeMap<String, ClaimDoc>,
}

#[derive(Debug, Reconcile, Hydrate)]
pub(crate) struct ClaimDoc {
    #[autosurgeon(rename = "a")]
    pub at: i64,
    /// A short message from the helper ("I'll bring soup at 6").
    #[autosurgeon(rename = "m", missing = "Default::default")]
    pub message: Option<String>,
    /// The message sealed under the item's key, on a private item.
    #[autosurgeon(rename = "mx", missing = "Default::default")]
    pub sealed_message: Option<ByteVec>,
}

/// A standing offer of help. Acceptances are claims, keyed by the accepting member.
#[derive(Debug, Reconcile, Hydrate)]
pub(crate) struct OfferDoc {
    #[autosurgeon(rename = "k")]
    pub kind: String,
    #[autosurgeon(rename = "t")]
    pub title: String,
    #[autosurgeon(rename = "d", missing = "Default::default")]
    pub details: Option<String>,
    /// When the offer holds, in the author's words ("Tuesdays after school").
    #[autosurgeon(rename = "w", missing = "Default::default")]
    pub when: Option<String>,
    /// "open" or "withdrawn".
    #[autosurgeon(rename = "s")]
    pub status: String,
    #[autosurgeon(rename = "c")]
    pub created_at: i64,
    #[autosurgeon(rename = "e")]
    pub updated_at: i64,
    #[autosurgeon(rename = "l", hydrate = "skip_claims")]
    pub claims: BTreeMap<String, ClaimDoc>,
}

/// A private request as written: what [`SealedDoc`] reads, plus what stays in the open.
#[derive(Debug, Reconcile)]
pub(crate) struct SealedRequestDoc {
    #[autosurgeon(rename = "x")]
    pub sealed: ByteVec,
    #[autosurgeon(rename = "xk")]
    pub key_slots: ByteVec,
    #[autosurgeon(rename = "c")]
    pub created_at: i64,
    #[autosurgeon(rename = "s")]
    pub status: String,
    #[autosurgeon(rename = "e")]
    pub updated_at: i64,
    #[autosurgeon(rename = "l")]
    pub claims: BTreeMap<String, ClaimDoc>,
    /// Present (maybe empty) on requests only.
    #[autosurgeon(rename = "v")]
    pub slots: Option<BTreeMap<String, SlotDoc>>,
}

/// A reply to a private item: its text sealed under the item's key.
#[derive(Debug, Reconcile, Hydrate)]
pub(crate) struct SealedReplyDoc {
    #[autosurgeon(rename = "i")]
    pub item: String,
    #[autosurgeon(rename = "x")]
    pub sealed: ByteVec,
    #[autosurgeon(rename = "c")]
    pub created_at: i64,
}

/// A private item as stored: its content sealed for its readers (`docs/document.md`).
/// Status, claims, slots and times stay in the open, beside it, so that the rules of who
/// may write what hold for members who cannot read it too.
#[derive(Debug, Reconcile, Hydrate)]
pub(crate) struct SealedDoc {
    #[autosurgeon(rename = "x")]
    pub sealed: ByteVec,
    #[autosurgeon(rename = "xk")]
    pub key_slots: ByteVec,
    #[autosurgeon(rename = "c")]
    pub created_at: i64,
}

#[derive(Debug, Reconcile, Hydrate)]
pub(crate) struct ReplyDoc {
    /// The item id replied to.
    #[autosurgeon(rename = "i")]
    pub item: String,
    #[autosurgeon(rename = "t")]
    pub text: String,
    #[autosurgeon(rename = "c")]
    pub created_at: i64,
}

fn skip_wraps<D: ReadDoc>(
    _doc: &D,
    _obj: &automerge::ObjId,
    _prop: Prop<'_>,
) -> Result<BTreeMap<String, ByteVec>, HydrateError> {
    Ok(BTreeMap::new())
}

fn skip_approvals<D: ReadDoc>(
    _doc: &D,
    _obj: &automerge::ObjId,
    _prop: Prop<'_>,
) -> Result<BTreeMap<String, i64>, HydrateError> {
    Ok(BTreeMap::new())
}

fn skip_approvals_opt<D: ReadDoc>(
    _doc: &D,
    _obj: &automerge::ObjId,
    _prop: Prop<'_>,
) -> Result<Option<BTreeMap<String, i64>>, HydrateError> {
    Ok(None)
}

fn skip_slots<D: ReadDoc>(
    _doc: &D,
    _obj: &automerge::ObjId,
    _prop: Prop<'_>,
) -> Result<BTreeMap<String, SlotDoc>, HydrateError> {
    Ok(BTreeMap::new())
}

/// Claims are read one by one with their writer's actor (see `feed::read_claims`).
fn skip_claims<D: ReadDoc>(
    _doc: &D,
    _obj: &automerge::ObjId,
    _prop: Prop<'_>,
) -> Result<BTreeMap<String, ClaimDoc>, HydrateError> {
    Ok(BTreeMap::new())
}
