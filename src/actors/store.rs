//! The object store as the node's own actors see it: reads from the local replica
//! (no network), writes proposed through Raft with compare-and-swap. The API
//! server's admission applies to creates; status writes and bindings are trusted
//! writes of the control plane.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use clusterd_raft::{Command, CommandResponse, Compare, Op, RaftNode, StoreReader, Txn};

use super::informer::{Change, Informers};
use crate::objects::admission::{self, AdmissionError};
use crate::objects::{meta_str, with_resource_version, Kind};
use crate::util;

/// How long an actor's write waits for a leader.
const WRITE_WAIT: Duration = Duration::from_secs(10);

/// Why an actor's read or write failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object does not exist (any more).
    #[error("{0} not found")]
    NotFound(String),
    /// The object changed under the write, or already exists.
    #[error("conflict on {0}")]
    Conflict(String),
    /// Admission refused the object.
    #[error(transparent)]
    Invalid(#[from] AdmissionError),
    /// No leader could take the write in time.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Local storage or encoding failed.
    #[error("store: {0}")]
    Internal(String),
}

/// Read and write objects on behalf of this node's actors.
#[derive(Clone)]
pub struct ObjectStore {
    node: Arc<RaftNode>,
    informers: Informers,
}

/// Whether a namespace is being deleted (nothing new may be created in it).
pub fn terminating(reader: &StoreReader, namespace: &str) -> bool {
    if namespace.is_empty() {
        return false;
    }
    let key = Kind::resolve("namespace").expect("namespace").key("", namespace);
    reader
        .get(&key)
        .ok()
        .flatten()
        .and_then(|kv| serde_json::from_slice::<Value>(&kv.value).ok())
        .is_some_and(|ns| ns.pointer("/metadata/deletionTimestamp").is_some())
}

/// The stored form of an object: its JSON without resourceVersion.
pub fn encode(obj: &Value) -> Vec<u8> {
    let mut obj = obj.clone();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    serde_json::to_vec(&obj).expect("JSON values serialize")
}

/// An object's resourceVersion as a number (0 when missing).
pub fn resource_version(obj: &Value) -> u64 {
    meta_str(obj, "resourceVersion").parse().unwrap_or(0)
}

/// The store key of an object.
pub fn key_of(obj: &Value) -> Option<String> {
    let kind = Kind::of(obj)?;
    let ns = if kind.namespaced { meta_str(obj, "namespace") } else { "" };
    Some(kind.key(ns, meta_str(obj, "name")))
}

impl ObjectStore {
    /// The store of `node`.
    pub fn new(node: Arc<RaftNode>) -> Self {
        let informers = Informers::new(node.store.clone());
        ObjectStore { node, informers }
    }

    /// Follow every object under `prefix` through the node's shared informers.
    pub fn watch(&self, prefix: String) -> tokio_stream::wrappers::UnboundedReceiverStream<Change> {
        self.informers.watch(prefix)
    }

    /// The local replica.
    pub fn reader(&self) -> &StoreReader {
        &self.node.store
    }

    /// The Raft member.
    pub fn node(&self) -> &Arc<RaftNode> {
        &self.node
    }

    /// Read one object from the local replica.
    pub fn get(&self, kind: &str, namespace: &str, name: &str) -> Result<Option<Value>, StoreError> {
        let kind = Kind::resolve(kind).ok_or_else(|| StoreError::Internal(format!("unknown kind {kind}")))?;
        let key = kind.key(if kind.namespaced { namespace } else { "" }, name);
        self.get_key(&key)
    }

    /// Read the object at `key` from the local replica.
    pub fn get_key(&self, key: &str) -> Result<Option<Value>, StoreError> {
        match self.node.store.get(key).map_err(|e| StoreError::Internal(e.to_string()))? {
            None => Ok(None),
            Some(kv) => Ok(Some(
                with_resource_version(&kv.value, kv.mod_revision).map_err(|e| StoreError::Internal(e.to_string()))?,
            )),
        }
    }

    /// Every object under `prefix` at one revision.
    pub fn list(&self, prefix: &str) -> Result<(Vec<Value>, u64), StoreError> {
        let (kvs, rev) = self.node.store.list(prefix).map_err(|e| StoreError::Internal(e.to_string()))?;
        let objs = kvs.iter().filter_map(|kv| with_resource_version(&kv.value, kv.mod_revision).ok()).collect();
        Ok((objs, rev))
    }

