//! The state machine: applies committed transactions to the `kv` family, records
//! their events in `history` and tells watchers. A whole batch of entries is
//! written in one `WriteBatch`.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};
use openraft::storage::{ApplyResponder, EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::EntryPayload;
use rocksdb::{IteratorMode, WriteBatch, WriteOptions, DB};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::log_store::io_err;
use super::reader::{Stored, KEY_REVISION};
use super::snapshot_file::{Record, SnapshotData, SnapshotDir, SnapshotReader};
use super::{be, cf, StoreReader, CF_HISTORY, CF_KV, CF_KV_META};
use crate::codec::{decode, encode};
use crate::command::{Command, CommandResponse, Compare, Event, EventKind, KeyValue, Op, Txn};
use crate::types::{Entry, LogId, Snapshot, SnapshotMeta, StoredMembership, TypeConfig};

pub(crate) const KEY_APPLIED: &[u8] = b"last_applied";
pub(crate) const KEY_MEMBERSHIP: &[u8] = b"membership";
pub(crate) const KEY_COMPACTED: &[u8] = b"compacted";
/// Where builds before snapshot files kept the whole snapshot (read once, at open, to migrate).
const KEY_LEGACY_SNAPSHOT: &[u8] = b"snapshot";
/// The record of the current snapshot file.
const KEY_SNAPSHOT_FILE: &[u8] = b"snapshot_file";
/// The record of a snapshot whose install has begun and not finished.
const KEY_INSTALLING: &[u8] = b"snapshot_installing";
const PREFIX_UNIQUE: &[u8] = b"unique/";

fn unique_key(id: u128) -> Vec<u8> {
    let mut k = PREFIX_UNIQUE.to_vec();
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// The replicated state machine on RocksDB.
pub struct StateMachine {
    db: Arc<DB>,
    reader: StoreReader,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    snaps: Arc<Snapshots>,
    /// Bytes of keys and values per RocksDB batch while installing a snapshot.
    install_batch: usize,
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
    pub(crate) fn open(db: Arc<DB>, reader: StoreReader, path: &std::path::Path) -> io::Result<Self> {
        let snaps = Arc::new(Snapshots { dir: SnapshotDir::open(path)?, record: Mutex::new(()) });
        recover_snapshots(&db, &snaps)?;
        // Stored as an Option<LogId> (None before anything was applied).
        let last_applied: Option<LogId> = meta_get::<Option<LogId>>(&db, KEY_APPLIED)?.flatten();
        let membership: StoredMembership = meta_get(&db, KEY_MEMBERSHIP)?.unwrap_or_default();
        let compacted: u64 = meta_get(&db, KEY_COMPACTED)?.unwrap_or(0);
        reader.shared.compacted.store(compacted, Ordering::SeqCst);
        reader.shared.applied.send_replace(last_applied.map(|l| l.index).unwrap_or(0));
        Ok(StateMachine { db, reader, last_applied, membership, snaps, install_batch: INSTALL_BATCH_BYTES })
    }

    fn lookup(&self, overlay: &HashMap<String, Option<KeyValue>>, key: &str) -> io::Result<Option<KeyValue>> {
        if let Some(v) = overlay.get(key) {
            return Ok(v.clone());
        }
        self.reader.get_live(key).map_err(io_err)
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
        SnapshotBuilder { db: self.db.clone(), snaps: self.snaps.clone() }
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: SnapshotData) -> io::Result<()> {
        // Copying, checking and applying are long blocking IO: off the async workers.
        let (db, snaps, owned) = (self.db.clone(), self.snaps.clone(), meta.clone());
        let (reader, batch) = (self.reader.clone(), self.install_batch);
        let compacted = tokio::task::spawn_blocking(move || install(&db, &snaps, &reader, owned, snapshot, batch))
            .await
            .map_err(io_err)??;
        let index = meta.last_log_id.map(|l| l.index).unwrap_or(0);
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.reader.shared.compacted.store(compacted, Ordering::SeqCst);
        self.reader.shared.applied.send_replace(index);
        self.reader.shared.hub.reset(index);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> io::Result<Option<Snapshot>> {
        // A build may replace the recorded file between reading the record and
        // opening it: then the newer record names a file that exists.
        for _ in 0..3 {
            let Some(rec) = meta_get::<SnapshotRecord>(&self.db, KEY_SNAPSHOT_FILE)? else {
                return Ok(None);
            };
            match SnapshotData::open(&self.snaps.dir.path(&rec.file)) {
                Ok(data) => return Ok(Some(Snapshot { meta: rec.meta, snapshot: data })),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other("the current snapshot file keeps disappearing"))
    }
}

/// Builds a snapshot from a consistent RocksDB snapshot of the state.
pub struct SnapshotBuilder {
    db: Arc<DB>,
    snaps: Arc<Snapshots>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> io::Result<Snapshot> {
        // Reading and writing the whole state is long work: it runs off the
        // async workers, which keep serving writes meanwhile.
        let (db, snaps) = (self.db.clone(), self.snaps.clone());
        tokio::task::spawn_blocking(move || super::background::at_low_priority(|| build_snapshot(&db, &snaps)))
            .await
            .map_err(io_err)?
    }
}

/// A store's snapshot files, and the lock under which one is recorded as the
/// current snapshot and the others removed.
pub(crate) struct Snapshots {
    dir: SnapshotDir,
    record: Mutex<()>,
}

/// What RocksDB records of a snapshot file.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct SnapshotRecord {
    meta: SnapshotMeta,
    id: String,
    file: String,
    size: u64,
    checksum: u32,
}

/// A new snapshot id: the last index it covers, and when it was made (two
/// snapshots at one index, built and received, get distinct files).
fn new_id(meta: &SnapshotMeta) -> String {
    let index = meta.last_log_id.map(|l| l.index).unwrap_or(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{index:020}-{nanos}")
}

impl Snapshots {
    /// Record `rec` as the current snapshot (renamed into place already) and
    /// remove every other snapshot file, unless a newer one is recorded: then
    /// `rec`'s file goes. Returns whether `rec` is now current.
    fn make_current(&self, db: &DB, rec: &SnapshotRecord, batch: Option<WriteBatch>) -> io::Result<bool> {
        let _held = self.record.lock().expect("snapshot record lock");
        let current: Option<SnapshotRecord> = meta_get(db, KEY_SNAPSHOT_FILE)?;
        if batch.is_none() && current.as_ref().is_some_and(|c| c.meta.last_log_id > rec.meta.last_log_id) {
            let _ = std::fs::remove_file(self.dir.path(&rec.file));
            return Ok(false);
        }
        let mut batch = batch.unwrap_or_default();
        batch.put_cf(cf(db, CF_KV_META), KEY_SNAPSHOT_FILE, encode(rec).map_err(io_err)?);
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        db.write_opt(batch, &wo).map_err(io_err)?;
        self.dir.remove_others(Some(&rec.file), false)?;
        Ok(true)
    }
}

/// The snapshot of everything applied so far, streamed from a RocksDB snapshot
/// into a file, recorded as the current one.
fn build_snapshot(db: &DB, snaps: &Snapshots) -> io::Result<Snapshot> {
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
    let meta = SnapshotMeta { last_log_id: last_applied, last_membership: membership };
    let kvs = snap.iterator_cf(cf(db, CF_KV), IteratorMode::Start).map(|item| {
        let (k, v) = item.map_err(io_err)?;
        Ok(Record::Kv(k.into_vec(), v.into_vec()))
    });
    let unique = snap
        .iterator_cf(meta_cf, IteratorMode::From(PREFIX_UNIQUE, rocksdb::Direction::Forward))
        .take_while(|item| !matches!(item, Ok((k, _)) if !k.starts_with(PREFIX_UNIQUE)))
        .map(|item| {
            let (k, v) = item.map_err(io_err)?;
            Ok(Record::Unique(k.into_vec(), v.into_vec()))
        });
    let rec = write_file(snaps, meta, kvs.chain(unique))?;
    drop(snap);
    snaps.make_current(db, &rec, None)?;
    let data = SnapshotData::open(&snaps.dir.path(&rec.file))?;
    Ok(Snapshot { meta: rec.meta, snapshot: data })
}

fn write_file(
    snaps: &Snapshots,
    meta: SnapshotMeta,
    records: impl IntoIterator<Item = io::Result<Record>>,
) -> io::Result<SnapshotRecord> {
    let id = new_id(&meta);
    let file = SnapshotDir::file_name(&id);
    let (size, checksum) = snaps.dir.write(&file, records)?;
    Ok(SnapshotRecord { meta, id, file, size, checksum })
}

/// Install a received snapshot: check it and make it a file of this store
/// (a corrupt or truncated one is refused before anything changes), mark the
/// install begun, then apply the file in batches of about `batch_bytes`.
/// Returns the compacted revision after it.
///
/// A file received from a peer into this store's snapshot directory is
/// checked, then renamed into place; other data is copied into a new file
/// while it is checked.
///
/// Reads see the state from before the install until its last write (the
/// reader's pin): never the empty or half-replaced state between batches.
fn install(
    db: &DB,
    snaps: &Snapshots,
    reader: &StoreReader,
    meta: SnapshotMeta,
    data: SnapshotData,
    batch_bytes: usize,
) -> io::Result<u64> {
    let rec = match data.received_path().filter(|p| snaps.dir.holds(p)).map(Path::to_path_buf) {
        Some(path) => adopt_received(snaps, meta, data, &path)?,
        None => {
            let mut input = SnapshotReader::new(data)?;
            let records = std::iter::from_fn(|| input.next_record().transpose());
            write_file(snaps, meta, records)?
        }
    };
    reader.pin();
    // From here a crash is finished at the next open, from the file.
    let mut wo = WriteOptions::default();
    wo.set_sync(true);
    let marked = encode(&rec)
        .map_err(io_err)
        .and_then(|m| db.put_cf_opt(cf(db, CF_KV_META), KEY_INSTALLING, m, &wo).map_err(io_err));
    if let Err(e) = marked {
        // Nothing of the state changed.
        reader.unpin();
        return Err(e);
    }
    // A failed install leaves the pin: the live state is a mix until the next
    // open finishes the install, and reads keep seeing the state before it.
    let compacted = apply_file(db, snaps, &rec, batch_bytes)?;
    reader.unpin();
    Ok(compacted)
}

/// Check the received snapshot file at `path` whole (framing, count,
/// checksum), then take it as a snapshot file of this store without copying it.
fn adopt_received(
    snaps: &Snapshots,
    meta: SnapshotMeta,
    data: SnapshotData,
    path: &Path,
) -> io::Result<SnapshotRecord> {
    let size = data.size()?;
    let mut input = SnapshotReader::new(data)?;
    while input.next_record()?.is_some() {}
    let checksum = input.checksum().ok_or_else(|| io::Error::other("a snapshot read to its end has no checksum"))?;
    drop(input);
    let id = new_id(&meta);
    let file = SnapshotDir::file_name(&id);
    snaps.dir.adopt(path, &file)?;
    Ok(SnapshotRecord { meta, id, file, size, checksum })
}

/// Replace the state with the snapshot file of `rec` (begun by [`install`],
/// or resumed at open after a crash). Every step is idempotent.
fn apply_file(db: &DB, snaps: &Snapshots, rec: &SnapshotRecord, batch_bytes: usize) -> io::Result<u64> {
    let (kv_cf, meta_cf) = (cf(db, CF_KV), cf(db, CF_KV_META));
    let mut batch = WriteBatch::default();
    // Keys are UTF-8: none starts with 0xff. Unique ids are `unique/…`, and '0' follows '/'.
    batch.delete_range_cf(kv_cf, b"" as &[u8], &[0xffu8][..]);
    batch.delete_range_cf(meta_cf, PREFIX_UNIQUE, b"unique0" as &[u8]);
    let mut bytes = 0usize;
    let mut input = SnapshotReader::new(SnapshotData::open(&snaps.dir.path(&rec.file))?)?;
    while let Some(record) = input.next_record()? {
        let (family, k, v) = match record {
            Record::Kv(k, v) => (kv_cf, k, v),
            Record::Unique(k, v) => (meta_cf, k, v),
        };
        bytes += k.len() + v.len();
        batch.put_cf(family, k, v);
        if bytes >= batch_bytes {
            db.write(std::mem::take(&mut batch)).map_err(io_err)?;
            bytes = 0;
        }
    }
    let meta = &rec.meta;
    let index = meta.last_log_id.map(|l| l.index).unwrap_or(0);
    // The history behind the snapshot is gone on this node: watches from before it get Gone.
    let compacted = meta_get::<u64>(db, KEY_COMPACTED)?.unwrap_or(0).max(index);
    batch.delete_range_cf(cf(db, CF_HISTORY), be(0), be(index + 1));
    batch.put_cf(meta_cf, KEY_COMPACTED, encode(&compacted).map_err(io_err)?);
    batch.put_cf(meta_cf, KEY_APPLIED, encode(&meta.last_log_id).map_err(io_err)?);
    batch.put_cf(meta_cf, KEY_MEMBERSHIP, encode(&meta.last_membership).map_err(io_err)?);
    batch.put_cf(meta_cf, KEY_REVISION, encode(&index).map_err(io_err)?);
    batch.delete_cf(meta_cf, KEY_INSTALLING);
    snaps.make_current(db, rec, Some(batch))?;
    Ok(compacted)
}

/// Bytes of keys and values written in one RocksDB batch at most while installing.
const INSTALL_BATCH_BYTES: usize = 4 << 20;

/// Bring the snapshot records up to date at open: finish an install a crash
/// interrupted, move a snapshot stored in RocksDB by an older build into a
/// file, and remove files nothing refers to.
fn recover_snapshots(db: &DB, snaps: &Snapshots) -> io::Result<()> {
    if let Some(rec) = meta_get::<SnapshotRecord>(db, KEY_INSTALLING)? {
        tracing::info!(snapshot = %rec.id, "finishing a snapshot install a stop interrupted");
        apply_file(db, snaps, &rec, INSTALL_BATCH_BYTES)?;
    }
    if let Some(old) = meta_get::<LegacySnapshot>(db, KEY_LEGACY_SNAPSHOT)? {
        tracing::info!("moving the snapshot stored in RocksDB into a file");
        let body: LegacyBody = decode(&old.data).map_err(io_err)?;
        drop(old.data);
        let kvs = body.kvs.into_iter().map(|(key, create_revision, mod_revision, value)| {
            let stored = Stored { value: value.into_vec(), create_revision, mod_revision };
            Ok(Record::Kv(key.into_bytes(), encode(&stored).map_err(io_err)?))
        });
        let unique = body.unique.into_iter().map(|(k, v)| Ok(Record::Unique(k.into_vec(), v.into_vec())));
        let rec = write_file(snaps, old.meta, kvs.chain(unique))?;
        let mut batch = WriteBatch::default();
        batch.delete_cf(cf(db, CF_KV_META), KEY_LEGACY_SNAPSHOT);
        snaps.make_current(db, &rec, Some(batch))?;
    }
    let current: Option<SnapshotRecord> = meta_get(db, KEY_SNAPSHOT_FILE)?;
    snaps.dir.remove_others(current.as_ref().map(|c| c.file.as_str()), true)
}

/// The snapshot record of builds that kept the snapshot inside RocksDB.
#[derive(Deserialize)]
struct LegacySnapshot {
    meta: SnapshotMeta,
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
}

/// The payload of a [`LegacySnapshot`].
#[derive(Deserialize)]
struct LegacyBody {
    kvs: Vec<(String, u64, u64, ByteBuf)>,
    unique: Vec<(ByteBuf, ByteBuf)>,
}

#[cfg(test)]
mod tests {
    use openraft::storage::RaftSnapshotBuilder;

    use super::*;
    use crate::command::{Op, Txn};
    use crate::storage::log_store::LogStore;
    use crate::types::LeaderId;

    fn put(index: u64, key: &str, value: &str) -> Entry {
        let op = Op::Put { key: key.into(), value: value.as_bytes().to_vec() };
        Entry {
            log_id: LogId::new(LeaderId { term: 1, node_id: 1 }, index),
            payload: EntryPayload::Normal(Command::Txn(Txn::ops(vec![op]))),
        }
    }

    #[test]
    fn the_object_estimate_counts_stored_keys_not_the_writes_over_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let (_log, mut sm, reader) = super::super::open(dir.path()).unwrap();
        let entries: Vec<Entry> = (1..=300).map(|i| put(i, &format!("/k/{i}"), "v")).collect();
        sm.apply_batch(entries).unwrap();
        sm.db.flush_cf(cf(&sm.db, CF_KV)).unwrap();
        let stored = reader.estimated_objects();
        assert!((250..=350).contains(&stored), "300 keys in SST files, estimated {stored}");
        // A key written over and over (a lease, a node's status) is one object.
        let entries: Vec<Entry> = (301..=3300).map(|i| put(i, "/hot", &i.to_string())).collect();
        sm.apply_batch(entries).unwrap();
        let now = reader.estimated_objects();
        assert!(now < 400, "3,000 writes of one key counted as {now} objects");
    }

    #[tokio::test]
    async fn a_built_snapshot_is_one_file_the_older_removed_and_leftovers_go_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let (log, mut sm, reader) = super::super::open(dir.path()).unwrap();
        sm.apply_batch(vec![put(1, "/a", "1")]).unwrap();
        let first = sm.get_snapshot_builder().await.build_snapshot().await.unwrap();
        sm.apply_batch(vec![put(2, "/b", "2")]).unwrap();
        let second = sm.get_snapshot_builder().await.build_snapshot().await.unwrap();
        assert_eq!(second.meta.last_log_id.map(|l| l.index), Some(2));
        assert_eq!(SnapshotDir::file_names(dir.path()).len(), 1, "the previous snapshot file is removed");
        // The first snapshot's open file is still readable after its removal.
        let mut r = SnapshotReader::new(first.snapshot).unwrap();
        assert!(matches!(r.next_record().unwrap(), Some(Record::Kv(k, _)) if k == b"/a"));
        drop((sm, log, reader));
        let snaps = dir.path().join("snapshots");
        std::fs::write(snaps.join("00000000000000000009-1.snap.part"), b"half").unwrap();
        std::fs::write(snaps.join("00000000000000000001-1.snap"), b"stale").unwrap();
        let (_log, mut sm, _reader) = super::super::open(dir.path()).unwrap();
        assert_eq!(SnapshotDir::file_names(dir.path()).len(), 1, "leftovers are removed at open");
        let current = sm.get_current_snapshot().await.unwrap().expect("the current snapshot survives a reopen");
        assert_eq!(current.meta, second.meta);
        let mut r = SnapshotReader::new(current.snapshot).unwrap();
        let mut keys = Vec::new();
        while let Some(rec) = r.next_record().unwrap() {
            if let Record::Kv(k, _) = rec {
                keys.push(String::from_utf8(k).unwrap());
            }
        }
        assert_eq!(keys, ["/a", "/b"]);
    }

    /// Store `a` holding /a and /b and the snapshot of it (meta and bytes),
    /// and store `b` holding /mine, to receive it.
    struct Receiving {
        _a: (tempfile::TempDir, LogStore, StateMachine),
        b_dir: tempfile::TempDir,
        _lb: LogStore,
        b: StateMachine,
        rb: StoreReader,
        meta: SnapshotMeta,
        good: Vec<u8>,
    }

    async fn receiving() -> Receiving {
        let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (la, mut a, _ra) = super::super::open(a_dir.path()).unwrap();
        let (lb, mut b, rb) = super::super::open(b_dir.path()).unwrap();
        a.apply_batch(vec![put(1, "/a", "1"), put(2, "/b", "2")]).unwrap();
        b.apply_batch(vec![put(1, "/mine", "x")]).unwrap();
        let snap = a.get_snapshot_builder().await.build_snapshot().await.unwrap();
        let good = snap.snapshot.into_bytes().unwrap();
        Receiving { _a: (a_dir, la, a), b_dir, _lb: lb, b, rb, meta: snap.meta, good }
    }

    #[tokio::test]
    async fn a_corrupt_snapshot_is_refused_and_changes_nothing() {
        let mut r = receiving().await;
        for bad in [r.good[..r.good.len() - 1].to_vec(), r.good[..r.good.len() / 2].to_vec(), {
            let mut v = r.good.clone();
            v[20] ^= 1;
            v
        }] {
            let err = r.b.install_snapshot(&r.meta, SnapshotData::from_bytes(bad)).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
            assert_eq!(r.rb.revision(), 1);
            assert_eq!(r.rb.get("/mine").unwrap().unwrap().value, b"x", "the state is untouched");
            assert!(r.rb.get("/a").unwrap().is_none());
        }
        assert!(r.b.get_current_snapshot().await.unwrap().is_none());
        assert!(SnapshotDir::file_names(r.b_dir.path()).is_empty(), "nothing of a refused snapshot is kept");
        r.b.install_snapshot(&r.meta, SnapshotData::from_bytes(r.good)).await.unwrap();
        assert!(r.rb.get("/mine").unwrap().is_none(), "an install replaces the state");
        assert_eq!(r.rb.get("/b").unwrap().unwrap().value, b"2");
    }

    #[tokio::test]
    async fn a_received_file_is_checked_then_taken_without_a_copy() {
        let mut r = receiving().await;
        let spool = SnapshotDir::of(r.b_dir.path()).join("incoming-1.part");
        let mut bad = r.good.clone();
        bad[20] ^= 1;
        std::fs::write(&spool, &bad).unwrap();
        let err = r.b.install_snapshot(&r.meta, SnapshotData::received(spool.clone()).unwrap()).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        assert_eq!(r.rb.get("/mine").unwrap().unwrap().value, b"x", "the state is untouched");
        assert_eq!(SnapshotDir::file_names(r.b_dir.path()), ["incoming-1.part"], "a refused file is not taken");
        std::fs::write(&spool, &r.good).unwrap();
        let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&spool).unwrap());
        r.b.install_snapshot(&r.meta, SnapshotData::received(spool.clone()).unwrap()).await.unwrap();
        assert_eq!(r.rb.get("/b").unwrap().unwrap().value, b"2");
        assert!(r.rb.get("/mine").unwrap().is_none());
        let files = SnapshotDir::file_names(r.b_dir.path());
        assert!(files.len() == 1 && files[0].ends_with(".snap"), "{files:?}");
        let taken = std::fs::metadata(SnapshotDir::of(r.b_dir.path()).join(&files[0])).unwrap();
        assert_eq!(std::os::unix::fs::MetadataExt::ino(&taken), inode, "the received file itself is the snapshot");
        assert!(r.b.get_current_snapshot().await.unwrap().is_some_and(|s| s.meta == r.meta));
    }

    #[tokio::test]
    async fn an_install_a_crash_interrupted_is_finished_at_open() {
        let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (_la, mut a, _ra) = super::super::open(a_dir.path()).unwrap();
        a.apply_batch(vec![put(1, "/a", "1"), put(2, "/b", "2")]).unwrap();
        let snap = a.get_snapshot_builder().await.build_snapshot().await.unwrap();
        {
            let (_lb, mut b, _rb) = super::super::open(b_dir.path()).unwrap();
            b.apply_batch(vec![put(1, "/mine", "x")]).unwrap();
            // The install's first half: its file written and the install marked begun,
            // then one batch of its records, and a stop.
            let rec = write_file(&b.snaps, snap.meta.clone(), {
                let mut r = SnapshotReader::new(snap.snapshot).unwrap();
                std::iter::from_fn(move || r.next_record().transpose())
            })
            .unwrap();
            b.db.put_cf(cf(&b.db, CF_KV_META), KEY_INSTALLING, encode(&rec).unwrap()).unwrap();
            b.db.put_cf(cf(&b.db, CF_KV), b"/a", b"half").unwrap();
        }
        let (_lb, mut b, rb) = super::super::open(b_dir.path()).unwrap();
        assert_eq!(rb.revision(), 2);
        assert!(rb.get("/mine").unwrap().is_none());
        assert_eq!(rb.get("/a").unwrap().unwrap().value, b"1");
        assert_eq!(b.applied_state().await.unwrap().0, snap.meta.last_log_id);
        assert!(b.get_current_snapshot().await.unwrap().is_some());
        assert!(meta_get::<SnapshotRecord>(&b.db, KEY_INSTALLING).unwrap().is_none());
    }

    #[tokio::test]
    async fn reads_during_an_install_see_the_old_state_or_the_new_never_a_mix() {
        use std::sync::atomic::AtomicBool;
        const KEYS: u64 = 3000;
        let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (_la, mut a, _ra) = super::super::open(a_dir.path()).unwrap();
        a.apply_batch((KEYS + 1..=2 * KEYS).map(|i| put(i, &format!("/b{i:05}"), "new")).collect()).unwrap();
        let snap = a.get_snapshot_builder().await.build_snapshot().await.unwrap();
        let (_lb, mut b, rb) = super::super::open(b_dir.path()).unwrap();
        b.apply_batch((1..=KEYS).map(|i| put(i, &format!("/a{i:05}"), "old")).collect()).unwrap();
        // One record per RocksDB write: the install takes thousands of writes.
        b.install_batch = 1;
        let stop = Arc::new(AtomicBool::new(false));
        let watcher = {
            let (stop, rb) = (stop.clone(), rb.clone());
            std::thread::spawn(move || {
                let (mut reads, mut new_seen) = (0u64, false);
                let (old_key, new_key) = (format!("/a{:05}", KEYS), format!("/b{:05}", 2 * KEYS));
                loop {
                    let last = stop.load(Ordering::SeqCst);
                    let (kvs, revision) = rb.list("/").unwrap();
                    let all = |prefix: &str, value: &[u8]| {
                        kvs.len() as u64 == KEYS && kvs.iter().all(|kv| kv.key.starts_with(prefix) && kv.value == value)
                    };
                    let old = revision == KEYS && all("/a", b"old");
                    let new = revision == 2 * KEYS && all("/b", b"new");
                    assert!(
                        old || new,
                        "a list saw a mix: {} keys at revision {revision}, first {:?}, last {:?}",
                        kvs.len(),
                        kvs.first().map(|kv| &kv.key),
                        kvs.last().map(|kv| &kv.key)
                    );
                    assert!(!(new_seen && old), "a list saw the old state after the new one");
                    new_seen |= new;
                    // An old key read first, a new one after: both missing is a state
                    // that is neither (the old deleted, the new not yet written).
                    let gone = rb.get(&old_key).unwrap().is_none();
                    let absent = rb.get(&new_key).unwrap().is_none();
                    assert!(!(gone && absent), "two reads saw neither the old key nor the new one");
                    reads += 1;
                    if last {
                        return (reads, new_seen);
                    }
                }
            })
        };
        b.install_snapshot(&snap.meta, snap.snapshot).await.unwrap();
        stop.store(true, Ordering::SeqCst);
        let (reads, new_seen) = watcher.join().expect("no read saw a mixed state");
        assert!(new_seen, "the last read sees the installed state");
        assert!(reads > 2, "the reads ran during the install ({reads} reads)");
        assert_eq!(rb.revision(), 2 * KEYS);
        assert!(!rb.pinned(), "reads are live again after the install");
    }

    /// What builds before snapshot files stored (the same shape as [`LegacySnapshot`]).
    #[derive(Serialize)]
    struct Legacy {
        meta: SnapshotMeta,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    }

    #[tokio::test]
    async fn a_snapshot_stored_in_rocksdb_by_an_older_build_moves_into_a_file_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let meta = {
            let (_log, mut sm, _reader) = super::super::open(dir.path()).unwrap();
            sm.apply_batch(vec![put(3, "/a", "1")]).unwrap();
            let stored = Stored { value: b"1".to_vec(), create_revision: 3, mod_revision: 3 };
            let body = (
                vec![("/a".to_string(), 3u64, 3u64, ByteBuf::from(b"1".to_vec()))],
                vec![(ByteBuf::from(b"unique/x".to_vec()), ByteBuf::from(b"resp".to_vec()))],
            );
            let (meta, _) = sm.applied_state().await.unwrap();
            let meta = SnapshotMeta { last_log_id: meta, last_membership: StoredMembership::default() };
            let legacy = Legacy { meta: meta.clone(), data: encode(&body).unwrap() };
            sm.db.put_cf(cf(&sm.db, CF_KV_META), KEY_LEGACY_SNAPSHOT, encode(&legacy).unwrap()).unwrap();
            assert_eq!(sm.db.get_cf(cf(&sm.db, CF_KV), b"/a").unwrap().unwrap(), encode(&stored).unwrap());
            meta
        };
        let (_log, mut sm, _reader) = super::super::open(dir.path()).unwrap();
        assert!(sm.db.get_cf(cf(&sm.db, CF_KV_META), KEY_LEGACY_SNAPSHOT).unwrap().is_none());
        let current = sm.get_current_snapshot().await.unwrap().expect("the old snapshot is the current one");
        assert_eq!(current.meta, meta);
        let mut r = SnapshotReader::new(current.snapshot).unwrap();
        let stored = Stored { value: b"1".to_vec(), create_revision: 3, mod_revision: 3 };
        assert_eq!(r.next_record().unwrap(), Some(Record::Kv(b"/a".to_vec(), encode(&stored).unwrap())));
        assert_eq!(r.next_record().unwrap(), Some(Record::Unique(b"unique/x".to_vec(), b"resp".to_vec())));
        assert_eq!(r.next_record().unwrap(), None);
    }
}
