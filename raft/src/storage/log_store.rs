//! The Raft log in RocksDB.
//!
//! An append is written without a sync and returns once readable; it is reported
//! durable to openraft only after a WAL sync by the [`Flusher`], which covers
//! every append made before it (group commit). Votes, truncations and purges are
//! synced before they return.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use rocksdb::{Direction, IteratorMode, WriteBatch, WriteOptions, DB};

use super::flusher::Flusher;
use super::{be, cf, from_be, CF_LOGS, CF_RAFT_META};
use crate::codec::{decode, encode};
use crate::types::{Entry, LogId, TypeConfig, Vote};

pub(crate) const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
pub(crate) const KEY_PURGED: &[u8] = b"last_purged";

/// The Raft log store. It owns the log's sync thread, stopped when it is dropped.
pub struct LogStore {
    db: Arc<DB>,
    flusher: Flusher,
}

/// Reads the log for replication and apply; cheap to clone.
#[derive(Clone)]
pub struct LogReader {
    db: Arc<DB>,
}

fn synced() -> WriteOptions {
    let mut wo = WriteOptions::default();
    wo.set_sync(true);
    wo
}

pub(crate) fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

pub(crate) fn meta<T: serde::de::DeserializeOwned>(db: &DB, key: &[u8]) -> io::Result<Option<T>> {
    let raw = db.get_cf(cf(db, CF_RAFT_META), key).map_err(io_err)?;
    raw.map(|b| decode(&b).map_err(io_err)).transpose()
}

impl LogStore {
    pub(crate) fn new(db: Arc<DB>) -> io::Result<Self> {
        let sync_db = db.clone();
        let flusher = Flusher::start(move || sync_db.flush_wal(true).map_err(io_err))?;
        Ok(LogStore { db, flusher })
    }

    /// How many WAL syncs have made appends durable so far (fewer than the
    /// appends when they were grouped).
    pub fn syncs(&self) -> u64 {
        self.flusher.syncs()
    }

    fn put_meta<T: serde::Serialize>(&self, key: &[u8], value: &T) -> io::Result<()> {
        let bytes = encode(value).map_err(io_err)?;
        self.db.put_cf_opt(cf(&self.db, CF_RAFT_META), key, bytes, &synced()).map_err(io_err)
    }

    /// The entries of the log this store records as committed and
    /// `after` has not applied: what a starting node applies before it serves.
    pub(crate) fn committed_after(&self, after: u64) -> io::Result<Vec<Entry>> {
        let Some(committed) = meta::<Option<LogId>>(&self.db, KEY_COMMITTED)?.flatten() else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let mode = IteratorMode::From(&be(after + 1)[..], Direction::Forward);
        for item in self.db.iterator_cf(cf(&self.db, CF_LOGS), mode) {
            let (k, v) = item.map_err(io_err)?;
            if from_be(&k) > committed.index {
                break;
            }
            out.push(decode(&v).map_err(io_err)?);
        }
        Ok(out)
    }

    fn last_log_id(&self) -> io::Result<Option<LogId>> {
        let mut it = self.db.iterator_cf(cf(&self.db, CF_LOGS), IteratorMode::End);
        match it.next() {
            None => Ok(None),
            Some(item) => {
                let (_, v) = item.map_err(io_err)?;
                let entry: Entry = decode(&v).map_err(io_err)?;
                Ok(Some(entry.log_id))
            }
        }
    }
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> io::Result<Vec<Entry>> {
        let start = match range.start_bound() {
            Bound::Included(s) => *s,
            Bound::Excluded(s) => s + 1,
            Bound::Unbounded => 0,
        };
        let mode = IteratorMode::From(&be(start)[..], Direction::Forward);
        let mut out = Vec::new();
        for item in self.db.iterator_cf(cf(&self.db, CF_LOGS), mode) {
            let (k, v) = item.map_err(io_err)?;
            let index = from_be(&k);
            if !range.contains(&index) {
                break;
            }
            out.push(decode(&v).map_err(io_err)?);
        }
        Ok(out)
    }

    async fn read_vote(&mut self) -> io::Result<Option<Vote>> {
        meta(&self.db, KEY_VOTE)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> io::Result<LogState<TypeConfig>> {
        let last_purged: Option<LogId> = meta(&self.db, KEY_PURGED)?;
        let last = self.last_log_id()?.or(last_purged);
        Ok(LogState { last_purged_log_id: last_purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> LogReader {
        LogReader { db: self.db.clone() }
    }

    async fn save_vote(&mut self, vote: &Vote) -> io::Result<()> {
        // Synced: a vote must never be forgotten. The sync also covers any append
        // written before it.
        self.put_meta(KEY_VOTE, vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> io::Result<()> {
        // A hint for faster restarts, not a promise: not synced. A lost update only
        // means re-applying from an earlier committed index, which Raft tolerates.
        let bytes = encode(&committed).map_err(io_err)?;
        self.db.put_cf(cf(&self.db, CF_RAFT_META), KEY_COMMITTED, bytes).map_err(io_err)
    }

    async fn read_committed(&mut self) -> io::Result<Option<LogId>> {
        Ok(meta::<Option<LogId>>(&self.db, KEY_COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> io::Result<()>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let logs = cf(&self.db, CF_LOGS);
        let mut batch = WriteBatch::default();
        for entry in entries {
            let bytes = encode(&entry).map_err(io_err)?;
            batch.put_cf(logs, be(entry.log_id.index), bytes);
        }
        // Readable once written; durable once the flusher's next sync is done.
        if let Err(e) = self.db.write(batch) {
            let e = io_err(e);
            callback.io_completed(Err(io::Error::new(e.kind(), e.to_string())));
            return Err(e);
        }
        self.flusher.submit(Box::new(move |res| callback.io_completed(res)));
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> io::Result<()> {
        let from = last_log_id.map(|l| l.index + 1).unwrap_or(0);
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(cf(&self.db, CF_LOGS), be(from), be(u64::MAX));
        self.db.write_opt(batch, &synced()).map_err(io_err)
    }

    async fn purge(&mut self, log_id: LogId) -> io::Result<()> {
        let mut batch = WriteBatch::default();
        batch.put_cf(cf(&self.db, CF_RAFT_META), KEY_PURGED, encode(&log_id).map_err(io_err)?);
        batch.delete_range_cf(cf(&self.db, CF_LOGS), be(0), be(log_id.index + 1));
        self.db.write_opt(batch, &synced()).map_err(io_err)
    }
}
