//! The scheduler actor: an informer over pods and nodes that, while its node is
//! the Raft leader, binds pending pods with [`algorithm::schedule`]. Bindings are
//! compare-and-swap writes, many to a transaction; an unschedulable pod gets
//! `PodScheduled=False` with the reason, and is retried when pods or nodes change.

pub mod algorithm;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use serde_json::{json, Value};

use crate::objects::conditions::set_condition;
use crate::objects::kinds::{NODE, POD};
use crate::objects::typed::Object;
use crate::objects::{key_of, meta_str, resource_version};
use crate::registry::bind::{Binding, Bound};
use crate::registry::events::{event_object, EventType};
use crate::registry::informer::{self, apply_change, Change};
use crate::registry::Registry;
use crate::util;
use algorithm::{Decision, NodeInfo, PodInfo};

/// An unschedulable pod's message is rewritten at most this often (it is
/// retried on every change; only its status write is throttled).
const UNSCHEDULABLE_REWRITE: Duration = Duration::from_secs(5);

/// The scheduler of one node (acting only on the leader).
pub struct Scheduler {
    store: Registry,
    leader: bool,
    pods: HashMap<String, Arc<Object>>,
    nodes: HashMap<String, Arc<Object>>,
    /// Pods bound by a write this scheduler made, until the informer shows it.
    assumed: HashMap<String, String>,
    /// When each unschedulable pod's status was last written.
    reported: HashMap<String, std::time::Instant>,
    retry_armed: bool,
    busy: bool,
    dirty: bool,
}

#[derive(Message)]
#[rtype(result = "()")]
enum Input {
    Pods(Change),
    Nodes(Change),
    Leader(bool),
}

/// Whether a pod waits for this scheduler.
pub fn is_pending(pod: &Value) -> bool {
    let spec = pod.get("spec");
    let node = spec.and_then(|s| s.get("nodeName")).and_then(Value::as_str).unwrap_or("");
    let scheduler = spec.and_then(|s| s.get("schedulerName")).and_then(Value::as_str).unwrap_or("default-scheduler");
    node.is_empty() && scheduler == "default-scheduler" && !crate::objects::being_deleted(pod)
}

/// Which decisions to write this round: every binding; an unschedulable pod's
/// status when it has none yet, but a *changed* message (node counts move
/// while nodes join) at most every [`UNSCHEDULABLE_REWRITE`] per pod and never
/// in a round that binds — bindings first, their competition for the log
/// later. Returns whether some were held back (a later round writes them).
pub fn keep_writes(
    decisions: &mut Vec<Decision>,
    pods: &HashMap<String, Arc<Object>>,
    reported: &mut HashMap<String, std::time::Instant>,
    now: std::time::Instant,
) -> bool {
    let binding = decisions.iter().any(|d| matches!(d, Decision::Bind { .. }));
    let mut held = false;
    decisions.retain(|d| match d {
        Decision::Bind { pod, .. } => {
            reported.remove(pod);
            true
        }
        Decision::Unschedulable { pod, .. } => {
            let already = pods.get(pod).is_some_and(|p| condition_message(p, "PodScheduled").is_some());
            let recent = reported.get(pod).is_some_and(|t| now.duration_since(*t) < UNSCHEDULABLE_REWRITE);
            if already && (recent || binding) {
                held = true;
                return false;
            }
            true
        }
    });
    held
}

fn condition_message(pod: &Value, kind: &str) -> Option<String> {
    pod.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
        .map(|c| c.get("message").and_then(Value::as_str).unwrap_or("").to_string())
}

/// The writes for one round of decisions: bound pods (with their Scheduled
/// events) and unschedulable pods whose message changed. Each pod write
/// is written only if the pod is still the version decided on.
pub fn plan_writes(decisions: &[Decision], pods: &HashMap<String, Arc<Object>>, now: &str) -> Vec<Binding> {
    let mut out = Vec::new();
    for d in decisions {
        let (key, node, message) = match d {
            Decision::Bind { pod, node } => (pod, Some(node), None),
            Decision::Unschedulable { pod, message } => (pod, None, Some(message)),
        };
        let Some(pod) = pods.get(key) else { continue };
        let mut new = Value::clone(pod);
        let event = match (node, message) {
            (Some(node), _) => {
                new["spec"]["nodeName"] = json!(node);
                set_condition(&mut new, "PodScheduled", "True", "", "", now);
                let msg =
                    format!("Successfully assigned {}/{} to {node}", meta_str(pod, "namespace"), meta_str(pod, "name"));
                event_object(pod, EventType::Normal, "Scheduled", &msg, "default-scheduler", now)
            }
            (None, Some(message)) => {
                if condition_message(pod, "PodScheduled").as_deref() == Some(message.as_str()) {
                    continue;
                }
                set_condition(&mut new, "PodScheduled", "False", "Unschedulable", message, now);
                if new.pointer("/status/phase").is_none() {
                    new["status"]["phase"] = json!("Pending");
                }
                event_object(pod, EventType::Warning, "FailedScheduling", message, "default-scheduler", now)
            }
            _ => continue,
        };
        out.push(Binding { key: key.clone(), expected: resource_version(pod), pod: new, event });
    }
    out
}

