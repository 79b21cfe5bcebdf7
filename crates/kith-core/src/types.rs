//! Value types shared by the document, the rules and the daemon: moods, kinds, statuses,
//! roles, ids and the read-only views of items.

use std::fmt;
use std::str::FromStr;

use crate::CoreError;

/// How someone is doing, from 1 (struggling) to 5 (great). Stored as its number so that
/// renaming a word never changes the document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mood {
    Struggling = 1,
    Low = 2,
    Okay = 3,
    Good = 4,
    Great = 5,
}

const MOODS: [Mood; 5] = [
    Mood::Struggling,
    Mood::Low,
    Mood::Okay,
    Mood::Good,
    Mood::Great,
];

impl Mood {
    /// The number stored in the document.
    pub fn value(self) -> u8 {
        self as u8
    }

    pub fn word(self) -> &'static str {
        match self {
            Mood::Struggling => "struggling",
            Mood::Low => "low",
            Mood::Okay => "okay",
            Mood::Good => "good",
            Mood::Great => "great",
        }
    }

    /// `None` outside 1..=5: a value from a newer or hostile writer is skipped, not trusted.
    pub fn from_value(v: u8) -> Option<Mood> {
        MOODS.into_iter().find(|m| m.value() == v)
    }
}

impl fmt::Display for Mood {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

impl FromStr for Mood {
    type Err = CoreError;

    /// Accepts "1".."5" or the words, case-insensitive, surrounding blanks ignored.
    fn from_str(s: &str) -> Result<Mood, CoreError> {
        let t = s.trim();
        MOODS
            .into_iter()
            .find(|m| t.eq_ignore_ascii_case(m.word()) || t == m.value().to_string())
            .ok_or_else(|| CoreError::UnknownValue {
                what: "mood",
                value: s.to_string(),
                expected: "1-5, struggling, low, okay, good, great",
            })
    }
}

/// What kind of help a request asks for. Stored as its word; an unknown word reads as
/// `Other` so that a newer member's kinds still show.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HelpKind {
    Meals,
    Childcare,
    Ride,
    Errand,
    Talk,
    Info,
    Other,
}

const HELP_KINDS: [HelpKind; 7] = [
    HelpKind::Meals,
    HelpKind::Childcare,
    HelpKind::Ride,
    HelpKind::Errand,
    HelpKind::Talk,
    HelpKind::Info,
    HelpKind::Other,
];

impl HelpKind {
    pub fn as_str(self) -> &'static str {
        match self {
            HelpKind::Meals => "meals",
            HelpKind::Childcare => "childcare",
            HelpKind::Ride => "ride",
            HelpKind::Errand => "errand",
            HelpKind::Talk => "talk",
            HelpKind::Info => "info",
            HelpKind::Other => "other",
        }
    }

    /// Lenient reading of a stored kind: anything unknown is `Other`.
    pub(crate) fn from_stored(s: &str) -> HelpKind {
        HELP_KINDS
            .into_iter()
            .find(|k| k.as_str() == s)
            .unwrap_or(HelpKind::Other)
    }
}

impl fmt::Display for HelpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for HelpKind {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<HelpKind, CoreError> {
        let t = s.trim();
        HELP_KINDS
            .into_iter()
            .find(|k| t.eq_ignore_ascii_case(k.as_str()))
            .ok_or_else(|| CoreError::UnknownValue {
                what: "kind of help",
                value: s.to_string(),
                expected: "meals, childcare, ride, errand, talk, info, other",
            })
    }
}

/// `Claimed` is derived: an open request with at least one claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestStatus {
    Open,
    Claimed,
    Fulfilled,
    Cancelled,
}

impl RequestStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Open => "open",
            RequestStatus::Claimed => "claimed",
            RequestStatus::Fulfilled => "fulfilled",
            RequestStatus::Cancelled => "cancelled",
        }
    }

    /// Fulfilled and cancelled requests take no new claims and cannot be closed again.
    pub fn is_closed(self) -> bool {
        matches!(self, RequestStatus::Fulfilled | RequestStatus::Cancelled)
    }
}

