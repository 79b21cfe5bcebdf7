//! Who may write what, as pure functions over what the document says.
//!
//! Every edit of [`crate::Circle`] calls these before it writes anything. They take plain
//! views and member ids, not the document, so that the checking of changes received from
//! others (apply to a fork, diff, authorise each patch by path and writer) can call the same
//! functions: [`authorize`] is the authorship table, the `check_*` functions add the state
//! rules of the local commands on top of it.
//!
//! The authorship table:
//!
//! | what is written                         | who may write it                     |
//! |-----------------------------------------|--------------------------------------|
//! | circle name, roster                     | a steward                            |
//! | a member's role                         | a steward                            |
//! | a roster entry naming an invite         | any member (admission, see below)    |
//! | the addresses on `m`'s roster entry     | member `m`                           |
//! | a new invite                            | a steward                            |
//! | an invite's revoked flag                | the invite's creator or a steward    |
//! | an item and any of its fields (status)  | the item's author                    |
//! | the claim keyed `m` on a request        | member `m` (add or withdraw)         |
//! | a reply                                 | the reply's author                   |
//!
//! An admission is a roster entry with role `member` that names an invite which, when the
//! entry is written, exists, is not revoked, has not expired and is named by fewer entries
//! than it allows ([`check_admit`]).
//!
//! An author is never a stored field: it is the member whose actor created the object.

use crate::{
    CoreError, InviteView, ItemKind, ItemView, MAX_ADDRESS_CHARS, MAX_ADDRESSES, MemberView,
    RequestStatus, Role,
};

/// One write, named by what it touches and whose that is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write<'a> {
    /// The circle's name or an entry of the roster.
    Roster,
    /// Creating an item or changing any of its fields, including a request's status.
    Item { id: &'a str, author: &'a str },
    /// Adding or withdrawing the claim keyed by `owner` on request `request`.
    Claim { request: &'a str, owner: &'a str },
    /// Creating or changing a reply.
    Reply { id: &'a str, author: &'a str },
    /// Creating an invite.
    InviteCreate,
    /// Revoking invite `id`, created by `creator`.
    InviteRevoke { id: &'a str, creator: &'a str },
    /// Adding a roster entry (role member) that names invite `invite`.
    Admit { invite: &'a str },
    /// The network addresses on `owner`'s roster entry.
    Addresses { owner: &'a str },
    /// A member's role.
    Role,
}

/// The authorship rule: may `writer`, whose role is `writer_role` (`None` if not in the
/// roster), make this write?
pub fn authorize(
    write: &Write<'_>,
    writer: &str,
    writer_role: Option<Role>,
) -> Result<(), CoreError> {
    let steward = writer_role == Some(Role::Steward);
    match *write {
        Write::Roster | Write::Role | Write::InviteCreate if steward => Ok(()),
        Write::Roster | Write::Role | Write::InviteCreate => Err(CoreError::NotSteward),
        Write::InviteRevoke { creator, .. } if steward || creator == writer => Ok(()),
        Write::InviteRevoke { id, .. } => Err(CoreError::NotInviteCreator(id.to_string())),
        Write::Admit { .. } if writer_role.is_some() => Ok(()),
        Write::Admit { .. } => Err(CoreError::NotMember(writer.to_string())),
        Write::Addresses { owner } if owner == writer && writer_role.is_some() => Ok(()),
        Write::Addresses { owner } if owner == writer => {
            Err(CoreError::NotMember(writer.to_string()))
        }
        Write::Addresses { owner } => Err(CoreError::NotOwnEntry(owner.to_string())),
        Write::Item { author, .. } | Write::Reply { author, .. } if author == writer => Ok(()),
        Write::Item { id, .. } | Write::Reply { id, .. } => {
            Err(CoreError::NotAuthor(id.to_string()))
        }
        Write::Claim { owner, .. } if owner == writer => Ok(()),
        Write::Claim { request, .. } => Err(CoreError::NotClaimed(request.to_string())),
    }
}

fn require_request(item: &ItemView) -> Result<RequestStatus, CoreError> {
    match (item.kind, item.status) {
        (ItemKind::Request, Some(status)) => Ok(status),
        _ => Err(CoreError::NotARequest(item.id.clone())),
    }
}

/// A request or an offer: the items that take claims.
fn require_claimable(item: &ItemView) -> Result<RequestStatus, CoreError> {
    match (item.kind, item.status) {
        (ItemKind::Request | ItemKind::Offer, Some(status)) => Ok(status),
        _ => Err(CoreError::NotARequest(item.id.clone())),
    }
}

fn require_open(item: &ItemView, status: RequestStatus) -> Result<(), CoreError> {
    if status.is_closed() || status == RequestStatus::Expired {
        Err(CoreError::RequestClosed {
            id: item.id.clone(),
            status: status.as_str(),
        })
    } else {
        Ok(())
    }
}

/// The claims a claim of `member` goes among: the request's (or offer's), or a slot's.
fn claims_of<'a>(
    item: &'a ItemView,
    slot: Option<&str>,
) -> Result<&'a [crate::ClaimView], CoreError> {
    match slot {
        None if !item.slots.is_empty() => Err(CoreError::NeedsSlot(item.id.clone())),
        None => Ok(&item.claims),
        Some(slot) => item
            .slots
            .iter()
            .find(|s| s.id == slot)
            .map(|s| s.claims.as_slice())
            .ok_or_else(|| CoreError::UnknownSlot {
                id: item.id.clone(),
                slot: slot.to_string(),
            }),
    }
}

