//! Device identities, signatures, and the link between a member id and a libp2p `PeerId`.

use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand::CryptoRng;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::{CryptoError, Hash, MemberId, Secret};

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> Hash {
    Sha256::digest(data).into()
}

/// This device's signing identity. Its libp2p `PeerId` comes from the same key, so the
/// transport handshake and envelope signatures prove the same identity.
pub struct DeviceIdentity {
    /// Zeroized on drop by ed25519-dalek.
    key: SigningKey,
}

impl DeviceIdentity {
    /// A fresh identity from 32 random bytes of `rng`.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        Self::from_secret(&Secret::random(rng))
    }

    /// The identity whose secret (RFC 8032 seed) is `secret`, as loaded from the store.
    pub fn from_secret(secret: &Secret<32>) -> Self {
        Self {
            key: SigningKey::from_bytes(secret.expose_secret()),
        }
    }

    /// The secret seed, for sealing into the store.
    pub fn secret(&self) -> Secret<32> {
        Secret::from_bytes(self.key.to_bytes())
    }

    /// The public key as a member id.
    pub fn member_id(&self) -> MemberId {
        MemberId(self.key.verifying_key().to_bytes())
    }

    /// The same key as a libp2p keypair, for the swarm's Noise handshake.
    pub fn libp2p_keypair(&self) -> libp2p_identity::Keypair {
        // libp2p zeroes the buffer it is given; hand it a copy that is zeroized again on drop.
        let mut copy = Zeroizing::new(self.key.to_bytes());
        #[allow(
            clippy::expect_used,
            reason = "the only error is a length other than 32, impossible for a [u8; 32]"
        )]
        libp2p_identity::Keypair::ed25519_from_bytes(&mut *copy)
            .expect("a 32-byte buffer is a valid ed25519 secret key")
    }

    /// The libp2p `PeerId` of this device: what other members' gates allow.
    pub fn peer_id(&self) -> libp2p_identity::PeerId {
        self.libp2p_keypair().public().to_peer_id()
    }

    /// Deterministic ed25519 signature (RFC 8032) over `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }

    /// The X25519 secret of the same key: the first half of SHA-512(seed), as in RFC 8032's
    /// key expansion (x25519-dalek clamps it when used). Its public key is the Montgomery
    /// form of the member id ([`x25519_public`]), so members need publish no second key.
    pub(crate) fn x25519_secret(&self) -> x25519_dalek::StaticSecret {
        let bytes = Zeroizing::new(self.key.to_scalar_bytes());
        x25519_dalek::StaticSecret::from(*bytes)
    }
}

/// Prints only the member id: the key itself must never reach a log.
impl fmt::Debug for DeviceIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DeviceIdentity")
            .field(&self.member_id())
            .finish()
    }
}

const BAD_KEY: CryptoError = CryptoError::Malformed {
    what: "member id",
    reason: "not a valid ed25519 public key",
};

/// Parses a member id as an ed25519 public key, refusing points that are not on the curve,
/// non-canonical encodings (a second spelling of the same key) and small-order points.
fn verifying_key(member: &MemberId) -> Result<VerifyingKey, CryptoError> {
    let key = VerifyingKey::from_bytes(&member.0).map_err(|_| BAD_KEY)?;
    if key.to_edwards().compress().to_bytes() != member.0 || key.is_weak() {
        return Err(BAD_KEY);
    }
    Ok(key)
}

/// The X25519 public key of `member`: the Montgomery form of its ed25519 key, after the same
/// checks as for signatures (on the curve, canonical, not small order).
pub(crate) fn x25519_public(member: &MemberId) -> Result<x25519_dalek::PublicKey, CryptoError> {
    let key = verifying_key(member)?;
    Ok(x25519_dalek::PublicKey::from(
        key.to_montgomery().to_bytes(),
    ))
}

/// An author's public key, parsed and checked once. Parsing costs about as much as a
/// verification (two field inversions), so whoever checks many envelopes of the same
/// authors keeps these instead of re-parsing the member id every time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthorKey {
    member: MemberId,
    key: VerifyingKey,
}

impl AuthorKey {
    /// Parses `member` with the checks of [`verify_signature`].
    pub fn parse(member: &MemberId) -> Result<AuthorKey, CryptoError> {
        Ok(AuthorKey {
            member: *member,
            key: verifying_key(member)?,
        })
    }

    /// The member this key belongs to.
    pub fn member(&self) -> &MemberId {
        &self.member
    }

    /// Strict verification, as [`verify_signature`].
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> Result<(), CryptoError> {
        self.key
            .verify_strict(message, &Signature::from_bytes(signature))
            .map_err(|_| CryptoError::BadSignature)
    }
}

/// Verify an ed25519 signature (strict) by `author` over `message`.
///
/// Strict verification refuses non-canonical signatures, so no third party can alter a
/// signature (and with it an envelope's hash) and keep it valid.
pub fn verify_signature(
    author: &MemberId,
    message: &[u8],
    signature: &[u8; 64],
) -> Result<(), CryptoError> {
    AuthorKey::parse(author)?.verify(message, signature)
}

impl MemberId {
    /// The libp2p `PeerId` of this member's device, for the connection allow-list.
    pub fn to_peer_id(&self) -> Result<libp2p_identity::PeerId, CryptoError> {
        verifying_key(self)?;
        let key =
            libp2p_identity::ed25519::PublicKey::try_from_bytes(&self.0).map_err(|_| BAD_KEY)?;
        Ok(libp2p_identity::PublicKey::from(key).to_peer_id())
    }

