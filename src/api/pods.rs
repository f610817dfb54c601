//! The API calls that reach into nodes — logs, exec, image load, top — answered
//! by forwarding to the pod's node (or every node) over the node transport, and
//! graceful pod deletion.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use serde_json::Value;
use tonic::Status;

use super::keys;
use super::pb;
use crate::kubelet::service::{decode, encode, LogLine, NodeAnswer, NodeCall};
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

/// A container of a scheduled pod, and where its node answers.
#[derive(Debug, Clone)]
pub struct Target {
    /// Namespace.
    pub namespace: String,
    /// The pod as stored.
    pub pod: Pod,
    /// The container meant (named, or the pod's first).
    pub container: String,
    /// The node transport address of the pod's node.
    addr: String,
}

impl Target {
    /// The pod's name.
    pub fn pod_name(&self) -> &str {
        self.pod.metadata.name.as_deref().unwrap_or("")
    }
}

/// Find a pod's container and its node: `NotFound` for a missing pod,
/// `InvalidArgument` for a container the pod does not have.
pub fn target(api: &Registry, ns: &str, pod: &str, container: &str) -> Result<Target, Status> {
    let ns = if ns.is_empty() { "default" } else { ns };
    let key = crate::objects::kinds::POD.key(ns, pod);
    let kv = api
        .reader()
        .get(&key)
        .map_err(|e| Status::internal(e.to_string()))?
        .ok_or_else(|| Status::not_found(format!("pods \"{pod}\" not found")))?;
    let obj: Pod = serde_json::from_slice(&kv.value).map_err(|e| Status::internal(e.to_string()))?;
    let container = container_name(&obj, container)?;
    let node = PodFacts::node_name(&obj);
    if node.is_empty() {
        return Err(Status::failed_precondition(format!("pod {pod} is not scheduled to a node yet")));
    }
    let addr = node_addrs(api)?
        .into_iter()
        .find(|(n, _)| n == node)
        .map(|(_, a)| a)
        .ok_or_else(|| Status::unavailable(format!("node {node} of pod {pod} is not a member")))?;
    Ok(Target { namespace: ns.to_string(), pod: obj, container, addr })
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
            "container {asked} is not valid for pod {}",
            pod.metadata.name.as_deref().unwrap_or("")
        )))
    }
}

/// The status of a container of the pod (init containers included).
fn container_status<'a>(pod: &'a Pod, container: &str) -> Option<&'a ContainerStatus> {
    let st = pod.status.as_ref()?;
    st.container_statuses
        .iter()
        .flatten()
        .chain(st.init_container_statuses.iter().flatten())
        .find(|c| c.name == container)
}

/// Whether the container's current instance has ended (its log is complete),
/// as the pod's status says: a follower stops there.
pub fn container_finished(pod: &Pod, container: &str) -> bool {
    if PodFacts::finished(pod) {
        return true;
    }
    container_status(pod, container).and_then(|c| c.state.as_ref()).is_some_and(|s| s.terminated.is_some())
}

/// Why a container has no log yet, if it never ran: waiting with no
/// instance before (Kubernetes' words: `container "c" in pod "p" is waiting
/// to start: ContainerCreating`).
pub fn never_started(pod: &Pod, container: &str) -> Option<String> {
    let name = pod.metadata.name.as_deref().unwrap_or("");
    let why = |reason: &str| format!("container \"{container}\" in pod \"{name}\" is waiting to start: {reason}");
    let Some(c) = container_status(pod, container) else {
        return (PodFacts::phase(pod) == "Pending").then(|| why("ContainerCreating"));
    };
    let waiting = c.state.as_ref().and_then(|s| s.waiting.as_ref())?;
    let ran_before = c.restart_count > 0 || c.last_state.as_ref().is_some_and(|s| s.terminated.is_some());
    (!ran_before).then(|| why(waiting.reason.as_deref().unwrap_or("ContainerCreating")))
}

/// One fetch of a container's log.
#[derive(Debug)]
pub struct ContainerLog {
    /// Every line of the instance.
    pub lines: Vec<LogLine>,
    /// The instance had ended before the fetch: nothing more will come.
    pub finished: bool,
}

/// Fetch the log of a container (the instance before the current one with
/// `previous`) from its node.
pub async fn container_log(api: &Registry, t: &Target, previous: bool) -> Result<ContainerLog, Status> {
    let finished = previous || container_finished(&t.pod, &t.container);
    let c = NodeCall::Logs {
        namespace: t.namespace.clone(),
        pod: t.pod_name().to_string(),
        container: t.container.clone(),
        previous,
    };
    match call(api, &t.addr, &c).await? {
        NodeAnswer::Logs(lines) => Ok(ContainerLog { lines, finished }),
        _ => Err(Status::internal("unexpected answer")),
    }
}

