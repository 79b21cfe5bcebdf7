//! The durable, encrypted local store of one node (SQLite, WAL mode, synchronous=FULL).
//!
//! Everything written is ciphertext under keys derived from a master key; the master key is
//! sealed in the key file under a key derived from the passphrase (argon2id). Destroying the
//! key file destroys access to everything (`kith wipe`). Writes go through one writer thread
//! that commits whatever has queued as one transaction (group commit) and acknowledges each
//! write only once it is durable. `docs/store.md` describes every file, table and key.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use kith_crypto::{CircleId, DeviceIdentity, EpochKey};
//! use kith_store::{CircleRecord, Store};
//!
//! let home = std::path::Path::new("/home/ann/.local/share/kith");
//! let mut rng = rand::rng();
//! let device = DeviceIdentity::generate(&mut rng);
//! kith_store::create(home, b"correct horse", &device.secret(), "Ann", &mut rng)?;
//!
//! let store = Store::open(home, b"correct horse")?;
//! let circle = CircleId::random(&mut rng);
//! store.put_circle(&CircleRecord { id: circle, epoch_keys: vec![(0, EpochKey::generate(&mut rng))] })?;
//! // ... seal envelopes with kith_crypto::Envelope::seal, then:
//! // store.writer().append_blocking(envelope)?;
//! for envelope in store.load_envelopes(&circle)? {
//!     println!("seq {}", envelope.header.seq);
//! }
//! store.close()?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod codec;
mod db;
mod fsutil;
mod index;
mod keyfile;
mod writer;

/// Entry points for `fuzz/` (docs/fuzzing.md): the store's pure decoders of bytes read from
/// disk, without a home, a passphrase or a database. Not part of the store's API.
#[doc(hidden)]
pub mod fuzzing {
    /// Parses a key file without running the KDF (`keyfile::parse`).
    pub fn parse_key_file(bytes: &[u8]) -> Result<(), crate::StoreError> {
        crate::keyfile::parse(bytes).map(|_| ())
    }

    /// Decodes a compact envelope (`codec::CompactEnvelope`) and returns its re-encoding.
    pub fn compact_envelope_reencode(bytes: &[u8]) -> Result<Vec<u8>, &'static str> {
        crate::codec::CompactEnvelope::decode(bytes).map(|e| e.encode())
    }

    /// Decodes a circle record (`codec::decode_circle`) and returns its re-encoding.
    pub fn circle_record_reencode(bytes: &[u8]) -> Result<Vec<u8>, &'static str> {
        crate::codec::decode_circle(bytes)
            .map(|r| crate::codec::encode_circle(&r.id, &r.epoch_keys).to_vec())
    }
}

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use kith_crypto::{CircleId, Envelope, EpochKey, KdfParams, MemberId, Secret};
use rand::Rng;
use rusqlite::Connection;
use zeroize::Zeroizing;

use crate::db::{DbResultExt, Keys};
use crate::index::{EnvelopeIndex, Located, Lookup};
use crate::writer::{Pending, Request, Writer, WriterState};

/// File names inside a node's home directory.
pub const KEY_FILE: &str = "keyfile";
pub const DB_FILE: &str = "store.db";
pub const LOCK_FILE: &str = "lock";

/// Where `create` writes the key file before linking it into place; erased by `wipe`.
const KEY_TMP_FILE: &str = "keyfile.tmp";
/// SQLite's companions of [`DB_FILE`].
const DB_WAL_FILE: &str = "store.db-wal";
const DB_SHM_FILE: &str = "store.db-shm";
/// A key file is 110 bytes; anything much larger is not one and is not read into memory.
const MAX_KEY_FILE_READ: u64 = 4096;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no Kith identity in {0} (run `kith init --name NAME` first)")]
    NotInitialized(PathBuf),
    #[error("{0} already holds a Kith identity")]
    AlreadyInitialized(PathBuf),
    #[error("wrong passphrase")]
    WrongPassphrase,
    #[error("another kith daemon is already using {0}")]
    Locked(PathBuf),
    #[error("the store is damaged: {0} (nothing was changed)")]
    Corrupt(String),
    #[error("unknown circle {0}")]
    UnknownCircle(CircleId),
    /// The envelope's seq is not its author's next one in this circle (a gap, a duplicate, or
    /// a second envelope at a stored seq). Nothing was written.
    #[error("envelope out of order: its author's next seq here is {expected}, this one has {got}")]
    OutOfOrder { expected: u64, got: u64 },
    /// The envelope has the right seq but names a different previous envelope than the stored
    /// one: its author's chain forked. Nothing was written.
    #[error("envelope seq {seq} does not follow its author's stored chain (a fork)")]
    ChainMismatch { seq: u64 },
    #[error("key derivation failed: {0}")]
    Kdf(String),
    #[error("the store is closed")]
    Closed,
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("database error: {0}")]
    Database(String),
}

