//! The StatefulSet controller: pods with stable names `NAME-0…N-1` and
//! hostnames; OrderedReady creates each only when all before it are Running and
//! Ready and scales down from the highest ordinal one at a time; Parallel does
//! both at once; a rolling update replaces pods from the highest ordinal down,
//! one at a time, above the partition.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

use super::daemonset::{owned_pods, pod_revision, template_revision, REVISION_LABEL};
use super::framework::{delete_pod, pod_from_template, Action, Cache, Outcome, Reconciler};
use crate::objects::kinds::{self, Kind};
use crate::objects::pod::PodFacts;
use crate::objects::typed::Object;

/// The StatefulSet reconciler.
pub struct StatefulSets;

fn name_of(sts: &StatefulSet) -> &str {
    sts.metadata.name.as_deref().unwrap_or("")
}

/// The pod of ordinal `i`.
pub fn stateful_pod(obj: &Object, i: i64, hash: &str) -> Value {
    let name = format!("{}-{i}", obj.metadata().and_then(|m| m.name.as_deref()).unwrap_or(""));
    let index = i.to_string();
    let labels = [
        (REVISION_LABEL, hash),
        ("statefulset.kubernetes.io/pod-name", name.as_str()),
        ("apps.kubernetes.io/pod-index", index.as_str()),
    ];
    let pod = Object::new(pod_from_template(obj, Some(&name), &labels));
    let Some(mut typed) = pod.pod().cloned() else { return pod.into_raw() };
    let spec = typed.spec.get_or_insert_with(Default::default);
    spec.hostname = Some(name);
    if let Some(svc) = obj.stateful_set().and_then(|s| s.spec.as_ref()?.service_name.as_ref()) {
        spec.subdomain = Some(svc.clone());
    }
    pod.with(&typed)
}

fn ordinal(sts: &StatefulSet, pod: &Pod) -> Option<i64> {
    pod.metadata.name.as_deref()?.strip_prefix(&format!("{}-", name_of(sts)))?.parse().ok()
}

fn deleting(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_some()
}

/// Running, Ready and not on its way out.
fn settled(p: &Pod) -> bool {
    running_ready(p) && !deleting(p)
}

