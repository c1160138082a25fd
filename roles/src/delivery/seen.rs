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
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use redb::{Database, Durability, ReadableTable, TableDefinition};
use thiserror::Error;

/// key: order in which ids were done; value: the id's 128-bit key.
const TABLE: TableDefinition<u64, u128> = TableDefinition::new("seen");
/// The file in the state directory.
pub const SEEN_FILE: &str = "seen.redb";

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
/// its own that stands for another member's).
fn key(sender: &str, id: &str) -> u128 {
    use sha2::Digest;
    let mut hash = sha2::Sha256::new();
    hash.update(sender.as_bytes());
    hash.update([0]);
    hash.update(id.as_bytes());
    let digest = hash.finalize();
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    u128::from_be_bytes(first)
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
    /// number of its entry in `order`.
    ids: HashMap<u128, (bool, u64)>,
    /// Keys with their entry numbers, in the order they were marked, to forget the oldest
    /// first (an entry whose number no longer matches was forgotten and marked again).
    order: VecDeque<(u128, u64)>,
    entries: u64,
    capacity: usize,
}

struct Disk {
    db: Database,
    path: PathBuf,
    /// Sequence number of the next done id.
    next: Mutex<u64>,
}

impl Seen {
    /// A record in memory only.
    pub(crate) fn in_memory(capacity: usize) -> Seen {
        Seen {
            inner: Mutex::new(Inner {
                ids: HashMap::new(),
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
        let db = Database::create(&path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => SeenError {
                in_use: true,
                ..err("in use by another process: give each node its own --data-dir".into())
            },
            other => err(other.to_string()),
        })?;
        let mut seen = Seen::in_memory(capacity);
        let mut next = 0;
        {
            let read = db.begin_read().map_err(|e| err(e.to_string()))?;
            match read.open_table(TABLE) {
                Ok(table) => {
                    let inner = seen.inner.get_mut().unwrap_or_else(|p| p.into_inner());
                    for row in table.iter().map_err(|e| err(e.to_string()))? {
                        let (seq, id) = row.map_err(|e| err(e.to_string()))?;
                        next = seq.value() + 1;
                        inner.insert(id.value(), true);
                    }
                }
                Err(redb::TableError::TableDoesNotExist(_)) => {}
                Err(e) => return Err(err(e.to_string())),
            }
        }
        seen.disk = Some(Disk {
            db,
            path,
            next: Mutex::new(next),
        });
        Ok(seen)
    }

    /// How many ids are remembered.
    pub(crate) fn len(&self) -> usize {
        crate::sync::lock(&self.inner).ids.len()
    }

    /// What is known of `id` from `sender`; a new one is marked as handed on.
    pub(crate) fn sight(&self, sender: &str, id: &str) -> Sighting {
        let mut inner = crate::sync::lock(&self.inner);
        let key = key(sender, id);
        match inner.ids.get(&key) {
            Some((true, _)) => Sighting::Done,
            Some((false, _)) => Sighting::Pending,
            None => {
                inner.insert(key, false);
                Sighting::New
            }
        }
    }

    /// Forgets the mark of `id` from `sender`, handed on but not taken: a copy is taken again.
    pub(crate) fn forget(&self, sender: &str, id: &str) {
        let mut inner = crate::sync::lock(&self.inner);
        let key = key(sender, id);
        if inner.ids.get(&key).is_some_and(|(done, _)| !done) {
            inner.ids.remove(&key);
        }
    }

    /// Records marked `(sender, id)`s as done: acknowledged to their publisher. With a state
    /// directory they are written (without fsync: a crash of the process keeps them, a power
    /// loss may not) before this returns, so call it before the acknowledgements leave.
    pub(crate) fn done<'a>(
        &self,
        ids: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<(), SeenError> {
        let mut fresh = Vec::new();
        {
            let mut inner = crate::sync::lock(&self.inner);
            for (sender, id) in ids {
                let key = key(sender, id);
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

    /// Appends `keys` and forgets what falls out of the last `capacity`, in one transaction.
    fn write(&self, keys: &[u128], capacity: usize) -> Result<(), SeenError> {
        let mut next = crate::sync::lock(&self.next);
        let mut write = self.db.begin_write().map_err(|e| self.error(e))?;
        // Eventual: written through to the OS at commit (survives kill -9), not fsynced.
        write.set_durability(Durability::Eventual);
        {
            let mut table = write.open_table(TABLE).map_err(|e| self.error(e))?;
            for (i, key) in keys.iter().enumerate() {
                table
                    .insert(*next + i as u64, *key)
                    .map_err(|e| self.error(e))?;
            }
            let end = *next + keys.len() as u64;
            let cutoff = end.saturating_sub(capacity as u64);
            if cutoff > 0 {
                table
                    .retain_in(..cutoff, |_, _| false)
                    .map_err(|e| self.error(e))?;
            }
        }
        write.commit().map_err(|e| self.error(e))?;
        *next += keys.len() as u64;
        Ok(())
    }
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
        assert_eq!(seen.sight("org/ns/rogue", A), Sighting::New);
        seen.done([("org/ns/rogue", A)]).unwrap();
        // ...does not make the real message pass for a copy.
        assert_eq!(seen.sight(S, A), Sighting::New);
        assert_eq!(seen.sight(S, A), Sighting::Pending);
    }

    #[test]
    fn a_copy_of_a_marked_id_is_recognised() {
        let seen = Seen::in_memory(10);
        assert_eq!(seen.sight(S, A), Sighting::New);
        assert_eq!(seen.sight(S, A), Sighting::Pending);
        seen.done([(S, A)]).unwrap();
        assert_eq!(seen.sight(S, A), Sighting::Done);
        assert_eq!(seen.sight(S, B), Sighting::New);
    }

    #[test]
    fn a_forgotten_mark_lets_the_next_copy_in() {
        let seen = Seen::in_memory(10);
        assert_eq!(seen.sight(S, A), Sighting::New);
        seen.forget(S, A);
        assert_eq!(seen.sight(S, A), Sighting::New);
        seen.done([(S, A)]).unwrap();
        seen.forget(S, A);
        assert_eq!(seen.sight(S, A), Sighting::Done, "a done id stays done");
    }

    #[test]
    fn an_id_marked_again_is_not_evicted_by_its_old_entry() {
        let seen = Seen::in_memory(2);
        seen.sight(S, A);
        seen.forget(S, A);
        seen.sight(S, B);
        seen.sight(S, A);
        seen.sight(S, C); // evicts A's first entry, which is stale
        assert_eq!(seen.sight(S, A), Sighting::Pending);
    }

    #[test]
    fn ids_that_are_not_uuids_are_told_apart() {
        let seen = Seen::in_memory(10);
        assert_eq!(seen.sight(S, "msg-1"), Sighting::New);
        assert_eq!(seen.sight(S, "msg-2"), Sighting::New);
        assert_eq!(seen.sight(S, "msg-1"), Sighting::Pending);
        assert_ne!(key(S, "msg-1"), key(S, "msg-2"));
    }

    #[test]
    fn the_oldest_ids_are_forgotten_beyond_the_capacity() {
        let seen = Seen::in_memory(2);
        for id in [A, B, C] {
            assert_eq!(seen.sight(S, id), Sighting::New);
        }
        assert_eq!(seen.len(), 2);
        assert_eq!(
            seen.sight(S, A),
            Sighting::New,
            "forgotten once the window moved on"
        );
    }

    #[test]
    fn done_ids_survive_a_restart_and_marked_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        {
            let seen = Seen::open(dir.path(), 10).unwrap();
            seen.sight(S, A);
            seen.sight(S, B);
            seen.done([(S, A)]).unwrap();
        }
        let seen = Seen::open(dir.path(), 10).unwrap();
        assert_eq!(
            seen.sight(S, A),
            Sighting::Done,
            "acknowledged before the restart"
        );
        assert_eq!(
            seen.sight(S, B),
            Sighting::New,
            "handed on but never acknowledged: its publisher sends it again"
        );
    }

    #[test]
    fn an_id_done_before_it_was_marked_is_not_taken_for_a_copy() {
        let seen = Seen::in_memory(10);
        seen.done([(S, A)]).unwrap();
        assert_eq!(seen.sight(S, A), Sighting::New);
    }

    #[test]
    fn the_file_keeps_only_the_last_ids() {
        let dir = tempfile::tempdir().unwrap();
        {
            let seen = Seen::open(dir.path(), 2).unwrap();
            for id in [A, B, C] {
                seen.sight(S, id);
                seen.done([(S, id)]).unwrap();
            }
        }
        let seen = Seen::open(dir.path(), 2).unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen.sight(S, C), Sighting::Done);
        assert_eq!(seen.sight(S, B), Sighting::Done);
        assert_eq!(
            seen.sight(S, A),
            Sighting::New,
            "the oldest was removed from the file"
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
