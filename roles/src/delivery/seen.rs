//! The message ids a node has already handed on, per sender, so that a copy is dropped: one a publisher
//! re-sends because an acknowledgement was late or lost, or one SLIM's session layer replays
//! to a member that joins the group again (it keeps the last 512 SLIM messages sent). With a
//! state directory the record survives restarts, so a participant killed and restarted does not
//! write again what it had already written. Bounded: the last `capacity` ids, in memory and on
//! disk alike.
//!
//! An id is *marked* when it is first handed on (copies arriving meanwhile are dropped) and
//! *done* once the consumer took it and it is acknowledged; only done ids are written to
//! disk, in the same step that lets the acknowledgements go, so whatever a publisher was told
//! arrived is remembered. A mark the consumer gives back (it could not take the message) is
//! forgotten: the copy the publisher sends again is taken.
//!
//! Ids are kept per sender (its MLS-verified name): a member that sends another member's id
//! first has only sent a message of its own, and cannot make the real one pass for a copy.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use redb::{Database, ReadableTable, TableDefinition};
use thiserror::Error;

/// The file in the state directory: the 128-bit keys of done ids (16 bytes each, big-endian),
/// oldest first. Appended to; once it holds twice the capacity, replaced by its last
/// `capacity` keys. A log rather than a B-tree: a write is one `write(2)` of a few keys.
pub const SEEN_FILE: &str = "seen.log";
/// Where earlier versions kept the keys (redb): read once, then deleted.
const LEGACY_FILE: &str = "seen.redb";
/// key: order in which ids were done; value: the id's 128-bit key.
const LEGACY_TABLE: TableDefinition<u64, u128> = TableDefinition::new("seen");
/// Held (locked) while a node uses the directory.
const LOCK_FILE: &str = "seen.lock";
/// Bytes of one key in the file.
const KEY_BYTES: u64 = 16;

/// A record of seen ids that cannot be used.
#[derive(Debug, Error)]
#[error("the record of received messages in {path}: {message}")]
pub struct SeenError {
    path: String,
    message: String,
    in_use: bool,
}

impl SeenError {
    /// Whether another process holds the file (another node, or this node's predecessor
    /// still leaving).
    pub fn in_use(&self) -> bool {
        self.in_use
    }
}

/// 128 bits standing for the id `id` from `sender`: the first half of their SHA-256 (stable
/// across builds and platforms; a cryptographic hash, so that a member cannot craft an id of
/// its own that stands for another member's). Worked out once per message that arrives and
/// carried with it until it is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct SeenKey(u128);

impl SeenKey {
    /// The key of `id` from `sender`.
    pub(crate) fn of(sender: &str, id: &str) -> SeenKey {
        use sha2::Digest;
        let mut hash = sha2::Sha256::new();
        hash.update(sender.as_bytes());
        hash.update([0]);
        hash.update(id.as_bytes());
        let digest = hash.finalize();
        let mut first = [0u8; 16];
        first.copy_from_slice(&digest[..16]);
        SeenKey(u128::from_be_bytes(first))
    }
}

/// What is known of an id that arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sighting {
    /// Never seen (or forgotten): hand it on. It is marked now.
    New,
    /// Handed on and not taken yet: drop the copy; the first one is acknowledged when taken.
    Pending,
    /// Taken and acknowledged before: drop the copy, acknowledge it again.
    Done,
}

/// Ids handed on lately; see the module documentation.
pub(crate) struct Seen {
    inner: Mutex<Inner>,
    disk: Option<Disk>,
}

struct Inner {
    /// id key → whether it is done (acknowledged, and so on disk when there is one), and the
    /// number of its entry in `order`. Hashed with a per-process secret as with std's
    /// `RandomState` (a member chooses its ids, so must not choose where they land), by a
    /// faster hash than SipHash: a key is looked up twice for every message.
    ids: HashMap<u128, (bool, u64), ahash::RandomState>,
    /// Keys with their entry numbers, in the order they were marked, to forget the oldest
    /// first (an entry whose number no longer matches was forgotten and marked again).
    order: VecDeque<(u128, u64)>,
    entries: u64,
    capacity: usize,
}

