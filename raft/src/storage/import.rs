//! Making a new store from exported keys (a restored backup).
//!
//! The keys are written as a state machine that has applied everything up to
//! the exported revision, with a membership of one voter — the node that opens
//! the store. The log is empty: at start openraft sees the state machine
//! ahead of it, purges the log up to there and builds a snapshot from the
//! state, so later joiners receive the state as a snapshot. Revisions go on
//! from the exported one: every key keeps its create and mod revisions, and
//! the history behind them counts as compacted (a watch from before it is
//! Gone, as after a snapshot install).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use openraft::Membership;
use rocksdb::{WriteBatch, WriteOptions, DB};

use super::reader::{Stored, KEY_REVISION};
use super::state_machine::{KEY_APPLIED, KEY_COMPACTED, KEY_MEMBERSHIP};
use super::{cf, open_db, OpenError, CF_KV, CF_KV_META};
use crate::codec::encode;
use crate::command::KeyValue;
use crate::types::{LeaderId, LogId, Member, NodeId, StoredMembership};

/// Bytes of keys and values written in one RocksDB batch at most.
const BATCH_BYTES: usize = 4 << 20;

/// An import failed; the store it was making is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The store did not open.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The directory already holds a store.
    #[error("{0} already holds a store: an import makes a new one")]
    NotEmpty(String),
    /// A key is newer than the revision it was exported at.
    #[error("key {key} was modified at revision {mod_revision}, after the export's revision {revision}")]
    Revision {
        /// The key.
        key: String,
        /// Its mod revision.
        mod_revision: u64,
        /// The export's revision.
        revision: u64,
    },
    /// A key or its revisions are not consistent.
    #[error("key {0}: its create revision is 0 or after its mod revision")]
    Revisions(String),
    /// RocksDB failed.
    #[error("rocksdb: {0}")]
    Db(#[from] rocksdb::Error),
    /// A record did not encode.
    #[error("encode: {0}")]
    Codec(#[from] crate::codec::CodecError),
}

/// A store being made from exported keys: [`Import::put`] each key, then
/// [`Import::finish`].
pub struct Import {
    db: DB,
    revision: u64,
    batch: WriteBatch,
    bytes: usize,
    keys: u64,
}

impl Import {
    /// Create a new store at `path` for keys exported at `revision`.
    pub fn create(path: &Path, revision: u64) -> Result<Import, ImportError> {
        let occupied = std::fs::read_dir(path).is_ok_and(|mut d| d.next().is_some());
        if occupied {
            return Err(ImportError::NotEmpty(path.display().to_string()));
        }
        let db = open_db(path, true)?;
        Ok(Import { db, revision, batch: WriteBatch::default(), bytes: 0, keys: 0 })
    }

    /// Add one key, with its revisions.
    pub fn put(&mut self, kv: KeyValue) -> Result<(), ImportError> {
        if kv.mod_revision > self.revision {
            return Err(ImportError::Revision { key: kv.key, mod_revision: kv.mod_revision, revision: self.revision });
        }
        if kv.create_revision == 0 || kv.create_revision > kv.mod_revision {
            return Err(ImportError::Revisions(kv.key));
        }
        self.bytes += kv.key.len() + kv.value.len();
        let stored = Stored { value: kv.value, create_revision: kv.create_revision, mod_revision: kv.mod_revision };
        self.batch.put_cf(cf(&self.db, CF_KV), kv.key.as_bytes(), encode(&stored)?);
        self.keys += 1;
        if self.bytes >= BATCH_BYTES {
            self.db.write(std::mem::take(&mut self.batch))?;
            self.bytes = 0;
        }
        Ok(())
    }

    /// Record the state as applied up to the export's revision, with node `id`
    /// as the one voter, sync it and close the store. Returns the number of keys.
    pub fn finish(mut self, id: NodeId, member: Member) -> Result<u64, ImportError> {
        let log_id = LogId::new(LeaderId { term: 0, node_id: id }, self.revision);
        let membership = Membership::new(vec![BTreeSet::from([id])], BTreeMap::from([(id, member)]))
            .expect("one voter with its node record is a valid membership");
        let stored = StoredMembership::new(Some(log_id), membership);
        let meta = cf(&self.db, CF_KV_META);
        self.batch.put_cf(meta, KEY_APPLIED, encode(&Some(log_id))?);
        self.batch.put_cf(meta, KEY_MEMBERSHIP, encode(&stored)?);
        self.batch.put_cf(meta, KEY_REVISION, encode(&self.revision)?);
        self.batch.put_cf(meta, KEY_COMPACTED, encode(&self.revision)?);
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(std::mem::take(&mut self.batch), &wo)?;
        self.db.flush()?;
        Ok(self.keys)
    }
}
