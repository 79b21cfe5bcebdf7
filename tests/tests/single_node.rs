//! One node, driven through the real `kith` binary against a real `kith daemon` process.

use std::{
    sync::{Arc, Mutex},
    thread,
    time::Duration,
};

use anyhow::Result;
use kith_testkit::{Node, wait_until};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

fn started(name: &str) -> Result<Node> {
    let mut node = Node::init(name)?;
    node.start()?;
    Ok(node)
}

fn code(node: &Node, args: &[&str]) -> Result<(Option<i32>, String)> {
    let out = node.run(args)?;
    Ok((
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    ))
}

fn find<'a>(feed: &'a Value, id: &str) -> Option<&'a Value> {
    feed.as_array()?.iter().find(|item| item["id"] == id)
}

#[test]
fn post_and_read_back() -> Result<()> {
    let ann = started("Ann")?;
    let status = ann.json(&["status"])?;
    assert_eq!(status["name"], "Ann");
    assert_eq!(status["member_id"].as_str().map(str::len), Some(52));
    assert!(
        status["peer_id"]
            .as_str()
            .is_some_and(|p| p.starts_with("12D3Koo"))
    );

    let circle = ann.ok(&["circle", "create", "Family"])?;
    assert_eq!(circle.len(), 26, "{circle}");
    let circles = ann.json(&["circle", "list"])?;
    assert_eq!(circles[0]["id"], circle.as_str());
    assert_eq!(circles[0]["name"], "Family");
    let members = ann.json(&["members"])?;
    assert_eq!(members[0]["name"], "Ann");
    assert_eq!(members[0]["role"], "steward");
    assert_eq!(members[0]["id"], status["member_id"]);

    let checkin = ann.ok(&["checkin", "--mood", "low", "--note", "rough night"])?;
    let ask = ann.ok(&[
        "ask",
        "--kind",
        "meals",
        "Dinner on Tuesday",
        "--details",
        "two adults, no nuts",
        "--needed-by",
        "2099-01-05",
        "--urgent",
    ])?;
    ann.ok(&["reply", &checkin, "thanks for asking"])?;

    let feed = ann.json(&["feed"])?;
    assert_eq!(feed.as_array().map(Vec::len), Some(2));
    assert_eq!(feed[0]["id"], ask.as_str(), "newest first");
    let c = find(&feed, &checkin).expect("check-in in feed");
    assert_eq!(c["kind"], "checkin");
    assert_eq!(c["mood"], 2);
    assert_eq!(c["mood_word"], "low");
    assert_eq!(c["note"], "rough night");
    assert_eq!(c["author"]["name"], "Ann");
    assert_eq!(c["replies"][0]["text"], "thanks for asking");
    assert!(c["created_at"].as_str().is_some_and(|t| t.ends_with('Z')));
    let r = find(&feed, &ask).expect("request in feed");
    assert_eq!(r["kind"], "request");
    assert_eq!(r["category"], "meals");
    assert_eq!(r["title"], "Dinner on Tuesday");
    assert_eq!(r["details"], "two adults, no nuts");
    assert_eq!(r["status"], "open");
    assert_eq!(r["urgent"], true);
    assert!(
        r["needed_by"]
            .as_str()
            .is_some_and(|t| t.starts_with("2099-01-0"))
    );

    // Prefixes work, limits work, human output reads.
    let shown = ann.json(&["show", &ask[..6]])?;
    assert_eq!(shown["id"], ask.as_str());
    assert_eq!(
        ann.json(&["feed", "--limit", "1"])?
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let human = ann.ok(&["feed"])?;
    assert!(human.contains("low (2/5): rough night"), "{human}");
    assert!(human.contains("[meals] Dinner on Tuesday"), "{human}");
    assert!(human.contains("just now"), "{human}");

    // Only the author closes a request; done then refuses a second close.
    ann.ok(&["done", &ask])?;
    let feed = ann.json(&["feed"])?;
    assert_eq!(
        find(&feed, &ask).map(|r| r["status"].clone()),
        Some("fulfilled".into())
    );
    let (exit, err) = code(&ann, &["cancel", &ask])?;
    assert_eq!(exit, Some(1), "{err}");
    assert!(
        err.starts_with("error: ") && err.contains("fulfilled"),
        "{err}"
    );

    // Export holds everything, decrypted.
    let export = ann.ok(&["export", "--format", "json"])?;
    let export: Value = serde_json::from_str(&export)?;
    assert_eq!(export["circle"]["name"], "Family");
    assert_eq!(export["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(export["members"][0]["name"], "Ann");
    Ok(())
}

#[test]
fn claims_follow_the_rules() -> Result<()> {
    let ann = started("Ann")?;
    ann.ok(&["circle", "create", "Friends"])?;
    let ask = ann.ok(&["ask", "--kind", "ride", "To the clinic"])?;
    // One node holds one member: its own request cannot be claimed by itself.
    let (exit, err) = code(&ann, &["claim", &ask])?;
    assert_eq!(exit, Some(1), "{err}");
    assert!(err.contains("own request"), "{err}");
    let (exit, err) = code(&ann, &["unclaim", &ask])?;
    assert_eq!(exit, Some(1), "{err}");
    ann.ok(&["cancel", &ask])?;
    let feed = ann.json(&["feed"])?;
    assert_eq!(feed[0]["status"], "cancelled");
    Ok(())
}

#[test]
fn watch_sees_new_and_changed_items() -> Result<()> {
    let ann = started("Ann")?;
    ann.ok(&["circle", "create", "Family"])?;
    let watcher = ann.watch(&[])?;
    // The watch is registered once the daemon answered it; a post after that must show up.
    // We post until the first line arrives, so no fixed sleep decides the outcome.
    let first = ann.ok(&["checkin", "--mood", "good", "--note", "sunny"])?;
    let line = watcher
        .next_matching(WAIT, |v| v["id"] == first.as_str())
        .or_else(|_| {
            // The watch may have connected after the first post; a second one must arrive.
            let again = ann.ok(&["checkin", "--mood", "good"])?;
            watcher.next_matching(WAIT, |v| v["id"] == again.as_str())
        })?;
    assert_eq!(line["kind"], "checkin");
    assert_eq!(line["mood_word"], "good");

    let ask = ann.ok(&["ask", "--kind", "talk", "Call tonight?"])?;
    let seen = watcher.next_matching(WAIT, |v| v["id"] == ask.as_str())?;
    assert_eq!(seen["status"], "open");
    ann.ok(&["reply", &ask, "any time after 8"])?;
    let changed = watcher.next_matching(WAIT, |v| {
        v["id"] == ask.as_str() && v["replies"].as_array().is_some_and(|r| !r.is_empty())
    })?;
    assert_eq!(changed["replies"][0]["text"], "any time after 8");
    Ok(())
}

#[test]
fn graceful_restart_keeps_everything() -> Result<()> {
    let mut ann = started("Ann")?;
    ann.ok(&["circle", "create", "Family"])?;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(ann.ok(&["checkin", "--mood", "okay", "--note", &format!("note {i}")])?);
    }
    let ask = ann.ok(&["ask", "--kind", "errand", "Pharmacy pickup"])?;
    ann.ok(&["reply", &ask, "on my way"])?;
    let before = ann.json(&["feed"])?;

    let status = ann.stop()?;
    assert!(status.success(), "daemon exited with {status}");
    assert!(ann.log().contains("stopped cleanly"), "{}", ann.log());
    let (exit, _) = code(&ann, &["feed"])?;
    assert_eq!(exit, Some(3), "stopped daemon means exit 3");

    ann.start()?;
    let after = ann.json(&["feed"])?;
    assert_eq!(before, after);
    // And it goes on: the chain continues after a restart.
    let more = ann.ok(&["checkin", "--mood", "great"])?;
    ann.stop()?;
    ann.start()?;
    let feed = ann.json(&["feed"])?;
    assert!(find(&feed, &more).is_some());
    assert_eq!(feed.as_array().map(Vec::len), Some(22));
    Ok(())
}

#[test]
fn sigint_also_stops_cleanly() -> Result<()> {
    let mut ann = started("Ann")?;
    ann.signal("INT")?;
    let status = ann.wait_exit()?;
    assert!(status.success(), "{status}");
    Ok(())
}

#[test]
fn kill_9_during_a_burst_loses_nothing_acknowledged() -> Result<()> {
    let mut ann = started("Ann")?;
    ann.ok(&["circle", "create", "Family"])?;
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let home = ann.home().to_path_buf();
    let mut posters = Vec::new();
    for worker in 0..4 {
        let acknowledged = acknowledged.clone();
        let home = home.clone();
        posters.push(thread::spawn(move || {
            for i in 0..1000 {
                let out = std::process::Command::new(kith_testkit::kith_bin())
                    .args([
                        "checkin",
                        "--mood",
                        "okay",
                        "--note",
                        &format!("burst {worker}-{i}"),
                    ])
                    .env("KITH_HOME", &home)
                    .output();
                match out {
                    Ok(out) if out.status.success() => {
                        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
                        if let Ok(mut ids) = acknowledged.lock() {
                            ids.push(id);
                        }
                    }
                    // The daemon died under us: stop posting.
                    _ => break,
                }
            }
        }));
    }
    wait_until(WAIT, "some posts to be acknowledged", || {
        (acknowledged.lock().ok()?.len() >= 40).then_some(())
    })?;
    ann.kill9()?;
    for poster in posters {
        let _ = poster.join();
    }
    let acknowledged = acknowledged
        .lock()
        .map(|ids| ids.clone())
        .unwrap_or_default();
    assert!(acknowledged.len() >= 40);

    ann.start()?;
    let feed = ann.json(&["feed"])?;
    for id in &acknowledged {
        assert!(find(&feed, id).is_some(), "acknowledged {id} was lost");
    }
    // A node that was killed goes on writing its chain.
    ann.ok(&["checkin", "--mood", "good"])?;
    Ok(())
}

#[test]
fn nothing_readable_in_the_home() -> Result<()> {
    let mut ann = started("Annabel Quinlan")?;
    ann.ok(&["circle", "create", "Kestrel Street Family"])?;
    let checkin = ann.ok(&[
        "checkin",
        "--mood",
        "struggling",
        "--note",
        "zebra-marmalade-secret",
    ])?;
    let ask = ann.ok(&[
        "ask",
        "--kind",
        "childcare",
        "Pick up Oskarina from school",
        "--details",
        "gate four at 15:10",
    ])?;
    ann.ok(&["reply", &checkin, "velvet-otter-reply"])?;
    let member_id = ann.json(&["status"])?["member_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let circle_id = ann.json(&["circle", "list"])?[0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let needles = [
        "zebra-marmalade-secret",
        "Pick up Oskarina",
        "gate four",
        "velvet-otter-reply",
        "Annabel",
        "Kestrel Street",
        &member_id,
        &circle_id,
        &checkin,
        &ask,
    ];
    let check = |ann: &Node, when: &str| -> Result<()> {
        for needle in needles {
            let found = ann.grep_home(needle.as_bytes())?;
            assert!(found.is_empty(), "{when}: {needle:?} readable in {found:?}");
        }
        Ok(())
    };
    check(&ann, "while running")?;
    ann.stop()?;
    check(&ann, "after a clean stop")?;
    Ok(())
}

#[test]
fn bad_input_is_refused_and_changes_nothing() -> Result<()> {
    let mut ann = started("Ann")?;
    // No circle yet.
    let (exit, err) = code(&ann, &["checkin", "--mood", "okay"])?;
    assert_eq!(exit, Some(1), "{err}");
    assert!(err.contains("circle create"), "{err}");
    ann.ok(&["circle", "create", "Family"])?;
    let before = ann.json(&["feed"])?;

    let long_note = "x".repeat(1001);
    let long_title = "y".repeat(121);
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec!["claim", "zzzzzzzzzz"], 1, "no item"),
        (vec!["reply", "zzzzzzzzzz", "hello"], 1, "no item"),
        (vec!["done", "nothing"], 1, "no item"),
        (vec!["checkin", "--mood", "ecstatic"], 2, "mood"),
        (vec!["ask", "--kind", "limo", "ride"], 2, "kind"),
        (
            vec!["checkin", "--mood", "okay", "--note", &long_note],
            1,
            "too long",
        ),
        (vec!["ask", "--kind", "meals", &long_title], 1, "too long"),
        (vec!["ask", "--kind", "meals", "   "], 1, "empty"),
        (
            vec!["ask", "--kind", "meals", "soup", "--needed-by", "someday"],
            2,
            "date",
        ),
        (
            vec!["checkin", "--mood", "okay", "--to", "bob"],
            1,
            "not a member",
        ),
        (vec!["feed", "--circle", "nonexistent"], 1, "no circle"),
    ];
    for (args, expected, words) in cases {
        let (exit, err) = code(&ann, &args)?;
        assert_eq!(exit, Some(expected), "{args:?}: {err}");
        assert!(err.starts_with("error: "), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(words), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    assert_eq!(ann.json(&["feed"])?, before, "nothing changed");
    assert!(ann.is_running());

    // A second daemon on the same home is refused with a clear error.
    let second = ann
        .command(&["daemon"])
        .env("KITH_PASSPHRASE", kith_testkit::PASSPHRASE)
        .output()?;
    assert_eq!(second.status.code(), Some(1));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("already"), "{err}");
    assert!(ann.is_running());
    assert_eq!(ann.json(&["feed"])?, before);

    // A wrong passphrase is refused.
    ann.stop()?;
    let wrong = ann
        .command(&["daemon"])
        .env("KITH_PASSPHRASE", "not the passphrase")
        .output()?;
    assert_eq!(wrong.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("wrong passphrase"));
    // And no passphrase without a terminal.
    let none = ann.command(&["daemon"]).output()?;
    assert_eq!(none.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&none.stderr).contains("passphrase"));
    ann.start()?;
    assert_eq!(ann.json(&["feed"])?, before);
    Ok(())
}

