//! Wrapping a circle's epoch key for one member.
//!
//! When an epoch starts (a new circle, or after a removal), its key travels to every member
//! inside a signed control operation, wrapped once per member. A member publishes no second
//! key: X25519 runs on the Montgomery form of the member's ed25519 key, with the X25519
//! secret taken from the same seed (the first half of SHA-512(seed), as RFC 8032 expands it).
//!
//! The construction follows HPKE's authenticated mode (RFC 9180, `DHKEM AuthEncap`):
//!
//! ```text
//! e            fresh X25519 key per wrap
//! dh_es        X25519(e, recipient)             forward secret for the sender
//! dh_ss        X25519(sender, recipient)        only the sender (or recipient) can make it
//! ikm          dh_es || dh_ss || e_pub || recipient_x || sender_x
//! context      "kith/epoch-key-wrap/v1" || version || circle || epoch (u32 BE)
//!              || sender member id || recipient member id
//! key || nonce HKDF-SHA256(salt = "kith/epoch-key-wrap/v1", ikm, info = context), 32 + 24 bytes
//! ciphertext   XChaCha20-Poly1305(key, nonce, aad = context || e_pub, epoch key)
//! ```
//!
//! A shared secret of all zeros (a low-order point as the other side's key) is refused.

use rand::CryptoRng;
use x25519_dalek::{EphemeralSecret, PublicKey, SharedSecret};
use zeroize::Zeroizing;

use crate::identity::x25519_public;
use crate::symmetric::{TAG_LEN, open_with_nonce, seal_with_nonce};
use crate::{CircleId, CryptoError, DeviceIdentity, EpochKey, MemberId, Secret};

/// The only layout so far; a new layout gets a new number.
const VERSION: u8 = 1;
/// HKDF salt and first part of the context: keeps these keys apart from every other use.
const DOMAIN: &[u8] = b"kith/epoch-key-wrap/v1";
/// Ciphertext of a 32-byte epoch key with its Poly1305 tag.
const CIPHERTEXT_LEN: usize = 32 + TAG_LEN;
/// Encoded length of a [`WrappedKey`]: version, ephemeral public key, ciphertext.
pub const WRAPPED_KEY_LEN: usize = 1 + 32 + CIPHERTEXT_LEN;

/// An epoch key wrapped for one member by another. Public: it travels inside a signed
/// control operation, and only the recipient can open it.
///
/// Encoding (81 bytes, always): `version (1) || ephemeral X25519 public key (32) ||
/// ciphertext of the epoch key with its tag (48)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrappedKey {
    /// The sender's fresh X25519 public key for this wrap; bound into the key derivation.
    ephemeral: [u8; 32],
    /// XChaCha20-Poly1305 ciphertext of the 32-byte epoch key, then the 16-byte tag.
    ciphertext: [u8; CIPHERTEXT_LEN],
}

impl WrappedKey {
    /// Canonical encoding: always [`WRAPPED_KEY_LEN`] bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(WRAPPED_KEY_LEN);
        out.push(VERSION);
        out.extend_from_slice(&self.ephemeral);
        out.extend_from_slice(&self.ciphertext);
        out
    }

    /// Decodes untrusted bytes; never panics. Checks the shape only: whether the bytes are
    /// authentic shows when [`unwrap_epoch_key`] opens them.
    pub fn decode(bytes: &[u8]) -> Result<WrappedKey, CryptoError> {
        let malformed = |reason| CryptoError::Malformed {
            what: "wrapped key",
            reason,
        };
        if bytes.len() != WRAPPED_KEY_LEN {
            return Err(malformed("wrong length"));
        }
        let (version, rest) = bytes.split_first().ok_or(malformed("wrong length"))?;
        if *version != VERSION {
            return Err(malformed("unknown version"));
        }
        let (ephemeral, ciphertext) = rest
            .split_first_chunk::<32>()
            .ok_or(malformed("wrong length"))?;
        let ciphertext = ciphertext
            .try_into()
            .map_err(|_| malformed("wrong length"))?;
        Ok(WrappedKey {
            ephemeral: *ephemeral,
            ciphertext,
        })
    }
}

