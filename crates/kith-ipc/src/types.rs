//! Requests, replies and events, and the item shapes that `--json` prints.

use serde::{Deserialize, Serialize};

/// What the command line asks the daemon. `circle` fields take a circle id or an unambiguous
/// prefix; `None` means "the only circle this node is in". `item` fields take an item id or
/// an unambiguous prefix.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    Status,
    CircleCreate {
        name: String,
    },
    CircleList,
    Members {
        circle: Option<String>,
    },
    CheckIn {
        circle: Option<String>,
        /// 1-5 or a mood word; the daemon parses it again, it trusts nothing.
        mood: String,
        note: Option<String>,
        /// What would help, in the member's words.
        #[serde(default)]
        help: Option<String>,
        /// Members (ids, prefixes or names) who alone may read it; empty: everyone.
        #[serde(default)]
        to: Vec<String>,
    },
    Ask {
        circle: Option<String>,
        kind: String,
        title: String,
        details: Option<String>,
        /// Unix milliseconds.
        needed_by: Option<i64>,
        urgent: bool,
        /// Start of the time window ending at `needed_by` (Unix ms).
        #[serde(default)]
        window_start: Option<i64>,
        /// "today", "this week" or "whenever".
        #[serde(default)]
        horizon: Option<String>,
        /// How many helpers or portions are wanted.
        #[serde(default)]
        helpers: Option<u32>,
        /// Times of a recurring need's slots (Unix ms).
        #[serde(default)]
        slots: Vec<i64>,
        #[serde(default)]
        to: Vec<String>,
    },
    Offer {
        circle: Option<String>,
        kind: String,
        title: String,
        details: Option<String>,
        /// When the offer holds, in the member's words.
        when: Option<String>,
        #[serde(default)]
        to: Vec<String>,
    },
    /// Open offers, newest first.
    Offers {
        circle: Option<String>,
    },
    Nudge {
        circle: Option<String>,
        member: String,
        note: Option<String>,
    },
    Claim {
        item: String,
        #[serde(default)]
        slot: Option<String>,
        #[serde(default)]
        message: Option<String>,
    },
    Unclaim {
        item: String,
        #[serde(default)]
        slot: Option<String>,
    },
    /// The asker thanks a helper (`None`: everyone holding a spot).
    Thank {
        item: String,
        member: Option<String>,
        note: Option<String>,
    },
    /// The author changes an item's words or times.
    Edit {
        item: String,
        title: Option<String>,
        details: Option<String>,
        note: Option<String>,
        needed_by: Option<i64>,
        when: Option<String>,
    },
    /// Publishes the member's quiet hours ("22:00-07:00") in every circle, or withdraws
    /// them (`None`), and holds desktop notifications during them.
    Quiet {
        hours: Option<String>,
    },
    /// Desktop notification settings.
    Notify {
        /// Show names and words instead of "New activity".
        detail: Option<bool>,
    },
    Done {
        item: String,
    },
    Cancel {
        item: String,
    },
    Reply {
        item: String,
        text: String,
    },
    Feed {
        circle: Option<String>,
        limit: Option<usize>,
        #[serde(default)]
        filter: FeedFilter,
    },
    Show {
        item: String,
    },
    /// Turns the connection into an event stream.
    Watch {
        circle: Option<String>,
    },
    Export {
        circle: Option<String>,
    },
    /// Makes an invite code for the circle.
    Invite {
        circle: Option<String>,
        /// How long the code stays valid, in seconds.
        ttl_secs: u64,
        /// How many people may join with it.
        uses: u32,
    },
    /// Joins the circle an invite code names; answered once admitted.
    Join {
        code: String,
    },
    /// The key file is already destroyed by the caller; the daemon stops at once without
    /// writing anything more and removes what is left.
    Wipe,
    /// Removes a member and rotates the circle key (or adds this steward's approval when
    /// the circle's policy asks for several). `dry_run`: only say what they keep and lose.
    Remove {
        circle: Option<String>,
        member: String,
        #[serde(default)]
        dry_run: bool,
    },
    /// Approves a pending removal, policy change or invite.
    Approve {
        circle: Option<String>,
        id: String,
    },
    /// Roster changes waiting for approvals, and invites waiting for them.
    Pending {
        circle: Option<String>,
    },
    /// How many stewards must approve adding or removing a member.
    Policy {
        circle: Option<String>,
        approvals: u32,
    },
    /// A steward sets a member's role ("steward" or "member").
    SetRole {
        circle: Option<String>,
        member: String,
        role: String,
    },
    Invites {
        circle: Option<String>,
    },
    RevokeInvite {
        circle: Option<String>,
        id: String,
    },
}

