//! An in-memory runtime and control plane for the worker's tests: containers
//! follow a script (run, exit with a code, ignore SIGTERM, fail to start),
//! probes answer as told, and every call is recorded, so a test checks what a
//! user would see — the calls in order, the events, the written status —
//! without root or real containers.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Secret, Service};
use serde_json::Value;

use clusterd_runtime::runtime::SandboxStatus;
use clusterd_runtime::{ContainerConfig, ContainerState, ContainerStatus, RuntimeError, SandboxConfig};

use super::control_plane::ControlPlane;
use super::plan::{Event, ProbeKind, ProbeOutcome};
use super::probe::Probe;
use super::runtime::PodRuntime;
use super::spec::Lookup;
use super::status::{self, PodObserved};
use crate::objects::typed::Object;

/// What a started container does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Script {
    /// Keeps running; exits 143 on SIGTERM.
    Run,
    /// Keeps running and ignores SIGTERM: only the SIGKILL after the grace ends it (137).
    IgnoreTerm,
    /// Exits at once with this code.
    Exit(i32),
    /// Does not start (an unknown command).
    FailStart,
}

/// A runtime call, as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// A sandbox was made for this pod name.
    RunSandbox(String),
    /// A sandbox was stopped with this grace.
    StopSandbox(Duration),
    /// A sandbox was removed.
    RemoveSandbox,
    /// A container of this name was created.
    Create(String),
    /// A container of this name was started.
    Start(String),
    /// A container of this name was stopped with this grace.
    Stop(String, Duration),
    /// A container instance of this name was removed.
    Remove(String),
    /// An image was pulled.
    Pull(String),
    /// A probe ran.
    Probe(String, ProbeKind),
}

#[derive(Default)]
struct State {
    seq: u64,
    sandboxes: BTreeMap<String, SandboxStatus>,
    containers: BTreeMap<String, ContainerStatus>,
    ignores_term: HashSet<String>,
    scripts: HashMap<String, VecDeque<Script>>,
    probes: HashMap<(String, ProbeKind), VecDeque<ProbeOutcome>>,
    images: HashSet<String>,
    registry: HashSet<String>,
    sandbox_failures: u32,
    calls: Vec<Call>,
    configs: Vec<ContainerConfig>,
}

/// The fake runtime.
#[derive(Default)]
pub struct FakeRuntime {
    state: Mutex<State>,
}

const T0: &str = "2026-01-01T00:00:00Z";

impl FakeRuntime {
    /// A runtime with these images at hand.
    pub fn with_images(images: &[&str]) -> FakeRuntime {
        let rt = FakeRuntime::default();
        rt.state.lock().unwrap().images = images.iter().map(|s| s.to_string()).collect();
        rt
    }

    /// What the next starts of container `name` do, in order (then: run).
    pub fn script(&self, name: &str, runs: &[Script]) {
        self.state.lock().unwrap().scripts.entry(name.into()).or_default().extend(runs.iter().cloned());
    }

    /// What the next probes of that kind on container `name` answer (then: success).
    pub fn probe_answers(&self, name: &str, kind: ProbeKind, answers: &[ProbeOutcome]) {
        self.state.lock().unwrap().probes.entry((name.into(), kind)).or_default().extend(answers.iter().cloned());
    }

    /// Images the registry serves.
    pub fn registry(&self, images: &[&str]) {
        self.state.lock().unwrap().registry.extend(images.iter().map(|s| s.to_string()));
    }

    /// The next `n` sandbox creations fail.
    pub fn fail_sandboxes(&self, n: u32) {
        self.state.lock().unwrap().sandbox_failures = n;
    }

    /// The running instance of `name` exits with `code` (a crash).
    pub fn exit(&self, name: &str, code: i32) {
        let mut s = self.state.lock().unwrap();
        for c in s.containers.values_mut().filter(|c| c.name == name && c.state == ContainerState::Running) {
            c.state = ContainerState::Exited;
            c.exit_code = Some(code);
            c.finished_at = Some(T0.into());
        }
    }

    /// Every call so far, and forget them.
    pub fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut self.state.lock().unwrap().calls)
    }

    /// Instances of container `name`, oldest first: (state, exit code).
    pub fn instances(&self, name: &str) -> Vec<(ContainerState, Option<i32>)> {
        let s = self.state.lock().unwrap();
        s.containers.values().filter(|c| c.name == name).map(|c| (c.state, c.exit_code)).collect()
    }

    /// The config the last container of this name was created with.
    pub fn config(&self, name: &str) -> Option<ContainerConfig> {
        self.state.lock().unwrap().configs.iter().rev().find(|c| c.name == name).cloned()
    }

    /// How many sandboxes exist.
    pub fn sandbox_count(&self) -> usize {
        self.state.lock().unwrap().sandboxes.len()
    }

    /// Kill a sandbox's holder (the node lost it).
    pub fn lose_sandboxes(&self) {
        let mut s = self.state.lock().unwrap();
        for sb in s.sandboxes.values_mut() {
            sb.ready = false;
        }
    }

    fn next(s: &mut State, prefix: &str) -> String {
        s.seq += 1;
        format!("{prefix}{:04}", s.seq)
    }
}

