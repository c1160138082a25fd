//! The spool: the outbox on disk, so that what was taken survives a crash or a restart.
//! Messages are written before they are taken (fsync per policy) and removed once every
//! member acknowledged them; on start, whatever is still there is taken again.

use std::collections::HashMap;
use std::path::PathBuf;

use redb::{Database, Durability, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::delivery::message::Outgoing;

/// key: sequence number (keeps the order); value: header length (u32 LE), JSON header, payload.
const TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");

/// Where the spool lives and how hard it syncs.
#[derive(Debug, Clone)]
pub struct SpoolConfig {
    /// Directory of the spool (created if missing).
    pub dir: PathBuf,
    /// fsync every write before the client is answered (safe); otherwise the OS decides and a
    /// power loss can lose what was answered last.
    pub fsync: bool,
}

/// A spool that cannot be used.
#[derive(Debug, Error)]
#[error("spool {path}: {message}")]
pub struct SpoolError {
    path: String,
    message: String,
}

#[derive(Serialize, Deserialize)]
struct Header {
    id: String,
    payload_type: String,
    metadata: HashMap<String, String>,
    /// Absent in spools written before frames existed: such messages travel alone.
    #[serde(default)]
    concatenable: bool,
}

/// The on-disk outbox.
pub(crate) struct Spool {
    db: Database,
    path: PathBuf,
    fsync: bool,
}

impl Spool {
    pub(crate) fn open(config: &SpoolConfig) -> Result<Spool, SpoolError> {
        let path = config.dir.join("outbox.redb");
        let err = |message: String| SpoolError {
            path: path.display().to_string(),
            message,
        };
        std::fs::create_dir_all(&config.dir).map_err(|e| err(e.to_string()))?;
        let db = Database::create(&path).map_err(|e| err(e.to_string()))?;
        Ok(Spool {
            db,
            path,
            fsync: config.fsync,
        })
    }

    pub(crate) fn error(&self, e: impl std::fmt::Display) -> SpoolError {
        SpoolError {
            path: self.path.display().to_string(),
            message: e.to_string(),
        }
    }

    /// Everything still spooled, in order, with its key.
    pub(crate) fn load(&self) -> Result<Vec<(u64, Outgoing)>, SpoolError> {
        let read = self.db.begin_read().map_err(|e| self.error(e))?;
        let table = match read.open_table(TABLE) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(vec![]),
            Err(e) => return Err(self.error(e)),
        };
        let mut out = Vec::new();
        for row in table.iter().map_err(|e| self.error(e))? {
            let (key, value) = row.map_err(|e| self.error(e))?;
            out.push((
                key.value(),
                decode(value.value()).map_err(|e| self.error(e))?,
            ));
        }
        Ok(out)
    }

    /// Writes `msgs` under keys `first..`, in one transaction.
    pub(crate) fn append(&self, first: u64, msgs: &[Outgoing]) -> Result<(), SpoolError> {
        let mut write = self.db.begin_write().map_err(|e| self.error(e))?;
        write.set_durability(if self.fsync {
            Durability::Immediate
        } else {
            Durability::Eventual
        });
        {
            let mut table = write.open_table(TABLE).map_err(|e| self.error(e))?;
            for (i, msg) in msgs.iter().enumerate() {
                let record = encode(msg).map_err(|e| self.error(e))?;
                table
                    .insert(first + i as u64, record.as_slice())
                    .map_err(|e| self.error(e))?;
            }
        }
        write.commit().map_err(|e| self.error(e))
    }

    /// Removes delivered messages. Not synced: after a crash a removed message may come back
    /// and be sent again (receivers drop the duplicate).
    pub(crate) fn remove(&self, keys: &[u64]) -> Result<(), SpoolError> {
        let mut write = self.db.begin_write().map_err(|e| self.error(e))?;
        write.set_durability(Durability::Eventual);
        {
            let mut table = write.open_table(TABLE).map_err(|e| self.error(e))?;
            for key in keys {
                table.remove(*key).map_err(|e| self.error(e))?;
            }
        }
        write.commit().map_err(|e| self.error(e))
    }
}

fn encode(msg: &Outgoing) -> Result<Vec<u8>, serde_json::Error> {
    let header = serde_json::to_vec(&Header {
        id: msg.id.clone(),
        payload_type: msg.payload_type.clone(),
        metadata: msg.metadata.clone(),
        concatenable: msg.concatenable,
    })?;
    let mut record = Vec::with_capacity(4 + header.len() + msg.payload.len());
    record.extend_from_slice(&(header.len() as u32).to_le_bytes());
    record.extend_from_slice(&header);
    record.extend_from_slice(&msg.payload);
    Ok(record)
}

fn decode(record: &[u8]) -> Result<Outgoing, String> {
    let len_bytes: [u8; 4] = record
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or("a truncated record")?;
    let len = u32::from_le_bytes(len_bytes) as usize;
    let header = record.get(4..4 + len).ok_or("a truncated record header")?;
    let header: Header = serde_json::from_slice(header).map_err(|e| e.to_string())?;
    Ok(Outgoing {
        id: header.id,
        payload: record[4 + len..].to_vec(),
        payload_type: header.payload_type,
        metadata: header.metadata,
        concatenable: header.concatenable,
    })
}

/// The key to use after the largest in `loaded`.
pub(crate) fn next_key(loaded: &[(u64, Outgoing)]) -> u64 {
    loaded.iter().map(|(k, _)| k + 1).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: &str) -> Outgoing {
        Outgoing {
            id: id.into(),
            payload: id.as_bytes().to_vec(),
            payload_type: "application/x-protobuf".into(),
            metadata: HashMap::from([("otlp-signal".to_string(), "logs".to_string())]),
            concatenable: true,
        }
    }

    #[test]
    fn what_is_appended_survives_reopening_in_order_until_removed() {
        let dir = tempfile::tempdir().unwrap();
        let config = SpoolConfig {
            dir: dir.path().into(),
            fsync: true,
        };
        {
            let spool = Spool::open(&config).unwrap();
            spool.append(0, &[msg("a"), msg("b"), msg("c")]).unwrap();
            spool.remove(&[1]).unwrap();
        }
        let spool = Spool::open(&config).unwrap();
        let loaded = spool.load().unwrap();
        let ids: Vec<&str> = loaded.iter().map(|(_, m)| m.id.as_str()).collect();
        assert_eq!(ids, ["a", "c"]);
        assert_eq!(loaded[1].1.payload, b"c");
        assert_eq!(loaded[1].1.metadata["otlp-signal"], "logs");
        assert!(loaded[1].1.concatenable);
        assert_eq!(next_key(&loaded), 3);
    }

    #[test]
    fn an_empty_spool_loads_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(&SpoolConfig {
            dir: dir.path().into(),
            fsync: false,
        })
        .unwrap();
        assert!(spool.load().unwrap().is_empty());
    }
}
