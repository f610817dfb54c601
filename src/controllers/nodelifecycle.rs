//! Node lifecycle: a node whose Lease is not renewed within the grace period
//! becomes NotReady (its conditions Unknown) and is tainted
//! `node.kubernetes.io/unreachable` (NoSchedule and NoExecute); its pods are
//! evicted once their toleration of that taint runs out (clusterd's default:
//! 20 s) so their controllers recreate them elsewhere. A node whose Lease is
//! renewed again loses the taints; its kubelet reports Ready again and removes
//! what it still runs of pods that are gone.

use std::time::Duration;

use serde_json::{json, Value};

use super::framework::{Action, Cache, Outcome, Reconciler};
use crate::objects::conventions::NODE_LEASE_NAMESPACE;
use crate::objects::key_of;
use crate::objects::kinds::{self, Kind};
use crate::objects::meta_str;

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

fn parse_time(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&chrono::Utc))
}

fn has_taint(node: &Value, effect: &str) -> Option<Value> {
    node.pointer("/spec/taints")?.as_array()?.iter().find(|t| t["key"] == UNREACHABLE && t["effect"] == effect).cloned()
}

/// How long a pod tolerates the unreachable taint: None = forever.
pub fn toleration_of(pod: &Value, default: Duration) -> Option<Duration> {
    let tols = pod.pointer("/spec/tolerations").and_then(Value::as_array);
    let matching = tols.into_iter().flatten().find(|t| {
        let key_ok = t.get("key").and_then(Value::as_str).is_none_or(|k| k.is_empty() || k == UNREACHABLE);
        let effect_ok = t.get("effect").and_then(Value::as_str).is_none_or(|e| e.is_empty() || e == "NoExecute");
        let op = t.get("operator").and_then(Value::as_str).unwrap_or("Equal");
        key_ok && effect_ok && (op == "Exists" || t.get("key").and_then(Value::as_str) == Some(UNREACHABLE))
    });
    match matching {
        None => Some(default),
        Some(t) => t.get("tolerationSeconds").and_then(Value::as_i64).map(|s| Duration::from_secs(s.max(0) as u64)),
    }
}

impl Reconciler for NodeLifecycle {
    const NAME: &'static str = "node-lifecycle";
    const PRIMARY: &'static Kind = &kinds::NODE;

    fn watches(&self) -> Vec<&'static Kind> {
        vec![&kinds::NODE, &kinds::LEASE, &kinds::POD]
    }

    fn affected(&self, obj: &Value, _cache: &Cache) -> Vec<String> {
        let node = &crate::objects::kinds::NODE;
        match obj["kind"].as_str() {
            Some("Node") => key_of(obj).into_iter().collect(),
            Some("Lease") if meta_str(obj, "namespace") == NODE_LEASE_NAMESPACE => {
                vec![node.key("", meta_str(obj, "name"))]
            }
            _ => vec![],
        }
    }

    fn reconcile(&self, key: &str, cache: &Cache, now: chrono::DateTime<chrono::Utc>) -> Outcome {
        let Some(node) = cache.get(&kinds::NODE, key) else { return Outcome::default() };
        let name = meta_str(node, "name");
        let lease_key = crate::objects::kinds::LEASE.key(NODE_LEASE_NAMESPACE, name);
        let renewed = cache
            .get(&kinds::LEASE, &lease_key)
            .and_then(|l| l.pointer("/spec/renewTime")?.as_str().and_then(parse_time))
            .or_else(|| parse_time(meta_str(node, "creationTimestamp")))
            .unwrap_or(now);
        let age = now.signed_duration_since(renewed).to_std().unwrap_or_default();
        let mut out = Outcome::default();
        let stamp = crate::util::rfc3339(now);
        if age < self.grace {
            // Healthy: no unreachable taints; look again when the lease would expire.
            if has_taint(node, "NoExecute").is_some() || has_taint(node, "NoSchedule").is_some() {
                let mut n = node.clone();
                if let Some(t) = n.pointer_mut("/spec/taints").and_then(Value::as_array_mut) {
                    t.retain(|t| t["key"] != UNREACHABLE);
                }
                out.actions.push(Action::Replace(n));
            }
            out.requeue_after = Some(self.grace - age + Duration::from_millis(10));
            return out;
        }
        // Unreachable: conditions Unknown, both taints.
        let mut n = node.clone();
        let mut changed = false;
        if let Some(conds) = n.pointer_mut("/status/conditions").and_then(Value::as_array_mut) {
            for c in conds.iter_mut() {
                if c["status"] != "Unknown" {
                    c["status"] = json!("Unknown");
                    c["reason"] = json!("NodeStatusUnknown");
                    c["message"] = json!("Kubelet stopped posting node status.");
                    c["lastTransitionTime"] = json!(stamp);
                    changed = true;
                }
            }
        }
        let no_execute_added = match has_taint(node, "NoExecute") {
            Some(t) => t.get("timeAdded").and_then(Value::as_str).and_then(parse_time).unwrap_or(now),
            None => {
                let spec = n["spec"].as_object_mut().expect("node spec");
                let taints = spec.entry("taints").or_insert(json!([]));
                if let Some(t) = taints.as_array_mut() {
                    t.push(json!({"key": UNREACHABLE, "effect": "NoSchedule", "timeAdded": stamp}));
                    t.push(json!({"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": stamp}));
                }
                changed = true;
                out.actions.push(Action::Event {
                    object: node.clone(),
                    warning: false,
                    reason: "NodeNotReady".into(),
                    message: format!("Node {name} status is now: NodeNotReady"),
                });
                now
            }
        };
        if changed {
            out.actions.push(Action::Replace(n));
        }
        // Evict the pods whose toleration ran out; the kubelet is gone, so they go at once.
        let tainted_for = now.signed_duration_since(no_execute_added).to_std().unwrap_or_default();
        let mut next: Option<Duration> = None;
        for pod in cache.all(&kinds::POD).filter(|p| p.pointer("/spec/nodeName").and_then(Value::as_str) == Some(name))
        {
            let Some(tol) = toleration_of(pod, self.toleration) else { continue };
            if tainted_for >= tol {
                out.actions.push(Action::Event {
                    object: pod.clone(),
                    warning: false,
                    reason: "TaintManagerEviction".into(),
                    message: format!(
                        "Marking for deletion Pod {}/{}",
                        meta_str(pod, "namespace"),
                        meta_str(pod, "name")
                    ),
                });
                out.actions.push(Action::Delete {
                    key: key_of(pod).unwrap_or_default(),
                    rv: crate::objects::resource_version(pod),
                });
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

    fn at(s: &str) -> chrono::DateTime<chrono::Utc> {
        parse_time(s).unwrap()
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
                     "spec": {"nodeName": "w1"}}));
        c.put(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "forever", "namespace": "d", "resourceVersion": "5"},
                     "spec": {"nodeName": "w1", "tolerations": [{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}]}}));
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
