//! `InviteCode::parse` on text a person pasted. Even first byte: the rest is the text as
//! given. Odd first byte: the rest is the binary layout, which the target checksums and
//! prints as `kith1…` so the fuzzer gets past the checksum to the layout checks; such an
//! input is canonical, so if accepted it must print back unchanged. Every accepted invite
//! names 1 ..= `MAX_INVITE_CONTACTS` contacts, the inviter first. Must never panic.
#![no_main]

use kith_crypto::{INVITE_PREFIX, InviteCode, MAX_INVITE_CONTACTS, encode_id, sha256};
use libfuzzer_sys::fuzz_target;

fn check(code: &InviteCode) {
    let contacts = code.contacts();
    assert!((1..=MAX_INVITE_CONTACTS).contains(&contacts.len()));
    assert_eq!(contacts.first().map(|c| c.member), Some(code.inviter()));
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        let Ok(text) = std::str::from_utf8(rest) else {
            return;
        };
        if let Ok(code) = InviteCode::parse(text) {
            check(&code);
            assert_eq!(InviteCode::parse(&code.encode()).as_ref(), Ok(&code));
        }
    } else {
        let mut checked = INVITE_PREFIX.as_bytes().to_vec();
        checked.extend_from_slice(rest);
        let mut binary = rest.to_vec();
        binary.extend_from_slice(&sha256(&checked)[..4]);
        let text = format!("{INVITE_PREFIX}{}", encode_id(&binary));
        if let Ok(code) = InviteCode::parse(&text) {
            check(&code);
            assert_eq!(code.encode(), text, "accepted a non-canonical invite");
        }
    }
});
