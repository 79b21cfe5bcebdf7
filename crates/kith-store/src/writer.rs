//! The writer thread: the only owner of the write connection.
//!
//! Who sends it what:
//! - [`StoreWriter::append`](crate::StoreWriter::append) (any thread, any number of clones):
//!   `Append`, acknowledged through its `done` once committed.
//! - [`Store::put_circle`](crate::Store::put_circle): `PutCircle`, waited on.
//! - [`Store::close`](crate::Store::close) and `Drop for Store`: `Stop`, answered after the
//!   queue is drained and the WAL checkpointed.
//!
//! Group commit: block for one request, take whatever else is queued (up to [`MAX_BATCH`]),
//! write it all in one transaction, commit (one fsync of the WAL), then acknowledge each
//! request. Under load many appends share one fsync; alone, an append waits for one.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};

use kith_crypto::{CircleId, Envelope, MemberId, Secret};
use rusqlite::{Connection, Statement, Transaction, params};
use zeroize::Zeroizing;

use crate::codec::CompactEnvelope;
use crate::db::{self, DbResultExt, Head, Keys};
use crate::index::{EnvelopeIndex, Located};
use crate::{StoreError, WriteDone, lock_unpoisoned};

/// Most requests written in one transaction; bounds the latency one commit can add.
pub(crate) const MAX_BATCH: usize = 1024;
/// Capacity of the request queue: beyond it, `append` blocks (back-pressure, not memory).
pub(crate) const QUEUE_CAPACITY: usize = 4096;

pub(crate) enum Request {
    Append {
        envelope: Box<Envelope>,
        done: Pending,
    },
    PutCircle {
        id: CircleId,
        body: Zeroizing<Vec<u8>>,
        done: Pending,
    },
    Stop {
        done: Pending,
    },
}

/// A `done` callback that is called exactly once: with the outcome, or with
/// [`StoreError::Closed`] if the request is dropped unanswered (queued after the writer
/// stopped). A panicking callback cannot take the writer thread down with it.
pub(crate) struct Pending(Option<WriteDone>);

impl Pending {
    pub(crate) fn new(done: WriteDone) -> Pending {
        Pending(Some(done))
    }

    pub(crate) fn finish(mut self, result: Result<(), StoreError>) {
        if let Some(done) = self.0.take() {
            let _ = catch_unwind(AssertUnwindSafe(move || done(result)));
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(done) = self.0.take() {
            let _ = catch_unwind(AssertUnwindSafe(move || done(Err(StoreError::Closed))));
        }
    }
}

/// What the writer knows and the readers need not: the chain heads and author rows, used to
/// refuse an envelope that does not extend its author's chain.
pub(crate) struct WriterState {
    pub keys: Arc<Keys>,
    /// Shared with [`crate::Store`]: circle id → row, updated only here, after commit.
    pub circles: Arc<Mutex<HashMap<CircleId, i64>>>,
    pub commits: Arc<AtomicU64>,
    /// Shared with [`crate::Store`]: committed envelopes are added here after commit.
    pub index: Arc<Mutex<EnvelopeIndex>>,
    pub session: i64,
    pub session_key: Secret<32>,
    pub author_rows: HashMap<(i64, MemberId), i64>,
    pub heads: HashMap<i64, Head>,
    /// Ids are assigned here and never handed out twice in a session, even when a
    /// transaction rolls back: the id is the nonce, and a rolled-back frame may still sit in
    /// the WAL file.
    pub next_envelope: i64,
    pub next_author: i64,
    pub next_circle: i64,
}

pub(crate) struct Writer {
    pub conn: Connection,
    pub state: WriterState,
}

/// Changes of one transaction, merged into [`WriterState`] only once it commits.
#[derive(Default)]
struct Staged {
    circles: HashMap<CircleId, i64>,
    authors: HashMap<(i64, MemberId), i64>,
    heads: HashMap<i64, Head>,
    /// Envelopes written: (circle, author, seq) and where.
    located: Vec<(CircleId, MemberId, u64, Located)>,
}

enum Outcome {
    Staged,
    Refused(StoreError),
}

struct Statements<'t> {
    envelope: Statement<'t>,
    author: Statement<'t>,
}

