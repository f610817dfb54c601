//! Reads of the local replica and watches fed by the entries it applies.
//!
//! Reads here are serializable: they see what this node has applied. The node
//! module adds linearizable reads on top by waiting for a read index.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rocksdb::{Direction, IteratorMode, Snapshot, DB};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use super::{be, cf, from_be, CF_HISTORY, CF_KV, CF_KV_META};
use crate::codec::decode;
use crate::command::{Event, KeyValue};

pub(crate) const KEY_REVISION: &[u8] = b"revision";

/// A watch asked for history that compaction (or a snapshot install) removed:
/// the client must list again.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("resource version {requested} is too old: history is compacted up to {compacted}")]
pub struct Gone {
    /// The revision the watch asked to start after.
    pub requested: u64,
    /// The newest compacted revision.
    pub compacted: u64,
}

/// A reading of the store failed at the RocksDB level.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// RocksDB failed.
    #[error("rocksdb: {0}")]
    Db(#[from] rocksdb::Error),
    /// Stored bytes did not decode.
    #[error("corrupt value: {0}")]
    Codec(#[from] crate::codec::CodecError),
}

/// What one watcher hears from the state machine.
#[derive(Debug)]
enum Feed {
    /// The events of an applied batch under the watcher's prefix.
    Events(Vec<Event>),
    /// A snapshot replaced the state: the watcher cannot continue.
    Reset(u64),
}

/// Batches a watcher may have queued before it counts as fallen behind.
const WATCHER_QUEUE: usize = 1024;

/// One live watcher: the state machine sends it only the events under its
/// prefix, so an applied batch wakes only the watchers it concerns.
struct Watcher {
    prefix: String,
    tx: mpsc::Sender<Feed>,
    /// Every event up to this revision has been offered to `tx`.
    offered: Arc<AtomicU64>,
}

/// The live watchers of a replica.
#[derive(Default)]
pub(crate) struct Hub {
    watchers: Mutex<Vec<Watcher>>,
}

impl Hub {
    fn register(&self, prefix: &str) -> (mpsc::Receiver<Feed>, Arc<AtomicU64>) {
        let (tx, rx) = mpsc::channel(WATCHER_QUEUE);
        let offered = Arc::new(AtomicU64::new(0));
        let w = Watcher { prefix: prefix.to_string(), tx, offered: offered.clone() };
        self.watchers.lock().expect("watchers").push(w);
        (rx, offered)
    }

    /// Hand each watcher the events of a batch under its prefix (called after
    /// the batch is readable and `applied` says so). A watcher whose queue is
    /// full is dropped: its stream sees the end of its queue and catches up from
    /// the persisted history.
    pub(crate) fn publish(&self, events: &[Event], upto: u64) {
        self.watchers.lock().expect("watchers").retain(|w| {
            let mine: Vec<Event> = events.iter().filter(|e| e.kv.key.starts_with(&w.prefix)).cloned().collect();
            let kept = mine.is_empty() || w.tx.try_send(Feed::Events(mine)).is_ok();
            w.offered.store(upto, Ordering::Release);
            kept && !w.tx.is_closed()
        });
    }

    /// A snapshot replaced the state: every watcher must start again.
    pub(crate) fn reset(&self, at: u64) {
        for w in self.watchers.lock().expect("watchers").drain(..) {
            let _ = w.tx.try_send(Feed::Reset(at));
        }
    }
}

/// What [`StoreReader::export`] hands over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Export {
    /// First: the revision everything is read at, and how many keys follow.
    Start {
        /// The replica's revision at the read.
        revision: u64,
        /// The number of keys that follow.
        keys: u64,
    },
    /// The next keys, in key order.
    Keys(Vec<KeyValue>),
}

/// One item of a watch stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchItem {
    /// A change to a watched key.
    Event(Event),
    /// Everything up to this revision has been delivered (a bookmark).
    Progress(u64),
}

pub(crate) struct Shared {
    pub(crate) hub: Hub,
    pub(crate) applied: watch::Sender<u64>,
    pub(crate) compacted: AtomicU64,
    /// The state reads see while a snapshot installs (see [`StoreReader::pin`]).
    pinned: RwLock<Option<Arc<Pinned>>>,
}

