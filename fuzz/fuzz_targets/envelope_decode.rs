//! `Envelope::decode` on arbitrary bytes (network and disk). Must never panic, and an
//! accepted input must be the envelope's canonical encoding: re-encoding gives it back.
//! A direct envelope (epoch u32::MAX) is also opened as a fixed reader: its slot count,
//! slots and body are untrusted too.
#![no_main]

use kith_crypto::{DeviceIdentity, Envelope, Secret};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(envelope) = Envelope::decode(data) {
        assert_eq!(envelope.encode(), data, "accepted a non-canonical encoding");
        // Hostile but well-formed: verifying and chaining must refuse quietly, never panic.
        let _ = envelope.verify();
        let _ = envelope.follows(None);
        let _ = envelope.hash();
        if envelope.is_direct() {
            let reader = DeviceIdentity::from_secret(&Secret::from_bytes([1; 32]));
            let _ = envelope.open_direct_verified(&reader);
        }
    }
});
