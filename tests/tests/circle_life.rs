//! The life of a circle beyond plain posts, through real daemons: private audiences, recurring
//! needs with dated slots, standing offers, races decided while members are apart (a real
//! network partition), feed filters and views, and discreet notifications with quiet hours.
//!
//! Every wait is on a condition with a deadline; negative checks ("Cy never sees it") are made
//! only after Cy provably received something posted later.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use kith_testkit::{NetLab, Node, circle_of, wait_until};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);
/// After a partition heals, connections may have to notice the loss and be redialled.
const HEAL: Duration = Duration::from_secs(60);
/// The single line every notification is, unless the member opted in to detail.
const DISCREET: &str = "Kith\tNew activity";
/// Where the lab's daemons listen (inside their own namespaces).
const LAB_PORT: u16 = 7431;

/// A marker no other test (or run) writes: `prefix` plus random hex.
fn marker(prefix: &str) -> String {
    format!("{prefix}-{:016x}", rand::random::<u64>())
}

/// Runs `kith ARGS`, which must fail with exit `code`, one `error:` line on stderr and
/// nothing on stdout; returns the error line.
fn refused(node: &Node, args: &[&str], code: i32) -> Result<String> {
    let out = node.run(args)?;
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    if out.status.code() != Some(code) {
        bail!(
            "{}: kith {args:?} should exit {code}, exited {:?}; stdout {stdout:?}, stderr {err:?}",
            node.name,
            out.status.code()
        );
    }
    assert!(
        err.starts_with("error: ") && err.trim_end().lines().count() == 1,
        "{}: kith {args:?} should print one `error:` line, printed {err:?}",
        node.name
    );
    assert!(
        stdout.trim().is_empty(),
        "{}: kith {args:?} failed but printed {stdout:?}",
        node.name
    );
    Ok(err.trim_end().to_string())
}

/// Waits until `node`'s feed holds item `id` and `ready` holds for it.
fn wait_item(node: &Node, id: &str, what: &str, ready: impl Fn(&Value) -> bool) -> Result<Value> {
    wait_until(WAIT, &format!("{what} at {}", node.name), || {
        node.item(id).filter(|item| ready(item))
    })
}

/// Waits until every node's feed holds item `id`.
fn wait_everywhere(nodes: &[&Node], id: &str, what: &str) -> Result<()> {
    for node in nodes {
        wait_item(node, id, what, |_| true)?;
    }
    Ok(())
}

/// The ids `kith feed --json ARGS` lists, sorted.
fn ids(node: &Node, args: &[&str]) -> Result<Vec<String>> {
    let mut all = vec!["feed"];
    all.extend_from_slice(args);
    let feed = node.json(&all)?;
    let mut ids: Vec<String> = feed
        .as_array()
        .context("feed is not an array")?
        .iter()
        .filter_map(|i| i["id"].as_str().map(str::to_string))
        .collect();
    ids.sort();
    Ok(ids)
}

