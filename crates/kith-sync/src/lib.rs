//! Kith's sync protocol as a pure state machine: no I/O, no clock, no randomness.
//!
//! Every member's daemon keeps, per circle, the index of every envelope it holds: for each
//! author a contiguous hash chain `1..=n` ([`CircleSync`]). Two daemons sync a circle by
//! exchanging their heads ([`Message::Vector`]) and answering with what the other lacks,
//! oldest first per author, interleaved across authors, in bounded batches
//! ([`Message::Envelopes`]). A new local envelope is pushed the same way. Every received
//! envelope is checked (size, circle, signature, membership, chain) before it is accepted;
//! forks are kept as evidence, and peers that send bad input are counted ([`Offences`])
//! until the daemon disconnects them.
//!
//! This crate never holds envelope bytes for long: to answer a vector it asks an
//! [`EnvelopeSource`] (the daemon's store or a cache). The network carries the opaque bytes
//! of [`Message::encode`]; [`Message::decode`] is bounded, canonical and never panics. The
//! wire format and the convergence argument are in `docs/protocol.md`.
//!
//! # Example
//!
//! Two nodes, one circle, one author; Bob catches up with Ann through one vector exchange.
//!
//! ```
//! use std::collections::BTreeMap;
//! use kith_crypto::{CircleId, DeviceIdentity, Envelope, EpochKey, MemberId};
//! use kith_sync::{EnvelopeSource, Message, SyncEngine};
//!
//! #[derive(Default)]
//! struct Store(BTreeMap<(MemberId, u64), Envelope>);
//! impl EnvelopeSource for Store {
//!     fn envelope(&self, _: &CircleId, author: &MemberId, seq: u64) -> Option<Envelope> {
//!         self.0.get(&(*author, seq)).cloned()
//!     }
//! }
//!
//! let mut rng = rand::rng();
//! let ann_id = DeviceIdentity::generate(&mut rng);
//! let circle = CircleId::random(&mut rng);
//! let key = EpochKey::generate(&mut rng);
//! let everyone = |_: &CircleId, _: &MemberId| true;
//!
//! let (mut ann, mut ann_store) = (SyncEngine::<&str>::new(), Store::default());
//! let (mut bob, mut bob_store) = (SyncEngine::<&str>::new(), Store::default());
//! ann.join(circle);
//! bob.join(circle);
//!
//! // Ann writes two envelopes; each is stored, then recorded (and could be pushed).
//! let mut prev = [0; 32];
//! for seq in 1..=2 {
//!     let env = Envelope::seal(&ann_id, &key, circle, seq, prev, 0, b"okay", &mut rng)?;
//!     prev = env.hash();
//!     ann_store.0.insert((env.header.author, seq), env.clone());
//!     let _push: Message = ann.circle_mut(&circle).unwrap().local_append(env)?;
//! }
//!
//! // Bob says hello; Ann answers with what Bob lacks.
//! let hello = bob.hellos().remove(0).encode()?;
//! let handled = ann.handle(&"bob", &hello, 0, &ann_store, everyone);
//! let answer = handled.replies[0].encode()?;
//! let handled = bob.handle(&"ann", &answer, 0, &bob_store, everyone);
//! assert_eq!(handled.accepted.len(), 2); // Bob stores these durably, then applies them.
//! for env in handled.accepted {
//!     bob_store.0.insert((env.header.author, env.header.seq), env);
//! }
//! assert_eq!(bob.circle(&circle).unwrap().heads(), ann.circle(&circle).unwrap().heads());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod circle;
mod engine;
pub mod join;
mod message;
mod offence;
mod precheck;
#[cfg(test)]
mod tests;

pub use circle::{CircleSync, Evidence, EvidenceKind, Outcome, Received};
pub use engine::{Handled, SyncEngine};
pub use message::{Head, Message};
pub use offence::{Offence, Offences};
pub use precheck::Prechecked;

use kith_crypto::{CircleId, CryptoError, Envelope, MemberId};

/// Version byte that starts every sync message. A new layout gets a new number and a new
/// libp2p protocol name, so on one stream any other version is malformed.
pub const PROTOCOL_VERSION: u8 = 1;
/// Longest encoded sync message; longer input is refused before parsing.
pub const MAX_MESSAGE_LEN: usize = 2 * 1024 * 1024;
/// Most heads in one vector, and so most authors one circle may have.
pub const MAX_VECTOR_AUTHORS: usize = 1024;
/// Most envelopes in one `Envelopes` message.
pub const MAX_BATCH_ENVELOPES: usize = 256;
/// Most envelope bytes (sum of encoded lengths) in one `Envelopes` message. One envelope
/// always fits, since `MAX_ENVELOPE_LEN` is far smaller.
pub const MAX_BATCH_BYTES: usize = 1024 * 1024;
/// Most envelopes held back, per circle, waiting for a gap to fill or an author to join.
pub const MAX_PENDING_ENVELOPES: usize = 1024;
/// Most encoded bytes held back per circle.
pub const MAX_PENDING_BYTES: usize = 8 * 1024 * 1024;
/// Most envelopes held back for one known author (waiting for a gap in its chain).
pub const MAX_PENDING_PER_AUTHOR: usize = 256;
/// Most envelopes held back, in total, from authors not (yet) in the roster.
pub const MAX_PENDING_UNKNOWN: usize = 256;
/// Most pieces of fork evidence kept per circle; later ones are reported but not kept.
pub const MAX_EVIDENCE: usize = 256;
/// Offences within [`OFFENCE_WINDOW_MS`] after which a peer should be disconnected.
pub const OFFENCE_LIMIT: usize = 5;
/// The sliding window over which offences are counted (ten minutes).
pub const OFFENCE_WINDOW_MS: u64 = 10 * 60 * 1000;

/// Where this crate gets envelope bytes to send: the daemon's store, or a cache.
///
/// The circle is an argument because one daemon serves all its circles from one store.
pub trait EnvelopeSource {
    /// The envelope `author` wrote at `seq` in `circle`, if it is held.
    fn envelope(&self, circle: &CircleId, author: &MemberId, seq: u64) -> Option<Envelope>;
}

/// Everything this crate refuses. Messages are lowercase and name the cause.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SyncError {
    /// A sync message longer than [`MAX_MESSAGE_LEN`].
    #[error("sync message is longer than {MAX_MESSAGE_LEN} bytes")]
    TooLong,
    /// A sync message that does not have the shape it must have.
    #[error("malformed sync message: {0}")]
    Malformed(&'static str),
    /// An envelope inside a sync message that does not decode.
    #[error("malformed envelope in sync message: {0}")]
    Envelope(#[from] CryptoError),
    /// A local or stored envelope that does not continue its author's chain here.
    #[error("envelope {seq} of {author} does not continue the chain")]
    NotNext {
        /// The author whose chain it should continue.
        author: MemberId,
        /// Its sequence number.
        seq: u64,
    },
    /// A local or stored envelope for another circle.
    #[error("envelope belongs to another circle")]
    WrongCircle,
    /// The circle already has [`MAX_VECTOR_AUTHORS`] authors.
    #[error("circle already has {MAX_VECTOR_AUTHORS} authors")]
    TooManyAuthors,
}
