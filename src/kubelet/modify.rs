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
    store.modify(kind, namespace, name, Origin::ControlPlane, |cur| apply(cur, typed, &mut change)).await
}

/// One attempt of [`modify`] on the stored JSON `cur`: whether it changed.
/// `cur` is left as it was when nothing changed.
pub fn apply<T: Clone + Serialize>(
    cur: &mut Value,
    typed: fn(&Object) -> Option<&T>,
    change: impl FnOnce(&mut T) -> bool,
) -> bool {
    let stored = Object::new(std::mem::take(cur));
    let changed = typed(&stored).cloned().and_then(|mut t| change(&mut t).then_some(t));
    *cur = match &changed {
        Some(t) => stored.with(t),
        None => stored.into_raw(),
    };
    changed.is_some()
}

/// Read a received object (from the registry) into its type.
pub fn typed<T: serde::de::DeserializeOwned>(raw: Value) -> Option<T> {
    serde_json::from_value(raw).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_typed_change_keeps_unknown_fields_and_annotations() {
        let stored = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "d", "uid": "u", "resourceVersion": "9", "annotations": {"team": "blue"}},
            "spec": {"containers": [{"name": "c", "image": "i"}], "futureSpec": 1},
            "status": {"phase": "Pending", "futureStatus": {"x": true},
                "conditions": [{"type": "PodScheduled", "status": "True", "lastProbeTime": null}]}});
        let mut cur = stored.clone();
        assert!(apply(&mut cur, Object::pod, |p| {
            p.status.get_or_insert_with(Default::default).phase = Some("Running".into());
            true
        }));
        assert_eq!(cur["status"]["phase"], "Running");
        assert_eq!(cur["status"]["futureStatus"], json!({"x": true}), "unknown status field kept");
        assert_eq!(cur["spec"]["futureSpec"], 1, "unknown spec field kept");
        assert_eq!(cur["metadata"]["annotations"], json!({"team": "blue"}));
        assert_eq!(cur["metadata"]["resourceVersion"], "9");
        assert_eq!(cur["status"]["conditions"], stored["status"]["conditions"], "untouched fields as stored");

        let mut same = stored.clone();
        assert!(!apply(&mut same, Object::pod, |_| false), "nothing changed: nothing to write");
        assert_eq!(same, stored);
        let mut node = stored.clone();
        assert!(!apply(&mut node, Object::node, |_| true), "not a Node: left alone");
        assert_eq!(node, stored);
    }
}
