//! Persistent storage of the Raft log and the state machine in one RocksDB.
//!
//! Both live in one database so that a single WAL orders every write: once a later
//! write (a log append, a vote) is synced, every earlier state-machine write is
//! durable too. Log appends and votes are synced before they are acknowledged;
//! state-machine writes need not be, because they can be replayed from the log.
//!
//! Column families:
//! * `logs` — big-endian log index → entry
//! * `raft_meta` — vote, committed, last purged log id
//! * `kv` — key → value with its create and mod revisions
//! * `kv_meta` — last applied log id, membership, compacted revision, snapshot
//! * `history` — big-endian revision → the events of that revision (for watch)

// openraft's StorageError is the error type its storage traits require; the
// helpers here return it too rather than converting at every call.
#![allow(clippy::result_large_err)]

mod log_store;
pub mod reader;
mod state_machine;

use std::path::Path;
use std::sync::Arc;

use rocksdb::{ColumnFamilyDescriptor, Options, DB};

pub use log_store::LogStore;
pub use reader::{Gone, StoreReader};
pub use state_machine::StateMachine;

pub(crate) const CF_LOGS: &str = "logs";
pub(crate) const CF_RAFT_META: &str = "raft_meta";
pub(crate) const CF_KV: &str = "kv";
pub(crate) const CF_KV_META: &str = "kv_meta";
pub(crate) const CF_HISTORY: &str = "history";

/// Opening the database failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// RocksDB did not open.
    #[error("open RocksDB at {path}: {source}")]
    Db {
        /// The database directory.
        path: String,
        /// RocksDB's error.
        #[source]
        source: rocksdb::Error,
    },
    /// The state machine's own records could not be read.
    #[error("read the state machine at {path}: {reason}")]
    StateMachine {
        /// The database directory.
        path: String,
        /// What failed.
        reason: String,
    },
}

/// Open (or create) the store at `path` and return its log store, state machine
/// and a read handle for the application.
pub fn open(path: &Path) -> Result<(LogStore, StateMachine, StoreReader), OpenError> {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.set_max_background_jobs(2);
    let cfs = [CF_LOGS, CF_RAFT_META, CF_KV, CF_KV_META, CF_HISTORY]
        .into_iter()
        .map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
    let db = DB::open_cf_descriptors(&opts, path, cfs)
        .map_err(|source| OpenError::Db { path: path.display().to_string(), source })?;
    let db = Arc::new(db);
    let reader = StoreReader::new(db.clone());
    let sm = StateMachine::open(db.clone(), reader.clone())
        .map_err(|e| OpenError::StateMachine { path: path.display().to_string(), reason: e.to_string() })?;
    Ok((LogStore::new(db), sm, reader))
}

pub(crate) fn cf<'a>(db: &'a DB, name: &str) -> &'a rocksdb::ColumnFamily {
    db.cf_handle(name).expect("column family created at open")
}

pub(crate) fn be(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

pub(crate) fn from_be(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[..8]);
    u64::from_be_bytes(b)
}
