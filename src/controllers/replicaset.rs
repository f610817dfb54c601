//! The ReplicaSet controller: keeps `spec.replicas` pods matching the selector
//! owned by the set — adopting matching orphans, releasing pods that no longer
//! match, creating from the template and deleting the least valuable pods
//! first — and reports replicas, ready and available counts.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde_json::Value;

use super::framework::{
    controller_uid, delete_pod, owner_keys, pod_from_template, selector_of, Action, Cache, Outcome, Reconciler,
};
use crate::objects::kinds::{self, Kind};
use crate::objects::meta_str;
use crate::objects::pod::PodFacts;
use crate::objects::typed::Object;

/// The ReplicaSet reconciler.
pub struct ReplicaSets;

/// Kubernetes' order for deleting pods: unscheduled before scheduled, pending
/// before unknown before running, not ready before ready, newest first.
pub fn deletion_rank(pod: &Pod) -> (u8, u8, u8, std::cmp::Reverse<Option<k8s_openapi::jiff::Timestamp>>) {
    let spec = pod.spec.as_ref();
    let scheduled = spec.and_then(|s| s.node_name.as_deref()).is_some_and(|n| !n.is_empty());
    let phase = match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Pending") | None => 0,
        Some("Running") => 2,
        _ => 1,
    };
    let ready = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let created = pod.metadata.creation_timestamp.as_ref().map(|t| t.0);
    (scheduled as u8, phase, ready as u8, std::cmp::Reverse(created))
}

/// A pod being deleted or finished (or not readable as a pod).
fn inactive(pod: &Object) -> bool {
    pod.pod().is_none_or(PodFacts::inactive)
}

/// A pod that now names `owner` as its controller.
fn adopted(pod: &Object, owner: &ReplicaSet) -> Option<Value> {
    let mut p = pod.pod()?.clone();
    let reference = OwnerReference {
        api_version: "apps/v1".into(),
        kind: "ReplicaSet".into(),
        name: owner.metadata.name.clone().unwrap_or_default(),
        uid: owner.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    p.metadata.owner_references.get_or_insert_with(Vec::new).push(reference);
    Some(pod.with(&p))
}

/// The status the pods observed give a set.
fn status(rs: &ReplicaSet, active: &[&Object], now: chrono::DateTime<chrono::Utc>) -> (ReplicaSetStatus, Duration) {
    let template_labels = rs.spec.as_ref().and_then(|s| s.template.as_ref()?.metadata.as_ref()?.labels.clone());
    let fully = active
        .iter()
        .filter_map(|p| p.pod())
        .filter(|p| {
            template_labels.iter().flatten().all(|(k, v)| p.metadata.labels.as_ref().and_then(|l| l.get(k)) == Some(v))
        })
        .count();
    let min_ready = Duration::from_secs(rs.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0).max(0) as u64);
    let ready = active.iter().filter_map(|p| p.pod()).filter(|p| p.is_ready()).count();
    let available = active.iter().filter_map(|p| p.pod()).filter(|p| p.is_available(min_ready, now)).count();
    let status = ReplicaSetStatus {
        replicas: active.len() as i32,
        fully_labeled_replicas: Some(fully as i32),
        ready_replicas: Some(ready as i32),
        available_replicas: Some(available as i32),
        observed_generation: Some(rs.metadata.generation.unwrap_or(1)),
        conditions: rs.status.as_ref().and_then(|s| s.conditions.clone()),
        terminating_replicas: None,
    };
    // Pods become available once they have been ready for minReadySeconds.
    let wait = if ready > available { min_ready.max(Duration::from_secs(1)) } else { Duration::ZERO };
    (status, wait)
}

impl Reconciler for ReplicaSets {
    const NAME: &'static str = "replicaset";
    const PRIMARY: &'static Kind = &kinds::REPLICA_SET;

