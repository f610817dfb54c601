//! The kubelet's Node object (capacity from the host, addresses, conditions) and
//! its Lease in `kube-node-lease`.

use serde_json::{json, Value};

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
pub fn node_status(reg: &Registration, cap: &HostCapacity, now: &str) -> Value {
    let resources = json!({
        "cpu": cap.cpus.to_string(),
        "memory": format!("{}Ki", cap.memory_kib),
        "pods": reg.max_pods.to_string(),
        "ephemeral-storage": "0",
    });
    let cond = |t: &str, status: &str, reason: &str, message: &str| {
        json!({"type": t, "status": status, "reason": reason, "message": message,
               "lastHeartbeatTime": now, "lastTransitionTime": now})
    };
    json!({
        "capacity": resources,
        "allocatable": resources,
        "addresses": [{"type": "InternalIP", "address": reg.ip}, {"type": "Hostname", "address": reg.name}],
        "conditions": [
            cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ],
        "nodeInfo": {
            "architecture": std::env::consts::ARCH,
            "operatingSystem": "linux",
            "osImage": "Linux",
            "kernelVersion": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
            "kubeletVersion": concat!("clusterd-", env!("CARGO_PKG_VERSION")),
            "kubeProxyVersion": "",
            "containerRuntimeVersion": concat!("clusterd://", env!("CARGO_PKG_VERSION")),
            "machineID": "", "systemUUID": "", "bootID": "",
        },
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
    })
}

/// A new Node object for this node.
pub fn node_object(reg: &Registration, cap: &HostCapacity, now: &str) -> Value {
    let mut labels = json!({
        "kubernetes.io/hostname": reg.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": match std::env::consts::ARCH { "x86_64" => "amd64", "aarch64" => "arm64", a => a },
    });
    if reg.control_plane {
        labels["node-role.kubernetes.io/control-plane"] = json!("");
    }
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": reg.name, "labels": labels},
        "spec": {},
        "status": node_status(reg, cap, now),
    })
}

/// Refresh a stored Node's status: conditions keep their transition times.
pub fn refresh(node: &mut Value, fresh: Value) {
    let old: Vec<Value> = node.pointer("/status/conditions").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut status = fresh;
    if let Some(conds) = status.get_mut("conditions").and_then(Value::as_array_mut) {
        for c in conds {
            let same = old.iter().find(|o| o.get("type") == c.get("type") && o.get("status") == c.get("status"));
            if let Some(o) = same {
                c["lastTransitionTime"] = o["lastTransitionTime"].clone();
            }
        }
    }
    node["status"] = status;
}

/// `renewTime` as Kubernetes writes a MicroTime.
pub fn micro_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The node's Lease.
pub fn lease_object(name: &str, node_uid: &str, duration_secs: u64, now: &str) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": name,
            "namespace": crate::objects::conventions::NODE_LEASE_NAMESPACE,
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": name, "uid": node_uid}],
        },
        "spec": {"holderIdentity": name, "leaseDurationSeconds": duration_secs, "renewTime": now},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_reports_capacity_and_ready() {
        let reg = Registration { name: "n1".into(), ip: "127.0.0.1".into(), control_plane: true, max_pods: 110 };
        let cap = HostCapacity { cpus: 2, memory_kib: 1024 };
        let n = node_object(&reg, &cap, "T");
        assert_eq!(n["status"]["allocatable"]["cpu"], "2");
        assert_eq!(n["status"]["capacity"]["memory"], "1024Ki");
        assert_eq!(n["metadata"]["labels"]["node-role.kubernetes.io/control-plane"], "");
        let ready = n["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").unwrap();
        assert_eq!(ready["status"], "True");
        let mut stored = n.clone();
        refresh(&mut stored, node_status(&reg, &cap, "T2"));
        assert_eq!(stored["status"]["conditions"][3]["lastTransitionTime"], "T");
        assert_eq!(stored["status"]["conditions"][3]["lastHeartbeatTime"], "T2");
        assert!(host_capacity().cpus >= 1);
    }
}
