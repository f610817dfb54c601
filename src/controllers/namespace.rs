//! The namespace controller: a namespace being deleted (Terminating) has
//! everything in it deleted — pods gracefully — and goes itself once empty.
//!
//! Only the workloads and pods are followed (and deleted one by one, from the
//! cache): they need care, and other controllers follow them anyway. Every
//! other namespaced kind is removed from the store by prefix when its
//! namespace is being deleted — like Kubernetes' namespace controller, which
//! lists a namespace's content only then. Following them would hold every
//! ConfigMap and Secret of the cluster in memory for the rare deletion.

use std::time::Duration;

use serde_json::Value;

use super::framework::{delete_pod, Action, Cache, Outcome, Reconciler};
use crate::objects::kinds::{self, Kind};
use crate::objects::typed::Object;
use crate::objects::{key_of, meta_str, resource_version};

/// The namespace reconciler.
pub struct Namespaces;

/// The kinds followed and deleted object by object, in this order: the
/// workloads first (they would make new pods), then the pods, gracefully.
pub const FOLLOWED: [&Kind; 6] =
    [&kinds::DEPLOYMENT, &kinds::STATEFUL_SET, &kinds::DAEMON_SET, &kinds::JOB, &kinds::REPLICA_SET, &kinds::POD];

/// Every other namespaced kind, removed by prefix; events last (deleting pods
/// makes more of them).
pub fn swept_kinds() -> Vec<&'static Kind> {
    let mut all: Vec<&'static Kind> =
        kinds::KINDS.iter().copied().filter(|k| k.namespaced && !FOLLOWED.contains(k) && **k != kinds::EVENT).collect();
    all.push(&kinds::EVENT);
    all
}

impl Reconciler for Namespaces {
    const NAME: &'static str = "namespace";
    const PRIMARY: &'static Kind = &kinds::NAMESPACE;

    fn watches(&self) -> Vec<&'static Kind> {
        let mut k = vec![&kinds::NAMESPACE];
        k.extend(FOLLOWED);
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
        for kind in FOLLOWED {
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
        // The rest goes at once, every round (nothing new can be created in a
        // terminating namespace, so a sweep finding nothing costs one read),
        // and before the namespace itself: a failed sweep holds that back.
        let swept = swept_kinds();
        let (events, rest) = swept.split_last().expect("events are swept");
        out.actions.extend(rest.iter().map(|k| Action::DeletePrefix(k.prefix(Some(name)))));
        if left == 0 {
            out.actions.push(Action::DeletePrefix(events.prefix(Some(name))));
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

    const NS: &str = "/registry/namespaces/t";

    fn namespace(name: &str, deleting: bool) -> Value {
        let mut n =
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "resourceVersion": "2"}});
        if deleting {
            n["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        n
    }

    fn pod(ns: &str, name: &str, deleting: bool) -> Value {
        let mut p = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "resourceVersion": "4"},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]}});
        if deleting {
            p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:30Z");
        }
        p
    }

    fn deployment(ns: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": ns, "resourceVersion": "3"}})
    }

    /// What a round asks for, in short: `delete KEY`, `mark NAME` (a pod's
    /// graceful deletion), `sweep PREFIX`.
    fn summary(out: &Outcome) -> Vec<String> {
        out.actions
            .iter()
            .map(|a| match a {
                Action::Delete { key, .. } => format!("delete {key}"),
                Action::Replace(o) if o["metadata"]["deletionTimestamp"].is_string() => {
                    format!("mark {}", o["metadata"]["name"].as_str().unwrap_or(""))
                }
                Action::DeletePrefix(p) => format!("sweep {p}"),
                other => format!("{other:?}"),
            })
            .collect()
    }

    fn sweeps(with_events: bool) -> Vec<String> {
        let mut s: Vec<String> = [
            "configmaps",
            "secrets",
            "serviceaccounts",
            "leases",
            "services/specs",
            "services/endpoints",
            "endpointslices",
        ]
        .iter()
        .map(|p| format!("sweep /registry/{p}/t/"))
        .collect();
        if with_events {
            s.push("sweep /registry/events/t/".into());
        }
        s
    }

    #[test]
    fn a_terminating_namespace_is_emptied_then_removed() {
        let then = |first: &[&str], v: Vec<String>, last: &[&str]| -> Vec<String> {
            let all = first.iter().map(|s| s.to_string()).chain(v);
            all.chain(last.iter().map(|s| s.to_string())).collect()
        };
        // (what, the objects, the actions wanted, the requeue wanted)
        type Case<'a> = (&'a str, Vec<Value>, Vec<String>, Option<Duration>);
        let cases: Vec<Case> = vec![
            ("a namespace in use is left alone", vec![namespace("t", false), pod("t", "a", false)], vec![], None),
            (
                "workloads go first, bound pods are marked, the rest is swept; the namespace waits",
                vec![namespace("t", true), pod("t", "bound", false), pod("t", "going", true), deployment("t")],
                then(&["delete /registry/deployments/t/web", "mark bound"], sweeps(false), &[]),
                Some(Duration::from_secs(1)),
            ),
            (
                "pods already going only hold the namespace back",
                vec![namespace("t", true), pod("t", "going", true)],
                sweeps(false),
                Some(Duration::from_secs(1)),
            ),
            (
                "nothing followed is left: the rest and the events are swept, then the namespace goes",
                vec![namespace("t", true), pod("t2", "other", false), deployment("t2")],
                then(&[], sweeps(true), &["delete /registry/namespaces/t"]),
                None,
            ),
        ];
        for (what, objects, want, requeue) in cases {
            let mut c = Cache::default();
            objects.into_iter().for_each(|o| c.put(o));
            let out = Namespaces.reconcile(NS, &c, chrono::Utc::now());
            assert_eq!((summary(&out), out.requeue_after), (want, requeue), "{what}");
        }
    }

    #[test]
    fn every_namespaced_kind_is_followed_or_swept_and_only_workloads_and_pods_are_held() {
        let watched = Namespaces.watches();
        let swept = swept_kinds();
        for kind in kinds::KINDS.iter().filter(|k| k.namespaced) {
            assert!(watched.contains(kind) != swept.contains(kind), "{} followed or swept, not both", kind.kind);
        }
        assert!(!watched.contains(&&kinds::CONFIG_MAP) && !watched.contains(&&kinds::SECRET));
        assert_eq!(swept.last(), Some(&&kinds::EVENT), "events go last");
    }

    #[test]
    fn a_change_concerns_its_namespace_only_while_it_terminates() {
        let mut c = Cache::default();
        c.put(namespace("t", true));
        c.put(namespace("u", false));
        assert_eq!(Namespaces.affected(&pod("t", "a", false), &c), vec![NS.to_string()]);
        assert!(Namespaces.affected(&pod("u", "a", false), &c).is_empty());
        assert_eq!(Namespaces.affected(&namespace("u", false), &c), vec!["/registry/namespaces/u".to_string()]);
    }
}
