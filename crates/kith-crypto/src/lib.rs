//! Kith's cryptography: device identities, signed and encrypted envelopes, circle epoch
//! keys, sealing of small secrets, and the passphrase KDF.
//!
//! No I/O and no ambient randomness: every function that needs randomness takes an RNG,
//! so tests can seed it.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing))]

// API SKELETON: bodies are filled in by the kith-crypto work; signatures are the contract
// the store and the daemon code against.

use rand::CryptoRng;

/// Printable-id alphabet shared by member ids, circle ids and item ids: RFC 4648 base32,
/// lowercase, no padding.
pub const ID_ALPHABET: &str = "abcdefghijklmnopqrstuvwxyz234567";

/// Largest ciphertext an envelope may carry (bytes). Decoders refuse anything larger.
pub const MAX_CIPHERTEXT_LEN: usize = 64 * 1024;
/// Largest encoded envelope.
pub const MAX_ENVELOPE_LEN: usize = MAX_CIPHERTEXT_LEN + 256;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("malformed {what}: {reason}")]
    Malformed { what: &'static str, reason: &'static str },
    #[error("signature does not verify")]
    BadSignature,
    #[error("decryption failed (wrong key or tampered data)")]
    DecryptFailed,
    #[error("wrong passphrase")]
    WrongPassphrase,
    #[error("key derivation failed: {0}")]
    Kdf(String),
}

/// Secret bytes: zeroized on drop, never printed, compared in constant time.
pub struct Secret<const N: usize>([u8; N]);

impl<const N: usize> Secret<N> {
    pub fn from_bytes(bytes: [u8; N]) -> Self { todo!() }
    pub fn random<R: CryptoRng + ?Sized>(rng: &mut R) -> Self { todo!() }
    /// Only for sealing the secret into storage; the name makes every use visible in review.
    pub fn expose_secret(&self) -> &[u8; N] { todo!() }
}
// impl Debug (prints "Secret(***)"), Zeroize, ZeroizeOnDrop, Clone, ConstantTimeEq + PartialEq.

/// A member: the device's ed25519 public key. Printed as 52 chars of [`ID_ALPHABET`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberId(pub [u8; 32]);
impl MemberId {
    /// The 16-byte automerge actor id of this member (first 16 bytes of the key).
    pub fn actor(&self) -> [u8; 16] { todo!() }
    /// Safety number: 12 groups of 5 digits derived from the key, to compare in person.
    pub fn fingerprint(&self) -> String { todo!() }
}
// impl Display, Debug (same as Display), FromStr (Err = CryptoError).

/// A circle: 16 random bytes. Printed as 26 chars of [`ID_ALPHABET`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CircleId(pub [u8; 16]);
impl CircleId {
    pub fn random<R: CryptoRng + ?Sized>(rng: &mut R) -> Self { todo!() }
}
// impl Display, Debug, FromStr.

/// SHA-256 digest.
pub type Hash = [u8; 32];
pub fn sha256(data: &[u8]) -> Hash { todo!() }

/// This device's signing identity. Its libp2p PeerId comes from the same key.
pub struct DeviceIdentity { /* ed25519_dalek::SigningKey */ }
impl DeviceIdentity {
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self { todo!() }
    pub fn from_secret(secret: &Secret<32>) -> Self { todo!() }
    pub fn secret(&self) -> Secret<32> { todo!() }
    pub fn member_id(&self) -> MemberId { todo!() }
    pub fn peer_id(&self) -> libp2p_identity::PeerId { todo!() }
    pub fn sign(&self, message: &[u8]) -> [u8; 64] { todo!() }
}
// impl Debug printing only the member id.

/// Verify an ed25519 signature (strict) by `author` over `message`.
pub fn verify_signature(author: &MemberId, message: &[u8], signature: &[u8; 64]) -> Result<(), CryptoError> { todo!() }

/// One epoch of a circle's symmetric key.
pub struct EpochKey(pub Secret<32>);
impl EpochKey {
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self { todo!() }
}

