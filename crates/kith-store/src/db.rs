//! The SQLite side: schema, the checks run before trusting a database file, the sealing of
//! each kind of row, and the scan that rebuilds envelopes from their compact rows.
//!
//! Sealing keys and nonces (all XChaCha20-Poly1305 through kith-crypto):
//!
//! | rows                  | key                                   | nonce                  | associated data                 |
//! |-----------------------|---------------------------------------|------------------------|---------------------------------|
//! | `meta`                | meta subkey of the master key         | random, stored         | "meta" + row name               |
//! | `circles`, `authors`  | meta subkey                           | random, stored         | kind + row id (+ circle row)    |
//! | `envelopes`           | subkey of the master key for the row's writer session (session salt) | row id | circle row, author row, row id |

use std::collections::HashMap;
use std::path::Path;

use kith_crypto::{
    CircleId, CryptoError, Envelope, Hash, MemberId, Secret, derive_subkey, open_random_nonce,
    open_with_nonce, seal_random_nonce, seal_with_nonce,
};
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, params};
use zeroize::Zeroizing;

use crate::StoreError;
use crate::codec::CompactEnvelope;

/// Version of the table layout below, kept (sealed) in `meta`.
pub(crate) const SCHEMA_VERSION: u32 = 1;

/// Names and integers only: every column that means anything is a sealed blob.
const SCHEMA: &str = "
CREATE TABLE meta(name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE sessions(id INTEGER PRIMARY KEY, salt BLOB NOT NULL);
CREATE TABLE circles(id INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE authors(id INTEGER PRIMARY KEY, circle INTEGER NOT NULL REFERENCES circles(id), data BLOB NOT NULL);
CREATE TABLE envelopes(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    circle INTEGER NOT NULL REFERENCES circles(id),
    author INTEGER NOT NULL REFERENCES authors(id),
    session INTEGER NOT NULL REFERENCES sessions(id),
    data BLOB NOT NULL
);
";
const TABLES: [&str; 5] = ["meta", "sessions", "circles", "authors", "envelopes"];

pub(crate) const META_SCHEMA: &str = "schema";
pub(crate) const META_IDENTITY: &str = "identity";
pub(crate) const META_NAME: &str = "name";

/// Length of a writer session's salt.
pub(crate) const SESSION_SALT_LEN: usize = 16;

/// Maps SQLite's own verdict of damage to [`StoreError::Corrupt`], everything else to
/// [`StoreError::Database`].
pub(crate) fn map_db_err(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseCorrupt) => {
            StoreError::Corrupt(format!("store.db is malformed ({e})"))
        }
        Some(ErrorCode::NotADatabase) => {
            StoreError::Corrupt(format!("store.db is not a database ({e})"))
        }
        _ => StoreError::Database(e.to_string()),
    }
}

pub(crate) trait DbResultExt<T> {
    fn db(self) -> Result<T, StoreError>;
}
impl<T> DbResultExt<T> for rusqlite::Result<T> {
    fn db(self) -> Result<T, StoreError> {
        self.map_err(map_db_err)
    }
}

/// The subkeys of the master key that the process keeps while the store is open.
pub(crate) struct Keys {
    master: Secret<32>,
    meta: Secret<32>,
}

impl Keys {
    pub(crate) fn new(master: Secret<32>) -> Keys {
        let meta = derive_subkey(&master, "kith-store meta v1", b"");
        Keys { master, meta }
    }

    /// The key of one writer session; a fresh salt per `open` means a fresh key, so row ids
    /// can serve as nonces even if a restored backup makes ids repeat.
    pub(crate) fn session_key(&self, salt: &[u8]) -> Secret<32> {
        derive_subkey(&self.master, "kith-store envelopes v1", salt)
    }
}

fn meta_aad(name: &str) -> Vec<u8> {
    [b"kith-store meta\0".as_slice(), name.as_bytes()].concat()
}

pub(crate) fn circle_aad(row: i64) -> Vec<u8> {
    [b"kith-store circle\0".as_slice(), &row.to_le_bytes()].concat()
}

