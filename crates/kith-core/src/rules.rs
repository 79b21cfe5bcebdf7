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
//! | an item and any of its fields (status)  | the item's author                    |
//! | the claim keyed `m` on a request        | member `m` (add or withdraw)         |
//! | a reply                                 | the reply's author                   |
//!
//! An author is never a stored field: it is the member whose actor created the object.

use crate::{CoreError, ItemKind, ItemView, MemberView, RequestStatus, Role};

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
}

/// The authorship rule: may `writer`, whose role is `writer_role` (`None` if not in the
/// roster), make this write?
pub fn authorize(
    write: &Write<'_>,
    writer: &str,
    writer_role: Option<Role>,
) -> Result<(), CoreError> {
    match *write {
        Write::Roster if writer_role == Some(Role::Steward) => Ok(()),
        Write::Roster => Err(CoreError::NotSteward),
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

fn require_open(item: &ItemView, status: RequestStatus) -> Result<(), CoreError> {
    if status.is_closed() {
        Err(CoreError::RequestClosed {
            id: item.id.clone(),
            status: status.as_str(),
        })
    } else {
        Ok(())
    }
}

fn has_claim(item: &ItemView, member: &str) -> bool {
    item.claims.iter().any(|c| c.member == member)
}

/// `member` offers to help: only on someone else's open request, once.
pub fn check_claim(item: &ItemView, member: &str) -> Result<(), CoreError> {
    let status = require_request(item)?;
    if item.author == member {
        return Err(CoreError::OwnRequest(item.id.clone()));
    }
    require_open(item, status)?;
    if has_claim(item, member) {
        return Err(CoreError::AlreadyClaimed(item.id.clone()));
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

/// `member` withdraws their offer: only a claim that exists and is their own. Allowed on a
/// closed request too, so nobody stays listed against their will.
pub fn check_unclaim(item: &ItemView, member: &str) -> Result<(), CoreError> {
    require_request(item)?;
    if !has_claim(item, member) {
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

/// `member` marks the request fulfilled or cancelled: only its author, only while open.
pub fn check_close(item: &ItemView, member: &str) -> Result<(), CoreError> {
    let status = require_request(item)?;
    authorize(
        &Write::Item {
            id: &item.id,
            author: &item.author,
        },
        member,
        None,
    )?;
    require_open(item, status)
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
                })
                .collect(),
            replies: vec![],
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
