//! One circle's sync state: the index of held envelopes, the pending buffer, fork evidence.

use std::collections::BTreeMap;

use kith_crypto::{CircleId, Envelope, Hash, MAX_ENVELOPE_LEN, MemberId, sha256};

use crate::{
    EnvelopeSource, Head, MAX_BATCH_BYTES, MAX_BATCH_ENVELOPES, MAX_EVIDENCE, MAX_PENDING_BYTES,
    MAX_PENDING_ENVELOPES, MAX_PENDING_PER_AUTHOR, MAX_PENDING_UNKNOWN, MAX_VECTOR_AUTHORS,
    Message, Offence, SyncError,
};

/// What became of one received envelope. The daemon stores and applies only
/// [`Received::accepted`]; the rest is for logs, `kith status` and offence counting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Checked and appended to its author's chain; it is in `accepted`.
    Accepted {
        /// Its author.
        author: MemberId,
        /// Its seq.
        seq: u64,
    },
    /// Already held (same bytes); ignored.
    Duplicate {
        /// Its author.
        author: MemberId,
        /// Its seq.
        seq: u64,
    },
    /// Validly signed, but a different envelope is already held at this seq: the author
    /// signed two. Both are kept (the first in the chain, the second in the evidence).
    Equivocation {
        /// Who equivocated.
        author: MemberId,
        /// At which seq.
        seq: u64,
        /// Hash of the envelope held first.
        first_hash: Hash,
        /// The conflicting envelope.
        second: Box<Envelope>,
    },
    /// Validly signed and next in line, but it names a different previous envelope than the
    /// one held: the author forked its chain earlier. Kept as evidence, not appended.
    Forked {
        /// Who forked.
        author: MemberId,
        /// The seq of the envelope that does not follow.
        seq: u64,
        /// Hash of the envelope held at `seq - 1`.
        held_prev: Hash,
    },
    /// Ahead of a gap in its author's chain: held until the gap fills.
    PendingGap {
        /// Its author.
        author: MemberId,
        /// Its seq.
        seq: u64,
    },
    /// From an author the roster does not (yet) list: held until
    /// [`CircleSync::roster_changed`] says otherwise.
    PendingUnknownAuthor {
        /// Its author.
        author: MemberId,
        /// Its seq.
        seq: u64,
    },
    /// Would have been held, but the pending buffer is full: dropped. Not lost: the next
    /// vector exchange asks for it again.
    PendingFull {
        /// Its author.
        author: MemberId,
        /// Its seq.
        seq: u64,
    },
    /// A new author, but the circle already has `MAX_VECTOR_AUTHORS`; dropped.
    TooManyAuthors {
        /// Its author.
        author: MemberId,
    },
    /// Has seq 0 (only a hand-built envelope can).
    Malformed,
    /// Longer than `MAX_ENVELOPE_LEN` (only a hand-built envelope can be).
    Oversized,
    /// Belongs to another circle than the message it came in.
    WrongCircle {
        /// The circle it names.
        circle: CircleId,
    },
    /// Its signature does not verify under its author's key.
    BadSignature {
        /// The author it claims.
        author: MemberId,
        /// The seq it claims.
        seq: u64,
    },
}

impl Outcome {
    /// The offence this outcome counts against the peer that sent it, if any.
    pub fn offence(&self) -> Option<Offence> {
        match self {
            Outcome::Malformed => Some(Offence::Malformed),
            Outcome::Oversized => Some(Offence::Oversized),
            Outcome::WrongCircle { .. } => Some(Offence::WrongCircle),
            Outcome::BadSignature { .. } => Some(Offence::BadSignature),
            _ => None,
        }
    }
}

/// Which kind of fork a piece of evidence shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvidenceKind {
    /// Two envelopes at the same seq: `first_hash` names the one held at `seq`.
    SameSeq,
    /// `second` (at `seq`) names a previous envelope other than the one held at `seq - 1`,
    /// whose hash is `first_hash`.
    ConflictingPrev,
}

/// Proof that an author signed two incompatible envelopes, for `kith status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evidence {
    /// Which kind of fork.
    pub kind: EvidenceKind,
    /// Who signed both.
    pub author: MemberId,
    /// The seq of `second`.
    pub seq: u64,
    /// The held envelope the second conflicts with (see [`EvidenceKind`]).
    pub first_hash: Hash,
    /// The conflicting, validly signed envelope.
    pub second: Envelope,
}