#[test]
fn malformed_control_requests_get_an_error_and_the_daemon_keeps_running() -> Result<()> {
    let ann = started("Ann")?;
    ann.ok(&["circle", "create", "Family"])?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut client = kith_ipc::Client::connect(ann.home()).await?;
        for bad in [
            &b"not json"[..],
            b"{}",
            b"{\"op\":\"launch_missiles\"}",
            b"{\"op\":\"checkin\",\"mood\":\"okay\"}",
            b"{\"op\":\"check_in\",\"circle\":null,\"mood\":\"9\",\"note\":null}",
            b"[1,2,3]",
            &[0xff, 0xfe, 0x00],
        ] {
            match client.request_raw(bad).await? {
                kith_ipc::Response::Error(e) => {
                    assert!(!e.message.is_empty());
                }
                other => panic!("{bad:?} was accepted: {other:?}"),
            }
        }
        // An oversized frame is refused and that connection closed.
        let mut big = kith_ipc::Client::connect(ann.home()).await?;
        let huge = vec![b' '; kith_ipc::MAX_REQUEST_LEN + 1];
        assert!(matches!(
            big.request_raw(&huge).await,
            Ok(kith_ipc::Response::Error(_)) | Err(_)
        ));
        // A frame cut off in the middle.
        let mut stream =
            tokio::net::UnixStream::connect(ann.home().join(kith_ipc::SOCKET_FILE)).await?;
        tokio::io::AsyncWriteExt::write_all(&mut stream, &[0, 0, 0, 50, b'{']).await?;
        drop(stream);
        anyhow::Ok(())
    })?;
    // Still alive and serving.
    let id = ann.ok(&["checkin", "--mood", "okay"])?;
    assert!(find(&ann.json(&["feed"])?, &id).is_some());
    Ok(())
}