pub(crate) fn author_aad(row: i64, circle_row: i64) -> Vec<u8> {
    [
        b"kith-store author\0".as_slice(),
        &row.to_le_bytes(),
        &circle_row.to_le_bytes(),
    ]
    .concat()
}

pub(crate) fn envelope_aad(circle_row: i64, author_row: i64, row: i64) -> [u8; 24] {
    let mut aad = [0u8; 24];
    for (dst, src) in aad.chunks_exact_mut(8).zip([circle_row, author_row, row]) {
        dst.copy_from_slice(&src.to_le_bytes());
    }
    aad
}

/// The row id, little endian, zero-padded: unique per row within a session key.
pub(crate) fn envelope_nonce(row: i64) -> [u8; 24] {
    let mut nonce = [0u8; 24];
    for (dst, src) in nonce.iter_mut().zip(row.to_le_bytes()) {
        *dst = src;
    }
    nonce
}

pub(crate) fn seal_envelope(
    key: &Secret<32>,
    circle_row: i64,
    author_row: i64,
    row: i64,
    compact: &[u8],
) -> Vec<u8> {
    seal_with_nonce(
        key,
        &envelope_nonce(row),
        &envelope_aad(circle_row, author_row, row),
        compact,
    )
}

fn unseal(
    key: &Secret<32>,
    aad: &[u8],
    sealed: &[u8],
    what: &str,
) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    open_random_nonce(key, aad, sealed).map_err(|e| describe_open_error(e, what))
}

fn describe_open_error(e: CryptoError, what: &str) -> StoreError {
    StoreError::Corrupt(format!("{what} does not decrypt under this key file ({e})"))
}

pub(crate) fn seal_meta<R: rand::CryptoRng + ?Sized>(
    keys: &Keys,
    name: &str,
    value: &[u8],
    rng: &mut R,
) -> Vec<u8> {
    seal_random_nonce(&keys.meta, &meta_aad(name), value, rng)
}

pub(crate) fn seal_circle<R: rand::CryptoRng + ?Sized>(
    keys: &Keys,
    row: i64,
    body: &[u8],
    rng: &mut R,
) -> Vec<u8> {
    seal_random_nonce(&keys.meta, &circle_aad(row), body, rng)
}

pub(crate) fn open_circle(
    keys: &Keys,
    row: i64,
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    unseal(
        &keys.meta,
        &circle_aad(row),
        sealed,
        &format!("circle row {row}"),
    )
}

pub(crate) fn seal_author<R: rand::CryptoRng + ?Sized>(
    keys: &Keys,
    row: i64,
    circle_row: i64,
    member: &MemberId,
    rng: &mut R,
) -> Vec<u8> {
    seal_random_nonce(&keys.meta, &author_aad(row, circle_row), &member.0, rng)
}

fn open_author(
    keys: &Keys,
    row: i64,
    circle_row: i64,
    sealed: &[u8],
) -> Result<MemberId, StoreError> {
    let plain = unseal(
        &keys.meta,
        &author_aad(row, circle_row),
        sealed,
        &format!("author row {row}"),
    )?;
    let bytes: [u8; 32] = plain.as_slice().try_into().map_err(|_| {
        StoreError::Corrupt(format!(
            "author row {row} holds a member id of the wrong length"
        ))
    })?;
    Ok(MemberId(bytes))
}

