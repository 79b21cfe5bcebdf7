//! Sync messages and their canonical binary encoding (version 1).
//!
//! ```text
//! version   u8 = 1
//! kind      u8       1 = Vector, 2 = Envelopes
//! circle    [16]
//! Vector:
//!   count   varint   0 ..= MAX_VECTOR_AUTHORS
//!   count × (author [32], seq varint >= 1, hash [32])   authors strictly ascending
//! Envelopes:
//!   flags   u8       bit 0 = more follows; other bits zero
//!   count   varint   1 ..= MAX_BATCH_ENVELOPES
//!   count × (len varint 1 ..= MAX_ENVELOPE_LEN, envelope [len])
//!           envelope bytes summed <= MAX_BATCH_BYTES
//! ```
//!
//! Varints are unsigned LEB128 and minimal; nothing may follow the last field; the whole
//! message is at most `MAX_MESSAGE_LEN`. Each message therefore has exactly one encoding.

use kith_crypto::wire::{Reader, write_varint};
use kith_crypto::{CircleId, Envelope, Hash, MAX_ENVELOPE_LEN, MemberId};

use crate::{
    MAX_BATCH_BYTES, MAX_BATCH_ENVELOPES, MAX_MESSAGE_LEN, MAX_VECTOR_AUTHORS, PROTOCOL_VERSION,
    SyncError,
};

const KIND_VECTOR: u8 = 1;
const KIND_ENVELOPES: u8 = 2;
const FLAG_MORE: u8 = 1;

/// The last envelope a node holds from one author in one circle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Head {
    /// Whose chain.
    pub author: MemberId,
    /// How long the chain is (its last envelope's seq, at least 1).
    pub seq: u64,
    /// Hash of the envelope at `seq`: lets the other side see a fork instead of extending it.
    pub hash: Hash,
}

/// One sync message; [`Message::encode`] gives the bytes the network carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// "This is what I hold": sent on connect, on a timer, and to ask for the next batch.
    Vector {
        /// The circle this vector describes.
        circle: CircleId,
        /// One head per author held, sorted by author, no duplicates.
        heads: Vec<Head>,
    },
    /// Envelopes the receiver lacks (the answer to a vector), or a push of a new one.
    Envelopes {
        /// The circle every envelope belongs to.
        circle: CircleId,
        /// The sender had more to send than fit: answer with a fresh vector at once.
        more: bool,
        /// Oldest first per author, authors interleaved.
        envelopes: Vec<Envelope>,
    },
}

impl Message {
    /// The circle a message's bytes are about, read from the fixed header (version, kind,
    /// circle) without decoding the rest: lets a receiver refuse a circle the sender is not
    /// in before any work. `None` when the header is not a version-1 message header.
    pub fn peek_circle(bytes: &[u8]) -> Option<CircleId> {
        let (&version, rest) = bytes.split_first()?;
        let (&kind, rest) = rest.split_first()?;
        let circle = rest.first_chunk::<16>()?;
        (version == PROTOCOL_VERSION && (kind == KIND_VECTOR || kind == KIND_ENVELOPES))
            .then_some(CircleId(*circle))
    }

    /// The circle the message is about.
    pub fn circle(&self) -> CircleId {
        match self {
            Message::Vector { circle, .. } | Message::Envelopes { circle, .. } => *circle,
        }
    }

    /// The vector to send next when `self` is the vector we sent and `answer` a batch that
    /// says more follows: ours, advanced past every envelope of the batch that extends it.
    /// Sending it before the batch is verified and applied keeps the sender busy while we
    /// check; if some envelope turns out bad, what follows it waits for a gap and the
    /// next real vector asks again. `None` when there is nothing to continue.
    pub fn continuation(&self, answer: &Message) -> Option<Message> {
        let (
            Message::Vector { circle, heads },
            Message::Envelopes {
                circle: answered,
                more: true,
                envelopes,
            },
        ) = (self, answer)
        else {
            return None;
        };
        if circle != answered {
            return None;
        }
        let mut advanced: std::collections::BTreeMap<MemberId, (u64, Hash)> = heads
            .iter()
            .map(|head| (head.author, (head.seq, head.hash)))
            .collect();
        let mut moved = false;
        for envelope in envelopes {
            let header = &envelope.header;
            if header.circle != *circle {
                continue;
            }
            let (seq, hash) = advanced
                .get(&header.author)
                .copied()
                .unwrap_or((0, [0; 32]));
            if header.seq == seq.checked_add(1)? && header.prev == hash {
                if !advanced.contains_key(&header.author) && advanced.len() >= MAX_VECTOR_AUTHORS {
                    continue;
                }
                advanced.insert(header.author, (header.seq, envelope.hash()));
                moved = true;
            }
        }
        moved.then(|| Message::Vector {
            circle: *circle,
            heads: advanced
                .into_iter()
                .map(|(author, (seq, hash))| Head { author, seq, hash })
                .collect(),
        })
    }

