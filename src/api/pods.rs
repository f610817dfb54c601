//! The API calls that reach into nodes — logs, exec, image load, top — answered
//! by forwarding to the pod's node (or every node) over the node transport, and
//! graceful pod deletion.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;
use tonic::Status;

use super::keys;
use super::pb;
use crate::kubelet::service::{decode, encode, NodeAnswer, NodeCall};
use crate::objects::pod::PodFacts;
use crate::registry::Registry;

/// How long a call to a node may take (an exec runs the command to its end).
const NODE_CALL: Duration = Duration::from_secs(120);

/// The node transport address of every registered node, by name.
pub fn node_addrs(api: &Registry) -> Result<Vec<(String, String)>, Status> {
    let (kvs, _) = api.reader().list(keys::MEMBERS).map_err(|e| Status::internal(e.to_string()))?;
    Ok(kvs
        .iter()
        .filter_map(|kv| {
            let v: Value = serde_json::from_slice(&kv.value).ok()?;
            Some((v.get("name")?.as_str()?.to_string(), v.get("raftAddr")?.as_str()?.to_string()))
        })
        .collect())
}

async fn call(api: &Registry, addr: &str, c: &NodeCall) -> Result<NodeAnswer, Status> {
    let bytes =
        api.node().call_node(addr, encode(c), NODE_CALL).await.map_err(|e| Status::unavailable(e.to_string()))?;
    decode(&bytes).map_err(|e| Status::internal(e.to_string()))
}

/// The pod and the transport address of its node.
fn pod_node(api: &Registry, ns: &str, pod: &str) -> Result<(Pod, String), Status> {
    let key = crate::objects::kinds::POD.key(ns, pod);
    let kv = api
        .reader()
        .get(&key)
        .map_err(|e| Status::internal(e.to_string()))?
        .ok_or_else(|| Status::not_found(format!("pods \"{pod}\" not found")))?;
    let obj: Pod = serde_json::from_slice(&kv.value).map_err(|e| Status::internal(e.to_string()))?;
    let node = PodFacts::node_name(&obj);
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
fn container_name(pod: &Pod, asked: &str) -> Result<String, Status> {
    let spec = pod.spec.as_ref();
    let names: Vec<&str> = spec
        .map(|s| s.containers.iter())
        .into_iter()
        .flatten()
        .chain(spec.and_then(|s| s.init_containers.as_ref()).into_iter().flatten())
        .map(|c| c.name.as_str())
        .collect();
    if asked.is_empty() {
        return names
            .first()
            .map(|n| n.to_string())
            .ok_or_else(|| Status::invalid_argument("the pod has no containers"));
    }
    if names.contains(&asked) {
        Ok(asked.to_string())
    } else {
        Err(Status::invalid_argument(format!(
            "container {asked} is not valid for pod {}; choose one of: [{}]",
            pod.metadata.name.as_deref().unwrap_or(""),
            names.join(" ")
        )))
    }
}

/// One fetch of a container's log lines.
pub async fn log_lines(api: &Registry, r: &pb::LogsRequest) -> Result<Vec<String>, Status> {
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
pub async fn exec(api: &Registry, r: pb::ExecRequest) -> Result<pb::ExecResponse, Status> {
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
pub async fn load_image(api: &Registry, archive: Vec<u8>) -> Result<pb::LoadImageResponse, Status> {
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
pub async fn top(api: &Registry, r: pb::TopRequest) -> Result<pb::TopResponse, Status> {
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