fn stop(s: &mut State, id: &str, grace: Duration) {
    let ignores = s.ignores_term.contains(id);
    let Some(c) = s.containers.get_mut(id) else { return };
    if c.state == ContainerState::Running {
        c.state = ContainerState::Exited;
        c.exit_code = Some(if ignores { 137 } else { 143 });
        c.finished_at = Some(T0.into());
        let name = c.name.clone();
        s.calls.push(Call::Stop(name, grace));
    }
}

impl PodRuntime for FakeRuntime {
    async fn run_pod_sandbox(&self, config: SandboxConfig) -> Result<String, RuntimeError> {
        let mut s = self.state.lock().unwrap();
        s.calls.push(Call::RunSandbox(config.name.clone()));
        if s.sandbox_failures > 0 {
            s.sandbox_failures -= 1;
            return Err(RuntimeError::Sandbox { id: String::new(), reason: "no address left".into() });
        }
        let id = Self::next(&mut s, "s");
        let ip = Some(format!("10.1.0.{}", s.sandboxes.len() + 2));
        s.sandboxes.insert(id.clone(), SandboxStatus { id: id.clone(), config, ready: true, pid: 1, ip });
        Ok(id)
    }

    async fn sandbox_status(&self, id: &str) -> Result<SandboxStatus, RuntimeError> {
        let s = self.state.lock().unwrap();
        s.sandboxes.get(id).cloned().ok_or_else(|| RuntimeError::SandboxNotFound(id.into()))
    }

    async fn list_sandboxes(&self) -> Result<Vec<SandboxStatus>, RuntimeError> {
        Ok(self.state.lock().unwrap().sandboxes.values().cloned().collect())
    }

    async fn stop_pod_sandbox(&self, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        let mut s = self.state.lock().unwrap();
        s.calls.push(Call::StopSandbox(grace));
        let ids: Vec<String> = s.containers.values().filter(|c| c.sandbox_id == id).map(|c| c.id.clone()).collect();
        for c in ids {
            stop(&mut s, &c, grace);
        }
        if let Some(sb) = s.sandboxes.get_mut(id) {
            sb.ready = false;
        }
        Ok(())
    }

    async fn remove_pod_sandbox(&self, id: &str) -> Result<(), RuntimeError> {
        let mut s = self.state.lock().unwrap();
        s.calls.push(Call::RemoveSandbox);
        s.sandboxes.remove(id);
        s.containers.retain(|_, c| c.sandbox_id != id);
        Ok(())
    }

    async fn list_containers(&self, sandbox: &str) -> Result<Vec<ContainerStatus>, RuntimeError> {
        let s = self.state.lock().unwrap();
        Ok(s.containers.values().filter(|c| c.sandbox_id == sandbox).cloned().collect())
    }

    async fn create_container(&self, sandbox: &str, config: ContainerConfig) -> Result<String, RuntimeError> {
        let mut s = self.state.lock().unwrap();
        s.calls.push(Call::Create(config.name.clone()));
        s.configs.push(config.clone());
        let id = Self::next(&mut s, "c");
        let created_at = format!("2026-01-01T00:00:00.{:09}Z", s.seq);
        let status = ContainerStatus {
            id: id.clone(),
            sandbox_id: sandbox.into(),
            image: config.image,
            image_id: "sha256:fake".into(),
            created_at,
            ..instance(&config.name, ContainerState::Created, None)
        };
        s.containers.insert(id.clone(), status);
        Ok(id)
    }

    async fn start_container(&self, id: &str) -> Result<(), RuntimeError> {
        let mut s = self.state.lock().unwrap();
        let name =
            s.containers.get(id).map(|c| c.name.clone()).ok_or_else(|| RuntimeError::ContainerNotFound(id.into()))?;
        s.calls.push(Call::Start(name.clone()));
        let script = s.scripts.get_mut(&name).and_then(VecDeque::pop_front).unwrap_or(Script::Run);
        if script == Script::IgnoreTerm {
            s.ignores_term.insert(id.to_string());
        }
        let c = s.containers.get_mut(id).expect("created");
        c.started_at = Some(T0.into());
        match script {
            Script::Run | Script::IgnoreTerm => {
                c.state = ContainerState::Running;
                c.pid = Some(100);
            }
            Script::Exit(code) => {
                c.state = ContainerState::Exited;
                c.exit_code = Some(code);
                c.finished_at = Some(T0.into());
            }
            Script::FailStart => {
                return Err(RuntimeError::StartContainer { id: id.into(), reason: "exec: \"nope\" not found".into() })
            }
        }
        Ok(())
    }

    async fn stop_container(&self, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        stop(&mut self.state.lock().unwrap(), id, grace);
        Ok(())
    }

