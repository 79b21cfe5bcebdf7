//! The plaintext inside an envelope: one tag byte, then the body.

use crate::{CoreError, WRAPPED_LEN};

const TAG_CHANGE: u8 = 1;
const TAG_KEYS: u8 = 2;
/// The most wraps one key share carries.
pub const MAX_SHARED_WRAPS: usize = 64;

/// What an envelope's plaintext carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// An automerge change to the circle document.
    Change(Vec<u8>),
    /// An epoch key wrapped for members who lack it. Outside the document on purpose: a
    /// change depends on its writer's whole history, which may be sealed with the very
    /// key its reader lacks, so a key sent in a change could never be applied.
    Keys(KeyShare),
}

/// Epoch `epoch`'s key, wrapped by the envelope's author for each recipient, with the
/// commitment the sharer says it has (a reader writes with the key only once it matches
/// the epoch's commitment in the document).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyShare {
    pub epoch: u32,
    pub commitment: [u8; 32],
    /// Recipient member key (32 bytes) and wrapped key.
    pub wraps: Vec<([u8; 32], [u8; WRAPPED_LEN])>,
}

impl Payload {
    /// One tag byte then the body. A key share is `epoch (u32 BE) || commitment (32) ||
    /// count (u8, 1..=64) || count × (recipient (32) || wrapped key (81))`.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Payload::Change(body) => {
                let mut out = Vec::with_capacity(1 + body.len());
                out.push(TAG_CHANGE);
                out.extend_from_slice(body);
                out
            }
            Payload::Keys(share) => {
                let mut out = Vec::with_capacity(38 + share.wraps.len() * (32 + WRAPPED_LEN));
                out.push(TAG_KEYS);
                out.extend_from_slice(&share.epoch.to_be_bytes());
                out.extend_from_slice(&share.commitment);
                out.push(u8::try_from(share.wraps.len()).unwrap_or(u8::MAX));
                for (recipient, wrapped) in &share.wraps {
                    out.extend_from_slice(recipient);
                    out.extend_from_slice(wrapped);
                }
                out
            }
        }
    }

    /// Refuses empty input, unknown tags, empty bodies and key shares of the wrong length
    /// or count. A change's body is checked where it is used (`Circle::apply_changes`).
    pub fn decode(bytes: &[u8]) -> Result<Payload, CoreError> {
        let bad = |why: &str| CoreError::Document(why.to_string());
        match bytes.split_first() {
            None => Err(bad("empty payload")),
            Some((&TAG_CHANGE, [])) => Err(bad("empty change payload")),
            Some((&TAG_CHANGE, body)) => Ok(Payload::Change(body.to_vec())),
            Some((&TAG_KEYS, body)) => {
                let (epoch, rest) = body
                    .split_first_chunk::<4>()
                    .ok_or_else(|| bad("short key share"))?;
                let (commitment, rest) = rest
                    .split_first_chunk::<32>()
                    .ok_or_else(|| bad("short key share"))?;
                let (count, mut rest) = rest.split_first().ok_or_else(|| bad("short key share"))?;
                let count = usize::from(*count);
                if count == 0 || count > MAX_SHARED_WRAPS {
                    return Err(bad("a key share carries 1 to 64 wraps"));
                }
                if rest.len() != count * (32 + WRAPPED_LEN) {
                    return Err(bad("a key share's length does not match its count"));
                }
                let mut wraps = Vec::with_capacity(count);
                for _ in 0..count {
                    let (recipient, after) = rest
                        .split_first_chunk::<32>()
                        .ok_or_else(|| bad("short key share"))?;
                    let (wrapped, after) = after
                        .split_first_chunk::<WRAPPED_LEN>()
                        .ok_or_else(|| bad("short key share"))?;
                    wraps.push((*recipient, *wrapped));
                    rest = after;
                }
                Ok(Payload::Keys(KeyShare {
                    epoch: u32::from_be_bytes(*epoch),
                    commitment: *commitment,
                    wraps,
                }))
            }
            Some((tag, _)) => Err(bad(&format!("unknown payload tag {tag}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let p = Payload::Change(vec![1, 2, 3]);
        assert_eq!(p.encode(), vec![1, 1, 2, 3]);
        assert_eq!(Payload::decode(&p.encode()), Ok(p));
        assert!(matches!(Payload::decode(&[]), Err(CoreError::Document(_))));
        assert!(matches!(Payload::decode(&[1]), Err(CoreError::Document(_))));
        assert!(matches!(
            Payload::decode(&[0, 1]),
            Err(CoreError::Document(_))
        ));
        assert!(matches!(
            Payload::decode(&[3, 1]),
            Err(CoreError::Document(_))
        ));
    }

    #[test]
    fn key_shares_round_trip_and_refuse_every_bad_length() {
        let share = Payload::Keys(KeyShare {
            epoch: 0xdead_beef,
            commitment: [7; 32],
            wraps: vec![([1; 32], [2; WRAPPED_LEN]), ([3; 32], [4; WRAPPED_LEN])],
        });
        let bytes = share.encode();
        assert_eq!(bytes.len(), 1 + 4 + 32 + 1 + 2 * (32 + WRAPPED_LEN));
        assert_eq!(Payload::decode(&bytes), Ok(share));
        for cut in 0..bytes.len() {
            assert!(Payload::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Payload::decode(&longer).is_err());
        let mut zero = bytes.clone();
        zero[37] = 0;
        assert!(Payload::decode(&zero).is_err());
        let mut many = bytes;
        many[37] = 65;
        assert!(Payload::decode(&many).is_err());
    }
}
