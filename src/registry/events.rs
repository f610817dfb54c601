//! Kubernetes Events: what happened to an object, for `describe` and
//! `get events`. Written by the control plane, best effort, in the background.
//! A repeat of the same event (same object, type, reason and message) counts
//! up on one Event, as Kubernetes' event correlator does, so a failing write
//! retried with back-off shows as one line with its count instead of a flood.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use clusterd_raft::{Compare, Op, Txn};

use super::Registry;
use crate::objects::{encode, key_of, meta_str, resource_version};

/// Normal or Warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// Routine.
    Normal,
    /// Something went wrong.
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// A `v1/Event` about `object`, named like Kubernetes' (`<name>.<hex>`).
pub fn event_object(object: &Value, kind: EventType, reason: &str, message: &str, component: &str, now: &str) -> Value {
    let name = format!("{}.{:016x}", meta_str(object, "name"), rand::random::<u64>());
    event_named(object, &name, kind, reason, message, component, now)
}

/// The name of the one Event that counts repeats of this event.
pub fn aggregate_name(object: &Value, kind: EventType, reason: &str, message: &str) -> String {
    let mut h = Sha256::new();
    for part in [meta_str(object, "uid"), kind.as_str(), reason, message] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    format!("{}.{}", meta_str(object, "name"), &hex::encode(h.finalize())[..16])
}

fn event_named(
    object: &Value,
    name: &str,
    kind: EventType,
    reason: &str,
    message: &str,
    component: &str,
    now: &str,
) -> Value {
    let ns = match meta_str(object, "namespace") {
        "" => "default",
        ns => ns,
    };
    let host = component.split('/').nth(1).unwrap_or("");
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": uuid::Uuid::new_v4().to_string(),
            "creationTimestamp": now,
        },
        "involvedObject": {
            "apiVersion": object.get("apiVersion").cloned().unwrap_or(Value::Null),
            "kind": object.get("kind").cloned().unwrap_or(Value::Null),
            "name": meta_str(object, "name"),
            "namespace": meta_str(object, "namespace"),
            "uid": meta_str(object, "uid"),
        },
        "reason": reason,
        "message": message,
        "type": kind.as_str(),
        "source": { "component": component.split('/').next().unwrap_or(component), "host": host },
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    })
}

/// The next state of an aggregated Event: one more occurrence, seen `now`.
pub fn counted(mut existing: Value, now: &str) -> Value {
    let count = existing.get("count").and_then(Value::as_i64).unwrap_or(1);
    existing["count"] = json!(count + 1);
    existing["lastTimestamp"] = json!(now);
    existing
}

impl Registry {
    /// Record an Event about `object` (best effort, in the background).
    pub fn record_event(&self, object: &Value, kind: EventType, reason: &str, message: String, component: &str) {
        let event = event_object(object, kind, reason, &message, component, &crate::util::now());
        let Some(key) = key_of(&event) else { return };
        let registry = self.clone();
        tokio::spawn(async move {
            if let Err(e) = registry.propose(Txn::ops(vec![Op::Put { key, value: encode(&event) }])).await {
                tracing::debug!(error = %e, "recording an event failed");
            }
        });
    }

    /// Record an Event about `object`, counting up the same event if it was
    /// recorded before (best effort, in the background).
    pub fn record_repeated_event(
        &self,
        object: &Value,
        kind: EventType,
        reason: &str,
        message: String,
        component: &str,
    ) {
        let name = aggregate_name(object, kind, reason, &message);
        let now = crate::util::now();
        let fresh = event_named(object, &name, kind, reason, &message, component, &now);
        let Some(key) = key_of(&fresh) else { return };
        let registry = self.clone();
        tokio::spawn(async move {
            for _ in 0..3 {
                let (next, rv) = match registry.get_key(&key) {
                    Ok(Some(old)) => {
                        let rv = resource_version(&old);
                        (counted(old, &now), rv)
                    }
                    _ => (fresh.clone(), 0),
                };
                let txn = Txn {
                    compares: vec![Compare::ModRevision(key.clone(), rv)],
                    success: vec![Op::Put { key: key.clone(), value: encode(&next) }],
                };
                match registry.propose(txn).await {
                    Ok(r) if r.failed_compare.is_none() => return,
                    Ok(_) => continue,
                    Err(e) => {
                        tracing::debug!(error = %e, "recording an event failed");
                        return;
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_count_up_on_one_event() {
        let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web", "namespace": "d", "uid": "u1"}});
        let a = aggregate_name(&rs, EventType::Warning, "FailedCreate", "Error creating: x");
        assert_eq!(a, aggregate_name(&rs, EventType::Warning, "FailedCreate", "Error creating: x"));
        assert_ne!(a, aggregate_name(&rs, EventType::Warning, "FailedCreate", "Error creating: y"));
        assert!(a.starts_with("web."));
        let ev = event_named(&rs, &a, EventType::Warning, "FailedCreate", "m", "replicaset-controller", "t0");
        let again = counted(counted(ev, "t1"), "t2");
        assert_eq!((again["count"].as_i64(), again["firstTimestamp"].as_str()), (Some(3), Some("t0")));
        assert_eq!(again["lastTimestamp"], "t2");
        assert_eq!(again["involvedObject"]["uid"], "u1");
    }
}
