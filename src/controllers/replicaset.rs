//! The ReplicaSet controller: keeps `spec.replicas` pods matching the selector
//! owned by the set — adopting matching orphans, releasing pods that no longer
//! match, creating from the template and deleting the least valuable pods
//! first — and reports replicas, ready and available counts.

use std::time::Duration;

use serde_json::{json, Value};

use super::framework::{
    controller_ref, controller_uid, delete_pod, owner_keys, pod_available, pod_from_template, pod_inactive, pod_ready,
    selector_of, Action, Cache, Outcome, Reconciler,
};
use crate::objects::kinds::{self, Kind};
use crate::objects::meta_str;

/// The ReplicaSet reconciler.
pub struct ReplicaSets;

/// Kubernetes' order for deleting pods: unscheduled before scheduled, pending
/// before unknown before running, not ready before ready, newest first.
pub fn deletion_rank(pod: &Value) -> (u8, u8, u8, std::cmp::Reverse<String>) {
    let scheduled = pod.pointer("/spec/nodeName").and_then(Value::as_str).is_some_and(|n| !n.is_empty());
    let phase = match pod.pointer("/status/phase").and_then(Value::as_str) {
        Some("Pending") | None => 0,
        Some("Running") => 2,
        _ => 1,
    };
    (scheduled as u8, phase, pod_ready(pod) as u8, std::cmp::Reverse(meta_str(pod, "creationTimestamp").to_string()))
}

fn min_ready(rs: &Value) -> Duration {
    Duration::from_secs(rs.pointer("/spec/minReadySeconds").and_then(Value::as_u64).unwrap_or(0))
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
                            .in_namespace(&kinds::REPLICA_SET, ns)
                            .filter(|rs| selector_of(rs).matches(obj) && !selector_of(rs).0.is_empty())
                            .filter_map(crate::objects::key_of),
                    );
                }
                keys
            }
            _ => vec![],
        }
    }

    fn reconcile(&self, key: &str, cache: &Cache, now: chrono::DateTime<chrono::Utc>) -> Outcome {
        let Some(rs) = cache.get(&kinds::REPLICA_SET, key) else { return Outcome::default() };
        if crate::objects::being_deleted(rs) {
            return Outcome::default();
        }
        let ns = meta_str(rs, "namespace");
        let uid = meta_str(rs, "uid");
        let selector = selector_of(rs);
        let mut out = Outcome::default();
        let mut mine: Vec<&Value> = Vec::new();
        for pod in cache.in_namespace(&kinds::POD, ns) {
            let owner = controller_uid(pod);
            let matches = !selector.0.is_empty() && selector.matches(pod);
            match owner.as_deref() {
                Some(o) if o == uid => {
                    if matches {
                        mine.push(pod);
                    } else {
                        // Release: the pod no longer matches the selector.
                        let mut p = pod.clone();
                        if let Some(refs) = p.pointer_mut("/metadata/ownerReferences").and_then(Value::as_array_mut) {
                            refs.retain(|r| r["uid"] != uid);
                        }
                        out.actions.push(Action::Replace(p));
                    }
                }
                None if matches && !pod_inactive(pod) => {
                    // Adopt a matching orphan.
                    let mut p = pod.clone();
                    let refs =
                        p["metadata"].as_object_mut().expect("metadata").entry("ownerReferences").or_insert(json!([]));
                    if let Some(a) = refs.as_array_mut() {
                        a.push(controller_ref(rs));
                    }
                    out.actions.push(Action::Replace(p));
                    mine.push(pod);
                }
                _ => {}
            }
        }
        let active: Vec<&Value> = mine.iter().copied().filter(|p| !pod_inactive(p)).collect();
        let want = rs.pointer("/spec/replicas").and_then(Value::as_u64).unwrap_or(1) as usize;
        if active.len() < want {
            for _ in active.len()..want {
                out.actions.push(Action::Create(pod_from_template(rs, None, &[])));
            }
        } else if active.len() > want {
            let mut victims = active.clone();
            victims.sort_by_key(|p| deletion_rank(p));
            for p in victims.into_iter().take(active.len() - want) {
                out.actions.push(delete_pod(p, now));
            }
        }
        // Status.
        let labelled = rs.pointer("/spec/template/metadata/labels").cloned().unwrap_or(json!({}));
        let fully = active
            .iter()
            .filter(|p| {
                labelled.as_object().is_none_or(|m| {
                    m.iter().all(|(k, v)| p.pointer("/metadata/labels").and_then(|l| l.get(k)) == Some(v))
                })
            })
            .count();
        let ready = active.iter().filter(|p| pod_ready(p)).count();
        let min_ready = min_ready(rs);
        let available = active.iter().filter(|p| pod_available(p, min_ready, now)).count();
        if ready > available {
            // Pods become available once they have been ready for minReadySeconds.
            out.requeue_after = Some(min_ready.max(Duration::from_secs(1)));
        }
        let status = json!({
            "replicas": active.len(),
            "fullyLabeledReplicas": fully,
            "readyReplicas": ready,
            "availableReplicas": available,
            "observedGeneration": rs.pointer("/metadata/generation").cloned().unwrap_or(json!(1)),
        });
        if rs.get("status") != Some(&status) {
            let mut new = rs.clone();
            new["status"] = status;
            out.actions.push(Action::Replace(new));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            "spec": {"nodeName": node},
            "status": {"phase": if ready { "Running" } else { "Pending" },
                       "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }, "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
        if let Some(o) = owner {
            p["metadata"]["ownerReferences"] =
                json!([{"kind": "ReplicaSet", "name": "web", "uid": o, "controller": true}]);
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