struct Disk {
    path: PathBuf,
    /// Only one node uses a directory.
    _lock: File,
    file: Mutex<LogFile>,
}

struct LogFile {
    file: File,
    /// Keys in it.
    keys: u64,
    /// A write failed and cutting it back failed too: cut back before the next write.
    ragged: bool,
}

impl Seen {
    /// A record in memory only.
    pub(crate) fn in_memory(capacity: usize) -> Seen {
        Seen {
            inner: Mutex::new(Inner {
                ids: HashMap::default(),
                order: VecDeque::new(),
                entries: 0,
                capacity: capacity.max(1),
            }),
            disk: None,
        }
    }

    /// A record kept in `dir`, holding what an earlier run there had done. Fails when the
    /// file cannot be opened, e.g. because another node uses the same directory.
    pub(crate) fn open(dir: &Path, capacity: usize) -> Result<Seen, SeenError> {
        let path = dir.join(SEEN_FILE);
        let err = |message: String| SeenError {
            path: path.display().to_string(),
            message,
            in_use: false,
        };
        std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
        let lock =
            crate::dir_lock::hold_lock_file(&dir.join(LOCK_FILE)).map_err(|e| SeenError {
                in_use: matches!(e, crate::dir_lock::DirLockError::InUse),
                ..err(e.to_string())
            })?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(|e| err(e.to_string()))?;
        let bytes = std::fs::read(&path).map_err(|e| err(e.to_string()))?;
        let keys = bytes.len() as u64 / KEY_BYTES;
        if !(bytes.len() as u64).is_multiple_of(KEY_BYTES) {
            // A write cut short: what follows must start on a key.
            file.set_len(keys * KEY_BYTES)
                .map_err(|e| err(e.to_string()))?;
        }
        let mut seen = Seen::in_memory(capacity);
        let legacy = read_legacy(&dir.join(LEGACY_FILE)).map_err(err)?;
        {
            let inner = seen.inner.get_mut().unwrap_or_else(|p| p.into_inner());
            // Older than anything in the log, which an earlier version did not write.
            for key in &legacy {
                inner.insert(*key, true);
            }
            for chunk in bytes.chunks_exact(KEY_BYTES as usize) {
                let mut key = [0u8; 16];
                key.copy_from_slice(chunk);
                inner.insert(u128::from_be_bytes(key), true);
            }
        }
        let disk = Disk {
            path: path.clone(),
            _lock: lock,
            file: Mutex::new(LogFile {
                file,
                keys,
                ragged: false,
            }),
        };
        if !legacy.is_empty() {
            disk.write(&legacy, capacity)?;
        }
        if dir.join(LEGACY_FILE).exists() {
            std::fs::remove_file(dir.join(LEGACY_FILE)).map_err(|e| err(e.to_string()))?;
        }
        seen.disk = Some(disk);
        Ok(seen)
    }

    /// How many ids are remembered.
    pub(crate) fn len(&self) -> usize {
        crate::sync::lock(&self.inner).ids.len()
    }

    /// What is known of the id `key` stands for; a new one is marked as handed on.
    pub(crate) fn sight(&self, key: SeenKey) -> Sighting {
        let SeenKey(key) = key;
        let mut inner = crate::sync::lock(&self.inner);
        match inner.ids.get(&key) {
            Some((true, _)) => Sighting::Done,
            Some((false, _)) => Sighting::Pending,
            None => {
                inner.insert(key, false);
                Sighting::New
            }
        }
    }

    /// Forgets the mark of the id `key` stands for, handed on but not taken: a copy is taken
    /// again.
    pub(crate) fn forget(&self, key: SeenKey) {
        let SeenKey(key) = key;
        let mut inner = crate::sync::lock(&self.inner);
        if inner.ids.get(&key).is_some_and(|(done, _)| !done) {
            inner.ids.remove(&key);
        }
    }