/// `member` offers to help: only on someone else's open request, once.
pub fn check_claim(item: &ItemView, member: &str) -> Result<(), CoreError> {
    check_claim_at(item, member, None, i64::MIN)
}

/// `member` offers to help with a request (in `slot`, for a recurring need) or accepts an
/// offer, at `now`: only someone else's, while open and not expired, once, while a spot is
/// free. Past slots take no claims.
pub fn check_claim_at(
    item: &ItemView,
    member: &str,
    slot: Option<&str>,
    now: i64,
) -> Result<(), CoreError> {
    require_claimable(item)?;
    if item.author == member {
        return Err(CoreError::OwnRequest(item.id.clone()));
    }
    let status = item.status_at(now).unwrap_or(RequestStatus::Open);
    require_open(item, status)?;
    let claims = claims_of(item, slot)?;
    if claims.iter().any(|c| c.member == member) {
        return Err(CoreError::AlreadyClaimed(item.id.clone()));
    }
    if let Some(slot_id) = slot {
        let slot = item.slots.iter().find(|s| s.id == slot_id);
        if slot.is_some_and(|s| s.at < now) {
            return Err(CoreError::RequestClosed {
                id: format!("{} slot {slot_id}", item.id),
                status: "past",
            });
        }
        if !claims.is_empty() {
            return Err(CoreError::SlotTaken {
                id: item.id.clone(),
                slot: slot_id.to_string(),
            });
        }
    } else if let Some(wanted) = item.helpers {
        let holding = claims.iter().filter(|c| !c.standby).count();
        if holding >= wanted as usize {
            return Err(CoreError::RequestFull(item.id.clone()));
        }
    }
    authorize(
        &Write::Claim {
            request: &item.id,
            owner: member,
        },
        member,
        None,
    )
}

/// `member` changes the message of a claim they already made: allowed while the item is
/// not closed.
pub fn check_claim_update(
    item: &ItemView,
    member: &str,
    slot: Option<&str>,
) -> Result<(), CoreError> {
    let status = require_claimable(item)?;
    if status.is_closed() {
        return Err(CoreError::RequestClosed {
            id: item.id.clone(),
            status: status.as_str(),
        });
    }
    let claims = claims_of(item, slot)?;
    if !claims.iter().any(|c| c.member == member) {
        return Err(CoreError::NotClaimed(item.id.clone()));
    }
    Ok(())
}

/// `member` withdraws their offer: only a claim that exists and is their own. Allowed on a
/// closed request too, so nobody stays listed against their will.
pub fn check_unclaim(item: &ItemView, member: &str) -> Result<(), CoreError> {
    check_unclaim_at(item, member, None)
}

/// [`check_unclaim`] for a claim in `slot` (or an offer's acceptance).
pub fn check_unclaim_at(
    item: &ItemView,
    member: &str,
    slot: Option<&str>,
) -> Result<(), CoreError> {
    require_claimable(item)?;
    let claims = claims_of(item, slot)?;
    if !claims.iter().any(|c| c.member == member) {
        return Err(CoreError::NotClaimed(item.id.clone()));
    }
    authorize(
        &Write::Claim {
            request: &item.id,
            owner: member,
        },
        member,
        None,
    )
}

