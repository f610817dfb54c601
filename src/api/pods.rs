//! The API calls that reach into nodes — logs, exec, image load, top — answered
//! by forwarding to the pod's node (or every node) over the node transport, and
//! graceful pod deletion.

use std::time::Duration;

use serde_json::{json, Value};
use tonic::Status;

use super::keys;
use super::pb;
use super::service::Api;
use crate::kubelet::service::{decode, encode, NodeAnswer, NodeCall};
use crate::objects::{meta_str, Kind};

/// How long a call to a node may take (an exec runs the command to its end).
const NODE_CALL: Duration = Duration::from_secs(120);

/// The node transport address of every registered node, by name.
pub fn node_addrs(api: &Api) -> Result<Vec<(String, String)>, Status> {
    let (kvs, _) = api.store().list(keys::MEMBERS).map_err(|e| Status::internal(e.to_string()))?;
    Ok(kvs
        .iter()
        .filter_map(|kv| {
            let v: Value = serde_json::from_slice(&kv.value).ok()?;
            Some((v.get("name")?.as_str()?.to_string(), v.get("raftAddr")?.as_str()?.to_string()))
        })
        .collect())
}

async fn call(api: &Api, addr: &str, c: &NodeCall) -> Result<NodeAnswer, Status> {
    let bytes =
        api.node().call_node(addr, encode(c), NODE_CALL).await.map_err(|e| Status::unavailable(e.to_string()))?;
    decode(&bytes).map_err(Status::internal)
}

/// The pod and the transport address of its node.
fn pod_node(api: &Api, ns: &str, pod: &str) -> Result<(Value, String), Status> {
    let key = Kind::resolve("pod").expect("pod").key(ns, pod);
    let kv = api
        .store()
        .get(&key)
        .map_err(|e| Status::internal(e.to_string()))?
        .ok_or_else(|| Status::not_found(format!("pods \"{pod}\" not found")))?;
    let obj: Value = serde_json::from_slice(&kv.value).map_err(|e| Status::internal(e.to_string()))?;
    let node = obj.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or("");
    if node.is_empty() {
        return Err(Status::failed_precondition(format!("pod {pod} is not scheduled to a node yet")));
    }
    let addr = node_addrs(api)?
        .into_iter()
        .find(|(n, _)| n == node)
        .map(|(_, a)| a)
        .ok_or_else(|| Status::unavailable(format!("node {node} of pod {pod} is not a member")))?;
    Ok((obj, addr))
}

/// The container a request means: the named one, or the pod's first (as
/// kubectl's default container when the pod has one).
fn container_name(pod: &Value, asked: &str) -> Result<String, Status> {
    let names: Vec<String> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .chain(pod.pointer("/spec/initContainers").and_then(Value::as_array).into_iter().flatten())
        .filter_map(|c| c.get("name")?.as_str().map(String::from))
        .collect();
    if asked.is_empty() {
        return names.first().cloned().ok_or_else(|| Status::invalid_argument("the pod has no containers"));
    }
    if names.iter().any(|n| n == asked) {
        Ok(asked.to_string())
    } else {
        Err(Status::invalid_argument(format!(
            "container {asked} is not valid for pod {}; choose one of: [{}]",
            meta_str(pod, "name"),
            names.join(" ")
        )))
    }
}

/// One fetch of a container's log lines.
pub async fn log_lines(api: &Api, r: &pb::LogsRequest) -> Result<Vec<String>, Status> {
    let ns = if r.namespace.is_empty() { "default" } else { &r.namespace };
    let (pod, addr) = pod_node(api, ns, &r.pod)?;
    let container = container_name(&pod, &r.container)?;
    let c = NodeCall::Logs { namespace: ns.into(), pod: r.pod.clone(), container, previous: r.previous };
    match call(api, &addr, &c).await? {
        NodeAnswer::Logs(lines) => Ok(lines),
        _ => Err(Status::internal("unexpected answer")),
    }
}

/// Run a command in a container on its node.
pub async fn exec(api: &Api, r: pb::ExecRequest) -> Result<pb::ExecResponse, Status> {
    let ns = if r.namespace.is_empty() { "default".to_string() } else { r.namespace };
    let (pod, addr) = pod_node(api, &ns, &r.pod)?;
    if r.command.is_empty() {
        return Err(Status::invalid_argument("you must specify at least one command for the container"));
    }
    let container = container_name(&pod, &r.container)?;
    match call(api, &addr, &NodeCall::Exec { namespace: ns, pod: r.pod, container, command: r.command }).await? {
        NodeAnswer::Exec { stdout, stderr, exit_code } => Ok(pb::ExecResponse { stdout, stderr, exit_code }),
        _ => Err(Status::internal("unexpected answer")),
    }
}

