//! The StatefulSet controller: pods with stable names `NAME-0…N-1` and
//! hostnames; OrderedReady creates each only when all before it are Running and
//! Ready and scales down from the highest ordinal one at a time; Parallel does
//! both at once; a rolling update replaces pods from the highest ordinal down,
//! one at a time, above the partition.

use serde_json::{json, Value};

use super::daemonset::REVISION_LABEL;
use super::deployment::template_hash;
use super::framework::{delete_pod, pod_from_template, pod_ready, Action, Cache, Outcome, Reconciler};
use crate::objects::kinds::{self, Kind};
use crate::objects::meta_str;

/// The StatefulSet reconciler.
pub struct StatefulSets;

/// The pod of ordinal `i`.
pub fn stateful_pod(sts: &Value, i: i64, hash: &str) -> Value {
    let name = format!("{}-{i}", meta_str(sts, "name"));
    let index = i.to_string();
    let labels = [
        (REVISION_LABEL, hash),
        ("statefulset.kubernetes.io/pod-name", name.as_str()),
        ("apps.kubernetes.io/pod-index", index.as_str()),
    ];
    let mut pod = pod_from_template(&crate::objects::typed::Object::new(sts.clone()), Some(&name), &labels);
    pod["spec"]["hostname"] = json!(name);
    if let Some(svc) = sts.pointer("/spec/serviceName").and_then(Value::as_str) {
        pod["spec"]["subdomain"] = json!(svc);
    }
    pod
}

fn ordinal(sts: &Value, pod: &Value) -> Option<i64> {
    meta_str(pod, "name").strip_prefix(&format!("{}-", meta_str(sts, "name")))?.parse().ok()
}

/// Running, Ready and not on its way out.
fn settled(p: &Value) -> bool {
    running_ready(p) && !crate::objects::being_deleted(p)
}

fn running_ready(p: &Value) -> bool {
    p.pointer("/status/phase").and_then(Value::as_str) == Some("Running") && pod_ready(p)
}

impl Reconciler for StatefulSets {
    const NAME: &'static str = "statefulset";
    const PRIMARY: &'static Kind = &kinds::STATEFUL_SET;