impl Scheduler {
    /// A scheduler on `store`'s node.
    pub fn new(store: Registry) -> Self {
        Scheduler {
            store,
            leader: false,
            pods: HashMap::new(),
            nodes: HashMap::new(),
            assumed: HashMap::new(),
            reported: HashMap::new(),
            retry_armed: false,
            busy: false,
            dirty: false,
        }
    }

    fn decide(&self) -> Vec<Decision> {
        let mut nodes: HashMap<String, NodeInfo> = self
            .nodes
            .values()
            .filter_map(|n| n.node())
            .map(|n| {
                let info = NodeInfo::from_node(n);
                (info.name.clone(), info)
            })
            .collect();
        let mut pending = Vec::new();
        for (key, obj) in &self.pods {
            let Some(pod) = obj.pod() else { continue };
            let bound = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).filter(|n| !n.is_empty());
            let node = bound.or_else(|| self.assumed.get(key).map(String::as_str));
            match node {
                Some(n) if !crate::objects::pod::finished(obj) => {
                    if let Some(info) = nodes.get_mut(n) {
                        let p = PodInfo::from_pod(key.clone(), pod);
                        info.add_pod(&p.requests, p.owner.as_deref());
                    }
                }
                Some(_) => {}
                None if is_pending(obj) => pending.push((key, obj)),
                None => {}
            }
        }
        pending.sort_by(|(_, a), (_, b)| {
            meta_str(a, "creationTimestamp").cmp(meta_str(b, "creationTimestamp")).then_with(|| {
                meta_str(a, "namespace")
                    .cmp(meta_str(b, "namespace"))
                    .then(meta_str(a, "name").cmp(meta_str(b, "name")))
            })
        });
        let infos: Vec<PodInfo> =
            pending.iter().filter_map(|(key, p)| Some(PodInfo::from_pod(key.to_string(), p.pod()?))).collect();
        let mut nodes: Vec<NodeInfo> = nodes.into_values().collect();
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        algorithm::schedule(&infos, &mut nodes)
    }

    fn kick(&mut self, ctx: &mut Context<Self>) {
        if !self.leader {
            return;
        }
        if self.busy {
            self.dirty = true;
            return;
        }
        self.busy = true;
        self.dirty = false;
        // Let a burst of changes land in the cache before deciding.
        ctx.run_later(Duration::from_millis(2), |act, ctx| act.round(ctx));
    }

    fn round(&mut self, ctx: &mut Context<Self>) {
        let t0 = std::time::Instant::now();
        let mut decisions = self.decide();
        let decided = t0.elapsed();
        let now = std::time::Instant::now();
        let throttled = keep_writes(&mut decisions, &self.pods, &mut self.reported, now);
        if throttled && !self.retry_armed {
            self.retry_armed = true;
            ctx.run_later(UNSCHEDULABLE_REWRITE, |act, ctx| {
                act.retry_armed = false;
                act.kick(ctx);
            });
        }
        let writes = plan_writes(&decisions, &self.pods, &util::now());
        if writes.is_empty() {
            self.busy = false;
            if self.dirty {
                self.kick(ctx);
            }
            return;
        }
        // The cache may trail the store by a few events: a pod that changed since
        // (its local revision differs) waits for the next round instead of
        // failing a compare and costing the whole batch a retry.
        let mut writes = writes;
        let reader = self.store.reader();
        let before = writes.len();
        writes.retain(|b| reader.get(&b.key).ok().flatten().is_some_and(|kv| kv.mod_revision == b.expected));
        if writes.len() < before {
            self.dirty = true;
        }
        for b in &writes {
            if let Some(n) = b.pod.pointer("/spec/nodeName").and_then(Value::as_str) {
                self.assumed.insert(b.key.clone(), n.to_string());
            } else {
                self.reported.insert(b.key.clone(), now);
            }
        }
        let binds = writes.iter().filter(|b| b.pod.pointer("/spec/nodeName").is_some()).count();
        tracing::debug!(decisions = decisions.len(), binds, writes = writes.len(), ?decided, "scheduler: round");
        let store = self.store.clone();
        let fut = async move {
            let t1 = std::time::Instant::now();
            let bound = store.bind(writes).await;
            tracing::debug!(took = ?t1.elapsed(), failed = bound.failed.len(), "scheduler: round written");
            bound
        };
        ctx.spawn(fut.into_actor(self).map(|Bound { failed, written }, act, ctx| {
            for k in failed {
                act.assumed.remove(&k);
            }
            // What we wrote is the newest state unless the informer already brought newer.
            for (k, v) in written {
                let newer = act.pods.get(&k).is_some_and(|cur| resource_version(cur) >= resource_version(&v));
                if !newer && act.pods.contains_key(&k) {
                    act.pods.insert(k, Arc::new(Object::new(v)));
                }
            }
            act.busy = false;
            if act.dirty {
                act.kick(ctx);
            }
        }));
    }
}

