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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum HelpKind {
    Meals,
    Childcare,
    Ride,
    Errand,
    Talk,
    Info,
    #[default]
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

/// How soon help is needed, in plain words. Stored as its word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Horizon {
    Today,
    ThisWeek,
    Whenever,
}

const HORIZONS: [Horizon; 3] = [Horizon::Today, Horizon::ThisWeek, Horizon::Whenever];

impl Horizon {
    pub fn as_str(self) -> &'static str {
        match self {
            Horizon::Today => "today",
            Horizon::ThisWeek => "this week",
            Horizon::Whenever => "whenever",
        }
    }

    /// Lenient reading of a stored word: unknown words are left out.
    pub(crate) fn from_stored(s: &str) -> Option<Horizon> {
        HORIZONS.into_iter().find(|h| h.as_str() == s)
    }
}

impl fmt::Display for Horizon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Horizon {
    type Err = CoreError;

    /// "today", "this week" (or "this-week", "week"), "whenever"; case-insensitive.
    fn from_str(s: &str) -> Result<Horizon, CoreError> {
        let t = s.trim().to_ascii_lowercase().replace(['-', '_'], " ");
        match t.as_str() {
            "today" => Ok(Horizon::Today),
            "this week" | "week" => Ok(Horizon::ThisWeek),
            "whenever" | "any time" | "anytime" => Ok(Horizon::Whenever),
            _ => Err(CoreError::UnknownValue {
                what: "urgency",
                value: s.to_string(),
                expected: "today, this week, whenever",
            }),
        }
    }
}

/// `Claimed` is derived: an open request with at least one claim that holds a spot.
/// `Expired` is derived too: an open or claimed request whose time has passed (see
/// [`ItemView::status_at`]). `Withdrawn` is an offer its author took back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestStatus {
    Open,
    Claimed,
    Fulfilled,
    Cancelled,
    Expired,
    Withdrawn,
}

impl RequestStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Open => "open",
            RequestStatus::Claimed => "claimed",
            RequestStatus::Fulfilled => "fulfilled",
            RequestStatus::Cancelled => "cancelled",
            RequestStatus::Expired => "expired",
            RequestStatus::Withdrawn => "withdrawn",
        }
    }

    /// Fulfilled, cancelled and withdrawn items take no new claims and cannot be closed
    /// again. (An expired request can still be marked done or cancelled by its author.)
    pub fn is_closed(self) -> bool {
        matches!(
            self,
            RequestStatus::Fulfilled | RequestStatus::Cancelled | RequestStatus::Withdrawn
        )
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
    /// The member's quiet hours as they published them ("22:00-07:00"), if any.
    pub quiet: Option<String>,
    /// The invite the member joined through, if they were admitted with one.
    pub invited_via: Option<String>,
    /// The key epochs the admitter handed over at the join (`None`: written before
    /// epochs were recorded, which means epoch 0 only).
    pub handed: Option<Vec<u32>>,
    /// Set once a steward removed the member.
    pub removed: Option<Removal>,
}

/// A steward removed a member: when, and the last of the member's operations that counts
/// (the highest automerge op counter of theirs the steward had seen).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Removal {
    pub at: i64,
    pub cutoff: u64,
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
    /// Stewards who approved it, its creator first (under a policy of K approvals it
    /// admits nobody until K current stewards approved).
    pub approvals: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemKind {
    CheckIn,
    Request,
    /// A standing offer of help; its claims are acceptances.
    Offer,
    /// A gentle ask to check in, always private to the member it names.
    Nudge,
}

impl ItemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::CheckIn => "checkin",
            ItemKind::Request => "request",
            ItemKind::Offer => "offer",
            ItemKind::Nudge => "nudge",
        }
    }
}

impl FromStr for ItemKind {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<ItemKind, CoreError> {
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "checkin" | "check-in" | "checkins" => Ok(ItemKind::CheckIn),
            "request" | "requests" | "ask" => Ok(ItemKind::Request),
            "offer" | "offers" => Ok(ItemKind::Offer),
            "nudge" | "nudges" => Ok(ItemKind::Nudge),
            _ => Err(CoreError::UnknownValue {
                what: "item kind",
                value: s.to_string(),
                expected: "checkin, request, offer, nudge",
            }),
        }
    }
}