/// The signed part of an envelope that is not ciphertext; bound as associated data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvelopeHeader {
    pub circle: CircleId,
    pub author: MemberId,
    /// 1 for the author's first envelope in this circle, then +1 each.
    pub seq: u64,
    /// Hash of the author's previous envelope in this circle; all zero when `seq == 1`.
    pub prev: Hash,
    pub epoch: u32,
    pub nonce: [u8; 24],
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    pub header: EnvelopeHeader,
    pub ciphertext: Vec<u8>,
    pub signature: [u8; 64],
}

impl Envelope {
    /// Encrypts `plaintext` under `key` (XChaCha20-Poly1305, header as associated data) and
    /// signs header and ciphertext with `identity`.
    pub fn seal<R: CryptoRng + ?Sized>(
        identity: &DeviceIdentity, key: &EpochKey, circle: CircleId, seq: u64, prev: Hash,
        epoch: u32, plaintext: &[u8], rng: &mut R,
    ) -> Result<Envelope, CryptoError> { todo!() }
    /// Checks the author's signature.
    pub fn verify(&self) -> Result<(), CryptoError> { todo!() }
    /// Verifies, then decrypts.
    pub fn open(&self, key: &EpochKey) -> Result<zeroize::Zeroizing<Vec<u8>>, CryptoError> { todo!() }
    /// Canonical encoding (see docs/store.md and the module docs for the layout).
    pub fn encode(&self) -> Vec<u8> { todo!() }
    /// Bounded, canonical decoding; never panics.
    pub fn decode(bytes: &[u8]) -> Result<Envelope, CryptoError> { todo!() }
    /// SHA-256 of the canonical encoding: what the next envelope's `prev` names.
    pub fn hash(&self) -> Hash { todo!() }
    /// Whether this envelope directly follows `previous` (None = this must be seq 1).
    pub fn follows(&self, previous: Option<&Envelope>) -> bool { todo!() }
}

/// Argon2id parameters, stored beside what they protect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KdfParams { pub m_cost_kib: u32, pub t_cost: u32, pub p_cost: u32, pub salt: [u8; 16] }
impl KdfParams {
    /// The parameters new stores use: 64 MiB, 3 passes, 1 lane, random salt.
    pub fn recommended<R: CryptoRng + ?Sized>(rng: &mut R) -> Self { todo!() }
}
pub fn derive_key_from_passphrase(passphrase: &[u8], params: &KdfParams) -> Result<Secret<32>, CryptoError> { todo!() }

/// HKDF-SHA256 subkey of `key` for `purpose` (domain separation) and optional `salt`.
pub fn derive_subkey(key: &Secret<32>, purpose: &str, salt: &[u8]) -> Secret<32> { todo!() }

/// XChaCha20-Poly1305 with a random nonce: returns nonce(24) || ciphertext || tag(16).
pub fn seal_random_nonce<R: CryptoRng + ?Sized>(key: &Secret<32>, aad: &[u8], plaintext: &[u8], rng: &mut R) -> Vec<u8> { todo!() }
pub fn open_random_nonce(key: &Secret<32>, aad: &[u8], sealed: &[u8]) -> Result<zeroize::Zeroizing<Vec<u8>>, CryptoError> { todo!() }

/// XChaCha20-Poly1305 with a caller-chosen nonce that must never repeat under `key`:
/// returns ciphertext || tag(16). The store uses a per-session subkey and the row id.
pub fn seal_with_nonce(key: &Secret<32>, nonce: &[u8; 24], aad: &[u8], plaintext: &[u8]) -> Vec<u8> { todo!() }
pub fn open_with_nonce(key: &Secret<32>, nonce: &[u8; 24], aad: &[u8], sealed: &[u8]) -> Result<zeroize::Zeroizing<Vec<u8>>, CryptoError> { todo!() }

/// Encodes bytes as an id string in [`ID_ALPHABET`].
pub fn encode_id(bytes: &[u8]) -> String { todo!() }
/// Decodes an id string; exact length `N` bytes.
pub fn decode_id<const N: usize>(text: &str) -> Result<[u8; N], CryptoError> { todo!() }
