//! The disk queue of earlier versions, one redb file (`queue.redb`): what it still holds moves
//! into the log once, in order and under the same numbers, and the file is deleted.

use std::path::Path;

use redb::{Database, TableDefinition};

use super::log::{Found, Log};
use super::QueueError;

/// key: sequence number; value: a record ([`super::record`]).
const TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("queue");
/// Records written to the log at once.
const CHUNK: usize = 1024;

/// Moves what `path` holds into `log` (appending to `found`), then deletes `path`. A crash
/// part way leaves the file: the next start moves what is not in the log yet.
pub(super) fn migrate(path: &Path, log: &Log, found: &mut Vec<Found>) -> Result<(), QueueError> {
    if !path.exists() {
        return Ok(());
    }
    let err = |e: &dyn std::fmt::Display| QueueError {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let db = Database::create(path).map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => {
            err(&"in use by another process: give each node its own --data-dir")
        }
        other => err(&other),
    })?;
    let mut moved = 0usize;
    {
        let read = db.begin_read().map_err(|e| err(&e))?;
        match read.open_table(TABLE) {
            Ok(table) => {
                let mut run: Vec<(u64, Vec<u8>)> = Vec::new();
                for row in table.range(log.next()..).map_err(|e| err(&e))? {
                    let (seq, record) = row.map_err(|e| err(&e))?;
                    let seq = seq.value();
                    let follows = run.last().is_none_or(|(last, _)| *last + 1 == seq);
                    if !follows || run.len() == CHUNK {
                        moved += write(log, &mut run, found)?;
                    }
                    run.push((seq, record.value().to_vec()));
                }
                moved += write(log, &mut run, found)?;
            }
            Err(redb::TableError::TableDoesNotExist(_)) => {}
            Err(e) => return Err(err(&e)),
        }
    }
    drop(db);
    std::fs::remove_file(path).map_err(|e| err(&e))?;
    tracing::info!(path = %path.display(), moved, "moved the sink queue of an earlier version into its log");
    Ok(())
}

/// Appends `run` (consecutive numbers) to the log, numbers skipped before it removed.
fn write(
    log: &Log,
    run: &mut Vec<(u64, Vec<u8>)>,
    found: &mut Vec<Found>,
) -> Result<usize, QueueError> {
    let Some(&(first, _)) = run.first() else {
        return Ok(0);
    };
    let next = log.next();
    if next < first {
        log.remove_range(next, first)?;
    }
    let at = log.append(first, run.len(), |i, _| Ok(&run[i].1[..]))?;
    let n = run.len();
    for ((seq, record), at) in run.drain(..).zip(at) {
        found.push(Found::new(seq, at, record));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_an_earlier_version_queued_is_moved_into_the_log_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("queue.redb");
        {
            let db = Database::create(&path).unwrap();
            let write = db.begin_write().unwrap();
            {
                let mut table = write.open_table(TABLE).unwrap();
                for seq in [3u64, 4, 7] {
                    table.insert(seq, format!("r{seq}").as_bytes()).unwrap();
                }
            }
            write.commit().unwrap();
        }
        let (log, mut found) = Log::open(&dir.path().join("queue")).unwrap();
        migrate(&path, &log, &mut found).unwrap();
        assert!(!path.exists(), "the old file is gone");
        let got: Vec<(u64, Vec<u8>)> = found
            .iter()
            .map(|f| (f.seq, log.read(f.seq, f.at).unwrap().unwrap()))
            .collect();
        let want: Vec<(u64, Vec<u8>)> = [3u64, 4, 7]
            .into_iter()
            .map(|s| (s, format!("r{s}").into_bytes()))
            .collect();
        assert_eq!(got, want);
        drop(log);
        let (log, found) = Log::open(&dir.path().join("queue")).unwrap();
        let seqs: Vec<u64> = found.iter().map(|f| f.seq).collect();
        assert_eq!(seqs, [3, 4, 7], "and in the log, numbering after them");
        assert_eq!(log.next(), 8);
    }
}
