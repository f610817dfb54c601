//! Short builders for the histories of the checkers' tables.

use crate::history::{Call, EventKind, FinalRead, Op, Outcome, WatchEvent, WatchLog};

pub fn op(client: usize, invoke: u64, complete: u64, call: Call, outcome: Outcome) -> Op {
    Op { client, invoke, complete, call, outcome }
}
pub fn create(k: &str, v: &str) -> Call {
    Call::Create { key: k.into(), value: v.into() }
}
pub fn update(k: &str, v: &str, expected: u64) -> Call {
    Call::Update { key: k.into(), value: v.into(), expected }
}
pub fn delete(k: &str) -> Call {
    Call::Delete { key: k.into(), expected: None }
}
pub fn delete_if(k: &str, e: u64) -> Call {
    Call::Delete { key: k.into(), expected: Some(e) }
}
pub fn get(k: &str) -> Call {
    Call::Get { key: k.into() }
}
pub fn written(revision: u64) -> Outcome {
    Outcome::Written { revision }
}
pub fn deleted(revision: u64) -> Outcome {
    Outcome::Deleted { revision: Some(revision) }
}
pub fn found(v: &str, revision: u64) -> Outcome {
    Outcome::Found { value: v.into(), revision }
}
pub fn listed(revision: u64, items: &[(&str, &str, u64)]) -> Outcome {
    Outcome::Listed { revision, items: items.iter().map(|(k, v, r)| (k.to_string(), v.to_string(), *r)).collect() }
}
pub fn ev(kind: EventKind, k: &str, v: &str, revision: u64) -> WatchEvent {
    WatchEvent { kind, key: k.into(), value: v.into(), revision, at: 0 }
}
pub fn watch(from: u64, events: Vec<WatchEvent>) -> WatchLog {
    WatchLog { watcher: 0, from, events, reconnects: 0 }
}
pub fn fin(node: &str, revision: u64, items: &[(&str, &str, u64)]) -> FinalRead {
    FinalRead {
        node: node.into(),
        revision,
        items: items.iter().map(|(k, v, r)| (k.to_string(), v.to_string(), *r)).collect(),
    }
}
