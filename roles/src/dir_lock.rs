//! One node per data directory: an exclusive lock on a file in it, held while the node runs
//! and released by the OS when the process ends (kill -9 included).

use std::fs::{File, OpenOptions};
use std::path::Path;

/// A lock file that cannot be held.
#[derive(Debug, thiserror::Error)]
pub enum DirLockError {
    /// Another process holds it (another node, or this node's predecessor still leaving).
    #[error("in use by another process: give each node its own --data-dir")]
    InUse,
    /// The file cannot be opened or locked.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Opens (or creates) `path` and takes its exclusive lock, without waiting; keep the file to
/// keep the lock.
pub fn hold_lock_file(path: &Path) -> Result<File, DirLockError> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(DirLockError::InUse),
        Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
    }
}
