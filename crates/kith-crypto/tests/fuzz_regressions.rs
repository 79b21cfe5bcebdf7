//! Inputs that crashed the `envelope_decode` fuzz target, or are known to be dangerous,
//! kept as files under `tests/fuzz-crashers/envelope_decode/` so the bug stays fixed
//! without a fuzzer (docs/fuzzing.md, "Crashes and fixtures"). `Envelope::decode` must
//! refuse every one of them, without panicking.
//!
//! The hand-built fixtures, each a valid envelope (seq 1, epoch 0, 5 bytes of plaintext)
//! changed in one place (fuzzer finds keep libFuzzer's names):
//!
//! - `non_minimal_seq`: seq 1 spelled in two bytes (`81 00`): a second encoding of the same
//!   envelope, so a second hash.
//! - `seq_zero_with_prev`: seq 0 with a non-zero prev.
//! - `later_seq_zero_prev`: seq 2 with the all-zero prev of a first envelope.
//! - `truncated`: cut off in the middle of the ciphertext.
//! - `length_past_end`: a ciphertext length one more than the bytes that follow.
//! - `length_over_max`: a ciphertext length of `MAX_CIPHERTEXT_LEN + 1`.
//! - `length_u64_max`: a ciphertext length of `u64::MAX` (a 10-byte varint).
//! - `varint_too_long`: a seq of eleven continuation bytes.
//! - `trailing_byte`: one byte after the signature.
//!
//! `built_fixtures_match_the_committed_ones` rebuilds the hand-built ones and requires the
//! committed bytes; `KITH_WRITE_FIXTURES=1 cargo test -p kith-crypto --test fuzz_regressions`
//! writes them again after a deliberate change.

use std::path::{Path, PathBuf};

use kith_crypto::{CircleId, DeviceIdentity, Envelope, EpochKey, MAX_CIPHERTEXT_LEN, Secret};
use rand::SeedableRng;
use rand::rngs::StdRng;

fn crashers() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-crashers/envelope_decode")
}

#[test]
fn envelope_decode_crashers_are_refused() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(crashers())
        .expect("the fixture directory exists")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", crashers().display());
    for path in &files {
        let bytes = std::fs::read(path).unwrap();
        match Envelope::decode(&bytes) {
            Ok(envelope) => panic!("{} was accepted: {envelope:?}", path.display()),
            Err(e) => eprintln!("{}: {e}", path.display()),
        }
    }
}

/// Unsigned LEB128, minimal.
fn varint(mut value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
    out
}

#[test]
fn built_fixtures_match_the_committed_ones() {
    let mut rng = StdRng::seed_from_u64(5);
    let author = DeviceIdentity::from_secret(&Secret::from_bytes([1; 32]));
    let key = EpochKey(Secret::from_bytes([9; 32]));
    let envelope = Envelope::seal(
        &author,
        &key,
        CircleId([3; 16]),
        1,
        [0; 32],
        0,
        b"hello",
        &mut rng,
    )
    .unwrap();
    let valid = envelope.encode();
    assert_eq!(Envelope::decode(&valid).as_ref(), Ok(&envelope));
    // Offsets: version 0, circle 1, author 17, seq 49 (one byte), prev 50, epoch 82 (one
    // byte), nonce 83, ciphertext length 107 (one byte), ciphertext 108, signature last.
    let (seq_at, prev_at, len_at) = (49, 50, 107);
    assert_eq!(valid[seq_at], 1);
    assert_eq!(usize::from(valid[len_at]), 5 + 16);
    let replace = |at: usize, len: usize, with: &[u8]| {
        let mut bytes = valid.clone();
        bytes.splice(at..at + len, with.iter().copied());
        bytes
    };

    let mut seq_zero = replace(seq_at, 1, &[0]);
    seq_zero[prev_at] = 1;
    let mut later_zero_prev = replace(seq_at, 1, &[2]);
    later_zero_prev[prev_at..prev_at + 32].fill(0);
    let mut trailing = valid.clone();
    trailing.push(0);
    let fixtures: Vec<(&str, Vec<u8>)> = vec![
        ("non_minimal_seq", replace(seq_at, 1, &[0x81, 0x00])),
        ("seq_zero_with_prev", seq_zero),
        ("later_seq_zero_prev", later_zero_prev),
        ("truncated", valid[..len_at + 10].to_vec()),
        (
            "length_past_end",
            replace(len_at, 1, &varint(5 + 16 + 64 + 1)),
        ),
        (
            "length_over_max",
            replace(len_at, 1, &varint(MAX_CIPHERTEXT_LEN as u64 + 1)),
        ),
        ("length_u64_max", replace(len_at, 1, &varint(u64::MAX))),
        ("varint_too_long", replace(seq_at, 1, &[0x80; 11])),
        ("trailing_byte", trailing),
    ];
    let write = std::env::var_os("KITH_WRITE_FIXTURES").is_some();
    if write {
        std::fs::create_dir_all(crashers()).unwrap();
    }
    for (name, bytes) in fixtures {
        assert!(Envelope::decode(&bytes).is_err(), "{name} is accepted");
        let path = crashers().join(name);
        if write {
            std::fs::write(&path, bytes).unwrap();
        } else {
            let committed = std::fs::read(&path).unwrap_or_default();
            assert_eq!(
                committed,
                bytes,
                "{} differs from what is built",
                path.display()
            );
        }
    }
}