/// Wraps `key` (epoch `epoch` of `circle`) from `sender` for `recipient`.
///
/// Refuses a recipient whose member id is not a valid ed25519 public key, or whose X25519
/// form gives an all-zero shared secret.
pub fn wrap_epoch_key<R: CryptoRng + ?Sized>(
    sender: &DeviceIdentity,
    recipient: &MemberId,
    circle: &CircleId,
    epoch: u32,
    key: &EpochKey,
    rng: &mut R,
) -> Result<WrappedKey, CryptoError> {
    let recipient_x = x25519_public(recipient)?;
    let sender_secret = sender.x25519_secret();
    let sender_x = PublicKey::from(&sender_secret);
    let ephemeral_secret = EphemeralSecret::random_from_rng(rng);
    let ephemeral = PublicKey::from(&ephemeral_secret).to_bytes();
    let dh_es = ephemeral_secret.diffie_hellman(&recipient_x);
    let dh_ss = sender_secret.diffie_hellman(&recipient_x);
    let context = context(circle, epoch, &sender.member_id(), recipient);
    let (wrap_key, nonce) = derive(
        &dh_es,
        &dh_ss,
        &ephemeral,
        &recipient_x.to_bytes(),
        &sender_x.to_bytes(),
        &context,
    )?;
    let sealed = seal_with_nonce(
        &wrap_key,
        &nonce,
        &aad(&context, &ephemeral),
        key.0.expose_secret(),
    );
    let ciphertext = sealed.try_into().map_err(|_| CryptoError::Malformed {
        what: "wrapped key",
        reason: "unexpected ciphertext length",
    })?;
    Ok(WrappedKey {
        ephemeral,
        ciphertext,
    })
}

/// Opens a key that `sender` wrapped for `recipient` (this device) for epoch `epoch` of
/// `circle`. Any other sender, recipient, circle or epoch, or any altered byte, fails with
/// [`CryptoError::DecryptFailed`]; a low-order ephemeral key with `Malformed`.
pub fn unwrap_epoch_key(
    recipient: &DeviceIdentity,
    sender: &MemberId,
    circle: &CircleId,
    epoch: u32,
    wrapped: &WrappedKey,
) -> Result<EpochKey, CryptoError> {
    let sender_x = x25519_public(sender)?;
    let recipient_secret = recipient.x25519_secret();
    let recipient_x = PublicKey::from(&recipient_secret);
    let dh_es = recipient_secret.diffie_hellman(&PublicKey::from(wrapped.ephemeral));
    let dh_ss = recipient_secret.diffie_hellman(&sender_x);
    let context = context(circle, epoch, sender, &recipient.member_id());
    let (wrap_key, nonce) = derive(
        &dh_es,
        &dh_ss,
        &wrapped.ephemeral,
        &recipient_x.to_bytes(),
        &sender_x.to_bytes(),
        &context,
    )?;
    let plaintext = open_with_nonce(
        &wrap_key,
        &nonce,
        &aad(&context, &wrapped.ephemeral),
        &wrapped.ciphertext,
    )?;
    let mut key = Secret::from_bytes([0u8; 32]);
    if plaintext.len() != key.0.len() {
        return Err(CryptoError::DecryptFailed);
    }
    key.0.copy_from_slice(&plaintext);
    Ok(EpochKey(key))
}

/// Who, where and which epoch: the HKDF info, and (with the ephemeral key) the AEAD
/// associated data.
fn context(circle: &CircleId, epoch: u32, sender: &MemberId, recipient: &MemberId) -> Vec<u8> {
    let mut out = Vec::with_capacity(DOMAIN.len() + 1 + 16 + 4 + 32 + 32);
    out.extend_from_slice(DOMAIN);
    out.push(VERSION);
    out.extend_from_slice(&circle.0);
    out.extend_from_slice(&epoch.to_be_bytes());
    out.extend_from_slice(&sender.0);
    out.extend_from_slice(&recipient.0);
    out
}

fn aad(context: &[u8], ephemeral: &[u8; 32]) -> Vec<u8> {
    [context, ephemeral.as_slice()].concat()
}

