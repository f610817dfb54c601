//! Persistent storage of the Raft log and the state machine in one RocksDB.
//!
//! Both live in one database so that a single WAL orders every write: once a later
//! write (a log append, a vote) is synced, every earlier state-machine write is
//! durable too. Log appends are acknowledged to openraft once a WAL sync covers
//! them, one sync for all appends pending (group commit); votes are synced before
//! they return; state-machine writes need not be, because they can be replayed
//! from the log.
//!
//! Column families:
//! * `logs` — big-endian log index → entry
//! * `raft_meta` — vote, committed, last purged log id, the store's format
//! * `kv` — key → value with its create and mod revisions
//! * `kv_meta` — last applied log id, membership, compacted revision, the record
//!   of the current snapshot file (the file itself is in `snapshots/`, see
//!   [`snapshot_file`])
//! * `history` — big-endian revision → the events of that revision (for watch)

mod background;
pub mod failpoint;
mod flusher;
pub mod format;
pub mod import;
pub(crate) mod log_store;
pub mod reader;
pub(crate) mod snapshot_file;
pub(crate) mod state_machine;

use std::io;
use std::path::Path;
use std::sync::Arc;

use rocksdb::{ColumnFamilyDescriptor, Options, DB};

pub use import::{Import, ImportError};
pub use log_store::{LogReader, LogStore};
pub use reader::{Export, Gone, StoreReader};
pub use snapshot_file::SnapshotData;
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
    /// The store was written in another on-disk format.
    #[error(
        "the store at {path} is in format {found}, written by {writer}; this clusterd reads only format {current}. \
         Start this node with the clusterd that wrote it, or move its data directory aside and join the node to \
         its cluster again (`clusterd join`): it then receives the cluster's state from the leader"
    )]
    Format {
        /// The database directory.
        path: String,
        /// The format recorded in the store.
        found: u32,
        /// Who writes that format.
        writer: &'static str,
        /// The format this build reads.
        current: u32,
    },
    /// The store's format record could not be read or written.
    #[error("the format record of the store at {path}: {reason}")]
    FormatRecord {
        /// The database directory.
        path: String,
        /// What failed.
        reason: String,
    },
    /// The log's sync thread could not be started.
    #[error("start the log sync thread: {0}")]
    Thread(#[source] std::io::Error),
    /// The state machine's own records could not be read.
    #[error("read the state machine at {path}: {reason}")]
    StateMachine {
        /// The database directory.
        path: String,
        /// What failed.
        reason: String,
    },
}

/// Bytes all memtables together may hold before RocksDB flushes them.
const MEMTABLE_BUDGET: usize = 64 << 20;

/// Open (or create) the store at `path` and return its log store, state machine
/// and a read handle for the application.
pub fn open(path: &Path) -> Result<(LogStore, StateMachine, StoreReader), OpenError> {
    let db = Arc::new(open_db(path, true)?);
    let reader = StoreReader::new(db.clone());
    let sm = StateMachine::open(db.clone(), reader.clone(), path)
        .map_err(|e| OpenError::StateMachine { path: path.display().to_string(), reason: e.to_string() })?;
    let log = LogStore::new(db).map_err(OpenError::Thread)?;
    Ok((log, sm, reader))
}

/// Open the store at `path` to read it while its node is stopped, with the
/// entries its log records as committed applied first, as the node does when
/// it starts. A node stopped while its applying lagged its log (a voter that
/// had just joined, say) otherwise shows an older state than it has agreed to
/// — without the cluster CA, for one.
pub fn open_caught_up(path: &Path) -> Result<StoreReader, OpenError> {
    let (log, mut sm, reader) = open(path)?;
    let failed = |e: io::Error| OpenError::StateMachine { path: path.display().to_string(), reason: e.to_string() };
    let entries = log.committed_after(reader.revision()).map_err(failed)?;
    if !entries.is_empty() {
        sm.apply_batch(entries).map_err(failed)?;
    }
    Ok(reader)
}

/// The most write-ahead log a store keeps before flushing what holds it.
const WAL_BUDGET: u64 = 32 << 20;

