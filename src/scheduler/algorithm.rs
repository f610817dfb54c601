//! The scheduling decision as a pure function: which node each pending pod goes
//! to, or why none fits. Filters as kube-scheduler's (resources, nodeSelector,
//! required node affinity, taints, unschedulable), then scores least-allocated
//! with a spread penalty for pods of the same owner.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{Container, Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::objects::quantity;

/// CPU (millicores), memory (bytes) and pod count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    /// Millicores.
    pub cpu: u64,
    /// Bytes.
    pub memory: u64,
    /// Pods.
    pub pods: u64,
}

impl Resources {
    fn add(&mut self, r: &Resources) {
        self.cpu += r.cpu;
        self.memory += r.memory;
        self.pods += r.pods;
    }
}

/// A taint on a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Taint {
    /// Key.
    pub key: String,
    /// Value.
    pub value: String,
    /// NoSchedule, PreferNoSchedule or NoExecute.
    pub effect: String,
}

/// What the scheduler knows of a node.
#[derive(Clone, Debug, Default)]
pub struct NodeInfo {
    /// Node name.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Allocatable resources.
    pub allocatable: Resources,
    /// Sum of the requests of pods bound to it.
    pub requested: Resources,
    /// Taints.
    pub taints: Vec<Taint>,
    /// `spec.unschedulable` (cordoned).
    pub unschedulable: bool,
    /// Pods bound here, per owner uid (for spreading).
    pub owners: HashMap<String, u32>,
}

/// What the scheduler needs of a pod.
#[derive(Clone, Debug, Default)]
pub struct PodInfo {
    /// Store key.
    pub key: String,
    /// Requests (pods = 1).
    pub requests: Resources,
    /// nodeSelector.
    pub node_selector: BTreeMap<String, String>,
    /// requiredDuringSchedulingIgnoredDuringExecution node selector terms (ORed).
    pub affinity: Vec<Vec<Requirement>>,
    /// Tolerations.
    pub tolerations: Vec<Toleration>,
    /// Controller owner uid.
    pub owner: Option<String>,
}

/// A node selector requirement (`matchExpressions`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    /// Label key.
    pub key: String,
    /// In, NotIn, Exists, DoesNotExist, Gt, Lt.
    pub operator: String,
    /// Values.
    pub values: Vec<String>,
}

/// A toleration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Toleration {
    /// Key ("" with Exists: every key).
    pub key: String,
    /// Equal (default) or Exists.
    pub operator: String,
    /// Value for Equal.
    pub value: String,
    /// Effect ("" matches all).
    pub effect: String,
}

/// The outcome for one pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Bind the pod to the node.
    Bind {
        /// Pod key.
        pod: String,
        /// Node name.
        node: String,
    },
    /// No node fits; the message says why, as Kubernetes does.
    Unschedulable {
        /// Pod key.
        pod: String,
        /// `0/3 nodes are available: 3 Insufficient memory.`
        message: String,
    },
}

fn quantity_of(q: Option<&Quantity>, read: fn(&str) -> Result<u64, quantity::QuantityError>) -> Option<u64> {
    q.and_then(|q| read(&q.0).ok())
}

/// The effective requests of a pod: the sum of its containers' requests, or the
/// largest init container's if that is more (per resource), as Kubernetes does.
/// A container with a limit but no request requests its limit.
pub fn pod_requests(pod: &Pod) -> Resources {
    fn container(c: &Container) -> Resources {
        let res = c.resources.as_ref();
        let get = |name: &str| {
            let request = res.and_then(|r| r.requests.as_ref()).and_then(|r| r.get(name));
            request.or_else(|| res.and_then(|r| r.limits.as_ref()).and_then(|r| r.get(name)))
        };
        Resources {
            cpu: quantity_of(get("cpu"), quantity::cpu_millis).unwrap_or(0),
            memory: quantity_of(get("memory"), quantity::units).unwrap_or(0),
            pods: 0,
        }
    }
    let mut sum = Resources::default();
    let Some(spec) = pod.spec.as_ref() else { return Resources { pods: 1, ..sum } };
    for c in &spec.containers {
        sum.add(&container(c));
    }
    for c in spec.init_containers.iter().flatten() {
        let r = container(c);
        sum.cpu = sum.cpu.max(r.cpu);
        sum.memory = sum.memory.max(r.memory);
    }
    sum.pods = 1;
    sum
}

