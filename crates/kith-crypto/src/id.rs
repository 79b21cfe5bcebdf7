//! Printable ids: members, circles, and the shared base32 helpers.

use std::fmt;
use std::str::FromStr;

use data_encoding::{BASE32_NOPAD, BASE32_NOPAD_NOCASE};
use rand::CryptoRng;
use sha2::{Digest, Sha256};

use crate::CryptoError;

/// Encodes bytes as an id string in [`ID_ALPHABET`](crate::ID_ALPHABET).
pub fn encode_id(bytes: &[u8]) -> String {
    // RFC 4648 base32 without padding; lowercase so ids read and type easily.
    let mut text = BASE32_NOPAD.encode(bytes);
    text.make_ascii_lowercase();
    text
}

/// Decodes an id string of exactly `N` bytes. Upper case is accepted; any other character,
/// a wrong length or non-zero trailing bits (a second spelling of the same id) are refused.
pub fn decode_id<const N: usize>(text: &str) -> Result<[u8; N], CryptoError> {
    decode_named(text, "id")
}

fn decode_named<const N: usize>(text: &str, what: &'static str) -> Result<[u8; N], CryptoError> {
    // Both length checks come before decoding: they bound the work, and `decode_mut`
    // requires the output length to match.
    if text.len() != BASE32_NOPAD.encode_len(N)
        || BASE32_NOPAD_NOCASE.decode_len(text.len()).ok() != Some(N)
    {
        return Err(CryptoError::Malformed {
            what,
            reason: "wrong length",
        });
    }
    let mut bytes = [0u8; N];
    BASE32_NOPAD_NOCASE
        .decode_mut(text.as_bytes(), &mut bytes)
        .map_err(|_| CryptoError::Malformed {
            what,
            reason: "invalid character or trailing bits",
        })?;
    Ok(bytes)
}

/// A member: the device's ed25519 public key. Printed as 52 chars of
/// [`ID_ALPHABET`](crate::ID_ALPHABET).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberId(pub [u8; 32]);

/// Domain of the safety-number hash, so it can never collide with another use of SHA-256.
const FINGERPRINT_DOMAIN: &[u8] = b"kith/fingerprint/v1";

impl MemberId {
    /// The 16-byte automerge actor id of this member (first 16 bytes of the key).
    pub fn actor(&self) -> [u8; 16] {
        // Always `Some` for a 32-byte key; the default is never used.
        self.0.first_chunk::<16>().copied().unwrap_or_default()
    }

    /// Safety number: 12 groups of 5 digits derived from the key, to compare in person.
    ///
    /// `block(i) = SHA-256("kith/fingerprint/v1" || i || key)` for `i` = 0, 1 gives 64 bytes;
    /// group `g` is the big-endian integer of bytes `5g..5g+5` modulo 100000, zero padded.
    /// 60 digits carry about 199 bits, so no second key can be made to match them all.
    pub fn fingerprint(&self) -> String {
        let mut material = [0u8; 64];
        for (counter, block) in (0u8..).zip(material.chunks_exact_mut(32)) {
            let digest = Sha256::new()
                .chain_update(FINGERPRINT_DOMAIN)
                .chain_update([counter])
                .chain_update(self.0)
                .finalize();
            block.copy_from_slice(&digest);
        }
        let groups: Vec<String> = material
            .chunks_exact(5)
            .take(12)
            .map(|chunk| {
                let value = chunk.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
                format!("{:05}", value % 100_000)
            })
            .collect();
        groups.join(" ")
    }
}

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&encode_id(&self.0))
    }
}

/// Same as `Display`: a member id is public, and the printable form is what people compare.
impl fmt::Debug for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&encode_id(&self.0))
    }
}

impl FromStr for MemberId {
    type Err = CryptoError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        decode_named(text, "member id").map(Self)
    }
}

/// A circle: 16 random bytes. Printed as 26 chars of [`ID_ALPHABET`](crate::ID_ALPHABET).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CircleId(pub [u8; 16]);

impl CircleId {
    /// A fresh circle id; 128 random bits make collisions between circles negligible.
    pub fn random<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut bytes = [0u8; 16];
        rng.fill_bytes(&mut bytes);
        Self(bytes)
    }
}

impl fmt::Display for CircleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&encode_id(&self.0))
    }
}

/// Same as `Display`.
impl fmt::Debug for CircleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&encode_id(&self.0))
    }
}

