//! Every envelope of a circle, kept to serve members who lack them.
//!
//! Held as their canonical bytes, per author in seq order: about 16 bytes of bookkeeping
//! per envelope besides its own bytes, where a map of decoded envelopes cost more than
//! twice the envelopes' size. Decoding one again to serve it takes microseconds.

use std::collections::HashMap;

use kith_crypto::{Envelope, MemberId};

/// Largest jump past an author's last held seq that is filled with gaps. kith-sync hands
/// over envelopes in chain order, so a jump means a bug; the bound keeps a bug from
/// allocating without limit.
const MAX_GAP: u64 = 4096;

#[derive(Debug, Default)]
pub(crate) struct HeldEnvelopes {
    /// `by_author[a][i]` is the envelope of seq `i + 1`.
    by_author: HashMap<MemberId, Vec<Option<Box<[u8]>>>>,
}

impl HeldEnvelopes {
    pub(crate) fn insert(&mut self, envelope: &Envelope) {
        let Some(index) = envelope
            .header
            .seq
            .checked_sub(1)
            .and_then(|i| usize::try_from(i).ok())
        else {
            return;
        };
        let chain = self.by_author.entry(envelope.header.author).or_default();
        if index >= chain.len() {
            if (index - chain.len()) as u64 > MAX_GAP {
                tracing::error!(
                    seq = envelope.header.seq,
                    "envelope far past its chain; not held"
                );
                return;
            }
            chain.resize(index + 1, None);
        }
        if let Some(slot) = chain.get_mut(index) {
            *slot = Some(envelope.encode().into_boxed_slice());
        }
    }

    pub(crate) fn get(&self, author: &MemberId, seq: u64) -> Option<Envelope> {
        let index = usize::try_from(seq.checked_sub(1)?).ok()?;
        let bytes = self.by_author.get(author)?.get(index)?.as_ref()?;
        Envelope::decode(bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kith_crypto::{CircleId, DeviceIdentity, EpochKey, Secret};

    #[test]
    fn holds_by_author_and_seq() {
        let mut rng = rand::rng();
        let ann = DeviceIdentity::generate(&mut rng);
        let key = EpochKey(Secret::random(&mut rng));
        let circle = CircleId([7; 16]);
        let mut held = HeldEnvelopes::default();
        let mut prev = [0; 32];
        let mut sealed = Vec::new();
        for seq in 1..=3 {
            let envelope =
                Envelope::seal(&ann, &key, circle, seq, prev, 0, b"x", &mut rng).unwrap();
            prev = envelope.hash();
            sealed.push(envelope);
        }
        // Out of order and twice: each lands in its own place.
        for i in [2, 0, 1, 2] {
            held.insert(&sealed[i]);
        }
        for (i, envelope) in sealed.iter().enumerate() {
            assert_eq!(
                held.get(&ann.member_id(), i as u64 + 1).as_ref(),
                Some(envelope)
            );
        }
        assert_eq!(held.get(&ann.member_id(), 0), None);
        assert_eq!(held.get(&ann.member_id(), 4), None);
        assert_eq!(
            held.get(&DeviceIdentity::generate(&mut rng).member_id(), 1),
            None
        );
    }
}
