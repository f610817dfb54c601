//! The columns `get` prints for each kind, as kubectl's printers choose
//! them, read from the typed object (what arrives over the wire is parsed
//! once, here).

use chrono::{DateTime, Utc};
use k8s_openapi::api::{
    apps::v1 as apps, batch::v1 as batch, coordination::v1 as coord, core::v1 as core, discovery::v1 as discovery,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::Value;

use crate::objects::typed::{Object, Typed};
use crate::objects::Kind;

/// The column headers for a kind.
pub fn headers(kind: &Kind, wide: bool) -> Vec<&'static str> {
    let mut h = match kind.kind {
        "Pod" => vec!["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "Deployment" => vec!["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        "ReplicaSet" => vec!["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
        "StatefulSet" => vec!["NAME", "READY", "AGE"],
        "DaemonSet" => vec!["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        "Job" => vec!["NAME", "STATUS", "COMPLETIONS", "AGE"],
        "Service" => vec!["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"],
        "Node" => vec!["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
        "Namespace" => vec!["NAME", "STATUS", "AGE"],
        "ConfigMap" => vec!["NAME", "DATA", "AGE"],
        "Secret" => vec!["NAME", "TYPE", "DATA", "AGE"],
        "Endpoints" => vec!["NAME", "ENDPOINTS", "AGE"],
        "EndpointSlice" => vec!["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"],
        "Lease" => vec!["NAME", "HOLDER", "AGE"],
        "Event" => vec!["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
        _ => vec!["NAME", "AGE"],
    };
    if wide && kind.kind == "Pod" {
        h.extend(["IP", "NODE"]);
    }
    h
}

/// Time since `created`, as kubectl prints ages: `45s`, `12m`, `3h`, `5d`.
pub fn age(created: &str, now: DateTime<Utc>) -> String {
    let Ok(t) = DateTime::parse_from_rfc3339(created) else {
        return "<unknown>".into();
    };
    let secs = (now - t.with_timezone(&Utc)).num_seconds().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 3600 * 2 => format!("{}m", s / 60),
        s if s < 86400 * 2 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

fn or_none(x: Option<&str>) -> String {
    match x {
        Some(x) if !x.is_empty() => x.into(),
        _ => "<none>".into(),
    }
}

fn ago(t: Option<&Time>, now: DateTime<Utc>) -> String {
    t.map_or_else(|| "<unknown>".into(), |t| age(&crate::util::rfc3339(crate::util::chrono_of(t)), now))
}

fn num(n: Option<i32>) -> String {
    n.unwrap_or(0).to_string()
}

/// One table row for an object (the columns of [`headers`]; an object its
/// type refuses shows its name and age, and the other columns empty).
pub fn row(kind: &Kind, raw: &Value, wide: bool, now: DateTime<Utc>) -> Vec<String> {
    let mut typed = raw.clone();
    // Items of a list may leave out their kind: the list's kind says it.
    if let Some(o) = typed.as_object_mut().filter(|o| !o.contains_key("kind")) {
        o.insert("kind".into(), kind.kind.into());
        o.insert("apiVersion".into(), kind.api_version.into());
    }
    let obj = Object::new(typed);
    let Some(meta) = obj.metadata() else {
        let name = crate::objects::meta_str(raw, "name").to_string();
        let mut r = vec![name, age(crate::objects::meta_str(raw, "creationTimestamp"), now)];
        r.resize(headers(kind, wide).len(), String::new());
        return r;
    };
    let name = meta.name.clone().unwrap_or_default();
    let a = ago(meta.creation_timestamp.as_ref(), now);
    let mut r = match obj.typed() {
        Typed::Pod(p) => pod_row(p, name, a),
        Typed::Deployment(d) => deployment_row(d, name, a),
        Typed::ReplicaSet(rs) => replica_set_row(rs, name, a),
        Typed::StatefulSet(sts) => stateful_set_row(sts, name, a),
        Typed::DaemonSet(ds) => daemon_set_row(ds, name, a),
        Typed::Job(job) => job_row(job, name, a),
        Typed::Service(svc) => service_row(svc, name, a),
        Typed::Node(node) => node_row(node, name, a),
        Typed::Namespace(ns) => namespace_row(ns, name, a),
        Typed::ConfigMap(cm) => config_map_row(cm, name, a),
        Typed::Secret(secret) => secret_row(secret, name, a),
        Typed::Endpoints(ep) => endpoints_row(ep, name, a),
        Typed::EndpointSlice(slice) => endpoint_slice_row(slice, name, a),
        Typed::Lease(lease) => lease_row(lease, name, a),
        Typed::Event(e) => event_row(e, now),
        Typed::ServiceAccount(_) | Typed::Untyped => vec![name, a],
    };
    if wide && kind.kind == "Pod" {
        let pod = obj.pod();
        r.push(or_none(pod.and_then(|p| p.status.as_ref()?.pod_ip.as_deref())));
        r.push(or_none(pod.and_then(|p| p.spec.as_ref()?.node_name.as_deref())));
    }
    r
}

fn pod_row(p: &core::Pod, name: String, a: String) -> Vec<String> {
    let total = p.spec.as_ref().map_or(0, |s| s.containers.len());
    let status = p.status.as_ref();
    let statuses = status.and_then(|s| s.container_statuses.as_deref()).unwrap_or_default();
    let ready = statuses.iter().filter(|c| c.ready).count();
    let restarts: i32 = statuses.iter().map(|c| c.restart_count).sum();
    let state = |c: &k8s_openapi::api::core::v1::ContainerStatus| c.state.clone().unwrap_or_default();
    let waiting = statuses.iter().find_map(|c| state(c).waiting.and_then(|w| w.reason));
    let terminated = statuses.iter().find_map(|c| state(c).terminated.and_then(|t| t.reason));
    let shown = if p.metadata.deletion_timestamp.is_some() {
        "Terminating".to_string()
    } else {
        waiting.or(terminated).or_else(|| status.and_then(|s| s.phase.clone())).unwrap_or_default()
    };
    vec![name, format!("{ready}/{total}"), shown, restarts.to_string(), a]
}

fn deployment_row(d: &apps::Deployment, name: String, a: String) -> Vec<String> {
    let (spec, status) = (d.spec.as_ref(), d.status.clone().unwrap_or_default());
    vec![
        name,
        format!("{}/{}", num(status.ready_replicas), num(spec.and_then(|s| s.replicas))),
        num(status.updated_replicas),
        num(status.available_replicas),
        a,
    ]
}

fn replica_set_row(rs: &apps::ReplicaSet, name: String, a: String) -> Vec<String> {
    let status = rs.status.clone().unwrap_or_default();
    let wanted = rs.spec.as_ref().and_then(|s| s.replicas);
    vec![name, num(wanted), status.replicas.to_string(), num(status.ready_replicas), a]
}

fn stateful_set_row(sts: &apps::StatefulSet, name: String, a: String) -> Vec<String> {
    let ready = sts.status.as_ref().and_then(|s| s.ready_replicas);
    vec![name, format!("{}/{}", num(ready), num(sts.spec.as_ref().and_then(|s| s.replicas))), a]
}

fn daemon_set_row(ds: &apps::DaemonSet, name: String, a: String) -> Vec<String> {
    let s = ds.status.clone().unwrap_or_default();
    vec![
        name,
        s.desired_number_scheduled.to_string(),
        s.current_number_scheduled.to_string(),
        s.number_ready.to_string(),
        num(s.updated_number_scheduled),
        num(s.number_available),
        a,
    ]
}

fn job_row(job: &batch::Job, name: String, a: String) -> Vec<String> {
    let status = job.status.clone().unwrap_or_default();
    let done = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.status == "True" && (c.type_ == "Complete" || c.type_ == "Failed"));
    let completions = job.spec.as_ref().and_then(|s| s.completions);
    vec![
        name,
        done.map_or("Running".into(), |c| c.type_.clone()),
        format!("{}/{}", num(status.succeeded), num(completions)),
        a,
    ]
}

fn service_row(svc: &core::Service, name: String, a: String) -> Vec<String> {
    let spec = svc.spec.clone().unwrap_or_default();
    let ports: Vec<String> = spec
        .ports
        .iter()
        .flatten()
        .map(|p| {
            let proto = p.protocol.as_deref().unwrap_or("TCP");
            match p.node_port {
                Some(np) => format!("{}:{np}/{proto}", p.port),
                None => format!("{}/{proto}", p.port),
            }
        })
        .collect();
    let ty = spec.type_.clone().unwrap_or_else(|| "ClusterIP".into());
    vec![
        name,
        ty.clone(),
        or_none(spec.cluster_ip.as_deref()),
        external_ip(svc, &ty),
        or_none(Some(&ports.join(","))),
        a,
    ]
}

/// EXTERNAL-IP as kubectl shows it: the external name, the load balancer's
/// addresses (`<pending>` while there are none) and any external IPs.
fn external_ip(svc: &core::Service, ty: &str) -> String {
    let spec = svc.spec.clone().unwrap_or_default();
    if ty == "ExternalName" {
        return or_none(spec.external_name.as_deref());
    }
    let mut ips: Vec<String> = Vec::new();
    if ty == "LoadBalancer" {
        let ingress = svc.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|lb| lb.ingress.clone());
        ips.extend(ingress.into_iter().flatten().filter_map(|i| i.ip.or(i.hostname)));
    }
    ips.extend(spec.external_ips.into_iter().flatten());
    match (ips.is_empty(), ty) {
        (true, "LoadBalancer") => "<pending>".into(),
        (true, _) => "<none>".into(),
        (false, _) => ips.join(","),
    }
}

fn node_row(node: &core::Node, name: String, a: String) -> Vec<String> {
    let conditions = node.status.as_ref().and_then(|s| s.conditions.as_deref()).unwrap_or_default();
    let ready = conditions.iter().find(|c| c.type_ == "Ready").map_or("Unknown", |c| {
        if c.status == "True" {
            "Ready"
        } else {
            "NotReady"
        }
    });
    let status = if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        format!("{ready},SchedulingDisabled")
    } else {
        ready.to_string()
    };
    let roles: Vec<&str> =
        node.metadata.labels.iter().flatten().filter_map(|(k, _)| k.strip_prefix("node-role.kubernetes.io/")).collect();
    let version = node.status.as_ref().and_then(|s| s.node_info.as_ref()).map(|i| i.kubelet_version.clone());
    vec![name, status, or_none(Some(&roles.join(","))), a, version.unwrap_or_default()]
}

fn namespace_row(ns: &core::Namespace, name: String, a: String) -> Vec<String> {
    vec![name, ns.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default(), a]
}

fn config_map_row(cm: &core::ConfigMap, name: String, a: String) -> Vec<String> {
    let count = cm.data.as_ref().map_or(0, |m| m.len()) + cm.binary_data.as_ref().map_or(0, |m| m.len());
    vec![name, count.to_string(), a]
}

fn secret_row(secret: &core::Secret, name: String, a: String) -> Vec<String> {
    let count = secret.data.as_ref().map_or(0, |m| m.len());
    vec![name, secret.type_.clone().unwrap_or_default(), count.to_string(), a]
}

fn endpoints_row(ep: &core::Endpoints, name: String, a: String) -> Vec<String> {
    let eps: Vec<String> = ep
        .subsets
        .iter()
        .flatten()
        .flat_map(|sub| {
            let ports: Vec<i32> = sub.ports.iter().flatten().map(|p| p.port).collect();
            sub.addresses.iter().flatten().flat_map(move |addr| {
                let ip = addr.ip.clone();
                ports.clone().into_iter().map(move |p| format!("{ip}:{p}"))
            })
        })
        .collect();
    vec![name, or_none(Some(&eps.join(","))), a]
}

/// kubectl's EndpointSlice row: the ports, and the first three addresses
/// with a count of the rest.
fn endpoint_slice_row(slice: &discovery::EndpointSlice, name: String, a: String) -> Vec<String> {
    let ports: Vec<String> =
        slice.ports.iter().flatten().map(|p| p.port.map_or("<unset>".into(), |p| p.to_string())).collect();
    let addresses: Vec<&str> = slice.endpoints.iter().flat_map(|e| e.addresses.iter().map(String::as_str)).collect();
    let mut shown = addresses.iter().take(3).copied().collect::<Vec<_>>().join(",");
    if addresses.len() > 3 {
        shown.push_str(&format!(" + {} more...", addresses.len() - 3));
    }
    vec![name, slice.address_type.clone(), or_none(Some(&ports.join(","))), or_none(Some(&shown)), a]
}

fn lease_row(lease: &coord::Lease, name: String, a: String) -> Vec<String> {
    vec![name, or_none(lease.spec.as_ref().and_then(|s| s.holder_identity.as_deref())), a]
}

fn event_row(e: &core::Event, now: DateTime<Utc>) -> Vec<String> {
    let involved = &e.involved_object;
    vec![
        ago(e.last_timestamp.as_ref(), now),
        e.type_.clone().unwrap_or_default(),
        e.reason.clone().unwrap_or_default(),
        format!(
            "{}/{}",
            involved.kind.as_deref().unwrap_or_default().to_ascii_lowercase(),
            involved.name.as_deref().unwrap_or_default()
        ),
        e.message.clone().unwrap_or_default(),
    ]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::objects::kinds;

    #[test]
    fn rows_show_what_kubectl_shows() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T00:10:00Z").unwrap().with_timezone(&Utc);
        let created = "2026-01-01T00:00:00Z";
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1", "creationTimestamp": created},
            "spec": {"nodeName": "n1", "containers": [{"name": "a", "image": "i"}, {"name": "b", "image": "i"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.5", "containerStatuses": [
                {"name": "a", "image": "i", "imageID": "", "ready": true, "restartCount": 2, "state": {"running": {}}},
                {"name": "b", "image": "i", "imageID": "", "ready": false, "restartCount": 1,
                 "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        let node = json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "n1", "creationTimestamp": created, "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "True"}], "nodeInfo": {"kubeletVersion": "v1.33.0",
                "architecture": "", "bootID": "", "containerRuntimeVersion": "", "kernelVersion": "", "kubeProxyVersion": "",
                "machineID": "", "operatingSystem": "", "osImage": "", "systemUUID": ""}}});
        let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "creationTimestamp": created},
            "spec": {"replicas": 3, "selector": {}, "template": {}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        let svc = |spec: serde_json::Value| json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "creationTimestamp": created}, "spec": spec});
        let node_port = svc(json!({"type": "NodePort", "clusterIP": "10.96.0.5",
            "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}, {"port": 53, "protocol": "UDP", "nodePort": 30053}]}));
        let lb = svc(
            json!({"type": "LoadBalancer", "clusterIP": "10.96.0.6", "ports": [{"port": 443, "protocol": "TCP", "nodePort": 31443}]}),
        );
        let headless =
            svc(json!({"type": "ClusterIP", "clusterIP": "None", "ports": [{"port": 80, "protocol": "TCP"}]}));
        let external = svc(json!({"type": "ExternalName", "externalName": "example.com"}));
        let slice = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "web-abc", "creationTimestamp": created}, "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080}, {"name": "dns", "port": 53}],
            "endpoints": (1..=5).map(|i| json!({"addresses": [format!("10.0.0.{i}")]})).collect::<Vec<_>>()});
        let cases = [
            (
                &kinds::SERVICE,
                node_port,
                false,
                vec!["web", "NodePort", "10.96.0.5", "<none>", "80:30080/TCP,53:30053/UDP", "10m"],
            ),
            (&kinds::SERVICE, lb, false, vec!["web", "LoadBalancer", "10.96.0.6", "<pending>", "443:31443/TCP", "10m"]),
            (&kinds::SERVICE, headless, false, vec!["web", "ClusterIP", "None", "<none>", "80/TCP", "10m"]),
            (&kinds::SERVICE, external, false, vec!["web", "ExternalName", "<none>", "example.com", "<none>", "10m"]),
            (
                &kinds::ENDPOINT_SLICE,
                slice,
                false,
                vec!["web-abc", "IPv4", "8080,53", "10.0.0.1,10.0.0.2,10.0.0.3 + 2 more...", "10m"],
            ),
            (&kinds::POD, pod, true, vec!["web-1", "1/2", "CrashLoopBackOff", "3", "10m", "10.0.0.5", "n1"]),
            (&kinds::NODE, node, false, vec!["n1", "Ready,SchedulingDisabled", "control-plane", "10m", "v1.33.0"]),
            (&kinds::DEPLOYMENT, deploy, false, vec!["web", "2/3", "3", "2", "10m"]),
        ];
        for (kind, obj, wide, want) in cases {
            assert_eq!(row(kind, &obj, wide, now), want, "{}", kind.kind);
            assert_eq!(headers(kind, wide).len(), want.len(), "{}", kind.kind);
        }
    }
}