    /// Canonical bytes. Refuses a message `decode` would refuse (unsorted or too many
    /// heads, an empty or oversized batch), so whatever is sent can be received.
    pub fn encode(&self) -> Result<Vec<u8>, SyncError> {
        let mut out = vec![PROTOCOL_VERSION];
        match self {
            Message::Vector { circle, heads } => {
                out.push(KIND_VECTOR);
                out.extend_from_slice(&circle.0);
                if heads.len() > MAX_VECTOR_AUTHORS {
                    return Err(SyncError::Malformed("too many heads"));
                }
                if !heads
                    .windows(2)
                    .all(|w| matches!(w, [a, b] if a.author < b.author))
                {
                    return Err(SyncError::Malformed("heads not strictly sorted by author"));
                }
                write_varint(&mut out, heads.len() as u64);
                for head in heads {
                    if head.seq == 0 {
                        return Err(SyncError::Malformed("head seq is zero"));
                    }
                    out.extend_from_slice(&head.author.0);
                    write_varint(&mut out, head.seq);
                    out.extend_from_slice(&head.hash);
                }
            }
            Message::Envelopes {
                circle,
                more,
                envelopes,
            } => {
                out.push(KIND_ENVELOPES);
                out.extend_from_slice(&circle.0);
                out.push(if *more { FLAG_MORE } else { 0 });
                if envelopes.is_empty() || envelopes.len() > MAX_BATCH_ENVELOPES {
                    return Err(SyncError::Malformed("envelope count out of range"));
                }
                write_varint(&mut out, envelopes.len() as u64);
                let mut batch_bytes = 0usize;
                for envelope in envelopes {
                    let bytes = envelope.encode();
                    if bytes.len() > MAX_ENVELOPE_LEN {
                        return Err(SyncError::Malformed("envelope length out of range"));
                    }
                    batch_bytes += bytes.len();
                    write_varint(&mut out, bytes.len() as u64);
                    out.extend_from_slice(&bytes);
                }
                if batch_bytes > MAX_BATCH_BYTES {
                    return Err(SyncError::Malformed("batch longer than MAX_BATCH_BYTES"));
                }
            }
        }
        if out.len() > MAX_MESSAGE_LEN {
            return Err(SyncError::TooLong);
        }
        Ok(out)
    }

    /// Bounded, canonical decoding of untrusted bytes; never panics.
    ///
    /// Envelopes are only decoded here, not verified: [`crate::CircleSync::receive`] checks
    /// them one by one so that one bad envelope does not cost the good ones.
    pub fn decode(bytes: &[u8]) -> Result<Message, SyncError> {
        if bytes.len() > MAX_MESSAGE_LEN {
            return Err(SyncError::TooLong);
        }
        let mut r = Reader::new(bytes, SyncError::Malformed);
        if r.array::<1>()? != [PROTOCOL_VERSION] {
            return Err(SyncError::Malformed("unknown version"));
        }
        let [kind] = r.array::<1>()?;
        let circle = CircleId(r.array()?);
        let message = match kind {
            KIND_VECTOR => {
                let count = bounded(&mut r, 0, MAX_VECTOR_AUTHORS, "head count out of range")?;
                let mut heads: Vec<Head> = Vec::with_capacity(count);
                for _ in 0..count {
                    let author = MemberId(r.array()?);
                    let seq = r.varint()?;
                    if seq == 0 {
                        return Err(SyncError::Malformed("head seq is zero"));
                    }
                    let hash = r.array()?;
                    if heads.last().is_some_and(|last| last.author >= author) {
                        return Err(SyncError::Malformed("heads not strictly sorted by author"));
                    }
                    heads.push(Head { author, seq, hash });
                }
                Message::Vector { circle, heads }
            }
            KIND_ENVELOPES => {
                let [flags] = r.array::<1>()?;
                if flags & !FLAG_MORE != 0 {
                    return Err(SyncError::Malformed("unknown flags"));
                }
                let count = bounded(
                    &mut r,
                    1,
                    MAX_BATCH_ENVELOPES,
                    "envelope count out of range",
                )?;
                let mut envelopes = Vec::with_capacity(count);
                let mut batch_bytes = 0usize;
                for _ in 0..count {
                    let len = bounded(&mut r, 1, MAX_ENVELOPE_LEN, "envelope length out of range")?;
                    batch_bytes += len;
                    if batch_bytes > MAX_BATCH_BYTES {
                        return Err(SyncError::Malformed("batch longer than MAX_BATCH_BYTES"));
                    }
                    envelopes.push(Envelope::decode(r.take(len)?)?);
                }
                Message::Envelopes {
                    circle,
                    more: flags & FLAG_MORE != 0,
                    envelopes,
                }
            }
            _ => return Err(SyncError::Malformed("unknown message kind")),
        };
        if !r.rest.is_empty() {
            return Err(SyncError::Malformed("trailing bytes"));
        }
        Ok(message)
    }
}