/// The result of [`CircleSync::receive`] or [`CircleSync::roster_changed`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Received {
    /// Newly accepted envelopes, in chain order per author: store them durably, then apply.
    pub accepted: Vec<Envelope>,
    /// One outcome per input envelope, then one per envelope released from the buffer.
    pub outcomes: Vec<Outcome>,
}

impl Received {
    /// Offences among the outcomes, in order.
    pub fn offences(&self) -> impl Iterator<Item = Offence> + '_ {
        self.outcomes.iter().filter_map(Outcome::offence)
    }

    /// Whether something now waits for a gap to fill (worth asking the peer at once).
    pub fn waiting_for_gap(&self) -> bool {
        self.outcomes
            .iter()
            .any(|o| matches!(o, Outcome::PendingGap { .. }))
    }
}

/// An envelope held back, already verified.
#[derive(Clone, Debug)]
struct Pending {
    envelope: Envelope,
    hash: Hash,
    len: usize,
    /// The roster did not list the author when it arrived.
    unknown_author: bool,
}

/// One circle's sync state: what this node holds, per author, as a hash chain.
///
/// It never holds accepted envelope bytes (the daemon's store does, reached through an
/// [`EnvelopeSource`]); only hashes (32 bytes per envelope), the bounded pending buffer
/// and bounded fork evidence.
#[derive(Clone, Debug)]
pub struct CircleSync {
    circle: CircleId,
    /// Per author, the hash of each held envelope: `chains[a][i]` is seq `i + 1`.
    chains: BTreeMap<MemberId, Vec<Hash>>,
    pending: BTreeMap<(MemberId, u64), Pending>,
    pending_bytes: usize,
    pending_unknown: usize,
    evidence: Vec<Evidence>,
}

impl CircleSync {
    /// An empty index for `circle`. Fill it from the store with [`CircleSync::restore`].
    pub fn new(circle: CircleId) -> Self {
        CircleSync {
            circle,
            chains: BTreeMap::new(),
            pending: BTreeMap::new(),
            pending_bytes: 0,
            pending_unknown: 0,
            evidence: Vec::new(),
        }
    }

    /// The circle this state is about.
    pub fn circle(&self) -> CircleId {
        self.circle
    }

    /// Records an envelope loaded from this node's own store (trusted: its signature was
    /// checked when it first arrived). Envelopes must come in chain order per author.
    pub fn restore(&mut self, envelope: &Envelope) -> Result<(), SyncError> {
        let hash = envelope.hash();
        self.append_trusted(envelope, hash)
    }

    /// Records an envelope this node just wrote (and stored), and returns the message to
    /// push to every connected peer.
    pub fn local_append(&mut self, envelope: Envelope) -> Result<Message, SyncError> {
        let hash = envelope.hash();
        self.append_trusted(&envelope, hash)?;
        Ok(Message::Envelopes {
            circle: self.circle,
            more: false,
            envelopes: vec![envelope],
        })
    }

    fn append_trusted(&mut self, envelope: &Envelope, hash: Hash) -> Result<(), SyncError> {
        let header = &envelope.header;
        if header.circle != self.circle {
            return Err(SyncError::WrongCircle);
        }
        let not_next = SyncError::NotNext {
            author: header.author,
            seq: header.seq,
        };
        match self.expected_prev(&header.author, header.seq) {
            Some(prev) if prev == header.prev => {}
            _ => return Err(not_next),
        }
        if !self.chains.contains_key(&header.author) && self.chains.len() >= MAX_VECTOR_AUTHORS {
            return Err(SyncError::TooManyAuthors);
        }
        self.chains.entry(header.author).or_default().push(hash);
        if let Some(pending) = self.take_pending(&(header.author, header.seq))
            && pending.hash != hash
        {
            self.add_evidence(EvidenceKind::SameSeq, hash, pending.envelope);
        }
        Ok(())
    }

    /// The `prev` that envelope `seq` of `author` must name to be next in line, or `None`
    /// if `seq` is not the next one.
    fn expected_prev(&self, author: &MemberId, seq: u64) -> Option<Hash> {
        let chain = self.chains.get(author).map_or(&[][..], Vec::as_slice);
        if seq != chain.len() as u64 + 1 {
            return None;
        }
        Some(chain.last().copied().unwrap_or([0; 32]))
    }