impl PodInfo {
    /// From a Pod.
    pub fn from_pod(key: String, pod: &Pod) -> PodInfo {
        let spec = pod.spec.as_ref();
        let terms = spec
            .and_then(|s| {
                s.affinity
                    .as_ref()?
                    .node_affinity
                    .as_ref()?
                    .required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .map(|sel| sel.node_selector_terms.as_slice())
            .unwrap_or_default();
        let affinity = terms
            .iter()
            .map(|t| {
                t.match_expressions
                    .iter()
                    .flatten()
                    .map(|e| Requirement {
                        key: e.key.clone(),
                        operator: e.operator.clone(),
                        values: e.values.clone().unwrap_or_default(),
                    })
                    .collect()
            })
            .collect();
        let tolerations = spec
            .and_then(|s| s.tolerations.as_ref())
            .into_iter()
            .flatten()
            .map(|t| Toleration {
                key: t.key.clone().unwrap_or_default(),
                operator: t.operator.clone().unwrap_or_default(),
                value: t.value.clone().unwrap_or_default(),
                effect: t.effect.clone().unwrap_or_default(),
            })
            .collect();
        PodInfo {
            key,
            requests: pod_requests(pod),
            node_selector: spec.and_then(|s| s.node_selector.clone()).unwrap_or_default(),
            affinity,
            tolerations,
            owner: pod
                .metadata
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.controller == Some(true))
                .map(|o| o.uid.clone()),
        }
    }
}

/// Allocatable resources of a Node.
pub fn node_allocatable(node: &Node) -> Resources {
    let status = node.status.as_ref();
    let alloc = status.and_then(|s| s.allocatable.as_ref().or(s.capacity.as_ref()));
    let get = |n: &str| alloc.and_then(|a| a.get(n));
    Resources {
        cpu: quantity_of(get("cpu"), quantity::cpu_millis).unwrap_or(0),
        memory: quantity_of(get("memory"), quantity::units).unwrap_or(0),
        pods: quantity_of(get("pods"), quantity::units).unwrap_or(110),
    }
}

/// The taints of a Node.
pub fn node_taints(node: &Node) -> Vec<Taint> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
        .map(|t| Taint { key: t.key.clone(), value: t.value.clone().unwrap_or_default(), effect: t.effect.clone() })
        .collect()
}

impl NodeInfo {
    /// From a Node (nothing requested yet).
    pub fn from_node(node: &Node) -> NodeInfo {
        NodeInfo {
            name: node.metadata.name.clone().unwrap_or_default(),
            labels: node.metadata.labels.clone().unwrap_or_default(),
            allocatable: node_allocatable(node),
            requested: Resources::default(),
            taints: node_taints(node),
            unschedulable: node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false),
            owners: HashMap::new(),
        }
    }

    /// Count a pod bound to this node.
    pub fn add_pod(&mut self, requests: &Resources, owner: Option<&str>) {
        self.requested.add(requests);
        if let Some(o) = owner {
            *self.owners.entry(o.to_string()).or_default() += 1;
        }
    }
}

/// Whether `t` tolerates `taint`.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if !t.effect.is_empty() && t.effect != taint.effect {
        return false;
    }
    match t.operator.as_str() {
        "Exists" => t.key.is_empty() || t.key == taint.key,
        _ => t.key == taint.key && t.value == taint.value,
    }
}

fn requirement_matches(r: &Requirement, labels: &BTreeMap<String, String>) -> bool {
    let v = labels.get(&r.key);
    match r.operator.as_str() {
        "In" => v.is_some_and(|v| r.values.contains(v)),
        "NotIn" => v.is_none_or(|v| !r.values.contains(v)),
        "Exists" => v.is_some(),
        "DoesNotExist" => v.is_none(),
        "Gt" | "Lt" => {
            let (Some(Ok(have)), Some(Ok(want))) =
                (v.map(|v| v.parse::<i64>()), r.values.first().map(|w| w.parse::<i64>()))
            else {
                return false;
            };
            if r.operator == "Gt" {
                have > want
            } else {
                have < want
            }
        }
        _ => false,
    }
}

