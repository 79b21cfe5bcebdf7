//! Misbehaviour accounting: how many offences each peer committed recently.

use std::collections::{BTreeMap, VecDeque};

use crate::{OFFENCE_LIMIT, OFFENCE_WINDOW_MS};

/// Most peers tracked at once; beyond it, peers with no recent offence are forgotten.
const MAX_TRACKED_PEERS: usize = 4096;

/// Something a peer sent that an honest, correct peer never sends.
///
/// Not offences: duplicates, envelopes from authors not yet in the roster, envelopes ahead
/// of a gap, and forks. An honest peer sends all of these (a fork is the author's doing,
/// and honest peers relay whichever branch they hold), so punishing them would let one
/// forking member cut honest members off from each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Offence {
    /// Bytes that do not decode as a sync message (includes an unknown version byte).
    Malformed,
    /// A message longer than `MAX_MESSAGE_LEN`, or an envelope longer than allowed.
    Oversized,
    /// A message about a circle this node is not in.
    UnknownCircle,
    /// An envelope inside a message for another circle.
    WrongCircle,
    /// An envelope whose signature does not verify.
    BadSignature,
}

/// Per-peer offence counts over a sliding window of time. Time is passed in (milliseconds
/// on any monotonic clock); nothing here reads a clock.
#[derive(Debug, Clone)]
pub struct Offences<P> {
    limit: usize,
    window_ms: u64,
    peers: BTreeMap<P, PeerRecord>,
}

#[derive(Debug, Clone, Default)]
struct PeerRecord {
    /// When recent offences happened, oldest first; at most `limit` kept.
    recent: VecDeque<u64>,
    /// Every offence ever counted, by kind, for `kith status`.
    total: BTreeMap<Offence, u64>,
}

impl<P: Ord + Clone> Default for Offences<P> {
    fn default() -> Self {
        Self::new(OFFENCE_LIMIT, OFFENCE_WINDOW_MS)
    }
}

impl<P: Ord + Clone> Offences<P> {
    /// Disconnect after `limit` offences within `window_ms` (a limit of 0 acts as 1).
    pub fn new(limit: usize, window_ms: u64) -> Self {
        Offences {
            limit: limit.max(1),
            window_ms,
            peers: BTreeMap::new(),
        }
    }

    /// Counts one offence at `now_ms`; returns whether the peer should now be disconnected.
    pub fn record(&mut self, peer: &P, offence: Offence, now_ms: u64) -> bool {
        if !self.peers.contains_key(peer) && self.peers.len() >= MAX_TRACKED_PEERS {
            self.prune(now_ms);
        }
        let record = self.peers.entry(peer.clone()).or_default();
        *record.total.entry(offence).or_insert(0) += 1;
        record.recent.push_back(now_ms);
        while record.recent.len() > self.limit {
            record.recent.pop_front();
        }
        self.should_disconnect(peer, now_ms)
    }

    /// Whether `peer` committed at least the limit of offences in the window ending now.
    pub fn should_disconnect(&self, peer: &P, now_ms: u64) -> bool {
        self.recent(peer, now_ms) >= self.limit
    }

    /// Offences of `peer` within the window ending at `now_ms` (at most the limit).
    pub fn recent(&self, peer: &P, now_ms: u64) -> usize {
        let since = now_ms.saturating_sub(self.window_ms);
        self.peers.get(peer).map_or(0, |record| {
            record.recent.iter().filter(|&&at| at >= since).count()
        })
    }

    /// Every offence `peer` was ever counted for (while tracked), by kind.
    pub fn totals(&self, peer: &P) -> BTreeMap<Offence, u64> {
        self.peers
            .get(peer)
            .map(|record| record.total.clone())
            .unwrap_or_default()
    }

    /// Peers with any offence on record.
    pub fn peers(&self) -> impl Iterator<Item = &P> {
        self.peers.keys()
    }

    /// Drops everything known about `peer` (for instance once it is banned elsewhere).
    pub fn forget(&mut self, peer: &P) {
        self.peers.remove(peer);
    }

    /// Forgets peers with no offence in the window, keeping the map bounded.
    fn prune(&mut self, now_ms: u64) {
        let since = now_ms.saturating_sub(self.window_ms);
        self.peers
            .retain(|_, record| record.recent.back().is_some_and(|&at| at >= since));
        while self.peers.len() >= MAX_TRACKED_PEERS {
            // Everyone is recent: forget the peer whose last offence is oldest.
            let oldest = self
                .peers
                .iter()
                .min_by_key(|(_, record)| record.recent.back().copied())
                .map(|(peer, _)| peer.clone());
            match oldest {
                Some(peer) => self.peers.remove(&peer),
                None => break,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disconnect_after_limit_within_window() {
        let mut offences = Offences::<&str>::new(3, 1000);
        assert!(!offences.record(&"eve", Offence::Malformed, 0));
        assert!(!offences.record(&"eve", Offence::BadSignature, 10));
        assert!(!offences.should_disconnect(&"bob", 10));
        assert!(offences.record(&"eve", Offence::Malformed, 20));
        assert!(offences.should_disconnect(&"eve", 500));
        // The window slides: the first offence ages out.
        assert!(!offences.should_disconnect(&"eve", 1001));
        assert_eq!(offences.recent(&"eve", 1001), 2);
        assert_eq!(offences.totals(&"eve").get(&Offence::Malformed), Some(&2));
        // Spread-out offences never reach the limit.
        let mut slow = Offences::<u8>::new(3, 1000);
        for i in 0..100u64 {
            assert!(!slow.record(&1, Offence::Malformed, i * 600));
        }
        assert_eq!(slow.totals(&1).get(&Offence::Malformed), Some(&100));
        slow.forget(&1);
        assert_eq!(slow.peers().count(), 0);
    }

    #[test]
    fn tracked_peers_are_bounded() {
        let mut offences = Offences::<u32>::new(5, 1000);
        for peer in 0..(MAX_TRACKED_PEERS as u32 + 10) {
            offences.record(&peer, Offence::Malformed, u64::from(peer));
        }
        assert!(offences.peers().count() <= MAX_TRACKED_PEERS);
        assert_eq!(offences.recent(&(MAX_TRACKED_PEERS as u32 + 9), 5000), 1);
    }
}