/// `member` marks the request fulfilled or cancelled (or withdraws an offer): only its
/// author, only while open. An expired request can still be closed.
pub fn check_close(item: &ItemView, member: &str) -> Result<(), CoreError> {
    let status = require_claimable(item)?;
    authorize(
        &Write::Item {
            id: &item.id,
            author: &item.author,
        },
        member,
        None,
    )?;
    if status.is_closed() {
        return Err(CoreError::RequestClosed {
            id: item.id.clone(),
            status: status.as_str(),
        });
    }
    Ok(())
}

/// The asker thanks `helper`: only the request's author, only someone who claimed it.
pub fn check_thank(item: &ItemView, writer: &str, helper: &str) -> Result<(), CoreError> {
    require_request(item)?;
    authorize(
        &Write::Item {
            id: &item.id,
            author: &item.author,
        },
        writer,
        None,
    )?;
    if !item.all_claims().any(|c| c.member == helper) {
        return Err(CoreError::NotClaimed(item.id.clone()));
    }
    Ok(())
}

/// The author edits an item's words or times: not a private one (sealed once), not a
/// closed one.
pub fn check_edit(item: &ItemView, writer: &str) -> Result<(), CoreError> {
    authorize(
        &Write::Item {
            id: &item.id,
            author: &item.author,
        },
        writer,
        None,
    )?;
    if item.audience.is_some() {
        return Err(CoreError::PrivateEdit(item.id.clone()));
    }
    if let Some(status) = item.status
        && status.is_closed()
    {
        return Err(CoreError::RequestClosed {
            id: item.id.clone(),
            status: status.as_str(),
        });
    }
    Ok(())
}

/// The terms of a new request: a window that ends after it starts, a sane number of
/// helpers, and slots within limits.
pub fn check_request_terms(request: &crate::NewRequest) -> Result<(), CoreError> {
    if let (Some(start), Some(end)) = (request.window_start, request.needed_by)
        && start >= end
    {
        return Err(CoreError::Invalid {
            what: "time window",
            why: "it must end after it starts".into(),
        });
    }
    if request.window_start.is_some() && request.needed_by.is_none() {
        return Err(CoreError::Invalid {
            what: "time window",
            why: "a window needs an end".into(),
        });
    }
    if let Some(n) = request.helpers
        && (n == 0 || n > crate::MAX_HELPERS)
    {
        return Err(CoreError::Invalid {
            what: "helpers",
            why: format!("between 1 and {}", crate::MAX_HELPERS),
        });
    }
    if request.slots.len() > crate::MAX_SLOTS {
        return Err(CoreError::Invalid {
            what: "slots",
            why: format!(
                "{} slots; at most {}",
                request.slots.len(),
                crate::MAX_SLOTS
            ),
        });
    }
    if !request.slots.is_empty() && request.helpers.is_some() {
        return Err(CoreError::Invalid {
            what: "helpers",
            why: "a recurring need takes one helper per slot".into(),
        });
    }
    Ok(())
}

/// Replies go on check-ins and requests of any status; `item` is `None` when `id` names
/// nothing readable (a reply id, or nothing at all).
pub fn check_reply(item: Option<&ItemView>, id: &str) -> Result<(), CoreError> {
    item.map(|_| ())
        .ok_or_else(|| CoreError::UnknownItem(id.to_string()))
}

/// A steward adds `new_id`, who must not be in the roster yet.
pub fn check_add_member(
    roster: &[MemberView],
    writer: &str,
    new_id: &str,
) -> Result<(), CoreError> {
    let role = roster.iter().find(|m| m.id == writer).map(|m| m.role);
    authorize(&Write::Roster, writer, role)?;
    if roster.iter().any(|m| m.id == new_id) {
        return Err(CoreError::AlreadyMember(new_id.to_string()));
    }
    Ok(())
}

fn role_of(roster: &[MemberView], member: &str) -> Option<Role> {
    roster.iter().find(|m| m.id == member).map(|m| m.role)
}

/// A steward makes an invite: at least one use, expiring after `now`.
pub fn check_create_invite(
    roster: &[MemberView],
    writer: &str,
    expires_at: i64,
    uses: u32,
    now: i64,
) -> Result<(), CoreError> {
    authorize(&Write::InviteCreate, writer, role_of(roster, writer))?;
    if uses == 0 || expires_at <= now {
        return Err(CoreError::InviteLimits);
    }
    Ok(())
}

/// The invite's creator or a steward revokes it; `invite` is `None` when `id` names no
/// readable invite. Revoking twice is allowed (it changes nothing anyone relies on).
pub fn check_revoke_invite(
    roster: &[MemberView],
    writer: &str,
    invite: Option<&InviteView>,
    id: &str,
) -> Result<(), CoreError> {
    let invite = invite.ok_or_else(|| CoreError::UnknownInvite(id.to_string()))?;
    authorize(
        &Write::InviteRevoke {
            id: &invite.id,
            creator: &invite.creator,
        },
        writer,
        role_of(roster, writer),
    )
}

