//! The DaemonSet controller: one pod per eligible node (nodeSelector, required
//! node affinity, taints — with the tolerations Kubernetes gives daemon pods),
//! nodes that join later included, pods on nodes no longer eligible removed,
//! and a rolling update of at most `maxUnavailable` nodes at a time.

use k8s_openapi::api::core::v1::{Node, Pod};
use serde::Deserialize;
use serde_json::{json, Value};

use super::deployment::template_hash;
use super::framework::{delete_pod, pod_available, pod_from_template, pod_ready, Action, Cache, Outcome, Reconciler};
use crate::objects::key_of;
use crate::objects::kinds::{self, Kind};
use crate::objects::meta_str;
use crate::objects::typed::Object;
use crate::scheduler::algorithm::{misfit, Misfit, NodeInfo, PodInfo};

/// The label carrying the template revision of a daemon or stateful pod.
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// The DaemonSet reconciler.
pub struct DaemonSets;

/// Tolerations Kubernetes adds to daemon pods.
fn daemon_tolerations() -> Vec<Value> {
    ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"]
        .iter()
        .map(|k| json!({"key": k, "operator": "Exists", "effect": "NoExecute"}))
        .chain(
            [
                "node.kubernetes.io/unschedulable",
                "node.kubernetes.io/disk-pressure",
                "node.kubernetes.io/memory-pressure",
            ]
            .iter()
            .map(|k| json!({"key": k, "operator": "Exists", "effect": "NoSchedule"})),
        )
        .collect()
}

/// The pod template of a daemon pod for `node`.
pub fn daemon_pod(ds: &Value, node: &str, hash: &str) -> Value {
    let mut pod = pod_from_template(&crate::objects::typed::Object::new(ds.clone()), None, &[(REVISION_LABEL, hash)]);
    let spec = &mut pod["spec"];
    spec["nodeName"] = json!(node);
    let tolerations = spec.as_object_mut().expect("pod spec").entry("tolerations").or_insert(json!([]));
    if let Some(t) = tolerations.as_array_mut() {
        t.extend(daemon_tolerations());
    }
    pod
}

/// Whether a daemon pod belongs on `node` (selector, affinity and taints; not resources).
pub fn eligible(ds: &Value, node: &Node, hash: &str) -> bool {
    let pod = daemon_pod(ds, node.metadata.name.as_deref().unwrap_or(""), hash);
    let Ok(pod) = Pod::deserialize(&pod) else { return false };
    let info = PodInfo { requests: Default::default(), ..PodInfo::from_pod(String::new(), &pod) };
    let mut n = NodeInfo::from_node(node);
    n.unschedulable = false;
    n.allocatable.pods = u64::MAX;
    !matches!(misfit(&info, &n), Some(Misfit::Selector | Misfit::Taint(..)))
}

impl Reconciler for DaemonSets {
    const NAME: &'static str = "daemonset";
    const PRIMARY: &'static Kind = &kinds::DAEMON_SET;

