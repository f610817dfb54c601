//! The node's actors on actix: informer caches fed by the local replica, with
//! decisions made by pure functions elsewhere (the scheduler's algorithm, the
//! kubelet's status and restart rules). The scheduler and controllers act only
//! while their node leads Raft; the kubelet acts on every node.

pub mod informer;
pub mod store;

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use informer::Change;

/// Apply an informer change to a cache keyed by store key.
pub fn apply_change(map: &mut HashMap<String, Arc<Value>>, change: Change) {
    match change {
        Change::Reset(objs) => {
            map.clear();
            map.extend(objs.into_iter().filter_map(|o| Some((store::key_of(&o)?, o))));
        }
        Change::Put(o) => {
            if let Some(k) = store::key_of(&o) {
                map.insert(k, o);
            }
        }
        Change::Delete(o) => {
            if let Some(k) = store::key_of(&o) {
                map.remove(&k);
            }
        }
    }
}
