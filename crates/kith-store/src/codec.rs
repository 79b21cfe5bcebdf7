//! Plaintext layouts of what the store seals: the compact envelope and the circle record.
//! Every decoder is bounded and returns an error instead of panicking; the bytes were
//! authenticated before they got here, so an error means a bug or a key mix-up, not an attack.

use kith_crypto::{CircleId, Envelope, EnvelopeHeader, EpochKey, Hash, MemberId, Secret};
use zeroize::Zeroizing;

use crate::CircleRecord;

/// An envelope minus what its row already says (circle, author) and what can be recomputed
/// from the author's chain (`prev`).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct CompactEnvelope {
    pub seq: u64,
    pub epoch: u32,
    pub nonce: [u8; 24],
    pub signature: [u8; 64],
    pub ciphertext: Vec<u8>,
}

impl CompactEnvelope {
    /// The whole envelope again, with what its row and chain say.
    pub(crate) fn into_envelope(self, circle: CircleId, author: MemberId, prev: Hash) -> Envelope {
        Envelope {
            header: EnvelopeHeader {
                circle,
                author,
                seq: self.seq,
                prev,
                epoch: self.epoch,
                nonce: self.nonce,
            },
            ciphertext: self.ciphertext,
            signature: self.signature,
        }
    }
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn take_varint(rest: &mut &[u8]) -> Option<u64> {
    let mut value: u64 = 0;
    for i in 0..10u32 {
        let (&byte, tail) = rest.split_first()?;
        *rest = tail;
        let bits = u64::from(byte & 0x7f);
        if i == 9 && bits > 1 {
            return None; // more than 64 bits
        }
        value |= bits << (7 * i);
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn take<'a, const N: usize>(rest: &mut &'a [u8]) -> Option<&'a [u8; N]> {
    let (head, tail) = rest.split_first_chunk::<N>()?;
    *rest = tail;
    Some(head)
}

impl CompactEnvelope {
    /// `varint seq | varint epoch | nonce (24) | signature (64) | ciphertext (rest)`.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 * 10 + 24 + 64 + self.ciphertext.len());
        put_varint(&mut out, self.seq);
        put_varint(&mut out, u64::from(self.epoch));
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(&self.signature);
        out.extend_from_slice(&self.ciphertext);
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<CompactEnvelope, &'static str> {
        let mut rest = bytes;
        let seq = take_varint(&mut rest).ok_or("bad seq")?;
        let epoch = take_varint(&mut rest)
            .and_then(|e| u32::try_from(e).ok())
            .ok_or("bad epoch")?;
        let nonce = *take::<24>(&mut rest).ok_or("truncated nonce")?;
        let signature = *take::<64>(&mut rest).ok_or("truncated signature")?;
        Ok(CompactEnvelope {
            seq,
            epoch,
            nonce,
            signature,
            ciphertext: rest.to_vec(),
        })
    }
}

/// `circle id (16) | for each epoch: epoch u32 LE, key (32)`.
pub(crate) fn encode_circle(id: &CircleId, epoch_keys: &[(u32, EpochKey)]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(16 + epoch_keys.len() * 36));
    out.extend_from_slice(&id.0);
    for (epoch, key) in epoch_keys {
        out.extend_from_slice(&epoch.to_le_bytes());
        out.extend_from_slice(key.0.expose_secret());
    }
    out
}

pub(crate) fn decode_circle(bytes: &[u8]) -> Result<CircleRecord, &'static str> {
    let mut rest = bytes;
    let id = CircleId(*take::<16>(&mut rest).ok_or("truncated circle id")?);
    if !rest.len().is_multiple_of(36) {
        return Err("epoch key list has a ragged length");
    }
    let mut keys = Vec::with_capacity(rest.len() / 36);
    while !rest.is_empty() {
        let epoch = u32::from_le_bytes(*take::<4>(&mut rest).ok_or("truncated epoch")?);
        let key = *take::<32>(&mut rest).ok_or("truncated epoch key")?;
        keys.push((epoch, EpochKey(Secret::from_bytes(key))));
    }
    Ok(CircleRecord {
        id,
        epoch_keys: keys,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn compact_round_trips(seq in any::<u64>(), epoch in any::<u32>(), nonce in any::<[u8; 24]>(),
                               sig in proptest::collection::vec(any::<u8>(), 64),
                               ct in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut signature = [0u8; 64];
            signature.copy_from_slice(&sig);
            let c = CompactEnvelope { seq, epoch, nonce, signature, ciphertext: ct };
            prop_assert_eq!(CompactEnvelope::decode(&c.encode()), Ok(c));
        }

        #[test]
        fn compact_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = CompactEnvelope::decode(&bytes);
        }

        #[test]
        fn circle_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_circle(&bytes);
        }
    }

    #[test]
    fn varint_bounds() {
        let mut out = Vec::new();
        put_varint(&mut out, u64::MAX);
        assert_eq!(take_varint(&mut out.as_slice()), Some(u64::MAX));
        assert_eq!(take_varint(&mut [0xff; 11].as_slice()), None);
        assert_eq!(take_varint(&mut [0x80].as_slice()), None);
        let mut small = Vec::new();
        put_varint(&mut small, 1);
        assert_eq!(small, [1]);
    }
}
