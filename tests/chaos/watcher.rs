//! The watchers of a fault run: each follows the workload's ConfigMaps from
//! a recorded revision, and when its stream breaks (or goes silent: a live
//! stream carries a bookmark every second) resumes after the last revision it
//! saw, through the next node. It stops once it has seen the run's closing
//! revision (or is told to give up).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clusterd::api::pb;
use clusterd::cluster::config::AdminConfig;
use clusterd_chaos::history::{EventKind, Revision, WatchEvent, WatchLog};
use serde_json::Value;

use super::workload::{dial, Clock, NAMESPACE, OP_TIMEOUT, SELECTOR};

/// How long a stream may stay silent (bookmarks included) before it is taken as broken.
const SILENCE: Duration = Duration::from_secs(5);

/// When a watcher stops.
#[derive(Clone, Default)]
pub struct Until {
    /// The revision to reach (0: not known yet).
    pub revision: Arc<AtomicU64>,
    /// Stop now.
    pub give_up: Arc<AtomicBool>,
}

impl Until {
    fn reached(&self, last: Revision) -> bool {
        let r = self.revision.load(Ordering::SeqCst);
        self.give_up.load(Ordering::SeqCst) || (r != 0 && last >= r)
    }
}

/// A watch event as the history records it (`None` for a bookmark or anything unexpected).
pub fn event(ev: &pb::WatchEvent, at: u64) -> Option<WatchEvent> {
    let kind = match ev.r#type.as_str() {
        "ADDED" => EventKind::Added,
        "MODIFIED" => EventKind::Modified,
        "DELETED" => EventKind::Deleted,
        _ => return None,
    };
    let obj: Value = serde_json::from_str(&ev.json).ok()?;
    Some(WatchEvent {
        kind,
        key: obj["metadata"]["name"].as_str()?.to_string(),
        value: obj["data"]["v"].as_str().unwrap_or_default().to_string(),
        revision: ev.resource_version,
        at,
    })
}

/// Watcher `id`: from revision `from` until `until`.
pub async fn watcher(
    id: usize,
    cfg: AdminConfig,
    servers: Vec<String>,
    from: Revision,
    clock: Clock,
    until: Until,
) -> WatchLog {
    let mut log = WatchLog { watcher: id, from, events: Vec::new(), reconnects: 0 };
    let mut last = from;
    let mut node = id % servers.len();
    // Attempts to open a stream, and streams opened (the first is no reconnect).
    let (mut attempts, mut opened) = (0usize, 0usize);
    while !until.reached(last) {
        if attempts > 0 {
            node = (node + 1) % servers.len();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        attempts += 1;
        let Some(mut api) = dial(&cfg, &servers[node]).await else { continue };
        let req = pb::WatchRequest {
            kind: "ConfigMap".into(),
            namespace: NAMESPACE.into(),
            label_selector: SELECTOR.into(),
            resource_version: last,
            allow_bookmarks: true,
            ..Default::default()
        };
        let Ok(Ok(resp)) = tokio::time::timeout(OP_TIMEOUT, api.watch(req)).await else { continue };
        let mut stream = resp.into_inner();
        opened += 1;
        log.reconnects = opened - 1;
        while !until.reached(last) {
            match tokio::time::timeout(SILENCE, stream.message()).await {
                Ok(Ok(Some(ev))) => {
                    if let Some(e) = event(&ev, clock.now()) {
                        last = last.max(e.revision);
                        log.events.push(e);
                    }
                }
                // Broken, ended, or silent too long.
                _ => break,
            }
        }
    }
    log
}
