//! The registry: the only code that writes objects.
//!
//! Every door and actor that changes the cluster's state goes through here —
//! the gRPC API, the controllers, the scheduler's binder and the kubelet — so
//! compare-and-swap, resourceVersion stamping, admission, graceful deletion,
//! the addresses of Services (claimed in the Service's own transaction) and
//! the mapping of failures to one error type are written once. User writes
//! pass admission (defaults, validation, server-owned metadata); the control
//! plane's own writes (status, bindings, objects a controller owns) say so
//! with [`Origin::ControlPlane`].
//!
//! Reads come from the node's local replica; the informers share one parsed
//! copy of each object among the node's actors.
//!
//! # Layers
//! The crate's modules depend one way only:
//! `objects → util → registry → {scheduler, controllers, kubelet} → api →
//! cluster → client → cli`. A module never imports one of a higher layer, and
//! no two modules (or files) import each other in a loop;
//! `shared/tools/layers.py` checks it.

pub mod allocate;
pub mod apply;
#[cfg(test)]
mod apply_tests;
pub mod bind;
mod claims;
#[cfg(test)]
mod claims_tests;
pub mod deletion;
mod dry_run;
pub mod error;
pub mod events;
#[cfg(test)]
mod fuzz_create;
pub mod informer;
pub mod patch;
#[cfg(test)]
mod replica_tests;
pub mod strategic;
#[cfg(test)]
pub(crate) mod testing;
pub mod watch;
mod write;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use clusterd_raft::{Command, CommandResponse, KeyValue, RaftNode, StoreReader, Txn};

pub use deletion::DeleteOptions;
pub use error::RegistryError;
pub use events::EventType;
use informer::{Change, Informers};
pub use patch::Patch;

use crate::objects::{kinds, with_resource_version, Kind};

/// How long a write waits for a leader.
const WRITE_WAIT: Duration = Duration::from_secs(10);

/// Who asks for a write: a user (through an API door: admission applies) or the
/// control plane itself (a controller, the scheduler, a kubelet: trusted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A client of the API: defaults, validation and immutability rules apply.
    User,
    /// The cluster's own components writing objects they own or status they
    /// report: written as given, guarded by compare-and-swap only.
    ControlPlane,
}

/// Reads and writes of objects on one node.
#[derive(Clone)]
pub struct Registry {
    node: Arc<RaftNode>,
    informers: Informers,
}

impl Registry {
    /// The registry of `node` (call inside the node's tokio runtime: the
    /// informers' feeds run there).
    pub fn new(node: Arc<RaftNode>) -> Self {
        let informers = Informers::new(node.store.clone());
        Registry { node, informers }
    }

    /// Follow every object of `kind` through the node's shared informers.
    pub fn watch(&self, kind: &Kind) -> tokio_stream::wrappers::UnboundedReceiverStream<Change> {
        self.informers.watch(kind.prefix(None))
    }

    /// The local replica.
    pub fn reader(&self) -> &StoreReader {
        &self.node.store
    }

    /// The Raft member.
    pub fn node(&self) -> &Arc<RaftNode> {
        &self.node
    }

    /// One object from the local replica.
    pub fn get(&self, kind: &Kind, namespace: &str, name: &str) -> Result<Option<Value>, RegistryError> {
        self.get_key(&kind.key(if kind.namespaced { namespace } else { "" }, name))
    }

    /// The object at `key` from the local replica.
    pub fn get_key(&self, key: &str) -> Result<Option<Value>, RegistryError> {
        match self.node.store.get(key)? {
            None => Ok(None),
            Some(kv) => Ok(Some(with_resource_version(&kv.value, kv.mod_revision)?)),
        }
    }

    /// Every object of `kind` (in `namespace`, if given) at one revision.
    pub fn list(&self, kind: &Kind, namespace: Option<&str>) -> Result<(Vec<Value>, u64), RegistryError> {
        self.list_prefix(&kind.prefix(namespace))
    }

    /// Every object under a key prefix at one revision.
    pub fn list_prefix(&self, prefix: &str) -> Result<(Vec<Value>, u64), RegistryError> {
        let (kvs, rev) = self.node.store.list(prefix)?;
        let objs = kvs.iter().filter_map(|kv| with_resource_version(&kv.value, kv.mod_revision).ok()).collect();
        Ok((objs, rev))
    }

    /// The cluster's settings (`init`'s flags), `{}` if unreadable.
    pub fn settings(&self) -> Value {
        self.node
            .store
            .get(crate::objects::conventions::CLUSTER_CONFIG_KEY)
            .ok()
            .flatten()
            .and_then(|kv| serde_json::from_slice(&kv.value).ok())
            .unwrap_or_else(|| Value::Object(Default::default()))
    }

    /// The cluster's service network (ClusterIPs, NodePorts, DNS domain).
    pub fn service_network(&self) -> crate::objects::network::ServiceNetwork {
        crate::objects::network::ServiceNetwork::from_settings(&self.settings())
    }

    /// Whether a namespace is being deleted (nothing new may be created in it).
    pub fn terminating(&self, namespace: &str) -> bool {
        !namespace.is_empty()
            && self
                .get(&kinds::NAMESPACE, "", namespace)
                .ok()
                .flatten()
                .is_some_and(|ns| crate::objects::being_deleted(&ns))
    }

    async fn propose(&self, txn: Txn) -> Result<CommandResponse, RegistryError> {
        self.node.propose(Command::Txn(txn), WRITE_WAIT).await.map_err(RegistryError::Unavailable)
    }

    /// The object at `key` as a write that depends on it must see it: the
    /// local replica's copy, unless that copy would refuse the write (no such
    /// object, or not at the `expected` resourceVersion). A replica lagging
    /// behind the leader must not refuse what the cluster committed, so the
    /// key is then read again after a read barrier.
    async fn current_for_write(&self, key: &str, expected: Option<u64>) -> Result<Option<KeyValue>, RegistryError> {
        let local = self.node.store.get(key)?;
        if !refuses(local.as_ref().map(|kv| kv.mod_revision), expected) {
            return Ok(local);
        }
        self.node.read_barrier(WRITE_WAIT).await.map_err(RegistryError::Unavailable)?;
        Ok(self.node.store.get(key)?)
    }
}

/// Whether an object at `current` (None: absent) refuses a write expecting
/// `expected` (None: any version).
fn refuses(current: Option<u64>, expected: Option<u64>) -> bool {
    match (current, expected) {
        (None, _) => true,
        (Some(c), Some(e)) => c != e,
        (Some(_), None) => false,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_write_is_refused_by_an_absent_object_or_another_version() {
        let cases = [
            (None, None, true),
            (None, Some(3), true),
            (Some(3), Some(3), false),
            (Some(4), Some(3), true),
            (Some(4), None, false),
        ];
        for (current, expected, want) in cases {
            assert_eq!(super::refuses(current, expected), want, "{current:?} {expected:?}");
        }
    }
}