fn running_ready(p: &Pod) -> bool {
    p.phase() == "Running" && p.is_ready()
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
        let Some(obj) = cache.object(&kinds::STATEFUL_SET, key) else { return Outcome::default() };
        let Some(sts) = obj.stateful_set() else { return Outcome::default() };
        if sts.metadata.deletion_timestamp.is_some() {
            return Outcome::default();
        }
        let ns = sts.metadata.namespace.as_deref().unwrap_or("");
        let spec = sts.spec.as_ref();
        let replicas = spec.and_then(|s| s.replicas).unwrap_or(1) as i64;
        let parallel = spec.and_then(|s| s.pod_management_policy.as_deref()) == Some("Parallel");
        let strategy = spec.and_then(|s| s.update_strategy.as_ref());
        let partition = strategy.and_then(|s| s.rolling_update.as_ref()?.partition).unwrap_or(0) as i64;
        let on_delete = strategy.and_then(|s| s.type_.as_deref()) == Some("OnDelete");
        let hash = template_revision(obj.pod_template());
        let mut by_ordinal: BTreeMap<i64, (&Object, &Pod)> = BTreeMap::new();
        for (o, p) in owned_pods(cache, ns, sts.metadata.uid.as_deref().unwrap_or("")) {
            if let Some(i) = ordinal(sts, p) {
                by_ordinal.insert(i, (o, p));
            }
        }
        let mut out = Outcome::default();
        let terminating = by_ordinal.values().any(|(_, p)| deleting(p));
        // Failed pods are replaced (deleted, then made again with the same name).
        for (o, p) in by_ordinal.values() {
            if p.phase() == "Failed" && !deleting(p) {
                out.actions.push(delete_pod(o, now));
            }
        }
        // Scale up: lowest missing ordinals, in order unless Parallel.
        for i in 0..replicas {
            match by_ordinal.get(&i) {
                None => {
                    if cache.object(&kinds::POD, &kinds::POD.key(ns, &format!("{}-{i}", name_of(sts)))).is_some() {
                        // A pod of that name exists but is not ours (yet): wait.
                        break;
                    }
                    out.actions.push(Action::Create(stateful_pod(obj, i, &hash)));
                    if !parallel {
                        break;
                    }
                }
                Some((_, p)) if !parallel && !settled(p) => break,
                Some(_) => {}
            }
        }
        // Scale down: highest ordinals first, one at a time unless Parallel.
        let extra: Vec<(&Object, &Pod)> = by_ordinal.range(replicas..).rev().map(|(_, p)| *p).collect();
        if !extra.is_empty() && (parallel || !terminating) {
            let all_ready = by_ordinal.range(..replicas).all(|(_, (_, p))| running_ready(p));
            for (o, _) in extra.iter().filter(|(_, p)| !deleting(p)) {
                if !parallel && !all_ready {
                    break;
                }
                out.actions.push(delete_pod(o, now));
                if !parallel {
                    break;
                }
            }
        }
        // Rolling update from the highest ordinal, one at a time, above the partition.
        let ready_all = (0..replicas).all(|i| by_ordinal.get(&i).is_some_and(|(_, p)| running_ready(p)));
        if !on_delete && !terminating && ready_all && extra.is_empty() {
            if let Some((_, (o, _))) = by_ordinal
                .range(partition.max(0)..replicas)
                .rev()
                .find(|(_, (_, p))| pod_revision(p) != Some(hash.as_str()))
            {
                out.actions.push(delete_pod(o, now));
            }
        }
        let live: Vec<&Pod> = by_ordinal.range(..replicas).map(|(_, (_, p))| *p).filter(|p| !deleting(p)).collect();
        let updated = live.iter().filter(|p| pod_revision(p) == Some(hash.as_str())).count() as i32;
        let ready = live.iter().filter(|p| p.is_ready()).count() as i32;
        let live = live.len() as i32;
        let mut status = sts.status.clone().unwrap_or_default();
        status.observed_generation = Some(sts.metadata.generation.unwrap_or(1));
        status.replicas = live;
        status.ready_replicas = Some(ready);
        status.available_replicas = Some(ready);
        status.current_replicas = Some(live - updated);
        status.updated_replicas = Some(updated);
        status.update_revision = Some(format!("{}-{hash}", name_of(sts)));
        if updated == live {
            status.current_revision = status.update_revision.clone();
            status.current_replicas = Some(updated);
        }
        if sts.status.as_ref() != Some(&status) {
            let mut next = sts.clone();
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

    fn sts(replicas: i64, policy: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": "d", "uid": "s1"},
               "spec": {"replicas": replicas, "serviceName": "db", "podManagementPolicy": policy, "selector": {"matchLabels": {"app": "db"}},
                        "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}})
    }

    fn pod(set: &Value, i: i64, ready: bool) -> Value {
        let set = Object::new(set.clone());
        let hash = template_revision(set.pod_template());
        let mut p = stateful_pod(&set, i, &hash);
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
        let p = stateful_pod(&Object::new(s.clone()), 1, "h");
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
        assert_eq!(gone(&out), vec!["/registry/pods/d/db-2"], "one at a time, the highest ordinal first");
    }

    #[test]
    fn a_template_change_replaces_pods_from_the_highest_ordinal() {
        let s = sts(3, "OrderedReady");
        let mut c = Cache::default();
        c.put(s.clone());
        for i in 0..3 {
            c.put(pod(&s, i, true));
        }
        let out = StatefulSets.reconcile("/registry/statefulsets/d/db", &c, chrono::Utc::now());
        assert!(gone(&out).is_empty(), "pods of the current template stay");
        let mut changed = s.clone();
        changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("i2");
        c.put(changed);
        let out = StatefulSets.reconcile("/registry/statefulsets/d/db", &c, chrono::Utc::now());
        assert_eq!(gone(&out), vec!["/registry/pods/d/db-2"]);
    }

    fn gone(out: &Outcome) -> Vec<String> {
        out.actions
            .iter()
            .filter_map(|a| match a {
                Action::Delete { key, .. } => Some(key.clone()),
                Action::Replace(p) if p["kind"] == "Pod" => p["metadata"]["name"].as_str().map(String::from),
                _ => None,
            })
            .collect()
    }
}
