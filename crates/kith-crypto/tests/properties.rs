//! Property tests: decoders of untrusted bytes never panic, and sealing round-trips.

use kith_crypto::{
    CircleId, DeviceIdentity, Envelope, EpochKey, INVITE_PREFIX, InviteCode, InviteError,
    MAX_CIPHERTEXT_LEN, MemberId, Secret, WrappedKey, decode_id, encode_id, open_random_nonce,
    open_with_nonce, seal_random_nonce, sha256, unwrap_epoch_key, wrap_epoch_key,
};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

proptest! {
    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Envelope::decode(&bytes);
    }

    /// Bytes that start like a real envelope get further into the decoder than noise.
    #[test]
    fn decode_of_mutated_envelope_never_panics_or_opens(
        seed in any::<u64>(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
    ) {
        let mut rng = StdRng::seed_from_u64(seed);
        let alice = DeviceIdentity::generate(&mut rng);
        let key = EpochKey::generate(&mut rng);
        let envelope = Envelope::seal(
            &alice, &key, CircleId::random(&mut rng), 1, [0; 32], 0, b"note", &mut rng,
        ).unwrap();
        let original = envelope.encode();
        let mut bytes = original.clone();
        for (at, value) in edits {
            let len = bytes.len();
            bytes[at % len] = value;
        }
        bytes.truncate(cut % (original.len() + 1));
        if bytes != original {
            let opened = Envelope::decode(&bytes).and_then(|e| e.open(&key));
            prop_assert!(opened.is_err());
        }
    }

    #[test]
    fn decode_id_never_panics(text in ".{0,80}") {
        let _ = decode_id::<32>(&text);
        let _ = decode_id::<16>(&text);
        let _ = text.parse::<MemberId>();
        let _ = text.parse::<CircleId>();
    }

    #[test]
    fn ids_round_trip(bytes in any::<[u8; 32]>()) {
        let member = MemberId(bytes);
        prop_assert_eq!(member.to_string().parse::<MemberId>(), Ok(member));
        prop_assert_eq!(member.to_string().to_uppercase().parse::<MemberId>(), Ok(member));
        prop_assert_eq!(decode_id::<32>(&member.to_string()), Ok(bytes));
    }

    #[test]
    fn open_random_nonce_never_panics(
        key in any::<[u8; 32]>(),
        aad in proptest::collection::vec(any::<u8>(), 0..32),
        sealed in proptest::collection::vec(any::<u8>(), 0..128),
    ) {
        let key = Secret::from_bytes(key);
        prop_assert!(open_random_nonce(&key, &aad, &sealed).is_err());
        prop_assert!(open_with_nonce(&key, &[0; 24], &aad, &sealed).is_err());
    }

    #[test]
    fn sealed_plaintexts_round_trip(
        seed in any::<u64>(),
        plaintext in proptest::collection::vec(any::<u8>(), 0..2048),
        aad in proptest::collection::vec(any::<u8>(), 0..64),
        seq in 1u64..,
        epoch in any::<u32>(),
    ) {
        let mut rng = StdRng::seed_from_u64(seed);
        let key = Secret::random(&mut rng);
        let sealed = seal_random_nonce(&key, &aad, &plaintext, &mut rng);
        prop_assert_eq!(&open_random_nonce(&key, &aad, &sealed).unwrap()[..], &plaintext[..]);

        let alice = DeviceIdentity::generate(&mut rng);
        let epoch_key = EpochKey::generate(&mut rng);
        let prev = if seq == 1 { [0; 32] } else { [7; 32] };
        let envelope = Envelope::seal(
            &alice, &epoch_key, CircleId::random(&mut rng), seq, prev, epoch, &plaintext, &mut rng,
        ).unwrap();
        let decoded = Envelope::decode(&envelope.encode()).unwrap();
        prop_assert_eq!(&decoded, &envelope);
        prop_assert_eq!(&decoded.open(&epoch_key).unwrap()[..], &plaintext[..]);
        prop_assert!(plaintext.len() + 16 <= MAX_CIPHERTEXT_LEN);
    }

    #[test]
    fn invite_parse_never_panics(text in "(?s).{0,300}") {
        let _ = InviteCode::parse(&text);
    }

    /// Text that gets past the prefix and character checks, to reach the decoder.
    #[test]
    fn invite_parse_of_alphabet_text_never_panics(body in "[a-z2-7 \n]{0,2000}") {
        let _ = InviteCode::parse(&format!("kith1{body}"));
        let _ = InviteCode::parse(&format!("KITH1{}", body.to_uppercase()));
    }

    /// Arbitrary content with a correct checksum reaches the layout checks.
    #[test]
    fn invite_parse_of_checksummed_bytes_never_panics(
        content in proptest::collection::vec(any::<u8>(), 0..1200),
        version_one in any::<bool>(),
    ) {
        let mut content = content;
        if version_one && !content.is_empty() {
            content[0] = 1;
        }
        let sum = sha256(&[INVITE_PREFIX.as_bytes(), &content].concat());
        let code = format!("{INVITE_PREFIX}{}", encode_id(&[&content[..], &sum[..4]].concat()));
        match InviteCode::parse(&code) {
            // Whatever parses encodes back to the same text: one spelling per invite.
            Ok(invite) => prop_assert_eq!(invite.encode(), code),
            Err(error) => prop_assert!(
                !matches!(error, InviteError::BadCharacter { .. } | InviteError::WrongPrefix),
                "{error:?}"
            ),
        }
    }

    #[test]
    fn invites_round_trip(
        seed in any::<u64>(),
        addresses in proptest::collection::vec("[!-~]{1,128}", 0..=8),
        expires_at in any::<u64>(),
    ) {
        let mut rng = StdRng::seed_from_u64(seed);
        let inviter = DeviceIdentity::generate(&mut rng).member_id();
        let invite = InviteCode::generate(
            CircleId::random(&mut rng), inviter, addresses, expires_at, &mut rng,
        ).unwrap();
        prop_assert_eq!(InviteCode::parse(&invite.encode()), Ok(invite));
    }

    #[test]
    fn wrapped_key_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
        if let Ok(wrapped) = WrappedKey::decode(&bytes) {
            prop_assert_eq!(wrapped.encode(), bytes);
        }
    }

    #[test]
    fn wrapped_keys_round_trip(seed in any::<u64>(), epoch in any::<u32>()) {
        let mut rng = StdRng::seed_from_u64(seed);
        let alice = DeviceIdentity::generate(&mut rng);
        let bob = DeviceIdentity::generate(&mut rng);
        let circle = CircleId::random(&mut rng);
        let key = EpochKey::generate(&mut rng);
        let wrapped =
            wrap_epoch_key(&alice, &bob.member_id(), &circle, epoch, &key, &mut rng).unwrap();
        let decoded = WrappedKey::decode(&wrapped.encode()).unwrap();
        prop_assert_eq!(
            unwrap_epoch_key(&bob, &alice.member_id(), &circle, epoch, &decoded),
            Ok(key)
        );
    }
}
