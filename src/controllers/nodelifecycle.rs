//! Node lifecycle: a node whose Lease is not renewed within the grace period
//! becomes NotReady (its conditions Unknown) and is tainted
//! `node.kubernetes.io/unreachable` (NoSchedule and NoExecute); its pods are
//! evicted once their toleration of that taint runs out (clusterd's default:
//! 20 s) so their controllers recreate them elsewhere. A node whose Lease is
//! renewed again loses the taints; its kubelet reports Ready again and removes
//! what it still runs of pods that are gone.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use super::framework::{Action, Cache, Outcome, Reconciler};
use crate::objects::conventions::NODE_LEASE_NAMESPACE;
use crate::objects::kinds::{self, Kind};
use crate::objects::pod::PodFacts;
use crate::objects::{key_of, meta_str, resource_version};
use crate::util::time;

/// The taint of a node that stopped renewing its Lease.
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// Defaults: Kubernetes' node-monitor-grace-period, and clusterd's eviction timeout.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(40);
/// How long pods tolerate an unreachable node unless they say otherwise.
pub const DEFAULT_TOLERATION: Duration = Duration::from_secs(20);

/// The node lifecycle reconciler.
pub struct NodeLifecycle {
    /// Lease age after which a node is unreachable.
    pub grace: Duration,
    /// Toleration of pods that set none for the unreachable taint.
    pub toleration: Duration,
}

fn to_chrono(t: &Timestamp) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp(t.as_second(), t.subsec_nanosecond().max(0) as u32)
}

fn unreachable_taint<'a>(node: &'a Node, effect: &str) -> Option<&'a Taint> {
    node.spec.as_ref()?.taints.as_ref()?.iter().find(|t| t.key == UNREACHABLE && t.effect == effect)
}

/// How long a pod tolerates the unreachable taint: None = forever.
pub fn toleration_of(pod: &Pod, default: Duration) -> Option<Duration> {
    let tols = pod.spec.as_ref().and_then(|s| s.tolerations.as_ref());
    let matching = tols.into_iter().flatten().find(|t| {
        let key = t.key.as_deref();
        let key_ok = key.is_none_or(|k| k.is_empty() || k == UNREACHABLE);
        let effect_ok = t.effect.as_deref().is_none_or(|e| e.is_empty() || e == "NoExecute");
        let op = t.operator.as_deref().unwrap_or("Equal");
        key_ok && effect_ok && (op == "Exists" || key == Some(UNREACHABLE))
    });
    match matching {
        None => Some(default),
        Some(t) => t.toleration_seconds.map(|s| Duration::from_secs(s.max(0) as u64)),
    }
}

impl Reconciler for NodeLifecycle {
    const NAME: &'static str = "node-lifecycle";
    const PRIMARY: &'static Kind = &kinds::NODE;