impl Actor for Scheduler {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        use futures::StreamExt;
        ctx.add_stream(self.store.watch(&POD).map(Input::Pods));
        ctx.add_stream(self.store.watch(&NODE).map(Input::Nodes));
        ctx.add_stream(informer::leadership(self.store.node()).map(Input::Leader));
    }
}

impl StreamHandler<Input> for Scheduler {
    fn handle(&mut self, item: Input, ctx: &mut Context<Self>) {
        match item {
            Input::Pods(change) => {
                if let Change::Put(p) = &change {
                    if let Some(k) = key_of(p) {
                        if p.pointer("/spec/nodeName").and_then(Value::as_str).is_some_and(|n| !n.is_empty()) {
                            self.assumed.remove(&k);
                        }
                    }
                }
                if let Change::Delete(p) = &change {
                    if let Some(k) = key_of(p) {
                        self.assumed.remove(&k);
                        self.reported.remove(&k);
                    }
                }
                apply_change(&mut self.pods, change);
            }
            Input::Nodes(change) => apply_change(&mut self.nodes, change),
            Input::Leader(l) => {
                self.leader = l;
                self.assumed.clear();
                if l {
                    tracing::info!("scheduler: this node leads; scheduling");
                }
            }
        }
        self.kick(ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unschedulable_status_is_written_once_per_message() {
        let key = "/registry/pods/default/p".to_string();
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default", "resourceVersion": "7"}, "spec": {}});
        let mut pods = HashMap::from([(key.clone(), Arc::new(Object::new(pod)))]);
        let d = vec![Decision::Unschedulable {
            pod: key.clone(),
            message: "0/1 nodes are available: 1 Too many pods.".into(),
        }];
        let w = plan_writes(&d, &pods, "2026-01-01T00:00:00Z");
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].pod.pointer("/status/conditions/0/reason"), Some(&json!("Unschedulable")));
        assert_eq!((w[0].expected, w[0].event["reason"].as_str()), (7, Some("FailedScheduling")));
        pods.insert(key.clone(), Arc::new(Object::new(w[0].pod.clone())));
        assert!(plan_writes(&d, &pods, "2026-01-01T00:00:01Z").is_empty());
        let b = vec![Decision::Bind { pod: key.clone(), node: "n1".into() }];
        let w = plan_writes(&b, &pods, "2026-01-01T00:00:02Z");
        assert_eq!(w[0].pod.pointer("/spec/nodeName"), Some(&json!("n1")));
        assert_eq!(w[0].pod.pointer("/status/conditions/0/status"), Some(&json!("True")));
    }

    #[test]
    fn a_round_that_binds_holds_back_rewrites_of_unschedulable_messages() {
        let reported_pod =
            json!({"status": {"conditions": [{"type": "PodScheduled", "status": "False", "message": "0/1 nodes"}]}});
        let pods = HashMap::from([
            ("a".to_string(), Arc::new(Object::new(json!({})))),
            ("b".to_string(), Arc::new(Object::new(reported_pod.clone()))),
            ("c".to_string(), Arc::new(Object::new(json!({})))),
        ]);
        let unsched = |p: &str| Decision::Unschedulable { pod: p.into(), message: "0/2 nodes".into() };
        let now = std::time::Instant::now();
        let mut reported = HashMap::new();
        let mut d = vec![Decision::Bind { pod: "a".into(), node: "n1".into() }, unsched("b"), unsched("c")];
        assert!(keep_writes(&mut d, &pods, &mut reported, now), "b's rewrite waits");
        assert_eq!(
            d,
            vec![Decision::Bind { pod: "a".into(), node: "n1".into() }, unsched("c")],
            "c was never reported"
        );
        // With nothing to bind, the changed message is written.
        let mut d = vec![unsched("b")];
        assert!(!keep_writes(&mut d, &pods, &mut reported, now));
        assert_eq!(d.len(), 1);
        // Reported a moment ago: held back even so.
        reported.insert("b".to_string(), now);
        let mut d = vec![unsched("b")];
        assert!(keep_writes(&mut d, &pods, &mut reported, now) && d.is_empty());
    }

    #[test]
    fn pending_means_unbound_for_the_default_scheduler() {
        assert!(is_pending(&json!({"spec": {}})));
        assert!(!is_pending(&json!({"spec": {"nodeName": "n1"}})));
        assert!(!is_pending(&json!({"spec": {"schedulerName": "other"}})));
        assert!(!is_pending(&json!({"metadata": {"deletionTimestamp": "x"}, "spec": {}})));
    }
}
