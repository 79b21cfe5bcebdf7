//! Writes the seed corpora under fuzz/seeds/<target>/: one small valid input of each shape,
//! made deterministically (all but `sealed_item`'s, which need a random seal and are kept
//! as committed). Run from the repository root:
//! `cargo run --manifest-path fuzz/Cargo.toml --example seeds`.

use std::fs;
use std::path::Path;

use kith_core::{
    Circle, ItemId, Mood, NewEpoch, Payload, RemoveOutcome, Role, WRAPPED_LEN, invite_id, member_id,
};
use kith_crypto::{
    CircleId, DeviceIdentity, Envelope, EpochKey, InviteCode, InviteContact, Secret, encode_id,
    wrap_epoch_key,
};
use kith_ipc::{FeedFilter, Request};
use kith_sync::{Head, Message};

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target);
    fs::create_dir_all(&dir).expect("seed directory");
    fs::write(dir.join(name), bytes).expect("seed file");
}

/// Minimal LEB128, as the invite layout spells numbers.
fn push_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// An invite contact's addresses: a count, then each with its length.
fn push_addresses(out: &mut Vec<u8>, addresses: &[&str]) {
    out.push(addresses.len() as u8);
    for address in addresses {
        out.push(address.len() as u8);
        out.extend_from_slice(address.as_bytes());
    }
}

/// A counter "RNG" so the seeds are the same on every run (nonces only; never for keys).
struct Counter(u8);

impl rand::TryRng for Counter {
    type Error = std::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for byte in dst {
            self.0 = self.0.wrapping_add(1);
            *byte = self.0;
        }
        Ok(())
    }
}
impl rand::TryCryptoRng for Counter {}

/// The target's local member: member id of the bytes `[1; 32]` (the document never checks
/// that an id is a valid key), founding "Tuesday people" at 1,000 exactly as
/// `fuzz_targets/circle_apply_changes.rs` does, so the genesis is the target's byte for byte
/// and every change made here follows it.
fn target_circle() -> (String, Circle, Vec<u8>) {
    let ann = member_id(&[1; 32]);
    let (circle, genesis) = Circle::found(&ann, "Ann", "Tuesday people", 1_000).expect("found");
    (ann, circle, genesis)
}

/// A new key epoch `id` of `generation`, wrapped for `recipients` (any 81 bytes and any
/// commitment: the document never opens them).
fn epoch(id: u32, generation: u64, recipients: &[&String]) -> NewEpoch {
    NewEpoch {
        id,
        generation,
        commitment: [id as u8; 32],
        wraps: recipients
            .iter()
            .map(|r| ((*r).clone(), vec![id as u8; WRAPPED_LEN]))
            .collect(),
    }
}

fn carried_out(outcome: RemoveOutcome) -> Vec<u8> {
    match outcome {
        RemoveOutcome::Removed(change) => change,
        RemoveOutcome::Pending { .. } => panic!("expected the change carried out at once"),
    }
}

fn proposed(outcome: RemoveOutcome) -> (Vec<u8>, String) {
    match outcome {
        RemoveOutcome::Pending {
            change, proposal, ..
        } => (change, proposal),
        RemoveOutcome::Removed(_) => panic!("expected a proposal"),
    }
}