/// Opens an existing database file read-write without ever creating it, and checks it
/// before anything is written: `PRAGMA quick_check`, the tables, the schema version.
/// While checking, the connection is told not to checkpoint on close, so a file that fails
/// the checks is left byte for byte as it was.
pub(crate) fn open_checked(path: &Path, keys: &Keys) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).db()?;
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    )
    .db()?;
    conn.busy_timeout(std::time::Duration::from_secs(10)).db()?;

    let verdict: Vec<String> = {
        let mut stmt = conn.prepare("PRAGMA quick_check").db()?;
        let rows = stmt.query_map([], |row| row.get::<_, String>(0)).db()?;
        rows.collect::<rusqlite::Result<_>>().db()?
    };
    if verdict.as_slice() != ["ok"] {
        let first = verdict.first().map(String::as_str).unwrap_or("no verdict");
        return Err(StoreError::Corrupt(format!(
            "store.db fails its integrity check: {first}"
        )));
    }

    let tables: Vec<String> = {
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
            .db()?;
        let rows = stmt.query_map([], |row| row.get::<_, String>(0)).db()?;
        rows.collect::<rusqlite::Result<_>>().db()?
    };
    if tables.is_empty() {
        return Err(StoreError::Corrupt(
            "store.db is empty (truncated, or never finished being created)".into(),
        ));
    }
    for table in TABLES {
        if !tables.iter().any(|t| t == table) {
            return Err(StoreError::Corrupt(format!(
                "store.db lacks the {table} table"
            )));
        }
    }
    let version = read_meta(&conn, keys, META_SCHEMA)?
        .ok_or_else(|| StoreError::Corrupt("store.db has no schema version".into()))?;
    let version = <[u8; 4]>::try_from(version.as_slice())
        .map(u32::from_le_bytes)
        .map_err(|_| StoreError::Corrupt("store.db has a garbled schema version".into()))?;
    if version != SCHEMA_VERSION {
        return Err(StoreError::Corrupt(format!(
            "store.db has schema version {version}, this build reads {SCHEMA_VERSION}"
        )));
    }

    // The file passed: from here on it is ours to write.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        false,
    )
    .db()?;
    configure(&conn)?;
    Ok(conn)
}

/// Per-connection settings: WAL (readers never block the writer), fsync at every commit,
/// foreign keys enforced, and a 512 KiB page cache instead of SQLite's 2 MiB: the store is
/// read whole once at start and written append-only, so a big cache only holds memory.
fn configure(conn: &Connection) -> Result<(), StoreError> {
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))
        .db()?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Database(format!(
            "could not switch store.db to WAL (got {mode})"
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL").db()?;
    conn.pragma_update(None, "foreign_keys", true).db()?;
    conn.pragma_update(None, "cache_size", -512).db()?;
    conn.busy_timeout(std::time::Duration::from_secs(10)).db()?;
    Ok(())
}

/// A second connection for reads, opened after [`open_checked`] passed. It refuses writes.
pub(crate) fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).db()?;
    configure(&conn)?;
    conn.pragma_update(None, "query_only", true).db()?;
    Ok(conn)
}

/// Creates the schema and the meta rows in a file `create` has just made (empty, 0600).
pub(crate) fn create_db<R: rand::CryptoRng + ?Sized>(
    path: &Path,
    keys: &Keys,
    identity: &Secret<32>,
    name: &str,
    rng: &mut R,
) -> Result<(), StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(path, flags).db()?;
    configure(&conn)?;
    let tx = conn.transaction().db()?;
    tx.execute_batch(SCHEMA).db()?;
    let rows: [(&str, &[u8]); 3] = [
        (META_SCHEMA, &SCHEMA_VERSION.to_le_bytes()),
        (META_IDENTITY, identity.expose_secret()),
        (META_NAME, name.as_bytes()),
    ];
    for (row, value) in rows {
        let sealed = seal_meta(keys, row, value, rng);
        tx.execute(
            "INSERT INTO meta(name, value) VALUES (?1, ?2)",
            params![row, sealed],
        )
        .db()?;
    }
    tx.commit().db()?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .db()?;
    conn.close().map_err(|(_, e)| map_db_err(e))?;
    Ok(())
}

/// One sealed `meta` value, decrypted; `None` if the row is absent.
pub(crate) fn read_meta(
    conn: &Connection,
    keys: &Keys,
    name: &str,
) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
    let sealed: Option<Vec<u8>> = conn
        .query_row("SELECT value FROM meta WHERE name = ?1", [name], |row| {
            row.get(0)
        })
        .optional()
        .db()?;
    sealed
        .map(|sealed| {
            unseal(
                &keys.meta,
                &meta_aad(name),
                &sealed,
                &format!("meta row {name}"),
            )
        })
        .transpose()
}

