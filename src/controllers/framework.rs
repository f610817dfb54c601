//! The shape every controller shares: what a reconcile sees ([`Cache`]), what
//! it asks for ([`Action`], [`Outcome`]), the [`Reconciler`] trait, and the
//! helpers several controllers use. The actor that runs a reconciler is in
//! `runner`.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde_json::Value;

pub use super::cache::Cache;
pub use crate::objects::owners::controller_uid;
use crate::objects::selector::LabelSelector;
use crate::objects::typed::Object;
use crate::objects::{key_of, meta_str, resource_version, Kind};
use crate::registry::deletion::mark_graceful;

/// A pod of a workload from its `spec.template`: owned by it (as controller),
/// in its namespace, named `name` or generated from the workload's name, with
/// `labels` added to the template's.
pub fn pod_from_template(owner: &Object, name: Option<&str>, labels: &[(&str, &str)]) -> Value {
    let template = owner.pod_template().cloned().unwrap_or_default();
    let owner_meta = owner.metadata().cloned().unwrap_or_default();
    let mut meta = template.metadata.unwrap_or_default();
    meta.creation_timestamp = None;
    match name {
        Some(n) => meta.name = Some(n.into()),
        None => {
            meta.name = None;
            meta.generate_name = Some(format!("{}-", owner_meta.name.as_deref().unwrap_or_default()));
        }
    }
    meta.namespace = owner_meta.namespace.clone();
    let kind = Kind::of(owner);
    meta.owner_references = Some(vec![OwnerReference {
        api_version: kind.map_or("", |k| k.api_version).into(),
        kind: kind.map_or("", |k| k.kind).into(),
        name: owner_meta.name.unwrap_or_default(),
        uid: owner_meta.uid.unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }]);
    let all = meta.labels.get_or_insert_with(Default::default);
    for (k, v) in labels {
        all.insert((*k).into(), (*v).into());
    }
    let pod = Pod { metadata: meta, spec: template.spec, status: None };
    serde_json::to_value(pod).expect("a pod serializes")
}

/// The label selector of a workload's `spec.selector`.
pub fn selector_of(obj: &Object) -> LabelSelector {
    obj.selector().map(LabelSelector::from_meta).unwrap_or_default()
}

/// What a reconcile asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Create an object (through admission: defaults, uid, generated name).
    Create(Value),
    /// Write an object if its resourceVersion is still current.
    Replace(Value),
    /// Delete the object at a key if its resourceVersion is still this one.
    Delete {
        /// Store key.
        key: String,
        /// Expected resourceVersion.
        rv: u64,
    },
    /// Delete an object whose owners are all gone — after checking the store
    /// for them (a pod goes gracefully).
    DeleteOrphan(Value),
    /// Delete every object under a key prefix, in transactions of bounded size
    /// (for kinds a controller does not keep in its cache, such as a
    /// terminating namespace's ConfigMaps and events).
    DeletePrefix(String),
    /// Record an event about an object.
    Event {
        /// The object.
        object: Value,
        /// Warning or not.
        warning: bool,
        /// Reason.
        reason: String,
        /// Message.
        message: String,
    },
}

/// Delete a pod as the API does: a pod bound to a node is marked with a
/// deletionTimestamp (its kubelet stops it and removes it); others go at once.
pub fn delete_pod(obj: &Object, now: chrono::DateTime<chrono::Utc>) -> Action {
    match obj.pod().and_then(|pod| mark_graceful(pod, None, now)) {
        Some(marked) => Action::Replace(obj.with(&marked)),
        None => Action::Delete { key: key_of(obj).unwrap_or_default(), rv: resource_version(obj) },
    }
}

/// The outcome of one reconcile.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    /// Writes to make, in order.
    pub actions: Vec<Action>,
    /// Look again after this long even if nothing changes.
    pub requeue_after: Option<Duration>,
}

/// A controller's logic: which kinds it watches, which primary objects a change
/// concerns, and the reconcile of one primary object.
pub trait Reconciler: Unpin + 'static {
    /// Name in logs and events.
    const NAME: &'static str;
    /// The primary kind.
    const PRIMARY: &'static Kind;
    /// Every kind watched (the primary one included).
    fn watches(&self) -> Vec<&'static Kind>;
    /// The primary keys a change to `obj` concerns.
    fn affected(&self, obj: &Value, cache: &Cache) -> Vec<String>;
    /// Bring one primary object's world towards its spec.
    fn reconcile(&self, key: &str, cache: &Cache, now: chrono::DateTime<chrono::Utc>) -> Outcome;
}

/// The usual `affected`: a primary object concerns itself, a dependent of kind
/// `dependent` concerns its owners of the primary kind.
pub fn self_or_owners(obj: &Value, primary: &Kind, dependent: &Kind) -> Vec<String> {
    match Kind::of(obj) {
        Some(k) if k == primary => key_of(obj).into_iter().collect(),
        Some(k) if k == dependent => owner_keys(obj, primary),
        _ => vec![],
    }
}

/// The keys of the controller owners of `obj` of kind `primary`, in its namespace.
pub fn owner_keys(obj: &Value, primary: &Kind) -> Vec<String> {
    let ns = meta_str(obj, "namespace");
    crate::objects::owners::owner_names(obj, primary.kind).map(|name| primary.key(ns, name)).collect()
}