    /// The hash held for `author` at `seq`, if any.
    fn held(&self, author: &MemberId, seq: u64) -> Option<Hash> {
        let index = usize::try_from(seq.checked_sub(1)?).ok()?;
        self.chains.get(author)?.get(index).copied()
    }

    /// This node's heads, sorted by author.
    pub fn heads(&self) -> Vec<Head> {
        self.chains
            .iter()
            .filter_map(|(author, chain)| {
                chain.last().map(|hash| Head {
                    author: *author,
                    seq: chain.len() as u64,
                    hash: *hash,
                })
            })
            .collect()
    }

    /// The head of one author's chain.
    pub fn head(&self, author: &MemberId) -> Option<Head> {
        let chain = self.chains.get(author)?;
        chain.last().map(|hash| Head {
            author: *author,
            seq: chain.len() as u64,
            hash: *hash,
        })
    }

    /// Envelopes held (accepted), all authors together.
    pub fn len(&self) -> usize {
        self.chains.values().map(Vec::len).sum()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.chains.values().all(Vec::is_empty)
    }

    /// Envelopes waiting in the pending buffer.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Fork evidence collected so far (at most `MAX_EVIDENCE`), oldest first.
    pub fn evidence(&self) -> &[Evidence] {
        &self.evidence
    }

    /// The Hello: this node's vector for this circle.
    pub fn vector(&self) -> Message {
        Message::Vector {
            circle: self.circle,
            heads: self.heads(),
        }
    }

    /// The answer to a peer's vector: what the peer lacks, oldest first per author, authors
    /// taken in turn, within `MAX_BATCH_ENVELOPES` and `MAX_BATCH_BYTES`; `more` is set when
    /// something did not fit. `None` when the peer lacks nothing.
    ///
    /// Where the peer's head hash differs from the envelope held at that seq, the author
    /// forked: nothing more of that author is sent (it would not follow on the peer's
    /// branch), only the held envelope at that seq, so the peer records the evidence too.
    ///
    /// An envelope the source cannot give, or gives wrongly, ends that author's share of
    /// the batch (the daemon's store is damaged; that is the store's error to report).
    pub fn answer(&self, their_heads: &[Head], source: &impl EnvelopeSource) -> Option<Message> {
        let theirs: BTreeMap<&MemberId, &Head> = their_heads
            .iter()
            .map(|head| (&head.author, head))
            .collect();
        // Per author: the next seq to send and the last one.
        let mut queues: Vec<(MemberId, u64, u64)> = Vec::new();
        let mut forks: Vec<(MemberId, u64)> = Vec::new();
        for (author, chain) in &self.chains {
            let held = chain.len() as u64;
            match theirs.get(author) {
                None if held > 0 => queues.push((*author, 1, held)),
                None => {}
                Some(head) if head.seq <= held => {
                    if self.held(author, head.seq) == Some(head.hash) {
                        if head.seq < held {
                            queues.push((*author, head.seq + 1, held));
                        }
                    } else {
                        forks.push((*author, head.seq));
                    }
                }
                Some(_) => {}
            }
        }

        let mut batch = Batch::default();
        for (author, seq) in forks {
            if !batch.push(self, source, &author, seq) && batch.full {
                break;
            }
        }
        while !batch.full && !queues.is_empty() {
            let mut index = 0;
            while let Some((author, next, last)) = queues.get_mut(index) {
                if batch.full {
                    break;
                }
                if !batch.push(self, source, author, *next) {
                    if !batch.full {
                        // The source failed: give up on this author for now.
                        queues.remove(index);
                    }
                    continue;
                }
                *next += 1;
                if *next > *last {
                    queues.remove(index);
                } else {
                    index += 1;
                }
            }
        }
        if batch.envelopes.is_empty() {
            return None;
        }
        Some(Message::Envelopes {
            circle: self.circle,
            more: batch.full,
            envelopes: batch.envelopes,
        })
    }

    /// Checks received envelopes one by one and accepts those that are next in their
    /// author's chain, in this order: size, circle, (same bytes already held: duplicate),
    /// signature, membership (`is_member`), chain position and `prev`.
    ///
    /// Heads advance at once: the caller must store `accepted` durably before it sends or
    /// acknowledges anything, and rebuild this state from its store if storing fails.
    pub fn receive(
        &mut self,
        envelopes: Vec<Envelope>,
        is_member: impl Fn(&MemberId) -> bool,
    ) -> Received {
        let signatures = crate::precheck::verify_all(&envelopes);
        self.receive_checked(envelopes, &signatures, is_member)
    }