/// A RocksDB snapshot that keeps its database alive: the state before a
/// snapshot install, read while the install replaces the live state batch by
/// batch.
///
/// Why a pinned snapshot and not a gate that holds reads back during an
/// install: an install of a big state takes seconds, and a gate would stall
/// every serializable read and list of the node for as long (or fail them at
/// its bound); with the pin they keep being answered, from the last consistent
/// state, and move to the new state at once when the install ends.
struct Pinned {
    // Declared before `_db`: dropped first, while the database it reads lives.
    snap: Snapshot<'static>,
    _db: Arc<DB>,
}

impl Pinned {
    fn new(db: Arc<DB>) -> Self {
        let snap = db.snapshot();
        // SAFETY: the snapshot borrows the `DB` inside the `Arc`'s allocation,
        // which never moves and lives as long as this struct holds `_db`;
        // `snap` is dropped before `_db` (field order); and the `'static`
        // lifetime never leaves this struct: `snap()` lends it for the
        // lifetime of `&self` only, so nothing read from it (iterators)
        // outlives the `Pinned`.
        let snap = unsafe { std::mem::transmute::<Snapshot<'_>, Snapshot<'static>>(snap) };
        Pinned { snap, _db: db }
    }

    fn snap(&self) -> &Snapshot<'_> {
        &self.snap
    }
}

/// The state one read sees: a fresh snapshot of the live store, or the one
/// pinned while a snapshot installs.
enum View<'a> {
    Live(Snapshot<'a>),
    Pinned(Arc<Pinned>),
}

impl View<'_> {
    fn snap(&self) -> &Snapshot<'_> {
        match self {
            View::Live(s) => s,
            View::Pinned(p) => p.snap(),
        }
    }
}

/// A cheap, cloneable read handle on the local replica.
#[derive(Clone)]
pub struct StoreReader {
    db: Arc<DB>,
    pub(crate) shared: Arc<Shared>,
}

#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct Stored {
    #[serde(with = "serde_bytes")]
    pub(crate) value: Vec<u8>,
    pub(crate) create_revision: u64,
    pub(crate) mod_revision: u64,
}

impl Stored {
    pub(crate) fn into_kv(self, key: String) -> KeyValue {
        KeyValue { key, value: self.value, create_revision: self.create_revision, mod_revision: self.mod_revision }
    }
}

/// The key-value of `key` from its stored bytes, if any.
fn stored_kv(key: &str, raw: Option<Vec<u8>>) -> Result<Option<KeyValue>, ReadError> {
    raw.map(|raw| Ok(decode::<Stored>(&raw)?.into_kv(key.to_string()))).transpose()
}

impl StoreReader {
    pub(crate) fn new(db: Arc<DB>) -> Self {
        let (applied, _) = watch::channel(0);
        let shared = Shared { hub: Hub::default(), applied, compacted: AtomicU64::new(0), pinned: RwLock::new(None) };
        StoreReader { db, shared: Arc::new(shared) }
    }

    /// The last revision this replica has applied.
    pub fn revision(&self) -> u64 {
        *self.shared.applied.borrow()
    }

    /// About how many keys the state holds, counting only what is in SST
    /// files: RocksDB's estimate counts every version in the memtables, and a
    /// few keys written over and over (leases, node status) would look like
    /// many objects and hold snapshots (and the log's purge) back. Objects
    /// still only in memtables are not counted, which errs towards snapshots
    /// sooner.
    pub fn estimated_objects(&self) -> u64 {
        let kv = super::cf(&self.db, super::CF_KV);
        let prop = |name: &str| self.db.property_int_value_cf(kv, name).ok().flatten().unwrap_or(0);
        prop("rocksdb.estimate-num-keys")
            .saturating_sub(prop("rocksdb.num-entries-active-mem-table"))
            .saturating_sub(prop("rocksdb.num-entries-imm-mem-tables"))
    }

    /// The newest revision whose history has been compacted away.
    pub fn compacted(&self) -> u64 {
        self.shared.compacted.load(Ordering::SeqCst)
    }

