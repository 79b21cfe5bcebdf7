//! The circle's domain: members and roles, check-ins, help requests, claims and replies,
//! kept in one automerge document per circle and mapped with autosurgeon; and the rules
//! of who may write what, as pure functions.
//!
//! No I/O, no clock, no randomness: times and ids come in as arguments.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing))]

// API SKELETON: bodies are filled in by the kith-core work; signatures are the contract the
// daemon codes against.

/// Limits, in characters, checked before anything is written.
pub const MAX_MEMBER_NAME_CHARS: usize = 64;
pub const MAX_CIRCLE_NAME_CHARS: usize = 80;
pub const MAX_NOTE_CHARS: usize = 1000;
pub const MAX_TITLE_CHARS: usize = 120;
pub const MAX_DETAILS_CHARS: usize = 2000;
pub const MAX_REPLY_CHARS: usize = 1000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CoreError {
    #[error("no item with id {0}")]
    UnknownItem(String),
    #[error("item id {0} is ambiguous; give more characters")]
    AmbiguousItem(String),
    #[error("{0} is not a help request")]
    NotARequest(String),
    #[error("only the author of {0} may do that")]
    NotAuthor(String),
    #[error("request {id} is already {status}")]
    RequestClosed { id: String, status: &'static str },
    #[error("you have already offered to help with {0}")]
    AlreadyClaimed(String),
    #[error("you have not offered to help with {0}")]
    NotClaimed(String),
    #[error("you cannot claim your own request {0}")]
    OwnRequest(String),
    #[error("{field} is too long ({len} characters, at most {max})")]
    TooLong { field: &'static str, len: usize, max: usize },
    #[error("{0} must not be empty")]
    Empty(&'static str),
    #[error("unknown {what} {value:?}; expected one of: {expected}")]
    UnknownValue { what: &'static str, value: String, expected: &'static str },
    #[error("invalid id {0:?}")]
    InvalidId(String),
    #[error("the circle document is damaged: {0}")]
    Document(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mood { Struggling = 1, Low = 2, Okay = 3, Good = 4, Great = 5 }
impl Mood {
    pub fn value(self) -> u8 { todo!() }
    pub fn word(self) -> &'static str { todo!() }
    pub fn from_value(v: u8) -> Option<Mood> { todo!() }
}
// impl FromStr: "1".."5" or the words, case-insensitive; Err = CoreError::UnknownValue.

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HelpKind { Meals, Childcare, Ride, Errand, Talk, Info, Other }
impl HelpKind { pub fn as_str(self) -> &'static str { todo!() } }
// impl FromStr (case-insensitive).

/// `Claimed` is derived: an open request with at least one claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestStatus { Open, Claimed, Fulfilled, Cancelled }
impl RequestStatus { pub fn as_str(self) -> &'static str { todo!() } }

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role { Steward, Member }
impl Role { pub fn as_str(self) -> &'static str { todo!() } }

/// Item and reply ids: 10 characters of `[a-z2-7]`, made from caller-provided randomness.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemId(String);
impl ItemId {
    pub fn from_random(bytes: [u8; 8]) -> ItemId { todo!() }
    pub fn parse(text: &str) -> Result<ItemId, CoreError> { todo!() }
    pub fn as_str(&self) -> &str { todo!() }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberView { pub id: String, pub name: String, pub role: Role, pub joined_at: i64 }

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemKind { CheckIn, Request }

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimView { pub member: String, pub at: i64 }

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplyView { pub id: String, pub author: String, pub text: String, pub created_at: i64 }

/// One item as read from the document. Times are Unix milliseconds. `author` is the member
/// id of the actor whose change created the item: it is not a field anyone can write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemView {
    pub id: String,
    pub kind: ItemKind,
    pub author: String,
    pub created_at: i64,
    /// Latest change to the item, its claims or its replies.
    pub updated_at: i64,
    pub mood: Option<Mood>,
    pub note: Option<String>,
    pub title: Option<String>,
    pub details: Option<String>,
    pub category: Option<HelpKind>,
    pub needed_by: Option<i64>,
    pub urgent: bool,
    pub status: Option<RequestStatus>,
    pub claims: Vec<ClaimView>,
    pub replies: Vec<ReplyView>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRequest {
    pub kind: HelpKind,
    pub title: String,
    pub details: Option<String>,
    pub needed_by: Option<i64>,
    pub urgent: bool,
}

/// The automerge actor id of a member: the first 16 bytes of the key its id encodes.
pub fn actor_for_member(member_id: &str) -> Result<[u8; 16], CoreError> { todo!() }

/// One circle's document, edited as the local member `me`.
#[derive(Debug)]
pub struct Circle { /* automerge::AutoCommit, me */ }

impl Circle {
    /// A new circle with `founder` as its first steward. Returns the genesis change, which
    /// every member applies before anything else.
    pub fn found(founder_id: &str, founder_name: &str, circle_name: &str, now: i64) -> Result<(Circle, Vec<u8>), CoreError> { todo!() }
    /// Rebuilds a circle from its stored changes (applied in one batch), editing as `me`.
    pub fn load(me: &str, changes: &[Vec<u8>]) -> Result<Circle, CoreError> { todo!() }
    /// Applies changes received from others (issue 3 uses this).
    pub fn apply_changes(&mut self, changes: &[Vec<u8>]) -> Result<(), CoreError> { todo!() }

    pub fn name(&self) -> String { todo!() }
    pub fn members(&self) -> Vec<MemberView> { todo!() }
    /// Items newest first.
    pub fn items(&self) -> Vec<ItemView> { todo!() }
    pub fn item(&self, id: &str) -> Option<ItemView> { todo!() }
    /// Finds the item a full id or unambiguous prefix names.
    pub fn resolve_item(&self, id_or_prefix: &str) -> Result<ItemId, CoreError> { todo!() }

    // Each edit checks the rules, writes, commits, and returns the change's bytes.
    pub fn checkin(&mut self, id: &ItemId, mood: Mood, note: Option<&str>, now: i64) -> Result<Vec<u8>, CoreError> { todo!() }
    pub fn ask(&mut self, id: &ItemId, request: &NewRequest, now: i64) -> Result<Vec<u8>, CoreError> { todo!() }
    pub fn claim(&mut self, id: &ItemId, now: i64) -> Result<Vec<u8>, CoreError> { todo!() }
    pub fn unclaim(&mut self, id: &ItemId, now: i64) -> Result<Vec<u8>, CoreError> { todo!() }
    pub fn done(&mut self, id: &ItemId, now: i64) -> Result<Vec<u8>, CoreError> { todo!() }
    pub fn cancel(&mut self, id: &ItemId, now: i64) -> Result<Vec<u8>, CoreError> { todo!() }
    pub fn reply(&mut self, item: &ItemId, reply_id: &ItemId, text: &str, now: i64) -> Result<Vec<u8>, CoreError> { todo!() }
}

/// What an envelope's plaintext carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// An automerge change to the circle document.
    Change(Vec<u8>),
}
impl Payload {
    /// One tag byte then the body.
    pub fn encode(&self) -> Vec<u8> { todo!() }
    pub fn decode(bytes: &[u8]) -> Result<Payload, CoreError> { todo!() }
}