/// Which items `feed` shows; every filter set must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedFilter {
    /// Requests and offers still taking help (open or claimed, not expired).
    #[serde(default)]
    pub open: bool,
    /// Items the member wrote.
    #[serde(default)]
    pub mine: bool,
    /// Requests (or offers) the member claimed.
    #[serde(default)]
    pub claimed_by_me: bool,
    /// checkin, request, offer or nudge; or a kind of help (meals, ride, ...).
    #[serde(default)]
    pub kind: Option<String>,
}

/// The daemon's answer to one request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    Ok(Reply),
    Error(ErrorReply),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    Status(Box<StatusInfo>),
    /// A new circle or item; printed once it is durable.
    Created {
        id: String,
    },
    /// An edit is durable.
    Done {
        id: String,
    },
    Circles {
        circles: Vec<CircleInfo>,
    },
    Members {
        members: Vec<MemberInfo>,
    },
    Items {
        items: Vec<ItemInfo>,
    },
    Item {
        item: Box<ItemInfo>,
    },
    Export {
        export: Box<ExportInfo>,
    },
    /// A new invite code.
    Invite {
        code: String,
        /// The invite's id, as `kith invite list` shows it.
        #[serde(default)]
        id: String,
        circle: String,
        /// RFC 3339.
        expires_at: String,
        uses: u32,
    },
    /// Events follow on this connection.
    Watching {
        circle: String,
    },
    Wiping,
    /// What `remove` did: `removed`, or `pending` with the proposal and how many more
    /// approvals it needs.
    Removal {
        member: String,
        outcome: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        proposal: Option<String>,
        #[serde(default)]
        missing: u32,
    },
    Exposure(Box<ExposureInfo>),
    Pending {
        policy: u32,
        pending: Vec<PendingInfo>,
    },
    Invites {
        invites: Vec<InviteInfo>,
    },
    /// Notification settings as they now are.
    Notify {
        detail: bool,
        quiet: Option<String>,
        /// Where notifications go: "desktop", "file" or "off".
        sink: String,
    },
}

/// Why a request failed. `Usage` maps to exit code 2, everything else to 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request itself is wrong: unknown mood or kind, malformed frame.
    Usage,
    /// No such circle or item, or a prefix matches several.
    NotFound,
    /// The rules refuse it: not the author, request closed, too long.
    Refused,
    /// The daemon could not do it (disk failure and the like).
    Internal,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorReply {
    pub kind: ErrorKind,
    /// One line, no content of other members.
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusInfo {
    pub running: bool,
    pub version: String,
    pub member_id: String,
    pub name: String,
    pub peer_id: String,
    pub fingerprint: String,
    pub home: String,
    /// Multiaddrs the node listens on.
    pub listen: Vec<String>,
    /// What `kith daemon --listen` asked for.
    #[serde(default)]
    pub requested_listen: Vec<String>,
    pub circles: Vec<CircleInfo>,
    pub connected_peers: Vec<String>,
    /// Second envelopes at an already-used (author, seq): evidence that a member's device
    /// wrote two histories.
    #[serde(default)]
    pub equivocations: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CircleInfo {
    pub id: String,
    pub name: String,
    /// How many members the roster holds.
    pub members: usize,
    /// Whether a steward removed this node's member from the circle.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub removed: bool,
    /// The circle key's epoch this node writes with, and how many it holds.
    #[serde(default)]
    pub epoch: u32,
    #[serde(default)]
    pub epochs_held: usize,
    /// How many stewards must approve adding or removing a member.
    #[serde(default)]
    pub policy: u32,
    pub items: usize,
    /// Received changes refused for breaking the circle's rules (a member writing what only
    /// another may), and the latest few with who wrote them and why.
    #[serde(default)]
    pub rejected_changes: u64,
    #[serde(default)]
    pub recent_rejections: Vec<RejectionInfo>,
}

/// What removing a member would leave them and take from them (`kith remove --dry-run`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExposureInfo {
    pub member: AuthorInfo,
    pub role: String,
    /// What they could read until now and keep: items (with replies) of the circle,
    /// private items they are a reader of, and the key epochs they hold.
    pub keeps_items: usize,
    pub keeps_private_items: usize,
    pub keeps_epochs: usize,
    /// Their open claims, which stop counting, and their own items, which stay.
    pub open_claims: usize,
    pub own_items: usize,
    /// Invites they made that stop admitting anyone (stewards only).
    pub invites_voided: usize,
    /// The approvals the removal needs under the circle's policy.
    pub approvals_needed: u32,
}

/// A roster change or invite waiting for stewards' approvals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingInfo {
    pub id: String,
    /// "remove", "policy" or "invite".
    pub action: String,
    /// The member to remove (id), the new number of approvals, or the invite's id.
    pub target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_name: Option<String>,
    pub proposer: AuthorInfo,
    pub approvals: Vec<AuthorInfo>,
    pub needed: u32,
    /// RFC 3339.
    pub created_at: String,
}