    /// The member behind a connected `PeerId`, if that peer uses an ed25519 key.
    pub fn from_peer_id(peer: &libp2p_identity::PeerId) -> Result<MemberId, CryptoError> {
        const NOT_ED25519: CryptoError = CryptoError::Malformed {
            what: "peer id",
            reason: "not an inline ed25519 public key",
        };
        let multihash = peer.as_ref();
        // Ed25519 keys are short enough that libp2p inlines them (identity multihash, code 0).
        if multihash.code() != 0 {
            return Err(NOT_ED25519);
        }
        let key = libp2p_identity::PublicKey::try_decode_protobuf(multihash.digest())
            .map_err(|_| NOT_ED25519)?
            .try_into_ed25519()
            .map_err(|_| NOT_ED25519)?;
        let member = MemberId(key.to_bytes());
        verifying_key(&member)?;
        Ok(member)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use data_encoding::HEXLOWER;

    fn hex<const N: usize>(text: &str) -> [u8; N] {
        HEXLOWER
            .decode(text.as_bytes())
            .unwrap()
            .try_into()
            .unwrap()
    }

    #[test]
    fn identity_from_secret_round_trips() {
        let mut rng = rand::rng();
        let identity = DeviceIdentity::generate(&mut rng);
        let again = DeviceIdentity::from_secret(&identity.secret());
        assert_eq!(identity.member_id(), again.member_id());
        assert_eq!(identity.peer_id(), again.peer_id());
        assert_eq!(identity.sign(b"x"), again.sign(b"x"));
    }

    #[test]
    fn libp2p_key_is_the_dalek_key() {
        let mut rng = rand::rng();
        let identity = DeviceIdentity::generate(&mut rng);
        let keypair = identity.libp2p_keypair();
        let public = keypair.public().try_into_ed25519().unwrap();
        assert_eq!(public.to_bytes(), identity.key.verifying_key().to_bytes());
        assert_eq!(public.to_bytes(), identity.member_id().0);
        // Signatures made by either are the same (ed25519 is deterministic).
        assert_eq!(
            keypair.sign(b"hello").unwrap(),
            identity.sign(b"hello").to_vec()
        );
        let member = identity.member_id();
        assert_eq!(member.to_peer_id(), Ok(identity.peer_id()));
        assert_eq!(MemberId::from_peer_id(&identity.peer_id()), Ok(member));
        // A sha2-256 multihash PeerId (how libp2p names larger keys) is no member.
        let hashed =
            libp2p_identity::PeerId::from_bytes(&[[0x12, 0x20].as_slice(), &[1; 32]].concat())
                .unwrap();
        assert!(MemberId::from_peer_id(&hashed).is_err());
    }

    #[test]
    fn debug_shows_only_member_id() {
        let identity = DeviceIdentity::from_secret(&Secret::from_bytes([9; 32]));
        let debug = format!("{identity:?}");
        assert_eq!(debug, format!("DeviceIdentity({})", identity.member_id()));
        assert!(!debug.contains(&crate::encode_id(&[9; 32])));
    }

    /// RFC 8032 section 7.1, TEST 1: our identity is plain ed25519.
    #[test]
    fn rfc8032_test_1() {
        let secret = hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
        let public = hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
        let signature: [u8; 64] = hex(concat!(
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555",
            "fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        ));
        let identity = DeviceIdentity::from_secret(&Secret::from_bytes(secret));
        assert_eq!(identity.member_id(), MemberId(public));
        assert_eq!(identity.sign(b""), signature);
        assert_eq!(verify_signature(&MemberId(public), b"", &signature), Ok(()));
    }

    #[test]
    fn bad_signatures_and_keys_are_errors() {
        let mut rng = rand::rng();
        let identity = DeviceIdentity::generate(&mut rng);
        let member = identity.member_id();
        let signature = identity.sign(b"message");
        assert_eq!(verify_signature(&member, b"message", &signature), Ok(()));
        assert_eq!(
            verify_signature(&member, b"messagf", &signature),
            Err(CryptoError::BadSignature)
        );
        let mut altered = signature;
        altered[40] ^= 1;
        assert_eq!(
            verify_signature(&member, b"message", &altered),
            Err(CryptoError::BadSignature)
        );
        // S + L is the classic malleated signature; strict verification refuses it.
        let order: [u8; 32] =
            hex("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010");
        let mut malleated = signature;
        let mut carry = 0u16;
        for (s, l) in malleated[32..].iter_mut().zip(order) {
            let sum = u16::from(*s) + u16::from(l) + carry;
            *s = sum as u8;
            carry = sum >> 8;
        }
        assert!(verify_signature(&member, b"message", &malleated).is_err());

        // Identity point (small order), a non-canonical encoding, and a point off the curve.
        let mut identity_point = [0u8; 32];
        identity_point[0] = 1;
        let non_canonical = [0xff; 32];
        let off_curve = (2u8..=255)
            .map(|y| {
                let mut bytes = [0u8; 32];
                bytes[0] = y;
                bytes
            })
            .find(|bytes| VerifyingKey::from_bytes(bytes).is_err())
            .unwrap();
        for key in [identity_point, non_canonical, off_curve] {
            assert_eq!(
                verify_signature(&MemberId(key), b"message", &signature),
                Err(BAD_KEY)
            );
            assert!(MemberId(key).to_peer_id().is_err());
        }
    }

    #[test]
    fn sha256_known_answer() {
        assert_eq!(
            HEXLOWER.encode(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
