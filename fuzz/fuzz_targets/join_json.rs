//! A `/kith/join/1` message from a peer that is not yet a member, read both ways the daemon
//! reads one:
//!
//! - as an admitter: `kith_sync::join::parse_join_request` (size, JSON shape, version, circle
//!   id, signature encoding: everything checked before any circle is looked at, the very
//!   function `admit` calls), then the signature check against a fixed invite authority;
//! - as a joiner: `serde_json::from_slice::<JoinAnswer>` (what `kith join` does with the
//!   answer), then, for an admission for the expected circle, each wrapped epoch key decoded
//!   and unwrapped with a fixed identity from a fixed inviter, as `kith join` does.
//!
//! Must never panic. An accepted request printed back as JSON parses to the same fields; an
//! accepted answer survives serialize → parse unchanged.
#![no_main]

use std::sync::LazyLock;

use kith_crypto::{
    CircleId, DeviceIdentity, JoinSignature, Secret, WRAPPED_KEY_LEN, WrappedKey, decode_id,
    encode_id, invite_authority, unwrap_epoch_key,
};
use kith_sync::join::{JoinAnswer, MAX_JOIN_REQUEST, parse_join_request};
use libfuzzer_sys::fuzz_target;

/// The joiner (this device when reading an answer) and the admitter / inviter.
static ME: LazyLock<DeviceIdentity> =
    LazyLock::new(|| DeviceIdentity::from_secret(&Secret::from_bytes([1; 32])));
static INVITER: LazyLock<DeviceIdentity> =
    LazyLock::new(|| DeviceIdentity::from_secret(&Secret::from_bytes([2; 32])));
/// The public key of the invite's authority, as a circle's document records it.
static AUTHORITY: LazyLock<[u8; 32]> =
    LazyLock::new(|| invite_authority(&Secret::from_bytes([8; 16])).member_id().0);
/// The circle the joiner's invite code names.
const CIRCLE: CircleId = CircleId([3; 16]);

fuzz_target!(|data: &[u8]| {
    if let Ok(join) = parse_join_request(data) {
        let again = serde_json::json!({
            "v": 1,
            "circle": join.circle.to_string(),
            "invite": join.invite,
            "signature": encode_id(&join.signature),
            "name": join.name,
        });
        let text = serde_json::to_vec(&again).expect("a parsed request serializes");
        // Escapes in the input can make it shorter than its plain re-encoding.
        if text.len() <= MAX_JOIN_REQUEST {
            let back = parse_join_request(&text).expect("a re-encoded request parses");
            assert_eq!(back, join);
        }
        let _ = JoinSignature(join.signature).verify(
            &AUTHORITY,
            &join.circle,
            &ME.peer_id(),
            &INVITER.peer_id(),
        );
    }
    if let Ok(answer) = serde_json::from_slice::<JoinAnswer>(data) {
        let text = serde_json::to_vec(&answer).expect("a parsed answer serializes");
        let again: JoinAnswer = serde_json::from_slice(&text).expect("a re-encoded answer parses");
        assert_eq!(
            serde_json::to_vec(&again).expect("serializes again"),
            text,
            "an answer changed in a round trip"
        );
        if let JoinAnswer::Admitted { circle, keys } = &answer
            && *circle == CIRCLE.to_string()
        {
            for wrapped in keys.iter().take(1024) {
                let Ok(bytes) = decode_id::<WRAPPED_KEY_LEN>(&wrapped.key) else {
                    continue;
                };
                let Ok(key) = WrappedKey::decode(&bytes) else {
                    continue;
                };
                let _ = unwrap_epoch_key(&ME, &INVITER.member_id(), &CIRCLE, wrapped.epoch, &key);
            }
        }
    }
});