/// Why a node does not fit a pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Misfit<'a> {
    /// Cordoned.
    Unschedulable,
    /// nodeSelector or required node affinity.
    Selector,
    /// A NoSchedule/NoExecute taint the pod does not tolerate.
    Taint(&'a str, &'a str),
    /// The node's pod count is full.
    TooManyPods,
    /// Not enough CPU left.
    Cpu,
    /// Not enough memory left.
    Memory,
}

impl std::fmt::Display for Misfit<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Misfit::Unschedulable => write!(f, "node(s) were unschedulable"),
            Misfit::Selector => write!(f, "node(s) didn't match Pod's node affinity/selector"),
            Misfit::Taint(k, v) => write!(f, "node(s) had untolerated taint {{{k}: {v}}}"),
            Misfit::TooManyPods => write!(f, "Too many pods"),
            Misfit::Cpu => write!(f, "Insufficient cpu"),
            Misfit::Memory => write!(f, "Insufficient memory"),
        }
    }
}

/// Why a node does not fit a pod, or None when it fits (checks in
/// kube-scheduler's order; the first failing one is the reason).
pub fn misfit<'a>(pod: &PodInfo, node: &'a NodeInfo) -> Option<Misfit<'a>> {
    if node.unschedulable {
        return Some(Misfit::Unschedulable);
    }
    if pod.node_selector.iter().any(|(k, v)| node.labels.get(k) != Some(v))
        || (!pod.affinity.is_empty()
            && !pod.affinity.iter().any(|term| term.iter().all(|r| requirement_matches(r, &node.labels))))
    {
        return Some(Misfit::Selector);
    }
    for taint in &node.taints {
        if taint.effect == "PreferNoSchedule" {
            continue;
        }
        if !pod.tolerations.iter().any(|t| tolerates(t, taint)) {
            return Some(Misfit::Taint(&taint.key, &taint.value));
        }
    }
    let free = |alloc: u64, used: u64| alloc.saturating_sub(used);
    if pod.requests.pods > free(node.allocatable.pods, node.requested.pods) {
        return Some(Misfit::TooManyPods);
    }
    if pod.requests.cpu > free(node.allocatable.cpu, node.requested.cpu) {
        return Some(Misfit::Cpu);
    }
    if pod.requests.memory > free(node.allocatable.memory, node.requested.memory) {
        return Some(Misfit::Memory);
    }
    None
}

/// Higher is better: the share of CPU and memory left after placing the pod
/// (least-allocated), minus a penalty per pod of the same owner already there.
fn score(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let left = |alloc: u64, used: u64, want: u64| {
        if alloc == 0 {
            return 0;
        }
        (alloc.saturating_sub(used + want) as u128 * 100 / alloc as u128) as i64
    };
    let cpu = left(node.allocatable.cpu, node.requested.cpu, pod.requests.cpu);
    let mem = left(node.allocatable.memory, node.requested.memory, pod.requests.memory);
    let pods = left(node.allocatable.pods, node.requested.pods, 1);
    let spread = pod.owner.as_ref().and_then(|o| node.owners.get(o)).copied().unwrap_or(0) as i64;
    (cpu + mem + pods) * 10 - spread * 1000
}

/// The message of an unschedulable pod from how many nodes failed for each
/// reason (Kubernetes sorts the reasons by their text).
pub fn unschedulable_message(total: usize, reasons: &BTreeMap<Misfit<'_>, usize>) -> String {
    if total == 0 {
        return "0/0 nodes are available: no nodes available to schedule pods.".into();
    }
    let mut parts: Vec<(String, usize)> = reasons.iter().map(|(r, n)| (r.to_string(), *n)).collect();
    parts.sort();
    let parts: Vec<String> = parts.into_iter().map(|(r, n)| format!("{n} {r}")).collect();
    format!("0/{total} nodes are available: {}.", parts.join(", "))
}