impl StoreError {
    /// A copy for each write of a failed batch (`io::Error` is not `Clone`).
    pub(crate) fn duplicate(&self) -> StoreError {
        match self {
            StoreError::NotInitialized(p) => StoreError::NotInitialized(p.clone()),
            StoreError::AlreadyInitialized(p) => StoreError::AlreadyInitialized(p.clone()),
            StoreError::WrongPassphrase => StoreError::WrongPassphrase,
            StoreError::Locked(p) => StoreError::Locked(p.clone()),
            StoreError::Corrupt(m) => StoreError::Corrupt(m.clone()),
            StoreError::UnknownCircle(c) => StoreError::UnknownCircle(*c),
            StoreError::OutOfOrder { expected, got } => StoreError::OutOfOrder {
                expected: *expected,
                got: *got,
            },
            StoreError::ChainMismatch { seq } => StoreError::ChainMismatch { seq: *seq },
            StoreError::Kdf(m) => StoreError::Kdf(m.clone()),
            StoreError::Closed => StoreError::Closed,
            StoreError::Io(e) => StoreError::Io(io::Error::new(e.kind(), e.to_string())),
            StoreError::Database(m) => StoreError::Database(m.clone()),
        }
    }
}

/// What the store keeps about one circle besides its envelopes.
#[derive(Debug)]
pub struct CircleRecord {
    pub id: CircleId,
    /// Every epoch key this node holds for the circle.
    pub epoch_keys: Vec<(u32, EpochKey)>,
}

/// Locks a mutex even if a panicking thread poisoned it: the data behind it (maps of row
/// ids, a connection) stays consistent because it is only changed after a commit.
pub(crate) fn lock_unpoisoned<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Creates a new home: the key file and an empty database holding the identity secret and the
/// member's own name. Refuses if one exists.
pub fn create<R: rand::CryptoRng + ?Sized>(
    home: &Path,
    passphrase: &[u8],
    identity: &Secret<32>,
    name: &str,
    rng: &mut R,
) -> Result<(), StoreError> {
    let params = KdfParams::recommended(rng);
    create_with_kdf(home, passphrase, identity, name, params, rng)
}

/// [`create`] with chosen argon2id parameters. For tests and test kits only, where the
/// recommended 64 MiB × 3 passes would dominate run time; real homes use [`create`].
#[doc(hidden)]
pub fn create_with_kdf<R: rand::CryptoRng + ?Sized>(
    home: &Path,
    passphrase: &[u8],
    identity: &Secret<32>,
    name: &str,
    params: KdfParams,
    rng: &mut R,
) -> Result<(), StoreError> {
    fsutil::prepare_home(home)?;
    // Held while creating, so two concurrent `create`s (or a running daemon) cannot interleave.
    let _lock = fsutil::take_lock(home)?;
    if is_initialized(home) {
        return Err(StoreError::AlreadyInitialized(home.to_path_buf()));
    }
    for leftover in [DB_FILE, DB_WAL_FILE, DB_SHM_FILE] {
        if std::fs::symlink_metadata(home.join(leftover)).is_ok() {
            return Err(StoreError::Corrupt(format!(
                "{leftover} exists in {} without a key file (left by an interrupted setup or wipe); \
                 run `kith wipe` to clear it",
                home.display()
            )));
        }
    }
    // An interrupted `create` may have left its temporary key file; it holds a sealed key.
    fsutil::erase_file(&home.join(KEY_TMP_FILE))?;

    let master = Secret::random(rng);
    let key_file = keyfile::seal(passphrase, &params, &master, rng)?;
    let keys = Keys::new(master);

    // The database first, the key file last: the key file's presence means a complete store.
    let db_path = home.join(DB_FILE);
    drop(fsutil::create_new_private(&db_path)?);
    let made = db::create_db(&db_path, &keys, identity, name, rng)
        .and_then(|()| Ok(File::open(&db_path)?.sync_all()?))
        .and_then(|()| Ok(fsutil::sync_dir(home)?))
        .and_then(|()| fsutil::place_new_file(home, KEY_TMP_FILE, KEY_FILE, &key_file));
    if let Err(e) = made {
        // Without the key file these are unreadable leftovers that would block a retry.
        for file in [DB_FILE, DB_WAL_FILE, DB_SHM_FILE] {
            let _ = fsutil::remove_if_present(&home.join(file));
        }
        return Err(e);
    }
    Ok(())
}

