//! The durable, encrypted local store of one node (SQLite, WAL mode, synchronous=FULL).
//!
//! Everything written is ciphertext under keys derived from a master key; the master key is
//! sealed in the key file under a key derived from the passphrase (argon2id). Destroying the
//! key file destroys access to everything (`kith wipe`). Writes go through one writer thread
//! that commits whatever has queued as one transaction (group commit) and acknowledges each
//! write only once it is durable.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing))]

// API SKELETON: bodies are filled in by the kith-store work; signatures are the contract the
// daemon codes against.

use std::path::{Path, PathBuf};

use kith_crypto::{CircleId, Envelope, EpochKey, Secret};

/// File names inside a node's home directory.
pub const KEY_FILE: &str = "keyfile";
pub const DB_FILE: &str = "store.db";
pub const LOCK_FILE: &str = "lock";

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
    #[error("the store is closed")]
    Closed,
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("database error: {0}")]
    Database(String),
}

/// What the store keeps about one circle besides its envelopes.
#[derive(Debug)]
pub struct CircleRecord {
    pub id: CircleId,
    /// Every epoch key this node holds for the circle.
    pub epoch_keys: Vec<(u32, EpochKey)>,
}

/// Creates a new home: the key file and an empty database holding the identity secret and the
/// member's own name. Refuses if one exists.
pub fn create<R: rand::CryptoRng + ?Sized>(home: &Path, passphrase: &[u8], identity: &Secret<32>, name: &str, rng: &mut R) -> Result<(), StoreError> { todo!() }

/// Whether `home` holds a key file.
pub fn is_initialized(home: &Path) -> bool { todo!() }

/// Crypto-erase: overwrites and removes the key file, then removes the database files.
/// Works whether or not a daemon holds the store open.
pub fn wipe(home: &Path) -> Result<(), StoreError> { todo!() }

pub struct Store { /* lock file, read connection, writer handle, keys */ }

impl Store {
    /// Opens the store for the daemon: takes the exclusive lock, unlocks the key file with the
    /// passphrase, checks the database, starts the writer thread.
    pub fn open(home: &Path, passphrase: &[u8]) -> Result<Store, StoreError> { todo!() }
    pub fn identity_secret(&self) -> Result<Secret<32>, StoreError> { todo!() }
    pub fn member_name(&self) -> Result<String, StoreError> { todo!() }
    pub fn circles(&self) -> Result<Vec<CircleRecord>, StoreError> { todo!() }
    /// Inserts or replaces the record for `record.id`; durable on return.
    pub fn put_circle(&self, record: &CircleRecord) -> Result<(), StoreError> { todo!() }
    /// Every envelope of `circle`, in the order they were appended.
    pub fn load_envelopes(&self, circle: &CircleId) -> Result<Vec<Envelope>, StoreError> { todo!() }
    pub fn writer(&self) -> StoreWriter { todo!() }
    /// Flushes queued writes, stops the writer, checkpoints, releases the lock.
    pub fn close(self) -> Result<(), StoreError> { todo!() }
}

/// Cloneable handle to the writer thread.
#[derive(Clone)]
pub struct StoreWriter { /* channel to the writer thread */ }

/// Called once the write is durable, or failed.
pub type WriteDone = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

impl StoreWriter {
    /// Queues `envelope` (its circle must have been put); `done` runs when it is durable.
    pub fn append(&self, envelope: Envelope, done: WriteDone) { todo!() }
    /// Appends and waits until durable.
    pub fn append_blocking(&self, envelope: Envelope) -> Result<(), StoreError> { todo!() }
}