    /// Records marked ids as done: acknowledged to their publisher. With a state directory
    /// they are written (without fsync: a crash of the process keeps them, a power loss may
    /// not) before this returns, so call it before the acknowledgements leave.
    pub(crate) fn done(&self, keys: impl IntoIterator<Item = SeenKey>) -> Result<(), SeenError> {
        let mut fresh = Vec::new();
        {
            let mut inner = crate::sync::lock(&self.inner);
            for SeenKey(key) in keys {
                // Ids done already, or never marked (forgotten beyond the capacity), are skipped.
                if let Some((done, _)) = inner.ids.get_mut(&key).filter(|(done, _)| !*done) {
                    *done = true;
                    fresh.push(key);
                }
            }
        }
        match (&self.disk, fresh.is_empty()) {
            (Some(disk), false) => disk.write(&fresh, crate::sync::lock(&self.inner).capacity),
            _ => Ok(()),
        }
    }
}

impl Inner {
    fn insert(&mut self, key: u128, done: bool) {
        if self.order.len() >= self.capacity {
            if let Some((old, entry)) = self.order.pop_front() {
                if self.ids.get(&old).is_some_and(|(_, e)| *e == entry) {
                    self.ids.remove(&old);
                }
            }
        }
        self.entries += 1;
        self.ids.insert(key, (done, self.entries));
        self.order.push_back((key, self.entries));
    }
}

impl Disk {
    fn error(&self, e: impl std::fmt::Display) -> SeenError {
        SeenError {
            path: self.path.display().to_string(),
            message: e.to_string(),
            in_use: false,
        }
    }

    /// Appends `keys` (written through to the OS: survives kill -9, not fsynced); once the
    /// file holds twice `capacity`, replaces it with its last `capacity` keys.
    fn write(&self, keys: &[u128], capacity: usize) -> Result<(), SeenError> {
        let mut log = crate::sync::lock(&self.file);
        let bytes: Vec<u8> = keys.iter().flat_map(|k| k.to_be_bytes()).collect();
        let whole = log.keys * KEY_BYTES;
        if log.ragged {
            log.file.set_len(whole).map_err(|e| self.error(e))?;
            log.ragged = false;
        }
        if let Err(e) = log.file.write_all(&bytes) {
            // Cut off a part written: the next write starts on a key.
            log.ragged = log.file.set_len(whole).is_err();
            return Err(self.error(e));
        }
        log.keys += keys.len() as u64;
        let capacity = capacity as u64;
        if log.keys >= 2 * capacity.max(1024) {
            let mut last = vec![0u8; (capacity * KEY_BYTES) as usize];
            log.file
                .read_exact_at(&mut last, (log.keys - capacity) * KEY_BYTES)
                .map_err(|e| self.error(e))?;
            let next = self.path.with_extension("log.next");
            std::fs::write(&next, &last).map_err(|e| self.error(e))?;
            std::fs::rename(&next, &self.path).map_err(|e| self.error(e))?;
            log.file = OpenOptions::new()
                .read(true)
                .append(true)
                .open(&self.path)
                .map_err(|e| self.error(e))?;
            log.keys = capacity;
        }
        Ok(())
    }
}

