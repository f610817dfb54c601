//! The namespace controller: a namespace being deleted (Terminating) has
//! everything in it deleted — pods gracefully — and goes itself once empty.

use std::time::Duration;

use serde_json::Value;

use super::framework::{delete_pod, Action, Cache, Outcome, Reconciler};
use crate::objects::kinds::{self, Kind};
use crate::objects::typed::Object;
use crate::objects::{key_of, meta_str, resource_version};

/// The namespace reconciler.
pub struct Namespaces;

/// Every namespaced kind, in the order their objects are deleted.
pub fn namespaced_kinds() -> Vec<&'static Kind> {
    let order =
        [&kinds::DEPLOYMENT, &kinds::STATEFUL_SET, &kinds::DAEMON_SET, &kinds::JOB, &kinds::REPLICA_SET, &kinds::POD];
    let mut all: Vec<&'static Kind> = order.to_vec();
    // Events are many and need no watching: they go by prefix at the end.
    all.extend(kinds::KINDS.iter().copied().filter(|k| k.namespaced && !order.contains(k) && **k != kinds::EVENT));
    all
}

impl Reconciler for Namespaces {
    const NAME: &'static str = "namespace";
    const PRIMARY: &'static Kind = &kinds::NAMESPACE;

    fn watches(&self) -> Vec<&'static Kind> {
        let mut k = vec![&kinds::NAMESPACE];
        k.extend(namespaced_kinds());
        k
    }

    fn affected(&self, obj: &Value, cache: &Cache) -> Vec<String> {
        if Kind::of(obj) == Some(&kinds::NAMESPACE) {
            return key_of(obj).into_iter().collect();
        }
        let key = kinds::NAMESPACE.key("", meta_str(obj, "namespace"));
        match cache.object(&kinds::NAMESPACE, &key).and_then(Object::namespace) {
            Some(ns) if ns.metadata.deletion_timestamp.is_some() => vec![key],
            _ => vec![],
        }
    }

    fn reconcile(&self, key: &str, cache: &Cache, now: chrono::DateTime<chrono::Utc>) -> Outcome {
        let Some(obj) = cache.object(&kinds::NAMESPACE, key) else { return Outcome::default() };
        let Some(ns) = obj.namespace() else { return Outcome::default() };
        if ns.metadata.deletion_timestamp.is_none() {
            return Outcome::default();
        }
        let name = ns.metadata.name.as_deref().unwrap_or("");
        let mut out = Outcome { actions: vec![], requeue_after: Some(Duration::from_secs(1)) };
        let mut left = 0;
        for kind in namespaced_kinds() {
            for o in cache.objects_in(kind, name) {
                left += 1;
                let pod = *kind == kinds::POD;
                if pod && o.metadata().is_some_and(|m| m.deletion_timestamp.is_some()) {
                    continue;
                }
                out.actions.push(if pod {
                    delete_pod(o, now)
                } else {
                    Action::Delete { key: key_of(o).unwrap_or_default(), rv: resource_version(o) }
                });
            }
        }
        if left == 0 {
            out.actions.push(Action::DeletePrefix(kinds::EVENT.prefix(Some(name))));
            out.actions.push(Action::Delete { key: key.to_string(), rv: resource_version(obj) });
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
        c.put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "t", "deletionTimestamp": "2026-01-01T00:00:00Z", "resourceVersion": "2"}}));
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "t", "resourceVersion": "3"}});
        c.put(cm.clone());
        let out = Namespaces.reconcile("/registry/namespaces/t", &c, chrono::Utc::now());
        assert_eq!(out.actions, vec![Action::Delete { key: "/registry/configmaps/t/c".into(), rv: 3 }]);
        c.remove(&cm);
        let pod = |name: &str, deleting: bool| {
            let mut p = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "t", "resourceVersion": "4"},
                "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]}});
            if deleting {
                p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:30Z");
            }
            p
        };
        c.put(pod("going", true));
        c.put(pod("bound", false));
        let out = Namespaces.reconcile("/registry/namespaces/t", &c, chrono::Utc::now());
        let Some(Action::Replace(marked)) = out.actions.first() else { panic!("{:?}", out.actions) };
        assert_eq!(
            (marked["metadata"]["name"].as_str(), out.actions.len()),
            (Some("bound"), 1),
            "bound pods go gracefully"
        );
        assert!(marked["metadata"]["deletionTimestamp"].is_string());
        c.remove(&pod("going", true));
        c.remove(&pod("bound", false));
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
