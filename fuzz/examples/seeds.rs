//! Writes the seed corpora under fuzz/seeds/<target>/: one small valid input of each shape,
//! made deterministically. Run from the repository root:
//! `cargo run --manifest-path fuzz/Cargo.toml --example seeds`.

use std::fs;
use std::path::Path;

use kith_core::{Circle, ItemId, Mood, Payload, member_id};
use kith_crypto::{
    CircleId, DeviceIdentity, Envelope, EpochKey, InviteCode, Secret, encode_id, wrap_epoch_key,
};
use kith_ipc::Request;
use kith_sync::{Head, Message};

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target);
    fs::create_dir_all(&dir).expect("seed directory");
    fs::write(dir.join(name), bytes).expect("seed file");
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

fn main() {
    let ann_key = DeviceIdentity::from_secret(&Secret::from_bytes([1; 32]));
    let ann = member_id(&ann_key.member_id().0);
    let (mut circle, genesis) = Circle::found(&ann, "Ann", "Tuesday people", 1_000).expect("found");
    let id = ItemId::from_random([7; 8]);
    let checkin = circle
        .checkin(&id, Mood::Low, Some("rough night"), 2_000)
        .expect("checkin");
    let bob = member_id(&[2; 32]);
    let (_, bob_genesis) = Circle::found(&bob, "Bob", "Other", 1_000).expect("found");

    // circle_apply_changes: the target's circle is Ann's genesis (same bytes), so a change of
    // Ann's that follows it applies; Bob's genesis is a concurrent root.
    write("circle_apply_changes", "checkin", &checkin);
    write("circle_apply_changes", "other_genesis", &bob_genesis);
    write("circle_apply_changes", "genesis_again", &genesis);
    write(
        "payload_decode",
        "change",
        &Payload::Change(checkin.clone()).encode(),
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
    let mut expires = 1_800_000_000u64;
    while expires >= 0x80 {
        layout.push((expires as u8) | 0x80);
        expires >>= 7;
    }
    layout.push(expires as u8);
    let address = b"/ip4/192.0.2.1/tcp/4001";
    layout.extend_from_slice(&[1, address.len() as u8]);
    layout.extend_from_slice(address);
    write("invite_parse", "layout", &layout);

    let bob_key = DeviceIdentity::from_secret(&Secret::from_bytes([2; 32]));
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

    let requests = [
        Request::Status,
        Request::CheckIn {
            circle: None,
            mood: "low".into(),
            note: Some("rough night".into()),
        },
        Request::Ask {
            circle: Some("abc".into()),
            kind: "ride".into(),
            title: "to the clinic".into(),
            details: None,
            needed_by: Some(1_700_000_000_000),
            urgent: true,
        },
        Request::Reply {
            item: id.to_string(),
            text: "on my way".into(),
        },
        Request::Feed {
            circle: None,
            limit: Some(20),
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