/// Open the database at `path` (creating it if `create`) with its column
/// families, of this build's format only.
pub(crate) fn open_db(path: &Path, create: bool) -> Result<DB, OpenError> {
    let mut opts = Options::default();
    opts.create_if_missing(create);
    opts.create_missing_column_families(true);
    opts.set_max_background_jobs(2);
    // One budget for the memtables of every column family (RocksDB's default
    // is 64 MiB per family, two of them each): writes are flushed to SST
    // sooner, and a node's memory does not grow with its write rate.
    opts.set_db_write_buffer_size(MEMTABLE_BUDGET);
    // A write-ahead log file is freed only when every family's memtable
    // holding a part of it has been flushed: a family written rarely (the
    // vote, the snapshot's meta) kept old logs alive, and a node's data dir
    // grew by a log per memtable budget (found by the fault runs: a 128 MiB
    // data dir filled up on its own in 15 minutes). Past this total the
    // families holding the oldest log are flushed.
    opts.set_max_total_wal_size(WAL_BUDGET);
    // RocksDB's own info log: a new file per start, kept forever by default.
    opts.set_keep_log_file_num(4);
    if failpoint::power_loss() {
        // Writes stay in this process until a flush: a kill loses what was not
        // synced. A write with `sync` flushes the buffer before it syncs, so
        // what the store syncs stays durable (see `failpoint`).
        tracing::warn!("{}={}: unsynced writes are lost at a kill", failpoint::ENV, failpoint::POWER_LOSS);
        opts.set_manual_wal_flush(true);
    }
    let cfs = [CF_LOGS, CF_RAFT_META, CF_KV, CF_KV_META, CF_HISTORY]
        .into_iter()
        .map(|name| ColumnFamilyDescriptor::new(name, family_options(name)));
    let db = DB::open_cf_descriptors(&opts, path, cfs)
        .map_err(|source| OpenError::Db { path: path.display().to_string(), source })?;
    check_format(&db, path)?;
    Ok(db)
}

/// A column family's options. The families read by key get whole-key Bloom
/// filters, in their SST files and their memtables: every create looks up keys
/// that do not exist yet (the object itself, a write's unique id), and without
/// a filter each such miss read an index and a data block of every SST file
/// (a quarter of a follower's CPU under 64 writers). Filters only change how
/// files are read, not what they hold: a store written without them opens and
/// reads as before.
fn family_options(name: &str) -> Options {
    let mut opts = Options::default();
    if name == CF_KV || name == CF_KV_META {
        let mut table = rocksdb::BlockBasedOptions::default();
        table.set_bloom_filter(10.0, false);
        table.set_whole_key_filtering(true);
        opts.set_block_based_table_factory(&table);
        opts.set_memtable_whole_key_filtering(true);
        opts.set_memtable_prefix_bloom_ratio(0.05);
    }
    opts
}

/// Open only a store of this build's format; record it in a new one.
fn check_format(db: &DB, path: &Path) -> Result<(), OpenError> {
    let record_err = |reason: String| OpenError::FormatRecord { path: path.display().to_string(), reason };
    let recorded = format::recorded(db).map_err(|e| record_err(e.to_string()))?;
    let empty = recorded.is_none() && is_empty(db).map_err(|e| record_err(e.to_string()))?;
    match format::verdict(recorded, empty) {
        format::Verdict::Open => Ok(()),
        format::Verdict::Stamp => {
            let mut wo = rocksdb::WriteOptions::default();
            wo.set_sync(true);
            db.put_cf_opt(cf(db, CF_RAFT_META), format::KEY_FORMAT, format::record(), &wo)
                .map_err(|e| record_err(e.to_string()))
        }
        format::Verdict::Refuse(found) => Err(OpenError::Format {
            path: path.display().to_string(),
            found,
            writer: format::writer(found),
            current: format::FORMAT,
        }),
    }
}

pub(crate) fn is_empty(db: &DB) -> Result<bool, rocksdb::Error> {
    for name in [CF_LOGS, CF_RAFT_META, CF_KV, CF_KV_META, CF_HISTORY] {
        if let Some(item) = db.iterator_cf(cf(db, name), rocksdb::IteratorMode::Start).next() {
            item?;
            return Ok(false);
        }
    }
    Ok(true)
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
