//! Printable ids typed by people, pasted from messages, or found in requests: member ids,
//! circle ids, item ids, and the raw `decode_id`. Must never panic; an accepted id prints
//! back in its one canonical (lowercase) spelling.
#![no_main]

use std::str::FromStr;

use kith_core::ItemId;
use kith_crypto::{CircleId, MemberId, decode_id, encode_id};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(bytes) = decode_id::<32>(text) {
        assert_eq!(encode_id(&bytes), text.to_ascii_lowercase());
    }
    if let Ok(bytes) = decode_id::<16>(text) {
        assert_eq!(encode_id(&bytes), text.to_ascii_lowercase());
    }
    if let Ok(member) = MemberId::from_str(text) {
        assert_eq!(member.to_string(), text.to_ascii_lowercase());
        let _ = member.fingerprint();
        let _ = kith_core::actor_for_member(&member.to_string()).expect("canonical id");
    }
    if let Ok(circle) = CircleId::from_str(text) {
        assert_eq!(circle.to_string(), text.to_ascii_lowercase());
    }
    if let Ok(item) = ItemId::parse(text) {
        assert_eq!(ItemId::parse(item.as_str()).as_ref(), Ok(&item));
    }
    let _ = kith_core::actor_for_member(text);
});
