//! `Payload::decode` on arbitrary bytes (an envelope's decrypted plaintext, written by any
//! member). Must never panic; an accepted payload re-encodes to the input.
#![no_main]

use kith_core::Payload;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(payload) = Payload::decode(data) {
        assert_eq!(payload.encode(), data, "payload did not round-trip");
    }
});