/// Whether `home` holds a key file.
pub fn is_initialized(home: &Path) -> bool {
    std::fs::symlink_metadata(home.join(KEY_FILE)).is_ok()
}

/// Crypto-erase: overwrites and removes the key file, then removes the database files.
/// Works whether or not a daemon holds the store open.
///
/// It does not take the lock, so it works while a daemon runs; that daemon still holds the
/// master key in memory and must be stopped by the caller. Every file is attempted even if
/// one fails; the first error is returned.
pub fn wipe(home: &Path) -> Result<(), StoreError> {
    let mut first_error: Option<io::Error> = None;
    let mut note = |result: io::Result<()>| {
        if let Err(e) = result
            && e.kind() != io::ErrorKind::NotFound
        {
            first_error.get_or_insert(e);
        }
    };
    for file in [KEY_FILE, KEY_TMP_FILE] {
        note(fsutil::erase_file(&home.join(file)));
    }
    note(fsutil::sync_dir(home));
    for file in [DB_FILE, DB_WAL_FILE, DB_SHM_FILE] {
        note(fsutil::remove_if_present(&home.join(file)));
    }
    note(fsutil::sync_dir(home));
    first_error.map_or(Ok(()), |e| Err(e.into()))
}

fn read_key_file(home: &Path) -> Result<Vec<u8>, StoreError> {
    let mut file = match File::open(home.join(KEY_FILE)) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(StoreError::NotInitialized(home.to_path_buf()));
        }
        Err(e) => return Err(e.into()),
    };
    let mut bytes = Vec::new();
    file.by_ref()
        .take(MAX_KEY_FILE_READ + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_KEY_FILE_READ {
        return Err(StoreError::Corrupt(
            "key file is far too large to be a key file".into(),
        ));
    }
    Ok(bytes)
}

/// An open store. Holds the home's exclusive lock until closed or dropped.
pub struct Store {
    home: PathBuf,
    keys: Arc<Keys>,
    /// Circle id → row id. Circle ids exist on disk only inside sealed rows, so this map is
    /// built by decrypting them at open and kept up to date by the writer.
    circles: Arc<Mutex<HashMap<CircleId, i64>>>,
    /// Reads run here, beside the writer's connection (WAL: neither blocks the other).
    reader: Mutex<Connection>,
    /// Where each envelope is (see [`index`]).
    index: Arc<Mutex<EnvelopeIndex>>,
    /// Keys of writer sessions already derived for reads.
    sessions: Mutex<HashMap<i64, Secret<32>>>,
    writer: StoreWriter,
    thread: Option<JoinHandle<()>>,
    commits: Arc<AtomicU64>,
    identity: Secret<32>,
    name: Zeroizing<String>,
    /// Declared last so it is released only after both connections are closed.
    _lock: File,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("home", &self.home)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the store for the daemon: takes the exclusive lock, unlocks the key file with the
    /// passphrase, checks the database, starts the writer thread.
    pub fn open(home: &Path, passphrase: &[u8]) -> Result<Store, StoreError> {
        if !is_initialized(home) {
            return Err(StoreError::NotInitialized(home.to_path_buf()));
        }
        let lock = fsutil::take_lock(home)?;
        let key_file = read_key_file(home)?;
        let keys = Arc::new(Keys::new(keyfile::open(&key_file, passphrase)?));

        let db_path = home.join(DB_FILE);
        if std::fs::symlink_metadata(&db_path).is_err() {
            return Err(StoreError::Corrupt(format!(
                "the key file is present but {DB_FILE} is missing from {}",
                home.display()
            )));
        }
        let conn = db::open_checked(&db_path, &keys)?;

        let identity = db::read_meta(&conn, &keys, db::META_IDENTITY)?
            .and_then(|bytes| <[u8; 32]>::try_from(bytes.as_slice()).ok())
            .map(Secret::from_bytes)
            .ok_or_else(|| {
                StoreError::Corrupt("the identity secret is missing or garbled".into())
            })?;
        let name = db::read_meta(&conn, &keys, db::META_NAME)?
            .and_then(|bytes| String::from_utf8(bytes.to_vec()).ok())
            .map(Zeroizing::new)
            .ok_or_else(|| StoreError::Corrupt("the member name is missing or garbled".into()))?;

        let circles = db::load_circle_rows(&conn, &keys)?;
        let authors = db::load_authors(&conn, &keys)?;
        // Replays every chain once: checks it, yields the heads appends must follow and
        // where each envelope is.
        let mut index = EnvelopeIndex::default();
        let heads = db::scan_envelopes(
            &conn,
            &mut db::Resolver::new(&keys, &circles),
            None,
            |row, hash, envelope| {
                let h = &envelope.header;
                index.stored(h.circle, h.author, h.seq, Located { row, hash });
            },
        )?;
        let index = Arc::new(Mutex::new(index));
        let next_envelope = db::next_id(&conn, "envelopes")?;
        let next_author = db::next_id(&conn, "authors")?;
        let next_circle = db::next_id(&conn, "circles")?;

        // A fresh session (salt → key) for the envelopes this process writes.
        let mut salt = [0u8; db::SESSION_SALT_LEN];
        rand::rng().fill_bytes(&mut salt);
        conn.execute("INSERT INTO sessions(salt) VALUES (?1)", [salt.as_slice()])
            .db()?;
        let session = conn.last_insert_rowid();
        let session_key = keys.session_key(&salt);

        let reader = db::open_reader(&db_path)?;
        let circles = Arc::new(Mutex::new(circles));
        let commits = Arc::new(AtomicU64::new(0));
        let writer = Writer {
            conn,
            state: WriterState {
                keys: Arc::clone(&keys),
                circles: Arc::clone(&circles),
                commits: Arc::clone(&commits),
                index: Arc::clone(&index),
                session,
                session_key,
                author_rows: authors
                    .into_iter()
                    .map(|(row, (circle, member))| ((circle, member), row))
                    .collect(),
                heads,
                next_envelope,
                next_author,
                next_circle,
            },
        };
        let (tx, rx) = mpsc::sync_channel(writer::QUEUE_CAPACITY);
        let thread = std::thread::Builder::new()
            .name("kith-store-writer".into())
            .spawn(move || writer.run(rx))?;

        Ok(Store {
            home: home.to_path_buf(),
            keys,
            circles,
            reader: Mutex::new(reader),
            index: Arc::clone(&index),
            sessions: Mutex::new(HashMap::new()),
            writer: StoreWriter { tx, index },
            thread: Some(thread),
            commits,
            identity,
            name,
            _lock: lock,
        })
    }

