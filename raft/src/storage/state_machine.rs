//! The state machine: applies committed transactions to the `kv` family, records
//! their events in `history` and tells watchers. A whole batch of entries is
//! written in one `WriteBatch`.

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{AnyError, EntryPayload, RaftSnapshotBuilder, Snapshot, StorageIOError};
use rocksdb::{IteratorMode, WriteBatch, WriteOptions, DB};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::reader::{Stored, KEY_REVISION};
use super::{be, cf, StoreReader, CF_HISTORY, CF_KV, CF_KV_META};
use crate::codec::{decode, encode};
use crate::command::{Command, CommandResponse, Compare, Event, EventKind, KeyValue, Op, Txn};
use crate::types::{Entry, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig};

const KEY_APPLIED: &[u8] = b"last_applied";
const KEY_MEMBERSHIP: &[u8] = b"membership";
const KEY_COMPACTED: &[u8] = b"compacted";
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

fn sm_read_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::read_state_machine(AnyError::new(&e)).into()
}

fn sm_write_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_state_machine(AnyError::new(&e)).into()
}

/// Read and decode a state-machine meta key. A value that does not decode is
/// an error, never a silent default.
fn meta_get<T: serde::de::DeserializeOwned>(db: &DB, key: &[u8]) -> Result<Option<T>, StorageError> {
    let raw = db.get_cf(cf(db, CF_KV_META), key).map_err(sm_read_err)?;
    raw.map(|b| decode(&b).map_err(sm_read_err)).transpose()
}

impl StateMachine {
    pub(crate) fn open(db: Arc<DB>, reader: StoreReader) -> Result<Self, StorageError> {
        // Stored as an Option<LogId> (None before anything was applied).
        let last_applied: Option<LogId> = meta_get::<Option<LogId>>(&db, KEY_APPLIED)?.flatten();
        let membership: StoredMembership = meta_get(&db, KEY_MEMBERSHIP)?.unwrap_or_default();
        let compacted: u64 = meta_get(&db, KEY_COMPACTED)?.unwrap_or(0);
        reader.shared.compacted.store(compacted, Ordering::SeqCst);
        reader.shared.applied.send_replace(last_applied.map(|l| l.index).unwrap_or(0));
        Ok(StateMachine { db, reader, last_applied, membership })
    }

    fn lookup(&self, overlay: &HashMap<String, Option<KeyValue>>, key: &str) -> Result<Option<KeyValue>, StorageError> {
        if let Some(v) = overlay.get(key) {
            return Ok(v.clone());
        }
        self.reader.get(key).map_err(sm_read_err)
    }

    fn apply_txn(
        &self,
        rev: u64,
        txn: Txn,
        batch: &mut WriteBatch,
        overlay: &mut HashMap<String, Option<KeyValue>>,
        all_events: &mut Vec<Event>,
    ) -> Result<CommandResponse, StorageError> {
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
                    batch.put_cf(kv_cf, key.as_bytes(), encode(&stored).map_err(sm_write_err)?);
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
            batch.put_cf(cf(&self.db, CF_HISTORY), be(rev), encode(&events).map_err(sm_write_err)?);
            all_events.extend(events);
        }
        Ok(CommandResponse { revision: rev, succeeded: true, failed_compare: None, current: None, prev: prevs })
    }
}

