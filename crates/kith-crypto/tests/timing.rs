//! Rough seal/open timings: `cargo test -p kith-crypto --release --test timing -- --ignored
//! --nocapture`. Ignored by default: timings in debug builds or busy CI mean nothing.

use std::time::Instant;

use kith_crypto::{CircleId, DeviceIdentity, Envelope, EpochKey};

#[test]
#[ignore = "prints timings; run explicitly in release"]
fn seal_and_open_timing() {
    const ROUNDS: u32 = 2_000;
    let mut rng = rand::rng();
    let alice = DeviceIdentity::generate(&mut rng);
    let key = EpochKey::generate(&mut rng);
    let circle = CircleId::random(&mut rng);
    let plaintext = [0x61u8; 150];

    let started = Instant::now();
    let mut envelopes = Vec::new();
    for _ in 0..ROUNDS {
        envelopes.push(
            Envelope::seal(&alice, &key, circle, 1, [0; 32], 0, &plaintext, &mut rng).unwrap(),
        );
    }
    let seal = started.elapsed() / ROUNDS;

    let encoded: Vec<Vec<u8>> = envelopes.iter().map(Envelope::encode).collect();
    let started = Instant::now();
    for bytes in &encoded {
        let envelope = Envelope::decode(bytes).unwrap();
        assert_eq!(envelope.open(&key).unwrap().len(), plaintext.len());
    }
    let open = started.elapsed() / ROUNDS;
    eprintln!(
        "150-byte plaintext, {} bytes encoded: seal {seal:?}, decode+verify+open {open:?}",
        encoded[0].len()
    );
}