    async fn remove_container(&self, id: &str) -> Result<(), RuntimeError> {
        let mut s = self.state.lock().unwrap();
        if let Some(c) = s.containers.remove(id) {
            s.calls.push(Call::Remove(c.name));
        }
        Ok(())
    }

    fn image_present(&self, image: &str) -> bool {
        self.state.lock().unwrap().images.contains(image)
    }

    async fn pull_image(&self, image: &str) -> Result<(), RuntimeError> {
        let mut s = self.state.lock().unwrap();
        s.calls.push(Call::Pull(image.into()));
        if !s.registry.contains(image) {
            return Err(RuntimeError::ImagePull { image: image.into(), reason: "manifest unknown".into() });
        }
        s.images.insert(image.into());
        Ok(())
    }

    async fn probe(
        &self,
        kind: ProbeKind,
        _probe: &Probe,
        container: &Container,
        _pod_ip: &str,
        _id: &str,
    ) -> ProbeOutcome {
        let name = container.name.clone();
        let mut s = self.state.lock().unwrap();
        s.calls.push(Call::Probe(name.clone(), kind));
        s.probes.get_mut(&(name, kind)).and_then(VecDeque::pop_front).unwrap_or(ProbeOutcome::Success)
    }
}

/// A control plane that records what the worker tells it.
#[derive(Default)]
pub struct FakeControl {
    secrets: Mutex<HashMap<(String, String), Secret>>,
    config_maps: Mutex<HashMap<(String, String), ConfigMap>>,
    services: Mutex<Vec<Service>>,
    events: Mutex<Vec<Event>>,
    statuses: Mutex<Vec<Value>>,
    removed: Mutex<bool>,
}

impl FakeControl {
    /// Store a Secret, ConfigMap or Service (written as JSON, as a user would) for the pod to find.
    pub fn put(&self, object: Value) {
        let meta = &object["metadata"];
        let key = |f: &str| meta[f].as_str().unwrap_or("").to_string();
        let at = (key("namespace"), key("name"));
        if object["kind"] == "Service" {
            self.services.lock().unwrap().push(serde_json::from_value(object).expect("a Service"));
        } else if object["kind"] == "Secret" {
            self.secrets.lock().unwrap().insert(at, serde_json::from_value(object).expect("a Secret"));
        } else {
            self.config_maps.lock().unwrap().insert(at, serde_json::from_value(object).expect("a ConfigMap"));
        }
    }

    /// Every event so far, as "Reason: message", and forget them.
    pub fn take_events(&self) -> Vec<String> {
        std::mem::take(&mut *self.events.lock().unwrap())
            .into_iter()
            .map(|e| format!("{}: {}", e.reason, e.message))
            .collect()
    }

    /// The last status written.
    pub fn status(&self) -> Value {
        self.statuses.lock().unwrap().last().cloned().unwrap_or(Value::Null)
    }

    /// Whether the pod object was removed.
    pub fn removed(&self) -> bool {
        *self.removed.lock().unwrap()
    }
}

impl Lookup for FakeControl {
    fn secret(&self, namespace: &str, name: &str) -> Option<Secret> {
        self.secrets.lock().unwrap().get(&(namespace.into(), name.into())).cloned()
    }

    fn config_map(&self, namespace: &str, name: &str) -> Option<ConfigMap> {
        self.config_maps.lock().unwrap().get(&(namespace.into(), name.into())).cloned()
    }

    fn services(&self, namespace: &str) -> Vec<Service> {
        let list = self.services.lock().unwrap();
        list.iter().filter(|s| s.metadata.namespace.as_deref() == Some(namespace)).cloned().collect()
    }
}

impl ControlPlane for FakeControl {
    fn event(&self, _pod: &Object, event: &Event) {
        self.events.lock().unwrap().push(event.clone());
    }

    async fn write_status(&self, pod: &Object, observed: &PodObserved) {
        let now = status::whole_seconds("2026-01-01T00:00:00Z".parse().expect("a time"));
        let s = status::pod_status(pod.pod().expect("a pod"), observed, &now);
        self.statuses.lock().unwrap().push(serde_json::to_value(s).expect("a status"));
    }

    async fn remove_pod(&self, _pod: &Object) {
        *self.removed.lock().unwrap() = true;
    }
}

/// A container as the runtime reports it, for tests: in sandbox `s1`, made at
/// 00:00:00, started then unless only created, finished at 00:00:01 if it exited.
pub fn instance(name: &str, state: ContainerState, exit: Option<i32>) -> ContainerStatus {
    ContainerStatus {
        id: name.into(),
        name: name.into(),
        sandbox_id: "s1".into(),
        image: "busybox".into(),
        image_id: "sha256:x".into(),
        state,
        pid: None,
        exit_code: exit,
        reason: None,
        created_at: "2026-01-01T00:00:00Z".into(),
        started_at: (state != ContainerState::Created).then(|| "2026-01-01T00:00:00Z".into()),
        finished_at: exit.map(|_| "2026-01-01T00:00:01Z".into()),
        log_path: PathBuf::new(),
    }
}