/// One invite, for `kith invite list`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteInfo {
    pub id: String,
    pub creator: AuthorInfo,
    /// RFC 3339.
    pub created_at: String,
    pub expires_at: String,
    pub uses: u32,
    pub used: u32,
    /// "open", "used", "expired", "revoked" or "awaiting approval".
    pub state: String,
    pub approvals: usize,
}

/// One refused change: whose, and why (never content).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectionInfo {
    pub writer: String,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemberInfo {
    pub id: String,
    pub name: String,
    pub role: String,
    pub fingerprint: String,
    pub joined_at: String,
    /// The member's quiet hours as they published them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet: Option<String>,
    /// Whether this is the node's own member.
    #[serde(rename = "self")]
    pub is_self: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorInfo {
    pub id: String,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReplyInfo {
    pub id: String,
    pub author: AuthorInfo,
    pub text: String,
    pub created_at: String,
}

/// One claim on a request or slot, or an acceptance of an offer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClaimInfo {
    pub member: AuthorInfo,
    pub at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Made after every spot was taken (a race): holds no spot, moves up if one frees.
    pub standby: bool,
}

/// One dated slot of a recurring need.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SlotInfo {
    pub id: String,
    pub at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken_by: Option<AuthorInfo>,
    pub claims: Vec<ClaimInfo>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThanksInfo {
    pub member: AuthorInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One item, as `feed --json`, `show --json` and `watch --json` print it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ItemInfo {
    pub id: String,
    pub circle: String,
    /// `checkin`, `request`, `offer` or `nudge`.
    pub kind: String,
    pub author: AuthorInfo,
    /// RFC 3339.
    pub created_at: String,
    pub updated_at: String,
    /// 1 (struggling) to 5 (great); check-ins only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mood: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mood_word: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
    /// The kind of help (meals, childcare, ...); requests only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needed_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urgent: Option<bool>,
    /// open, claimed, fulfilled or cancelled; requests only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Members holding a spot (claims on standby are not listed here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_by: Option<Vec<AuthorInfo>>,
    pub replies: Vec<ReplyInfo>,
    /// A check-in's "what would help".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_start: Option<String>,
    /// "today", "this-week" or "whenever".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urgency: Option<String>,
    /// Helpers or portions wanted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helpers: Option<u32>,
    /// Every claim with its message and standby flag (requests and offers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claims: Vec<ClaimInfo>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slots: Vec<SlotInfo>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thanks: Vec<ThanksInfo>,
    /// When an offer holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// The member a nudge asks to check in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<AuthorInfo>,
    /// Whether only the author and `audience` can read it.
    #[serde(default)]
    pub private: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<Vec<AuthorInfo>>,
    /// The reading member's own claim: "holding", "standby" (lost a race for the last
    /// spot) or absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub my_claim: Option<String>,
}

/// The whole decrypted state of one circle.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExportInfo {
    pub format: String,
    pub exported_at: String,
    pub circle: CircleInfo,
    pub members: Vec<MemberInfo>,
    pub items: Vec<ItemInfo>,
}

/// Pushed on a watching connection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// An item was created or changed (a claim, a reply, a status).
    Item { item: Box<ItemInfo> },
    /// The watcher fell behind and missed `missed` events; a `feed` catches up.
    Lagged { missed: u64 },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_refuse_unknown_fields() {
        let request = Request::CheckIn {
            circle: None,
            mood: "okay".into(),
            note: Some("hi".into()),
            help: None,
            to: vec![],
        };
        let json = serde_json::to_string(&request).unwrap();
        assert_eq!(serde_json::from_str::<Request>(&json).unwrap(), request);
        assert!(serde_json::from_str::<Request>(r#"{"op":"claim","item":"a","x":1}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"op":"nope"}"#).is_err());
        assert!(serde_json::from_str::<Request>("[]").is_err());
    }
}
