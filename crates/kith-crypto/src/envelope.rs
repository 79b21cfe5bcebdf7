//! Envelopes: the only form in which content leaves a member's machine.
//!
//! # Canonical encoding (version 1)
//!
//! ```text
//! version    u8 = 1
//! circle     [16]
//! author     [32]      ed25519 public key
//! seq        varint    u64, >= 1
//! prev       [32]      all zero iff seq == 1
//! epoch      varint    u32
//! nonce      [24]      XChaCha20-Poly1305 nonce, random per envelope
//! ct_len     varint    16 ..= MAX_CIPHERTEXT_LEN
//! ciphertext [ct_len]  ciphertext || 16-byte Poly1305 tag
//! signature  [64]      ed25519 over "kith/envelope/v1" || version .. ciphertext
//! ```
//!
//! An envelope whose `epoch` is [`DIRECT_EPOCH`] is sealed for named readers instead of
//! with a circle key: its ciphertext is `slot count (u8) || key slots || sealed body`, as a
//! private item's (see [`Envelope::seal_direct`]).
//!
//! Varints are unsigned LEB128 and must be minimal. The header (`version` .. `nonce`) is the
//! AEAD associated data, so a ciphertext cannot be moved under another header even by a
//! member holding the key. Each envelope has exactly one encoding (minimal varints, no
//! trailing bytes), and strict verification stops anyone but the author from making a second
//! valid signature, so [`Envelope::hash`] names an envelope unambiguously and `prev` links
//! form a hash chain per author and circle.

use std::fmt::Write;

use rand::CryptoRng;
use zeroize::Zeroizing;

use crate::sealed::{KEY_SLOT_LEN, open_item, seal_item};
use crate::symmetric::{TAG_LEN, open_with_nonce, seal_with_nonce};
use crate::wire::{Reader, write_varint};
use crate::{
    AuthorKey, CircleId, CryptoError, DeviceIdentity, EpochKey, Hash, MAX_CIPHERTEXT_LEN,
    MAX_ENVELOPE_LEN, MemberId, sha256, verify_signature,
};

/// The only encoding version so far; a new layout gets a new number.
const VERSION: u8 = 1;
/// The `epoch` of an envelope sealed for named readers rather than with a circle key; no
/// epoch takes this id.
pub const DIRECT_EPOCH: u32 = u32::MAX;
/// Prefix of every signed message, so an envelope signature can never be confused with a
/// signature the same key makes for another purpose.
const SIGNING_DOMAIN: &[u8] = b"kith/envelope/v1";

/// The signed part of an envelope that is not ciphertext; bound as associated data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvelopeHeader {
    /// The circle this envelope belongs to; a copy under another circle fails to open.
    pub circle: CircleId,
    /// The signing device; its key verifies the signature.
    pub author: MemberId,
    /// 1 for the author's first envelope in this circle, then +1 each.
    pub seq: u64,
    /// Hash of the author's previous envelope in this circle; all zero when `seq == 1`.
    pub prev: Hash,
    /// Which epoch key encrypted the ciphertext.
    pub epoch: u32,
    /// Random per envelope; 24 bytes make random collisions negligible.
    pub nonce: [u8; 24],
}

impl EnvelopeHeader {
    /// `identity`'s header at this chain position, with a random nonce.
    fn fresh<R: CryptoRng + ?Sized>(
        identity: &DeviceIdentity,
        circle: CircleId,
        seq: u64,
        prev: Hash,
        epoch: u32,
        rng: &mut R,
    ) -> EnvelopeHeader {
        let mut nonce = [0u8; 24];
        rng.fill_bytes(&mut nonce);
        EnvelopeHeader {
            circle,
            author: identity.member_id(),
            seq,
            prev,
            epoch,
            nonce,
        }
    }

    /// The header's canonical bytes: the AEAD associated data.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        self.encode_into(&mut out);
        out
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(VERSION);
        out.extend_from_slice(&self.circle.0);
        out.extend_from_slice(&self.author.0);
        write_varint(out, self.seq);
        out.extend_from_slice(&self.prev);
        write_varint(out, u64::from(self.epoch));
        out.extend_from_slice(&self.nonce);
    }
}

/// A sealed, signed unit of content or control, as stored and synced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// Who, where in the author's chain, and under which key.
    pub header: EnvelopeHeader,
    /// XChaCha20-Poly1305 ciphertext with its 16-byte tag.
    pub ciphertext: Vec<u8>,
    /// The author's ed25519 signature over the domain string, header and ciphertext.
    pub signature: [u8; 64],
}

