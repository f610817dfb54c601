//! The shape every controller shares: what a reconcile sees ([`Cache`]), what
//! it asks for ([`Action`], [`Outcome`]), the [`Reconciler`] trait, and the
//! helpers several controllers use. The actor that runs a reconciler is in
//! `runner`.

use std::time::Duration;

use serde_json::{json, Value};

pub use super::cache::Cache;
pub use crate::objects::owners::{controller_ref, controller_uid};
pub use crate::objects::pod::{available as pod_available, inactive as pod_inactive, ready as pod_ready};
use crate::objects::selector::LabelSelector;
use crate::objects::{key_of, meta_str, resource_version, Kind};
use crate::registry::deletion::graceful_delete;

/// A pod of a workload from its `spec.template`: owned by it (as controller),
/// in its namespace, named `name` or generated from the workload's name, with
/// `labels` added to the template's.
pub fn pod_from_template(owner: &Value, name: Option<&str>, labels: &[(&str, &str)]) -> Value {
    let template = owner.pointer("/spec/template").cloned().unwrap_or(json!({}));
    let mut meta = template.get("metadata").cloned().unwrap_or(json!({}));
    let m = meta.as_object_mut().expect("template metadata");
    m.remove("creationTimestamp");
    match name {
        Some(n) => {
            m.insert("name".into(), json!(n));
        }
        None => {
            m.remove("name");
            m.insert("generateName".into(), json!(format!("{}-", meta_str(owner, "name"))));
        }
    }
    m.insert("namespace".into(), json!(meta_str(owner, "namespace")));
    m.insert("ownerReferences".into(), json!([controller_ref(owner)]));
    let l = m.entry("labels").or_insert(json!({}));
    if !l.is_object() {
        *l = json!({});
    }
    for (k, v) in labels {
        l[*k] = json!(v);
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": template.get("spec").cloned().unwrap_or(json!({}))})
}

/// The label selector of a workload's `spec.selector`.
pub fn selector_of(obj: &Value) -> LabelSelector {
    obj.pointer("/spec/selector").map(LabelSelector::from_object).unwrap_or_default()
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
    /// Delete every object under a key prefix, in one transaction (for kinds
    /// a controller does not keep in its cache, such as a namespace's events).
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
pub fn delete_pod(pod: &Value, now: chrono::DateTime<chrono::Utc>) -> Action {
    match graceful_delete(pod, None, now) {
        Some(marked) => Action::Replace(marked),
        None => Action::Delete { key: key_of(pod).unwrap_or_default(), rv: resource_version(pod) },
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