/// Send an image archive to every node.
pub async fn load_image(api: &Api, archive: Vec<u8>) -> Result<pb::LoadImageResponse, Status> {
    if archive.is_empty() {
        return Err(Status::invalid_argument("archive: Required value"));
    }
    let nodes = node_addrs(api)?;
    let call_one = |(name, addr): (String, String)| {
        let archive = archive.clone();
        async move { (name, call(api, &addr, &NodeCall::LoadImage(archive)).await) }
    };
    let results = futures::future::join_all(nodes.into_iter().map(call_one)).await;
    let mut resp = pb::LoadImageResponse::default();
    for (name, r) in results {
        match r {
            Ok(NodeAnswer::Loaded(refs)) => {
                resp.nodes.push(name);
                for r in refs {
                    if !resp.images.contains(&r) {
                        resp.images.push(r);
                    }
                }
            }
            Ok(_) => resp.failed.push(format!("{name}: unexpected answer")),
            Err(e) => resp.failed.push(format!("{name}: {}", e.message())),
        }
    }
    if resp.nodes.is_empty() {
        return Err(Status::unavailable(format!("no node loaded the image: {}", resp.failed.join("; "))));
    }
    Ok(resp)
}

/// CPU and memory of pods or nodes, sampled on every node.
pub async fn top(api: &Api, r: pb::TopRequest) -> Result<pb::TopResponse, Status> {
    let nodes = node_addrs(api)?;
    let results = futures::future::join_all(
        nodes.into_iter().map(|(name, addr)| async move { (name, call(api, &addr, &NodeCall::Stats).await) }),
    )
    .await;
    let mut rows = Vec::new();
    for (node, res) in results {
        let Ok(NodeAnswer::Stats { node: (cpu, mem), containers }) = res else { continue };
        if r.kind == "nodes" {
            rows.push(pb::TopRow {
                namespace: String::new(),
                name: node,
                cpu_millis: cpu,
                memory_bytes: mem,
                node: String::new(),
            });
            continue;
        }
        for c in containers {
            if !r.all_namespaces && c.namespace != (if r.namespace.is_empty() { "default" } else { &r.namespace }) {
                continue;
            }
            match rows.iter_mut().find(|row: &&mut pb::TopRow| row.namespace == c.namespace && row.name == c.pod) {
                Some(row) => {
                    row.cpu_millis += c.cpu_millis;
                    row.memory_bytes += c.memory;
                }
                None => rows.push(pb::TopRow {
                    namespace: c.namespace,
                    name: c.pod,
                    cpu_millis: c.cpu_millis,
                    memory_bytes: c.memory,
                    node: node.clone(),
                }),
            }
        }
    }
    if r.kind != "nodes" && r.kind != "pods" {
        return Err(Status::invalid_argument(format!(
            "kind: Unsupported value: \"{}\": supported values: \"pods\", \"nodes\"",
            r.kind
        )));
    }
    rows.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    Ok(pb::TopResponse { rows })
}

/// For a pod on a node: the object marked for graceful deletion (the kubelet
/// finishes the job), or None when it should go at once.
pub fn graceful_delete(obj: &Value, grace: Option<i64>, now: chrono::DateTime<chrono::Utc>) -> Option<Value> {
    let bound = obj.pointer("/spec/nodeName").and_then(Value::as_str).is_some_and(|n| !n.is_empty());
    let terminal = matches!(obj.pointer("/status/phase").and_then(Value::as_str), Some("Succeeded" | "Failed"));
    let spec_grace = obj.pointer("/spec/terminationGracePeriodSeconds").and_then(Value::as_i64).unwrap_or(30);
    let grace = grace.unwrap_or(spec_grace).max(0);
    if !bound || grace == 0 {
        return None;
    }
    let mut obj = obj.clone();
    let current = obj.pointer("/metadata/deletionGracePeriodSeconds").and_then(Value::as_i64);
    // Terminal pods have nothing left to stop: a short grace lets the kubelet clean up.
    let grace = if terminal { grace.min(1) } else { grace };
    if current.is_some_and(|c| c <= grace) {
        return Some(obj);
    }
    obj["metadata"]["deletionTimestamp"] = json!(crate::util::rfc3339(now + chrono::Duration::seconds(grace)));
    obj["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
    Some(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_pods_are_marked_and_unbound_ones_go() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().with_timezone(&chrono::Utc);
        let unbound = json!({"metadata": {"name": "p"}, "spec": {}});
        assert!(graceful_delete(&unbound, None, now).is_none());
        let bound = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 5}});
        let marked = graceful_delete(&bound, None, now).unwrap();
        assert_eq!(marked["metadata"]["deletionTimestamp"], "2026-01-01T00:00:05Z");
        assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], 5);
        assert!(graceful_delete(&bound, Some(0), now).is_none());
        let shorter = graceful_delete(&marked, Some(2), now).unwrap();
        assert_eq!(shorter["metadata"]["deletionGracePeriodSeconds"], 2);
    }
}