impl Envelope {
    /// Encrypts `plaintext` under `key` (XChaCha20-Poly1305, header as associated data) and
    /// signs header and ciphertext with `identity`.
    ///
    /// Refuses a `seq`/`prev` pair that `decode` would refuse, and a plaintext too long for
    /// one envelope, so every sealed envelope can be decoded by every member.
    #[allow(
        clippy::too_many_arguments,
        reason = "the public contract of the store and daemon"
    )]
    pub fn seal<R: CryptoRng + ?Sized>(
        identity: &DeviceIdentity,
        key: &EpochKey,
        circle: CircleId,
        seq: u64,
        prev: Hash,
        epoch: u32,
        plaintext: &[u8],
        rng: &mut R,
    ) -> Result<Envelope, CryptoError> {
        let header = EnvelopeHeader::fresh(identity, circle, seq, prev, epoch, rng);
        Self::seal_header(identity, key, header, plaintext)
    }

    /// `seal` with the nonce already in `header`: for known-answer tests only, since a
    /// repeated nonce under one key breaks confidentiality.
    pub(crate) fn seal_header(
        identity: &DeviceIdentity,
        key: &EpochKey,
        header: EnvelopeHeader,
        plaintext: &[u8],
    ) -> Result<Envelope, CryptoError> {
        check_chain_position(header.seq, &header.prev)?;
        if plaintext.len() > MAX_CIPHERTEXT_LEN - TAG_LEN {
            return Err(CryptoError::Malformed {
                what: "plaintext",
                reason: "too long for one envelope",
            });
        }
        let ciphertext = seal_with_nonce(&key.0, &header.nonce, &header.encode(), plaintext);
        Ok(Envelope::signed(identity, header, ciphertext))
    }

    /// Seals `plaintext` for `readers` by name instead of with a circle key: for what must
    /// reach members whatever keys they hold (a key share), and must not reach anyone else
    /// who holds one (a removed member). The envelope's `epoch` is [`DIRECT_EPOCH`].
    ///
    /// The ciphertext is `slot count (u8) || key slots || sealed body`, made as a private
    /// item's are (sealed.rs), labelled with the header's hash so that it opens under this
    /// header only. The author is always a reader; at most [`MAX_READERS`](crate::MAX_READERS)
    /// readers.
    #[allow(
        clippy::too_many_arguments,
        reason = "the same chain position and identity as Envelope::seal, plus readers"
    )]
    pub fn seal_direct<R: CryptoRng + ?Sized>(
        identity: &DeviceIdentity,
        readers: &[MemberId],
        circle: CircleId,
        seq: u64,
        prev: Hash,
        plaintext: &[u8],
        rng: &mut R,
    ) -> Result<Envelope, CryptoError> {
        check_chain_position(seq, &prev)?;
        let header = EnvelopeHeader::fresh(identity, circle, seq, prev, DIRECT_EPOCH, rng);
        let label = direct_label(&header);
        let (_, slots, body) = seal_item(identity, readers, &circle, &label, plaintext, rng)?;
        let count =
            u8::try_from(slots.len() / KEY_SLOT_LEN).map_err(|_| malformed("too many readers"))?;
        let mut ciphertext = Vec::with_capacity(1 + slots.len() + body.len());
        ciphertext.push(count);
        ciphertext.extend_from_slice(&slots);
        ciphertext.extend_from_slice(&body);
        if ciphertext.len() > MAX_CIPHERTEXT_LEN {
            return Err(CryptoError::Malformed {
                what: "plaintext",
                reason: "too long for one envelope",
            });
        }
        Ok(Envelope::signed(identity, header, ciphertext))
    }

    /// The envelope of `header` and `ciphertext`, signed by `identity`.
    fn signed(identity: &DeviceIdentity, header: EnvelopeHeader, ciphertext: Vec<u8>) -> Envelope {
        let mut envelope = Envelope {
            header,
            ciphertext,
            signature: [0; 64],
        };
        envelope.signature = identity.sign(&envelope.signed_message());
        envelope
    }

    /// Whether this envelope was sealed for named readers ([`Envelope::seal_direct`]).
    pub fn is_direct(&self) -> bool {
        self.header.epoch == DIRECT_EPOCH
    }

    /// Opens an envelope sealed for named readers as `reader`, without checking the
    /// signature again (see [`Envelope::open_verified`]). Not being a reader, and any
    /// malformed or altered byte, is [`CryptoError::DecryptFailed`] or `Malformed`.
    pub fn open_direct_verified(
        &self,
        reader: &DeviceIdentity,
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if !self.is_direct() {
            return Err(malformed("not sealed for named readers"));
        }
        let (count, rest) = self
            .ciphertext
            .split_first()
            .ok_or(malformed("no slot count"))?;
        let slots_len = usize::from(*count) * KEY_SLOT_LEN;
        if rest.len() < slots_len {
            return Err(malformed("shorter than its key slots"));
        }
        let (slots, body) = rest.split_at(slots_len);
        let label = direct_label(&self.header);
        let (_, plaintext) = open_item(
            reader,
            &self.header.author,
            &self.header.circle,
            &label,
            slots,
            body,
        )?;
        Ok(plaintext)
    }

    /// Checks the author's signature.
    pub fn verify(&self) -> Result<(), CryptoError> {
        verify_signature(&self.header.author, &self.signed_message(), &self.signature)
    }

    /// Checks the signature against an already parsed key of the author. A key of another
    /// member is refused, so the author in the header is always the one checked.
    pub fn verify_with(&self, author: &AuthorKey) -> Result<(), CryptoError> {
        if author.member() != &self.header.author {
            return Err(CryptoError::BadSignature);
        }
        author.verify(&self.signed_message(), &self.signature)
    }

    /// Decrypts without checking the signature again: only for an envelope that was
    /// verified already, by kith-sync when it arrived or by this device's store (whose rows
    /// are authenticated under its own key). Saves a second signature check per envelope
    /// on catch-up and on start.
    pub fn open_verified(&self, key: &EpochKey) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        open_with_nonce(
            &key.0,
            &self.header.nonce,
            &self.header.encode(),
            &self.ciphertext,
        )
    }

    /// Verifies, then decrypts. Verifying first means unauthenticated bytes never reach
    /// the cipher, and a member cannot pass off a re-encrypted copy as someone else's.
    pub fn open(&self, key: &EpochKey) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        self.verify()?;
        self.open_verified(key)
    }

    /// Canonical encoding (see the module docs and docs/crypto.md for the layout).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.body_with_prefix(&[]);
        out.extend_from_slice(&self.signature);
        out
    }

    /// Bounded, canonical decoding; never panics.
    pub fn decode(bytes: &[u8]) -> Result<Envelope, CryptoError> {
        if bytes.len() > MAX_ENVELOPE_LEN {
            return Err(malformed("longer than MAX_ENVELOPE_LEN"));
        }
        let mut reader = Reader::new(bytes, malformed);
        if reader.array::<1>()? != [VERSION] {
            return Err(malformed("unknown version"));
        }
        let circle = CircleId(reader.array()?);
        let author = MemberId(reader.array()?);
        let seq = reader.varint()?;
        let prev = reader.array()?;
        check_chain_position(seq, &prev)?;
        let epoch =
            u32::try_from(reader.varint()?).map_err(|_| malformed("epoch does not fit in u32"))?;
        let nonce = reader.array()?;
        let ct_len = usize::try_from(reader.varint()?)
            .ok()
            .filter(|len| (TAG_LEN..=MAX_CIPHERTEXT_LEN).contains(len))
            .ok_or(malformed("ciphertext length out of range"))?;
        let ciphertext = reader.take(ct_len)?.to_vec();
        let signature = reader.array()?;
        if !reader.rest.is_empty() {
            return Err(malformed("trailing bytes"));
        }
        Ok(Envelope {
            header: EnvelopeHeader {
                circle,
                author,
                seq,
                prev,
                epoch,
                nonce,
            },
            ciphertext,
            signature,
        })
    }

    /// SHA-256 of the canonical encoding: what the next envelope's `prev` names.
    pub fn hash(&self) -> Hash {
        sha256(&self.encode())
    }

    /// Whether this envelope directly follows `previous` (None = this must be seq 1).
    ///
    /// Checks the chain only; signatures are checked by [`Envelope::verify`].
    pub fn follows(&self, previous: Option<&Envelope>) -> bool {
        match previous {
            None => self.header.seq == 1 && self.header.prev == [0; 32],
            Some(previous) => {
                self.header.circle == previous.header.circle
                    && self.header.author == previous.header.author
                    && previous.header.seq.checked_add(1) == Some(self.header.seq)
                    && self.header.prev == previous.hash()
            }
        }
    }

    /// What the signature covers: the domain string, then the encoding up to and including
    /// the ciphertext.
    fn signed_message(&self) -> Vec<u8> {
        self.body_with_prefix(SIGNING_DOMAIN)
    }

    /// `prefix || header || ct_len || ciphertext`.
    fn body_with_prefix(&self, prefix: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(prefix.len() + 128 + self.ciphertext.len() + 64);
        out.extend_from_slice(prefix);
        self.header.encode_into(&mut out);
        write_varint(&mut out, self.ciphertext.len() as u64);
        out.extend_from_slice(&self.ciphertext);
        out
    }

    /// Replaces the signature (tests build envelopes a member could have signed).
    #[cfg(test)]
    pub(crate) fn resign(&mut self, identity: &DeviceIdentity) {
        self.header.author = identity.member_id();
        self.signature = identity.sign(&self.signed_message());
    }
}