    fn watches(&self) -> Vec<&'static Kind> {
        vec![&kinds::NODE, &kinds::LEASE, &kinds::POD]
    }

    fn affected(&self, obj: &Value, _cache: &Cache) -> Vec<String> {
        match Kind::of(obj) {
            Some(k) if *k == kinds::NODE => key_of(obj).into_iter().collect(),
            Some(k) if *k == kinds::LEASE && meta_str(obj, "namespace") == NODE_LEASE_NAMESPACE => {
                vec![kinds::NODE.key("", meta_str(obj, "name"))]
            }
            _ => vec![],
        }
    }

    fn reconcile(&self, key: &str, cache: &Cache, now: chrono::DateTime<chrono::Utc>) -> Outcome {
        let Some(obj) = cache.object(&kinds::NODE, key) else { return Outcome::default() };
        let Some(node) = obj.node() else { return Outcome::default() };
        let name = node.metadata.name.as_deref().unwrap_or("");
        let lease_key = kinds::LEASE.key(NODE_LEASE_NAMESPACE, name);
        let renewed = cache
            .object(&kinds::LEASE, &lease_key)
            .and_then(|l| to_chrono(&l.lease()?.spec.as_ref()?.renew_time.as_ref()?.0))
            .or_else(|| to_chrono(&node.metadata.creation_timestamp.as_ref()?.0))
            .unwrap_or(now);
        let age = now.signed_duration_since(renewed).to_std().unwrap_or_default();
        let mut out = Outcome::default();
        if age < self.grace {
            // Healthy: no unreachable taints; look again when the lease would expire.
            if unreachable_taint(node, "NoExecute").is_some() || unreachable_taint(node, "NoSchedule").is_some() {
                let mut n = node.clone();
                if let Some(t) = n.spec.as_mut().and_then(|s| s.taints.as_mut()) {
                    t.retain(|t| t.key != UNREACHABLE);
                }
                out.actions.push(Action::Replace(obj.with(&n)));
            }
            out.requeue_after = Some(self.grace - age + Duration::from_millis(10));
            return out;
        }
        // Unreachable: conditions Unknown, both taints.
        let stamp = time(now);
        let mut n = node.clone();
        let mut changed = false;
        if let Some(conds) = n.status.as_mut().and_then(|s| s.conditions.as_mut()) {
            for c in conds.iter_mut().filter(|c| c.status != "Unknown") {
                c.status = "Unknown".into();
                c.reason = Some("NodeStatusUnknown".into());
                c.message = Some("Kubelet stopped posting node status.".into());
                c.last_transition_time = Some(stamp.clone());
                changed = true;
            }
        }
        let no_execute_added = match unreachable_taint(node, "NoExecute") {
            Some(t) => t.time_added.as_ref().and_then(|t| to_chrono(&t.0)).unwrap_or(now),
            None => {
                let taints = n.spec.get_or_insert_with(Default::default).taints.get_or_insert_with(Vec::new);
                for effect in ["NoSchedule", "NoExecute"] {
                    taints.push(Taint {
                        key: UNREACHABLE.into(),
                        effect: effect.into(),
                        time_added: Some(stamp.clone()),
                        value: None,
                    });
                }
                changed = true;
                out.actions.push(Action::Event {
                    object: obj.raw().clone(),
                    warning: false,
                    reason: "NodeNotReady".into(),
                    message: format!("Node {name} status is now: NodeNotReady"),
                });
                now
            }
        };
        if changed {
            out.actions.push(Action::Replace(obj.with(&n)));
        }
        // Evict the pods whose toleration ran out; the kubelet is gone, so they go at once.
        let tainted_for = now.signed_duration_since(no_execute_added).to_std().unwrap_or_default();
        let mut next: Option<Duration> = None;
        let pods = cache.objects(&kinds::POD).filter_map(|o| Some((o, o.pod()?)));
        for (p, pod) in pods.filter(|(_, pod)| PodFacts::node_name(*pod) == name) {
            let Some(tol) = toleration_of(pod, self.toleration) else { continue };
            if tainted_for >= tol {
                let meta = &pod.metadata;
                out.actions.push(Action::Event {
                    object: p.raw().clone(),
                    warning: false,
                    reason: "TaintManagerEviction".into(),
                    message: format!(
                        "Marking for deletion Pod {}/{}",
                        meta.namespace.as_deref().unwrap_or(""),
                        meta.name.as_deref().unwrap_or("")
                    ),
                });
                out.actions.push(Action::Delete { key: key_of(p).unwrap_or_default(), rv: resource_version(p) });
            } else {
                let left = tol - tainted_for;
                next = Some(next.map_or(left, |n| n.min(left)));
            }
        }
        out.requeue_after = Some(next.unwrap_or(Duration::from_secs(5)).max(Duration::from_millis(200)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: &str) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&chrono::Utc)
    }

    fn cache(renew: &str) -> Cache {
        let mut c = Cache::default();
        c.put(
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "w1", "resourceVersion": "3"}, "spec": {},
                     "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
        );
        c.put(json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                     "metadata": {"name": "w1", "namespace": "kube-node-lease"}, "spec": {"renewTime": renew}}));
        c.put(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "d", "resourceVersion": "4"},
                     "spec": {"nodeName": "w1", "containers": [{"name": "c", "image": "i"}]}}));
        c.put(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "forever", "namespace": "d", "resourceVersion": "5"},
                     "spec": {"nodeName": "w1", "containers": [{"name": "c", "image": "i"}], "tolerations": [{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}]}}));
        c
    }

    const LIFE: NodeLifecycle = NodeLifecycle { grace: DEFAULT_GRACE, toleration: DEFAULT_TOLERATION };

    #[test]
    fn a_fresh_lease_changes_nothing() {
        let out = LIFE.reconcile("/registry/minions/w1", &cache("2026-01-01T00:00:00Z"), at("2026-01-01T00:00:30Z"));
        assert!(out.actions.is_empty());
        assert_eq!(out.requeue_after, Some(Duration::from_millis(10_010)));
    }

    #[test]
    fn a_stale_lease_taints_and_later_evicts() {
        let c = cache("2026-01-01T00:00:00Z");
        let out = LIFE.reconcile("/registry/minions/w1", &c, at("2026-01-01T00:00:41Z"));
        let node =
            out.actions.iter().find_map(|a| if let Action::Replace(n) = a { Some(n.clone()) } else { None }).unwrap();
        assert_eq!(node["status"]["conditions"][0]["status"], "Unknown");
        assert_eq!(node["spec"]["taints"][1]["effect"], "NoExecute");
        assert!(!out.actions.iter().any(|a| matches!(a, Action::Delete { .. })), "not yet: the toleration runs");
        let mut c = c;
        c.put(node);
        let out = LIFE.reconcile("/registry/minions/w1", &c, at("2026-01-01T00:01:02Z"));
        let deleted: Vec<&String> = out
            .actions
            .iter()
            .filter_map(|a| if let Action::Delete { key, .. } = a { Some(key) } else { None })
            .collect();
        assert_eq!(deleted, vec!["/registry/pods/d/p"], "the pod that tolerates forever stays");
    }

    #[test]
    fn a_node_that_comes_back_loses_the_taints() {
        let mut c = cache("2026-01-01T00:02:00Z");
        c.put(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "w1"},
                     "spec": {"taints": [{"key": UNREACHABLE, "effect": "NoExecute"}, {"key": "other", "effect": "NoSchedule"}]}}));
        let out = LIFE.reconcile("/registry/minions/w1", &c, at("2026-01-01T00:02:05Z"));
        let Action::Replace(n) = &out.actions[0] else { panic!() };
        assert_eq!(n["spec"]["taints"], json!([{"key": "other", "effect": "NoSchedule"}]));
    }
}
