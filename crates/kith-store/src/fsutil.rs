//! File-system helpers: private home directory, the exclusive lock, durable file placement and
//! erasure. Everything here is Unix-first (modes 0700/0600); other platforms get the same
//! behaviour minus the modes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use rand::Rng;

use crate::{LOCK_FILE, StoreError};

/// Opens `path` for writing with mode 0600, failing if it exists: nothing of ours is ever
/// written through a file someone else created.
pub(crate) fn create_new_private(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// Makes `home` if missing (mode 0700), or tightens it to 0700 if it exists and is empty
/// (a fresh directory someone made for us). A non-empty directory keeps its mode: it may be
/// shared with something else and is not ours to change.
pub(crate) fn prepare_home(home: &Path) -> Result<(), StoreError> {
    match fs::symlink_metadata(home) {
        Ok(meta) if meta.is_dir() => {
            if fs::read_dir(home)?.next().is_none() {
                set_private_dir(home)?;
            }
            Ok(())
        }
        Ok(_) => Err(StoreError::Io(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a directory", home.display()),
        ))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let mut builder = fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt;
                builder.mode(0o700);
            }
            builder.create(home)?;
            set_private_dir(home)?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

fn set_private_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Takes the exclusive lock on `home/lock`; the returned file holds it until dropped.
/// `flock`-style locks belong to the open file, so a second `open` in the same process is
/// refused just like one from another process.
///
/// A refusal is retried for a moment before it is final: when another thread of this
/// process starts a child process, the child holds a copy of every open file (the lock's
/// too) from its fork until its exec, so a lock released just before that fork can still
/// look held for a few milliseconds.
pub(crate) fn take_lock(home: &Path) -> Result<File, StoreError> {
    const ATTEMPTS: u32 = 20;
    const PAUSE: std::time::Duration = std::time::Duration::from_millis(10);
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(home.join(LOCK_FILE))?;
    for attempt in 1..=ATTEMPTS {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(fs::TryLockError::WouldBlock) if attempt < ATTEMPTS => std::thread::sleep(PAUSE),
            Err(fs::TryLockError::WouldBlock) => break,
            Err(fs::TryLockError::Error(e)) => return Err(e.into()),
        }
    }
    Err(StoreError::Locked(home.to_path_buf()))
}

/// Makes renames, links and removals inside `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Writes `bytes` to `path` atomically and without replacing an existing file: a temporary
/// file is written and synced, then hard-linked into place (which fails if `path` exists),
/// then the directory is synced. A crash leaves either no file at `path` or the whole file.
pub(crate) fn place_new_file(
    dir: &Path,
    tmp_name: &str,
    name: &str,
    bytes: &[u8],
) -> Result<(), StoreError> {
    let tmp = dir.join(tmp_name);
    let target = dir.join(name);
    {
        let mut file = create_new_private(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    let linked = match fs::hard_link(&tmp, &target) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            Err(StoreError::AlreadyInitialized(dir.to_path_buf()))
        }
        // File systems without hard links: the caller holds the lock and has checked that
        // `target` is absent, so a rename is equally safe here.
        Err(_) if !target.exists() => fs::rename(&tmp, &target).map_err(StoreError::from),
        Err(e) => Err(e.into()),
    };
    if let Err(e) = linked {
        // The temporary file holds a sealed key: erase it rather than leave it behind.
        let _ = erase_file(&tmp);
        return Err(e);
    }
    remove_if_present(&tmp)?;
    sync_dir(dir)?;
    Ok(())
}

/// Overwrites a file with random bytes of its own length, syncs, then removes it. Missing is
/// fine. The overwrite matters on file systems that reuse blocks in place; on copy-on-write
/// file systems and SSDs it is best effort, which is why the data itself is encrypted.
pub(crate) fn erase_file(path: &Path) -> io::Result<()> {
    let mut file = match OpenOptions::new().write(true).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let mut rng = rand::rng();
    let mut chunk = [0u8; 4096];
    let mut left = len;
    while left > 0 {
        let n = usize::try_from(left.min(chunk.len() as u64)).unwrap_or(chunk.len());
        let part = chunk.get_mut(..n).unwrap_or(&mut []);
        rng.fill_bytes(part);
        file.write_all(part)?;
        left -= n as u64;
    }
    file.sync_all()?;
    drop(file);
    remove_if_present(path)
}

pub(crate) fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}