#[test]
fn wipe_destroys_keys_and_data_with_the_daemon_running() -> Result<()> {
    let mut ann = started("Ann")?;
    ann.ok(&["circle", "create", "Family"])?;
    ann.ok(&["checkin", "--mood", "okay", "--note", "wipe-me-marker"])?;
    ann.ok(&["wipe", "--yes"])?;
    ann.wait_exit()?;
    assert!(!ann.home().join("keyfile").exists());
    assert!(!ann.home().join("store.db").exists());
    let (exit, _) = code(&ann, &["status"])?;
    assert_eq!(exit, Some(3));
    // A fresh start is refused: there is nothing to unlock.
    let out = ann
        .command(&["daemon"])
        .env("KITH_PASSPHRASE", kith_testkit::PASSPHRASE)
        .output()?;
    assert_eq!(out.status.code(), Some(1));
    Ok(())
}

#[test]
fn wipe_without_a_daemon() -> Result<()> {
    let mut ann = started("Ann")?;
    ann.ok(&["circle", "create", "Family"])?;
    ann.stop()?;
    ann.ok(&["wipe", "--yes"])?;
    assert!(!ann.home().join("keyfile").exists());
    Ok(())
}

#[test]
fn a_damaged_store_gives_a_clear_error_and_is_left_untouched() -> Result<()> {
    let mut ann = started("Ann")?;
    ann.ok(&["circle", "create", "Family"])?;
    for i in 0..50 {
        ann.ok(&["checkin", "--mood", "okay", "--note", &format!("entry {i}")])?;
    }
    ann.stop()?;
    let db = ann.home().join("store.db");
    let mut bytes = std::fs::read(&db)?;
    let middle = bytes.len() / 2;
    for b in bytes.iter_mut().skip(middle).take(512) {
        *b ^= 0x5a;
    }
    std::fs::write(&db, &bytes)?;
    for damaged in [bytes.clone(), bytes[..bytes.len() / 3].to_vec()] {
        std::fs::write(&db, &damaged)?;
        let out = ann
            .command(&["daemon"])
            .env("KITH_PASSPHRASE", kith_testkit::PASSPHRASE)
            .output()?;
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("error: ") && err.contains("damaged"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(
            std::fs::read(&db)?,
            damaged,
            "the damaged file was left as it was"
        );
    }
    Ok(())
}
