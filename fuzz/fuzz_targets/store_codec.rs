//! The store's decoders of decrypted rows: the compact envelope and the circle record. The
//! first input byte picks the decoder (even: compact envelope, odd: circle record). Must
//! never panic; accepted records re-encode consistently.
#![no_main]

use kith_store::fuzzing::{circle_record_reencode, compact_envelope_reencode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    if which % 2 == 0 {
        // Varints need not be minimal here (the rows are authenticated before they are
        // decoded), so compare re-encodings rather than the input.
        if let Ok(once) = compact_envelope_reencode(bytes) {
            assert_eq!(compact_envelope_reencode(&once), Ok(once.clone()));
        }
    } else if let Ok(again) = circle_record_reencode(bytes) {
        assert_eq!(again, bytes, "circle record did not round-trip");
    }
});
