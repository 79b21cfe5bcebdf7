//! What the commands print: one JSON document with `--json`, otherwise lines a person reads
//! at a glance (mood words, relative times, status).

use jiff::Timestamp;
use kith_ipc::{Client, Event, ItemInfo, Reply, Request};

use crate::Failure;

fn unexpected(reply: &Reply) -> Failure {
    Failure::Failed(anyhow::anyhow!(
        "unexpected answer from the daemon: {reply:?}"
    ))
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Failure::Failed(anyhow::anyhow!("cannot format JSON: {e}")))?;
    println!("{text}");
    Ok(())
}

pub fn status(reply: &Reply, json: bool) -> Result<(), Failure> {
    let Reply::Status(status) = reply else {
        return Err(unexpected(reply));
    };
    if json {
        return print_json(status);
    }
    println!("kith daemon running (version {})", status.version);
    println!("  you          {} ({})", status.name, status.member_id);
    println!("  safety no.   {}", status.fingerprint);
    println!("  peer id      {}", status.peer_id);
    println!("  home         {}", status.home);
    if status.listen.is_empty() {
        println!("  listening    nowhere (no network yet)");
    } else {
        println!("  listening    {}", status.listen.join(", "));
    }
    println!("  peers        {} connected", status.connected_peers.len());
    if status.circles.is_empty() {
        println!("  circles      none yet: `kith circle create NAME`");
    }
    for circle in &status.circles {
        println!(
            "  circle       {} · {} · {} items · {}",
            circle.name,
            plural(circle.members, "member"),
            circle.items,
            circle.id
        );
        if circle.rejected_changes > 0 {
            println!(
                "  refused      {} from members that break the circle's rules",
                plural_u64(circle.rejected_changes, "change")
            );
            for rejection in circle.recent_rejections.iter().rev().take(3) {
                println!("               {}: {}", rejection.writer, rejection.reason);
            }
        }
    }
    if status.equivocations > 0 {
        println!(
            "  evidence     {} of a member's device writing two histories",
            status.equivocations
        );
    }
    Ok(())
}

