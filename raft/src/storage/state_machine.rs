//! The state machine: applies committed transactions to the `kv` family, records
//! their events in `history` and tells watchers. A whole batch of entries is
//! written in one `WriteBatch`.

use std::collections::HashMap;
use std::io::{self, Cursor};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use openraft::storage::{ApplyResponder, EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::EntryPayload;
use rocksdb::{IteratorMode, WriteBatch, WriteOptions, DB};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::log_store::io_err;
use super::reader::{Stored, KEY_REVISION};
use super::{be, cf, StoreReader, CF_HISTORY, CF_KV, CF_KV_META};
use crate::codec::{decode, encode};
use crate::command::{Command, CommandResponse, Compare, Event, EventKind, KeyValue, Op, Txn};
use crate::types::{Entry, LogId, Snapshot, SnapshotData, SnapshotMeta, StoredMembership, TypeConfig};

pub(crate) const KEY_APPLIED: &[u8] = b"last_applied";
pub(crate) const KEY_MEMBERSHIP: &[u8] = b"membership";
pub(crate) const KEY_COMPACTED: &[u8] = b"compacted";
const KEY_SNAPSHOT: &[u8] = b"snapshot";
const PREFIX_UNIQUE: &[u8] = b"unique/";

fn unique_key(id: u128) -> Vec<u8> {
    let mut k = PREFIX_UNIQUE.to_vec();
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// The snapshot's payload: every key with its revisions. Also the backup format.
#[derive(Serialize, Deserialize)]
struct SnapshotBody {
    kvs: Vec<(String, u64, u64, ByteBuf)>,
    /// Unique-id records (key, encoded response), so a retry reaching a node that
    /// installed this snapshot is still recognised.
    unique: Vec<(ByteBuf, ByteBuf)>,
}

#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
}

/// The replicated state machine on RocksDB.
pub struct StateMachine {
    db: Arc<DB>,
    reader: StoreReader,
    last_applied: Option<LogId>,
    membership: StoredMembership,
}

/// Entries applied in one RocksDB batch at most; their clients are answered
/// when it is written.
const APPLY_CHUNK: usize = 1024;

/// Read and decode a state-machine meta key. A value that does not decode is
/// an error, never a silent default.
pub(crate) fn meta_get<T: serde::de::DeserializeOwned>(db: &DB, key: &[u8]) -> io::Result<Option<T>> {
    let raw = db.get_cf(cf(db, CF_KV_META), key).map_err(io_err)?;
    raw.map(|b| decode(&b).map_err(io_err)).transpose()
}

impl StateMachine {
    pub(crate) fn open(db: Arc<DB>, reader: StoreReader) -> io::Result<Self> {
        // Stored as an Option<LogId> (None before anything was applied).
        let last_applied: Option<LogId> = meta_get::<Option<LogId>>(&db, KEY_APPLIED)?.flatten();
        let membership: StoredMembership = meta_get(&db, KEY_MEMBERSHIP)?.unwrap_or_default();
        let compacted: u64 = meta_get(&db, KEY_COMPACTED)?.unwrap_or(0);
        reader.shared.compacted.store(compacted, Ordering::SeqCst);
        reader.shared.applied.send_replace(last_applied.map(|l| l.index).unwrap_or(0));
        Ok(StateMachine { db, reader, last_applied, membership })
    }

    fn lookup(&self, overlay: &HashMap<String, Option<KeyValue>>, key: &str) -> io::Result<Option<KeyValue>> {
        if let Some(v) = overlay.get(key) {
            return Ok(v.clone());
        }
        self.reader.get(key).map_err(io_err)
    }

    fn apply_txn(
        &self,
        rev: u64,
        txn: Txn,
        batch: &mut WriteBatch,
        overlay: &mut HashMap<String, Option<KeyValue>>,
        all_events: &mut Vec<Event>,
    ) -> io::Result<CommandResponse> {
        let mut events = Vec::new();
        for (i, cmp) in txn.compares.iter().enumerate() {
            let (key, holds) = match cmp {
                Compare::ModRevision(key, want) => {
                    let cur = self.lookup(overlay, key)?;
                    (key, cur.as_ref().map(|kv| kv.mod_revision).unwrap_or(0) == *want)
                }
                Compare::Exists(key) => (key, self.lookup(overlay, key)?.is_some()),
            };
            if !holds {
                return Ok(CommandResponse {
                    revision: rev,
                    succeeded: false,
                    failed_compare: Some(i),
                    current: self.lookup(overlay, key)?,
                    prev: Vec::new(),
                });
            }
        }
        let kv_cf = cf(&self.db, CF_KV);
        let mut prevs = Vec::with_capacity(txn.success.len());
        for op in txn.success {
            match op {
                Op::Put { key, value } => {
                    let prev = self.lookup(overlay, &key)?;
                    let kv = KeyValue {
                        key: key.clone(),
                        value,
                        create_revision: prev.as_ref().map(|p| p.create_revision).unwrap_or(rev),
                        mod_revision: rev,
                    };
                    let stored =
                        Stored { value: kv.value.clone(), create_revision: kv.create_revision, mod_revision: rev };
                    batch.put_cf(kv_cf, key.as_bytes(), encode(&stored).map_err(io_err)?);
                    events.push(Event { revision: rev, kind: EventKind::Put, kv: kv.clone(), existed: prev.is_some() });
                    overlay.insert(key, Some(kv));
                    prevs.push(prev);
                }
                Op::Delete { key } => {
                    let prev = self.lookup(overlay, &key)?;
                    if let Some(p) = &prev {
                        batch.delete_cf(kv_cf, key.as_bytes());
                        let mut kv = p.clone();
                        kv.mod_revision = rev;
                        events.push(Event { revision: rev, kind: EventKind::Delete, kv, existed: true });
                        overlay.insert(key, None);
                    }
                    prevs.push(prev);
                }
            }
        }
        if !events.is_empty() {
            batch.put_cf(cf(&self.db, CF_HISTORY), be(rev), encode(&events).map_err(io_err)?);
            all_events.extend(events);
        }
        Ok(CommandResponse { revision: rev, succeeded: true, failed_compare: None, current: None, prev: prevs })
    }
}

impl StateMachine {
    /// Forget the unique ids of transactions at or below `upto`: retries come
    /// within seconds, compaction runs long after.
    fn forget_unique(&self, upto: u64, batch: &mut WriteBatch) -> io::Result<()> {
        let meta = cf(&self.db, CF_KV_META);
        let mode = IteratorMode::From(PREFIX_UNIQUE, rocksdb::Direction::Forward);
        for item in self.db.iterator_cf(meta, mode) {
            let (k, v) = item.map_err(io_err)?;
            if !k.starts_with(PREFIX_UNIQUE) {
                break;
            }
            let resp: CommandResponse = decode(&v).map_err(io_err)?;
            if resp.revision <= upto {
                batch.delete_cf(meta, k);
            }
        }
        Ok(())
    }
}

impl StateMachine {
    /// Apply committed entries in one RocksDB batch and return each entry's
    /// answer, in order. This is what openraft's `apply` does for each chunk of
    /// its stream; it is public so the store's semantics can be tested directly.
    pub fn apply_batch(&mut self, entries: Vec<Entry>) -> io::Result<Vec<CommandResponse>> {
        let mut batch = WriteBatch::default();
        let mut overlay = HashMap::new();
        let mut responses = Vec::new();
        let mut all_events = Vec::new();
        let mut compacted = self.reader.compacted();
        let history_cf = cf(&self.db, CF_HISTORY);
        let mut seen: HashMap<u128, CommandResponse> = HashMap::new();
        for entry in entries {
            let rev = entry.log_id.index;
            self.last_applied = Some(entry.log_id);
            let ok = CommandResponse { revision: rev, succeeded: true, ..Default::default() };
            match entry.payload {
                EntryPayload::Blank => responses.push(ok),
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), m);
                    responses.push(ok);
                }
                EntryPayload::Normal(Command::Txn(txn)) => {
                    responses.push(self.apply_txn(rev, txn, &mut batch, &mut overlay, &mut all_events)?);
                }
                EntryPayload::Normal(Command::Unique { id, txn }) => {
                    let earlier = match seen.get(&id) {
                        Some(r) => Some(r.clone()),
                        None => meta_get::<CommandResponse>(&self.db, &unique_key(id)).map_err(io_err)?,
                    };
                    let resp = match earlier {
                        Some(r) => r,
                        None => {
                            let resp = self.apply_txn(rev, txn, &mut batch, &mut overlay, &mut all_events)?;
                            let meta = cf(&self.db, CF_KV_META);
                            batch.put_cf(meta, unique_key(id), encode(&resp).map_err(io_err)?);
                            seen.insert(id, resp.clone());
                            resp
                        }
                    };
                    responses.push(resp);
                }
                EntryPayload::Normal(Command::Compact(upto)) => {
                    let upto = upto.min(rev);
                    if upto > compacted {
                        batch.delete_range_cf(history_cf, be(0), be(upto + 1));
                        compacted = upto;
                        let meta = cf(&self.db, CF_KV_META);
                        batch.put_cf(meta, KEY_COMPACTED, encode(&compacted).map_err(io_err)?);
                        self.forget_unique(upto, &mut batch)?;
                    }
                    responses.push(ok);
                }
            }
        }
        let Some(last) = self.last_applied else {
            return Ok(responses);
        };
        let meta = cf(&self.db, CF_KV_META);
        batch.put_cf(meta, KEY_APPLIED, encode(&self.last_applied).map_err(io_err)?);
        batch.put_cf(meta, KEY_MEMBERSHIP, encode(&self.membership).map_err(io_err)?);
        batch.put_cf(meta, KEY_REVISION, encode(&last.index).map_err(io_err)?);
        self.db.write(batch).map_err(io_err)?;
        self.reader.shared.compacted.store(compacted, Ordering::SeqCst);
        self.reader.shared.applied.send_replace(last.index);
        self.reader.shared.hub.publish(&all_events, last.index);
        Ok(responses)
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> io::Result<(Option<LogId>, StoredMembership)> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<S>(&mut self, mut entries: S) -> io::Result<()>
    where
        S: Stream<Item = io::Result<EntryResponder<TypeConfig>>> + Unpin + Send,
    {
        let mut chunk: Vec<Entry> = Vec::new();
        let mut responders: Vec<Option<ApplyResponder<TypeConfig>>> = Vec::new();
        loop {
            let next = entries.next().await.transpose()?;
            let end = next.is_none();
            if let Some((entry, responder)) = next {
                chunk.push(entry);
                responders.push(responder);
            }
            if chunk.len() >= APPLY_CHUNK || (end && !chunk.is_empty()) {
                // The batch is written (and readable) before any client hears of it.
                let answers = self.apply_batch(std::mem::take(&mut chunk))?;
                for (responder, answer) in responders.drain(..).zip(answers) {
                    if let Some(r) = responder {
                        r.send(answer);
                    }
                }
            }
            if end {
                return Ok(());
            }
        }
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder { db: self.db.clone() }
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: SnapshotData) -> io::Result<()> {
        let data = snapshot.into_inner();
        let body: SnapshotBody = decode(&data).map_err(io_err)?;
        let kv_cf = cf(&self.db, CF_KV);
        let mut batch = WriteBatch::default();
        for item in self.db.iterator_cf(kv_cf, IteratorMode::Start) {
            let (k, _) = item.map_err(io_err)?;
            batch.delete_cf(kv_cf, k);
        }
        for (key, create_revision, mod_revision, value) in body.kvs {
            let stored = Stored { value: value.into_vec(), create_revision, mod_revision };
            batch.put_cf(kv_cf, key.as_bytes(), encode(&stored).map_err(io_err)?);
        }
        let unique_cf = cf(&self.db, CF_KV_META);
        for item in self.db.iterator_cf(unique_cf, IteratorMode::From(PREFIX_UNIQUE, rocksdb::Direction::Forward)) {
            let (k, _) = item.map_err(io_err)?;
            if !k.starts_with(PREFIX_UNIQUE) {
                break;
            }
            batch.delete_cf(unique_cf, k);
        }
        for (k, v) in body.unique {
            batch.put_cf(unique_cf, k, v);
        }
        let index = meta.last_log_id.map(|l| l.index).unwrap_or(0);
        // The history behind the snapshot is gone on this node: watches from before it get Gone.
        let compacted = self.reader.compacted().max(index);
        batch.delete_range_cf(cf(&self.db, CF_HISTORY), be(0), be(index + 1));
        let meta_cf = cf(&self.db, CF_KV_META);
        batch.put_cf(meta_cf, KEY_COMPACTED, encode(&compacted).map_err(io_err)?);
        batch.put_cf(meta_cf, KEY_APPLIED, encode(&meta.last_log_id).map_err(io_err)?);
        batch.put_cf(meta_cf, KEY_MEMBERSHIP, encode(&meta.last_membership).map_err(io_err)?);
        batch.put_cf(meta_cf, KEY_REVISION, encode(&index).map_err(io_err)?);
        let stored = StoredSnapshot { meta: meta.clone(), data };
        batch.put_cf(meta_cf, KEY_SNAPSHOT, encode(&stored).map_err(io_err)?);
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(batch, &wo).map_err(io_err)?;
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.reader.shared.compacted.store(compacted, Ordering::SeqCst);
        self.reader.shared.applied.send_replace(index);
        self.reader.shared.hub.reset(index);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> io::Result<Option<Snapshot>> {
        let stored: Option<StoredSnapshot> = meta_get(&self.db, KEY_SNAPSHOT)?;
        Ok(stored.map(|s| Snapshot { meta: s.meta, snapshot: Cursor::new(s.data) }))
    }
}