/// A varint that must lie in `min..=max`.
fn bounded(
    r: &mut Reader<'_, SyncError>,
    min: usize,
    max: usize,
    what: &'static str,
) -> Result<usize, SyncError> {
    usize::try_from(r.varint()?)
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or(SyncError::Malformed(what))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kith_crypto::{DeviceIdentity, EpochKey};
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn sample_envelopes(n: u64) -> (CircleId, Vec<Envelope>) {
        let mut rng = StdRng::seed_from_u64(1);
        let who = DeviceIdentity::generate(&mut rng);
        let key = EpochKey::generate(&mut rng);
        let circle = CircleId([3; 16]);
        let mut prev = [0; 32];
        let mut out = Vec::new();
        for seq in 1..=n {
            let env = Envelope::seal(&who, &key, circle, seq, prev, 0, b"hi", &mut rng).unwrap();
            prev = env.hash();
            out.push(env);
        }
        (circle, out)
    }

    fn samples() -> Vec<Message> {
        let (circle, envelopes) = sample_envelopes(3);
        vec![
            Message::Vector {
                circle,
                heads: vec![],
            },
            Message::Vector {
                circle,
                heads: vec![
                    Head {
                        author: MemberId([1; 32]),
                        seq: 1,
                        hash: [7; 32],
                    },
                    Head {
                        author: MemberId([2; 32]),
                        seq: 300,
                        hash: [8; 32],
                    },
                ],
            },
            Message::Envelopes {
                circle,
                more: true,
                envelopes: envelopes.clone(),
            },
            Message::Envelopes {
                circle,
                more: false,
                envelopes: envelopes[..1].to_vec(),
            },
        ]
    }

    #[test]
    fn round_trip() {
        for message in samples() {
            let bytes = message.encode().unwrap();
            assert_eq!(Message::decode(&bytes).unwrap(), message);
        }
    }

    #[test]
    fn documented_layout_of_a_vector() {
        let message = Message::Vector {
            circle: CircleId([3; 16]),
            heads: vec![Head {
                author: MemberId([1; 32]),
                seq: 300,
                hash: [7; 32],
            }],
        };
        let mut expected = vec![1, 1];
        expected.extend_from_slice(&[3; 16]);
        expected.push(1);
        expected.extend_from_slice(&[1; 32]);
        expected.extend_from_slice(&[0xac, 0x02]);
        expected.extend_from_slice(&[7; 32]);
        assert_eq!(message.encode().unwrap(), expected);
    }

    #[test]
    fn every_truncation_and_extension_is_refused() {
        for message in samples() {
            let bytes = message.encode().unwrap();
            for len in 0..bytes.len() {
                assert!(Message::decode(&bytes[..len]).is_err(), "length {len}");
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(Message::decode(&longer).is_err());
        }
    }

    #[test]
    fn refuses_non_canonical_and_out_of_limit_input() {
        let circle = CircleId([3; 16]);
        let head = |a: u8, seq| Head {
            author: MemberId([a; 32]),
            seq,
            hash: [0; 32],
        };
        let bad = Message::Vector {
            circle,
            heads: vec![head(2, 1), head(1, 1)],
        };
        assert!(bad.encode().is_err());
        let dup = Message::Vector {
            circle,
            heads: vec![head(1, 1), head(1, 2)],
        };
        assert!(dup.encode().is_err());
        let zero = Message::Vector {
            circle,
            heads: vec![head(1, 0)],
        };
        assert!(zero.encode().is_err());
        let empty = Message::Envelopes {
            circle,
            more: false,
            envelopes: vec![],
        };
        assert!(empty.encode().is_err());

        // Hand-made bytes: unsorted heads, zero seq, non-minimal count, unknown flags,
        // unknown kind and version, too long, too many heads.
        let ok = Message::Vector {
            circle,
            heads: vec![head(1, 1), head(2, 1)],
        }
        .encode()
        .unwrap();
        let mut swapped = ok.clone();
        swapped[19..51].copy_from_slice(&[2; 32]);
        assert_eq!(
            Message::decode(&swapped),
            Err(SyncError::Malformed("heads not strictly sorted by author"))
        );
        let mut zero_seq = ok.clone();
        zero_seq[51] = 0;
        assert_eq!(
            Message::decode(&zero_seq),
            Err(SyncError::Malformed("head seq is zero"))
        );
        let mut non_minimal = ok[..18].to_vec();
        non_minimal.extend_from_slice(&[0x82, 0x00]);
        non_minimal.extend_from_slice(&ok[19..]);
        assert_eq!(
            Message::decode(&non_minimal),
            Err(SyncError::Malformed("varint is not minimal"))
        );
        let mut version = ok.clone();
        version[0] = 2;
        assert_eq!(
            Message::decode(&version),
            Err(SyncError::Malformed("unknown version"))
        );
        let mut kind = ok.clone();
        kind[1] = 9;
        assert_eq!(
            Message::decode(&kind),
            Err(SyncError::Malformed("unknown message kind"))
        );
        let (_, envelopes) = sample_envelopes(1);
        let mut flags = Message::Envelopes {
            circle,
            more: false,
            envelopes,
        }
        .encode()
        .unwrap();
        flags[18] = 2;
        assert_eq!(
            Message::decode(&flags),
            Err(SyncError::Malformed("unknown flags"))
        );
        assert_eq!(
            Message::decode(&vec![1; MAX_MESSAGE_LEN + 1]),
            Err(SyncError::TooLong)
        );
        let mut many = ok[..18].to_vec();
        write_varint(&mut many, MAX_VECTOR_AUTHORS as u64 + 1);
        assert_eq!(
            Message::decode(&many),
            Err(SyncError::Malformed("head count out of range"))
        );
        let mut zero_envelopes = flags[..18].to_vec();
        zero_envelopes.extend_from_slice(&[0, 0]);
        assert_eq!(
            Message::decode(&zero_envelopes),
            Err(SyncError::Malformed("envelope count out of range"))
        );
    }

    #[test]
    fn largest_vector_fits() {
        let heads = (0..MAX_VECTOR_AUTHORS)
            .map(|i| {
                let mut author = [0; 32];
                author[..2].copy_from_slice(&(i as u16).to_be_bytes());
                Head {
                    author: MemberId(author),
                    seq: u64::MAX,
                    hash: [0xff; 32],
                }
            })
            .collect();
        let message = Message::Vector {
            circle: CircleId([0; 16]),
            heads,
        };
        let bytes = message.encode().unwrap();
        assert!(bytes.len() <= MAX_MESSAGE_LEN);
        assert_eq!(Message::decode(&bytes).unwrap(), message);
    }

    #[test]
    fn full_batch_fits_and_one_more_byte_is_refused() {
        // Enough maximum-size envelopes to exceed MAX_BATCH_BYTES if all were sent.
        let mut rng = StdRng::seed_from_u64(2);
        let who = DeviceIdentity::generate(&mut rng);
        let key = EpochKey::generate(&mut rng);
        let circle = CircleId([3; 16]);
        let big = vec![0; kith_crypto::MAX_CIPHERTEXT_LEN - 16];
        let env = Envelope::seal(&who, &key, circle, 1, [0; 32], 0, &big, &mut rng).unwrap();
        let fits = MAX_BATCH_BYTES / env.encode().len();
        let mut message = Message::Envelopes {
            circle,
            more: true,
            envelopes: vec![env.clone(); fits],
        };
        let bytes = message.encode().unwrap();
        assert!(bytes.len() <= MAX_MESSAGE_LEN);
        assert_eq!(Message::decode(&bytes).unwrap(), message);
        if let Message::Envelopes { envelopes, .. } = &mut message {
            envelopes.push(env);
        }
        assert!(message.encode().is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let _ = Message::decode(&bytes);
        }

        #[test]
        fn arbitrary_bytes_after_a_valid_prefix_never_panic(
            kind in 0u8..4,
            tail in proptest::collection::vec(any::<u8>(), 0..2048),
        ) {
            let mut bytes = vec![PROTOCOL_VERSION, kind];
            bytes.extend_from_slice(&tail);
            if let Ok(message) = Message::decode(&bytes) {
                // Whatever decodes re-encodes to the same bytes: one encoding per message.
                prop_assert_eq!(message.encode().unwrap(), bytes);
            }
        }

        #[test]
        fn mutated_messages_never_panic_and_stay_canonical(
            which in 0usize..4,
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        ) {
            let mut bytes = samples()[which].encode().unwrap();
            for (at, value) in flips {
                let at = at % bytes.len();
                bytes[at] ^= value;
            }
            if let Ok(message) = Message::decode(&bytes) {
                prop_assert_eq!(message.encode().unwrap(), bytes);
            }
        }
    }

    #[test]
    fn peek_circle_reads_the_header_only() {
        let circle = CircleId([7; 16]);
        let bytes = Message::Vector {
            circle,
            heads: Vec::new(),
        }
        .encode()
        .unwrap();
        assert_eq!(Message::peek_circle(&bytes), Some(circle));
        assert_eq!(Message::peek_circle(&bytes[..17]), None);
        let mut wrong_kind = bytes.clone();
        wrong_kind[1] = 9;
        assert_eq!(Message::peek_circle(&wrong_kind), None);
        assert_eq!(Message::peek_circle(&[]), None);
    }
}
