//! Carries out a pod worker's plan: observes the runtime, performs each
//! [`Action`] over a [`PodRuntime`], tells the control plane what happened, and
//! feeds outcomes (a container started, a start failed, a probe answered) back
//! through the pure transitions of [`Memory`]. It decides nothing itself beyond
//! the order the plan gives, which is why it works the same over the real
//! runtime and over the fake one in tests.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tokio::time::Instant;

use clusterd_runtime::SandboxConfig;

use super::control_plane::ControlPlane;
use super::plan::{
    self, Action, ContainerSpec, Event, EventKind, Memory, Observation, PodSpec, SandboxSeen, StartError,
};
use super::runtime::PodRuntime;
use super::{pod_dns, spec};
use crate::objects::network::ServiceNetwork;
use crate::objects::typed::Object;
use crate::util::resolv::ResolvConf;

/// Where workers read the time: the real clock on a node; a hand-set one in
/// tests, so back-off and probe periods are exact.
#[derive(Clone, Debug, Default)]
pub struct Clock(Option<Arc<Mutex<Instant>>>);

impl Clock {
    /// The real clock.
    pub fn real() -> Clock {
        Clock(None)
    }

    /// A clock that stands at `at` until [`Clock::set`].
    pub fn manual(at: Instant) -> Clock {
        Clock(Some(Arc::new(Mutex::new(at))))
    }

    /// Move a manual clock (no effect on the real one).
    pub fn set(&self, at: Instant) {
        if let Some(t) = &self.0 {
            *t.lock().unwrap_or_else(|e| e.into_inner()) = at;
        }
    }

    /// The time now.
    pub fn now(&self) -> Instant {
        match &self.0 {
            Some(t) => *t.lock().unwrap_or_else(|e| e.into_inner()),
            None => Instant::now(),
        }
    }
}

/// What every pod worker of a node shares: the runtime, the control plane,
/// where pods' volumes live, and what pods' DNS settings are made of.
pub struct Executor<R, A> {
    /// The container runtime.
    pub runtime: R,
    /// The control plane (lookups, events, status).
    pub control: A,
    /// This node's IP.
    pub host_ip: String,
    /// `<data>/kubelet/pods`: volumes per pod uid.
    pub pods_root: PathBuf,
    /// The time outcomes are recorded at.
    pub clock: Clock,
    /// The cluster's service network (the DNS Service's address, the domain).
    pub network: ServiceNetwork,
    /// The host's resolver settings (for `dnsPolicy: Default`, and the
    /// search domains cluster pods inherit).
    pub host_resolv_conf: PathBuf,
}

/// Where one pod's containers go, kept by its worker across passes.
#[derive(Clone, Debug, Default)]
pub struct Placement {
    /// The sandbox in use.
    pub sandbox: Option<SandboxSeen>,
    /// Prepared volumes by name.
    pub volumes: BTreeMap<String, PathBuf>,
}

/// What a pass of [`Executor::execute`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The runtime changed: observe again before reporting.
    pub changed: bool,
    /// The plan asked for the status to be written.
    pub report: bool,
}

impl<R: PodRuntime, A: ControlPlane> Executor<R, A> {
    fn tell(&self, pod: &Object, kind: EventKind, reason: &'static str, message: String) {
        self.control.event(pod, &Event { kind, reason, message });
    }

    /// Write the pod's volumes (each pass, so secret and configMap changes reach
    /// the files); returns the mount error, if any.
    pub fn prepare_volumes(&self, pod: &Pod, at: &mut Placement) -> Option<String> {
        match spec::prepare_volumes(pod, &self.control, &self.pods_root) {
            Ok(v) => {
                at.volumes = v;
                None
            }
            Err(e) => {
                at.volumes = BTreeMap::new();
                Some(e.0)
            }
        }
    }

    /// The pod's sandbox (the one in use, else a ready one of its uid) and its containers.
    pub async fn observe(&self, spec: &PodSpec, at: &mut Placement, mount_error: Option<String>) -> Observation {
        let sandbox = match at.sandbox.take() {
            Some(s) => Some(match self.runtime.sandbox_status(&s.id).await {
                Ok(st) => SandboxSeen { id: st.id, ip: st.ip, ready: st.ready },
                Err(_) => SandboxSeen { ready: false, ..s },
            }),
            None => self
                .runtime
                .list_sandboxes()
                .await
                .unwrap_or_default()
                .into_iter()
                .find(|s| s.config.uid == spec.uid && s.ready)
                .map(|s| SandboxSeen { id: s.id, ip: s.ip, ready: true }),
        };
        at.sandbox = sandbox.clone();
        let containers = match &sandbox {
            Some(s) => self.runtime.list_containers(&s.id).await.unwrap_or_default(),
            None => Vec::new(),
        };
        Observation::new(sandbox, containers, mount_error)
    }

