//! Kith's cryptography: device identities, signed and encrypted envelopes, circle epoch
//! keys and their wrapping for members, invite codes, sealing of small secrets, and the
//! passphrase KDF.
//!
//! No I/O and no ambient randomness: every function that needs randomness takes an RNG,
//! so tests can seed it. Every decoder of untrusted bytes returns an error instead of
//! panicking. The full design, with the reasons behind each choice, is in `docs/crypto.md`.
//!
//! # Model
//!
//! - A device holds one ed25519 key ([`DeviceIdentity`]). Its public half is the member's
//!   [`MemberId`] and also its libp2p `PeerId`, so the Noise handshake proves membership.
//! - A circle ([`CircleId`]) has symmetric [`EpochKey`]s; removing a member starts a new
//!   epoch the removed member never receives.
//! - Everything a member writes travels as an [`Envelope`]: XChaCha20-Poly1305 under the
//!   epoch key with the header as associated data, then signed by the author. Each author's
//!   envelopes in a circle form a hash chain through `seq` and `prev`.
//! - Each epoch key reaches each member as a [`WrappedKey`] ([`wrap_epoch_key`]): X25519 on
//!   the members' own ed25519 keys, an ephemeral key per wrap, HKDF-SHA256 and
//!   XChaCha20-Poly1305, bound to circle, epoch, sender and recipient.
//! - A person joins with an [`InviteCode`], one checksummed line (`kith1…`), and proves it
//!   holds the invite with a [`JoinProof`] bound to the connection's two peer ids, never
//!   sending the invite's secret.
//!
//! # Example
//!
//! ```
//! use kith_crypto::{CircleId, DeviceIdentity, Envelope, EpochKey};
//!
//! let mut rng = rand::rng();
//! let alice = DeviceIdentity::generate(&mut rng);
//! let circle = CircleId::random(&mut rng);
//! let key = EpochKey::generate(&mut rng);
//!
//! let first = Envelope::seal(&alice, &key, circle, 1, [0; 32], 0, b"I'm okay", &mut rng)?;
//! let second =
//!     Envelope::seal(&alice, &key, circle, 2, first.hash(), 0, b"still okay", &mut rng)?;
//!
//! // On the wire and on disk an envelope is its canonical encoding.
//! let received = Envelope::decode(&second.encode())?;
//! assert!(received.follows(Some(&first)));
//! assert_eq!(&received.open(&key)?[..], b"still okay");
//! # Ok::<(), kith_crypto::CryptoError>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod envelope;
mod id;
mod identity;
mod invite;
mod kdf;
mod sealed;
mod secret;
mod symmetric;
#[cfg(test)]
mod vectors;
pub mod wire;
mod wrap;

pub use envelope::{DIRECT_EPOCH, Envelope, EnvelopeHeader};
pub use id::{CircleId, MemberId, decode_id, encode_id};
pub use identity::{AuthorKey, DeviceIdentity, sha256, verify_signature};
pub use invite::{
    INVITE_PREFIX, InviteCode, InviteContact, InviteError, JoinProof, JoinSignature,
    MAX_INVITE_ADDRESS_LEN, MAX_INVITE_ADDRESSES, MAX_INVITE_CODE_LEN, MAX_INVITE_CONTACTS,
    MAX_INVITE_TOTAL_ADDRESSES, invite_authority, invite_id, invite_verifier_key,
};
pub use kdf::{KdfParams, derive_key_from_passphrase, derive_subkey};
pub use sealed::{
    ItemKey, KEY_SLOT_LEN, MAX_READERS, open_item, open_part, open_rekey, part_generation,
    rekey_item, seal_item, seal_part, seal_part_at,
};
pub use secret::{EpochKey, Secret};
pub use symmetric::{open_random_nonce, open_with_nonce, seal_random_nonce, seal_with_nonce};
pub use wrap::{WRAPPED_KEY_LEN, WrappedKey, unwrap_epoch_key, wrap_epoch_key};

/// Printable-id alphabet shared by member ids, circle ids and item ids: RFC 4648 base32,
/// lowercase, no padding.
pub const ID_ALPHABET: &str = "abcdefghijklmnopqrstuvwxyz234567";

/// Largest ciphertext an envelope may carry (bytes). Decoders refuse anything larger.
pub const MAX_CIPHERTEXT_LEN: usize = 64 * 1024;
/// Largest encoded envelope; longer input is refused before parsing.
pub const MAX_ENVELOPE_LEN: usize = MAX_CIPHERTEXT_LEN + 256;

/// SHA-256 digest.
pub type Hash = [u8; 32];

/// Everything that can go wrong in this crate. Messages never contain key material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    /// Input that does not have the shape it must have (bad length, varint, field...).
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What was being decoded or checked.
        what: &'static str,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A signature that does not verify under the claimed author's key.
    #[error("signature does not verify")]
    BadSignature,
    /// AEAD authentication failed: wrong key, or the data or associated data were altered.
    #[error("decryption failed (wrong key or tampered data)")]
    DecryptFailed,
    /// The passphrase-derived key does not open what it should (used by the store).
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// The KDF refused its parameters or failed to run.
    #[error("key derivation failed: {0}")]
    Kdf(String),
}
