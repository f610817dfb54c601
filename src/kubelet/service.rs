//! What a node answers to other nodes over the transport on behalf of its
//! kubelet: container logs, exec, image loads and cgroup stats. The API server
//! of any node forwards `clusterd logs|exec|image load|top` here.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use clusterd_raft::ServiceError;
use clusterd_runtime::image::ImageStore;
use clusterd_runtime::{ContainerStatus, Runtime};

/// A call to a node.
#[derive(Debug, Serialize, Deserialize)]
pub enum NodeCall {
    /// The log lines of a container of a pod.
    Logs {
        /// Namespace.
        namespace: String,
        /// Pod name.
        pod: String,
        /// Container name.
        container: String,
        /// The instance before the current one.
        previous: bool,
    },
    /// Run a command in a container.
    Exec {
        /// Namespace.
        namespace: String,
        /// Pod name.
        pod: String,
        /// Container name.
        container: String,
        /// Command and arguments.
        command: Vec<String>,
        /// The command's whole standard input (none: end of file at once).
        stdin: Option<Vec<u8>>,
    },
    /// Import an OCI archive into the node's image store.
    LoadImage(Vec<u8>),
    /// CPU and memory of the node (the whole host) and of its pods' containers.
    Stats,
}

/// Usage of one container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerUsage {
    /// Namespace.
    pub namespace: String,
    /// Pod.
    pub pod: String,
    /// Container.
    pub container: String,
    /// CPU in millicores over the sampling window.
    pub cpu_millis: u64,
    /// Memory working set in bytes.
    pub memory: u64,
}

/// The answer to a [`NodeCall`].
#[derive(Debug, Serialize, Deserialize)]
pub enum NodeAnswer {
    /// Log lines (the CRI prefix parsed).
    Logs(Vec<LogLine>),
    /// Exec result.
    Exec {
        /// Standard output.
        stdout: Vec<u8>,
        /// Standard error.
        stderr: Vec<u8>,
        /// Exit code.
        exit_code: i32,
    },
    /// References imported.
    Loaded(Vec<String>),
    /// Node total and per-container usage.
    Stats {
        /// The whole host: millicores, working-set bytes.
        node: (u64, u64),
        /// Per container.
        containers: Vec<ContainerUsage>,
    },
}

/// Encode a call or answer.
pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(v, bincode::config::standard()).expect("encodable")
}

