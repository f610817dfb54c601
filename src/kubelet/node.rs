//! The kubelet's Node object (capacity from the host, addresses, conditions) and
//! its Lease in `kube-node-lease`.

use std::collections::BTreeMap;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};

/// What the host offers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostCapacity {
    /// CPUs.
    pub cpus: u64,
    /// Memory in KiB.
    pub memory_kib: u64,
}

/// Read the host's CPUs and memory.
pub fn host_capacity() -> HostCapacity {
    let cpus = std::thread::available_parallelism().map(|n| n.get() as u64).unwrap_or(1);
    let memory_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("MemTotal:").and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
        })
        .unwrap_or(0);
    HostCapacity { cpus, memory_kib }
}

/// Settings of this node's registration.
#[derive(Clone, Debug)]
pub struct Registration {
    /// Node name.
    pub name: String,
    /// Node IP.
    pub ip: String,
    /// A control-plane (Raft voter) node.
    pub control_plane: bool,
    /// Pods this node takes at most.
    pub max_pods: u64,
}

/// The Node's status as the kubelet reports it.
pub fn node_status(reg: &Registration, cap: &HostCapacity, now: &Time) -> NodeStatus {
    let resources: BTreeMap<String, Quantity> = [
        ("cpu", cap.cpus.to_string()),
        ("memory", format!("{}Ki", cap.memory_kib)),
        ("pods", reg.max_pods.to_string()),
        ("ephemeral-storage", "0".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), Quantity(v)))
    .collect();
    let cond = |t: &str, status: &str, reason: &str, message: &str| NodeCondition {
        type_: t.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_heartbeat_time: Some(now.clone()),
        last_transition_time: Some(now.clone()),
    };
    let address = |t: &str, a: &str| NodeAddress { type_: t.into(), address: a.into() };
    NodeStatus {
        capacity: Some(resources.clone()),
        allocatable: Some(resources),
        addresses: Some(vec![address("InternalIP", &reg.ip), address("Hostname", &reg.name)]),
        conditions: Some(vec![
            cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ]),
        node_info: Some(NodeSystemInfo {
            architecture: std::env::consts::ARCH.into(),
            operating_system: "linux".into(),
            os_image: "Linux".into(),
            kernel_version: std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().into(),
            kubelet_version: concat!("clusterd-", env!("CARGO_PKG_VERSION")).into(),
            kube_proxy_version: String::new(),
            container_runtime_version: concat!("clusterd://", env!("CARGO_PKG_VERSION")).into(),
            ..Default::default()
        }),
        daemon_endpoints: Some(NodeDaemonEndpoints { kubelet_endpoint: Some(DaemonEndpoint { port: 0 }) }),
        ..Default::default()
    }
}

/// The label that marks a control-plane node.
pub const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";

/// A new Node object for this node.
pub fn node_object(reg: &Registration, cap: &HostCapacity, now: &Time) -> Node {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    };
    let mut labels: BTreeMap<String, String> =
        [("kubernetes.io/hostname", reg.name.as_str()), ("kubernetes.io/os", "linux"), ("kubernetes.io/arch", arch)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    if reg.control_plane {
        labels.insert(CONTROL_PLANE_LABEL.into(), String::new());
    }
    Node {
        metadata: ObjectMeta { name: Some(reg.name.clone()), labels: Some(labels), ..Default::default() },
        spec: Some(NodeSpec::default()),
        status: Some(node_status(reg, cap, now)),
    }
}

/// Refresh a stored Node's status: conditions keep their transition times.
pub fn refresh(node: &mut Node, fresh: NodeStatus) {
    let old = node.status.take().and_then(|s| s.conditions).unwrap_or_default();
    let mut status = fresh;
    for c in status.conditions.iter_mut().flatten() {
        if let Some(o) = old.iter().find(|o| o.type_ == c.type_ && o.status == c.status) {
            c.last_transition_time = o.last_transition_time.clone();
        }
    }
    node.status = Some(status);
}

