//! The namespace controller: a namespace being deleted (Terminating) has
//! everything in it deleted — pods gracefully — and goes itself once empty.

use std::time::Duration;

use serde_json::Value;

use super::framework::{delete_pod, Action, Cache, Outcome, Reconciler};
use crate::actors::store::{key_of, resource_version};
use crate::objects::{meta_str, Kind};

/// The namespace reconciler.
pub struct Namespaces;

/// Every namespaced kind, in the order their objects are deleted.
pub fn namespaced_kinds() -> Vec<&'static str> {
    let order = ["Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet", "Pod"];
    let mut kinds: Vec<&'static str> = order.to_vec();
    // Events are many and need no watching: they go by prefix at the end.
    kinds.extend(
        crate::objects::kinds::KINDS
            .iter()
            .filter(|k| k.namespaced && !order.contains(&k.kind) && k.kind != "Event")
            .map(|k| k.kind),
    );
    kinds
}

impl Reconciler for Namespaces {
    const NAME: &'static str = "namespace";
    const PRIMARY: &'static str = "Namespace";

    fn watches(&self) -> Vec<&'static str> {
        let mut k = vec!["Namespace"];
        k.extend(namespaced_kinds());
        k
    }

    fn affected(&self, obj: &Value, cache: &Cache) -> Vec<String> {
        let ns_kind = Kind::resolve("namespace").expect("namespace");
        if obj["kind"] == "Namespace" {
            return key_of(obj).into_iter().collect();
        }
        let key = ns_kind.key("", meta_str(obj, "namespace"));
        match cache.get("Namespace", &key) {
            Some(ns) if ns.pointer("/metadata/deletionTimestamp").is_some() => vec![key],
            _ => vec![],
        }
    }

    fn reconcile(&self, key: &str, cache: &Cache, now: chrono::DateTime<chrono::Utc>) -> Outcome {
        let Some(ns) = cache.get("Namespace", key) else { return Outcome::default() };
        if ns.pointer("/metadata/deletionTimestamp").is_none() {
            return Outcome::default();
        }
        let name = meta_str(ns, "name");
        let mut out = Outcome { actions: vec![], requeue_after: Some(Duration::from_secs(1)) };
        let mut left = 0;
        for kind in namespaced_kinds() {
            for obj in cache.in_namespace(kind, name) {
                left += 1;
                if obj.pointer("/metadata/deletionTimestamp").is_some() && kind == "Pod" {
                    continue;
                }
                out.actions.push(if kind == "Pod" {
                    delete_pod(obj, now)
                } else {
                    Action::Delete { key: key_of(obj).unwrap_or_default(), rv: resource_version(obj) }
                });
            }
        }
        if left == 0 {
            out.actions.push(Action::DeletePrefix(Kind::resolve("event").expect("event").prefix(Some(name))));
            out.actions.push(Action::Delete { key: key.to_string(), rv: resource_version(ns) });
            out.requeue_after = None;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_terminating_namespace_is_emptied_then_removed() {
        let mut c = Cache::default();
        c.put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "t", "deletionTimestamp": "x", "resourceVersion": "2"}}));
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "t", "resourceVersion": "3"}});
        c.put(cm.clone());
        let out = Namespaces.reconcile("/registry/namespaces/t", &c, chrono::Utc::now());
        assert_eq!(out.actions, vec![Action::Delete { key: "/registry/configmaps/t/c".into(), rv: 3 }]);
        c.remove(&cm);
        let out = Namespaces.reconcile("/registry/namespaces/t", &c, chrono::Utc::now());
        assert_eq!(
            out.actions,
            vec![
                Action::DeletePrefix("/registry/events/t/".into()),
                Action::Delete { key: "/registry/namespaces/t".into(), rv: 2 }
            ]
        );
    }
}
