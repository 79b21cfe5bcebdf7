//! The circle's domain: members and roles, invites and admission, members' published
//! network addresses, check-ins, help requests, claims and replies, kept in one automerge
//! document per circle and mapped with autosurgeon; and the rules of who may write what,
//! as pure functions ([`rules`]).
//!
//! No I/O, no clock, no randomness: times and ids come in as arguments.
//!
//! Each member edits the document as its own automerge actor, derived from its member id,
//! and every edit is exactly one change whose bytes the caller seals into an envelope. The
//! author of an item is the actor that created it, never a field, so nobody can write "as"
//! someone else. The schema, with its short keys, is described in `docs/document.md`.
//!
//! ```
//! use kith_core::{member_id, Circle, ItemId, Mood, RequestStatus};
//!
//! let ann = member_id(&[1; 32]);
//! let (mut circle, genesis) = Circle::found(&ann, "Ann", "Tuesday people", 1_000)?;
//!
//! let id = ItemId::from_random([7; 8]);
//! let change = circle.checkin(&id, Mood::Low, Some("rough night, ok now"), 2_000)?;
//!
//! // Another member's daemon rebuilds the same feed from the changes.
//! let bob = member_id(&[2; 32]);
//! let theirs = Circle::load(&bob, &[genesis, change])?;
//! let feed = theirs.items();
//! assert_eq!(feed.len(), 1);
//! assert_eq!(feed[0].author, ann);
//! assert_eq!(feed[0].mood, Some(Mood::Low));
//! assert_eq!(feed[0].status, None::<RequestStatus>);
//! # Ok::<(), kith_core::CoreError>(())
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod circle;
mod feed;
mod membership;
mod payload;
mod private;
pub mod rules;
mod schema;
mod types;
mod validate;

pub use circle::{Circle, Rejection};
pub use membership::{
    EpochView, KeyPlan, MAX_APPROVALS, NewEpoch, ProposalAction, ProposalView, RemoveOutcome,
    Rotation, WRAPPED_LEN, WrapView,
};
pub use payload::{KeyShare, MAX_SHARED_WRAPS, Payload};
pub use private::{ItemSecret, Keyring, MAX_AUDIENCE};
pub use types::{
    ClaimView, HelpKind, Horizon, InviteView, ItemEdit, ItemId, ItemKind, ItemView, MemberView,
    Mood, NewCheckin, NewOffer, NewRequest, Removal, ReplyView, RequestStatus, Role, SlotView,
    ThanksView, actor_for_member, invite_id, invite_id_bytes, member_id,
};

/// Limits, in characters, checked before anything is written.
pub const MAX_MEMBER_NAME_CHARS: usize = 64;
pub const MAX_CIRCLE_NAME_CHARS: usize = 80;
pub const MAX_NOTE_CHARS: usize = 1000;
pub const MAX_TITLE_CHARS: usize = 120;
pub const MAX_DETAILS_CHARS: usize = 2000;
pub const MAX_REPLY_CHARS: usize = 1000;
pub const MAX_HELP_CHARS: usize = 500;
pub const MAX_MESSAGE_CHARS: usize = 280;
pub const MAX_WHEN_CHARS: usize = 120;
/// A recurring need expands into at most this many slots.
pub const MAX_SLOTS: usize = 62;
/// The most helpers or portions a request may ask for.
pub const MAX_HELPERS: u32 = 100;
/// Quiet hours as a member publishes them ("22:00-07:00").
pub const MAX_QUIET_CHARS: usize = 32;
/// Limits on the network addresses a member publishes on their roster entry.
pub const MAX_ADDRESSES: usize = 8;
pub const MAX_ADDRESS_CHARS: usize = 128;
/// The most key epochs a circle reads (weekly rotation for 20 years, with room to spare).
pub const MAX_EPOCHS: usize = 2048;
/// No epoch takes this id: an envelope whose epoch is this was sealed for named readers
/// (`kith_crypto::DIRECT_EPOCH`; kith-core does no cryptography, the daemon checks the two
/// agree).
pub const DIRECT_EPOCH: u32 = u32::MAX;

/// Everything kith-core refuses; messages are lowercase and name what to fix.
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
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{0} must not be empty")]
    Empty(&'static str),
    #[error("unknown {what} {value:?}; expected one of: {expected}")]
    UnknownValue {
        what: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("invalid id {0:?}")]
    InvalidId(String),
    #[error("only a steward may change the roster or make invites")]
    NotSteward,
    #[error("{0} is already a member")]
    AlreadyMember(String),
    #[error("{0} is not a member of this circle")]
    NotMember(String),
    #[error("only the person who made invite {0} or a steward may revoke it")]
    NotInviteCreator(String),
    #[error("the circle needs at least one steward; appoint another before stepping down")]
    LastSteward,
    #[error("no invite with id {0}; check the invite code")]
    UnknownInvite(String),
    #[error("invite {0} has expired; ask for a new one")]
    InviteExpired(String),
    #[error("invite {0} has been used as many times as it allows; ask for a new one")]
    InviteUsedUp(String),
    #[error("invite {0} was revoked; ask for a new one")]
    InviteRevoked(String),
    #[error("an invite must allow at least one use and expire after it is made")]
    InviteLimits,
    #[error("only {0} may change their own network addresses")]
    NotOwnEntry(String),
    #[error("invalid network address {0:?}: use printable ascii without spaces")]
    BadAddress(String),
    #[error("too many network addresses ({0}, at most {max})", max = MAX_ADDRESSES)]
    TooManyAddresses(usize),
    #[error("request {id} has no slot {slot}")]
    UnknownSlot { id: String, slot: String },
    #[error("request {0} is a recurring need; choose a slot with --slot")]
    NeedsSlot(String),
    #[error("slot {slot} of request {id} is already taken")]
    SlotTaken { id: String, slot: String },
    #[error("request {0} already has every helper it asked for")]
    RequestFull(String),
    #[error("{0} is not an offer")]
    NotAnOffer(String),
    #[error("{what}: {why}")]
    Invalid { what: &'static str, why: String },
    #[error("this circle was founded before {0} existed and cannot hold them")]
    OldCircle(&'static str),
    #[error("{0} is private; it cannot be edited (post a new one)")]
    PrivateEdit(String),
    #[error("{what} needs {missing} more steward approval(s) first")]
    NeedsApprovals { what: String, missing: u32 },
    #[error("{0} was removed from this circle")]
    Removed(String),
    #[error("id {0} is already in use; make a new one")]
    IdInUse(String),
    #[error("the circle document is damaged: {0}")]
    Document(String),
}

/// Lets test code shared with the integration tests name this crate `kith_core`.
#[cfg(test)]
extern crate self as kith_core;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_life;
#[cfg(test)]
mod tests_removal;