impl Writer {
    pub(crate) fn run(mut self, rx: Receiver<Request>) {
        let mut stops = Vec::new();
        while stops.is_empty() {
            let Ok(first) = rx.recv() else {
                return; // every sender is gone: nothing more can arrive
            };
            let mut batch = vec![first];
            batch.extend(rx.try_iter().take(MAX_BATCH - 1));
            stops = self.commit_batch(batch);
        }
        // Stopping: write what was queued before (or raced with) the stop, then checkpoint.
        loop {
            let batch: Vec<Request> = rx.try_iter().take(MAX_BATCH).collect();
            if batch.is_empty() {
                break;
            }
            stops.extend(self.commit_batch(batch));
        }
        let result = self.checkpoint();
        for stop in stops {
            stop.finish(result.as_ref().map(|_| ()).map_err(StoreError::duplicate));
        }
        // `rx` drops here: later requests fail at once with `Closed`.
    }

    /// Moves the WAL into the database file and truncates it, so a closed store is one file.
    fn checkpoint(&self) -> Result<(), StoreError> {
        let busy: i64 = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))
            .db()?;
        if busy != 0 {
            tracing::debug!("store checkpoint at close was partial (a reader was active)");
        }
        Ok(())
    }

    /// Writes one batch in one transaction; returns the stop requests it contained.
    fn commit_batch(&mut self, batch: Vec<Request>) -> Vec<Pending> {
        let mut stops = Vec::new();
        let mut accepted = Vec::with_capacity(batch.len());
        let mut refused = Vec::new();
        let mut staged = Staged::default();
        // Every envelope of the batch leaves the index's queue below, whatever happens.
        let mut appended = Vec::new();

        let result = (|| -> Result<(), StoreError> {
            let tx = self.conn.transaction().db()?;
            let mut fatal = None;
            {
                let mut stmts = Statements {
                    envelope: tx
                        .prepare("INSERT INTO envelopes(id, circle, author, session, data) VALUES (?1, ?2, ?3, ?4, ?5)")
                        .db()?,
                    author: tx.prepare("INSERT INTO authors(id, circle, data) VALUES (?1, ?2, ?3)").db()?,
                };
                for request in batch {
                    let (outcome, done) = match request {
                        Request::Stop { done } => {
                            stops.push(done);
                            continue;
                        }
                        Request::Append { .. } | Request::PutCircle { .. } if fatal.is_some() => {
                            // The transaction is lost; these fail with it below.
                            accepted.push(request.into_pending());
                            continue;
                        }
                        Request::Append { envelope, done } => {
                            let h = &envelope.header;
                            appended.push((h.circle, h.author, h.seq));
                            (self.state.append(&mut stmts, *envelope, &mut staged), done)
                        }
                        Request::PutCircle { id, body, done } => {
                            (self.state.put_circle(&tx, id, &body, &mut staged), done)
                        }
                    };
                    match outcome {
                        Ok(Outcome::Staged) => accepted.push(done),
                        Ok(Outcome::Refused(e)) => refused.push((done, e)),
                        Err(e) => {
                            fatal = Some(e);
                            accepted.push(done);
                        }
                    }
                }
            }
            match fatal {
                Some(e) => Err(e), // dropping `tx` rolls back
                None => tx.commit().db(),
            }
        })();

        match result {
            Ok(()) => {
                if !accepted.is_empty() {
                    self.state.commits.fetch_add(1, Ordering::Relaxed);
                }
                self.state.merge(staged);
                self.state.dequeue(&appended);
                for done in accepted {
                    done.finish(Ok(()));
                }
            }
            Err(e) => {
                self.state.dequeue(&appended);
                tracing::warn!(error = %e, writes = accepted.len(), "store transaction failed; its writes were not stored");
                for done in accepted {
                    done.finish(Err(e.duplicate()));
                }
            }
        }
        for (done, e) in refused {
            done.finish(Err(e));
        }
        stops
    }
}

impl Request {
    fn into_pending(self) -> Pending {
        match self {
            Request::Append { done, .. }
            | Request::PutCircle { done, .. }
            | Request::Stop { done } => done,
        }
    }
}

impl WriterState {
    fn circle_row(&self, staged: &Staged, id: &CircleId) -> Option<i64> {
        staged
            .circles
            .get(id)
            .copied()
            .or_else(|| lock_unpoisoned(&self.circles).get(id).copied())
    }