/// Seeds for `circle_apply_changes`: each is the changes (concatenated; the target splits
/// them at the chunk magic) that take the target's circle to one of the document's places,
/// the new kinds of issue 5 included. Each must apply cleanly to the target's circle.
fn circle_seeds() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let (ann, mut circle, genesis) = target_circle();
    let bob = member_id(&[2; 32]);
    let cat = member_id(&[3; 32]);
    let dan = member_id(&[4; 32]);
    let proposal = ItemId::from_random([5; 8]);
    let proposal = proposal.as_str();
    let mut seeds = Vec::new();

    let checkin = circle
        .checkin(
            &ItemId::from_random([7; 8]),
            Mood::Low,
            Some("rough night"),
            2_000,
        )
        .expect("checkin");
    seeds.push(("checkin", vec![checkin]));
    // The same genesis again (a duplicate), and another circle's (a competing root).
    seeds.push(("genesis_again", vec![genesis.clone()]));
    let (_, other) = Circle::found(&bob, "Bob", "Other", 1_000).expect("found");
    seeds.push(("other_genesis", vec![other]));

    // A removal: the roster entry's marker and cutoff (`x`, `xc`) with a new epoch in `k`.
    let (_, mut c, _) = target_circle();
    let add_bob = c.add_member(&bob, "Bob", Role::Member, 1_001).expect("add");
    let removal = c
        .remove_member(&bob, &epoch(1, 1, &[&ann]), proposal, 1_002)
        .expect("remove");
    seeds.push(("removal", vec![add_bob.clone(), carried_out(removal)]));

    // A rotation wrapped for Ann and Bob (keys reach later members in key shares, which
    // are envelopes of their own: the `payload_decode` seeds).
    let (_, mut c, _) = target_circle();
    let add_bob = c.add_member(&bob, "Bob", Role::Member, 1_001).expect("add");
    let rotation = c
        .rotate(&epoch(1, 1, &[&ann, &bob]), 1_002)
        .expect("rotate");
    seeds.push(("rotation_share", vec![add_bob, rotation]));

    // Policy 2 (`p`), then Ann proposes removing Cat (`y`) and Bob's approval carries it out.
    let (_, mut c, _) = target_circle();
    let add_bob = c
        .add_member(&bob, "Bob", Role::Steward, 1_001)
        .expect("add");
    let add_cat = c.add_member(&cat, "Cat", Role::Member, 1_002).expect("add");
    let policy = carried_out(c.set_policy(2, proposal, 1_003).expect("policy"));
    let (propose, id) = proposed(
        c.remove_member(&cat, &epoch(1, 1, &[&ann, &bob]), proposal, 1_004)
            .expect("propose"),
    );
    let so_far = vec![genesis.clone(), add_bob, add_cat, policy, propose];
    let mut bobs = Circle::load(&bob, &so_far).expect("bob loads");
    let approval = carried_out(
        bobs.approve(&id, &epoch(1, 1, &[&ann, &bob]), 1_005)
            .expect("approve"),
    );
    let mut changes = so_far[1..].to_vec();
    changes.push(approval);
    seeds.push(("policy_approval", changes));

    // Under policy 2 an invite needs two stewards' approvals (`s`; its creator's counts)
    // before Bob admits Dan with it, whose entry names the epochs handed to him (`k`).
    let (_, mut c, _) = target_circle();
    let add_bob = c
        .add_member(&bob, "Bob", Role::Steward, 1_001)
        .expect("add");
    let policy = carried_out(c.set_policy(2, proposal, 1_002).expect("policy"));
    let invite = invite_id(&[6; 16]);
    let create = c
        .create_invite(&invite, [7; 32], 90_000, 1, 1_003)
        .expect("invite");
    let so_far = vec![genesis.clone(), add_bob, policy, create];
    let mut bobs = Circle::load(&bob, &so_far).expect("bob loads");
    let bob_approves = bobs.approve_invite(&invite, 1_005).expect("approve");
    let admit = bobs
        .admit(&dan, "Dan", &invite, &[0], 1_006)
        .expect("admit");
    let mut changes = so_far[1..].to_vec();
    changes.extend([bob_approves, admit]);
    seeds.push(("invite_approval", changes));

    for (name, changes) in &seeds {
        let (_, mut fresh, _) = target_circle();
        let outcome = fresh.apply_changes(changes);
        // Another circle's genesis is refused (the circle is founded already).
        if *name != "other_genesis" {
            outcome.unwrap_or_else(|e| panic!("seed {name} does not apply: {e}"));
        }
    }
    seeds
}