    /// Perform the plan in order; outcomes (a start, a probe) are timed when they happen.
    pub async fn execute(
        &self,
        pod: &Object,
        spec: &PodSpec,
        actions: Vec<Action>,
        mem: &mut Memory,
        at: &mut Placement,
    ) -> Outcome {
        let clock = || self.clock.now();
        let mut queue: VecDeque<Action> = actions.into();
        let mut out = Outcome::default();
        // Consequences of an outcome run next, before the rest of the plan.
        let follow = |queue: &mut VecDeque<Action>, then: Vec<Action>| {
            for a in then.into_iter().rev() {
                queue.push_front(a);
            }
        };
        while let Some(action) = queue.pop_front() {
            // How long each action takes, for `CLUSTERD_LOG=clusterd::kubelet=debug`.
            let began = std::time::Instant::now();
            let what = tracing::enabled!(tracing::Level::DEBUG).then(|| format!("{action:?}"));
            match action {
                Action::Event(e) => self.control.event(pod, &e),
                Action::Report => out.report = true,
                Action::RemovePod => self.control.remove_pod(pod).await,
                Action::RemoveSandbox { id } => {
                    out.changed = true;
                    if let Err(e) = self.runtime.remove_pod_sandbox(&id).await {
                        tracing::warn!(error = %e, "kubelet: removing a dead sandbox failed");
                    }
                    if at.sandbox.as_ref().is_some_and(|s| s.id == id) {
                        at.sandbox = None;
                    }
                }
                Action::CreateSandbox => {
                    out.changed = true;
                    if let Err(e) = self.create_sandbox(spec, at).await {
                        let msg = format!("Failed to create pod sandbox: {e}");
                        self.tell(pod, EventKind::Warning, "FailedCreatePodSandBox", msg);
                        queue.retain(|a| *a == Action::Report);
                    }
                }
                Action::RemoveContainer { id } => {
                    out.changed = true;
                    let _ = self.runtime.remove_container(&id).await;
                }
                Action::Start { name, restart, prune } => {
                    let Some(c) = spec.container(&name) else { continue };
                    out.changed = true;
                    match self.start(pod, c, at).await {
                        Ok(id) => {
                            mem.on_started(c, restart, id, clock());
                            if let Some(old) = prune {
                                let _ = self.runtime.remove_container(&old).await;
                            }
                        }
                        Err(e) => follow(&mut queue, mem.on_start_failed(&name, &e, clock())),
                    }
                }
                Action::Probe { name, kind, id } => {
                    let Some(c) = spec.container(&name) else { continue };
                    let Some(p) = c.probe(kind) else { continue };
                    let ip = at.sandbox.as_ref().and_then(|s| s.ip.clone()).unwrap_or_default();
                    let outcome = self.runtime.probe(kind, p, &c.raw, &ip, &id).await;
                    follow(&mut queue, mem.on_probe(c, kind, &id, &outcome, spec.grace, clock()));
                }
                Action::Kill { id, grace } => {
                    out.changed = true;
                    if let Err(e) = self.runtime.stop_container(&id, grace).await {
                        tracing::warn!(error = %e, "kubelet: stopping a container failed");
                    }
                }
                Action::StopPod { uid, grace } => {
                    out.changed = true;
                    self.stop_pod(&uid, grace, at).await;
                }
            }
            if let Some(what) = what {
                tracing::debug!(action = %what, took = ?began.elapsed(), "kubelet: action");
            }
        }
        out
    }

    async fn create_sandbox(&self, spec: &PodSpec, at: &mut Placement) -> Result<(), clusterd_runtime::RuntimeError> {
        let cfg = SandboxConfig {
            name: spec.name.clone(),
            namespace: spec.namespace.clone(),
            uid: spec.uid.clone(),
            hostname: spec.hostname.clone(),
        };
        let id = self.runtime.run_pod_sandbox(cfg).await?;
        let st = self.runtime.sandbox_status(&id).await?;
        at.sandbox = Some(SandboxSeen { id, ip: st.ip, ready: true });
        Ok(())
    }