    fn watches(&self) -> Vec<&'static Kind> {
        vec![&kinds::REPLICA_SET, &kinds::POD]
    }

    fn affected(&self, obj: &Value, cache: &Cache) -> Vec<String> {
        match obj["kind"].as_str() {
            Some("ReplicaSet") => crate::objects::key_of(obj).into_iter().collect(),
            Some("Pod") => {
                let mut keys = owner_keys(obj, &kinds::REPLICA_SET);
                // An orphan may be adopted by any set whose selector matches it.
                if controller_uid(obj).is_none() {
                    let ns = meta_str(obj, "namespace");
                    keys.extend(
                        cache
                            .objects_in(&kinds::REPLICA_SET, ns)
                            .filter(|rs| selector_of(rs).matches(obj) && !selector_of(rs).0.is_empty())
                            .filter_map(|rs| crate::objects::key_of(rs)),
                    );
                }
                keys
            }
            _ => vec![],
        }
    }

    fn reconcile(&self, key: &str, cache: &Cache, now: chrono::DateTime<chrono::Utc>) -> Outcome {
        let Some(obj) = cache.object(&kinds::REPLICA_SET, key) else { return Outcome::default() };
        let Some(rs) = obj.replica_set() else { return Outcome::default() };
        if rs.metadata.deletion_timestamp.is_some() {
            return Outcome::default();
        }
        let ns = rs.metadata.namespace.as_deref().unwrap_or("");
        let uid = rs.metadata.uid.as_deref().unwrap_or("");
        let selector = selector_of(obj);
        let mut out = Outcome::default();
        let mut mine: Vec<&Object> = Vec::new();
        for pod in cache.objects_in(&kinds::POD, ns) {
            let matches = !selector.0.is_empty() && selector.matches(pod);
            match controller_uid(pod).as_deref() {
                Some(o) if o == uid && matches => mine.push(pod),
                Some(o) if o == uid => {
                    // Release: the pod no longer matches the selector.
                    if let Some(mut p) = pod.pod().cloned() {
                        p.metadata.owner_references.get_or_insert_with(Vec::new).retain(|o| o.uid != uid);
                        out.actions.push(Action::Replace(pod.with(&p)));
                    }
                }
                None if matches && !inactive(pod) => {
                    // Adopt a matching orphan.
                    if let Some(p) = adopted(pod, rs) {
                        out.actions.push(Action::Replace(p));
                        mine.push(pod);
                    }
                }
                _ => {}
            }
        }
        let active: Vec<&Object> = mine.iter().copied().filter(|p| !inactive(p)).collect();
        let want = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1).max(0) as usize;
        if active.len() < want {
            for _ in active.len()..want {
                out.actions.push(Action::Create(pod_from_template(obj, None, &[])));
            }
        } else if active.len() > want {
            let mut victims: Vec<(&Object, &Pod)> = active.iter().filter_map(|p| Some((*p, p.pod()?))).collect();
            victims.sort_by_key(|(_, p)| deletion_rank(p));
            for (p, _) in victims.into_iter().take(active.len() - want) {
                out.actions.push(delete_pod(p, now));
            }
        }
        let (status, wait) = status(rs, &active, now);
        if !wait.is_zero() {
            out.requeue_after = Some(wait);
        }
        if rs.status.as_ref() != Some(&status) {
            let mut next = rs.clone();
            next.status = Some(status);
            out.actions.push(Action::Replace(obj.with(&next)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rs(replicas: u64) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
               "metadata": {"name": "web", "namespace": "d", "uid": "rs1", "generation": 2, "resourceVersion": "5"},
               "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}})
    }

    fn pod(name: &str, owner: Option<&str>, app: &str, ready: bool, node: &str) -> Value {
        let mut p = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "d", "uid": format!("u-{name}"), "labels": {"app": app},
                         "creationTimestamp": format!("2026-01-01T00:00:0{}Z", name.len() % 10), "resourceVersion": "3"},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": if ready { "Running" } else { "Pending" },
                       "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }, "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
        if let Some(o) = owner {
            p["metadata"]["ownerReferences"] =
                json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": o, "controller": true}]);
        }
        p
    }

    fn now() -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::parse_from_rfc3339("2026-01-01T01:00:00Z").unwrap().with_timezone(&chrono::Utc)
    }

    #[test]
    fn creates_missing_pods_from_the_template() {
        let mut c = Cache::default();
        c.put(rs(3));
        c.put(pod("a", Some("rs1"), "web", true, "n1"));
        let out = ReplicaSets.reconcile("/registry/replicasets/d/web", &c, now());
        let creates: Vec<_> =
            out.actions.iter().filter_map(|a| if let Action::Create(p) = a { Some(p) } else { None }).collect();
        assert_eq!(creates.len(), 2);
        assert_eq!(creates[0]["metadata"]["generateName"], "web-");
        assert_eq!(creates[0]["metadata"]["ownerReferences"][0]["uid"], "rs1");
        assert_eq!(creates[0]["metadata"]["labels"]["app"], "web");
    }

    #[test]
    fn adopts_orphans_releases_strays_and_deletes_the_least_valuable() {
        let mut c = Cache::default();
        c.put(rs(1));
        c.put(pod("ready", Some("rs1"), "web", true, "n1"));
        c.put(pod("pending", Some("rs1"), "web", false, ""));
        c.put(pod("orphan", None, "web", true, "n1"));
        c.put(pod("stray", Some("rs1"), "other", true, "n1"));
        let out = ReplicaSets.reconcile("/registry/replicasets/d/web", &c, now());
        let replaced: Vec<&Value> =
            out.actions.iter().filter_map(|a| if let Action::Replace(p) = a { Some(p) } else { None }).collect();
        let adopted = replaced.iter().find(|p| p["metadata"]["name"] == "orphan").unwrap();
        assert_eq!(adopted["metadata"]["ownerReferences"][0]["uid"], "rs1");
        let released = replaced.iter().find(|p| p["metadata"]["name"] == "stray").unwrap();
        assert_eq!(released["metadata"]["ownerReferences"], json!([]));
        // Three active (ready, pending, orphan) for one wanted: the unscheduled one goes first.
        let deleted: Vec<String> = out
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::Delete { key, .. } => Some(key.clone()),
                Action::Replace(p) if crate::objects::being_deleted(p) => {
                    Some(p["metadata"]["name"].as_str().unwrap().to_string())
                }
                _ => None,
            })
            .collect();
        assert_eq!(deleted.len(), 2);
        assert!(deleted[0].ends_with("pending"), "{deleted:?}");
    }

    #[test]
    fn status_counts_ready_and_available() {
        let mut c = Cache::default();
        c.put(rs(2));
        c.put(pod("a", Some("rs1"), "web", true, "n1"));
        c.put(pod("bb", Some("rs1"), "web", false, "n1"));
        let out = ReplicaSets.reconcile("/registry/replicasets/d/web", &c, now());
        let st = out
            .actions
            .iter()
            .find_map(|a| if let Action::Replace(r) = a { (r["kind"] == "ReplicaSet").then_some(r) } else { None })
            .unwrap();
        assert_eq!(
            st["status"],
            json!({"replicas": 2, "fullyLabeledReplicas": 2, "readyReplicas": 1, "availableReplicas": 1, "observedGeneration": 2})
        );
    }
}