fn plural_u64(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

pub fn created(reply: &Reply, json: bool) -> Result<(), Failure> {
    let Reply::Created { id } = reply else {
        return Err(unexpected(reply));
    };
    if json {
        print_json(&serde_json::json!({ "id": id }))
    } else {
        println!("{id}");
        Ok(())
    }
}

pub fn invite(reply: &Reply, json: bool) -> Result<(), Failure> {
    let Reply::Invite {
        code,
        id,
        circle,
        expires_at,
        uses,
    } = reply
    else {
        return Err(unexpected(reply));
    };
    if json {
        return print_json(&serde_json::json!({
            "code": code, "id": id, "circle": circle, "expires_at": expires_at, "uses": uses,
        }));
    }
    println!("{code}");
    eprintln!(
        "kith: give this code to the person you invite, privately; it works {} until {}",
        if *uses == 1 {
            "once".to_string()
        } else {
            format!("{uses} times")
        },
        short_date(expires_at)
    );
    Ok(())
}

/// `text` as a QR code for a terminal: two rows of modules per line, with the quiet zone.
/// Dark modules are drawn as blanks, which scans on the usual light-on-dark terminal.
pub fn qr(text: &str) -> Result<String, Failure> {
    use qrcode::render::unicode::Dense1x2;
    let code = qrcode::QrCode::new(text.as_bytes())
        .map_err(|e| Failure::Failed(anyhow::anyhow!("cannot draw the code as a QR code: {e}")))?;
    let mut drawn = code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build();
    drawn.push('\n');
    Ok(drawn)
}

pub fn done(request: &Request, reply: &Reply, json: bool) -> Result<(), Failure> {
    let Reply::Done { id } = reply else {
        return Err(unexpected(reply));
    };
    if json {
        return print_json(&serde_json::json!({ "id": id, "ok": true }));
    }
    let what = match request {
        Request::Claim {
            message: Some(_), ..
        } => "you offered to help (with a message) with",
        Request::Claim { .. } => "you offered to help with",
        Request::Unclaim { .. } => "you withdrew your offer on",
        Request::Done { .. } => "marked fulfilled:",
        Request::Cancel { .. } => "closed:",
        Request::Reply { .. } => "replied to",
        Request::Thank { .. } => "thanked your helpers on",
        Request::Edit { .. } => "edited",
        Request::RevokeInvite { .. } => "revoked invite",
        Request::SetRole { role, .. } if role == "steward" => "now a steward:",
        Request::SetRole { .. } => "now a member (not a steward):",
        _ => "updated",
    };
    println!("{what} {id}");
    Ok(())
}

/// `kith remove`, `kith approve`, `kith circle policy`: done, waiting for approvals, or
/// (with --dry-run) what the member keeps and loses.
pub fn removal(reply: &Reply, json: bool) -> Result<(), Failure> {
    match reply {
        Reply::Removal {
            member,
            outcome,
            proposal,
            missing,
        } => {
            if json {
                return print_json(reply);
            }
            match (outcome.as_str(), proposal) {
                ("removed", _) => println!(
                    "removed {member}: their connections are refused and the circle has a new key they do not hold"
                ),
                // `kith approve` of a role change.
                ("done", _) if !member.is_empty() => println!("role changed: {member}"),
                ("pending", Some(id)) => println!(
                    "waiting for {missing} more steward approval(s): another steward runs `kith approve {id}`"
                ),
                _ => println!("done"),
            }
            Ok(())
        }
        Reply::Exposure(info) => {
            if json {
                return print_json(info);
            }
            let name = one_line(&info.member.name);
            println!("removing {name} ({}), {}:", info.member.id, info.role);
            println!("  they keep what they could read until now:");
            println!(
                "    {} item(s) posted to the whole circle, with their replies",
                info.keeps_items
            );
            println!(
                "    {} private item(s) addressed to them (of those you can see)",
                info.keeps_private_items
            );
            println!(
                "    {} circle key epoch(s), which open only what was written before",
                info.keeps_epochs
            );
            println!("  they lose:");
            println!("    everything written after the removal (a new key they never get)");
            println!("    every connection to the circle's members");
            println!(
                "    {} open offer(s) of help, which stop counting",
                info.open_claims
            );
            if info.invites_voided > 0 {
                println!(
                    "    {} unused invite(s) they made, which stop admitting anyone",
                    info.invites_voided
                );
            }
            println!(
                "  their {} own item(s) stay in the circle's history",
                info.own_items
            );
            if info.approvals_needed > 1 {
                println!(
                    "  the circle's policy asks for {} stewards' approvals",
                    info.approvals_needed
                );
            }
            Ok(())
        }
        // An invite's approval.
        Reply::Done { id } => {
            if json {
                return print_json(&serde_json::json!({ "id": id, "outcome": "approved" }));
            }
            println!("approved: {id}");
            Ok(())
        }
        other => Err(unexpected(other)),
    }
}

/// `kith pending`.
pub fn pending(reply: &Reply, json: bool) -> Result<(), Failure> {
    let Reply::Pending { policy, pending } = reply else {
        return Err(unexpected(reply));
    };
    if json {
        return print_json(reply);
    }
    println!("policy: {policy} steward approval(s) to add or remove a member");
    if pending.is_empty() {
        println!("nothing is waiting for approval");
    }
    for p in pending {
        let what = match p.action.as_str() {
            "remove" => format!(
                "remove {}",
                one_line(p.target_name.as_deref().unwrap_or(&p.target))
            ),
            "policy" => format!("ask for {} approvals", p.target),
            "appoint" | "step down" => format!(
                "{} {}",
                p.action,
                one_line(p.target_name.as_deref().unwrap_or(&p.target))
            ),
            _ => format!("invite {}", p.target),
        };
        let approvers: Vec<String> = p.approvals.iter().map(|a| one_line(&a.name)).collect();
        println!(
            "{}  {what}  ({} of {} approvals: {})",
            p.id,
            p.approvals.len(),
            p.needed,
            approvers.join(", ")
        );
    }
    Ok(())
}

/// `kith invite list`.
pub fn invites(reply: &Reply, json: bool) -> Result<(), Failure> {
    let Reply::Invites { invites } = reply else {
        return Err(unexpected(reply));
    };
    if json {
        return print_json(invites);
    }
    if invites.is_empty() {
        println!("no invites yet: `kith invite` makes one");
    }
    for i in invites {
        println!(
            "{}  {:<17} used {}/{}  by {}  expires {}",
            i.id,
            i.state,
            i.used,
            i.uses,
            one_line(&i.creator.name),
            i.expires_at
        );
    }
    Ok(())
}

pub fn circles(reply: &Reply, json: bool) -> Result<(), Failure> {
    let Reply::Circles { circles } = reply else {
        return Err(unexpected(reply));
    };
    if json {
        return print_json(circles);
    }
    if circles.is_empty() {
        println!("no circles yet: `kith circle create NAME` founds one");
    }
    for circle in circles {
        println!(
            "{}  {}  ({}, {} items)",
            circle.id,
            circle.name,
            plural(circle.members, "member"),
            circle.items
        );
    }
    Ok(())
}

pub fn members(reply: &Reply, json: bool) -> Result<(), Failure> {
    let Reply::Members { members } = reply else {
        return Err(unexpected(reply));
    };
    if json {
        return print_json(members);
    }
    for member in members {
        println!(
            "{:<20} {:<8} {}{}",
            member.name,
            member.role,
            member.id,
            if member.is_self { "  (you)" } else { "" }
        );
        println!("{:<29} safety number {}", "", member.fingerprint);
        if let Some(quiet) = &member.quiet {
            println!("{:<29} quiet hours {}", "", one_line(quiet));
        }
    }
    Ok(())
}

pub fn feed(reply: &Reply, json: bool) -> Result<(), Failure> {
    let Reply::Items { items } = reply else {
        return Err(unexpected(reply));
    };
    if json {
        return print_json(items);
    }
    if items.is_empty() {
        println!("nothing here yet: `kith checkin --mood okay` or `kith ask --kind meals \"...\"`");
    }
    let now = Timestamp::now();
    for item in items {
        print_item(item, now, true);
    }
    Ok(())
}

pub fn offers(reply: &Reply, json: bool) -> Result<(), Failure> {
    let Reply::Items { items } = reply else {
        return Err(unexpected(reply));
    };
    if json {
        return print_json(items);
    }
    if items.is_empty() {
        println!("no open offers: `kith offer \"I can do Tuesday school pickups\"` posts one");
    }
    let now = Timestamp::now();
    for item in items {
        print_item(item, now, true);
    }
    Ok(())
}

pub fn notify(reply: &Reply, json: bool) -> Result<(), Failure> {
    let Reply::Notify {
        detail,
        quiet,
        sink,
    } = reply
    else {
        return Err(unexpected(reply));
    };
    if json {
        return print_json(&serde_json::json!({
            "detail": detail,
            "quiet": quiet,
            "sink": sink,
        }));
    }
    let shown = if *detail {
        "with who and what"
    } else {
        "discreet (\"Kith: New activity\")"
    };
    let sink = match sink.as_str() {
        "off" => "off: no desktop session",
        other => other,
    };
    println!("notifications: {sink}; {shown}");
    match quiet {
        Some(q) => println!("quiet hours: {q} (notifications wait until they end)"),
        None => println!("quiet hours: none"),
    }
    Ok(())
}

pub fn show(reply: &Reply, json: bool) -> Result<(), Failure> {
    let Reply::Item { item } = reply else {
        return Err(unexpected(reply));
    };
    if json {
        return print_json(item);
    }
    print_item(item, Timestamp::now(), true);
    Ok(())
}

pub fn export(reply: &Reply) -> Result<(), Failure> {
    let Reply::Export { export } = reply else {
        return Err(unexpected(reply));
    };
    print_json(export)
}

/// Prints events until the daemon closes the stream (or the user interrupts).
pub async fn watch(client: &mut Client, json: bool) -> Result<(), Failure> {
    use std::io::Write;
    while let Some(event) = client.next_event().await? {
        match event {
            Event::Item { item } => {
                if json {
                    let line = serde_json::to_string(&item)
                        .map_err(|e| Failure::Failed(anyhow::anyhow!("cannot format JSON: {e}")))?;
                    println!("{line}");
                } else {
                    print_item(&item, Timestamp::now(), false);
                }
            }
            Event::Lagged { missed } => {
                eprintln!(
                    "kith: {missed} updates were skipped; `kith feed` shows the current state"
                );
            }
        }
        // Scripts read line by line through a pipe.
        let _ = std::io::stdout().flush();
    }
    Ok(())
}

fn print_item(item: &ItemInfo, now: Timestamp, details: bool) {
    let when = relative(&item.created_at, now);
    let lock = if item.private { "🔒 " } else { "" };
    let head = format!(
        "{}  {:<12} {:<16} {lock}",
        item.id,
        when,
        clip(&item.author.name, 16)
    );
    let pad = format!("{:<42}", "");
    match item.kind.as_str() {
        "checkin" => {
            let mood = match (item.mood, item.mood_word.as_deref()) {
                (Some(n), Some(word)) => format!("{word} ({n}/5)"),
                _ => "?".into(),
            };
            let note = item
                .note
                .as_deref()
                .map(|n| format!(": {}", one_line(n)))
                .unwrap_or_default();
            println!("{head}checked in  {mood}{note}");
            if let Some(help) = &item.help {
                println!("{pad}what would help: {}", one_line(help));
            }
        }
        "nudge" => {
            let target = item.target.as_ref().map_or("?", |t| t.name.as_str());
            let note = item
                .note
                .as_deref()
                .map(|n| format!(": {}", one_line(n)))
                .unwrap_or_default();
            println!("{head}asks {target} to check in{note}");
        }
        kind => {
            let status = item.status.as_deref().unwrap_or("open");
            let mut tags = vec![status.to_string()];
            if item.urgent == Some(true) {
                tags.push("URGENT".into());
            }
            if let Some(word) = &item.urgency {
                tags.push(word.clone());
            }
            match (&item.window_start, &item.needed_by) {
                (Some(start), Some(end)) => {
                    tags.push(format!("{} – {}", short_date(start), short_date(end)))
                }
                (None, Some(by)) => tags.push(format!("needed by {}", short_date(by))),
                _ => {}
            }
            if let Some(n) = item.helpers {
                let found = item.claimed_by.as_ref().map_or(0, Vec::len);
                tags.push(format!("{found}/{n} helpers"));
            }
            if !item.slots.is_empty() {
                let taken = item.slots.iter().filter(|s| s.taken_by.is_some()).count();
                tags.push(format!("{taken}/{} slots taken", item.slots.len()));
            }
            if let Some(w) = &item.when {
                tags.push(one_line(w));
            }
            let verb = if kind == "offer" { "offers" } else { "asks" };
            println!(
                "{head}{verb} [{}] {}  ({})",
                item.category.as_deref().unwrap_or("other"),
                one_line(item.title.as_deref().unwrap_or("")),
                tags.join(", ")
            );
            if details {
                if let Some(text) = &item.details {
                    println!("{pad}{}", one_line(text));
                }
                for claim in &item.claims {
                    let role = if claim.standby {
                        "standby"
                    } else if kind == "offer" {
                        "accepted"
                    } else {
                        "helping"
                    };
                    let message = claim
                        .message
                        .as_deref()
                        .map(|m| format!(": {}", one_line(m)))
                        .unwrap_or_default();
                    println!("{pad}{role}: {}{message}", clip(&claim.member.name, 24));
                }
                for slot in &item.slots {
                    let who = slot
                        .taken_by
                        .as_ref()
                        .map_or("free".to_string(), |a| clip(&a.name, 24));
                    let standby: Vec<String> = slot
                        .claims
                        .iter()
                        .filter(|c| c.standby)
                        .map(|c| clip(&c.member.name, 24))
                        .collect();
                    let standby = if standby.is_empty() {
                        String::new()
                    } else {
                        format!(" (standby: {})", standby.join(", "))
                    };
                    println!(
                        "{pad}slot {:>2}  {}  {who}{standby}",
                        slot.id,
                        short_date(&slot.at)
                    );
                }
                for thanks in &item.thanks {
                    let note = thanks
                        .note
                        .as_deref()
                        .map(|n| format!(": {}", one_line(n)))
                        .unwrap_or_default();
                    println!("{pad}thanked {}{note}", clip(&thanks.member.name, 24));
                }
                if item.my_claim.as_deref() == Some("standby") {
                    println!(
                        "{pad}you are on standby: another member took the last spot first; \
                         you move up if they withdraw"
                    );
                }
            }
        }
    }
    if details {
        if let Some(audience) = &item.audience {
            let names: Vec<String> = audience.iter().map(|a| clip(&a.name, 24)).collect();
            let to = if names.is_empty() {
                "only you".to_string()
            } else {
                names.join(", ")
            };
            println!("{pad}private to {to}");
        }
        for reply in &item.replies {
            println!(
                "{pad}↳ {} ({}): {}",
                reply.author.name,
                relative(&reply.created_at, now),
                one_line(&reply.text)
            );
        }
    }
}

/// "just now", "5 min ago", "3 h ago", "yesterday", "4 days ago", then the date.
fn relative(rfc3339: &str, now: Timestamp) -> String {
    let Ok(then) = rfc3339.parse::<Timestamp>() else {
        return rfc3339.to_string();
    };
    let seconds = now.as_second() - then.as_second();
    match seconds {
        s if s < 60 => "just now".into(),
        s if s < 3600 => format!("{} min ago", s / 60),
        s if s < 86_400 => format!("{} h ago", s / 3600),
        s if s < 2 * 86_400 => "yesterday".into(),
        s if s < 14 * 86_400 => format!("{} days ago", s / 86_400),
        _ => short_date(rfc3339),
    }
}

fn short_date(rfc3339: &str) -> String {
    rfc3339
        .parse::<Timestamp>()
        .ok()
        .and_then(|t| {
            t.to_zoned(jiff::tz::TimeZone::system())
                .strftime("%a %-d %b %H:%M")
                .to_string()
                .into()
        })
        .unwrap_or_else(|| rfc3339.to_string())
}

/// Keeps a terminal line a line: newlines and other control characters become spaces, so a
/// note cannot move the cursor or fake other lines.
pub(crate) fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn clip(text: &str, max: usize) -> String {
    let text = one_line(text);
    if text.chars().count() <= max {
        text
    } else {
        let mut clipped: String = text.chars().take(max.saturating_sub(1)).collect();
        clipped.push('…');
        clipped
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_read_naturally() {
        let now: Timestamp = "2026-11-22T10:00:00Z".parse().unwrap();
        assert_eq!(relative("2026-11-22T09:59:30Z", now), "just now");
        assert_eq!(relative("2026-11-22T09:55:00Z", now), "5 min ago");
        assert_eq!(relative("2026-11-22T07:00:00Z", now), "3 h ago");
        assert_eq!(relative("2026-11-21T08:00:00Z", now), "yesterday");
        assert_eq!(relative("2026-11-18T10:00:00Z", now), "4 days ago");
    }

    #[test]
    fn a_code_draws_as_a_qr_block() {
        let drawn = qr("kith1-sample-invite-code-0123456789abcdefghijklmnopqrstuvwxyz").unwrap();
        let lines: Vec<&str> = drawn.lines().collect();
        assert!(lines.len() > 10, "{drawn}");
        let width = lines[0].chars().count();
        assert!(width > 20, "{drawn}");
        assert!(lines.iter().all(|l| l.chars().count() == width), "{drawn}");
        assert!(drawn.contains('▀') || drawn.contains('▄'), "{drawn}");
    }

    #[test]
    fn control_characters_cannot_break_lines() {
        assert_eq!(one_line("a\nb\x1b[2J"), "a b [2J");
        assert_eq!(clip("abcdefgh", 4), "abc…");
    }
}