impl fmt::Display for RequestStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A member's role. Stewards may add members.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Steward,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Steward => "steward",
            Role::Member => "member",
        }
    }

    /// Lenient reading: anything but "steward" grants no extra rights.
    pub(crate) fn from_stored(s: &str) -> Role {
        if s == "steward" {
            Role::Steward
        } else {
            Role::Member
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Role, CoreError> {
        let t = s.trim();
        [Role::Steward, Role::Member]
            .into_iter()
            .find(|r| t.eq_ignore_ascii_case(r.as_str()))
            .ok_or_else(|| CoreError::UnknownValue {
                what: "role",
                value: s.to_string(),
                expected: "steward, member",
            })
    }
}

/// Lowercase RFC 4648 base32, the alphabet of member and item ids.
const ALPHABET: &str = "abcdefghijklmnopqrstuvwxyz234567";
const MEMBER_ID_CHARS: usize = 52;
const ITEM_ID_CHARS: usize = 10;
const INVITE_ID_CHARS: usize = 26;

pub(crate) fn in_alphabet(c: char) -> bool {
    ALPHABET.contains(c)
}

/// Item and reply ids: 10 characters of `[a-z2-7]`, made from caller-provided randomness.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemId(String);

impl ItemId {
    /// 50 random bits: collisions in a circle's lifetime are negligible, and an edit that
    /// would reuse an id is refused anyway.
    pub fn from_random(bytes: [u8; 8]) -> ItemId {
        let mut text = data_encoding::BASE32_NOPAD.encode(&bytes);
        text.truncate(ITEM_ID_CHARS);
        text.make_ascii_lowercase();
        ItemId(text)
    }

    /// Accepts exactly 10 characters of the alphabet; uppercase is folded to lowercase.
    pub fn parse(text: &str) -> Result<ItemId, CoreError> {
        let t = text.trim().to_ascii_lowercase();
        if t.chars().count() == ITEM_ID_CHARS && t.chars().all(in_alphabet) {
            Ok(ItemId(t))
        } else {
            Err(CoreError::InvalidId(text.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ItemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ItemId {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<ItemId, CoreError> {
        ItemId::parse(s)
    }
}

/// The member id of an ed25519 public key: 52 characters of lowercase base32, no padding.
pub fn member_id(public_key: &[u8; 32]) -> String {
    data_encoding::BASE32_NOPAD
        .encode(public_key)
        .to_ascii_lowercase()
}

/// The automerge actor id of a member: the first 16 bytes of the key its id encodes.
///
/// Ids must be canonical (lowercase, 52 characters, zero trailing bits) so that one key has
/// exactly one id, and roster keys compare as strings.
pub fn actor_for_member(member_id: &str) -> Result<[u8; 16], CoreError> {
    let invalid = || CoreError::InvalidId(member_id.to_string());
    if member_id.len() != MEMBER_ID_CHARS || !member_id.chars().all(in_alphabet) {
        return Err(invalid());
    }
    let key = data_encoding::BASE32_NOPAD
        .decode(member_id.to_ascii_uppercase().as_bytes())
        .map_err(|_| invalid())?;
    key.get(..16)
        .and_then(|head| <[u8; 16]>::try_from(head).ok())
        .ok_or_else(invalid)
}

/// The id of an invite: 16 random bytes in the alphabet of member ids, 26 characters.
pub fn invite_id(random: &[u8; 16]) -> String {
    data_encoding::BASE32_NOPAD
        .encode(random)
        .to_ascii_lowercase()
}

/// The 16 bytes an invite id encodes. Only the canonical form is accepted (lowercase, 26
/// characters, zero trailing bits), so one invite has exactly one id.
pub fn invite_id_bytes(invite_id: &str) -> Result<[u8; 16], CoreError> {
    let invalid = || CoreError::InvalidId(invite_id.to_string());
    if invite_id.len() != INVITE_ID_CHARS || !invite_id.chars().all(in_alphabet) {
        return Err(invalid());
    }
    let bytes = data_encoding::BASE32_NOPAD
        .decode(invite_id.to_ascii_uppercase().as_bytes())
        .map_err(|_| invalid())?;
    <[u8; 16]>::try_from(bytes.as_slice()).map_err(|_| invalid())
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberView {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub joined_at: i64,
    /// Network addresses (multiaddr strings) the member published on their own entry.
    /// Only values the member wrote themself are read.
    pub addresses: Vec<String>,
    /// The invite the member joined through, if they were admitted with one.
    pub invited_via: Option<String>,
}

/// One invite as read from the document. `creator` is the member whose change created it
/// (never a field); an invite counts only while its creator is a steward.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InviteView {
    pub id: String,
    pub creator: String,
    pub verifier: [u8; 32],
    pub expires_at: i64,
    /// How many people may join with it.
    pub uses: u32,
    /// How many members of the roster name it as the invite they came through.
    pub used: u32,
    pub revoked: bool,
    pub created_at: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemKind {
    CheckIn,
    Request,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimView {
    pub member: String,
    pub at: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplyView {
    pub id: String,
    pub author: String,
    pub text: String,
    pub created_at: i64,
}

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