    /// Pull the image as its policy says, then create and start the container.
    async fn start(&self, pod: &Object, c: &ContainerSpec, at: &Placement) -> Result<String, StartError> {
        let Some(sandbox) = &at.sandbox else { return Err(StartError::Create("the pod has no sandbox".into())) };
        let Some(typed) = pod.pod() else { return Err(StartError::Config("the object is not a pod".into())) };
        let ip = sandbox.ip.as_deref().unwrap_or("");
        self.ensure_image(pod, c).await?;
        let config_error = |e: spec::ConfigError| StartError::Config(e.0);
        let env = spec::environment(typed, &c.raw, &self.control, ip, &self.host_ip).map_err(config_error)?;
        let files = self.pod_files(typed, ip).map_err(config_error)?;
        let cfg = spec::container_config(&c.raw, &at.volumes, env, &files).map_err(config_error)?;
        let name = cfg.name.clone();
        let id =
            self.runtime.create_container(&sandbox.id, cfg).await.map_err(|e| StartError::Create(e.to_string()))?;
        self.tell(pod, EventKind::Normal, "Created", format!("Created container {name}"));
        if let Err(e) = self.runtime.start_container(&id).await {
            // A container that did not start is not left behind half made.
            let _ = self.runtime.remove_container(&id).await;
            return Err(StartError::Run(e.to_string()));
        }
        self.tell(pod, EventKind::Normal, "Started", format!("Started container {name}"));
        Ok(id)
    }

    /// Write the pod's `resolv.conf` and hosts file into its directory; their mounts.
    fn pod_files(&self, pod: &Pod, ip: &str) -> Result<Vec<clusterd_runtime::Mount>, spec::ConfigError> {
        let uid = pod.metadata.uid.as_deref().unwrap_or("");
        if uid.is_empty() {
            return Err(spec::ConfigError("the pod has no uid".into()));
        }
        let host = ResolvConf::for_pods(&self.host_resolv_conf);
        let resolv = pod_dns::resolv_conf(pod, &self.network, &host);
        let hosts = pod_dns::hosts_file(pod, ip, &self.network);
        pod_dns::write_files(&self.pods_root.join(uid), &resolv, &hosts)
    }

    async fn ensure_image(&self, pod: &Object, c: &ContainerSpec) -> Result<(), StartError> {
        let image = &c.image;
        let present = self.runtime.image_present(image);
        if !plan::should_pull(c, present)? {
            return Ok(());
        }
        self.tell(pod, EventKind::Normal, "Pulling", format!("Pulling image \"{image}\""));
        let began = std::time::Instant::now();
        match self.runtime.pull_image(image).await {
            Ok(()) => {
                let msg = format!("Successfully pulled image \"{image}\" in {:.3}s", began.elapsed().as_secs_f64());
                self.tell(pod, EventKind::Normal, "Pulled", msg);
                Ok(())
            }
            // An Always policy with the image at hand still runs it when the registry is away.
            Err(_) if present => Ok(()),
            Err(e) => {
                let msg = format!("Failed to pull image \"{image}\": {e}");
                self.tell(pod, EventKind::Warning, "Failed", msg.clone());
                Err(StartError::ImagePull(msg))
            }
        }
    }

    /// Stop and remove every sandbox of the pod, and its volumes.
    async fn stop_pod(&self, uid: &str, grace: Duration, at: &mut Placement) {
        let mut ids: Vec<String> = at.sandbox.take().map(|s| s.id).into_iter().collect();
        if !uid.is_empty() {
            if let Ok(list) = self.runtime.list_sandboxes().await {
                ids.extend(list.into_iter().filter(|s| s.config.uid == uid).map(|s| s.id));
            }
        }
        ids.sort();
        ids.dedup();
        for id in ids {
            let stopped = match self.runtime.stop_pod_sandbox(&id, grace).await {
                Ok(()) => self.runtime.remove_pod_sandbox(&id).await,
                Err(e) => Err(e),
            };
            if let Err(e) = stopped {
                tracing::warn!(error = %e, "kubelet: removing a sandbox failed");
            }
        }
        if !uid.is_empty() {
            let _ = std::fs::remove_dir_all(self.pods_root.join(uid));
        }
    }
}