/// The circle map: circle ids are only inside sealed rows, so finding one means decrypting
/// the (few) rows once and keeping the map.
pub(crate) fn load_circle_rows(
    conn: &Connection,
    keys: &Keys,
) -> Result<HashMap<CircleId, i64>, StoreError> {
    let mut map = HashMap::new();
    for (row, sealed) in query_blobs(conn, "SELECT id, data FROM circles")? {
        let plain = open_circle(keys, row, &sealed)?;
        let id = crate::codec::decode_circle(&plain)
            .map_err(|e| StoreError::Corrupt(format!("circle row {row}: {e}")))?
            .id;
        if map.insert(id, row).is_some() {
            return Err(StoreError::Corrupt(format!(
                "circle row {row} repeats another row's circle"
            )));
        }
    }
    Ok(map)
}

fn query_blobs(conn: &Connection, sql: &str) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
    let mut stmt = conn.prepare(sql).db()?;
    let rows = stmt
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .db()?;
    rows.collect::<rusqlite::Result<_>>().db()
}

/// Every author row: (author row → (circle row, member)).
pub(crate) fn load_authors(
    conn: &Connection,
    keys: &Keys,
) -> Result<HashMap<i64, (i64, MemberId)>, StoreError> {
    let mut stmt = conn.prepare("SELECT id, circle, data FROM authors").db()?;
    let rows = stmt
        .query_map([], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, Vec<u8>>(2)?,
            ))
        })
        .db()?;
    let mut map = HashMap::new();
    for row in rows {
        let (id, circle, sealed) = row.db()?;
        map.insert(id, (circle, open_author(keys, id, circle, &sealed)?));
    }
    Ok(map)
}

/// Next free id of a table whose ids we assign ourselves (we are the only writer). For
/// `envelopes` this also respects `sqlite_sequence`, so ids are never reused.
pub(crate) fn next_id(conn: &Connection, table: &str) -> Result<i64, StoreError> {
    let max: i64 = conn
        .query_row(
            &format!("SELECT coalesce(max(id), 0) FROM {table}"),
            [],
            |row| row.get(0),
        )
        .db()?;
    let seq: i64 = conn
        .query_row(
            "SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = ?1",
            [table],
            |row| row.get(0),
        )
        .optional()
        .db()?
        .unwrap_or(0);
    Ok(max.max(seq) + 1)
}

/// The latest envelope of one author chain: what the next one must follow.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Head {
    pub seq: u64,
    pub hash: Hash,
}

/// Resolves what rows only name by number, fetching lazily: author rows (→ circle row and
/// member) and session rows (→ key).
pub(crate) struct Resolver<'k> {
    keys: &'k Keys,
    circle_ids: HashMap<i64, CircleId>,
    authors: HashMap<i64, (i64, MemberId)>,
    sessions: HashMap<i64, Secret<32>>,
}

