//! Where each envelope of each author chain is, so that envelopes can be served from disk
//! instead of the daemon holding every one in memory.
//!
//! An entry costs 40 bytes (row id and hash) where the envelope itself is ~340; the hash
//! gives the next envelope's `prev`, which the stored form leaves out. Envelopes handed to
//! the writer but not yet committed are kept whole in `queued` meanwhile, so that what a
//! node has accepted can be served at once.

use std::collections::HashMap;

use kith_crypto::{CircleId, Envelope, Hash, MemberId};

/// One committed envelope: its row and its hash.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Located {
    pub row: i64,
    pub hash: Hash,
}

/// A chain's key: circle and author.
type ChainKey = (CircleId, MemberId);

#[derive(Debug, Default)]
pub(crate) struct EnvelopeIndex {
    /// Committed envelopes of each chain; entry `i` is seq `i + 1`.
    stored: HashMap<ChainKey, Vec<Located>>,
    /// Handed to the writer, not yet committed or refused.
    queued: HashMap<(CircleId, MemberId, u64), Envelope>,
}

/// Where to read an envelope, or the envelope itself when it is still queued.
pub(crate) enum Lookup {
    Queued(Envelope),
    Stored { row: i64, prev: Hash },
}

impl EnvelopeIndex {
    /// Records a committed envelope. Chains are appended in order (the writer refuses
    /// anything else), so anything but the next seq is ignored.
    pub(crate) fn stored(&mut self, circle: CircleId, author: MemberId, seq: u64, at: Located) {
        let chain = self.stored.entry((circle, author)).or_default();
        if u64::try_from(chain.len())
            .ok()
            .and_then(|n| n.checked_add(1))
            == Some(seq)
        {
            chain.push(at);
        }
    }

    pub(crate) fn queue(&mut self, envelope: &Envelope) {
        let h = &envelope.header;
        self.queued
            .insert((h.circle, h.author, h.seq), envelope.clone());
    }

    /// Forgets a queued envelope once the writer has committed or refused it.
    pub(crate) fn dequeue(&mut self, circle: CircleId, author: MemberId, seq: u64) {
        self.queued.remove(&(circle, author, seq));
    }

    pub(crate) fn lookup(&self, circle: &CircleId, author: &MemberId, seq: u64) -> Option<Lookup> {
        let index = usize::try_from(seq.checked_sub(1)?).ok()?;
        if let Some(chain) = self.stored.get(&(*circle, *author))
            && let Some(at) = chain.get(index)
        {
            let prev = match index.checked_sub(1) {
                None => [0; 32],
                Some(i) => chain.get(i)?.hash,
            };
            return Some(Lookup::Stored { row: at.row, prev });
        }
        self.queued
            .get(&(*circle, *author, seq))
            .map(|e| Lookup::Queued(e.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(row: i64) -> Located {
        Located {
            row,
            hash: [u8::try_from(row).unwrap_or(0); 32],
        }
    }

    #[test]
    fn stored_chains_give_row_and_prev() {
        let mut index = EnvelopeIndex::default();
        let (circle, author) = (CircleId([1; 16]), MemberId([2; 32]));
        index.stored(circle, author, 1, at(10));
        index.stored(circle, author, 2, at(11));
        // Out of order: ignored.
        index.stored(circle, author, 4, at(12));
        match index.lookup(&circle, &author, 2) {
            Some(Lookup::Stored { row, prev }) => {
                assert_eq!(row, 11);
                assert_eq!(prev, [10; 32]);
            }
            _ => panic!("seq 2 should be stored"),
        }
        match index.lookup(&circle, &author, 1) {
            Some(Lookup::Stored { row, prev }) => {
                assert_eq!(row, 10);
                assert_eq!(prev, [0; 32]);
            }
            _ => panic!("seq 1 should be stored"),
        }
        assert!(index.lookup(&circle, &author, 0).is_none());
        assert!(index.lookup(&circle, &author, 3).is_none());
        assert!(index.lookup(&circle, &author, 4).is_none());
        assert!(index.lookup(&CircleId([9; 16]), &author, 1).is_none());
    }
}