    /// [`CircleSync::receive`] with each envelope's signature verdict already known (from
    /// [`crate::Prechecked`]); a missing verdict counts as a bad signature.
    pub(crate) fn receive_checked(
        &mut self,
        envelopes: Vec<Envelope>,
        signatures: &[bool],
        is_member: impl Fn(&MemberId) -> bool,
    ) -> Received {
        let mut out = Received::default();
        for (i, envelope) in envelopes.into_iter().enumerate() {
            let signature_ok = signatures.get(i).copied().unwrap_or(false);
            let outcome = self.check_one(envelope, signature_ok, &is_member, &mut out);
            out.outcomes.push(outcome);
        }
        out
    }

    fn check_one(
        &mut self,
        envelope: Envelope,
        signature_ok: bool,
        is_member: &impl Fn(&MemberId) -> bool,
        out: &mut Received,
    ) -> Outcome {
        let bytes = envelope.encode();
        if bytes.len() > MAX_ENVELOPE_LEN {
            return Outcome::Oversized;
        }
        let (author, seq) = (envelope.header.author, envelope.header.seq);
        if seq == 0 {
            return Outcome::Malformed;
        }
        if envelope.header.circle != self.circle {
            return Outcome::WrongCircle {
                circle: envelope.header.circle,
            };
        }
        let hash = sha256(&bytes);
        // Byte-identical to what is held: it was verified when it arrived first.
        if self.held(&author, seq) == Some(hash)
            || self
                .pending
                .get(&(author, seq))
                .is_some_and(|p| p.hash == hash)
        {
            return Outcome::Duplicate { author, seq };
        }
        if !signature_ok {
            return Outcome::BadSignature { author, seq };
        }
        let pending = Pending {
            envelope,
            hash,
            len: bytes.len(),
            unknown_author: !is_member(&author),
        };
        if pending.unknown_author {
            return self.hold(pending);
        }
        self.place(pending, out)
    }

    /// `pending` arrived where an envelope with `first_hash` is already held or pending: the
    /// same bytes again, or a second envelope at one seq (kept as evidence).
    fn same_seq(&mut self, first_hash: Hash, pending: Pending) -> Outcome {
        let (author, seq) = (pending.envelope.header.author, pending.envelope.header.seq);
        if first_hash == pending.hash {
            return Outcome::Duplicate { author, seq };
        }
        self.add_evidence(EvidenceKind::SameSeq, first_hash, pending.envelope.clone());
        Outcome::Equivocation {
            author,
            seq,
            first_hash,
            second: Box::new(pending.envelope),
        }
    }

    /// Chain step for a verified envelope of a known author.
    fn place_one(&mut self, pending: Pending, out: &mut Received) -> Outcome {
        let (author, seq) = (pending.envelope.header.author, pending.envelope.header.seq);
        if let Some(first_hash) = self.held(&author, seq) {
            return self.same_seq(first_hash, pending);
        }
        let Some(expected_prev) = self.expected_prev(&author, seq) else {
            return self.hold(pending);
        };
        if pending.envelope.header.prev != expected_prev {
            self.add_evidence(
                EvidenceKind::ConflictingPrev,
                expected_prev,
                pending.envelope,
            );
            return Outcome::Forked {
                author,
                seq,
                held_prev: expected_prev,
            };
        }
        if !self.chains.contains_key(&author) && self.chains.len() >= MAX_VECTOR_AUTHORS {
            return Outcome::TooManyAuthors { author };
        }
        self.chains.entry(author).or_default().push(pending.hash);
        if let Some(other) = self.take_pending(&(author, seq))
            && other.hash != pending.hash
        {
            self.add_evidence(EvidenceKind::SameSeq, pending.hash, other.envelope);
        }
        out.accepted.push(pending.envelope);
        Outcome::Accepted { author, seq }
    }

    /// Chain step, then the release of what waited for an accepted envelope, in order.
    fn place(&mut self, pending: Pending, out: &mut Received) -> Outcome {
        let (author, seq) = (pending.envelope.header.author, pending.envelope.header.seq);
        let outcome = self.place_one(pending, out);
        if matches!(outcome, Outcome::Accepted { .. }) {
            let mut next = seq.saturating_add(1);
            while let Some(waiting) = self.take_pending(&(author, next)) {
                let released = self.place_one(waiting, out);
                let accepted = matches!(released, Outcome::Accepted { .. });
                out.outcomes.push(released);
                if !accepted {
                    break;
                }
                next = next.saturating_add(1);
            }
        }
        outcome
    }