/// Why a node call failed on the node that answers it.
#[derive(Debug, thiserror::Error)]
pub enum NodeCallError {
    /// The call or answer does not decode.
    #[error("malformed node call: {0}")]
    Decode(#[from] bincode::error::DecodeError),
    /// The runtime has not started yet (the node has no pod CIDR).
    #[error("the node's runtime is not ready yet")]
    NotReady,
    /// What the user asked for is not on this node (pod, container, previous instance).
    #[error("{0}")]
    NotFound(String),
    /// The runtime or the image store failed.
    #[error(transparent)]
    Runtime(#[from] clusterd_runtime::RuntimeError),
    /// Local I/O failed (a temporary archive).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A blocking task did not finish.
    #[error(transparent)]
    Join(#[from] tokio::task::JoinError),
}

/// Decode a call or answer.
pub fn decode<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, NodeCallError> {
    Ok(bincode::serde::decode_from_slice(b, bincode::config::standard()).map(|(v, _)| v)?)
}

/// One line a container wrote, with the time the runtime recorded it (the
/// REST API's `timestamps`, `sinceSeconds` and `sinceTime` need it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// RFC 3339 time with nanoseconds, as the runtime wrote it.
    pub time: String,
    /// The line without its newline.
    pub text: String,
}

/// The lines of a CRI log (`<time> <stream> <P|F> <text>`); partial lines are
/// joined and keep the time of their first part.
pub fn parse_cri_log(text: &str) -> Vec<LogLine> {
    let mut out = Vec::new();
    let mut partial: Option<LogLine> = None;
    for line in text.lines() {
        let mut parts = line.splitn(4, ' ');
        let (time, _, tag, rest) = (parts.next(), parts.next(), parts.next(), parts.next().unwrap_or(""));
        let cur = partial.get_or_insert_with(|| LogLine { time: time.unwrap_or("").to_string(), text: String::new() });
        cur.text.push_str(rest);
        if tag != Some("P") {
            out.extend(partial.take());
        }
    }
    out.extend(partial);
    out
}

/// The node service of a kubelet.
pub struct KubeletService {
    /// The runtime, once the node has its pod CIDR.
    pub runtime: Arc<OnceLock<Arc<Runtime>>>,
    /// The image store (usable before the runtime starts).
    pub images: Arc<ImageStore>,
}

fn find(rt: &Runtime, ns: &str, pod: &str, container: &str, previous: bool) -> Result<ContainerStatus, NodeCallError> {
    let sandboxes = rt.list_sandboxes()?;
    let mut found: Vec<ContainerStatus> = Vec::new();
    for s in sandboxes.iter().filter(|s| s.config.namespace == ns && s.config.name == pod) {
        found.extend(rt.list_containers(Some(&s.id))?);
    }
    if found.is_empty() {
        return Err(NodeCallError::NotFound(format!("pod \"{pod}\" has no containers on this node")));
    }
    let name = if container.is_empty() {
        let mut names: Vec<&str> = found.iter().map(|c| c.name.as_str()).collect();
        names.sort();
        names.dedup();
        if names.len() > 1 {
            return Err(NodeCallError::NotFound(format!(
                "a container name must be specified for pod {pod}, choose one of: [{}]",
                names.join(" ")
            )));
        }
        names[0].to_string()
    } else {
        container.to_string()
    };
    let mut mine: Vec<ContainerStatus> = found.into_iter().filter(|c| c.name == name).collect();
    mine.sort_by(|a, b| a.created_at.cmp(&b.created_at));
    let pick = if previous { mine.len().checked_sub(2).map(|i| mine[i].clone()) } else { mine.last().cloned() };
    pick.ok_or_else(|| {
        NodeCallError::NotFound(if previous {
            format!("previous terminated container \"{name}\" in pod \"{pod}\" not found")
        } else {
            format!("container {name} is not valid for pod {pod}")
        })
    })
}

impl KubeletService {
    fn runtime(&self) -> Result<Arc<Runtime>, NodeCallError> {
        self.runtime.get().cloned().ok_or(NodeCallError::NotReady)
    }

    async fn answer(&self, call: NodeCall) -> Result<NodeAnswer, NodeCallError> {
        match call {
            NodeCall::Logs { namespace, pod, container, previous } => {
                let rt = self.runtime()?;
                tokio::task::spawn_blocking(move || {
                    let c = find(&rt, &namespace, &pod, &container, previous)?;
                    let text = rt.logs(&c.id)?;
                    Ok(NodeAnswer::Logs(parse_cri_log(&text)))
                })
                .await?
            }
            NodeCall::Exec { namespace, pod, container, command, stdin } => {
                let rt = self.runtime()?;
                tokio::task::spawn_blocking(move || {
                    let c = find(&rt, &namespace, &pod, &container, false)?;
                    let r = rt.exec_with_input(&c.id, &command, stdin)?;
                    Ok(NodeAnswer::Exec { stdout: r.stdout, stderr: r.stderr, exit_code: r.exit_code })
                })
                .await?
            }
            NodeCall::LoadImage(bytes) => {
                let images = self.images.clone();
                tokio::task::spawn_blocking(move || {
                    let tmp = tempfile::NamedTempFile::new()?;
                    std::fs::write(tmp.path(), &bytes)?;
                    Ok(images.import_archive(tmp.path()).map(NodeAnswer::Loaded)?)
                })
                .await?
            }
            NodeCall::Stats => {
                let rt = self.runtime()?;
                let sample = |rt: &Runtime| {
                    let mut per = Vec::new();
                    for s in rt.list_sandboxes().unwrap_or_default() {
                        for c in rt.list_containers(Some(&s.id)).unwrap_or_default() {
                            if c.state == clusterd_runtime::ContainerState::Running {
                                let st = rt.stats(&c.id).unwrap_or_default();
                                per.push((s.config.namespace.clone(), s.config.name.clone(), c.name, st));
                            }
                        }
                    }
                    (super::host_usage::sample(), per)
                };
                let window = Duration::from_millis(500);
                let r = rt.clone();
                let (n0, c0) = tokio::task::spawn_blocking(move || sample(&r)).await?;
                tokio::time::sleep(window).await;
                let (n1, c1) = tokio::task::spawn_blocking(move || sample(&rt)).await?;
                let millis = |a: u64, b: u64| b.saturating_sub(a) / 1000 / window.as_millis() as u64;
                let containers = c1
                    .into_iter()
                    .map(|(ns, pod, name, st)| {
                        let before = c0
                            .iter()
                            .find(|(n, p, c, _)| *n == ns && *p == pod && *c == name)
                            .map(|x| x.3.cpu_usage_ns)
                            .unwrap_or(st.cpu_usage_ns);
                        ContainerUsage {
                            namespace: ns,
                            pod,
                            container: name,
                            cpu_millis: millis(before, st.cpu_usage_ns),
                            memory: st.memory_working_set,
                        }
                    })
                    .collect();
                Ok(NodeAnswer::Stats {
                    node: (millis(n0.cpu_usage_ns, n1.cpu_usage_ns), n1.memory_working_set),
                    containers,
                })
            }
        }
    }
}

impl clusterd_raft::NodeService for KubeletService {
    fn call(&self, body: Vec<u8>) -> BoxFuture<'static, Result<Vec<u8>, ServiceError>> {
        let this = KubeletService { runtime: self.runtime.clone(), images: self.images.clone() };
        Box::pin(async move {
            // The answer's error travels to the calling node as its message.
            let refused = |e: &dyn std::fmt::Display| ServiceError(e.to_string());
            let call: NodeCall = decode(&body).map_err(|e| refused(&e))?;
            this.answer(call).await.map(|a| encode(&a)).map_err(|e| refused(&e))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cri_lines_lose_their_prefix_and_partials_join() {
        let text = "2026-01-01T00:00:00.1Z stdout F hello\n2026-01-01T00:00:00.2Z stderr P par\n2026-01-01T00:00:00.3Z stderr F tial\n2026-01-01T00:00:00.4Z stdout P cut";
        let line = |time: &str, text: &str| LogLine { time: time.into(), text: text.into() };
        assert_eq!(
            parse_cri_log(text),
            vec![
                line("2026-01-01T00:00:00.1Z", "hello"),
                line("2026-01-01T00:00:00.2Z", "partial"),
                line("2026-01-01T00:00:00.4Z", "cut"),
            ]
        );
    }
}