fn main() {
    let ann_key = DeviceIdentity::from_secret(&Secret::from_bytes([1; 32]));
    let ann = member_id(&ann_key.member_id().0);
    let bob_key = DeviceIdentity::from_secret(&Secret::from_bytes([2; 32]));
    let id = ItemId::from_random([7; 8]);

    let seeds = circle_seeds();
    for (name, changes) in &seeds {
        write("circle_apply_changes", name, &changes.concat());
    }
    let checkin = &seeds[0].1[0];
    write(
        "payload_decode",
        "change",
        &Payload::Change(checkin.clone()).encode(),
    );
    // A key share: one epoch key wrapped for one member (the bytes need not open).
    let mut wrapped = [5u8; kith_core::WRAPPED_LEN];
    wrapped[0] = 1;
    write(
        "payload_decode",
        "key_share",
        &Payload::Keys(kith_core::KeyShare {
            epoch: 7,
            commitment: [9; 32],
            wraps: vec![([3; 32], wrapped)],
        })
        .encode(),
    );

    let mut rng = Counter(0);
    let key = EpochKey(Secret::from_bytes([9; 32]));
    let circle_id = CircleId([3; 16]);
    let first =
        Envelope::seal(&ann_key, &key, circle_id, 1, [0; 32], 0, b"hello", &mut rng).expect("seal");
    let second = Envelope::seal(
        &ann_key,
        &key,
        circle_id,
        2,
        first.hash(),
        1,
        b"again",
        &mut rng,
    )
    .expect("seal");
    write("envelope_decode", "first", &first.encode());
    write("envelope_decode", "second", &second.encode());
    // A direct envelope (a key share's) for Bob; the target opens it as Ann, its author.
    let direct = Envelope::seal_direct(
        &ann_key,
        &[bob_key.member_id()],
        circle_id,
        3,
        second.hash(),
        b"share",
        &mut rng,
    )
    .expect("seal");
    write("envelope_decode", "direct", &direct.encode());

    let vector = Message::Vector {
        circle: circle_id,
        heads: vec![Head {
            author: ann_key.member_id(),
            seq: 1,
            hash: first.hash(),
        }],
    };
    let batch = Message::Envelopes {
        circle: circle_id,
        more: false,
        envelopes: vec![first.clone(), second.clone()],
    };
    write("sync_message", "vector", &vector.encode().expect("vector"));
    write("sync_message", "envelopes", &batch.encode().expect("batch"));

    let invite = InviteCode::new(
        circle_id,
        ann_key.member_id(),
        vec!["/ip4/192.0.2.1/tcp/4001".into()],
        Secret::from_bytes([8; 16]),
        1_800_000_000,
    )
    .expect("invite");
    let mut text = vec![0u8];
    text.extend_from_slice(invite.encode().as_bytes());
    write("invite_parse", "text", &text);
    // The same invite as its binary layout (the target adds the checksum).
    let mut layout = vec![1u8, 1];
    layout.extend_from_slice(&circle_id.0);
    layout.extend_from_slice(&ann_key.member_id().0);
    layout.extend_from_slice(&[8; 16]);
    push_varint(&mut layout, 1_800_000_000);
    push_addresses(&mut layout, &["/ip4/192.0.2.1/tcp/4001"]);
    write("invite_parse", "layout", &layout);

    // Version 2 (what kith makes): two contacts, Ann with two addresses and Bob with one.
    let ann_addresses = ["/ip4/192.0.2.1/tcp/4001", "/ip4/192.0.2.1/udp/4001/quic-v1"];
    let bob_addresses = ["/ip6/2001:db8::7/tcp/4001"];
    let contact = |member: &DeviceIdentity, addresses: &[&str]| InviteContact {
        member: member.member_id(),
        addresses: addresses.iter().map(|a| a.to_string()).collect(),
    };
    let invite_v2 = InviteCode::with_contacts(
        circle_id,
        vec![
            contact(&ann_key, &ann_addresses),
            contact(&bob_key, &bob_addresses),
        ],
        Secret::from_bytes([8; 16]),
        1_800_000_000,
    )
    .expect("invite");
    let mut text = vec![0u8];
    text.extend_from_slice(invite_v2.encode().as_bytes());
    write("invite_parse", "text_v2", &text);
    let mut layout = vec![1u8, 2];
    layout.extend_from_slice(&circle_id.0);
    layout.extend_from_slice(&[8; 16]);
    push_varint(&mut layout, 1_800_000_000);
    layout.push(2);
    layout.extend_from_slice(&ann_key.member_id().0);
    push_addresses(&mut layout, &ann_addresses);
    layout.extend_from_slice(&bob_key.member_id().0);
    push_addresses(&mut layout, &bob_addresses);
    write("invite_parse", "layout_v2", &layout);

    let me = DeviceIdentity::from_secret(&Secret::from_bytes([1; 32]));
    let wrapped =
        wrap_epoch_key(&bob_key, &me.member_id(), &circle_id, 0, &key, &mut rng).expect("wrap");
    let mut bytes = bob_key.member_id().0.to_vec();
    bytes.extend_from_slice(&wrapped.encode());
    write("wrapped_key", "from_bob", &bytes);

    // join_json: a join request, and both kinds of answer (the admission carries the key
    // Bob wrapped above, for the circle and recipient the target expects). Keys in sorted
    // order, so the bytes are the same with or without serde_json's preserve_order.
    let join = [
        (
            "request",
            serde_json::json!({
                "circle": circle_id.to_string(),
                "invite": encode_id(&[6; 16]),
                "name": "Bob",
                "signature": encode_id(&[5; 64]),
                "v": 1,
            }),
        ),
        (
            "admitted",
            serde_json::json!({ "admitted": {
                "circle": circle_id.to_string(),
                "keys": [{ "epoch": 0, "key": encode_id(&wrapped.encode()) }],
            }}),
        ),
        (
            "refused",
            serde_json::json!({ "refused": {
                "reason": "unknown invite (revoked, or not yet known to this member)",
            }}),
        ),
    ];
    for (name, json) in join {
        write("join_json", name, &serde_json::to_vec(&json).expect("json"));
    }

    let proposal = ItemId::from_random([5; 8]);
    let invite = invite_id(&[6; 16]);
    let requests = [
        Request::Status,
        Request::CheckIn {
            circle: None,
            mood: "low".into(),
            note: Some("rough night".into()),
            help: None,
            to: Vec::new(),
        },
        Request::Ask {
            circle: Some("abc".into()),
            kind: "ride".into(),
            title: "to the clinic".into(),
            details: None,
            needed_by: Some(1_700_000_000_000),
            urgent: true,
            window_start: None,
            horizon: Some("today".into()),
            helpers: Some(2),
            slots: Vec::new(),
            to: Vec::new(),
        },
        Request::Reply {
            item: id.to_string(),
            text: "on my way".into(),
        },
        Request::Feed {
            circle: None,
            limit: Some(20),
            filter: FeedFilter::default(),
        },
        // Issue 5: removal, approvals, policy, roles and the invites list.
        Request::Remove {
            circle: None,
            member: ann.clone(),
            dry_run: true,
        },
        Request::Approve {
            circle: Some("abc".into()),
            id: proposal.to_string(),
        },
        Request::Pending { circle: None },
        Request::Policy {
            circle: None,
            approvals: 2,
        },
        Request::SetRole {
            circle: None,
            member: ann.clone(),
            role: "steward".into(),
        },
        Request::Invites { circle: None },
        Request::RevokeInvite {
            circle: None,
            id: invite.clone(),
        },
    ];
    for (i, request) in requests.iter().enumerate() {
        let json = serde_json::to_vec(request).expect("json");
        write("ipc_request", &format!("request{i}"), &json);
    }

    write("ids", "member", ann.as_bytes());
    write("ids", "circle", circle_id.to_string().as_bytes());
    write("ids", "item", id.as_str().as_bytes());

    // A key file of the right shape (version 1, small KDF parameters, zero salt); the sealed
    // part is arbitrary since the target never runs the KDF.
    let mut keyfile = Vec::new();
    keyfile.extend_from_slice(b"KITHKEY1");
    keyfile.extend_from_slice(&1u16.to_le_bytes());
    for v in [8u32, 1, 1] {
        keyfile.extend_from_slice(&v.to_le_bytes());
    }
    keyfile.extend_from_slice(&[0; 16]);
    keyfile.extend_from_slice(&[0x55; 72]);
    write("store_keyfile", "v1", &keyfile);

    // store_codec: first byte 0 = compact envelope, 1 = circle record.
    let mut compact = vec![0u8, 2, 1];
    compact.extend_from_slice(&[4; 24]);
    compact.extend_from_slice(&[5; 64]);
    compact.extend_from_slice(b"ciphertext......");
    write("store_codec", "compact", &compact);
    let mut record = vec![1u8];
    record.extend_from_slice(&circle_id.0);
    for epoch in [0u32, 1] {
        record.extend_from_slice(&epoch.to_le_bytes());
        record.extend_from_slice(&[epoch as u8 + 6; 32]);
    }
    write("store_codec", "circle", &record);
}