    fn watches(&self) -> Vec<&'static Kind> {
        vec![&kinds::STATEFUL_SET, &kinds::POD]
    }

    fn affected(&self, obj: &Value, _cache: &Cache) -> Vec<String> {
        super::framework::self_or_owners(obj, Self::PRIMARY, &kinds::POD)
    }

    fn reconcile(&self, key: &str, cache: &Cache, now: chrono::DateTime<chrono::Utc>) -> Outcome {
        let Some(sts) = cache.get(&kinds::STATEFUL_SET, key) else { return Outcome::default() };
        if crate::objects::being_deleted(sts) {
            return Outcome::default();
        }
        let ns = meta_str(sts, "namespace");
        let replicas = sts.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
        let parallel = sts.pointer("/spec/podManagementPolicy").and_then(Value::as_str) == Some("Parallel");
        let partition =
            sts.pointer("/spec/updateStrategy/rollingUpdate/partition").and_then(Value::as_i64).unwrap_or(0);
        let on_delete = sts.pointer("/spec/updateStrategy/type").and_then(Value::as_str) == Some("OnDelete");
        let hash =
            template_hash(&crate::objects::typed::Object::new(sts.clone()).pod_template().cloned().unwrap_or_default());
        let pod_kind = &crate::objects::kinds::POD;
        let mut by_ordinal: std::collections::BTreeMap<i64, &Value> = std::collections::BTreeMap::new();
        for p in cache.owned_by(&kinds::POD, ns, meta_str(sts, "uid")).map(|o| o.raw()) {
            if let Some(i) = ordinal(sts, p) {
                by_ordinal.insert(i, p);
            }
        }
        let mut out = Outcome::default();
        let terminating = by_ordinal.values().any(|p| crate::objects::being_deleted(p));
        // Failed pods are replaced (deleted, then made again with the same name).
        for p in by_ordinal.values() {
            if p.pointer("/status/phase").and_then(Value::as_str) == Some("Failed") && !crate::objects::being_deleted(p)
            {
                out.actions.push(delete_pod(p, now));
            }
        }
        // Scale up: lowest missing ordinals, in order unless Parallel.
        for i in 0..replicas {
            match by_ordinal.get(&i) {
                None => {
                    if cache.get(&kinds::POD, &pod_kind.key(ns, &format!("{}-{i}", meta_str(sts, "name")))).is_some() {
                        // A pod of that name exists but is not ours (yet): wait.
                        break;
                    }
                    out.actions.push(Action::Create(stateful_pod(sts, i, &hash)));
                    if !parallel {
                        break;
                    }
                }
                Some(p) if !parallel && !settled(p) => break,
                Some(_) => {}
            }
        }
        // Scale down: highest ordinals first, one at a time unless Parallel.
        let extra: Vec<&Value> = by_ordinal.range(replicas..).rev().map(|(_, p)| *p).collect();
        if !extra.is_empty() && (parallel || !terminating) {
            let all_ready = by_ordinal.range(..replicas).all(|(_, p)| running_ready(p));
            for p in extra.iter().filter(|p| !crate::objects::being_deleted(p)) {
                if !parallel && !all_ready {
                    break;
                }
                out.actions.push(delete_pod(p, now));
                if !parallel {
                    break;
                }
            }
        }
        // Rolling update from the highest ordinal, one at a time, above the partition.
        let ready_all = (0..replicas).all(|i| by_ordinal.get(&i).is_some_and(|p| running_ready(p)));
        if !on_delete && !terminating && ready_all && extra.is_empty() {
            if let Some((_, p)) = by_ordinal.range(partition.max(0)..replicas).rev().find(|(_, p)| {
                p.pointer(&format!("/metadata/labels/{REVISION_LABEL}")).and_then(Value::as_str) != Some(hash.as_str())
            }) {
                out.actions.push(delete_pod(p, now));
            }
        }
        let live: Vec<&Value> =
            by_ordinal.range(..replicas).map(|(_, p)| *p).filter(|p| !crate::objects::being_deleted(p)).collect();
        let updated = live
            .iter()
            .filter(|p| {
                p.pointer(&format!("/metadata/labels/{REVISION_LABEL}")).and_then(Value::as_str) == Some(hash.as_str())
            })
            .count();
        let ready = live.iter().filter(|p| pod_ready(p)).count();
        let mut status = sts.get("status").cloned().unwrap_or(json!({}));
        status["observedGeneration"] = sts.pointer("/metadata/generation").cloned().unwrap_or(json!(1));
        status["replicas"] = json!(live.len());
        status["readyReplicas"] = json!(ready);
        status["availableReplicas"] = json!(ready);
        status["currentReplicas"] = json!(live.len() - updated);
        status["updatedReplicas"] = json!(updated);
        status["updateRevision"] = json!(format!("{}-{hash}", meta_str(sts, "name")));
        if updated == live.len() {
            status["currentRevision"] = status["updateRevision"].clone();
            status["currentReplicas"] = json!(updated);
        }
        if sts.get("status") != Some(&status) {
            let mut n = sts.clone();
            n["status"] = status;
            out.actions.push(Action::Replace(n));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sts(replicas: i64, policy: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": "d", "uid": "s1"},
               "spec": {"replicas": replicas, "serviceName": "db", "podManagementPolicy": policy, "selector": {"matchLabels": {"app": "db"}},
                        "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}})
    }

    fn pod(set: &Value, i: i64, ready: bool) -> Value {
        let hash = template_hash(&serde_json::from_value(set["spec"]["template"].clone()).unwrap());
        let mut p = stateful_pod(set, i, &hash);
        p["metadata"]["uid"] = json!(format!("p{i}"));
        p["status"] = json!({"phase": "Running", "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]});
        p
    }

    fn created(out: &Outcome) -> Vec<String> {
        out.actions
            .iter()
            .filter_map(
                |a| if let Action::Create(p) = a { p["metadata"]["name"].as_str().map(String::from) } else { None },
            )
            .collect()
    }

    #[test]
    fn ordered_ready_creates_one_at_a_time() {
        let s = sts(3, "OrderedReady");
        let mut c = Cache::default();
        c.put(s.clone());
        assert_eq!(
            created(&StatefulSets.reconcile("/registry/statefulsets/d/db", &c, chrono::Utc::now())),
            vec!["db-0"]
        );
        c.put(pod(&s, 0, false));
        assert!(created(&StatefulSets.reconcile("/registry/statefulsets/d/db", &c, chrono::Utc::now())).is_empty());
        c.put(pod(&s, 0, true));
        assert_eq!(
            created(&StatefulSets.reconcile("/registry/statefulsets/d/db", &c, chrono::Utc::now())),
            vec!["db-1"]
        );
        let p = stateful_pod(&s, 1, "h");
        assert_eq!(p["spec"]["hostname"], "db-1");
        assert_eq!(p["spec"]["subdomain"], "db");
    }

    #[test]
    fn parallel_creates_all_and_scale_down_takes_the_highest_first() {
        let s = sts(3, "Parallel");
        let mut c = Cache::default();
        c.put(s.clone());
        assert_eq!(
            created(&StatefulSets.reconcile("/registry/statefulsets/d/db", &c, chrono::Utc::now())),
            vec!["db-0", "db-1", "db-2"]
        );
        let s1 = sts(1, "OrderedReady");
        let mut c = Cache::default();
        c.put(s1.clone());
        for i in 0..3 {
            c.put(pod(&s1, i, true));
        }
        let out = StatefulSets.reconcile("/registry/statefulsets/d/db", &c, chrono::Utc::now());
        let gone: Vec<String> = out
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::Delete { key, .. } => Some(key.clone()),
                Action::Replace(p) if p["kind"] == "Pod" => p["metadata"]["name"].as_str().map(String::from),
                _ => None,
            })
            .collect();
        assert_eq!(gone, vec!["/registry/pods/d/db-2"], "one at a time, the highest ordinal first");
    }
}