impl FromStr for CircleId {
    type Err = CryptoError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        decode_named(text, "circle id").map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ID_ALPHABET;

    #[test]
    fn alphabet_is_lowercase_base32() {
        let spec = BASE32_NOPAD.specification();
        assert_eq!(spec.symbols.to_ascii_lowercase(), ID_ALPHABET);
        let all: Vec<u8> = (0..=255).collect();
        assert!(encode_id(&all).chars().all(|c| ID_ALPHABET.contains(c)));
    }

    #[test]
    fn member_and_circle_ids_round_trip() {
        let mut rng = rand::rng();
        for _ in 0..100 {
            let circle = CircleId::random(&mut rng);
            let text = circle.to_string();
            assert_eq!(text.len(), 26);
            assert_eq!(text.parse::<CircleId>(), Ok(circle));
            assert_eq!(text.to_uppercase().parse::<CircleId>(), Ok(circle));

            let member = MemberId(crate::Secret::<32>::random(&mut rng).0);
            let text = member.to_string();
            assert_eq!(text.len(), 52);
            assert_eq!(format!("{member:?}"), text);
            assert_eq!(text.parse::<MemberId>(), Ok(member));
            assert_eq!(text.to_uppercase().parse::<MemberId>(), Ok(member));
        }
    }

    #[test]
    fn bad_ids_are_refused() {
        let good = MemberId([7; 32]).to_string();
        let malformed = |reason| {
            Err(CryptoError::Malformed {
                what: "member id",
                reason,
            })
        };
        assert_eq!("".parse::<MemberId>(), malformed("wrong length"));
        assert_eq!(good[1..].parse::<MemberId>(), malformed("wrong length"));
        assert_eq!(
            format!("{good}a").parse::<MemberId>(),
            malformed("wrong length")
        );
        let bad_char = format!("1{}", &good[1..]);
        assert_eq!(
            bad_char.parse::<MemberId>(),
            malformed("invalid character or trailing bits")
        );
        let non_ascii = format!("é{}", &good[2..]);
        assert!(non_ascii.parse::<MemberId>().is_err());
        // 256 bits fill 51 chars and 1 bit of the 52nd; its 4 low bits must be zero, or the
        // same id would have a second spelling.
        let mut other_spelling = good.clone();
        let last = other_spelling.pop().unwrap();
        let index = ID_ALPHABET.find(last).unwrap();
        other_spelling.push(ID_ALPHABET.as_bytes()[index ^ 1] as char);
        assert!(other_spelling.parse::<MemberId>().is_err());
        // A circle id is not a member id and vice versa.
        assert!(CircleId([1; 16]).to_string().parse::<MemberId>().is_err());
        assert!(good.parse::<CircleId>().is_err());
    }

    #[test]
    fn decode_id_generic() {
        assert_eq!(decode_id::<5>(&encode_id(b"kith!")), Ok(*b"kith!"));
        assert_eq!(decode_id::<0>(""), Ok([]));
        assert!(decode_id::<5>("a").is_err());
    }

    #[test]
    fn actor_is_key_prefix() {
        let mut key = [0u8; 32];
        for (i, b) in key.iter_mut().enumerate() {
            *b = i as u8;
        }
        assert_eq!(MemberId(key).actor(), key[..16]);
    }

    /// The documented derivation, computed step by step.
    #[test]
    fn fingerprint_follows_documented_derivation() {
        let key = [0x42; 32];
        let block = |i: u8| crate::sha256(&[FINGERPRINT_DOMAIN, &[i], &key].concat());
        let material = [block(0), block(1)].concat();
        let group = |g: usize| {
            let value = material[5 * g..5 * g + 5]
                .iter()
                .fold(0u64, |acc, &b| acc * 256 + u64::from(b));
            format!("{:05}", value % 100_000)
        };
        let expected: Vec<String> = (0..12).map(group).collect();
        assert_eq!(MemberId(key).fingerprint(), expected.join(" "));
    }

    #[test]
    fn fingerprint_shape() {
        let a = MemberId([1; 32]).fingerprint();
        let b = MemberId([2; 32]).fingerprint();
        assert_ne!(a, b);
        let groups: Vec<&str> = a.split(' ').collect();
        assert_eq!(groups.len(), 12);
        assert!(
            groups
                .iter()
                .all(|g| g.len() == 5 && g.bytes().all(|c| c.is_ascii_digit()))
        );
    }
}
