//! Removal through real daemons: a removed member is refused at the connection level,
//! never receives what the others write afterwards, cannot post into the circle, cannot
//! come back with an old invite (not even with a copy of their identity), and the invites
//! they made stop working. Under a policy of two approvals one steward alone removes
//! nobody. Scheduled rotation moves every member to a new key, and a member admitted while
//! a steward rotated gets the new key in a direct share.
//!
//! Every wait is on a condition with a deadline; negative checks ("Dan never sees it") are
//! made only after the others provably received something posted later.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use kith_crypto::InviteCode;
use kith_testkit::{Node, wait_until};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

/// A marker no other test (or run) writes: `prefix` plus random hex.
fn marker(prefix: &str) -> String {
    format!("{prefix}-{:016x}", rand::random::<u64>())
}

/// Runs `kith ARGS`, which must fail with exit `code` and one `error:` line; returns it.
fn refused(node: &Node, args: &[&str], code: i32) -> Result<String> {
    let out = node.run(args)?;
    let err = String::from_utf8_lossy(&out.stderr).trim_end().to_string();
    if out.status.code() != Some(code) {
        bail!(
            "{}: kith {args:?} should exit {code}, exited {:?}; stdout {:?}, stderr {err:?}",
            node.name,
            out.status.code(),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    assert!(
        err.starts_with("error: ") && err.lines().count() == 1,
        "{}: kith {args:?} should print one `error:` line, printed {err:?}",
        node.name
    );
    Ok(err)
}

fn member_ids(node: &Node) -> Result<Vec<String>> {
    let members = node.json(&["members"])?;
    Ok(members
        .as_array()
        .context("members is not an array")?
        .iter()
        .filter_map(|m| m["id"].as_str().map(str::to_string))
        .collect())
}

fn status_circle(node: &Node) -> Result<Value> {
    let status = node.json(&["status"])?;
    Ok(status["circles"][0].clone())
}

fn connected(node: &Node) -> Result<Vec<String>> {
    let status = node.json(&["status"])?;
    Ok(status["connected_peers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default())
}

fn peer_id(node: &Node) -> Result<String> {
    let status = node.json(&["status"])?;
    status["peer_id"]
        .as_str()
        .map(str::to_string)
        .context("status has no peer_id")
}

/// Posts a check-in with `note` at `node`; returns its id.
fn post(node: &Node, note: &str) -> Result<String> {
    node.ok(&["checkin", "--mood", "okay", "--note", note])
}

fn wait_sees(node: &Node, id: &str) -> Result<()> {
    wait_until(WAIT, &format!("{id} at {}", node.name), || {
        node.feed_ids().contains(&id.to_string()).then_some(())
    })
}

#[test]
fn a_removed_member_is_locked_out_and_cannot_come_back() -> Result<()> {
    let ann = Node::networked("ann")?;
    ann.ok(&["circle", "create", "Removal"])?;
    // One invite for everyone, with a use to spare: Dan will try it again later.
    let code = ann.invite(&["--uses", "4", "--ttl", "1h"])?;
    let bob = Node::networked("bob")?;
    bob.join(&code)?;
    let cy = Node::networked("cy")?;
    cy.join(&code)?;
    let mut dan = Node::init("dan")?;
    // What someone holding a backup of Dan's device would have: the same identity.
    let dan_copy = dan.copy_home("dan-copy")?;
    dan.start_networked()?;
    dan.join(&code)?;
    let dan_id = dan.json(&["status"])?["member_id"]
        .as_str()
        .context("no member id")?
        .to_string();

    // Dan is made a steward and makes an invite of his own, unused.
    ann.ok(&["role", &dan_id, "steward"])?;
    wait_until(WAIT, "dan's role at dan", || {
        let members = dan.json(&["members"]).ok()?;
        members
            .as_array()?
            .iter()
            .any(|m| {
                m["id"].as_str() == Some(dan_id.as_str()) && m["role"].as_str() == Some("steward")
            })
            .then_some(())
    })?;
    let dans_code = dan.invite(&[])?;
    let before = post(&dan, &marker("before"))?;
    for node in [&ann, &bob, &cy] {
        wait_sees(node, &before)?;
    }
    let epoch_before = status_circle(&ann)?["epoch"].as_u64();

    // What removal would leave Dan and take from him.
    let exposure = ann.json(&["remove", "--dry-run", &dan_id])?;
    assert_eq!(exposure["member"]["id"].as_str(), Some(dan_id.as_str()));
    assert!(exposure["keeps_items"].as_u64() >= Some(1), "{exposure}");
    assert_eq!(exposure["own_items"].as_u64(), Some(1), "{exposure}");
    assert_eq!(exposure["invites_voided"].as_u64(), Some(1), "{exposure}");
    assert!(exposure["keeps_epochs"].as_u64() >= Some(1), "{exposure}");
    assert!(
        member_ids(&ann)?.contains(&dan_id),
        "a dry run removed nobody"
    );

    // A member who is not a steward cannot remove anyone.
    let err = refused(&bob, &["remove", &dan_id], 1)?;
    assert!(err.contains("steward"), "{err}");

    let removal = ann.json(&["remove", &dan_id])?;
    assert_eq!(removal["outcome"].as_str(), Some("removed"), "{removal}");
    for node in [&ann, &bob, &cy] {
        wait_until(WAIT, &format!("dan gone at {}", node.name), || {
            (!member_ids(node).ok()?.contains(&dan_id)).then_some(())
        })?;
    }
    // Everyone moves to the new epoch together.
    let epoch_after = status_circle(&ann)?["epoch"].as_u64();
    assert_ne!(
        epoch_before, epoch_after,
        "the removal made a new key epoch"
    );
    for node in [&bob, &cy] {
        wait_until(WAIT, &format!("new epoch at {}", node.name), || {
            (status_circle(node).ok()?["epoch"].as_u64() == epoch_after).then_some(())
        })?;
    }

    // Everyone refuses Dan's connections.
    let dan_peer = peer_id(&dan)?;
    for node in [&ann, &bob, &cy] {
        wait_until(WAIT, &format!("{} drops dan", node.name), || {
            (!connected(node).ok()?.contains(&dan_peer)).then_some(())
        })?;
    }

    // Dan posts after his removal (his daemon may or may not know yet); the others post too.
    let dans_text = marker("after-dan");
    let dans_post = dan.run(&["checkin", "--mood", "low", "--note", &dans_text])?;
    let dans_post = String::from_utf8_lossy(&dans_post.stdout)
        .trim()
        .to_string();
    let mut texts = Vec::new();
    let mut posts = Vec::new();
    for node in [&ann, &bob, &cy] {
        let text = marker(&format!("after-{}", node.name));
        posts.push(post(node, &text)?);
        texts.push(text);
    }
    for node in [&ann, &bob, &cy] {
        for id in &posts {
            wait_sees(node, id)?;
        }
    }
    // The others have everything posted since; none of it reached Dan, by any path.
    let dan_feed = dan.feed_ids();
    for id in &posts {
        assert!(
            !dan_feed.contains(id),
            "dan received {id} after his removal"
        );
    }
    let dan_export = dan.ok(&["export", "--format", "json"])?;
    for text in &texts {
        assert!(!dan_export.contains(text.as_str()), "dan can read {text}");
    }
    // And none of Dan's later posts reached them.
    for node in [&ann, &bob, &cy] {
        if !dans_post.is_empty() {
            assert!(
                !node.feed_ids().contains(&dans_post),
                "{} shows dan's post made after his removal",
                node.name
            );
        }
        let export = node.ok(&["export", "--format", "json"])?;
        assert!(
            !export.contains(&dans_text),
            "{} holds dan's later post",
            node.name
        );
        // What Dan wrote before stays in the circle's history.
        assert!(node.feed_ids().contains(&before));
    }
    assert!(connected(&dan)?.is_empty() || !member_ids(&ann)?.contains(&dan_id));

    // Nothing readable on any disk: no home holds any of the texts, or a key, in the open.
    for node in [&ann, &bob, &cy, &dan] {
        for text in texts.iter().chain([&dans_text]) {
            let found = node.grep_home(text.as_bytes())?;
            assert!(
                found.is_empty(),
                "{} holds {text} readable: {found:?}",
                node.name
            );
        }
    }

    // The invite Dan made admits nobody now. Dan's own daemon, cut off and unaware, may
    // still let Eve into its stale copy; no member of the circle takes her.
    let mut eve = Node::networked("eve")?;
    let _ = eve.run(&["join", &dans_code])?;
    let eve_id = eve.json(&["status"])?["member_id"]
        .as_str()
        .context("no member id")?
        .to_string();
    let late = post(&ann, &marker("late"))?;
    for node in [&bob, &cy] {
        wait_sees(node, &late)?;
    }
    for node in [&ann, &bob, &cy] {
        assert!(
            !member_ids(node)?.contains(&eve_id),
            "{} admitted eve",
            node.name
        );
    }
    assert!(!eve.feed_ids().contains(&late), "eve reads the circle");
    eve.stop()?;

    // Dan's identity cannot come back through the old invite, which still has a use.
    let mut dan_copy = dan_copy;
    dan_copy.start_networked()?;
    let err = refused(&dan_copy, &["join", &code], 1)?;
    assert!(err.contains("removed"), "{err}");
    for node in [&ann, &bob, &cy] {
        assert!(!member_ids(node)?.contains(&dan_id));
    }
    Ok(())
}

#[test]
fn two_approvals_block_a_single_stewards_removal_and_invite() -> Result<()> {
    let ann = Node::networked("ann")?;
    ann.ok(&["circle", "create", "Policy"])?;
    let mut others = Vec::new();
    for name in ["bob", "cy", "dan"] {
        let node = Node::networked(name)?;
        node.join(&ann.invite(&[])?)?;
        others.push(node);
    }
    let [bob, cy, dan] = others.as_slice() else {
        bail!("three members expected");
    };
    let bob_id = bob.json(&["status"])?["member_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let dan_id = dan.json(&["status"])?["member_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    ann.ok(&["role", &bob_id, "steward"])?;
    // More approvals than there are stewards is refused.
    refused(&ann, &["circle", "policy", "--approvals", "3"], 1)?;
    ann.ok(&["circle", "policy", "--approvals", "2"])?;
    wait_until(WAIT, "the policy at bob", || {
        (status_circle(bob).ok()?["policy"].as_u64() == Some(2)).then_some(())
    })?;

    // Ann alone: the removal waits, and Dan is still a member everywhere.
    let first = ann.json(&["remove", &dan_id])?;
    assert_eq!(first["outcome"].as_str(), Some("pending"), "{first}");
    assert_eq!(first["missing"].as_u64(), Some(1), "{first}");
    let proposal = first["proposal"]
        .as_str()
        .context("no proposal id")?
        .to_string();
    let again = refused(&ann, &["approve", &proposal], 1)?;
    assert!(again.contains("already approved"), "{again}");
    // Bob sees what waits.
    let pending = wait_until(WAIT, "the proposal at bob", || {
        let pending = bob.json(&["pending"]).ok()?;
        let list = pending["pending"].as_array()?.clone();
        list.into_iter()
            .find(|p| p["id"].as_str() == Some(proposal.as_str()))
    })?;
    assert_eq!(pending["action"].as_str(), Some("remove"));
    assert_eq!(pending["target"].as_str(), Some(dan_id.as_str()));
    let probe = post(dan, &marker("still-here"))?;
    wait_sees(&ann, &probe)?;
    for node in [&ann, bob, cy] {
        assert!(
            member_ids(node)?.contains(&dan_id),
            "one approval removed dan"
        );
    }

    // Bob's approval completes it.
    let second = bob.json(&["approve", &proposal])?;
    assert_eq!(second["outcome"].as_str(), Some("removed"), "{second}");
    for node in [&ann, bob, cy] {
        wait_until(WAIT, &format!("dan gone at {}", node.name), || {
            (!member_ids(node).ok()?.contains(&dan_id)).then_some(())
        })?;
    }

    // Appointing a steward (who could then approve) takes both stewards too.
    let cy_id = cy.json(&["status"])?["member_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let appoint = ann.json(&["role", &cy_id, "steward"])?;
    assert_eq!(appoint["outcome"].as_str(), Some("pending"), "{appoint}");
    let appointment = appoint["proposal"]
        .as_str()
        .context("no proposal")?
        .to_string();
    wait_until(WAIT, "the appointment at bob", || {
        let pending = bob.json(&["pending"]).ok()?;
        pending["pending"]
            .as_array()?
            .iter()
            .any(|p| p["id"].as_str() == Some(appointment.as_str()))
            .then_some(())
    })?;
    bob.ok(&["approve", &appointment])?;
    wait_until(WAIT, "cy a steward at ann", || {
        let members = ann.json(&["members"]).ok()?;
        members
            .as_array()?
            .iter()
            .any(|m| m["id"].as_str() == Some(cy_id.as_str()) && m["role"] == "steward")
            .then_some(())
    })?;

    // An invite needs both stewards too.
    let made = ann.json(&["invite"])?;
    let code = made["code"].as_str().context("no code")?.to_string();
    let invite_id = made["id"].as_str().context("no invite id")?.to_string();
    let mut eve = Node::networked("eve")?;
    let err = refused(&eve, &["join", &code], 1)?;
    assert!(err.contains("approval"), "{err}");
    wait_until(WAIT, "ann's invite at bob", || {
        let list = bob.json(&["invite", "list"]).ok()?;
        list.as_array()?
            .iter()
            .any(|i| {
                i["id"].as_str() == Some(invite_id.as_str())
                    && i["state"].as_str() == Some("awaiting approval")
            })
            .then_some(())
    })?;
    // Only that one waits: the invites the others joined with are used, Dan's too.
    let pending = bob.json(&["pending"])?;
    let waiting: Vec<&str> = pending["pending"]
        .as_array()
        .context("no pending list")?
        .iter()
        .filter_map(|p| p["id"].as_str())
        .collect();
    assert_eq!(waiting, vec![invite_id.as_str()], "{pending}");
    bob.ok(&["approve", &invite_id])?;
    // Whichever member Eve's daemon reaches must have seen the approval.
    for node in [&ann, bob, cy] {
        wait_until(WAIT, &format!("the approval at {}", node.name), || {
            let list = node.json(&["invite", "list"]).ok()?;
            list.as_array()?
                .iter()
                .any(|i| i["id"].as_str() == Some(invite_id.as_str()) && i["state"] == "open")
                .then_some(())
        })?;
    }
    eve.join(&code)?;
    eve.stop()?;
    Ok(())
}

#[test]
fn invites_are_listed_and_revoked() -> Result<()> {
    let ann = Node::networked("ann")?;
    ann.ok(&["circle", "create", "Invites"])?;
    let code = ann.invite(&["--uses", "2"])?;
    let list = ann.json(&["invite", "list"])?;
    let invites = list.as_array().context("not an array")?;
    assert_eq!(invites.len(), 1);
    assert_eq!(invites[0]["state"].as_str(), Some("open"));
    assert_eq!(invites[0]["uses"].as_u64(), Some(2));
    let id = invites[0]["id"].as_str().context("no id")?.to_string();
    ann.ok(&["invite", "revoke", &id[..8]])?;
    let list = ann.json(&["invite", "list"])?;
    assert_eq!(list[0]["state"].as_str(), Some("revoked"));
    let again = refused(&ann, &["invite", "revoke", &id], 1)?;
    assert!(again.contains("already revoked"), "{again}");
    refused(&ann, &["invite", "revoke", "zzzzzz"], 1)?;
    let mut bob = Node::networked("bob")?;
    let err = refused(&bob, &["join", &code], 1)?;
    assert!(err.contains("revoked"), "{err}");
    bob.stop()?;
    Ok(())
}

#[test]
fn scheduled_rotation_moves_every_member_to_a_new_key() -> Result<()> {
    let mut ann = Node::init("ann")?;
    ann.set_daemon_env("KITH_ROTATION_SECS", "4");
    ann.start_networked()?;
    ann.ok(&["circle", "create", "Rotation"])?;
    let mut bob = Node::init("bob")?;
    bob.set_daemon_env("KITH_ROTATION_SECS", "4");
    bob.start_networked()?;
    bob.join(&ann.invite(&[])?)?;
    let first = status_circle(&ann)?["epoch"].as_u64();
    let rotated = wait_until(WAIT, "a scheduled rotation at ann", || {
        let epoch = status_circle(&ann).ok()?["epoch"].as_u64();
        (epoch != first).then_some(epoch)
    })?;
    wait_until(WAIT, "bob on a newer epoch", || {
        let epoch = status_circle(&bob).ok()?["epoch"].as_u64();
        (epoch != first).then_some(())
    })?;
    let held = status_circle(&bob)?["epochs_held"].as_u64().unwrap_or(0);
    assert!(held >= 2, "bob holds {held} epoch(s)");
    // Posts written with the new keys read everywhere.
    let id = post(&bob, &marker("rotated"))?;
    wait_sees(&ann, &id)?;
    let id = post(&ann, &marker("rotated"))?;
    wait_sees(&bob, &id)?;
    let _ = rotated;
    Ok(())
}

/// Starts `node` listening where `addresses` say (an invite's contact), without mDNS.
fn start_at(node: &mut Node, addresses: &[String]) -> Result<()> {
    let mut args = vec!["--no-mdns"];
    for address in addresses {
        args.extend(["--listen", address.as_str()]);
    }
    node.start_with(&args)
}

/// Ann rotates and posts while Bob is away; then, with Ann away, Bob admits Cy, handing her
/// only the keys he holds. Ann's post is sealed with a key Cy was never handed and no
/// wrap in the document gives her: when Ann is back she sends it to Cy in a direct
/// envelope (sealed for Cy by name, not with any circle key), and Cy reads the post.
#[test]
fn a_member_admitted_while_a_steward_rotated_gets_the_key_in_a_direct_share() -> Result<()> {
    let mut ann = Node::init("ann")?;
    ann.set_daemon_env("KITH_ROTATION_SECS", "3600");
    ann.start_networked()?;
    ann.ok(&["circle", "create", "Concurrent"])?;
    let mut bob = Node::networked("bob")?;
    bob.join(&ann.invite(&[])?)?;
    let bob_id = bob.json(&["status"])?["member_id"]
        .as_str()
        .context("no member id")?
        .to_string();
    // Once Bob's addresses have reached Ann, her invites name him as a contact too
    // (short-lived probes until then).
    wait_until(WAIT, "an invite naming bob", || {
        let probe = InviteCode::parse(&ann.invite(&["--ttl", "1s"]).ok()?).ok()?;
        probe
            .contacts()
            .iter()
            .any(|c| c.member.to_string() == bob_id)
            .then_some(())
    })?;
    let code = ann.invite(&["--ttl", "1h"])?;
    let parsed = InviteCode::parse(&code)?;
    let listen = |member: &str| -> Result<Vec<String>> {
        parsed
            .contacts()
            .iter()
            .find(|c| c.member.to_string() == member)
            .map(|c| c.addresses.clone())
            .context("the invite does not name the member")
    };
    let ann_id = parsed.inviter().to_string();
    let (ann_at, bob_at) = (listen(&ann_id)?, listen(&bob_id)?);
    // Bob has the invite once a later post of Ann's has reached him.
    let before = post(&ann, &marker("before"))?;
    wait_sees(&bob, &before)?;
    bob.stop()?;

    // Ann, alone, rotates (every 2 s now) and posts with the new key.
    ann.stop()?;
    ann.set_daemon_env("KITH_ROTATION_SECS", "2");
    start_at(&mut ann, &ann_at)?;
    let first = status_circle(&ann)?["epoch"].as_u64();
    wait_until(WAIT, "a rotation at ann", || {
        let epoch = status_circle(&ann).ok()?["epoch"].as_u64();
        (epoch != first).then_some(())
    })?;
    let secret = post(&ann, &marker("rotated"))?;
    ann.stop()?;

    // Cy joins through Bob, who has not seen Ann's new keys.
    start_at(&mut bob, &bob_at)?;
    let mut cy = Node::networked("cy")?;
    cy.join(&code)?;
    wait_sees(&cy, &before)?;
    assert!(!cy.feed_ids().contains(&secret));

    // Ann is back: Cy gets the key and reads the post; so does Bob.
    start_at(&mut ann, &ann_at)?;
    wait_sees(&cy, &secret)?;
    wait_sees(&bob, &secret)?;
    // And Cy's own posts reach Ann.
    let hello = post(&cy, &marker("hello"))?;
    wait_sees(&ann, &hello)?;
    // After a restart, alone, Cy still reads the post (its keys and the share are stored).
    ann.stop()?;
    bob.stop()?;
    cy.stop()?;
    cy.start()?;
    assert!(cy.feed_ids().contains(&secret), "cy lost the shared key");
    Ok(())
}

#[test]
fn a_member_offline_during_a_removal_catches_up_on_the_new_key() -> Result<()> {
    let ann = Node::networked("ann")?;
    ann.ok(&["circle", "create", "Offline"])?;
    let mut cy = Node::networked("cy")?;
    cy.join(&ann.invite(&[])?)?;
    let dan = Node::networked("dan")?;
    dan.join(&ann.invite(&[])?)?;
    let dan_id = dan.json(&["status"])?["member_id"]
        .as_str()
        .context("no member id")?
        .to_string();
    let hello = post(&dan, &marker("hello"))?;
    wait_sees(&cy, &hello)?;
    let epoch_before = status_circle(&cy)?["epoch"].as_u64();

    // Cy is away while Ann removes Dan and posts.
    cy.stop()?;
    ann.json(&["remove", &dan_id])?;
    let news = post(&ann, &marker("while-away"))?;
    let epoch_after = status_circle(&ann)?["epoch"].as_u64();
    assert_ne!(epoch_before, epoch_after);

    cy.start_networked()?;
    wait_sees(&cy, &news)?;
    assert!(!member_ids(&cy)?.contains(&dan_id));
    wait_until(WAIT, "cy on the new epoch", || {
        (status_circle(&cy).ok()?["epoch"].as_u64() == epoch_after).then_some(())
    })?;
    // And what Cy writes now, Ann reads, and Dan never gets.
    let reply = post(&cy, &marker("back"))?;
    wait_sees(&ann, &reply)?;
    assert!(!dan.feed_ids().contains(&reply));
    assert!(!dan.feed_ids().contains(&news));
    Ok(())
}
