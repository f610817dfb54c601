//! The runtime operations a pod worker uses, as a trait: the real container
//! runtime implements it on the node, and an in-memory fake implements it in
//! tests, so the worker's whole pass runs without root. Only what the worker
//! calls is here; logs, exec and stats go to the runtime directly (the node
//! service).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use clusterd_runtime::runtime::SandboxStatus;
use clusterd_runtime::{ContainerConfig, ContainerStatus, Runtime, RuntimeError, SandboxConfig};

use super::plan::{ProbeKind, ProbeOutcome};
use super::probe::{self, Probe};

/// What a pod worker asks of the container runtime.
pub trait PodRuntime: Send + Sync + 'static {
    /// Make a pod sandbox; returns its id.
    fn run_pod_sandbox(&self, config: SandboxConfig) -> impl Future<Output = Result<String, RuntimeError>> + Send;
    /// One sandbox's state.
    fn sandbox_status(&self, id: &str) -> impl Future<Output = Result<SandboxStatus, RuntimeError>> + Send;
    /// Every sandbox of the node.
    fn list_sandboxes(&self) -> impl Future<Output = Result<Vec<SandboxStatus>, RuntimeError>> + Send;
    /// Stop a sandbox's containers (SIGTERM, `grace`, SIGKILL) and its holder.
    fn stop_pod_sandbox(&self, id: &str, grace: Duration) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    /// Remove a sandbox and its containers.
    fn remove_pod_sandbox(&self, id: &str) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    /// Every container instance of a sandbox.
    fn list_containers(&self, sandbox: &str)
        -> impl Future<Output = Result<Vec<ContainerStatus>, RuntimeError>> + Send;
    /// Create a container in a sandbox; returns its id.
    fn create_container(
        &self,
        sandbox: &str,
        config: ContainerConfig,
    ) -> impl Future<Output = Result<String, RuntimeError>> + Send;
    /// Start a created container.
    fn start_container(&self, id: &str) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    /// Stop a container: SIGTERM, up to `grace`, then SIGKILL.
    fn stop_container(&self, id: &str, grace: Duration) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    /// Remove a container instance.
    fn remove_container(&self, id: &str) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    /// Whether the image is in the node's store.
    fn image_present(&self, image: &str) -> bool;
    /// Pull an image into the node's store.
    fn pull_image(&self, image: &str) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    /// Run a probe (of that kind) once against instance `id` of `container`, in the pod at `pod_ip`.
    fn probe(
        &self,
        kind: ProbeKind,
        probe: &Probe,
        container: &k8s_openapi::api::core::v1::Container,
        pod_ip: &str,
        id: &str,
    ) -> impl Future<Output = ProbeOutcome> + Send;
}

/// The node's real runtime, reached from async code on blocking threads.
pub struct HostRuntime {
    runtime: Arc<Runtime>,
    insecure_registries: Vec<String>,
    /// Sandbox creation allocates addresses: one at a time.
    sandbox_lock: tokio::sync::Mutex<()>,
}

impl HostRuntime {
    /// Wrap the node's runtime; `insecure_registries` are pulled from over plain HTTP.
    pub fn new(runtime: Arc<Runtime>, insecure_registries: Vec<String>) -> HostRuntime {
        HostRuntime { runtime, insecure_registries, sandbox_lock: tokio::sync::Mutex::new(()) }
    }

    /// The runtime itself.
    pub fn inner(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Runtime) -> Result<T, RuntimeError> + Send + 'static,
    ) -> Result<T, RuntimeError> {
        let rt = self.runtime.clone();
        tokio::task::spawn_blocking(move || f(&rt))
            .await
            .unwrap_or_else(|e| Err(RuntimeError::Host { command: "task".into(), reason: e.to_string() }))
    }
}

impl PodRuntime for HostRuntime {
    async fn run_pod_sandbox(&self, config: SandboxConfig) -> Result<String, RuntimeError> {
        let _one_at_a_time = self.sandbox_lock.lock().await;
        self.blocking(move |rt| rt.run_pod_sandbox(config)).await
    }

    async fn sandbox_status(&self, id: &str) -> Result<SandboxStatus, RuntimeError> {
        let id = id.to_string();
        self.blocking(move |rt| rt.sandbox_status(&id)).await
    }

    async fn list_sandboxes(&self) -> Result<Vec<SandboxStatus>, RuntimeError> {
        self.blocking(|rt| rt.list_sandboxes()).await
    }

    async fn stop_pod_sandbox(&self, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        let id = id.to_string();
        self.blocking(move |rt| rt.stop_pod_sandbox(&id, grace)).await
    }

    async fn remove_pod_sandbox(&self, id: &str) -> Result<(), RuntimeError> {
        let id = id.to_string();
        self.blocking(move |rt| rt.remove_pod_sandbox(&id)).await
    }

    async fn list_containers(&self, sandbox: &str) -> Result<Vec<ContainerStatus>, RuntimeError> {
        let sandbox = sandbox.to_string();
        self.blocking(move |rt| rt.list_containers(Some(&sandbox))).await
    }

    async fn create_container(&self, sandbox: &str, config: ContainerConfig) -> Result<String, RuntimeError> {
        let sandbox = sandbox.to_string();
        self.blocking(move |rt| rt.create_container(&sandbox, config)).await
    }

    async fn start_container(&self, id: &str) -> Result<(), RuntimeError> {
        let id = id.to_string();
        self.blocking(move |rt| rt.start_container(&id)).await
    }

    async fn stop_container(&self, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        let id = id.to_string();
        self.blocking(move |rt| rt.stop_container(&id, grace)).await
    }

    async fn remove_container(&self, id: &str) -> Result<(), RuntimeError> {
        let id = id.to_string();
        self.blocking(move |rt| rt.remove_container(&id)).await
    }

    fn image_present(&self, image: &str) -> bool {
        self.runtime.images().resolve(image).is_ok()
    }

    async fn pull_image(&self, image: &str) -> Result<(), RuntimeError> {
        clusterd_runtime::image::pull::pull(self.runtime.images(), image, &self.insecure_registries).await.map(|_| ())
    }

    async fn probe(
        &self,
        kind: ProbeKind,
        p: &Probe,
        container: &k8s_openapi::api::core::v1::Container,
        pod_ip: &str,
        id: &str,
    ) -> ProbeOutcome {
        match probe::run(p, container, pod_ip, id, &self.runtime).await {
            Ok(()) => ProbeOutcome::Success,
            Err(probe::ProbeFailure(msg)) => {
                tracing::debug!(probe = kind.label(), container = %id, %msg, "kubelet: probe failed");
                ProbeOutcome::Failure(msg)
            }
        }
    }
}