/// Builds a snapshot from a consistent RocksDB snapshot of the `kv` family.
pub struct SnapshotBuilder {
    db: Arc<DB>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> io::Result<Snapshot> {
        // Reading and encoding the whole state is long CPU work: it runs off the
        // async workers, which keep serving writes meanwhile.
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || build_snapshot(&db)).await.map_err(io_err)?
    }
}

/// The snapshot of everything applied so far, also stored as the current one.
fn build_snapshot(db: &DB) -> io::Result<Snapshot> {
    let snap = db.snapshot();
    let meta_cf = cf(db, CF_KV_META);
    let read = |key: &[u8]| snap.get_cf(meta_cf, key).map_err(io_err);
    let last_applied: Option<LogId> = match read(KEY_APPLIED)? {
        Some(raw) => decode(&raw).map_err(io_err)?,
        None => None,
    };
    let membership: StoredMembership = match read(KEY_MEMBERSHIP)? {
        Some(raw) => decode(&raw).map_err(io_err)?,
        None => StoredMembership::default(),
    };
    let mut kvs = Vec::new();
    for item in snap.iterator_cf(cf(db, CF_KV), IteratorMode::Start) {
        let (k, v) = item.map_err(io_err)?;
        let s: Stored = decode(&v).map_err(io_err)?;
        kvs.push((String::from_utf8_lossy(&k).into_owned(), s.create_revision, s.mod_revision, ByteBuf::from(s.value)));
    }
    let mut unique = Vec::new();
    for item in snap.iterator_cf(meta_cf, IteratorMode::From(PREFIX_UNIQUE, rocksdb::Direction::Forward)) {
        let (k, v) = item.map_err(io_err)?;
        if !k.starts_with(PREFIX_UNIQUE) {
            break;
        }
        unique.push((ByteBuf::from(k.to_vec()), ByteBuf::from(v.to_vec())));
    }
    let data = encode(&SnapshotBody { kvs, unique }).map_err(io_err)?;
    let meta = SnapshotMeta { last_log_id: last_applied, last_membership: membership };
    let stored = StoredSnapshot { meta: meta.clone(), data };
    let mut wo = WriteOptions::default();
    wo.set_sync(true);
    db.put_cf_opt(meta_cf, KEY_SNAPSHOT, encode(&stored).map_err(io_err)?, &wo).map_err(io_err)?;
    Ok(Snapshot { meta, snapshot: Cursor::new(stored.data) })
}
