//! A control-socket request frame body, parsed exactly as the daemon does
//! (`serde_json::from_slice::<Request>`). Must never panic; an accepted request survives a
//! serialize/parse round trip unchanged.
#![no_main]

use kith_ipc::Request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = serde_json::from_slice::<Request>(data) {
        let text = serde_json::to_vec(&request).expect("a parsed request serializes");
        let again: Request = serde_json::from_slice(&text).expect("re-serialized request parses");
        assert_eq!(again, request);
    }
});