    fn watches(&self) -> Vec<&'static Kind> {
        vec![&kinds::DAEMON_SET, &kinds::POD, &kinds::NODE]
    }

    fn affected(&self, obj: &Value, cache: &Cache) -> Vec<String> {
        match obj["kind"].as_str() {
            Some("DaemonSet") => key_of(obj).into_iter().collect(),
            Some("Pod") => super::framework::owner_keys(obj, &kinds::DAEMON_SET),
            Some("Node") => cache.all(&kinds::DAEMON_SET).filter_map(key_of).collect(),
            _ => vec![],
        }
    }

    fn reconcile(&self, key: &str, cache: &Cache, now: chrono::DateTime<chrono::Utc>) -> Outcome {
        let Some(ds) = cache.get(&kinds::DAEMON_SET, key) else { return Outcome::default() };
        if crate::objects::being_deleted(ds) {
            return Outcome::default();
        }
        let ns = meta_str(ds, "namespace");
        let hash =
            template_hash(&crate::objects::typed::Object::new(ds.clone()).pod_template().cloned().unwrap_or_default());
        let pods: Vec<&Value> = cache
            .owned_by(&kinds::POD, ns, meta_str(ds, "uid"))
            .map(|o| o.raw())
            .filter(|p| !crate::objects::being_deleted(p))
            .collect();
        let mut out = Outcome::default();
        let max_unavailable = super::deployment::resolve(
            ds.pointer("/spec/updateStrategy/rollingUpdate/maxUnavailable")
                .and_then(|v| serde_json::from_value(v.clone()).ok())
                .as_ref(),
            cache.all(&kinds::NODE).count() as i64,
            false,
            1,
        )
        .max(1) as usize;
        let rolling = ds.pointer("/spec/updateStrategy/type").and_then(Value::as_str) != Some("OnDelete");
        let (mut desired, mut scheduled, mut ready, mut updated, mut available, mut misscheduled) = (0, 0, 0, 0, 0, 0);
        let mut unavailable_now = 0;
        let mut outdated_ready: Vec<&Value> = Vec::new();
        let nodes: Vec<&Object> = cache.objects(&kinds::NODE).collect();
        for node in &nodes {
            let name = meta_str(node, "name");
            let here: Vec<&Value> = pods
                .iter()
                .copied()
                .filter(|p| p.pointer("/spec/nodeName").and_then(Value::as_str) == Some(name))
                .collect();
            let live: Vec<&Value> = here.iter().copied().filter(|p| !crate::objects::pod::finished(p)).collect();
            // Finished daemon pods are replaced.
            for p in here.iter().filter(|p| !live.contains(p)) {
                out.actions.push(delete_pod(p, now));
            }
            if node.node().is_some_and(|n| eligible(ds, n, &hash)) {
                desired += 1;
                match live.len() {
                    0 => {
                        out.actions.push(Action::Create(daemon_pod(ds, name, &hash)));
                        unavailable_now += 1;
                    }
                    n => {
                        scheduled += 1;
                        // Extra pods on one node go, newest first.
                        let mut extra = live.clone();
                        extra.sort_by_key(|p| std::cmp::Reverse(meta_str(p, "creationTimestamp").to_string()));
                        for p in extra.iter().take(n - 1) {
                            out.actions.push(delete_pod(p, now));
                        }
                        let p = extra[n - 1];
                        let current = p.pointer(&format!("/metadata/labels/{REVISION_LABEL}")).and_then(Value::as_str)
                            == Some(hash.as_str());
                        if pod_ready(p) {
                            ready += 1;
                        }
                        if pod_available(p, std::time::Duration::ZERO, now) {
                            available += 1;
                        } else {
                            unavailable_now += 1;
                        }
                        if current {
                            updated += 1;
                        } else if pod_ready(p) {
                            outdated_ready.push(p);
                        }
                    }
                }
            } else {
                misscheduled += live.len();
                for p in &live {
                    out.actions.push(delete_pod(p, now));
                }
            }
        }
        // Rolling update: replace outdated pods while few enough are unavailable.
        if rolling {
            for p in outdated_ready.into_iter().take(max_unavailable.saturating_sub(unavailable_now)) {
                out.actions.push(delete_pod(p, now));
            }
        }
        let status = json!({
            "desiredNumberScheduled": desired,
            "currentNumberScheduled": scheduled,
            "numberReady": ready,
            "updatedNumberScheduled": updated,
            "numberAvailable": available,
            "numberUnavailable": desired - available,
            "numberMisscheduled": misscheduled,
            "observedGeneration": ds.pointer("/metadata/generation").cloned().unwrap_or(json!(1)),
        });
        if ds.get("status") != Some(&status) {
            let mut n = ds.clone();
            n["status"] = status;
            out.actions.push(Action::Replace(n));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ds() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": "d", "uid": "ds1"},
               "spec": {"selector": {"matchLabels": {"app": "agent"}},
                        "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {"nodeSelector": {"role": "worker"}, "containers": [{"name": "c", "image": "i"}]}}}})
    }

    fn node(name: &str, role: &str, taint: Option<&str>) -> Value {
        let mut n = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {"role": role}}, "spec": {}});
        if let Some(t) = taint {
            n["spec"]["taints"] = json!([{"key": t, "effect": "NoSchedule"}]);
        }
        n
    }

    #[test]
    fn one_pod_per_eligible_node() {
        let mut c = Cache::default();
        c.put(ds());
        c.put(node("a", "worker", None));
        c.put(node("b", "db", None));
        c.put(node("c", "worker", Some("dedicated")));
        c.put(node("d", "worker", Some("node.kubernetes.io/unschedulable")));
        let out = DaemonSets.reconcile("/registry/daemonsets/d/agent", &c, chrono::Utc::now());
        let mut nodes: Vec<String> = out
            .actions
            .iter()
            .filter_map(
                |a| if let Action::Create(p) = a { p["spec"]["nodeName"].as_str().map(String::from) } else { None },
            )
            .collect();
        nodes.sort();
        assert_eq!(nodes, vec!["a", "d"], "selector and taints decide; daemon pods tolerate unschedulable");
    }
}