/// The keys an earlier version kept in redb at `path`, oldest first; none without the file.
fn read_legacy(path: &Path) -> Result<Vec<u128>, String> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let db = Database::create(path).map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => {
            "in use by another process: give each node its own --data-dir".to_string()
        }
        other => other.to_string(),
    })?;
    let read = db.begin_read().map_err(|e| e.to_string())?;
    let table = match read.open_table(LEGACY_TABLE) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.to_string()),
    };
    let mut keys = Vec::new();
    for row in table.iter().map_err(|e| e.to_string())? {
        let (_, key) = row.map_err(|e| e.to_string())?;
        keys.push(key.value());
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "3250f502-0d8e-4a3c-9a57-8f1c2b7e0a11";
    const B: &str = "5e0c1a9b-2f44-4d0b-8a6e-1b2c3d4e5f60";
    const C: &str = "7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
    /// The sender of the messages in these tests.
    const S: &str = "org/ns/moderator";

    #[test]
    fn the_same_id_from_another_sender_is_another_message() {
        let seen = Seen::in_memory(10);
        // A member that replays another member's id first...
        assert_eq!(seen.sight(SeenKey::of("org/ns/rogue", A)), Sighting::New);
        seen.done([SeenKey::of("org/ns/rogue", A)]).unwrap();
        // ...does not make the real message pass for a copy.
        assert_eq!(seen.sight(SeenKey::of(S, A)), Sighting::New);
        assert_eq!(seen.sight(SeenKey::of(S, A)), Sighting::Pending);
    }

    #[test]
    fn a_copy_of_a_marked_id_is_recognised() {
        let seen = Seen::in_memory(10);
        assert_eq!(seen.sight(SeenKey::of(S, A)), Sighting::New);
        assert_eq!(seen.sight(SeenKey::of(S, A)), Sighting::Pending);
        seen.done([SeenKey::of(S, A)]).unwrap();
        assert_eq!(seen.sight(SeenKey::of(S, A)), Sighting::Done);
        assert_eq!(seen.sight(SeenKey::of(S, B)), Sighting::New);
    }

    #[test]
    fn a_forgotten_mark_lets_the_next_copy_in() {
        let seen = Seen::in_memory(10);
        assert_eq!(seen.sight(SeenKey::of(S, A)), Sighting::New);
        seen.forget(SeenKey::of(S, A));
        assert_eq!(seen.sight(SeenKey::of(S, A)), Sighting::New);
        seen.done([SeenKey::of(S, A)]).unwrap();
        seen.forget(SeenKey::of(S, A));
        assert_eq!(
            seen.sight(SeenKey::of(S, A)),
            Sighting::Done,
            "a done id stays done"
        );
    }

    #[test]
    fn an_id_marked_again_is_not_evicted_by_its_old_entry() {
        let seen = Seen::in_memory(2);
        seen.sight(SeenKey::of(S, A));
        seen.forget(SeenKey::of(S, A));
        seen.sight(SeenKey::of(S, B));
        seen.sight(SeenKey::of(S, A));
        seen.sight(SeenKey::of(S, C)); // evicts A's first entry, which is stale
        assert_eq!(seen.sight(SeenKey::of(S, A)), Sighting::Pending);
    }

    #[test]
    fn ids_that_are_not_uuids_are_told_apart() {
        let seen = Seen::in_memory(10);
        assert_eq!(seen.sight(SeenKey::of(S, "msg-1")), Sighting::New);
        assert_eq!(seen.sight(SeenKey::of(S, "msg-2")), Sighting::New);
        assert_eq!(seen.sight(SeenKey::of(S, "msg-1")), Sighting::Pending);
        assert_ne!(SeenKey::of(S, "msg-1"), SeenKey::of(S, "msg-2"));
    }

    #[test]
    fn the_oldest_ids_are_forgotten_beyond_the_capacity() {
        let seen = Seen::in_memory(2);
        for id in [A, B, C] {
            assert_eq!(seen.sight(SeenKey::of(S, id)), Sighting::New);
        }
        assert_eq!(seen.len(), 2);
        assert_eq!(
            seen.sight(SeenKey::of(S, A)),
            Sighting::New,
            "forgotten once the window moved on"
        );
    }

    #[test]
    fn done_ids_survive_a_restart_and_marked_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        {
            let seen = Seen::open(dir.path(), 10).unwrap();
            seen.sight(SeenKey::of(S, A));
            seen.sight(SeenKey::of(S, B));
            seen.done([SeenKey::of(S, A)]).unwrap();
        }
        let seen = Seen::open(dir.path(), 10).unwrap();
        assert_eq!(
            seen.sight(SeenKey::of(S, A)),
            Sighting::Done,
            "acknowledged before the restart"
        );
        assert_eq!(
            seen.sight(SeenKey::of(S, B)),
            Sighting::New,
            "handed on but never acknowledged: its publisher sends it again"
        );
    }

    #[test]
    fn an_id_done_before_it_was_marked_is_not_taken_for_a_copy() {
        let seen = Seen::in_memory(10);
        seen.done([SeenKey::of(S, A)]).unwrap();
        assert_eq!(seen.sight(SeenKey::of(S, A)), Sighting::New);
    }

    #[test]
    fn the_file_keeps_only_the_last_ids() {
        let dir = tempfile::tempdir().unwrap();
        {
            let seen = Seen::open(dir.path(), 2).unwrap();
            for id in [A, B, C] {
                seen.sight(SeenKey::of(S, id));
                seen.done([SeenKey::of(S, id)]).unwrap();
            }
        }
        let seen = Seen::open(dir.path(), 2).unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen.sight(SeenKey::of(S, C)), Sighting::Done);
        assert_eq!(seen.sight(SeenKey::of(S, B)), Sighting::Done);
        assert_eq!(
            seen.sight(SeenKey::of(S, A)),
            Sighting::New,
            "the oldest was removed from the file"
        );
    }

    #[test]
    fn the_file_is_cut_back_to_the_last_ids_once_it_holds_twice_as_many() {
        let dir = tempfile::tempdir().unwrap();
        let ids: Vec<String> = (0..2100).map(|i| format!("id-{i}")).collect();
        {
            let seen = Seen::open(dir.path(), 1024).unwrap();
            for id in &ids {
                seen.sight(SeenKey::of(S, id));
                seen.done([SeenKey::of(S, id)]).unwrap();
            }
        }
        let len = std::fs::metadata(dir.path().join(SEEN_FILE)).unwrap().len();
        assert!(len < 2048 * KEY_BYTES, "{len} bytes");
        let seen = Seen::open(dir.path(), 1024).unwrap();
        assert_eq!(seen.sight(SeenKey::of(S, &ids[2099])), Sighting::Done);
        assert_eq!(
            seen.sight(SeenKey::of(S, &ids[2100 - 1024])),
            Sighting::Done
        );
        assert_eq!(seen.sight(SeenKey::of(S, &ids[0])), Sighting::New);
    }

    #[test]
    fn a_write_cut_short_leaves_the_ids_before_it() {
        let dir = tempfile::tempdir().unwrap();
        {
            let seen = Seen::open(dir.path(), 10).unwrap();
            seen.sight(SeenKey::of(S, A));
            seen.done([SeenKey::of(S, A)]).unwrap();
        }
        let mut file = OpenOptions::new()
            .append(true)
            .open(dir.path().join(SEEN_FILE))
            .unwrap();
        file.write_all(&[7; 5]).unwrap();
        {
            let seen = Seen::open(dir.path(), 10).unwrap();
            assert_eq!(seen.sight(SeenKey::of(S, A)), Sighting::Done);
            seen.sight(SeenKey::of(S, B));
            seen.done([SeenKey::of(S, B)]).unwrap();
        }
        let seen = Seen::open(dir.path(), 10).unwrap();
        assert_eq!(
            seen.sight(SeenKey::of(S, B)),
            Sighting::Done,
            "written on a key boundary"
        );
    }

    #[test]
    fn what_an_earlier_version_recorded_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Database::create(dir.path().join(LEGACY_FILE)).unwrap();
            let write = db.begin_write().unwrap();
            {
                let mut table = write.open_table(LEGACY_TABLE).unwrap();
                table.insert(0, SeenKey::of(S, A).0).unwrap();
            }
            write.commit().unwrap();
        }
        {
            let seen = Seen::open(dir.path(), 10).unwrap();
            assert_eq!(seen.sight(SeenKey::of(S, A)), Sighting::Done);
        }
        assert!(!dir.path().join(LEGACY_FILE).exists());
        let seen = Seen::open(dir.path(), 10).unwrap();
        assert_eq!(
            seen.sight(SeenKey::of(S, A)),
            Sighting::Done,
            "moved to the log"
        );
    }

    #[test]
    fn a_directory_in_use_is_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Seen::open(dir.path(), 10).unwrap();
        let err = Seen::open(dir.path(), 10).err().expect("second open fails");
        assert!(err.in_use());
        assert!(err.to_string().contains("another process"), "{err}");
    }
}