impl StateMachine {
    /// Forget the unique ids of transactions at or below `upto`: retries come
    /// within seconds, compaction runs long after.
    fn forget_unique(&self, upto: u64, batch: &mut WriteBatch) -> Result<(), StorageError> {
        let meta = cf(&self.db, CF_KV_META);
        let mode = IteratorMode::From(PREFIX_UNIQUE, rocksdb::Direction::Forward);
        for item in self.db.iterator_cf(meta, mode) {
            let (k, v) = item.map_err(sm_read_err)?;
            if !k.starts_with(PREFIX_UNIQUE) {
                break;
            }
            let resp: CommandResponse = decode(&v).map_err(sm_read_err)?;
            if resp.revision <= upto {
                batch.delete_cf(meta, k);
            }
        }
        Ok(())
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResponse>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
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
                        None => meta_get::<CommandResponse>(&self.db, &unique_key(id)).map_err(sm_read_err)?,
                    };
                    let resp = match earlier {
                        Some(r) => r,
                        None => {
                            let resp = self.apply_txn(rev, txn, &mut batch, &mut overlay, &mut all_events)?;
                            let meta = cf(&self.db, CF_KV_META);
                            batch.put_cf(meta, unique_key(id), encode(&resp).map_err(sm_write_err)?);
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
                        batch.put_cf(meta, KEY_COMPACTED, encode(&compacted).map_err(sm_write_err)?);
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
        batch.put_cf(meta, KEY_APPLIED, encode(&self.last_applied).map_err(sm_write_err)?);
        batch.put_cf(meta, KEY_MEMBERSHIP, encode(&self.membership).map_err(sm_write_err)?);
        batch.put_cf(meta, KEY_REVISION, encode(&last.index).map_err(sm_write_err)?);
        self.db.write(batch).map_err(sm_write_err)?;
        self.reader.shared.compacted.store(compacted, Ordering::SeqCst);
        self.reader.shared.applied.send_replace(last.index);
        self.reader.shared.hub.publish(&all_events, last.index);
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder { db: self.db.clone() }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let body: SnapshotBody = decode(&data).map_err(sm_write_err)?;
        let kv_cf = cf(&self.db, CF_KV);
        let mut batch = WriteBatch::default();
        for item in self.db.iterator_cf(kv_cf, IteratorMode::Start) {
            let (k, _) = item.map_err(sm_read_err)?;
            batch.delete_cf(kv_cf, k);
        }
        for (key, create_revision, mod_revision, value) in body.kvs {
            let stored = Stored { value: value.into_vec(), create_revision, mod_revision };
            batch.put_cf(kv_cf, key.as_bytes(), encode(&stored).map_err(sm_write_err)?);
        }
        let unique_cf = cf(&self.db, CF_KV_META);
        for item in self.db.iterator_cf(unique_cf, IteratorMode::From(PREFIX_UNIQUE, rocksdb::Direction::Forward)) {
            let (k, _) = item.map_err(sm_read_err)?;
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
        batch.put_cf(meta_cf, KEY_COMPACTED, encode(&compacted).map_err(sm_write_err)?);
        batch.put_cf(meta_cf, KEY_APPLIED, encode(&meta.last_log_id).map_err(sm_write_err)?);
        batch.put_cf(meta_cf, KEY_MEMBERSHIP, encode(&meta.last_membership).map_err(sm_write_err)?);
        batch.put_cf(meta_cf, KEY_REVISION, encode(&index).map_err(sm_write_err)?);
        let stored = StoredSnapshot { meta: meta.clone(), data };
        batch.put_cf(meta_cf, KEY_SNAPSHOT, encode(&stored).map_err(sm_write_err)?);
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(batch, &wo).map_err(sm_write_err)?;
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.reader.shared.compacted.store(compacted, Ordering::SeqCst);
        self.reader.shared.applied.send_replace(index);
        self.reader.shared.hub.reset(index);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let stored: Option<StoredSnapshot> = meta_get(&self.db, KEY_SNAPSHOT)?;
        Ok(stored.map(|s| Snapshot { meta: s.meta, snapshot: Box::new(Cursor::new(s.data)) }))
    }
}

/// Builds a snapshot from a consistent RocksDB snapshot of the `kv` family.
pub struct SnapshotBuilder {
    db: Arc<DB>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        // Reading and encoding the whole state is long CPU work: it runs off the
        // async workers, which keep serving writes meanwhile.
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || build_snapshot(&db)).await.map_err(sm_read_err)?
    }
}

/// The snapshot of everything applied so far, also stored as the current one.
fn build_snapshot(db: &DB) -> Result<Snapshot<TypeConfig>, StorageError> {
    let snap = db.snapshot();
    let meta_cf = cf(db, CF_KV_META);
    let read = |key: &[u8]| snap.get_cf(meta_cf, key).map_err(sm_read_err);
    let last_applied: Option<LogId> = match read(KEY_APPLIED)? {
        Some(raw) => decode(&raw).map_err(sm_read_err)?,
        None => None,
    };
    let membership: StoredMembership = match read(KEY_MEMBERSHIP)? {
        Some(raw) => decode(&raw).map_err(sm_read_err)?,
        None => StoredMembership::default(),
    };
    let mut kvs = Vec::new();
    for item in snap.iterator_cf(cf(db, CF_KV), IteratorMode::Start) {
        let (k, v) = item.map_err(sm_read_err)?;
        let s: Stored = decode(&v).map_err(sm_read_err)?;
        kvs.push((String::from_utf8_lossy(&k).into_owned(), s.create_revision, s.mod_revision, ByteBuf::from(s.value)));
    }
    let mut unique = Vec::new();
    for item in snap.iterator_cf(meta_cf, IteratorMode::From(PREFIX_UNIQUE, rocksdb::Direction::Forward)) {
        let (k, v) = item.map_err(sm_read_err)?;
        if !k.starts_with(PREFIX_UNIQUE) {
            break;
        }
        unique.push((ByteBuf::from(k.to_vec()), ByteBuf::from(v.to_vec())));
    }
    let data = encode(&SnapshotBody { kvs, unique }).map_err(sm_write_err)?;
    let snapshot_id = match last_applied {
        Some(l) => format!("{}-{}-{}", l.leader_id.term, l.index, rand::random::<u32>()),
        None => format!("empty-{}", rand::random::<u32>()),
    };
    let meta = SnapshotMeta { last_log_id: last_applied, last_membership: membership, snapshot_id };
    let stored = StoredSnapshot { meta: meta.clone(), data };
    let mut wo = WriteOptions::default();
    wo.set_sync(true);
    db.put_cf_opt(meta_cf, KEY_SNAPSHOT, encode(&stored).map_err(sm_write_err)?, &wo).map_err(sm_write_err)?;
    Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(stored.data)) })
}
