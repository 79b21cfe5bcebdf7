//! An epoch key wrapped for this device, as read from a control operation: the first 32
//! bytes are the claimed sender's member id, the rest `WrappedKey::decode` (an accepted
//! input re-encodes to itself), then `unwrap_epoch_key` with a fixed recipient, which must
//! refuse without panicking (the sender key may be any 32 bytes).
#![no_main]

use kith_crypto::{CircleId, DeviceIdentity, MemberId, Secret, WrappedKey, unwrap_epoch_key};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((sender, rest)) = data.split_first_chunk::<32>() else {
        return;
    };
    if let Ok(wrapped) = WrappedKey::decode(rest) {
        assert_eq!(wrapped.encode(), rest, "accepted a non-canonical encoding");
        let recipient = DeviceIdentity::from_secret(&Secret::from_bytes([1; 32]));
        let _ = unwrap_epoch_key(
            &recipient,
            &MemberId(*sender),
            &CircleId([3; 16]),
            0,
            &wrapped,
        );
    }
});
