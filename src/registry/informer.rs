//! Informers: a list of a kind on the local replica, then every change after it,
//! delivered as a stream an actor consumes. When the watch falls behind
//! compaction (or a snapshot replaces the state) the informer lists again and
//! says so with a fresh [`Change::Reset`].
//!
//! A node has one [`Informers`]: one list + watch per prefix, each object
//! parsed once and shared (`Arc`) by every actor that subscribes, as
//! client-go's shared informers do. The scheduler and a dozen controllers all
//! following pods thus cost one parse per change, not one each; the typed
//! form of an [`Object`] is parsed by its first reader, once, and shared too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, UnboundedReceiverStream};
use tokio_stream::StreamExt;

use clusterd_raft::{EventKind, StoreReader, WatchItem};

use crate::objects::typed::Object;
use crate::objects::{key_of, with_resource_version};

/// One change seen by an informer; the objects are shared with the other subscribers.
#[derive(Clone, Debug)]
pub enum Change {
    /// The complete current set under the prefix (first list, or a re-list).
    Reset(Vec<Arc<Object>>),
    /// An object was created or changed.
    Put(Arc<Object>),
    /// An object was removed (its last state).
    Delete(Arc<Object>),
}

/// What one prefix's feed holds: its current objects (for subscribers that
/// come later) and who follows it.
#[derive(Default)]
struct Feed {
    objects: HashMap<String, Arc<Object>>,
    synced: bool,
    subscribers: Vec<mpsc::UnboundedSender<Change>>,
}

impl Feed {
    fn publish(&mut self, change: Change) {
        self.subscribers.retain(|s| s.send(change.clone()).is_ok());
    }
}

/// The node's shared informers.
#[derive(Clone)]
pub struct Informers {
    reader: StoreReader,
    runtime: tokio::runtime::Handle,
    feeds: Arc<Mutex<HashMap<String, Arc<Mutex<Feed>>>>>,
}

impl Informers {
    /// Informers over the node's local replica; their feeds run on the
    /// current tokio runtime (the node's multi-threaded one), whichever actor's
    /// thread subscribes first.
    pub fn new(reader: StoreReader) -> Self {
        Informers { reader, runtime: tokio::runtime::Handle::current(), feeds: Arc::default() }
    }

    /// Follow every object under `prefix`: a [`Change::Reset`] with the current
    /// set first, then each change.
    pub fn watch(&self, prefix: String) -> UnboundedReceiverStream<Change> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut feeds = self.feeds.lock().expect("informer feeds");
        match feeds.get(&prefix) {
            Some(feed) => {
                let mut f = feed.lock().expect("informer feed");
                if f.synced {
                    let _ = tx.send(Change::Reset(f.objects.values().cloned().collect()));
                }
                f.subscribers.push(tx);
            }
            None => {
                let feed = Arc::new(Mutex::new(Feed { subscribers: vec![tx], ..Feed::default() }));
                feeds.insert(prefix.clone(), feed.clone());
                self.runtime.spawn(follow(self.reader.clone(), prefix, feed));
            }
        }
        UnboundedReceiverStream::new(rx)
    }
}

/// List and watch one prefix for as long as the process runs, publishing to the feed.
async fn follow(store: StoreReader, prefix: String, feed: Arc<Mutex<Feed>>) {
    loop {
        let (kvs, rev) = match store.list(&prefix) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(error = %e, %prefix, "informer: list failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let objects: HashMap<String, Arc<Object>> = kvs
            .into_iter()
            .filter_map(|kv| {
                let raw = with_resource_version(&kv.value, kv.mod_revision).ok()?;
                Some((kv.key.clone(), Arc::new(Object::new(raw))))
            })
            .collect();
        {
            let mut f = feed.lock().expect("informer feed");
            let all = objects.values().cloned().collect();
            f.objects = objects;
            f.synced = true;
            f.publish(Change::Reset(all));
        }
        let mut events = store.watch(prefix.clone(), rev, None);
        while let Some(item) = events.next().await {
            let ev = match item {
                Ok(WatchItem::Event(ev)) => ev,
                Ok(WatchItem::Progress(_)) => continue,
                Err(gone) => {
                    tracing::info!(%prefix, %gone, "informer: watch gone, listing again");
                    break;
                }
            };
            let Ok(raw) = with_resource_version(&ev.kv.value, ev.revision) else { continue };
            let obj = Arc::new(Object::new(raw));
            let mut f = feed.lock().expect("informer feed");
            match ev.kind {
                EventKind::Put => {
                    f.objects.insert(ev.kv.key, obj.clone());
                    f.publish(Change::Put(obj));
                }
                EventKind::Delete => {
                    f.objects.remove(&ev.kv.key);
                    f.publish(Change::Delete(obj));
                }
            }
        }
    }
}

/// Whether this node is the Raft leader, now and at every change.
pub fn leadership(node: &clusterd_raft::RaftNode) -> impl futures::Stream<Item = bool> + Unpin + 'static {
    let me = node.id;
    let mut watch = node.leader_watch();
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut last = None;
        loop {
            let leader = watch.leader() == Some(me);
            if last != Some(leader) {
                last = Some(leader);
                if tx.send(leader).await.is_err() {
                    return;
                }
            }
            if !watch.changed().await {
                return;
            }
        }
    });
    ReceiverStream::new(rx)
}

/// Apply an informer change to a cache keyed by store key.
pub fn apply_change(map: &mut HashMap<String, Arc<Object>>, change: Change) {
    match change {
        Change::Reset(objs) => {
            map.clear();
            map.extend(objs.into_iter().filter_map(|o| Some((key_of(&o)?, o))));
        }
        Change::Put(o) => {
            if let Some(k) = key_of(&o) {
                map.insert(k, o);
            }
        }
        Change::Delete(o) => {
            if let Some(k) = key_of(&o) {
                map.remove(&k);
            }
        }
    }
}