    /// Stages `envelope` if it is its author's next one in the circle; refuses it otherwise
    /// (nothing written). The stored form drops circle, author and `prev`, which the row and
    /// the chain give back.
    fn append(
        &mut self,
        stmts: &mut Statements<'_>,
        envelope: Envelope,
        staged: &mut Staged,
    ) -> Result<Outcome, StoreError> {
        let header = &envelope.header;
        let (circle_id, author_id, seq) = (header.circle, header.author, header.seq);
        let Some(circle_row) = self.circle_row(staged, &header.circle) else {
            return Ok(Outcome::Refused(StoreError::UnknownCircle(header.circle)));
        };
        let author_key = (circle_row, header.author);
        let author_row = staged
            .authors
            .get(&author_key)
            .or_else(|| self.author_rows.get(&author_key))
            .copied();
        let head = author_row.and_then(|row| {
            staged
                .heads
                .get(&row)
                .or_else(|| self.heads.get(&row))
                .copied()
        });
        let expected = match head {
            None => Some(1),
            Some(h) => h.seq.checked_add(1),
        };
        if Some(header.seq) != expected {
            return Ok(Outcome::Refused(StoreError::OutOfOrder {
                expected: expected.unwrap_or(u64::MAX),
                got: header.seq,
            }));
        }
        if header.prev != head.map_or([0; 32], |h| h.hash) {
            return Ok(Outcome::Refused(StoreError::ChainMismatch {
                seq: header.seq,
            }));
        }

        let author_row = match author_row {
            Some(row) => row,
            None => {
                let row = self.next_author;
                self.next_author += 1;
                let sealed = db::seal_author(
                    &self.keys,
                    row,
                    circle_row,
                    &header.author,
                    &mut rand::rng(),
                );
                stmts
                    .author
                    .execute(params![row, circle_row, sealed])
                    .db()?;
                staged.authors.insert(author_key, row);
                row
            }
        };

        let id = self.next_envelope;
        self.next_envelope += 1;
        let new_head = Head {
            seq: header.seq,
            hash: envelope.hash(),
        };
        let compact = CompactEnvelope {
            seq: envelope.header.seq,
            epoch: envelope.header.epoch,
            nonce: envelope.header.nonce,
            signature: envelope.signature,
            ciphertext: envelope.ciphertext,
        }
        .encode();
        let sealed = db::seal_envelope(&self.session_key, circle_row, author_row, id, &compact);
        stmts
            .envelope
            .execute(params![id, circle_row, author_row, self.session, sealed])
            .db()?;
        staged.heads.insert(author_row, new_head);
        staged.located.push((
            circle_id,
            author_id,
            seq,
            Located {
                row: id,
                hash: new_head.hash,
            },
        ));
        Ok(Outcome::Staged)
    }

    /// Inserts or replaces a circle row (sealed circle id and epoch keys).
    fn put_circle(
        &mut self,
        tx: &Transaction<'_>,
        id: CircleId,
        body: &[u8],
        staged: &mut Staged,
    ) -> Result<Outcome, StoreError> {
        let existing = self.circle_row(staged, &id);
        let row = existing.unwrap_or_else(|| {
            let row = self.next_circle;
            self.next_circle += 1;
            row
        });
        let sealed = db::seal_circle(&self.keys, row, body, &mut rand::rng());
        if existing.is_some() {
            tx.execute(
                "UPDATE circles SET data = ?2 WHERE id = ?1",
                params![row, sealed],
            )
            .db()?;
        } else {
            tx.execute(
                "INSERT INTO circles(id, data) VALUES (?1, ?2)",
                params![row, sealed],
            )
            .db()?;
        }
        staged.circles.insert(id, row);
        Ok(Outcome::Staged)
    }

    fn merge(&mut self, staged: Staged) {
        if !staged.circles.is_empty() {
            lock_unpoisoned(&self.circles).extend(staged.circles);
        }
        self.author_rows.extend(staged.authors);
        self.heads.extend(staged.heads);
        if !staged.located.is_empty() {
            let mut index = lock_unpoisoned(&self.index);
            for (circle, author, seq, at) in staged.located {
                index.stored(circle, author, seq, at);
            }
        }
    }

    /// Takes the batch's envelopes out of the index's queue: stored or not, they are
    /// no longer waiting.
    fn dequeue(&self, appended: &[(CircleId, MemberId, u64)]) {
        if appended.is_empty() {
            return;
        }
        let mut index = lock_unpoisoned(&self.index);
        for (circle, author, seq) in appended {
            index.dequeue(*circle, *author, *seq);
        }
    }
}