/// Whether `invite` still admits someone at `now`: it exists, is not revoked, has not
/// expired and fewer members than it allows came through it. Checked in that order.
pub fn check_invite_valid(
    invite: Option<&InviteView>,
    id: &str,
    now: i64,
) -> Result<(), CoreError> {
    let invite = invite.ok_or_else(|| CoreError::UnknownInvite(id.to_string()))?;
    if invite.revoked {
        return Err(CoreError::InviteRevoked(id.to_string()));
    }
    if now >= invite.expires_at {
        return Err(CoreError::InviteExpired(id.to_string()));
    }
    if invite.used >= invite.uses {
        return Err(CoreError::InviteUsedUp(id.to_string()));
    }
    Ok(())
}

/// Any member admits `new_id`, who holds invite `id` (`invite` is `None` when it names no
/// readable invite) and is not in the roster yet.
pub fn check_admit(
    roster: &[MemberView],
    writer: &str,
    new_id: &str,
    invite: Option<&InviteView>,
    id: &str,
    now: i64,
) -> Result<(), CoreError> {
    authorize(
        &Write::Admit { invite: id },
        writer,
        role_of(roster, writer),
    )?;
    if roster.iter().any(|m| m.id == new_id) {
        return Err(CoreError::AlreadyMember(new_id.to_string()));
    }
    check_invite_valid(invite, id, now)
}

/// A steward sets `member`'s role. The last steward may not step down, so that someone
/// can still add members and make invites.
pub fn check_set_role(
    roster: &[MemberView],
    writer: &str,
    member: &str,
    role: Role,
) -> Result<(), CoreError> {
    authorize(&Write::Role, writer, role_of(roster, writer))?;
    let current =
        role_of(roster, member).ok_or_else(|| CoreError::NotMember(member.to_string()))?;
    let stewards = roster.iter().filter(|m| m.role == Role::Steward).count();
    if current == Role::Steward && role != Role::Steward && stewards <= 1 {
        return Err(CoreError::LastSteward);
    }
    Ok(())
}

/// `writer` publishes addresses on their own roster entry: at most [`MAX_ADDRESSES`], each
/// 1 to [`MAX_ADDRESS_CHARS`] characters of printable ASCII without whitespace (so that
/// joining them with `'\n'` is unambiguous). Returns the value to store.
pub fn check_addresses(
    roster: &[MemberView],
    writer: &str,
    addresses: &[String],
) -> Result<String, CoreError> {
    authorize(
        &Write::Addresses { owner: writer },
        writer,
        role_of(roster, writer),
    )?;
    if addresses.len() > MAX_ADDRESSES {
        return Err(CoreError::TooManyAddresses(addresses.len()));
    }
    for a in addresses {
        if a.len() > MAX_ADDRESS_CHARS {
            return Err(CoreError::TooLong {
                field: "network address",
                len: a.len(),
                max: MAX_ADDRESS_CHARS,
            });
        }
        if a.is_empty() || !a.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(CoreError::BadAddress(a.clone()));
        }
    }
    Ok(addresses.join("\n"))
}

/// A required text: trimmed, not empty, at most `max` characters.
pub fn check_text(field: &'static str, text: &str, max: usize) -> Result<String, CoreError> {
    check_optional_text(field, Some(text), max)?.ok_or(CoreError::Empty(field))
}