impl<'k> Resolver<'k> {
    pub(crate) fn new(keys: &'k Keys, circles: &HashMap<CircleId, i64>) -> Resolver<'k> {
        let circle_ids = circles.iter().map(|(id, row)| (*row, *id)).collect();
        Resolver {
            keys,
            circle_ids,
            authors: HashMap::new(),
            sessions: HashMap::new(),
        }
    }

    fn author(&mut self, conn: &Connection, row: i64) -> Result<(i64, MemberId), StoreError> {
        if let Some(found) = self.authors.get(&row) {
            return Ok(*found);
        }
        let (circle, sealed): (i64, Vec<u8>) = conn
            .query_row(
                "SELECT circle, data FROM authors WHERE id = ?1",
                [row],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .db()?
            .ok_or_else(|| StoreError::Corrupt(format!("author row {row} is missing")))?;
        let found = (circle, open_author(self.keys, row, circle, &sealed)?);
        self.authors.insert(row, found);
        Ok(found)
    }

    fn session_key(&mut self, conn: &Connection, session: i64) -> Result<&Secret<32>, StoreError> {
        if !self.sessions.contains_key(&session) {
            self.sessions
                .insert(session, read_session_key(conn, self.keys, session)?);
        }
        self.sessions
            .get(&session)
            .ok_or_else(|| StoreError::Corrupt(format!("session row {session} is missing")))
    }
}

/// The key of writer session `session`, from its salt.
pub(crate) fn read_session_key(
    conn: &Connection,
    keys: &Keys,
    session: i64,
) -> Result<Secret<32>, StoreError> {
    let salt: Vec<u8> = conn
        .query_row("SELECT salt FROM sessions WHERE id = ?1", [session], |r| {
            r.get(0)
        })
        .optional()
        .db()?
        .ok_or_else(|| StoreError::Corrupt(format!("session row {session} is missing")))?;
    if salt.len() != SESSION_SALT_LEN {
        return Err(StoreError::Corrupt(format!(
            "session row {session} has a salt of the wrong length"
        )));
    }
    Ok(keys.session_key(&salt))
}

/// Decrypts and decodes the sealed body of envelope row `id`.
pub(crate) fn open_envelope_row(
    key: &Secret<32>,
    id: i64,
    circle_row: i64,
    author_row: i64,
    sealed: &[u8],
) -> Result<CompactEnvelope, StoreError> {
    let plain = open_with_nonce(
        key,
        &envelope_nonce(id),
        &envelope_aad(circle_row, author_row, id),
        sealed,
    )
    .map_err(|e| describe_open_error(e, &format!("envelope row {id}")))?;
    CompactEnvelope::decode(&plain)
        .map_err(|e| StoreError::Corrupt(format!("envelope row {id}: {e}")))
}

/// Decrypts the envelope rows (of one circle, or all), in append order, rebuilding each
/// `prev` from the author's chain, and hands each envelope with its row id and hash to `each`.
/// Returns the head of every author chain seen. A chain that is not 1, 2, 3, … is damage.
pub(crate) fn scan_envelopes(
    conn: &Connection,
    resolver: &mut Resolver<'_>,
    circle: Option<i64>,
    mut each: impl FnMut(i64, Hash, Envelope),
) -> Result<HashMap<i64, Head>, StoreError> {
    let mut heads: HashMap<i64, Head> = HashMap::new();
    let mut stmt = conn
        .prepare(
            "SELECT id, circle, author, session, data FROM envelopes
             WHERE ?1 IS NULL OR circle = ?1 ORDER BY id",
        )
        .db()?;
    let mut rows = stmt.query([circle]).db()?;
    while let Some(row) = rows.next().db()? {
        let id: i64 = row.get(0).db()?;
        let circle_row: i64 = row.get(1).db()?;
        let author_row: i64 = row.get(2).db()?;
        let session: i64 = row.get(3).db()?;
        let sealed: Vec<u8> = row.get(4).db()?;

        let (author_circle, author) = resolver.author(conn, author_row)?;
        if author_circle != circle_row {
            return Err(StoreError::Corrupt(format!(
                "envelope row {id} and its author disagree on the circle"
            )));
        }
        let circle_id = *resolver.circle_ids.get(&circle_row).ok_or_else(|| {
            StoreError::Corrupt(format!("envelope row {id} names a missing circle"))
        })?;
        let key = resolver.session_key(conn, session)?;
        let compact = open_envelope_row(key, id, circle_row, author_row, &sealed)?;

        let last = heads.get(&author_row);
        let expected = last.map_or(1, |h| h.seq.saturating_add(1));
        if compact.seq != expected {
            return Err(StoreError::Corrupt(format!(
                "envelope row {id} has seq {} where its author's chain needs {expected}",
                compact.seq
            )));
        }
        let envelope = compact.into_envelope(circle_id, author, last.map_or([0; 32], |h| h.hash));
        let hash = envelope.hash();
        heads.insert(
            author_row,
            Head {
                seq: envelope.header.seq,
                hash,
            },
        );
        each(id, hash, envelope);
    }
    Ok(heads)
}