/// How many feasible nodes are scored per pod: all of a small cluster; in a
/// large one 5% but at least 100, as kube-scheduler's percentageOfNodesToScore.
pub fn nodes_to_score(nodes: usize) -> usize {
    if nodes <= 100 {
        nodes
    } else {
        (nodes / 20).max(100)
    }
}

/// Place `pods` in order, each onto the best node that fits; a placed pod's
/// requests count against its node for the pods after it. The search for each
/// pod starts where the previous one stopped, so large clusters are covered
/// evenly while only [`nodes_to_score`] feasible nodes are scored per pod.
pub fn schedule(pods: &[PodInfo], nodes: &mut [NodeInfo]) -> Vec<Decision> {
    let mut out = Vec::with_capacity(pods.len());
    let n = nodes.len();
    let enough = nodes_to_score(n);
    let mut start = 0;
    for pod in pods {
        let mut best: Option<(i64, usize)> = None;
        let mut feasible = 0;
        let mut visited = 0;
        for j in 0..n {
            let i = (start + j) % n;
            visited = j + 1;
            if misfit(pod, &nodes[i]).is_none() {
                let s = score(pod, &nodes[i]);
                if best.is_none_or(|(b, _)| s > b) {
                    best = Some((s, i));
                }
                feasible += 1;
                if feasible >= enough {
                    break;
                }
            }
        }
        if n > 0 {
            start = (start + visited) % n;
        }
        match best {
            Some((_, i)) => {
                nodes[i].add_pod(&pod.requests, pod.owner.as_deref());
                out.push(Decision::Bind { pod: pod.key.clone(), node: nodes[i].name.clone() });
            }
            None => {
                let mut reasons = BTreeMap::new();
                for node in nodes.iter() {
                    if let Some(m) = misfit(pod, node) {
                        *reasons.entry(m).or_insert(0) += 1;
                    }
                }
                out.push(Decision::Unschedulable { pod: pod.key.clone(), message: unschedulable_message(n, &reasons) });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn typed<T: serde::de::DeserializeOwned>(v: Value) -> T {
        serde_json::from_value(v).expect("a valid object")
    }

    fn node(name: &str, cpu: &str, mem: &str) -> NodeInfo {
        NodeInfo::from_node(&typed(json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {"allocatable": {"cpu": cpu, "memory": mem, "pods": "110"}}
        })))
    }

    fn pod(name: &str, spec: Value) -> PodInfo {
        PodInfo::from_pod(
            format!("/registry/pods/default/{name}"),
            &typed(json!({"metadata": {"name": name}, "spec": spec})),
        )
    }

    fn with_requests(cpu: &str, mem: &str) -> Value {
        json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": mem}}}]})
    }

    #[test]
    fn fits_against_allocatable_minus_bound() {
        let mut nodes = vec![node("a", "2", "1Gi")];
        let pods: Vec<_> = (0..3).map(|i| pod(&format!("p{i}"), with_requests("500m", "400Mi"))).collect();
        let d = schedule(&pods, &mut nodes);
        assert!(matches!(&d[0], Decision::Bind { node, .. } if node == "a"));
        assert!(matches!(&d[1], Decision::Bind { node, .. } if node == "a"));
        assert_eq!(
            d[2],
            Decision::Unschedulable {
                pod: "/registry/pods/default/p2".into(),
                message: "0/1 nodes are available: 1 Insufficient memory.".into()
            }
        );
    }

    #[test]
    fn message_counts_reasons_like_kubernetes() {
        let mut nodes = vec![node("a", "1", "1Gi"), node("b", "1", "1Gi"), node("c", "1", "1Gi")];
        let d = schedule(&[pod("big", with_requests("100m", "8Gi"))], &mut nodes);
        assert_eq!(
            d,
            vec![Decision::Unschedulable {
                pod: "/registry/pods/default/big".into(),
                message: "0/3 nodes are available: 3 Insufficient memory.".into()
            }]
        );
        nodes[0].unschedulable = true;
        let d = schedule(&[pod("big", with_requests("4", "8Gi"))], &mut nodes);
        let Decision::Unschedulable { message, .. } = &d[0] else { panic!() };
        assert_eq!(message, "0/3 nodes are available: 2 Insufficient cpu, 1 node(s) were unschedulable.");
    }

    #[test]
    fn node_selector_and_affinity() {
        let mut nodes = vec![node("a", "4", "4Gi"), node("b", "4", "4Gi")];
        let d = schedule(
            &[pod("p", json!({"nodeSelector": {"kubernetes.io/hostname": "b"}, "containers": []}))],
            &mut nodes,
        );
        assert_eq!(d[0], Decision::Bind { pod: "/registry/pods/default/p".into(), node: "b".into() });
        let aff = json!({"containers": [], "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
            {"nodeSelectorTerms": [{"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "NotIn", "values": ["b"]}]}]}}}});
        let d = schedule(&[pod("q", aff)], &mut nodes);
        assert_eq!(d[0], Decision::Bind { pod: "/registry/pods/default/q".into(), node: "a".into() });
        let none = json!({"containers": [], "nodeSelector": {"disk": "ssd"}});
        let Decision::Unschedulable { message, .. } = &schedule(&[pod("r", none)], &mut nodes)[0] else { panic!() };
        assert_eq!(message, "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector.");
    }

    #[test]
    fn taints_need_tolerations() {
        let mut nodes = vec![node("a", "4", "4Gi")];
        nodes[0].taints.push(Taint { key: "dedicated".into(), value: "db".into(), effect: "NoSchedule".into() });
        let Decision::Unschedulable { message, .. } = &schedule(&[pod("p", json!({"containers": []}))], &mut nodes)[0]
        else {
            panic!()
        };
        assert_eq!(message, "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: db}.");
        let tol = json!({"containers": [], "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}]});
        assert!(matches!(schedule(&[pod("p", tol)], &mut nodes)[0], Decision::Bind { .. }));
        let all = json!({"containers": [], "tolerations": [{"operator": "Exists"}]});
        assert!(matches!(schedule(&[pod("p", all)], &mut nodes)[0], Decision::Bind { .. }));
    }

    #[test]
    fn spreads_pods_of_one_owner_and_prefers_least_allocated() {
        let mut nodes = vec![node("a", "4", "4Gi"), node("b", "4", "4Gi"), node("c", "4", "4Gi")];
        let owned = |i: usize| {
            PodInfo::from_pod(
                format!("/registry/pods/default/w{i}"),
                &typed(json!({"metadata": {"name": format!("w{i}"), "ownerReferences": [
                            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "w", "uid": "rs1", "controller": true}]},
                        "spec": with_requests("100m", "64Mi")})),
            )
        };
        let pods: Vec<_> = (0..6).map(owned).collect();
        let d = schedule(&pods, &mut nodes);
        let mut per: BTreeMap<String, usize> = BTreeMap::new();
        for x in d {
            let Decision::Bind { node, .. } = x else { panic!() };
            *per.entry(node).or_default() += 1;
        }
        assert_eq!(per.values().copied().collect::<Vec<_>>(), vec![2, 2, 2]);
    }

    #[test]
    fn a_large_cluster_is_covered_evenly_while_scoring_a_sample() {
        let mut nodes: Vec<NodeInfo> = (0..1000).map(|i| node(&format!("n{i:04}"), "32", "128Gi")).collect();
        let pods: Vec<_> = (0..3000).map(|i| pod(&format!("p{i}"), with_requests("100m", "128Mi"))).collect();
        let d = schedule(&pods, &mut nodes);
        let mut per: BTreeMap<String, usize> = BTreeMap::new();
        for x in d {
            let Decision::Bind { node, .. } = x else { panic!("every pod fits") };
            *per.entry(node).or_default() += 1;
        }
        assert_eq!(per.len(), 1000, "every node got pods");
        assert!(per.values().all(|&n| n == 3), "{:?}", per.values().max());
    }

    #[test]
    fn init_containers_count_by_their_maximum() {
        let p = json!({"spec": {
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2"}}}],
            "containers": [{"name": "a", "resources": {"requests": {"cpu": "500m", "memory": "1Mi"}}},
                           {"name": "b", "resources": {"limits": {"cpu": "500m"}}}]}});
        assert_eq!(pod_requests(&typed(p)), Resources { cpu: 2000, memory: 1 << 20, pods: 1 });
    }
}
