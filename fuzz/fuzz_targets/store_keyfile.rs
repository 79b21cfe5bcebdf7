//! The key file as read from disk, parsed before any KDF runs (a garbled file must not make
//! argon2 allocate gigabytes). Must never panic.
#![no_main]

use kith_store::fuzzing::parse_key_file;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_key_file(data);
});