/// HKDF-SHA256 of both shared secrets and the three public keys into a wrapping key and
/// nonce. Refuses an all-zero shared secret, which a low-order public key forces.
fn derive(
    dh_es: &SharedSecret,
    dh_ss: &SharedSecret,
    ephemeral: &[u8; 32],
    recipient_x: &[u8; 32],
    sender_x: &[u8; 32],
    context: &[u8],
) -> Result<(Secret<32>, [u8; 24]), CryptoError> {
    if !dh_es.was_contributory() || !dh_ss.was_contributory() {
        return Err(CryptoError::Malformed {
            what: "x25519 key",
            reason: "low-order point (all-zero shared secret)",
        });
    }
    let mut ikm = Zeroizing::new([0u8; 32 * 5]);
    for (chunk, part) in ikm.chunks_exact_mut(32).zip([
        dh_es.as_bytes(),
        dh_ss.as_bytes(),
        ephemeral,
        recipient_x,
        sender_x,
    ]) {
        chunk.copy_from_slice(part);
    }
    let hkdf = hkdf::Hkdf::<sha2::Sha256>::new(Some(DOMAIN), &*ikm);
    let mut okm = Zeroizing::new([0u8; 32 + 24]);
    #[allow(
        clippy::expect_used,
        reason = "HKDF-SHA256 fails only for outputs over 8160 bytes; this one is 56"
    )]
    hkdf.expand(context, &mut *okm)
        .expect("56 bytes is a valid HKDF-SHA256 output length");
    let (key_bytes, nonce_bytes) = okm.split_at(32);
    let mut key = Secret::from_bytes([0u8; 32]);
    key.0.copy_from_slice(key_bytes);
    let mut nonce = [0u8; 24];
    nonce.copy_from_slice(nonce_bytes);
    Ok((key, nonce))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    struct Fixture {
        alice: DeviceIdentity,
        bob: DeviceIdentity,
        carol: DeviceIdentity,
        circle: CircleId,
        key: EpochKey,
        rng: StdRng,
    }

    fn fixture() -> Fixture {
        let mut rng = StdRng::seed_from_u64(7);
        Fixture {
            alice: DeviceIdentity::generate(&mut rng),
            bob: DeviceIdentity::generate(&mut rng),
            carol: DeviceIdentity::generate(&mut rng),
            circle: CircleId::random(&mut rng),
            key: EpochKey::generate(&mut rng),
            rng,
        }
    }

    #[test]
    fn round_trip() {
        let mut f = fixture();
        let bob = f.bob.member_id();
        let wrapped = wrap_epoch_key(&f.alice, &bob, &f.circle, 3, &f.key, &mut f.rng).unwrap();
        let encoded = wrapped.encode();
        assert_eq!(encoded.len(), WRAPPED_KEY_LEN);
        assert_eq!(WrappedKey::decode(&encoded), Ok(wrapped.clone()));
        let opened =
            unwrap_epoch_key(&f.bob, &f.alice.member_id(), &f.circle, 3, &wrapped).unwrap();
        assert_eq!(opened, f.key);
        // Wrapping for oneself works too (the sender keeps its own copy).
        let alice = f.alice.member_id();
        let own = wrap_epoch_key(&f.alice, &alice, &f.circle, 3, &f.key, &mut f.rng).unwrap();
        assert_eq!(
            unwrap_epoch_key(&f.alice, &alice, &f.circle, 3, &own),
            Ok(f.key.clone())
        );
        // A fresh ephemeral key per wrap: the same input never gives the same bytes.
        let again = wrap_epoch_key(&f.alice, &bob, &f.circle, 3, &f.key, &mut f.rng).unwrap();
        assert_ne!(again, wrapped);
    }

    #[test]
    fn wrong_recipient_sender_circle_or_epoch_fails() {
        let mut f = fixture();
        let (alice, bob) = (f.alice.member_id(), f.bob.member_id());
        let wrapped = wrap_epoch_key(&f.alice, &bob, &f.circle, 3, &f.key, &mut f.rng).unwrap();
        let other_circle = CircleId([9; 16]);
        let failed = Err(CryptoError::DecryptFailed);
        assert_eq!(
            unwrap_epoch_key(&f.carol, &alice, &f.circle, 3, &wrapped),
            failed
        );
        assert_eq!(
            unwrap_epoch_key(&f.bob, &f.carol.member_id(), &f.circle, 3, &wrapped),
            failed
        );
        assert_eq!(
            unwrap_epoch_key(&f.bob, &alice, &other_circle, 3, &wrapped),
            failed
        );
        assert_eq!(
            unwrap_epoch_key(&f.bob, &alice, &f.circle, 4, &wrapped),
            failed
        );
        assert_eq!(
            unwrap_epoch_key(&f.bob, &bob, &f.circle, 3, &wrapped),
            failed
        );
    }

    #[test]
    fn every_tampered_bit_fails() {
        let mut f = fixture();
        let alice = f.alice.member_id();
        let wrapped = wrap_epoch_key(
            &f.alice,
            &f.bob.member_id(),
            &f.circle,
            0,
            &f.key,
            &mut f.rng,
        )
        .unwrap();
        let encoded = wrapped.encode();
        for bit in 0..encoded.len() * 8 {
            let mut bytes = encoded.clone();
            bytes[bit / 8] ^= 1 << (bit % 8);
            let result = WrappedKey::decode(&bytes)
                .and_then(|w| unwrap_epoch_key(&f.bob, &alice, &f.circle, 0, &w));
            assert!(result.is_err(), "bit {bit} flipped was accepted");
        }
        for len in 0..encoded.len() {
            assert!(WrappedKey::decode(&encoded[..len]).is_err());
        }
        assert!(WrappedKey::decode(&[encoded.as_slice(), &[0]].concat()).is_err());
    }

    /// Low-order X25519 points (RFC 7748 section 7 lists them) force an all-zero secret.
    #[test]
    fn low_order_ephemeral_is_refused() {
        let f = fixture();
        let mut order_8 = [0u8; 32];
        order_8.copy_from_slice(
            &data_encoding::HEXLOWER
                .decode(b"e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")
                .unwrap(),
        );
        let mut one = [0u8; 32];
        one[0] = 1;
        for point in [[0u8; 32], one, order_8] {
            let wrapped = WrappedKey {
                ephemeral: point,
                ciphertext: [0; CIPHERTEXT_LEN],
            };
            let result = unwrap_epoch_key(&f.bob, &f.alice.member_id(), &f.circle, 0, &wrapped);
            assert!(
                matches!(
                    result,
                    Err(CryptoError::Malformed {
                        what: "x25519 key",
                        ..
                    })
                ),
                "{result:?}"
            );
        }
    }

    #[test]
    fn invalid_member_keys_are_refused() {
        let mut f = fixture();
        let mut identity_point = [0u8; 32];
        identity_point[0] = 1;
        for bad in [MemberId(identity_point), MemberId([0xff; 32])] {
            assert!(wrap_epoch_key(&f.alice, &bad, &f.circle, 0, &f.key, &mut f.rng).is_err());
            let wrapped = wrap_epoch_key(
                &f.alice,
                &f.bob.member_id(),
                &f.circle,
                0,
                &f.key,
                &mut f.rng,
            )
            .unwrap();
            assert!(unwrap_epoch_key(&f.bob, &bad, &f.circle, 0, &wrapped).is_err());
        }
    }

    /// The X25519 key really is the Montgomery form of the ed25519 key: both sides of a
    /// plain X25519 exchange agree.
    #[test]
    fn x25519_keys_match_ed25519_keys() {
        let f = fixture();
        let a = f.alice.x25519_secret();
        let b = f.bob.x25519_secret();
        let a_pub = x25519_public(&f.alice.member_id()).unwrap();
        let b_pub = x25519_public(&f.bob.member_id()).unwrap();
        assert_eq!(PublicKey::from(&a), a_pub);
        assert_eq!(PublicKey::from(&b), b_pub);
        assert_eq!(
            a.diffie_hellman(&b_pub).to_bytes(),
            b.diffie_hellman(&a_pub).to_bytes()
        );
    }

    /// The documented layout, rebuilt from its parts.
    #[test]
    fn encoding_matches_documented_layout() {
        let wrapped = WrappedKey {
            ephemeral: [0x11; 32],
            ciphertext: [0x22; CIPHERTEXT_LEN],
        };
        let expected = [vec![1u8], vec![0x11; 32], vec![0x22; 48]].concat();
        assert_eq!(wrapped.encode(), expected);
        assert!(WrappedKey::decode(&[[2u8].as_slice(), &expected[1..]].concat()).is_err());
    }
}
