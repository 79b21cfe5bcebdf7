//! All of a node's circles and its peers' offences: bytes in, actions out.
//!
//! Who calls what:
//! - on connect and on a timer: [`SyncEngine::hellos`], each encoded and sent to the peer;
//! - on bytes from a peer: [`SyncEngine::handle`]; store `accepted` durably, then send
//!   `replies` to that peer, then apply; disconnect if `disconnect`;
//! - on a local write: [`CircleSync::local_append`] (after storing), push to every peer;
//! - on a roster change: [`SyncEngine::roster_changed`], handled like `accepted`.

use std::collections::BTreeMap;

use kith_crypto::{CircleId, Envelope, MemberId};

use crate::{
    CircleSync, EnvelopeSource, Message, Offence, Offences, Outcome, Prechecked, Received,
    SyncError,
};

/// What [`SyncEngine::handle`] made of one message.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Handled {
    /// The circle the message was about, if it decoded.
    pub circle: Option<CircleId>,
    /// Why the message was refused as a whole, if it was.
    pub error: Option<SyncError>,
    /// Newly accepted envelopes, in chain order per author: store, then apply.
    pub accepted: Vec<Envelope>,
    /// What became of each envelope in the message (and of any released from the buffer).
    pub outcomes: Vec<Outcome>,
    /// Messages to send back to the peer, after `accepted` is stored.
    pub replies: Vec<Message>,
    /// The offence counted against the peer for this message (at most one per message).
    pub offence: Option<Offence>,
    /// The peer has reached the offence limit: close the connection.
    pub disconnect: bool,
}

/// A node's sync state: one [`CircleSync`] per circle it is in, and offence counts per
/// peer (`P` is whatever names a connection: a libp2p `PeerId`, or an index in tests).
#[derive(Debug, Clone)]
pub struct SyncEngine<P> {
    circles: BTreeMap<CircleId, CircleSync>,
    offences: Offences<P>,
}

impl<P: Ord + Clone> Default for SyncEngine<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Ord + Clone> SyncEngine<P> {
    /// No circles, default offence limits (`OFFENCE_LIMIT` within `OFFENCE_WINDOW_MS`).
    pub fn new() -> Self {
        Self::with_offences(Offences::default())
    }

    /// No circles, the given offence accounting.
    pub fn with_offences(offences: Offences<P>) -> Self {
        SyncEngine {
            circles: BTreeMap::new(),
            offences,
        }
    }

    /// Starts syncing `circle` (or returns it if already synced); restore its index from
    /// the store through the returned state.
    pub fn join(&mut self, circle: CircleId) -> &mut CircleSync {
        self.circles
            .entry(circle)
            .or_insert_with(|| CircleSync::new(circle))
    }

    /// Stops syncing `circle`; messages about it become `UnknownCircle` offences.
    pub fn leave(&mut self, circle: &CircleId) -> Option<CircleSync> {
        self.circles.remove(circle)
    }

    /// One circle's state.
    pub fn circle(&self, circle: &CircleId) -> Option<&CircleSync> {
        self.circles.get(circle)
    }

    /// One circle's state, to append local envelopes or restore from the store.
    pub fn circle_mut(&mut self, circle: &CircleId) -> Option<&mut CircleSync> {
        self.circles.get_mut(circle)
    }

    /// Every circle's state.
    pub fn circles(&self) -> impl Iterator<Item = &CircleSync> {
        self.circles.values()
    }

    /// One vector per circle: what to send on connect and on the sync timer.
    pub fn hellos(&self) -> Vec<Message> {
        self.circles.values().map(CircleSync::vector).collect()
    }

    /// Offence counts per peer.
    pub fn offences(&self) -> &Offences<P> {
        &self.offences
    }

    /// Counts an offence found outside [`SyncEngine::handle`] (e.g. a message about a
    /// circle the peer is not in); returns whether the peer has now reached the limit.
    pub fn record_offence(&mut self, peer: &P, offence: Offence, now_ms: u64) -> bool {
        self.offences.record(peer, offence, now_ms);
        self.offences.should_disconnect(peer, now_ms)
    }

    /// Whether `peer` has reached the offence limit in the window ending at `now_ms`.
    pub fn should_disconnect(&self, peer: &P, now_ms: u64) -> bool {
        self.offences.should_disconnect(peer, now_ms)
    }

    /// Call when a circle's roster grows; see [`CircleSync::roster_changed`].
    pub fn roster_changed(
        &mut self,
        circle: &CircleId,
        is_member: impl Fn(&MemberId) -> bool,
    ) -> Received {
        self.circles
            .get_mut(circle)
            .map(|state| state.roster_changed(is_member))
            .unwrap_or_default()
    }

    /// Decodes and handles one message from `peer`, received at `now_ms`.
    ///
    /// A vector is answered from `source`. Envelopes are checked and accepted (see
    /// [`CircleSync::receive`]); `is_member(circle, author)` says whether the roster lists
    /// the author (it should stay true for removed members, whose earlier envelopes still
    /// sync). After envelopes, the reply is a fresh vector when the sender said more
    /// follows and something was accepted, or when something waits for a gap: that asks
    /// the sender for the rest without waiting for the timer, and cannot loop, because
    /// each round accepts something new or fills nothing and stops.
    pub fn handle(
        &mut self,
        peer: &P,
        bytes: &[u8],
        now_ms: u64,
        source: &impl EnvelopeSource,
        is_member: impl Fn(&CircleId, &MemberId) -> bool,
    ) -> Handled {
        self.handle_prechecked(peer, Prechecked::new(bytes), now_ms, source, is_member)
    }

    /// [`SyncEngine::handle`] for a message decoded and signature-checked already, e.g. on
    /// another thread.
    pub fn handle_prechecked(
        &mut self,
        peer: &P,
        message: Prechecked,
        now_ms: u64,
        source: &impl EnvelopeSource,
        is_member: impl Fn(&CircleId, &MemberId) -> bool,
    ) -> Handled {
        let mut handled = Handled::default();
        let Prechecked {
            decoded,
            signatures,
            continued,
        } = message;
        match decoded {
            Err(error) => {
                handled.offence = Some(match error {
                    SyncError::TooLong => Offence::Oversized,
                    _ => Offence::Malformed,
                });
                handled.error = Some(error);
            }
            Ok(message) => {
                let circle = message.circle();
                handled.circle = Some(circle);
                match self.circles.get_mut(&circle) {
                    None => handled.offence = Some(Offence::UnknownCircle),
                    Some(state) => match message {
                        Message::Vector { heads, .. } => {
                            handled.replies.extend(state.answer(&heads, source));
                        }
                        Message::Envelopes {
                            more, envelopes, ..
                        } => {
                            let received =
                                state.receive_checked(envelopes, &signatures, |author| {
                                    is_member(&circle, author)
                                });
                            handled.offence = received.offences().next();
                            let progress = !received.accepted.is_empty();
                            if (more && progress && !continued) || received.waiting_for_gap() {
                                handled.replies.push(state.vector());
                            }
                            handled.accepted = received.accepted;
                            handled.outcomes = received.outcomes;
                        }
                    },
                }
            }
        }
        if let Some(offence) = handled.offence {
            self.offences.record(peer, offence, now_ms);
        }
        handled.disconnect = self.offences.should_disconnect(peer, now_ms);
        handled
    }
}