    /// Puts a verified envelope in the pending buffer, within its bounds.
    fn hold(&mut self, pending: Pending) -> Outcome {
        let (author, seq) = (pending.envelope.header.author, pending.envelope.header.seq);
        let full = Outcome::PendingFull { author, seq };
        let key = (author, seq);
        if let Some(first_hash) = self.pending.get(&key).map(|first| first.hash) {
            return self.same_seq(first_hash, pending);
        }
        if pending.unknown_author && self.pending_unknown >= MAX_PENDING_UNKNOWN {
            return full;
        }
        // Per author, keep the lowest seqs: they are the ones that fill gaps first.
        let of_author = self.pending.range((author, 0)..=(author, u64::MAX));
        if of_author.clone().count() >= MAX_PENDING_PER_AUTHOR {
            match of_author.last().map(|(k, _)| *k) {
                Some(highest) if highest.1 > seq => {
                    self.take_pending(&highest);
                }
                _ => return full,
            }
        }
        if self.pending.len() >= MAX_PENDING_ENVELOPES
            || self.pending_bytes + pending.len > MAX_PENDING_BYTES
        {
            return full;
        }
        let outcome = if pending.unknown_author {
            self.pending_unknown += 1;
            Outcome::PendingUnknownAuthor { author, seq }
        } else {
            Outcome::PendingGap { author, seq }
        };
        self.pending_bytes += pending.len;
        self.pending.insert(key, pending);
        outcome
    }

    fn take_pending(&mut self, key: &(MemberId, u64)) -> Option<Pending> {
        let pending = self.pending.remove(key)?;
        self.pending_bytes -= pending.len;
        if pending.unknown_author {
            self.pending_unknown -= 1;
        }
        Some(pending)
    }

    /// Call when the roster grows: envelopes held back from authors `is_member` now
    /// accepts are checked again (in seq order) and those next in line accepted.
    pub fn roster_changed(&mut self, is_member: impl Fn(&MemberId) -> bool) -> Received {
        let mut out = Received::default();
        let keys: Vec<(MemberId, u64)> = self
            .pending
            .iter()
            .filter(|(_, p)| p.unknown_author && is_member(&p.envelope.header.author))
            .map(|(key, _)| *key)
            .collect();
        for key in keys {
            // An earlier placement may already have released or replaced this one.
            if let Some(mut pending) = self.take_pending(&key) {
                pending.unknown_author = false;
                let outcome = self.place(pending, &mut out);
                out.outcomes.push(outcome);
            }
        }
        out
    }

    fn add_evidence(&mut self, kind: EvidenceKind, first_hash: Hash, second: Envelope) {
        if self.evidence.len() >= MAX_EVIDENCE
            || self
                .evidence
                .iter()
                .any(|e| e.first_hash == first_hash && e.second == second)
        {
            return;
        }
        self.evidence.push(Evidence {
            kind,
            author: second.header.author,
            seq: second.header.seq,
            first_hash,
            second,
        });
    }
}

/// A batch being filled within the message limits.
#[derive(Default)]
struct Batch {
    envelopes: Vec<Envelope>,
    bytes: usize,
    /// A limit was reached: something that should go did not fit.
    full: bool,
}

impl Batch {
    /// Adds `author`'s envelope at `seq` if it fits; false if it did not (full, or the
    /// source did not give the envelope the index names).
    fn push(
        &mut self,
        state: &CircleSync,
        source: &impl EnvelopeSource,
        author: &MemberId,
        seq: u64,
    ) -> bool {
        if self.envelopes.len() >= MAX_BATCH_ENVELOPES {
            self.full = true;
            return false;
        }
        let Some(envelope) = source.envelope(&state.circle, author, seq) else {
            return false;
        };
        let bytes = envelope.encode();
        if Some(sha256(&bytes)) != state.held(author, seq) {
            return false;
        }
        if self.bytes + bytes.len() > MAX_BATCH_BYTES {
            self.full = true;
            return false;
        }
        self.bytes += bytes.len();
        self.envelopes.push(envelope);
        true
    }
}