/// One member's claim on a request or slot (or acceptance of an offer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimView {
    pub member: String,
    pub at: i64,
    pub message: Option<String>,
    /// The claim came after every spot was taken (two members claimed the last one while
    /// apart): it holds no spot, and moves up if a claim before it is withdrawn.
    pub standby: bool,
}

/// One dated slot of a recurring need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotView {
    pub id: String,
    pub at: i64,
    /// Oldest first; at most one holds the slot, the rest are on standby.
    pub claims: Vec<ClaimView>,
}

impl SlotView {
    /// The member holding the slot, if any.
    pub fn taken_by(&self) -> Option<&str> {
        self.claims
            .iter()
            .find(|c| !c.standby)
            .map(|c| c.member.as_str())
    }
}

/// The asker's thanks to a helper.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThanksView {
    pub member: String,
    pub note: Option<String>,
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
    /// Claims on the whole request (or acceptances of an offer), oldest first.
    pub claims: Vec<ClaimView>,
    pub replies: Vec<ReplyView>,
    /// A check-in's "what would help".
    pub help: Option<String>,
    /// Start of a request's time window (it ends at `needed_by`).
    pub window_start: Option<i64>,
    pub horizon: Option<Horizon>,
    /// How many helpers or portions a request wants; `None`: any number.
    pub helpers: Option<u32>,
    /// A recurring need's dated slots, in time order.
    pub slots: Vec<SlotView>,
    pub thanks: Vec<ThanksView>,
    /// When an offer holds, in its author's words.
    pub when: Option<String>,
    /// The member a nudge asks to check in.
    pub target: Option<String>,
    /// For a private item, the members besides its author who can read it; `None` for an
    /// item every member reads.
    pub audience: Option<Vec<String>>,
}

impl ItemView {
    /// When a request stops taking help: its needed-by time, or its last slot's.
    pub fn deadline(&self) -> Option<i64> {
        if self.kind != ItemKind::Request {
            return None;
        }
        self.slots.iter().map(|s| s.at).max().or(self.needed_by)
    }

    /// The status as of `now` (Unix ms): an open or claimed request past its deadline
    /// reads as expired.
    pub fn status_at(&self, now: i64) -> Option<RequestStatus> {
        match self.status {
            Some(RequestStatus::Open | RequestStatus::Claimed)
                if self.deadline().is_some_and(|d| d < now) =>
            {
                Some(RequestStatus::Expired)
            }
            s => s,
        }
    }

    /// Every claim, on the request and on its slots.
    pub fn all_claims(&self) -> impl Iterator<Item = &ClaimView> {
        self.claims
            .iter()
            .chain(self.slots.iter().flat_map(|s| s.claims.iter()))
    }

    /// Whether `member` holds a spot (a claim not on standby) anywhere on this item.
    pub fn helped_by(&self, member: &str) -> bool {
        self.all_claims().any(|c| c.member == member && !c.standby)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewRequest {
    pub kind: HelpKind,
    pub title: String,
    pub details: Option<String>,
    pub needed_by: Option<i64>,
    pub urgent: bool,
    pub window_start: Option<i64>,
    pub horizon: Option<Horizon>,
    pub helpers: Option<u32>,
    /// Times of a recurring need's slots (Unix ms); empty for a one-off request.
    pub slots: Vec<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewOffer {
    pub kind: HelpKind,
    pub title: String,
    pub details: Option<String>,
    pub when: Option<String>,
}

/// What a check-in says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewCheckin {
    pub mood: Mood,
    pub note: Option<String>,
    pub help: Option<String>,
}

/// An author's changes to an item's words and times; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ItemEdit {
    pub title: Option<String>,
    pub details: Option<String>,
    pub note: Option<String>,
    pub needed_by: Option<i64>,
    pub when: Option<String>,
}
