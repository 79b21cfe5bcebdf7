//! Turns the document's views into the shapes the control socket sends.

use std::collections::HashMap;

use kith_core::{Circle, ItemKind, ItemView};
use kith_crypto::{CircleId, MemberId};
use kith_ipc::{AuthorInfo, ItemInfo, MemberInfo, ReplyInfo};

/// RFC 3339 in UTC, to the millisecond.
pub(crate) fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
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

pub(crate) fn items(circle: CircleId, doc: &Circle, limit: Option<usize>) -> Vec<ItemInfo> {
    let names = names(doc);
    let circle = circle.to_string();
    doc.items()
        .into_iter()
        .take(limit.unwrap_or(usize::MAX))
        .map(|item| info(&circle, &names, item))
        .collect()
}

pub(crate) fn item(circle: CircleId, doc: &Circle, id: &str) -> Option<ItemInfo> {
    let names = names(doc);
    doc.item(id)
        .map(|item| info(&circle.to_string(), &names, item))
}

fn info(circle: &str, names: &HashMap<String, String>, item: ItemView) -> ItemInfo {
    let is_request = item.kind == ItemKind::Request;
    ItemInfo {
        id: item.id,
        circle: circle.to_string(),
        kind: if is_request { "request" } else { "checkin" }.to_string(),
        author: author(names, &item.author),
        created_at: rfc3339(item.created_at),
        updated_at: rfc3339(item.updated_at),
        mood: item.mood.map(|m| m.value()),
        mood_word: item.mood.map(|m| m.word().to_string()),
        note: item.note,
        title: item.title,
        details: item.details,
        category: item.category.map(|k| k.as_str().to_string()),
        needed_by: item.needed_by.map(rfc3339),
        urgent: is_request.then_some(item.urgent),
        status: item.status.map(|s| s.as_str().to_string()),
        claimed_by: is_request.then(|| {
            item.claims
                .iter()
                .map(|c| author(names, &c.member))
                .collect()
        }),
        replies: item
            .replies
            .into_iter()
            .map(|r| ReplyInfo {
                author: author(names, &r.author),
                id: r.id,
                text: r.text,
                created_at: rfc3339(r.created_at),
            })
            .collect(),
    }
}
