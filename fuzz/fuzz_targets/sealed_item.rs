//! A private item as read from the document: the first byte says how many key slots follow
//! (0-3), then the slots, then the sealed body. `open_item` with a fixed reader and author
//! must refuse anything it cannot open, without panicking; so must `open_part` on the
//! bytes after the slots, under a fixed key.
#![no_main]

use kith_crypto::{
    CircleId, DeviceIdentity, ItemKey, KEY_SLOT_LEN, MemberId, Secret, open_item, open_part,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((count, rest)) = data.split_first() else {
        return;
    };
    let slots_len = usize::from(count % 4) * KEY_SLOT_LEN;
    if rest.len() < slots_len {
        return;
    }
    let (slots, body) = rest.split_at(slots_len);
    let reader = DeviceIdentity::from_secret(&Secret::from_bytes([1; 32]));
    let author = DeviceIdentity::from_secret(&Secret::from_bytes([2; 32])).member_id();
    let circle = CircleId([3; 16]);
    let _ = open_item(&reader, &author, &circle, "abcdefgh23", slots, body);
    let _ = open_item(&reader, &MemberId([0xff; 32]), &circle, "abcdefgh23", slots, body);
    let key = ItemKey(Secret::from_bytes([4; 32]));
    let _ = open_part(&key, &circle, "abcdefgh23", "reply:abcdefgh24", body);
});
