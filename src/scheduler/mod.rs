//! The scheduler actor: an informer over pods and nodes that, while its node is
//! the Raft leader, binds pending pods with [`algorithm::schedule`]. Bindings are
//! compare-and-swap writes, many to a transaction; an unschedulable pod gets
//! `PodScheduled=False` with the reason, and is retried when pods or nodes change.

pub mod algorithm;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::objects::kinds::{NODE, POD};
use crate::objects::pod::PodFacts;
use crate::objects::typed::Object;
use crate::objects::{key_of, resource_version};
use crate::registry::bind::{Binding, Bound};
use crate::registry::events::{event_object, EventType};
use crate::registry::informer::{self, apply_change, Change};
use crate::registry::Registry;
use crate::util;
use crate::util::time;
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
pub fn is_pending(pod: &Pod) -> bool {
    let spec = pod.spec.as_ref();
    let scheduler = spec.and_then(|s| s.scheduler_name.as_deref()).unwrap_or("default-scheduler");
    PodFacts::node_name(pod).is_empty() && scheduler == "default-scheduler" && pod.metadata.deletion_timestamp.is_none()
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
            let already = pods.get(pod).and_then(|p| p.pod()).is_some_and(|p| scheduled_message(p).is_some());
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

/// The message of a pod's PodScheduled condition ("" when it has none), if
/// it has that condition.
fn scheduled_message(pod: &Pod) -> Option<&str> {
    pod.condition("PodScheduled").map(|c| c.message.as_deref().unwrap_or(""))
}

/// Set one of a pod's conditions, keeping its transition time when its status
/// is unchanged (as Kubernetes writes conditions).
fn set_pod_condition(pod: &mut Pod, kind: &str, status: &str, reason: &str, message: &str, now: &Time) {
    let conditions = pod.status.get_or_insert_with(Default::default).conditions.get_or_insert_with(Vec::new);
    crate::objects::conditions::set(conditions, kind, status, reason, message, now);
}

/// The writes for one round of decisions: bound pods (with their Scheduled
/// events) and unschedulable pods whose message changed. Each pod write
/// is written only if the pod is still the version decided on.
pub fn plan_writes(
    decisions: &[Decision],
    pods: &HashMap<String, Arc<Object>>,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<Binding> {
    let (at, stamp) = (time(now), util::rfc3339(now));
    let mut out = Vec::new();
    for d in decisions {
        let (key, node, message) = match d {
            Decision::Bind { pod, node } => (pod, Some(node), None),
            Decision::Unschedulable { pod, message } => (pod, None, Some(message)),
        };
        let Some((obj, pod)) = pods.get(key).and_then(|o| Some((o, o.pod()?))) else { continue };
        let mut new = pod.clone();
        let event = match (node, message) {
            (Some(node), _) => {
                new.spec.get_or_insert_with(Default::default).node_name = Some(node.clone());
                set_pod_condition(&mut new, "PodScheduled", "True", "", "", &at);
                let meta = &pod.metadata;
                let msg = format!(
                    "Successfully assigned {}/{} to {node}",
                    meta.namespace.as_deref().unwrap_or(""),
                    meta.name.as_deref().unwrap_or("")
                );
                event_object(obj, EventType::Normal, "Scheduled", &msg, "default-scheduler", &stamp)
            }
            (None, Some(message)) => {
                if scheduled_message(pod) == Some(message.as_str()) {
                    continue;
                }
                set_pod_condition(&mut new, "PodScheduled", "False", "Unschedulable", message, &at);
                let status = new.status.get_or_insert_with(Default::default);
                status.phase.get_or_insert_with(|| "Pending".to_string());
                event_object(obj, EventType::Warning, "FailedScheduling", message, "default-scheduler", &stamp)
            }
            _ => continue,
        };
        out.push(Binding { key: key.clone(), expected: resource_version(obj), pod: obj.with(&new), event });
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
            let bound = Some(PodFacts::node_name(pod)).filter(|n| !n.is_empty());
            let node = bound.or_else(|| self.assumed.get(key).map(String::as_str));
            match node {
                Some(n) if !pod.finished() => {
                    if let Some(info) = nodes.get_mut(n) {
                        let p = PodInfo::from_pod(key.clone(), pod);
                        info.add_pod(&p.requests, p.owner.as_deref());
                    }
                }
                Some(_) => {}
                None if is_pending(pod) => pending.push((key, pod)),
                None => {}
            }
        }
        // Oldest first; ties in namespace and name order.
        pending.sort_by_key(|(_, p)| {
            let m = &p.metadata;
            (m.creation_timestamp.clone(), m.namespace.clone(), m.name.clone())
        });
        let infos: Vec<PodInfo> = pending.iter().map(|(key, p)| PodInfo::from_pod(key.to_string(), p)).collect();
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
        let writes = plan_writes(&decisions, &self.pods, chrono::Utc::now());
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
        let bind_to: HashMap<&str, &str> = decisions
            .iter()
            .filter_map(|d| match d {
                Decision::Bind { pod, node } => Some((pod.as_str(), node.as_str())),
                Decision::Unschedulable { .. } => None,
            })
            .collect();
        let mut binds = 0;
        for b in &writes {
            if let Some(n) = bind_to.get(b.key.as_str()) {
                self.assumed.insert(b.key.clone(), n.to_string());
                binds += 1;
            } else {
                self.reported.insert(b.key.clone(), now);
            }
        }
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
                    if p.pod().is_some_and(|pod| !PodFacts::node_name(pod).is_empty()) {
                        if let Some(k) = key_of(p) {
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
    use serde_json::{json, Value};

    fn at(s: &str) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&chrono::Utc)
    }

    /// A pod named `name` with `extra` merged over it.
    fn pod(name: &str, extra: Value) -> Value {
        let mut p = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "resourceVersion": "7", "annotations": {"team": "blue"}},
            "spec": {"containers": [{"name": "c", "image": "i"}]}});
        crate::objects::merge::merge(&mut p, &extra);
        p
    }

    fn scheduled(written: &Value) -> k8s_openapi::api::core::v1::PodCondition {
        let obj = Object::new(written.clone());
        obj.pod().and_then(|p| p.condition("PodScheduled")).cloned().expect("a PodScheduled condition")
    }

    #[test]
    fn unschedulable_status_is_written_once_per_message() {
        let key = "/registry/pods/default/p".to_string();
        let mut pods = HashMap::from([(key.clone(), Arc::new(Object::new(pod("p", json!({})))))]);
        let d = vec![Decision::Unschedulable {
            pod: key.clone(),
            message: "0/1 nodes are available: 1 Too many pods.".into(),
        }];
        let w = plan_writes(&d, &pods, at("2026-01-01T00:00:00Z"));
        assert_eq!(w.len(), 1);
        assert_eq!(scheduled(&w[0].pod).reason.as_deref(), Some("Unschedulable"));
        assert_eq!(
            (&w[0].pod["status"]["phase"], &w[0].pod["metadata"]["annotations"]),
            (&json!("Pending"), &json!({"team": "blue"}))
        );
        assert_eq!((w[0].expected, w[0].event["reason"].as_str()), (7, Some("FailedScheduling")));
        pods.insert(key.clone(), Arc::new(Object::new(w[0].pod.clone())));
        assert!(plan_writes(&d, &pods, at("2026-01-01T00:00:01Z")).is_empty());
        let b = vec![Decision::Bind { pod: key.clone(), node: "n1".into() }];
        let w = plan_writes(&b, &pods, at("2026-01-01T00:00:02Z"));
        let bound = Object::new(w[0].pod.clone());
        assert_eq!(bound.pod().map(PodFacts::node_name), Some("n1"));
        let cond = scheduled(&w[0].pod);
        assert_eq!((cond.status.as_str(), cond.reason), ("True", None));
        assert_eq!(cond.last_transition_time, Some(time(at("2026-01-01T00:00:02Z"))), "the status changed");
        assert_eq!(w[0].event["reason"], "Scheduled");
    }

    #[test]
    fn a_round_that_binds_holds_back_rewrites_of_unschedulable_messages() {
        let reported_pod =
            json!({"status": {"conditions": [{"type": "PodScheduled", "status": "False", "message": "0/1 nodes"}]}});
        let pods = HashMap::from([
            ("a".to_string(), Arc::new(Object::new(pod("a", json!({}))))),
            ("b".to_string(), Arc::new(Object::new(pod("b", reported_pod)))),
            ("c".to_string(), Arc::new(Object::new(pod("c", json!({}))))),
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
        let typed = |extra: Value| -> Pod { serde_json::from_value(pod("p", extra)).unwrap() };
        assert!(is_pending(&typed(json!({}))));
        assert!(!is_pending(&typed(json!({"spec": {"nodeName": "n1"}}))));
        assert!(!is_pending(&typed(json!({"spec": {"schedulerName": "other"}}))));
        assert!(!is_pending(&typed(json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}}))));
    }
}