/// What a direct envelope's key slots and body are bound to: its header, so they open
/// under no other. '/' is not in the item id alphabet, so no private item shares a label.
fn direct_label(header: &EnvelopeHeader) -> String {
    let hash = sha256(&header.encode());
    let mut label = String::with_capacity(9 + 64);
    label.push_str("envelope/");
    for byte in hash {
        let _ = write!(label, "{byte:02x}");
    }
    label
}

fn malformed(reason: &'static str) -> CryptoError {
    CryptoError::Malformed {
        what: "envelope",
        reason,
    }
}

/// An author's chain starts at 1 with no predecessor, and every later link names one.
fn check_chain_position(seq: u64, prev: &Hash) -> Result<(), CryptoError> {
    match (seq, *prev == [0; 32]) {
        (0, _) => Err(malformed("seq must be at least 1")),
        (1, true) | (2.., false) => Ok(()),
        (1, false) => Err(malformed("first envelope must have a zero prev")),
        (2.., true) => Err(malformed("later envelope must name its prev")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Secret;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    struct Fixture {
        alice: DeviceIdentity,
        bob: DeviceIdentity,
        key: EpochKey,
        circle: CircleId,
        rng: StdRng,
    }

    fn fixture() -> Fixture {
        let mut rng = StdRng::seed_from_u64(7);
        Fixture {
            alice: DeviceIdentity::generate(&mut rng),
            bob: DeviceIdentity::generate(&mut rng),
            key: EpochKey::generate(&mut rng),
            circle: CircleId::random(&mut rng),
            rng,
        }
    }

    #[test]
    fn a_direct_envelope_opens_for_its_readers_only() {
        let mut f = fixture();
        let carol = DeviceIdentity::generate(&mut f.rng);
        let readers = [f.bob.member_id()];
        let envelope = Envelope::seal_direct(
            &f.alice,
            &readers,
            f.circle,
            1,
            [0; 32],
            b"a key for bob",
            &mut f.rng,
        )
        .unwrap();
        assert!(envelope.is_direct());
        assert_eq!(envelope.header.epoch, DIRECT_EPOCH);
        envelope.verify().unwrap();
        let decoded = Envelope::decode(&envelope.encode()).unwrap();
        assert_eq!(decoded, envelope);
        for reader in [&f.alice, &f.bob] {
            assert_eq!(
                &decoded.open_direct_verified(reader).unwrap()[..],
                b"a key for bob"
            );
        }
        assert!(matches!(
            decoded.open_direct_verified(&carol),
            Err(CryptoError::DecryptFailed)
        ));
        // No circle key opens it, and an ordinary envelope does not open as a direct one.
        assert!(decoded.open(&f.key).is_err());
        let ordinary =
            Envelope::seal(&f.alice, &f.key, f.circle, 1, [0; 32], 3, b"x", &mut f.rng).unwrap();
        assert!(!ordinary.is_direct());
        assert!(ordinary.open_direct_verified(&f.bob).is_err());
    }

    #[test]
    fn a_direct_envelope_opens_under_its_own_header_only() {
        let mut f = fixture();
        let readers = [f.bob.member_id()];
        let envelope = Envelope::seal_direct(
            &f.alice, &readers, f.circle, 1, [0; 32], b"share", &mut f.rng,
        )
        .unwrap();
        // The same ciphertext under another header (re-signed by its author) does not open.
        let mut moved = envelope.clone();
        moved.header.seq = 2;
        moved.header.prev = [1; 32];
        moved.signature = f.alice.sign(&moved.signed_message());
        moved.verify().unwrap();
        assert!(moved.open_direct_verified(&f.bob).is_err());
        let mut other_circle = envelope.clone();
        other_circle.header.circle = CircleId([9; 16]);
        assert!(other_circle.open_direct_verified(&f.bob).is_err());
        // Every flipped ciphertext bit fails, and a lying slot count never panics.
        for i in 0..envelope.ciphertext.len() {
            let mut bad = envelope.clone();
            bad.ciphertext[i] ^= 0x01;
            assert!(bad.open_direct_verified(&f.bob).is_err(), "byte {i}");
        }
        // Two slots: the author's and bob's.
        assert_eq!(envelope.ciphertext[0], 2);
        for count in [0u8, 1, 3, 200, 255] {
            let mut bad = envelope.clone();
            bad.ciphertext[0] = count;
            assert!(bad.open_direct_verified(&f.bob).is_err(), "count {count}");
        }
        let mut empty = envelope.clone();
        empty.ciphertext.clear();
        assert!(empty.open_direct_verified(&f.bob).is_err());
    }

    #[test]
    fn a_direct_envelope_has_at_most_max_readers() {
        let mut f = fixture();
        let readers: Vec<MemberId> = (0..crate::MAX_READERS)
            .map(|_| DeviceIdentity::generate(&mut f.rng).member_id())
            .collect();
        let too_many =
            Envelope::seal_direct(&f.alice, &readers, f.circle, 1, [0; 32], b"x", &mut f.rng);
        assert!(too_many.is_err(), "the author makes one reader more");
        let fits = Envelope::seal_direct(
            &f.alice,
            &readers[1..],
            f.circle,
            1,
            [0; 32],
            b"x",
            &mut f.rng,
        )
        .unwrap();
        assert_eq!(usize::from(fits.ciphertext[0]), crate::MAX_READERS);
        assert!(fits.open_direct_verified(&f.alice).is_ok());
    }

    #[test]
    fn seal_open_encode_decode_round_trip() {
        let mut f = fixture();
        let first = Envelope::seal(
            &f.alice, &f.key, f.circle, 1, [0; 32], 3, b"okay", &mut f.rng,
        )
        .unwrap();
        assert_eq!(&first.open(&f.key).unwrap()[..], b"okay");
        let bytes = first.encode();
        let decoded = Envelope::decode(&bytes).unwrap();
        assert_eq!(decoded, first);
        assert_eq!(decoded.encode(), bytes);
        assert_eq!(decoded.hash(), sha256(&bytes));

        let second = Envelope::seal(
            &f.alice,
            &f.key,
            f.circle,
            2,
            first.hash(),
            3,
            b"",
            &mut f.rng,
        )
        .unwrap();
        assert_eq!(second.open(&f.key).unwrap().len(), 0);
        assert_ne!(first.header.nonce, second.header.nonce);
        assert!(first.follows(None));
        assert!(second.follows(Some(&first)));
        assert!(!second.follows(None));
        assert!(!first.follows(Some(&second)));
        assert!(!first.follows(Some(&first)));
    }

    #[test]
    fn follows_checks_circle_author_seq_and_prev() {
        let mut f = fixture();
        let first =
            Envelope::seal(&f.alice, &f.key, f.circle, 1, [0; 32], 0, b"a", &mut f.rng).unwrap();
        let next = |f: &mut Fixture, who: &DeviceIdentity, circle, seq, prev| {
            Envelope::seal(who, &f.key, circle, seq, prev, 0, b"b", &mut f.rng).unwrap()
        };
        let other_circle = CircleId([9; 16]);
        let (alice, bob) = (
            DeviceIdentity::from_secret(&f.alice.secret()),
            DeviceIdentity::from_secret(&f.bob.secret()),
        );
        let circle = f.circle;
        assert!(next(&mut f, &alice, circle, 2, first.hash()).follows(Some(&first)));
        assert!(!next(&mut f, &bob, circle, 2, first.hash()).follows(Some(&first)));
        assert!(!next(&mut f, &alice, other_circle, 2, first.hash()).follows(Some(&first)));
        assert!(!next(&mut f, &alice, circle, 3, first.hash()).follows(Some(&first)));
        assert!(!next(&mut f, &alice, circle, 2, [1; 32]).follows(Some(&first)));
    }

    #[test]
    fn seal_refuses_what_decode_would_refuse() {
        let mut f = fixture();
        let mut seal = |seq, prev, len: usize| {
            Envelope::seal(
                &f.alice,
                &f.key,
                f.circle,
                seq,
                prev,
                0,
                &vec![0; len],
                &mut f.rng,
            )
        };
        assert!(seal(0, [0; 32], 1).is_err());
        assert!(seal(1, [1; 32], 1).is_err());
        assert!(seal(2, [0; 32], 1).is_err());
        assert!(seal(u64::MAX, [1; 32], 1).is_ok());
        let largest = seal(1, [0; 32], MAX_CIPHERTEXT_LEN - TAG_LEN).unwrap();
        assert_eq!(largest.ciphertext.len(), MAX_CIPHERTEXT_LEN);
        assert!(largest.encode().len() <= MAX_ENVELOPE_LEN);
        assert_eq!(Envelope::decode(&largest.encode()).as_ref(), Ok(&largest));
        assert_eq!(
            seal(1, [0; 32], MAX_CIPHERTEXT_LEN - TAG_LEN + 1),
            Err(CryptoError::Malformed {
                what: "plaintext",
                reason: "too long for one envelope"
            })
        );
    }

    /// The layout written out by hand from the module docs, for a small envelope.
    #[test]
    fn encoding_matches_documented_layout() {
        let mut f = fixture();
        let env = Envelope::seal(
            &f.alice, &f.key, f.circle, 300, [5; 32], 128, b"hi", &mut f.rng,
        )
        .unwrap();
        let mut expected = vec![1u8];
        expected.extend_from_slice(&f.circle.0);
        expected.extend_from_slice(&f.alice.member_id().0);
        expected.extend_from_slice(&[0xac, 0x02]); // 300
        expected.extend_from_slice(&[5; 32]);
        expected.extend_from_slice(&[0x80, 0x01]); // 128
        expected.extend_from_slice(&env.header.nonce);
        assert_eq!(env.header.encode(), expected);
        expected.push(18); // 2 bytes of plaintext + 16 of tag
        expected.extend_from_slice(&env.ciphertext);
        let signed = [SIGNING_DOMAIN, &expected].concat();
        assert_eq!(
            verify_signature(&f.alice.member_id(), &signed, &env.signature),
            Ok(())
        );
        expected.extend_from_slice(&env.signature);
        assert_eq!(env.encode(), expected);
    }

    #[test]
    fn every_flipped_bit_is_rejected() {
        let mut f = fixture();
        let env =
            Envelope::seal(&f.alice, &f.key, f.circle, 1, [0; 32], 0, b"x", &mut f.rng).unwrap();
        let bytes = env.encode();
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            let accepted = Envelope::decode(&flipped).and_then(|e| e.open(&f.key));
            assert!(accepted.is_err(), "bit {bit} flipped was accepted");
        }
    }

    #[test]
    fn every_truncation_and_extension_is_rejected() {
        let mut f = fixture();
        let env =
            Envelope::seal(&f.alice, &f.key, f.circle, 2, [1; 32], 0, b"x", &mut f.rng).unwrap();
        let bytes = env.encode();
        for len in 0..bytes.len() {
            assert!(Envelope::decode(&bytes[..len]).is_err(), "length {len}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(Envelope::decode(&longer), Err(malformed("trailing bytes")));
        assert_eq!(
            Envelope::decode(&vec![1; MAX_ENVELOPE_LEN + 1]),
            Err(malformed("longer than MAX_ENVELOPE_LEN"))
        );
    }

    #[test]
    fn decode_refuses_bad_fields() {
        let mut f = fixture();
        let env =
            Envelope::seal(&f.alice, &f.key, f.circle, 1, [0; 32], 0, b"x", &mut f.rng).unwrap();
        // seq 1 sits right after version, circle and author.
        let seq_at = 1 + 16 + 32;
        let mut bytes = env.encode();
        bytes[seq_at] = 0;
        assert_eq!(
            Envelope::decode(&bytes),
            Err(malformed("seq must be at least 1"))
        );
        bytes[seq_at] = 2;
        assert_eq!(
            Envelope::decode(&bytes),
            Err(malformed("later envelope must name its prev"))
        );
        let mut bytes = env.encode();
        bytes[seq_at + 1] = 1;
        assert_eq!(
            Envelope::decode(&bytes),
            Err(malformed("first envelope must have a zero prev"))
        );
        let mut bytes = env.encode();
        bytes[0] = 2;
        assert_eq!(Envelope::decode(&bytes), Err(malformed("unknown version")));

        // An epoch beyond u32 and a ciphertext shorter than a tag.
        let mut header = env.header.clone();
        let mut too_big_epoch = vec![VERSION];
        too_big_epoch.extend_from_slice(&header.circle.0);
        too_big_epoch.extend_from_slice(&header.author.0);
        write_varint(&mut too_big_epoch, 1);
        too_big_epoch.extend_from_slice(&[0; 32]);
        write_varint(&mut too_big_epoch, u64::from(u32::MAX) + 1);
        assert_eq!(
            Envelope::decode(&too_big_epoch),
            Err(malformed("epoch does not fit in u32"))
        );
        header.epoch = 0;
        let short = Envelope {
            header,
            ciphertext: vec![0; TAG_LEN - 1],
            signature: [0; 64],
        };
        assert_eq!(
            Envelope::decode(&short.encode()),
            Err(malformed("ciphertext length out of range"))
        );
    }

    #[test]
    fn every_swapped_header_field_fails_to_open() {
        let mut f = fixture();
        let env =
            Envelope::seal(&f.alice, &f.key, f.circle, 2, [1; 32], 4, b"x", &mut f.rng).unwrap();
        type Swap = fn(&mut EnvelopeHeader);
        let swaps: [(&str, Swap); 6] = [
            ("circle", |h| h.circle = CircleId([0xcc; 16])),
            ("author", |h| h.author = MemberId([0xaa; 32])),
            ("seq", |h| h.seq = 3),
            ("prev", |h| h.prev = [2; 32]),
            ("epoch", |h| h.epoch = 5),
            ("nonce", |h| h.nonce[0] ^= 1),
        ];
        for (name, swap) in &swaps {
            // Changed in flight: the signature no longer matches.
            let mut tampered = env.clone();
            swap(&mut tampered.header);
            assert!(
                tampered.open(&f.key).is_err(),
                "{name} swapped was accepted"
            );
            // Re-signed by a member holding the key (moving a ciphertext under another
            // header): the associated data no longer matches.
            for signer in [&f.alice, &f.bob] {
                let mut moved = env.clone();
                swap(&mut moved.header);
                moved.resign(signer);
                if moved.header == env.header {
                    continue;
                }
                assert_eq!(
                    moved.open(&f.key),
                    Err(CryptoError::DecryptFailed),
                    "{name} moved was accepted"
                );
            }
        }
        // Another author's signature over the same bytes is refused.
        let mut forged = env.clone();
        forged.header.author = f.bob.member_id();
        assert_eq!(forged.verify(), Err(CryptoError::BadSignature));
    }

    #[test]
    fn wrong_epoch_key_is_rejected() {
        let mut f = fixture();
        let env =
            Envelope::seal(&f.alice, &f.key, f.circle, 1, [0; 32], 0, b"x", &mut f.rng).unwrap();
        let other = EpochKey(Secret::random(&mut f.rng));
        assert_eq!(env.verify(), Ok(()));
        assert_eq!(env.open(&other), Err(CryptoError::DecryptFailed));
    }

    #[test]
    fn verify_with_a_parsed_key_agrees_with_verify() {
        let mut f = fixture();
        let env =
            Envelope::seal(&f.alice, &f.key, f.circle, 1, [0; 32], 0, b"x", &mut f.rng).unwrap();
        let alice = AuthorKey::parse(&f.alice.member_id()).unwrap();
        let bob = AuthorKey::parse(&f.bob.member_id()).unwrap();
        assert_eq!(env.verify_with(&alice), Ok(()));
        // Bob's key is refused even before the signature is looked at.
        assert_eq!(env.verify_with(&bob), Err(CryptoError::BadSignature));
        let mut forged = env.clone();
        forged.ciphertext[0] ^= 1;
        assert_eq!(forged.verify_with(&alice), Err(CryptoError::BadSignature));
        // Decrypting without the check still refuses a changed ciphertext.
        assert_eq!(
            forged.open_verified(&f.key),
            Err(CryptoError::DecryptFailed)
        );
        assert_eq!(&env.open_verified(&f.key).unwrap()[..], b"x");
    }
}