    pub fn identity_secret(&self) -> Result<Secret<32>, StoreError> {
        Ok(Secret::from_bytes(*self.identity.expose_secret()))
    }

    pub fn member_name(&self) -> Result<String, StoreError> {
        Ok(self.name.to_string())
    }

    pub fn circles(&self) -> Result<Vec<CircleRecord>, StoreError> {
        let conn = lock_unpoisoned(&self.reader);
        let mut stmt = conn
            .prepare("SELECT id, data FROM circles ORDER BY id")
            .db()?;
        let rows = stmt
            .query_map([], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?))
            })
            .db()?;
        let mut records = Vec::new();
        for row in rows {
            let (row, sealed) = row.db()?;
            let plain = db::open_circle(&self.keys, row, &sealed)?;
            let record = codec::decode_circle(&plain)
                .map_err(|e| StoreError::Corrupt(format!("circle row {row}: {e}")))?;
            records.push(record);
        }
        Ok(records)
    }

    /// Inserts or replaces the record for `record.id`; durable on return.
    pub fn put_circle(&self, record: &CircleRecord) -> Result<(), StoreError> {
        let body = codec::encode_circle(&record.id, &record.epoch_keys);
        self.writer.request_blocking(|done| Request::PutCircle {
            id: record.id,
            body,
            done,
        })
    }

    /// Every envelope of `circle`, in the order they were appended.
    pub fn load_envelopes(&self, circle: &CircleId) -> Result<Vec<Envelope>, StoreError> {
        let row = lock_unpoisoned(&self.circles)
            .get(circle)
            .copied()
            .ok_or(StoreError::UnknownCircle(*circle))?;
        let only_this = HashMap::from([(*circle, row)]);
        let mut resolver = db::Resolver::new(&self.keys, &only_this);
        let mut envelopes = Vec::new();
        let conn = lock_unpoisoned(&self.reader);
        db::scan_envelopes(&conn, &mut resolver, Some(row), |_, _, envelope| {
            envelopes.push(envelope)
        })?;
        Ok(envelopes)
    }

    /// The envelope `author` wrote at `seq` in `circle`, if it was appended (committed, or
    /// still queued for the writer). Committed ones are read from disk: the store, not
    /// memory, holds a circle's history.
    pub fn envelope(
        &self,
        circle: &CircleId,
        author: &MemberId,
        seq: u64,
    ) -> Result<Option<Envelope>, StoreError> {
        let (row, prev) = match lock_unpoisoned(&self.index).lookup(circle, author, seq) {
            None => return Ok(None),
            Some(Lookup::Queued(envelope)) => return Ok(Some(envelope)),
            Some(Lookup::Stored { row, prev }) => (row, prev),
        };
        let conn = lock_unpoisoned(&self.reader);
        let (circle_row, author_row, session, sealed): (i64, i64, i64, Vec<u8>) = conn
            .prepare_cached("SELECT circle, author, session, data FROM envelopes WHERE id = ?1")
            .db()?
            .query_row([row], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .db()?;
        let mut sessions = lock_unpoisoned(&self.sessions);
        let key = match sessions.entry(session) {
            std::collections::hash_map::Entry::Occupied(known) => known.into_mut(),
            std::collections::hash_map::Entry::Vacant(new) => {
                new.insert(db::read_session_key(&conn, &self.keys, session)?)
            }
        };
        let compact = db::open_envelope_row(key, row, circle_row, author_row, &sealed)?;
        if compact.seq != seq {
            return Err(StoreError::Corrupt(format!(
                "envelope row {row} has seq {} where {seq} was expected",
                compact.seq
            )));
        }
        Ok(Some(compact.into_envelope(*circle, *author, prev)))
    }

    pub fn writer(&self) -> StoreWriter {
        self.writer.clone()
    }

    /// Flushes queued writes, stops the writer, checkpoints, releases the lock.
    pub fn close(mut self) -> Result<(), StoreError> {
        let result = self.shutdown();
        drop(self); // closes the connections, then releases the lock
        result
    }

    /// Number of transactions the writer has committed (for tests of group commit).
    #[doc(hidden)]
    pub fn commit_count(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Stops the writer after it has written everything queued before the stop.
    fn shutdown(&mut self) -> Result<(), StoreError> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        let stopped = self.writer.request_blocking(|done| Request::Stop { done });
        if thread.join().is_err() {
            return Err(StoreError::Database(
                "the store's writer thread panicked".into(),
            ));
        }
        stopped
    }
}