/// One fetch of a container's log lines.
pub async fn log_lines(api: &Registry, r: &pb::LogsRequest) -> Result<Vec<String>, Status> {
    let t = target(api, &r.namespace, &r.pod, &r.container)?;
    let log = container_log(api, &t, r.previous).await?;
    Ok(log.lines.into_iter().map(|l| l.text).collect())
}

/// Run a command in a container on its node, with `stdin` as its input
/// (none: it reads end of file at once).
pub async fn exec_in(
    api: &Registry,
    t: &Target,
    command: Vec<String>,
    stdin: Option<Vec<u8>>,
) -> Result<pb::ExecResponse, Status> {
    if command.is_empty() {
        return Err(Status::invalid_argument("you must specify at least one command for the container"));
    }
    let c = NodeCall::Exec {
        namespace: t.namespace.clone(),
        pod: t.pod_name().to_string(),
        container: t.container.clone(),
        command,
        stdin,
    };
    match call(api, &t.addr, &c).await? {
        NodeAnswer::Exec { stdout, stderr, exit_code } => Ok(pb::ExecResponse { stdout, stderr, exit_code }),
        _ => Err(Status::internal("unexpected answer")),
    }
}

/// Run a command in a container on its node.
pub async fn exec(api: &Registry, r: pb::ExecRequest) -> Result<pb::ExecResponse, Status> {
    let t = target(api, &r.namespace, &r.pod, &r.container)?;
    exec_in(api, &t, r.command, None).await
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(status: Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"initContainers": [{"name": "init"}], "containers": [{"name": "main"}, {"name": "side"}]},
            "status": status,
        }))
        .unwrap()
    }

    fn waiting(reason: &str) -> Value {
        json!({"waiting": {"reason": reason}})
    }

    #[test]
    fn containers_are_named_or_the_first() {
        let p = pod(json!({}));
        let cases = [
            ("", Ok("main")),
            ("side", Ok("side")),
            ("init", Ok("init")),
            ("web", Err("container web is not valid for pod p")),
        ];
        for (asked, want) in cases {
            let got = container_name(&p, asked);
            assert_eq!(got.as_deref().map_err(|s| s.message()), want, "{asked}");
        }
    }

    #[test]
    fn a_container_is_finished_when_it_or_its_pod_ended() {
        let running = json!({"running": {}});
        let terminated = json!({"terminated": {"exitCode": 0}});
        let cases = [
            (json!({"phase": "Running", "containerStatuses": [{"name": "main", "state": running}]}), "main", false),
            (json!({"phase": "Running", "containerStatuses": [{"name": "main", "state": terminated}]}), "main", true),
            (json!({"phase": "Running", "containerStatuses": [{"name": "main", "state": terminated}]}), "side", false),
            (
                json!({"phase": "Pending", "initContainerStatuses": [{"name": "init", "state": terminated}]}),
                "init",
                true,
            ),
            (json!({"phase": "Succeeded"}), "main", true),
            (
                json!({"phase": "Running", "containerStatuses": [{"name": "main", "state": waiting("CrashLoopBackOff")}]}),
                "main",
                false,
            ),
        ];
        for (status, container, want) in cases {
            assert_eq!(container_finished(&pod(status.clone()), container), want, "{container} {status}");
        }
    }

    #[test]
    fn only_a_container_that_never_ran_has_no_log() {
        let never = |reason: &str| Some(format!("container \"main\" in pod \"p\" is waiting to start: {reason}"));
        let cases = [
            (json!({"phase": "Pending"}), never("ContainerCreating")),
            (
                json!({"phase": "Pending", "containerStatuses": [{"name": "main", "state": waiting("PodInitializing")}]}),
                never("PodInitializing"),
            ),
            (json!({"phase": "Running", "containerStatuses": [{"name": "main", "state": {"running": {}}}]}), None),
            (
                json!({"phase": "Running", "containerStatuses": [{"name": "main", "restartCount": 2, "state": waiting("CrashLoopBackOff")}]}),
                None,
            ),
            (
                json!({"phase": "Running", "containerStatuses": [{"name": "main", "state": waiting("CrashLoopBackOff"), "lastState": {"terminated": {"exitCode": 3}}}]}),
                None,
            ),
            (json!({"phase": "Running"}), None),
        ];
        for (status, want) in cases {
            assert_eq!(never_started(&pod(status.clone()), "main"), want, "{status}");
        }
    }
}
