//! Turns the document's views into the shapes the control socket sends.

use std::collections::HashMap;

use kith_core::{Circle, ClaimView, CoreError, HelpKind, ItemKind, ItemView, RequestStatus};
use kith_crypto::{CircleId, MemberId};
use kith_ipc::{
    AuthorInfo, ClaimInfo, FeedFilter, ItemInfo, MemberInfo, ReplyInfo, SlotInfo, ThanksInfo,
};

/// RFC 3339 in UTC, always with three digits of milliseconds, so that times sort as text.
pub(crate) fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| format!("{t:.3}"))
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string())
}

pub(crate) fn members(doc: &Circle, me: &MemberId) -> Vec<MemberInfo> {
    let me = me.to_string();
    doc.members()
        .into_iter()
        .map(|m| MemberInfo {
            fingerprint: m
                .id
                .parse::<MemberId>()
                .map(|id| id.fingerprint())
                .unwrap_or_default(),
            is_self: m.id == me,
            id: m.id,
            name: m.name,
            role: m.role.as_str().to_string(),
            joined_at: rfc3339(m.joined_at),
            quiet: m.quiet,
        })
        .collect()
}

/// Names by member id, for attributing items.
fn names(doc: &Circle) -> HashMap<String, String> {
    doc.members().into_iter().map(|m| (m.id, m.name)).collect()
}

fn author(names: &HashMap<String, String>, id: &str) -> AuthorInfo {
    AuthorInfo {
        id: id.to_string(),
        name: names
            .get(id)
            .cloned()
            .unwrap_or_else(|| "(unknown member)".to_string()),
    }
}

/// The circle's items newest first, as `feed` shows them to member `me` at `now`.
pub(crate) fn items(
    circle: CircleId,
    doc: &Circle,
    limit: Option<usize>,
    filter: &FeedFilter,
    now: i64,
) -> Result<Vec<ItemInfo>, CoreError> {
    let names = names(doc);
    let circle = circle.to_string();
    let kind = parse_kind_filter(filter.kind.as_deref())?;
    Ok(doc
        .items()
        .into_iter()
        .filter(|item| keep(item, doc.me(), filter, kind, now))
        .take(limit.unwrap_or(usize::MAX))
        .map(|item| info(&circle, &names, item, doc.me(), now))
        .collect())
}

/// What `--kind` names: a kind of item or a kind of help.
#[derive(Clone, Copy)]
enum KindFilter {
    Item(ItemKind),
    Help(HelpKind),
}

fn parse_kind_filter(kind: Option<&str>) -> Result<Option<KindFilter>, CoreError> {
    let Some(kind) = kind else {
        return Ok(None);
    };
    if let Ok(item) = kind.parse::<ItemKind>() {
        return Ok(Some(KindFilter::Item(item)));
    }
    kind.parse::<HelpKind>()
        .map(|k| Some(KindFilter::Help(k)))
        .map_err(|_| CoreError::UnknownValue {
            what: "kind",
            value: kind.to_string(),
            expected: "checkin, request, offer, nudge, meals, childcare, ride, errand, talk, \
                       info, other",
        })
}

fn keep(
    item: &ItemView,
    me: &str,
    filter: &FeedFilter,
    kind: Option<KindFilter>,
    now: i64,
) -> bool {
    if filter.open
        && !matches!(
            item.status_at(now),
            Some(RequestStatus::Open | RequestStatus::Claimed)
        )
    {
        return false;
    }
    if filter.mine && item.author != me {
        return false;
    }
    if filter.claimed_by_me && !item.all_claims().any(|c| c.member == me) {
        return false;
    }
    match kind {
        Some(KindFilter::Item(k)) => item.kind == k,
        Some(KindFilter::Help(k)) => item.category == Some(k),
        None => true,
    }
}

pub(crate) fn item(circle: CircleId, doc: &Circle, id: &str, now: i64) -> Option<ItemInfo> {
    let names = names(doc);
    doc.item(id)
        .map(|item| info(&circle.to_string(), &names, item, doc.me(), now))
}

fn claim_info(names: &HashMap<String, String>, claim: &ClaimView) -> ClaimInfo {
    ClaimInfo {
        member: author(names, &claim.member),
        at: rfc3339(claim.at),
        message: claim.message.clone(),
        standby: claim.standby,
    }
}

fn info(
    circle: &str,
    names: &HashMap<String, String>,
    item: ItemView,
    me: &str,
    now: i64,
) -> ItemInfo {
    let takes_claims = matches!(item.kind, ItemKind::Request | ItemKind::Offer);
    let status = item.status_at(now);
    let my_claim = item
        .all_claims()
        .find(|c| c.member == me)
        .map(|c| if c.standby { "standby" } else { "holding" }.to_string());
    ItemInfo {
        circle: circle.to_string(),
        kind: item.kind.as_str().to_string(),
        author: author(names, &item.author),
        created_at: rfc3339(item.created_at),
        updated_at: rfc3339(item.updated_at),
        mood: item.mood.map(|m| m.value()),
        mood_word: item.mood.map(|m| m.word().to_string()),
        note: item.note.clone(),
        title: item.title.clone(),
        details: item.details.clone(),
        category: item.category.map(|k| k.as_str().to_string()),
        needed_by: item.needed_by.map(rfc3339),
        urgent: (item.kind == ItemKind::Request).then_some(item.urgent),
        status: status.map(|s| s.as_str().to_string()),
        claimed_by: takes_claims.then(|| {
            let mut seen = Vec::new();
            item.all_claims()
                .filter(|c| !c.standby)
                .filter(|c| {
                    let new = !seen.contains(&c.member);
                    seen.push(c.member.clone());
                    new
                })
                .map(|c| author(names, &c.member))
                .collect()
        }),
        replies: item
            .replies
            .iter()
            .map(|r| ReplyInfo {
                author: author(names, &r.author),
                id: r.id.clone(),
                text: r.text.clone(),
                created_at: rfc3339(r.created_at),
            })
            .collect(),
        help: item.help.clone(),
        window_start: item.window_start.map(rfc3339),
        // Spelled as `--urgency` takes it.
        urgency: item.horizon.map(|h| h.as_str().replace(' ', "-")),
        helpers: item.helpers,
        claims: item.claims.iter().map(|c| claim_info(names, c)).collect(),
        slots: item
            .slots
            .iter()
            .map(|s| SlotInfo {
                id: s.id.clone(),
                at: rfc3339(s.at),
                taken_by: s.taken_by().map(|m| author(names, m)),
                claims: s.claims.iter().map(|c| claim_info(names, c)).collect(),
            })
            .collect(),
        thanks: item
            .thanks
            .iter()
            .map(|t| ThanksInfo {
                member: author(names, &t.member),
                note: t.note.clone(),
            })
            .collect(),
        when: item.when.clone(),
        target: item.target.as_deref().map(|t| author(names, t)),
        private: item.audience.is_some(),
        audience: item
            .audience
            .as_ref()
            .map(|a| a.iter().map(|m| author(names, m)).collect()),
        my_claim,
        id: item.id,
    }
}
