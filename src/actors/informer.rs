//! Informers: a list of a kind on the local replica, then every change after it,
//! delivered as a stream an actor consumes. When the watch falls behind
//! compaction (or a snapshot replaces the state) the informer lists again and
//! says so with a fresh [`Change::Reset`].

use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use clusterd_raft::{EventKind, StoreReader, WatchItem};

use crate::objects::with_resource_version;

/// One change seen by an informer.
#[derive(Clone, Debug)]
pub enum Change {
    /// The complete current set under the prefix (first list, or a re-list).
    Reset(Vec<Value>),
    /// An object was created or changed.
    Put(Value),
    /// An object was removed (its last state).
    Delete(Value),
}

/// Follow every object under `prefix` on the local replica.
pub fn watch(store: StoreReader, prefix: String) -> ReceiverStream<Change> {
    let (tx, rx) = mpsc::channel(4096);
    tokio::spawn(async move {
        loop {
            let (kvs, rev) = match store.list(&prefix) {
                Ok(v) => v,
                Err(e) => {
                    tracing::error!(error = %e, %prefix, "informer: list failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let objs = kvs.iter().filter_map(|kv| with_resource_version(&kv.value, kv.mod_revision).ok()).collect();
            if tx.send(Change::Reset(objs)).await.is_err() {
                return;
            }
            let mut events = store.watch(prefix.clone(), rev, None);
            while let Some(item) = events.next().await {
                let change = match item {
                    Ok(WatchItem::Event(ev)) => {
                        let Ok(obj) = with_resource_version(&ev.kv.value, ev.revision) else { continue };
                        match ev.kind {
                            EventKind::Put => Change::Put(obj),
                            EventKind::Delete => Change::Delete(obj),
                        }
                    }
                    Ok(WatchItem::Progress(_)) => continue,
                    Err(gone) => {
                        tracing::info!(%prefix, %gone, "informer: watch gone, listing again");
                        break;
                    }
                };
                if tx.send(change).await.is_err() {
                    return;
                }
            }
        }
    });
    ReceiverStream::new(rx)
}

/// Whether this node is the Raft leader, now and at every change.
pub fn leadership(node: &clusterd_raft::RaftNode) -> impl futures::Stream<Item = bool> + Unpin + 'static {
    let me = node.id;
    let metrics = node.raft.metrics();
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut metrics = metrics;
        let mut last = None;
        loop {
            let leader = metrics.borrow_and_update().current_leader == Some(me);
            if last != Some(leader) {
                last = Some(leader);
                if tx.send(leader).await.is_err() {
                    return;
                }
            }
            if metrics.changed().await.is_err() {
                return;
            }
        }
    });
    ReceiverStream::new(rx)
}
