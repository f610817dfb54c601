//! The namespace controller: a namespace being deleted (Terminating) has
//! everything in it deleted — pods gracefully — and goes itself once empty.

use std::time::Duration;

use serde_json::Value;

use super::framework::{delete_pod, Action, Cache, Outcome, Reconciler};
use crate::objects::kinds::{self, Kind};
use crate::objects::{being_deleted, key_of, meta_str, resource_version};

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
        match cache.get(&kinds::NAMESPACE, &key) {
            Some(ns) if being_deleted(ns) => vec![key],
            _ => vec![],
        }
    }

    fn reconcile(&self, key: &str, cache: &Cache, now: chrono::DateTime<chrono::Utc>) -> Outcome {
        let Some(ns) = cache.get(&kinds::NAMESPACE, key) else { return Outcome::default() };
        if !being_deleted(ns) {
            return Outcome::default();
        }
        let name = meta_str(ns, "name");
        let mut out = Outcome { actions: vec![], requeue_after: Some(Duration::from_secs(1)) };
        let mut left = 0;
        for kind in namespaced_kinds() {
            for obj in cache.in_namespace(kind, name) {
                left += 1;
                let pod = *kind == kinds::POD;
                if pod && being_deleted(obj) {
                    continue;
                }
                out.actions.push(if pod {
                    delete_pod(obj, now)
                } else {
                    Action::Delete { key: key_of(obj).unwrap_or_default(), rv: resource_version(obj) }
                });
            }
        }
        if left == 0 {
            out.actions.push(Action::DeletePrefix(kinds::EVENT.prefix(Some(name))));
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