/// Whether the Node's Ready condition is True.
pub fn ready(node: &Node) -> bool {
    let conditions = node.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions.into_iter().flatten().any(|c| c.type_ == "Ready" && c.status == "True")
}

/// The node's Lease.
pub fn lease_object(name: &str, node_uid: &str, duration_secs: u64, now: &MicroTime) -> Lease {
    let owner = OwnerReference {
        api_version: "v1".into(),
        kind: "Node".into(),
        name: name.into(),
        uid: node_uid.into(),
        ..Default::default()
    };
    Lease {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(crate::objects::conventions::NODE_LEASE_NAMESPACE.into()),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(name.into()),
            lease_duration_seconds: Some(i32::try_from(duration_secs).unwrap_or(i32::MAX)),
            renew_time: Some(now.clone()),
            ..Default::default()
        }),
    }
}

/// Renew the Lease: held by `holder`, renewed `now`.
pub fn renew(lease: &mut Lease, holder: &str, now: &MicroTime) {
    let spec = lease.spec.get_or_insert_with(Default::default);
    spec.renew_time = Some(now.clone());
    spec.holder_identity = Some(holder.into());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: &str) -> Time {
        Time(t.parse().unwrap())
    }

    #[test]
    fn node_reports_capacity_and_ready() {
        let reg = Registration { name: "n1".into(), ip: "127.0.0.1".into(), control_plane: true, max_pods: 110 };
        let cap = HostCapacity { cpus: 2, memory_kib: 1024 };
        let (t1, t2) = (at("2026-01-01T00:00:01Z"), at("2026-01-01T00:00:02Z"));
        let node = node_object(&reg, &cap, &t1);
        let n = serde_json::to_value(&node).unwrap();
        assert_eq!((n["apiVersion"].as_str(), n["kind"].as_str()), (Some("v1"), Some("Node")));
        assert_eq!(n["status"]["allocatable"]["cpu"], "2");
        assert_eq!(n["status"]["capacity"]["memory"], "1024Ki");
        assert_eq!(n["metadata"]["labels"]["node-role.kubernetes.io/control-plane"], "");
        assert_eq!(n["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"], 0);
        let ready_json = n["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").unwrap();
        assert_eq!(ready_json["status"], "True");
        assert!(ready(&node));
        let mut stored = node.clone();
        refresh(&mut stored, node_status(&reg, &cap, &t2));
        let r = &stored.status.as_ref().unwrap().conditions.as_ref().unwrap()[3];
        assert_eq!((r.last_transition_time.as_ref(), r.last_heartbeat_time.as_ref()), (Some(&t1), Some(&t2)));
        stored.status.as_mut().unwrap().conditions.as_mut().unwrap()[3].status = "Unknown".into();
        assert!(!ready(&stored));
        refresh(&mut stored, node_status(&reg, &cap, &t2));
        let r = &stored.status.as_ref().unwrap().conditions.as_ref().unwrap()[3];
        assert_eq!(r.last_transition_time.as_ref(), Some(&t2), "back to Ready: the transition moves");
        assert!(host_capacity().cpus >= 1);
    }

    #[test]
    fn the_lease_is_owned_by_the_node_and_renewed() {
        let t1 = MicroTime("2026-01-01T00:00:01.123456Z".parse().unwrap());
        let mut lease = lease_object("n1", "uid-1", 40, &t1);
        let l = serde_json::to_value(&lease).unwrap();
        assert_eq!(l["metadata"]["namespace"], crate::objects::conventions::NODE_LEASE_NAMESPACE);
        assert_eq!(l["metadata"]["ownerReferences"][0]["uid"], "uid-1");
        assert_eq!(l["spec"]["leaseDurationSeconds"], 40);
        assert_eq!(l["spec"]["renewTime"], "2026-01-01T00:00:01.123456Z");
        let t2 = MicroTime("2026-01-01T00:00:05Z".parse().unwrap());
        renew(&mut lease, "n1", &t2);
        assert_eq!(lease.spec.unwrap().renew_time, Some(t2));
    }
}