    /// Propose a transaction.
    pub async fn txn(&self, txn: Txn) -> Result<CommandResponse, StoreError> {
        self.node.propose(Command::Txn(txn), WRITE_WAIT).await.map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    /// Create an object through admission (defaults, uid, timestamps).
    pub async fn create(&self, obj: Value) -> Result<Value, StoreError> {
        let kind = Kind::of(&obj).ok_or_else(|| StoreError::Internal("object of unknown kind".into()))?;
        let a = admission::for_create(kind, obj, &util::create_context().as_ref())?;
        if terminating(self.reader(), &a.namespace) {
            return Err(StoreError::Conflict(format!("namespace {} is being terminated", a.namespace)));
        }
        let resp = self.txn(a.create_txn()?).await?;
        match resp.failed_compare {
            None => {
                let mut body = a.body;
                body["metadata"]["resourceVersion"] = json!(resp.revision.to_string());
                Ok(body)
            }
            Some(0) => Err(StoreError::Conflict(a.key)),
            Some(_) => Err(StoreError::NotFound(format!("namespace {}", a.namespace))),
        }
    }

    /// Write `obj` if its resourceVersion is still current (a trusted write: no
    /// admission). Returns the object with its new resourceVersion.
    pub async fn replace(&self, obj: Value) -> Result<Value, StoreError> {
        let key = key_of(&obj).ok_or_else(|| StoreError::Internal("object of unknown kind".into()))?;
        let rv = resource_version(&obj);
        let txn = Txn {
            compares: vec![Compare::ModRevision(key.clone(), rv)],
            success: vec![Op::Put { key: key.clone(), value: encode(&obj) }],
        };
        let resp = self.txn(txn).await?;
        if resp.failed_compare.is_some() {
            return Err(match resp.current {
                None if rv != 0 => StoreError::NotFound(key),
                _ => StoreError::Conflict(key),
            });
        }
        let mut obj = obj;
        obj["metadata"]["resourceVersion"] = json!(resp.revision.to_string());
        Ok(obj)
    }

    /// Read-modify-write with retries on conflict: `change` edits the current
    /// object and says whether anything changed (nothing is written if not).
    pub async fn modify(
        &self,
        key: &str,
        mut change: impl FnMut(&mut Value) -> bool,
    ) -> Result<Option<Value>, StoreError> {
        for _ in 0..10 {
            let Some(mut obj) = self.get_key(key)? else {
                return Err(StoreError::NotFound(key.to_string()));
            };
            if !change(&mut obj) {
                return Ok(None);
            }
            match self.replace(obj).await {
                Ok(v) => return Ok(Some(v)),
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Conflict(key.to_string()))
    }

    /// Remove the object at `key` if its resourceVersion is still `rv` (0: any).
    pub async fn delete(&self, key: &str, rv: u64) -> Result<(), StoreError> {
        let compares = if rv == 0 { vec![] } else { vec![Compare::ModRevision(key.to_string(), rv)] };
        let resp = self.txn(Txn { compares, success: vec![Op::Delete { key: key.to_string() }] }).await?;
        match resp.failed_compare {
            None => Ok(()),
            Some(_) => Err(StoreError::Conflict(key.to_string())),
        }
    }

    /// Record a Kubernetes Event about `object` (best effort, in the background).
    pub fn record_event(&self, object: &Value, kind: EventType, reason: &str, message: String, component: &str) {
        let event = event_object(object, kind, reason, &message, component, &util::now());
        let Some(key) = key_of(&event) else { return };
        let store = self.clone();
        tokio::spawn(async move {
            let txn = Txn::ops(vec![Op::Put { key, value: encode(&event) }]);
            if let Err(e) = store.txn(txn).await {
                tracing::debug!(error = %e, "recording an event failed");
            }
        });
    }
}

/// Normal or Warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// Routine.
    Normal,
    /// Something went wrong.
    Warning,
}

/// A `v1/Event` about `object`, named like Kubernetes' (`<name>.<hex>`).
pub fn event_object(object: &Value, kind: EventType, reason: &str, message: &str, component: &str, now: &str) -> Value {
    let ns = match meta_str(object, "namespace") {
        "" => "default",
        ns => ns,
    };
    let name = meta_str(object, "name");
    let host = component.split('/').nth(1).unwrap_or("");
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": format!("{name}.{:016x}", rand::random::<u64>()),
            "namespace": ns,
            "uid": uuid::Uuid::new_v4().to_string(),
            "creationTimestamp": now,
        },
        "involvedObject": {
            "apiVersion": object.get("apiVersion").cloned().unwrap_or(Value::Null),
            "kind": object.get("kind").cloned().unwrap_or(Value::Null),
            "name": name,
            "namespace": meta_str(object, "namespace"),
            "uid": meta_str(object, "uid"),
        },
        "reason": reason,
        "message": message,
        "type": match kind { EventType::Normal => "Normal", EventType::Warning => "Warning" },
        "source": { "component": component.split('/').next().unwrap_or(component), "host": host },
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    })
}