fn sorted(ids: &[&String]) -> Vec<String> {
    let mut out: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    out.sort();
    out
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn claims_of(list: &Value) -> Vec<Value> {
    list.as_array()
        .map(|a| {
            a.iter()
                .map(|c| {
                    json!({
                        "member": c["member"]["name"],
                        "message": c["message"],
                        "standby": c["standby"],
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// What every member must agree on about a request or offer: status, holders, claims (with
/// messages and standby), slots and thanks. Viewer-dependent fields (`my_claim`) are left out.
fn outcome(item: &Value) -> Value {
    let slots: Vec<Value> = item["slots"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    json!({
                        "id": s["id"],
                        "at": s["at"],
                        "taken_by": s["taken_by"]["name"],
                        "claims": claims_of(&s["claims"]),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let thanks: Vec<Value> = item["thanks"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|t| json!({ "member": t["member"]["name"], "note": t["note"] }))
                .collect()
        })
        .unwrap_or_default();
    json!({
        "status": item["status"],
        "claimed_by": names(&item["claimed_by"]),
        "claims": claims_of(&item["claims"]),
        "slots": slots,
        "thanks": thanks,
    })
}

/// Waits until every node shows item `id` with `ready` true and the same [`outcome`];
/// returns that outcome.
fn converge(
    nodes: &[&Node],
    id: &str,
    what: &str,
    timeout: Duration,
    ready: impl Fn(&Value) -> bool,
) -> Result<Value> {
    wait_until(timeout, what, || {
        let mut seen: Option<Value> = None;
        for node in nodes {
            let item = node.item(id)?;
            if !ready(&item) {
                return None;
            }
            let o = outcome(&item);
            match &seen {
                None => seen = Some(o),
                Some(first) if *first == o => {}
                Some(_) => return None,
            }
        }
        seen
    })
}

/// The lines of a notification file so far (none if it does not exist yet).
fn notices(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Waits until the notification file has `n` lines, then requires exactly `n`.
fn wait_notices(path: &Path, n: usize, what: &str) -> Result<Vec<String>> {
    let lines = wait_until(WAIT, what, || {
        let lines = notices(path);
        (lines.len() >= n).then_some(lines)
    })?;
    assert_eq!(lines.len(), n, "{what}: {lines:?}");
    Ok(lines)
}

/// A circle like [`circle_of`], each daemon writing notifications to `<dir>/<name>.notify`.
fn circle_notifying(circle: &str, names: &[&str], dir: &Path) -> Result<Vec<Node>> {
    let mut nodes: Vec<Node> = Vec::new();
    for name in names {
        let mut node = Node::init(name)?;
        node.set_daemon_env("KITH_NOTIFY_FILE", notify_path(dir, name));
        node.start_networked()?;
        match nodes.first() {
            None => {
                node.ok(&["circle", "create", circle])?;
            }
            Some(founder) => {
                let code = founder.invite(&[])?;
                node.join(&code)?;
            }
        }
        nodes.push(node);
    }
    Ok(nodes)
}

fn notify_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.notify"))
}

/// The local date (this machine's time zone, as the daemon reads `--slot DATE`) of an
/// RFC 3339 instant.
fn local_date(rfc3339: &str) -> Result<String> {
    let at: jiff::Timestamp = rfc3339.parse()?;
    Ok(at.to_zoned(jiff::tz::TimeZone::system()).date().to_string())
}

/// Every place a member's daemon could leak `needle`: its home (the store, settings) and
/// its log.
fn assert_nowhere(node: &Node, needle: &str) -> Result<()> {
    let found = node.grep_home(needle.as_bytes())?;
    assert!(
        found.is_empty(),
        "{} holds {needle:?} in plaintext: {found:?}",
        node.name
    );
    assert!(
        !node.log().contains(needle),
        "{}'s log holds {needle:?}",
        node.name
    );
    Ok(())
}

#[test]
fn private_items_reach_only_their_audience() -> Result<()> {
    let nodes = circle_of("Family", &["Ann", "Bob", "Cy"])?;
    let (ann, bob, cy) = (&nodes[0], &nodes[1], &nodes[2]);
    let bob_id = bob.json(&["status"])?["member_id"]
        .as_str()
        .context("no member id")?
        .to_string();

    let note = marker("pv-note");
    let help = marker("pv-help");
    let title = marker("pv-title");
    let details = marker("pv-details");
    let reply = marker("pv-reply");
    let claim = marker("pv-claim");
    let markers = [&note, &help, &title, &details, &reply, &claim];

    let checkin = ann.ok(&[
        "checkin",
        "--mood",
        "low",
        "--note",
        &note,
        "--would-help",
        &help,
        "--to",
        "Bob",
    ])?;
    // By id prefix this time: any way of naming a member works.
    let ask = ann.ok(&[
        "ask",
        "--kind",
        "talk",
        &title,
        "--details",
        &details,
        "--to",
        &bob_id[..12],
    ])?;

    // Bob reads both, marked private to him.
    let seen = wait_item(bob, &checkin, "Ann's private check-in", |_| true)?;
    assert_eq!(seen["private"], true, "{seen}");
    assert_eq!(seen["note"], note.as_str(), "{seen}");
    assert_eq!(seen["help"], help.as_str(), "{seen}");
    assert_eq!(
        seen["audience"],
        json!([{ "id": bob_id, "name": "Bob" }]),
        "{seen}"
    );
    let seen = wait_item(bob, &ask, "Ann's private request", |_| true)?;
    assert_eq!(seen["private"], true, "{seen}");
    assert_eq!(seen["title"], title.as_str(), "{seen}");
    assert_eq!(seen["details"], details.as_str(), "{seen}");
    assert_eq!(names(&seen["audience"]), ["Bob"], "{seen}");

    // Bob answers inside the private item: a reply and a claim with a message.
    bob.ok(&["reply", &ask, &reply])?;
    bob.ok(&["claim", &ask, "--message", &claim])?;
    let at_ann = wait_item(ann, &ask, "Bob's reply and claim", |i| {
        i["replies"][0]["text"] == reply.as_str() && i["claims"][0]["message"] == claim.as_str()
    })?;
    assert_eq!(at_ann["private"], true);
    assert_eq!(names(&at_ann["audience"]), ["Bob"]);

    // A public check-in Bob posts afterwards: once Cy has it, Cy has everything before it
    // (Bob's chain, and Ann's changes that Bob's depend on).
    let later = bob.ok(&["checkin", "--mood", "good", "--note", "public, after"])?;
    wait_item(cy, &later, "Bob's later public check-in", |_| true)?;
    let cy_ids = cy.feed_ids();
    assert!(
        !cy_ids.contains(&checkin) && !cy_ids.contains(&ask),
        "Cy's feed shows a private item: {cy_ids:?}"
    );
    let cy_feed = String::from_utf8_lossy(&cy.run(&["feed", "--json"])?.stdout).to_string();
    let cy_human = String::from_utf8_lossy(&cy.run(&["feed"])?.stdout).to_string();
    let cy_export = cy.ok(&["export", "--format", "json"])?;
    let export: Value = serde_json::from_str(&cy_export)?;
    assert!(
        export["items"]
            .as_array()
            .is_some_and(|items| items.iter().any(|i| i["id"] == later.as_str())),
        "Cy's export lacks Bob's later check-in"
    );
    // Cy cannot act on what Cy cannot read.
    refused(cy, &["claim", &ask], 1)?;
    refused(cy, &["reply", &ask, "me too"], 1)?;
    refused(cy, &["reply", &checkin, "me too"], 1)?;
    for id in [&checkin, &ask] {
        let err = refused(cy, &["show", id], 1)?;
        assert!(markers.iter().all(|m| !err.contains(m.as_str())), "{err}");
        assert!(!cy_export.contains(id.as_str()), "Cy's export names {id}");
    }
    for m in markers {
        assert!(!cy_feed.contains(m.as_str()), "Cy's feed --json shows {m}");
        assert!(!cy_human.contains(m.as_str()), "Cy's feed shows {m}");
        assert!(!cy_export.contains(m.as_str()), "Cy's export shows {m}");
        // Nothing on disk anywhere, not even at the author's and the reader's (the store
        // is encrypted), and nothing in any log.
        for node in [ann, bob, cy] {
            assert_nowhere(node, m)?;
        }
    }

    // `--to` naming someone who is not a member: refused, nothing posted.
    let stray = marker("pv-stray");
    let before = ann.feed_ids();
    for args in [
        vec!["checkin", "--mood", "okay", "--note", &stray, "--to", "Zed"],
        vec![
            "checkin", "--mood", "okay", "--note", &stray, "--to", "Bob", "--to", "Zed",
        ],
        vec!["ask", "--kind", "ride", &stray, "--to", "Zed"],
        vec!["offer", &stray, "--to", "Zed"],
    ] {
        let err = refused(ann, &args, 1)?;
        assert!(err.contains("Zed"), "{err}");
    }
    assert_eq!(ann.feed_ids(), before, "a refused post left an item");
    assert!(!ann.ok(&["export", "--format", "json"])?.contains(&stray));
    Ok(())
}

#[test]
fn recurring_slots_claims_and_thanks_converge() -> Result<()> {
    let nodes = circle_of("Family", &["Ann", "Bob", "Cy"])?;
    let (ann, bob, cy) = (&nodes[0], &nodes[1], &nodes[2]);
    let all = [ann, bob, cy];

    // Three evenings from tomorrow: slots "1", "2", "3" (none already past).
    let ask = ann.ok(&[
        "ask",
        "--kind",
        "meals",
        "Dinners after the operation",
        "--details",
        "no nuts please",
        "--every",
        "daily",
        "--for",
        "3d",
        "--from",
        "tomorrow",
        "--at",
        "18:30",
    ])?;
    for node in all {
        let item = wait_item(node, &ask, "the recurring request", |i| {
            i["slots"].as_array().is_some_and(|s| s.len() == 3)
        })?;
        let slot_ids: Vec<&str> = item["slots"]
            .as_array()
            .map(|s| s.iter().filter_map(|s| s["id"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(slot_ids, ["1", "2", "3"], "{item}");
        assert_eq!(item["status"], "open");
        assert_eq!(item["category"], "meals");
    }
    let at_cy = cy.item(&ask).context("gone")?;
    let third_date = local_date(at_cy["slots"][2]["at"].as_str().unwrap_or_default())?;

    bob.ok(&["claim", &ask, "--slot", "1", "--message", "soup"])?;
    wait_item(cy, &ask, "Bob's slot 1", |i| {
        i["slots"][0]["taken_by"]["name"] == "Bob"
    })?;
    // Taken, nonexistent, unparsable, not the author's to close.
    let err = refused(cy, &["claim", &ask, "--slot", "1"], 1)?;
    assert!(err.contains("slot"), "{err}");
    refused(cy, &["claim", &ask, "--slot", "9"], 1)?;
    refused(cy, &["claim", &ask, "--slot", "2031-01-07"], 1)?;
    refused(cy, &["claim", &ask, "--slot", "2031-02-31"], 2)?;
    refused(cy, &["claim", &ask, "--slot", "next tuesday-ish"], 2)?;
    refused(
        ann,
        &[
            "ask",
            "--kind",
            "ride",
            "Lift",
            "--needed-by",
            "the day after never",
        ],
        2,
    )?;
    refused(bob, &["claim", &ask, "--slot", "1"], 1)?;
    refused(bob, &["done", &ask], 1)?;
    refused(bob, &["cancel", &ask], 1)?;
    refused(ann, &["claim", &ask, "--slot", "2"], 1)?;

    cy.ok(&["claim", &ask, "--slot", "2", "--message", "lasagna"])?;
    // By date, then withdrawn by date: slot 3 is free again.
    bob.ok(&["claim", &ask, "--slot", &third_date])?;
    wait_item(ann, &ask, "Bob on slot 3", |i| {
        i["slots"][2]["taken_by"]["name"] == "Bob"
    })?;
    bob.ok(&["unclaim", &ask, "--slot", &third_date])?;
    // Claiming again with a message changes the message.
    bob.ok(&["claim", &ask, "--slot", "1", "--message", "soup and bread"])?;

    wait_item(
        ann,
        &ask,
        "both claims, Bob's message changed, slot 3 free",
        |i| {
            i["slots"][0]["claims"][0]["message"] == "soup and bread"
                && i["slots"][1]["taken_by"]["name"] == "Cy"
                && i["slots"][2]["claims"]
                    .as_array()
                    .is_some_and(Vec::is_empty)
        },
    )?;
    ann.ok(&["thank", &ask, "Bob", "--note", "the soup was perfect"])?;
    ann.ok(&["thank", &ask, "Cy"])?;
    refused(bob, &["thank", &ask, "Cy"], 1)?;
    ann.ok(&["done", &ask])?;
    refused(ann, &["done", &ask], 1)?;

    let settled = converge(&all, &ask, "the slots everywhere", WAIT, |i| {
        i["status"] == "fulfilled" && i["thanks"].as_array().is_some_and(|t| t.len() == 2)
    })?;
    let slots = &settled["slots"];
    assert_eq!(slots[0]["taken_by"], "Bob", "{settled}");
    assert_eq!(
        slots[0]["claims"],
        json!([{ "member": "Bob", "message": "soup and bread", "standby": false }]),
        "{settled}"
    );
    assert_eq!(slots[1]["taken_by"], "Cy", "{settled}");
    assert_eq!(
        slots[1]["claims"],
        json!([{ "member": "Cy", "message": "lasagna", "standby": false }]),
        "{settled}"
    );
    assert_eq!(slots[2]["taken_by"], Value::Null, "{settled}");
    assert_eq!(slots[2]["claims"], json!([]), "{settled}");
    let mut thanks = settled["thanks"].as_array().cloned().unwrap_or_default();
    thanks.sort_by_key(|t| t["member"].to_string());
    assert_eq!(
        thanks,
        [
            json!({ "member": "Bob", "note": "the soup was perfect" }),
            json!({ "member": "Cy", "note": null }),
        ],
        "{settled}"
    );
    assert_eq!(
        bob.json(&["show", &ask])?["my_claim"],
        "holding",
        "Bob holds slot 1"
    );

    // Closed: no more claims, by number or by date.
    wait_item(cy, &ask, "fulfilled", |i| i["status"] == "fulfilled")?;
    let err = refused(cy, &["claim", &ask, "--slot", "3"], 1)?;
    assert!(err.contains("fulfilled") || err.contains("closed"), "{err}");
    refused(cy, &["claim", &ask, "--slot", &third_date], 1)?;
    Ok(())
}

#[test]
fn offers_are_accepted_and_withdrawn() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let nodes = circle_notifying("Family", &["Ann", "Bob", "Cy"], dir.path())?;
    let (ann, bob, cy) = (&nodes[0], &nodes[1], &nodes[2]);
    let bob_notices = notify_path(dir.path(), "Bob");
    let ann_notices = notify_path(dir.path(), "Ann");

    let offer = bob.ok(&[
        "offer",
        "--kind",
        "ride",
        "Rides to the clinic",
        "--details",
        "I have a car seat",
        "--when",
        "Tuesdays after 9",
    ])?;
    refused(bob, &["accept", &offer], 1)?;
    for node in [ann, cy] {
        wait_until(
            WAIT,
            &format!("Bob's offer in {}'s offers", node.name),
            || {
                node.json(&["offers"])
                    .ok()?
                    .as_array()?
                    .iter()
                    .find(|i| i["id"] == offer.as_str())
                    .cloned()
            },
        )?;
    }
    let listed = ann.json(&["offers"])?;
    let item = listed
        .as_array()
        .and_then(|a| a.iter().find(|i| i["id"] == offer.as_str()))
        .context("offer not listed")?;
    assert_eq!(item["kind"], "offer");
    assert_eq!(item["status"], "open");
    assert_eq!(item["when"], "Tuesdays after 9");
    assert_eq!(item["category"], "ride");

    ann.ok(&["accept", &offer, "--message", "Tuesday at 10 please"])?;
    refused(ann, &["accept", &offer], 1)?;
    let seen = wait_item(bob, &offer, "Ann's acceptance", |i| {
        !i["claims"].as_array().is_none_or(Vec::is_empty)
    })?;
    assert_eq!(names(&seen["claimed_by"]), ["Ann"], "{seen}");
    assert_eq!(seen["claims"][0]["member"]["name"], "Ann");
    assert_eq!(seen["claims"][0]["message"], "Tuesday at 10 please");
    let in_offers = bob.json(&["offers"])?;
    assert!(
        in_offers.as_array().is_some_and(|a| a
            .iter()
            .any(|i| i["id"] == offer.as_str() && names(&i["claimed_by"]) == ["Ann"])),
        "{in_offers}"
    );
    let human = bob.ok(&["offers"])?;
    assert!(
        human.contains("accepted: Ann: Tuesday at 10 please"),
        "{human}"
    );
    let human = bob.ok(&["feed"])?;
    assert!(
        human.contains("accepted: Ann: Tuesday at 10 please"),
        "{human}"
    );
    assert_eq!(ann.json(&["show", &offer])?["my_claim"], "holding");
    // Acceptance of Bob's offer: one discreet notification for Bob.
    let lines = wait_notices(&bob_notices, 1, "Bob's notification of the acceptance")?;
    assert_eq!(lines, [DISCREET]);

    // Only Bob withdraws it; then nobody can accept it.
    refused(ann, &["withdraw", &offer], 1)?;
    bob.ok(&["withdraw", &offer])?;
    refused(bob, &["withdraw", &offer], 1)?;
    for node in [ann, cy] {
        wait_item(node, &offer, "the withdrawal", |i| {
            i["status"] == "withdrawn"
        })?;
    }
    let err = refused(cy, &["accept", &offer], 1)?;
    assert!(err.contains("withdrawn") || err.contains("closed"), "{err}");
    refused(ann, &["accept", &offer, "--message", "still on?"], 1)?;
    assert!(
        !bob.json(&["offers"])?
            .as_array()
            .is_some_and(|a| a.iter().any(|i| i["id"] == offer.as_str())),
        "a withdrawn offer is still listed"
    );
    // Ann, who had accepted, is told (discreetly) that it was withdrawn.
    let lines = wait_notices(&ann_notices, 1, "Ann's notification of the withdrawal")?;
    assert_eq!(lines, [DISCREET]);
    converge(&[ann, bob, cy], &offer, "the withdrawn offer", WAIT, |i| {
        i["status"] == "withdrawn"
    })?;
    Ok(())
}

fn lab(hosts: usize) -> Result<Option<NetLab>> {
    if NetLab::available() {
        return NetLab::new(hosts).map(Some);
    }
    if std::env::var_os("CI").is_some() {
        bail!("CI must be able to create network namespaces (root and nftables)");
    }
    eprintln!("skipped: cannot create network namespaces here (needs root and nftables)");
    Ok(None)
}

/// The loser of a race in an item's [`outcome`] (in slot index `slot`, or on the item
/// itself): the member of the one standby claim.
fn standby_member(outcome: &Value, slot: Option<usize>) -> Result<String> {
    let claims = match slot {
        Some(i) => &outcome["slots"][i]["claims"],
        None => &outcome["claims"],
    };
    let standby: Vec<&str> = claims
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|c| c["standby"] == true)
                .filter_map(|c| c["member"].as_str())
                .collect()
        })
        .unwrap_or_default();
    match standby.as_slice() {
        [one] => Ok(one.to_string()),
        _ => bail!("expected exactly one standby claim: {outcome}"),
    }
}

#[test]
fn races_made_apart_resolve_the_same_everywhere() -> Result<()> {
    let Some(lab) = lab(3)? else { return Ok(()) };
    let dir = tempfile::tempdir()?;
    let mut nodes = Vec::new();
    for (i, name) in ["Ann", "Bob", "Cy"].iter().enumerate() {
        let mut node = Node::init(name)?;
        node.set_daemon_env("KITH_NOTIFY_FILE", notify_path(dir.path(), name));
        node.start_in(&lab, i, LAB_PORT, &["--no-mdns"])?;
        nodes.push(node);
    }
    nodes[0].ok(&["circle", "create", "Across the street"])?;
    for node in nodes.iter().skip(1) {
        let code = nodes[0].invite(&[])?;
        node.join(&code)?;
    }
    let (ann, bob, cy) = (&nodes[0], &nodes[1], &nodes[2]);
    let all = [ann, bob, cy];
    let notices_of = |name: &str| notices(&notify_path(dir.path(), name));

    // (a) The last spot, twice: slot 1 of a rota, and the only helper of `--helpers 1`.
    let rota_title = marker("race-rota");
    let rota = ann.ok(&[
        "ask",
        "--kind",
        "meals",
        &rota_title,
        "--every",
        "daily",
        "--for",
        "2d",
        "--from",
        "tomorrow",
    ])?;
    let lift_title = marker("race-lift");
    let lift = ann.ok(&["ask", "--kind", "ride", &lift_title, "--helpers", "1"])?;
    wait_everywhere(&all, &rota, "the rota")?;
    wait_everywhere(&all, &lift, "the lift")?;
    assert!(notices_of("Bob").is_empty() && notices_of("Cy").is_empty());

    // Cy is cut off; Ann and Bob still talk. Bob takes both spots and Ann sees it; Cy, who
    // cannot, still finds them free and takes them too.
    lab.partition(&[&[0, 1], &[2]])?;
    bob.ok(&["claim", &rota, "--slot", "1", "--message", "Bob cooks"])?;
    bob.ok(&["claim", &lift])?;
    wait_item(ann, &rota, "Bob's slot claim on Ann's side", |i| {
        i["slots"][0]["taken_by"]["name"] == "Bob"
    })?;
    wait_item(ann, &lift, "Bob's claim on Ann's side", |i| {
        i["status"] == "claimed"
    })?;
    cy.ok(&["claim", &rota, "--slot", "1", "--message", "Cy cooks"])?;
    cy.ok(&["claim", &lift])?;
    // Apart, each holds the spot in its own view.
    for (node, name) in [(bob, "Bob"), (cy, "Cy")] {
        let view = node.json(&["show", &rota])?;
        assert_eq!(view["slots"][0]["taken_by"]["name"], name, "{view}");
        assert_eq!(view["my_claim"], "holding", "{view}");
        let view = node.json(&["show", &lift])?;
        assert_eq!(names(&view["claimed_by"]), [name], "{view}");
    }
    lab.heal()?;

    let rota_outcome = converge(&all, &rota, "the slot race settled everywhere", HEAL, |i| {
        i["slots"][0]["claims"]
            .as_array()
            .is_some_and(|c| c.len() == 2)
    })?;
    let lift_outcome = converge(
        &all,
        &lift,
        "the helper race settled everywhere",
        HEAL,
        |i| i["claims"].as_array().is_some_and(|c| c.len() == 2),
    )?;
    let mut losses = std::collections::HashMap::<String, usize>::new();
    for (id, outcome, slot, title) in [
        (&rota, &rota_outcome, Some(0), &rota_title),
        (&lift, &lift_outcome, None, &lift_title),
    ] {
        let loser = standby_member(outcome, slot)?;
        let winner = if loser == "Bob" { "Cy" } else { "Bob" };
        match slot {
            Some(i) => assert_eq!(outcome["slots"][i]["taken_by"], winner, "{outcome}"),
            None => {
                assert_eq!(outcome["claimed_by"], json!([winner]), "{outcome}");
                assert_eq!(outcome["status"], "claimed", "{outcome}");
            }
        }
        let (loser_node, winner_node) = if loser == "Bob" { (bob, cy) } else { (cy, bob) };
        assert_eq!(loser_node.json(&["show", id])?["my_claim"], "standby");
        assert_eq!(winner_node.json(&["show", id])?["my_claim"], "holding");
        // The loser's daemon says so in its log: with the item's id, without its content.
        let log = loser_node.log();
        assert!(
            log.lines()
                .any(|l| l.contains("another member took the last spot first")
                    && l.contains(id.as_str())),
            "{}'s log does not report losing {id}:\n{log}",
            loser_node.name
        );
        for node in all {
            assert!(
                !node.log().contains(title.as_str()),
                "{}'s log names {title}",
                node.name
            );
        }
        *losses.entry(loser).or_default() += 1;
    }
    // Each race lost is one discreet notification, and only the loser gets one.
    for name in ["Bob", "Cy"] {
        let expected = losses.get(name).copied().unwrap_or(0);
        let lines = wait_notices(
            &notify_path(dir.path(), name),
            expected,
            &format!("{name}'s notifications of lost races"),
        )?;
        assert!(lines.iter().all(|l| l == DISCREET), "{name}: {lines:?}");
    }

    // The winner of the helper race steps back: the standby claim moves up, everywhere.
    let lift_loser = standby_member(&lift_outcome, None)?;
    let (winner_node, loser_node) = if lift_loser == "Bob" {
        (cy, bob)
    } else {
        (bob, cy)
    };
    winner_node.ok(&["unclaim", &lift])?;
    let moved = converge(&all, &lift, "the standby claim moving up", WAIT, |i| {
        i["claims"].as_array().is_some_and(|c| c.len() == 1)
    })?;
    assert_eq!(moved["claimed_by"], json!([lift_loser]), "{moved}");
    assert_eq!(moved["claims"][0]["standby"], false, "{moved}");
    assert_eq!(loser_node.json(&["show", &lift])?["my_claim"], "holding");

    // (b) A claim racing a cancel, and (c) a claim's new message racing `done`.
    let errand = ann.ok(&["ask", "--kind", "errand", "Pick up the prescription"])?;
    let call = ann.ok(&["ask", "--kind", "talk", "A call on Sunday"])?;
    wait_everywhere(&all, &errand, "the errand")?;
    wait_everywhere(&all, &call, "the call")?;
    bob.ok(&["claim", &call, "--message", "I can call at 5"])?;
    converge(&all, &call, "Bob's claim on the call", WAIT, |i| {
        i["claims"][0]["message"] == "I can call at 5"
    })?;
    let before = (notices_of("Bob").len(), notices_of("Cy").len());

    // Ann is cut off and closes both requests; on the other side, Cy claims the errand and
    // Bob changes his message on the call. Both edits are refused on a closed request, so
    // their success shows Bob and Cy had not heard of the closing, although Cy's claim had
    // reached Bob.
    lab.partition(&[&[0], &[1, 2]])?;
    ann.ok(&["cancel", &errand])?;
    ann.ok(&["done", &call])?;
    cy.ok(&["claim", &errand, "--message", "on my way"])?;
    wait_item(bob, &errand, "Cy's claim on Bob's side", |i| {
        i["status"] == "claimed"
    })?;
    bob.ok(&["claim", &call, "--message", "make it 6 instead"])?;
    lab.heal()?;

    let errand_outcome = converge(&all, &errand, "claim vs cancel settled", HEAL, |i| {
        i["status"] == "cancelled" && i["claims"].as_array().is_some_and(|c| c.len() == 1)
    })?;
    assert_eq!(
        errand_outcome["claims"],
        json!([{ "member": "Cy", "message": "on my way", "standby": false }]),
        "{errand_outcome}"
    );
    let call_outcome = converge(&all, &call, "message edit vs done settled", HEAL, |i| {
        i["status"] == "fulfilled" && i["claims"][0]["message"] == "make it 6 instead"
    })?;
    assert_eq!(
        call_outcome["claims"],
        json!([{ "member": "Bob", "message": "make it 6 instead", "standby": false }]),
        "{call_outcome}"
    );
    // The helper of each closed request is told, discreetly.
    let bob_lines = wait_notices(
        &notify_path(dir.path(), "Bob"),
        before.0 + 1,
        "Bob told the call is done",
    )?;
    let cy_lines = wait_notices(
        &notify_path(dir.path(), "Cy"),
        before.1 + 1,
        "Cy told the errand is cancelled",
    )?;
    for line in bob_lines.iter().chain(&cy_lines) {
        assert_eq!(line, DISCREET);
    }
    let ann_lines = notices_of("Ann");
    assert!(!ann_lines.is_empty(), "Ann was never told of a claim");
    assert!(ann_lines.iter().all(|l| l == DISCREET), "{ann_lines:?}");
    Ok(())
}

#[test]
fn feed_filters_and_views() -> Result<()> {
    let nodes = circle_of("Family", &["Ann", "Bob"])?;
    let (ann, bob) = (&nodes[0], &nodes[1]);

    let a_checkin = ann.ok(&[
        "checkin",
        "--mood",
        "good",
        "--note",
        "slept well",
        "--would-help",
        "company on walks",
    ])?;
    let a_meals = ann.ok(&[
        "ask",
        "--kind",
        "meals",
        "Freezer meals",
        "--details",
        "two portions each",
        "--helpers",
        "2",
        "--urgency",
        "this-week",
    ])?;
    let a_ride = ann.ok(&["ask", "--kind", "ride", "Lift to physio"])?;
    let a_cancelled = ann.ok(&["ask", "--kind", "childcare", "Sitter on Friday"])?;
    ann.ok(&["cancel", &a_cancelled])?;
    let a_private = ann.ok(&["checkin", "--mood", "low", "--to", "Bob"])?;
    let b_errand = bob.ok(&["ask", "--kind", "errand", "Post a parcel"])?;
    let b_offer = bob.ok(&[
        "offer",
        "--kind",
        "meals",
        "Spare lasagna",
        "--when",
        "weekends",
    ])?;
    let b_rota = bob.ok(&[
        "ask",
        "--kind",
        "meals",
        "School lunches",
        "--every",
        "mon,wed,fri",
        "--for",
        "2w",
    ])?;
    let b_checkin = bob.ok(&["checkin", "--mood", "okay"])?;
    let b_nudge = bob.ok(&["nudge", "Ann", "--note", "how was physio?"])?;

    wait_everywhere(&[bob], &a_cancelled, "Ann's posts")?;
    wait_item(bob, &a_cancelled, "the cancel", |i| {
        i["status"] == "cancelled"
    })?;
    wait_everywhere(&[bob], &a_private, "Ann's private check-in")?;
    wait_everywhere(&[ann], &b_nudge, "Bob's posts")?;
    for id in [&b_errand, &b_offer, &b_rota, &b_checkin] {
        wait_everywhere(&[ann], id, "Bob's posts")?;
    }
    ann.ok(&[
        "claim",
        &b_errand,
        "--message",
        "on my way to the post office",
    ])?;
    bob.ok(&["claim", &a_meals, "--message", "three portions"])?;
    wait_item(ann, &a_meals, "Bob's claim", |i| i["status"] == "claimed")?;
    ann.ok(&["thank", &a_meals, "Bob", "--note", "delicious"])?;
    ann.ok(&["reply", &a_meals, "see you Thursday"])?;
    wait_item(bob, &b_errand, "Ann's claim", |i| i["status"] == "claimed")?;
    wait_item(bob, &a_meals, "the thanks and the reply", |i| {
        i["thanks"].as_array().is_some_and(|t| !t.is_empty())
            && i["replies"].as_array().is_some_and(|r| !r.is_empty())
    })?;

    // Editing: the author only, not a private item, not a closed one.
    ann.ok(&[
        "edit",
        &a_ride,
        "--title",
        "Lift to physio at 3",
        "--details",
        "Main St entrance",
    ])?;
    wait_item(bob, &a_ride, "Ann's edit", |i| {
        i["title"] == "Lift to physio at 3" && i["details"] == "Main St entrance"
    })?;
    refused(bob, &["edit", &a_ride, "--title", "Lift to the zoo"], 1)?;
    refused(ann, &["edit", &a_private, "--note", "changed my mind"], 1)?;
    refused(
        ann,
        &["edit", &a_cancelled, "--title", "Sitter on Saturday"],
        1,
    )?;
    refused(
        ann,
        &["edit", &a_ride, "--needed-by", "the day after never"],
        2,
    )?;
    ann.ok(&["edit", &a_checkin, "--note", "slept very well"])?;
    wait_item(bob, &a_checkin, "Ann's edited note", |i| {
        i["note"] == "slept very well"
    })?;

    // Ann's filters.
    let expect = |args: &[&str], want: &[&String]| -> Result<()> {
        assert_eq!(ids(ann, args)?, sorted(want), "Ann's feed {args:?}");
        Ok(())
    };
    expect(
        &["--open"],
        &[&a_meals, &a_ride, &b_errand, &b_offer, &b_rota],
    )?;
    expect(
        &["--mine"],
        &[&a_checkin, &a_meals, &a_ride, &a_cancelled, &a_private],
    )?;
    expect(&["--claimed-by-me"], &[&b_errand])?;
    expect(
        &["--kind", "checkin"],
        &[&a_checkin, &a_private, &b_checkin],
    )?;
    expect(
        &["--kind", "request"],
        &[&a_meals, &a_ride, &a_cancelled, &b_errand, &b_rota],
    )?;
    expect(&["--kind", "offer"], &[&b_offer])?;
    expect(&["--kind", "nudge"], &[&b_nudge])?;
    expect(&["--kind", "meals"], &[&a_meals, &b_offer, &b_rota])?;
    expect(&["--kind", "ride"], &[&a_ride])?;
    expect(&["--kind", "childcare"], &[&a_cancelled])?;
    expect(
        &["--open", "--kind", "request"],
        &[&a_meals, &a_ride, &b_errand, &b_rota],
    )?;
    expect(&["--mine", "--open"], &[&a_meals, &a_ride])?;
    expect(&["--mine", "--kind", "talk"], &[])?;
    let everything = ids(ann, &[])?;
    assert_eq!(everything.len(), 10, "{everything:?}");
    refused(ann, &["feed", "--kind", "taxi"], 2)?;
    // Bob's: his own nudge, Ann's meals that he claimed.
    assert_eq!(ids(bob, &["--claimed-by-me"])?, sorted(&[&a_meals]));
    assert_eq!(
        ids(bob, &["--mine"])?,
        sorted(&[&b_errand, &b_offer, &b_rota, &b_checkin, &b_nudge])
    );

    // Newest first.
    let feed = ann.json(&["feed"])?;
    // (As instants: the strings drop trailing zeros of the milliseconds, "…48.74Z".)
    let created: Vec<jiff::Timestamp> = feed
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|i| i["created_at"].as_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(created.len(), 10, "{feed}");
    let mut newest_first = created.clone();
    newest_first.sort_by(|a, b| b.cmp(a));
    assert_eq!(created, newest_first, "{feed}");

    // `show --json`: the fields of the contract.
    let bob_id = bob.json(&["status"])?["member_id"].clone();
    let ann_id = ann.json(&["status"])?["member_id"].clone();
    let meals = bob.json(&["show", &a_meals])?;
    assert_eq!(meals["id"], a_meals.as_str());
    assert_eq!(meals["kind"], "request");
    assert_eq!(meals["author"], json!({ "id": ann_id, "name": "Ann" }));
    assert!(
        meals["created_at"]
            .as_str()
            .is_some_and(|t| t.parse::<jiff::Timestamp>().is_ok()),
        "{meals}"
    );
    assert_eq!(meals["status"], "claimed");
    assert_eq!(
        meals["claimed_by"],
        json!([{ "id": bob_id, "name": "Bob" }])
    );
    let claim = &meals["claims"][0];
    assert_eq!(claim["member"], json!({ "id": bob_id, "name": "Bob" }));
    assert!(
        claim["at"]
            .as_str()
            .is_some_and(|t| t.parse::<jiff::Timestamp>().is_ok())
    );
    assert_eq!(claim["message"], "three portions");
    assert_eq!(claim["standby"], false);
    assert_eq!(meals["thanks"][0]["member"]["name"], "Bob");
    assert_eq!(meals["thanks"][0]["note"], "delicious");
    assert_eq!(meals["helpers"], 2);
    // Spelled as `--urgency` takes it.
    assert_eq!(meals["urgency"], "this-week");
    assert_eq!(meals["private"], false);
    assert_eq!(meals["my_claim"], "holding");
    assert_eq!(meals["replies"][0]["text"], "see you Thursday");
    assert_eq!(meals["title"], "Freezer meals");
    assert_eq!(meals["details"], "two portions each");
    assert_eq!(ann.json(&["show", &a_meals])?.get("my_claim"), None);
    let rota = ann.json(&["show", &b_rota])?;
    let slots = rota["slots"].as_array().context("no slots")?;
    assert!(slots.len() >= 5, "{rota}");
    for (n, slot) in slots.iter().enumerate() {
        assert_eq!(slot["id"], (n + 1).to_string(), "{rota}");
        assert!(
            slot["at"]
                .as_str()
                .is_some_and(|t| t.parse::<jiff::Timestamp>().is_ok())
        );
        assert!(slot["claims"].is_array(), "{rota}");
    }
    let checkin = ann.json(&["show", &a_checkin])?;
    assert_eq!(checkin["kind"], "checkin");
    assert_eq!(checkin["help"], "company on walks");
    assert_eq!(ann.json(&["show", &b_offer])?["when"], "weekends");
    let nudge = ann.json(&["show", &b_nudge])?;
    assert_eq!(nudge["kind"], "nudge");
    assert_eq!(nudge["target"], json!({ "id": ann_id, "name": "Ann" }));
    assert_eq!(nudge["private"], true);
    let private = bob.json(&["show", &a_private])?;
    assert_eq!(private["private"], true);
    assert_eq!(
        private["audience"],
        json!([{ "id": bob_id, "name": "Bob" }])
    );
    assert_eq!(
        ann.json(&["show", &b_errand])?["my_claim"],
        "holding",
        "Ann holds Bob's errand"
    );
    // An id prefix works as well as the id.
    assert_eq!(
        ann.json(&["show", &b_errand[..6]])?["id"],
        b_errand.as_str()
    );
    refused(ann, &["show", "zzzzzzzzzz"], 1)?;

    // The human feed: one line per item, starting with its id, in the JSON's order; detail
    // lines indented beneath.
    let human = ann.ok(&["feed"])?;
    let heads: Vec<&str> = human.lines().filter(|l| !l.starts_with(' ')).collect();
    let order: Vec<&str> = feed
        .as_array()
        .map(|a| a.iter().filter_map(|i| i["id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(heads.len(), order.len(), "{human}");
    for (head, id) in heads.iter().zip(&order) {
        assert!(head.starts_with(id), "{head:?} is not item {id}:\n{human}");
    }
    let meals_block: Vec<&str> = human
        .lines()
        .skip_while(|l| !l.starts_with(a_meals.as_str()))
        .skip(1)
        .take_while(|l| l.starts_with(' '))
        .collect();
    let block = meals_block.join("\n");
    assert!(block.contains("two portions each"), "{human}");
    assert!(block.contains("helping: Bob: three portions"), "{human}");
    assert!(block.contains("thanked Bob: delicious"), "{human}");
    assert!(block.contains("see you Thursday"), "{human}");
    let rota_lines = human
        .lines()
        .skip_while(|l| !l.starts_with(b_rota.as_str()))
        .skip(1)
        .take_while(|l| l.starts_with(' '))
        .filter(|l| l.trim_start().starts_with("slot "))
        .count();
    assert_eq!(rota_lines, slots.len(), "{human}");
    Ok(())
}

#[test]
fn notifications_are_discreet_held_in_quiet_hours_and_nudges_stay_private() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let nodes = circle_notifying("Family", &["Ann", "Bob", "Cy"], dir.path())?;
    let (ann, bob, cy) = (&nodes[0], &nodes[1], &nodes[2]);
    let file = notify_path(dir.path(), "Ann");

    let settings = ann.json(&["notify"])?;
    assert_eq!(
        settings,
        json!({ "detail": false, "quiet": null, "sink": "file" }),
        "{settings}"
    );
    assert!(notices(&file).is_empty());

    // An urgent request by someone else: one discreet line.
    let urgent_title = marker("Lift to the ER tonight");
    let urgent = bob.ok(&["ask", "--kind", "ride", &urgent_title, "--urgent"])?;
    wait_item(ann, &urgent, "Bob's urgent request", |_| true)?;
    assert_eq!(wait_notices(&file, 1, "the urgent request")?, [DISCREET]);
    // Detail may name people: the file is the member's alone.
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file)?.permissions());
    assert_eq!(mode & 0o777, 0o600, "notification file mode {mode:o}");

    // Not urgent, and a check-in: nothing. A claim on Ann's request: one more line.
    let plain = bob.ok(&["ask", "--kind", "errand", "Return library books"])?;
    let checkin = cy.ok(&["checkin", "--mood", "okay", "--note", "fine here"])?;
    let soup = ann.ok(&["ask", "--kind", "meals", "Soup for Thursday"])?;
    wait_item(bob, &soup, "Ann's request", |_| true)?;
    bob.ok(&["claim", &soup, "--message", "lentil soup"])?;
    wait_item(ann, &soup, "Bob's claim", |i| i["status"] == "claimed")?;
    wait_everywhere(&[ann], &plain, "Bob's plain request")?;
    wait_everywhere(&[ann], &checkin, "Cy's check-in")?;
    assert_eq!(
        wait_notices(&file, 2, "the claim on Ann's request")?,
        [DISCREET, DISCREET]
    );

    // An urgent request private to Cy: Ann cannot read it, so she is not told of it either
    // (checked below: Bob's next request arrives after it and is the only new notice).
    let for_cy = bob.ok(&[
        "ask",
        "--kind",
        "talk",
        "Call me tonight",
        "--urgent",
        "--to",
        "Cy",
    ])?;
    wait_item(cy, &for_cy, "Bob's private urgent request", |_| true)?;
    // Opted in to detail: the next notice says who and what.
    let settings = ann.json(&["notify", "--detail", "on"])?;
    assert_eq!(settings["detail"], true);
    let detailed_title = marker("Pick up Mia from school");
    let detailed = bob.ok(&["ask", "--kind", "childcare", &detailed_title, "--urgent"])?;
    wait_item(ann, &detailed, "the second urgent request", |_| true)?;
    let lines = wait_notices(&file, 3, "the detailed notice")?;
    assert!(
        lines[2] != DISCREET && lines[2].contains("Bob") && lines[2].contains(&detailed_title),
        "{lines:?}"
    );
    assert!(
        ann.item(&for_cy).is_none(),
        "Ann sees a request private to Cy"
    );
    // Title and body, one tab between them.
    assert_eq!(lines[2].matches('\t').count(), 1, "{lines:?}");
    // Earlier (discreet) lines never named anyone.
    assert!(lines[..2].iter().all(|l| l == DISCREET));

    // Quiet hours around the current local time: notices wait.
    let hour = jiff::Zoned::now().hour();
    let window = format!("{:02}:00-{:02}:00", (hour + 23) % 24, (hour + 2) % 24);
    let settings = ann.json(&["quiet", &window])?;
    assert_eq!(settings["quiet"], window.as_str(), "{settings}");
    assert_eq!(ann.json(&["notify"])?["quiet"], window.as_str());
    let held_title = marker("Lift to the pharmacy");
    let held = bob.ok(&["ask", "--kind", "ride", &held_title, "--urgent"])?;
    let stew = ann.ok(&["ask", "--kind", "meals", "Stew for Saturday"])?;
    wait_item(bob, &stew, "Ann's second request", |_| true)?;
    bob.ok(&["claim", &stew])?;
    wait_item(ann, &held, "the request during quiet hours", |_| true)?;
    wait_item(ann, &stew, "the claim during quiet hours", |i| {
        i["status"] == "claimed"
    })?;
    assert_eq!(notices(&file).len(), 3, "a notice came through quiet hours");
    // Members see the quiet hours beside Ann's name.
    wait_until(WAIT, "Ann's quiet hours at Bob", || {
        bob.json(&["members"])
            .ok()?
            .as_array()?
            .iter()
            .any(|m| m["name"] == "Ann" && m["quiet"] == window.as_str())
            .then_some(())
    })?;
    // Quiet hours off: what was held comes out (in detail, as chosen), then new ones flow.
    let settings = ann.json(&["quiet", "off"])?;
    assert_eq!(settings["quiet"], Value::Null);
    let lines = wait_notices(&file, 5, "the held notices after quiet hours")?;
    assert!(
        lines[3..].iter().any(|l| l.contains(&held_title)),
        "{lines:?}"
    );
    assert!(lines[3..].iter().all(|l| l.contains("Bob")), "{lines:?}");

    // Back to discreet; a nudge from Bob reaches Ann as one discreet line.
    ann.json(&["notify", "--detail", "off"])?;
    let nudge_note = marker("thinking of you");
    let nudge = bob.ok(&["nudge", "Ann", "--note", &nudge_note])?;
    let seen = wait_item(ann, &nudge, "Bob's nudge", |_| true)?;
    assert_eq!(seen["kind"], "nudge");
    assert_eq!(seen["target"]["name"], "Ann");
    assert_eq!(seen["note"], nudge_note.as_str());
    let lines = wait_notices(&file, 6, "the nudge")?;
    assert_eq!(lines[5], DISCREET);

    // Cy never sees the nudge: checked once Cy has Bob's later post.
    let later = bob.ok(&["checkin", "--mood", "good", "--note", "after the nudge"])?;
    wait_item(cy, &later, "Bob's post after the nudge", |_| true)?;
    assert!(!cy.feed_ids().contains(&nudge), "Cy sees the nudge");
    assert_eq!(ids(cy, &["--kind", "nudge"])?, Vec::<String>::new());
    refused(cy, &["show", &nudge], 1)?;
    assert!(!cy.ok(&["feed"])?.contains(&nudge_note));
    assert!(
        !cy.ok(&["export", "--format", "json"])?
            .contains(&nudge_note)
    );
    assert_nowhere(cy, &nudge_note)?;

    // Nothing a notice could say reached the logs.
    for title in [&urgent_title, &detailed_title, &held_title, &nudge_note] {
        for node in [ann, bob, cy] {
            assert!(!node.log().contains(title.as_str()), "{}'s log", node.name);
        }
    }
    Ok(())
}
