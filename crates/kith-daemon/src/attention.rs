//! What changed for the local member: the notices a received change deserves.
//!
//! The node keeps a small digest of every item as the member last knew it. After a batch
//! of received changes, the items it touched are compared with their digests: a new
//! urgent request (or one needed today), someone claiming your request or accepting your offer, a nudge for you,
//! losing the race for the last spot, a request you offered to help with being closed.

use kith_core::{Horizon, ItemKind, ItemView, RequestStatus};

use crate::notify::{Notice, NoticeKind};

/// An item as the member last knew it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Digest {
    status: Option<RequestStatus>,
    /// Members with a claim anywhere on the item.
    claimers: Vec<String>,
    /// The member's own claim: `Some(standby)`.
    mine: Option<bool>,
}

/// Whether a later change to `item` could concern `me`: only such items are remembered
/// (a circle of 10,000 items keeps a handful of digests, not 10,000).
pub(crate) fn concerns(item: &ItemView, me: &str) -> bool {
    (item.author == me && matches!(item.kind, ItemKind::Request | ItemKind::Offer))
        || item.urgent
        || item.horizon == Some(Horizon::Today)
        || item.target.as_deref() == Some(me)
        || item.all_claims().any(|c| c.member == me)
}

pub(crate) fn digest(item: &ItemView, me: &str) -> Digest {
    let mut claimers: Vec<String> = item.all_claims().map(|c| c.member.clone()).collect();
    claimers.sort();
    claimers.dedup();
    Digest {
        status: item.status,
        claimers,
        mine: item
            .all_claims()
            .filter(|c| c.member == me)
            .map(|c| c.standby)
            .reduce(|a, b| a && b),
    }
}

/// Notices for member `me` about `item`, which they knew as `before` (`None`: new to
/// them). `name` gives a member's name for the opted-in detail text.
pub(crate) fn notices(
    me: &str,
    before: Option<&Digest>,
    item: &ItemView,
    name: impl Fn(&str) -> String,
) -> Vec<Notice> {
    let mut out = Vec::new();
    let now = digest(item, me);
    let title = item.title.as_deref().unwrap_or("");
    if item.author != me && before.is_none() {
        match item.kind {
            ItemKind::Request if item.urgent || item.horizon == Some(Horizon::Today) => {
                out.push(Notice::new(
                    NoticeKind::UrgentRequest,
                    format!("{} needs help: {title}", name(&item.author)),
                ))
            }
            ItemKind::Nudge if item.target.as_deref() == Some(me) => out.push(Notice::new(
                NoticeKind::Nudge,
                format!("{} would like to hear how you are", name(&item.author)),
            )),
            _ => {}
        }
    }
    if item.author == me {
        let known: &[String] = before.map_or(&[], |b| b.claimers.as_slice());
        for member in now.claimers.iter().filter(|m| !known.contains(m)) {
            let notice = match item.kind {
                ItemKind::Offer => Notice::new(
                    NoticeKind::Accepted,
                    format!("{} accepted your offer: {title}", name(member)),
                ),
                _ => Notice::new(
                    NoticeKind::ClaimOnYourRequest,
                    format!("{} offered to help: {title}", name(member)),
                ),
            };
            out.push(notice);
        }
        return out;
    }
    let Some(before) = before else {
        return out;
    };
    if before.mine == Some(false) && now.mine == Some(true) {
        out.push(Notice::new(
            NoticeKind::LostRace,
            format!("someone else took the last spot first: {title}"),
        ));
    }
    let closed = |s: Option<RequestStatus>| s.is_some_and(RequestStatus::is_closed);
    if now.mine.is_some() && !closed(before.status) && closed(now.status) {
        let how = match now.status {
            Some(RequestStatus::Fulfilled) => "marked done",
            Some(RequestStatus::Withdrawn) => "withdrawn",
            _ => "cancelled",
        };
        out.push(Notice::new(
            NoticeKind::RequestClosed,
            format!("{} {how}: {title}", name(&item.author)),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kith_core::{ClaimView, HelpKind};

    fn request(author: &str, claims: &[(&str, bool)], status: RequestStatus) -> ItemView {
        ItemView {
            id: "aaaaaaaaaa".into(),
            kind: ItemKind::Request,
            author: author.into(),
            created_at: 1,
            updated_at: 1,
            mood: None,
            note: None,
            title: Some("Soup".into()),
            details: None,
            category: Some(HelpKind::Meals),
            needed_by: None,
            urgent: true,
            status: Some(status),
            claims: claims
                .iter()
                .map(|(m, standby)| ClaimView {
                    member: (*m).into(),
                    at: 1,
                    message: None,
                    standby: *standby,
                })
                .collect(),
            replies: vec![],
            help: None,
            window_start: None,
            horizon: None,
            helpers: Some(1),
            slots: vec![],
            thanks: vec![],
            when: None,
            target: None,
            audience: None,
        }
    }

    fn kinds(notices: &[Notice]) -> Vec<NoticeKind> {
        notices.iter().map(|n| n.kind).collect()
    }

    #[test]
    fn new_urgent_requests_and_claims_on_mine() {
        let name = |m: &str| m.to_uppercase();
        let urgent = request("ann", &[], RequestStatus::Open);
        assert_eq!(
            kinds(&notices("bob", None, &urgent, name)),
            [NoticeKind::UrgentRequest]
        );
        // Not for its author, and only once.
        assert!(notices("ann", None, &urgent, name).is_empty());
        assert!(notices("bob", Some(&digest(&urgent, "bob")), &urgent, name).is_empty());
        let claimed = request("ann", &[("bob", false)], RequestStatus::Claimed);
        let told = notices("ann", Some(&digest(&urgent, "ann")), &claimed, name);
        assert_eq!(kinds(&told), [NoticeKind::ClaimOnYourRequest]);
        assert_eq!(told[0].detail, "BOB offered to help: Soup");
    }

    #[test]
    fn the_loser_of_a_race_and_closed_requests_are_told() {
        let name = |m: &str| m.to_string();
        let mine_alone = request("ann", &[("bob", false)], RequestStatus::Claimed);
        let lost = request(
            "ann",
            &[("cat", false), ("bob", true)],
            RequestStatus::Claimed,
        );
        let before = digest(&mine_alone, "bob");
        assert_eq!(
            kinds(&notices("bob", Some(&before), &lost, name)),
            [NoticeKind::LostRace]
        );
        // The winner hears nothing.
        let cat_before = digest(
            &request("ann", &[("cat", false)], RequestStatus::Claimed),
            "cat",
        );
        assert!(notices("cat", Some(&cat_before), &lost, name).is_empty());
        let cancelled = request("ann", &[("bob", false)], RequestStatus::Cancelled);
        assert_eq!(
            kinds(&notices("bob", Some(&before), &cancelled, name)),
            [NoticeKind::RequestClosed]
        );
    }
}