impl Drop for Store {
    /// Everything acknowledged is already durable; this only lets queued writes finish and
    /// the writer thread end before the lock is released. Errors have nowhere to go.
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::warn!(error = %e, "closing the store on drop failed");
        }
    }
}

/// Cloneable handle to the writer thread.
#[derive(Clone)]
pub struct StoreWriter {
    /// Bounded: when the writer falls behind, senders wait instead of piling up memory.
    tx: SyncSender<Request>,
    index: Arc<Mutex<EnvelopeIndex>>,
}

impl fmt::Debug for StoreWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreWriter").finish_non_exhaustive()
    }
}

/// Called once the write is durable, or failed.
pub type WriteDone = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

impl StoreWriter {
    /// Queues `envelope` (its circle must have been put); `done` runs when it is durable.
    ///
    /// `done` runs on the writer thread: keep it short, and never call a blocking store method
    /// from it. Blocks only while the queue is full. Refusals (`UnknownCircle`, `OutOfOrder`,
    /// `ChainMismatch`) write nothing; after the store is closed, `done` gets `Closed`.
    pub fn append(&self, envelope: Envelope, done: WriteDone) {
        lock_unpoisoned(&self.index).queue(&envelope);
        let request = Request::Append {
            envelope: Box::new(envelope),
            done: Pending::new(done),
        };
        // If the writer is gone the request comes back and is dropped: its `done` gets `Closed`.
        let _ = self.tx.send(request);
    }

    /// Appends and waits until durable.
    pub fn append_blocking(&self, envelope: Envelope) -> Result<(), StoreError> {
        lock_unpoisoned(&self.index).queue(&envelope);
        self.request_blocking(|done| Request::Append {
            envelope: Box::new(envelope),
            done,
        })
    }

    fn request_blocking(&self, make: impl FnOnce(Pending) -> Request) -> Result<(), StoreError> {
        let (tx, rx) = mpsc::sync_channel(1);
        let done = Pending::new(Box::new(move |result| {
            let _ = tx.send(result);
        }));
        let _ = self.tx.send(make(done));
        rx.recv().unwrap_or(Err(StoreError::Closed))
    }
}