/// An optional text: trimmed; blank counts as absent; at most `max` characters.
pub fn check_optional_text(
    field: &'static str,
    text: Option<&str>,
    max: usize,
) -> Result<Option<String>, CoreError> {
    let Some(t) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let len = t.chars().count();
    if len > max {
        return Err(CoreError::TooLong { field, len, max });
    }
    Ok(Some(t.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(author: &str, status: RequestStatus, claimers: &[&str]) -> ItemView {
        ItemView {
            id: "aaaaaaaaaa".into(),
            kind: ItemKind::Request,
            author: author.into(),
            created_at: 1,
            updated_at: 1,
            mood: None,
            note: None,
            title: Some("t".into()),
            details: None,
            category: Some(crate::HelpKind::Ride),
            needed_by: None,
            urgent: false,
            status: Some(status),
            claims: claimers
                .iter()
                .map(|m| crate::ClaimView {
                    member: (*m).into(),
                    at: 2,
                    message: None,
                    standby: false,
                })
                .collect(),
            replies: vec![],
            help: None,
            window_start: None,
            horizon: None,
            helpers: None,
            slots: vec![],
            thanks: vec![],
            when: None,
            target: None,
            audience: None,
        }
    }

    #[test]
    fn authorship_table() {
        let item = Write::Item {
            id: "x",
            author: "ann",
        };
        assert_eq!(authorize(&item, "ann", None), Ok(()));
        assert_eq!(
            authorize(&item, "bob", Some(Role::Steward)),
            Err(CoreError::NotAuthor("x".into()))
        );
        let claim = Write::Claim {
            request: "x",
            owner: "bob",
        };
        assert_eq!(authorize(&claim, "bob", None), Ok(()));
        assert_eq!(
            authorize(&claim, "ann", None),
            Err(CoreError::NotClaimed("x".into()))
        );
        let reply = Write::Reply {
            id: "r",
            author: "bob",
        };
        assert_eq!(
            authorize(&reply, "ann", None),
            Err(CoreError::NotAuthor("r".into()))
        );
        assert_eq!(
            authorize(&Write::Roster, "ann", Some(Role::Steward)),
            Ok(())
        );
        assert_eq!(
            authorize(&Write::Roster, "ann", Some(Role::Member)),
            Err(CoreError::NotSteward)
        );
        assert_eq!(
            authorize(&Write::Roster, "ann", None),
            Err(CoreError::NotSteward)
        );
    }

    fn roster() -> Vec<MemberView> {
        [("ann", Role::Steward), ("bob", Role::Member)]
            .into_iter()
            .map(|(id, role)| MemberView {
                id: id.into(),
                name: id.into(),
                role,
                joined_at: 1,
                addresses: vec![],
                quiet: None,
                invited_via: None,
                handed: None,
                removed: None,
            })
            .collect()
    }

    fn invite(uses: u32, used: u32, revoked: bool) -> InviteView {
        InviteView {
            id: "inv".into(),
            creator: "ann".into(),
            verifier: [0; 32],
            expires_at: 100,
            uses,
            used,
            revoked,
            created_at: 1,
            approvals: vec!["ann".into()],
        }
    }

    #[test]
    fn new_writes_in_the_table() {
        let steward = Some(Role::Steward);
        let member = Some(Role::Member);
        for w in [Write::InviteCreate, Write::Role] {
            assert_eq!(authorize(&w, "ann", steward), Ok(()));
            assert_eq!(authorize(&w, "bob", member), Err(CoreError::NotSteward));
            assert_eq!(authorize(&w, "eve", None), Err(CoreError::NotSteward));
        }
        let revoke = Write::InviteRevoke {
            id: "inv",
            creator: "bob",
        };
        assert_eq!(authorize(&revoke, "bob", member), Ok(()));
        assert_eq!(authorize(&revoke, "ann", steward), Ok(()));
        assert_eq!(
            authorize(&revoke, "cat", member),
            Err(CoreError::NotInviteCreator("inv".into()))
        );
        let admit = Write::Admit { invite: "inv" };
        assert_eq!(authorize(&admit, "bob", member), Ok(()));
        assert_eq!(
            authorize(&admit, "eve", None),
            Err(CoreError::NotMember("eve".into()))
        );
        let addresses = Write::Addresses { owner: "bob" };
        assert_eq!(authorize(&addresses, "bob", member), Ok(()));
        assert_eq!(
            authorize(&addresses, "ann", steward),
            Err(CoreError::NotOwnEntry("bob".into()))
        );
        assert_eq!(
            authorize(&addresses, "bob", None),
            Err(CoreError::NotMember("bob".into()))
        );
    }

    #[test]
    fn invite_and_roster_rules() {
        let r = roster();
        assert_eq!(check_create_invite(&r, "ann", 100, 1, 50), Ok(()));
        assert_eq!(
            check_create_invite(&r, "bob", 100, 1, 50),
            Err(CoreError::NotSteward)
        );
        assert_eq!(
            check_create_invite(&r, "ann", 50, 1, 50),
            Err(CoreError::InviteLimits)
        );
        let ok = invite(2, 1, false);
        assert_eq!(check_admit(&r, "bob", "cat", Some(&ok), "inv", 99), Ok(()));
        let err = |e| Err::<(), _>(e);
        assert_eq!(
            check_admit(&r, "bob", "cat", Some(&ok), "inv", 100),
            err(CoreError::InviteExpired("inv".into()))
        );
        assert_eq!(
            check_admit(&r, "bob", "cat", Some(&invite(1, 1, false)), "inv", 1),
            err(CoreError::InviteUsedUp("inv".into()))
        );
        assert_eq!(
            check_admit(&r, "bob", "cat", Some(&invite(1, 0, true)), "inv", 1),
            err(CoreError::InviteRevoked("inv".into()))
        );
        assert_eq!(
            check_admit(&r, "bob", "cat", None, "inv", 1),
            err(CoreError::UnknownInvite("inv".into()))
        );
        assert_eq!(
            check_admit(&r, "bob", "ann", Some(&ok), "inv", 1),
            err(CoreError::AlreadyMember("ann".into()))
        );
        assert_eq!(
            check_admit(&r, "eve", "cat", Some(&ok), "inv", 1),
            err(CoreError::NotMember("eve".into()))
        );
        assert_eq!(check_revoke_invite(&r, "ann", Some(&ok), "inv"), Ok(()));
        assert_eq!(
            check_revoke_invite(&r, "bob", Some(&ok), "inv"),
            err(CoreError::NotInviteCreator("inv".into()))
        );
        assert_eq!(check_set_role(&r, "ann", "bob", Role::Steward), Ok(()));
        assert_eq!(
            check_set_role(&r, "ann", "ann", Role::Member),
            err(CoreError::LastSteward)
        );
        assert_eq!(
            check_set_role(&r, "bob", "bob", Role::Steward),
            err(CoreError::NotSteward)
        );
        assert_eq!(
            check_set_role(&r, "ann", "cat", Role::Member),
            err(CoreError::NotMember("cat".into()))
        );
        let list = vec![
            "/ip4/1.2.3.4/tcp/1".to_string(),
            "/dns4/x/tcp/2".to_string(),
        ];
        assert_eq!(
            check_addresses(&r, "bob", &list),
            Ok("/ip4/1.2.3.4/tcp/1\n/dns4/x/tcp/2".into())
        );
        assert_eq!(check_addresses(&r, "bob", &[]), Ok(String::new()));
        assert_eq!(
            check_addresses(&r, "eve", &list),
            Err(CoreError::NotMember("eve".into()))
        );
        assert_eq!(
            check_addresses(&r, "bob", &["a\tb".to_string()]),
            Err(CoreError::BadAddress("a\tb".into()))
        );
    }

    #[test]
    fn state_rules() {
        let open = request("ann", RequestStatus::Open, &[]);
        assert_eq!(check_claim(&open, "bob"), Ok(()));
        assert_eq!(
            check_claim(&open, "ann"),
            Err(CoreError::OwnRequest(open.id.clone()))
        );
        assert_eq!(
            check_unclaim(&open, "bob"),
            Err(CoreError::NotClaimed(open.id.clone()))
        );
        let claimed = request("ann", RequestStatus::Claimed, &["bob"]);
        assert_eq!(
            check_claim(&claimed, "bob"),
            Err(CoreError::AlreadyClaimed(open.id.clone()))
        );
        assert_eq!(check_unclaim(&claimed, "bob"), Ok(()));
        assert_eq!(
            check_close(&claimed, "bob"),
            Err(CoreError::NotAuthor(open.id.clone()))
        );
        assert_eq!(check_close(&claimed, "ann"), Ok(()));
        let done = request("ann", RequestStatus::Fulfilled, &["bob"]);
        let closed = Err(CoreError::RequestClosed {
            id: open.id.clone(),
            status: "fulfilled",
        });
        assert_eq!(check_close(&done, "ann"), closed);
        assert_eq!(check_claim(&done, "cat"), closed);
        assert_eq!(check_unclaim(&done, "bob"), Ok(()));
    }

    #[test]
    fn texts() {
        assert_eq!(check_text("title", "  hi ", 5), Ok("hi".into()));
        assert_eq!(
            check_text("title", "   ", 5),
            Err(CoreError::Empty("title"))
        );
        assert_eq!(
            check_text("title", "ééééééé", 5),
            Err(CoreError::TooLong {
                field: "title",
                len: 7,
                max: 5
            })
        );
        assert_eq!(check_optional_text("note", Some(" \n"), 5), Ok(None));
        assert_eq!(check_optional_text("note", None, 5), Ok(None));
        assert_eq!(
            check_optional_text("note", Some("ééééé"), 5),
            Ok(Some("ééééé".into()))
        );
    }
}
