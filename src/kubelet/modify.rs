//! The kubelet's writes of objects it reports on (its Node, its Lease, its
//! pods' status) as typed read-modify-writes: the change is made on the
//! k8s-openapi type, and only what it changed is written over the stored
//! JSON, so fields the types do not know survive. The registry still does the
//! compare-and-swap and the retries.

use serde::Serialize;
use serde_json::Value;

use crate::objects::typed::Object;
use crate::objects::Kind;
use crate::registry::{Origin, Registry, RegistryError};

/// Read the object, let `change` edit its typed form (`typed` picks it, e.g.
/// [`Object::pod`]) and say whether anything changed; write it if so, as the
/// control plane. Returns the written object, if one was written. An object
/// that does not read as its type is left alone.
pub async fn modify<T: Clone + Serialize>(
    store: &Registry,
    kind: &Kind,
    namespace: &str,
    name: &str,
    typed: fn(&Object) -> Option<&T>,
    mut change: impl FnMut(&mut T) -> bool,
) -> Result<Option<Value>, RegistryError> {
    store
        .modify(kind, namespace, name, Origin::ControlPlane, |cur| {
            let stored = Object::new(std::mem::take(cur));
            let changed = typed(&stored).cloned().and_then(|mut t| change(&mut t).then_some(t));
            *cur = match &changed {
                Some(t) => stored.with(t),
                None => stored.into_raw(),
            };
            changed.is_some()
        })
        .await
}

/// Read a received object (from the registry) into its type.
pub fn typed<T: serde::de::DeserializeOwned>(raw: Value) -> Option<T> {
    serde_json::from_value(raw).ok()
}