    /// Wait until this replica has applied `revision`, or the timeout passes.
    /// Returns whether it got there.
    pub async fn wait_applied(&self, revision: u64, timeout: Duration) -> bool {
        let mut rx = self.shared.applied.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|r| *r >= revision)).await.is_ok_and(|r| r.is_ok())
    }

    /// From now until [`unpin`](Self::unpin), reads see the state of this
    /// moment: a snapshot install is about to replace the live state in several
    /// writes, and no read may see a mix of the old state and the new. A pin
    /// already in place is kept (an install that failed halfway left the live
    /// state mixed; the pin still shows the state before it).
    pub(crate) fn pin(&self) {
        let mut pinned = self.shared.pinned.write().expect("pinned");
        if pinned.is_none() {
            *pinned = Some(Arc::new(Pinned::new(self.db.clone())));
        }
    }

    /// Reads see the live state again (the install's last write is done).
    pub(crate) fn unpin(&self) {
        // Reads already holding the pinned snapshot finish on it.
        self.shared.pinned.write().expect("pinned").take();
    }

    #[cfg(test)]
    pub(crate) fn pinned(&self) -> bool {
        self.shared.pinned.read().expect("pinned").is_some()
    }

    /// What a read sees. Taken under the pin's lock, so a live snapshot is
    /// always older than an install's first write.
    fn view(&self) -> View<'_> {
        let pinned = self.shared.pinned.read().expect("pinned");
        match &*pinned {
            Some(p) => View::Pinned(p.clone()),
            None => View::Live(self.db.snapshot()),
        }
    }

    /// Read one key.
    pub fn get(&self, key: &str) -> Result<Option<KeyValue>, ReadError> {
        let raw = {
            let pinned = self.shared.pinned.read().expect("pinned");
            match &*pinned {
                Some(p) => p.snap().get_cf(cf(&self.db, CF_KV), key.as_bytes())?,
                None => self.db.get_cf(cf(&self.db, CF_KV), key.as_bytes())?,
            }
        };
        stored_kv(key, raw)
    }

    /// Read one key of the live state, pinned or not (the state machine's own
    /// reads while it applies).
    pub(crate) fn get_live(&self, key: &str) -> Result<Option<KeyValue>, ReadError> {
        stored_kv(key, self.db.get_cf(cf(&self.db, CF_KV), key.as_bytes())?)
    }

    /// Every key under `prefix`, read at one revision, and that revision.
    pub fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, u64), ReadError> {
        let view = self.view();
        let snap = view.snap();
        let revision = match snap.get_cf(cf(&self.db, CF_KV_META), KEY_REVISION)? {
            Some(raw) => decode::<u64>(&raw)?,
            None => 0,
        };
        let mode = IteratorMode::From(prefix.as_bytes(), Direction::Forward);
        let mut out = Vec::new();
        for item in snap.iterator_cf(cf(&self.db, CF_KV), mode) {
            let (k, v) = item?;
            if !k.starts_with(prefix.as_bytes()) {
                break;
            }
            let key = String::from_utf8_lossy(&k).into_owned();
            out.push(decode::<Stored>(&v)?.into_kv(key));
        }
        Ok((out, revision))
    }

    /// Every key of the replica but those under `exclude`, read at one
    /// revision and handed to `sink` in key order: first [`Export::Start`],
    /// then the keys in chunks of about `chunk_bytes`. Stops when `sink`
    /// returns false. Blocking (it reads the whole store): call it off the
    /// async workers.
    pub fn export(
        &self,
        exclude: &[&str],
        chunk_bytes: usize,
        mut sink: impl FnMut(Export) -> bool,
    ) -> Result<(), ReadError> {
        let view = self.view();
        let snap = view.snap();
        let revision = match snap.get_cf(cf(&self.db, CF_KV_META), KEY_REVISION)? {
            Some(raw) => decode::<u64>(&raw)?,
            None => 0,
        };
        let kept = |k: &[u8]| !exclude.iter().any(|p| k.starts_with(p.as_bytes()));
        // Two passes over the same RocksDB snapshot: the count first (keys only
        // are compared, values are not decoded), so the receiver knows it up front.
        let mut keys = 0u64;
        for item in snap.iterator_cf(cf(&self.db, CF_KV), IteratorMode::Start) {
            let (k, _) = item?;
            keys += u64::from(kept(&k));
        }
        if !sink(Export::Start { revision, keys }) {
            return Ok(());
        }
        let mut chunk = Vec::new();
        let mut bytes = 0;
        for item in snap.iterator_cf(cf(&self.db, CF_KV), IteratorMode::Start) {
            let (k, v) = item?;
            if !kept(&k) {
                continue;
            }
            bytes += k.len() + v.len();
            chunk.push(decode::<Stored>(&v)?.into_kv(String::from_utf8_lossy(&k).into_owned()));
            if bytes >= chunk_bytes && !sink(Export::Keys(std::mem::take(&mut chunk))) {
                return Ok(());
            }
            if chunk.is_empty() {
                bytes = 0;
            }
        }
        if !chunk.is_empty() {
            sink(Export::Keys(chunk));
        }
        Ok(())
    }

    /// The events of revisions `from..=to`.
    fn history(&self, from: u64, to: u64) -> Result<Vec<Event>, ReadError> {
        let mode = IteratorMode::From(&be(from)[..], Direction::Forward);
        let mut out = Vec::new();
        let view = self.view();
        for item in view.snap().iterator_cf(cf(&self.db, CF_HISTORY), mode) {
            let (k, v) = item?;
            if from_be(&k) > to {
                break;
            }
            out.extend(decode::<Vec<Event>>(&v)?);
        }
        Ok(out)
    }

    /// Watch the keys under `prefix` for changes after revision `from`: first the
    /// persisted history, then the live feed. With `bookmarks`, a `Progress` item
    /// is sent at that interval while nothing else is.
    ///
    /// The stream ends with `Err(Gone)` when `from` is older than the compacted
    /// revision, or when a snapshot replaced the state under it.
    pub fn watch(
        &self,
        prefix: String,
        from: u64,
        bookmarks: Option<Duration>,
    ) -> ReceiverStream<Result<WatchItem, Gone>> {
        let (tx, rx) = mpsc::channel(256);
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(gone) = this.follow(&prefix, from, bookmarks, &tx).await {
                let _ = tx.send(Err(gone)).await;
            }
        });
        ReceiverStream::new(rx)
    }

    async fn follow(
        &self,
        prefix: &str,
        from: u64,
        bookmarks: Option<Duration>,
        tx: &mpsc::Sender<Result<WatchItem, Gone>>,
    ) -> Result<(), Gone> {
        let mut last = from;
        let period = bookmarks.unwrap_or(Duration::from_secs(3600));
        loop {
            // Register before reading history, so nothing falls between the two
            // (the state machine marks a batch applied before it publishes it).
            let (mut rx, offered) = self.shared.hub.register(prefix);
            let compacted = self.compacted();
            if last < compacted {
                return Err(Gone { requested: last, compacted });
            }
            let current = self.revision();
            if current > last {
                let events = match self.history(last + 1, current) {
                    Ok(events) => events,
                    Err(e) => {
                        tracing::error!(error = %e, "watch: reading history failed");
                        return Err(Gone { requested: last, compacted });
                    }
                };
                for ev in events.into_iter().filter(|e| e.kv.key.starts_with(prefix)) {
                    if tx.send(Ok(WatchItem::Event(ev))).await.is_err() {
                        return Ok(());
                    }
                }
                last = current;
            }
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            loop {
                let msg = tokio::select! {
                    msg = rx.recv() => msg,
                    _ = tick.tick() => {
                        if bookmarks.is_none() {
                            continue;
                        }
                        // Everything up to `upto` is in the queue: deliver it, then
                        // say that nothing else up to there concerns this watch.
                        let upto = offered.load(Ordering::Acquire);
                        let mut ended = false;
                        loop {
                            match rx.try_recv() {
                                Ok(Feed::Events(events)) => {
                                    if !deliver(tx, events, &mut last).await {
                                        return Ok(());
                                    }
                                }
                                Ok(Feed::Reset(at)) => return Err(Gone { requested: last, compacted: at }),
                                Err(mpsc::error::TryRecvError::Empty) => break,
                                Err(mpsc::error::TryRecvError::Disconnected) => {
                                    ended = true;
                                    break;
                                }
                            }
                        }
                        if ended {
                            break;
                        }
                        last = last.max(upto);
                        if tx.send(Ok(WatchItem::Progress(last))).await.is_err() {
                            return Ok(());
                        }
                        continue;
                    }
                    _ = tx.closed() => return Ok(()),
                };
                match msg {
                    Some(Feed::Events(events)) => {
                        if !deliver(tx, events, &mut last).await {
                            return Ok(());
                        }
                    }
                    Some(Feed::Reset(at)) => return Err(Gone { requested: last, compacted: at }),
                    // Dropped for falling behind: catch up from the persisted history.
                    None => break,
                }
            }
        }
    }
}

/// Send a batch's events that are newer than `last` (a transaction's events
/// share its revision) and move `last` past them; false when the watch's
/// receiver is gone.
async fn deliver(tx: &mpsc::Sender<Result<WatchItem, Gone>>, events: Vec<Event>, last: &mut u64) -> bool {
    let floor = *last;
    for ev in events.into_iter().filter(|e| e.revision > floor) {
        *last = (*last).max(ev.revision);
        if tx.send(Ok(WatchItem::Event(ev))).await.is_err() {
            return false;
        }
    }
    true
}
