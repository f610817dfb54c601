//! The pod worker: one task per pod on this node that brings the runtime to the
//! pod's spec — sandbox, volumes, init containers in order, app containers, the
//! restart policy with back-off, probes — and writes the observed status back.
//! It ends when the pod is gone: after graceful termination it removes the
//! object itself, as the kubelet does.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;

use clusterd_runtime::{ContainerState, ContainerStatus, Runtime, SandboxConfig};

use super::backoff::Backoff;
use super::probe::{self, Probe, Tally};
use super::spec::{self, Lookup};
use super::status::{self, Observed, PodObserved};
use crate::objects::key_of;
use crate::objects::meta_str;
use crate::registry::{EventType, Origin, Registry, RegistryError};
use crate::util;

/// What every pod worker of a node shares.
pub struct NodeEnv {
    /// The object store.
    pub store: Registry,
    /// The container runtime.
    pub runtime: Arc<Runtime>,
    /// This node's name.
    pub node_name: String,
    /// This node's IP.
    pub host_ip: String,
    /// `<data>/kubelet/pods`: volumes per pod uid.
    pub pods_root: PathBuf,
    /// Registries reached over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// Sandbox creation allocates addresses: one at a time.
    pub sandbox_lock: tokio::sync::Mutex<()>,
}

impl NodeEnv {
    fn component(&self) -> String {
        format!("kubelet/{}", self.node_name)
    }
}

impl Lookup for Registry {
    fn object(&self, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        self.get(crate::objects::Kind::resolve(kind)?, namespace, name).ok().flatten()
    }
}

/// What the worker tracks of one container across its instances.
#[derive(Default)]
struct Track {
    restart_count: u32,
    backoff: Backoff,
    retry_at: Option<Instant>,
    waiting: Option<(String, String)>,
    /// The instance the probes belong to, and their tallies.
    instance: Option<String>,
    started: bool,
    ready: bool,
    liveness: Option<Tally>,
    readiness: Option<Tally>,
    startup: Option<Tally>,
    last_event: Option<String>,
}

/// Where a pod's containers go: its sandbox, IP and prepared volumes.
struct Placement<'a> {
    sandbox: &'a str,
    ip: &'a str,
    volumes: &'a std::collections::BTreeMap<String, PathBuf>,
}

struct Worker {
    env: Arc<NodeEnv>,
    sandbox: Option<(String, Option<String>)>,
    tracks: HashMap<String, Track>,
    mount_error: Option<String>,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, clusterd_runtime::RuntimeError> + Send + 'static,
) -> Result<T, clusterd_runtime::RuntimeError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(clusterd_runtime::RuntimeError::Host { command: "task".into(), reason: e.to_string() }))
}

fn containers(pod: &Value, field: &str) -> Vec<Value> {
    pod.pointer(&format!("/spec/{field}")).and_then(Value::as_array).cloned().unwrap_or_default()
}

fn name_of(c: &Value) -> String {
    c.get("name").and_then(Value::as_str).unwrap_or("").to_string()
}

fn grace_of(pod: &Value) -> Duration {
    let g = pod
        .pointer("/metadata/deletionGracePeriodSeconds")
        .or_else(|| pod.pointer("/spec/terminationGracePeriodSeconds"))
        .and_then(Value::as_u64)
        .unwrap_or(30);
    Duration::from_secs(g)
}

/// How long an instance ran before it exited.
fn ran(c: &ContainerStatus) -> Duration {
    let parse = |t: &Option<String>| t.as_deref().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
    match (parse(&c.started_at), parse(&c.finished_at)) {
        (Some(a), Some(b)) => (b - a).to_std().unwrap_or_default(),
        _ => Duration::ZERO,
    }
}

/// Whether the restart policy starts an exited container again.
pub fn restarts(policy: &str, exit_code: i32) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => exit_code != 0,
        _ => true,
    }
}

/// Run the worker of one pod until it is gone.
pub async fn run(env: Arc<NodeEnv>, mut rx: watch::Receiver<Option<Value>>) {
    let mut w = Worker { env, sandbox: None, tracks: HashMap::new(), mount_error: None };
    let mut seeded = false;
    let mut uid = String::new();
    loop {
        let pod = rx.borrow_and_update().clone();
        if let Some(p) = &pod {
            uid = meta_str(p, "uid").to_string();
        }
        match pod {
            // Removed from the store at once (force): everything of this pod uid goes.
            None => {
                w.remove_everything(Some(&uid).filter(|u| !u.is_empty()).map(String::as_str), Duration::ZERO).await;
                return;
            }
            Some(p) if p.pointer("/metadata/deletionTimestamp").is_some() => {
                w.terminate(&p).await;
                return;
            }
            Some(p) => {
                if !seeded {
                    w.seed(&p);
                    seeded = true;
                }
                w.sync(&p).await;
            }
        }
        let wake = w.next_wakeup();
        tokio::select! {
            r = rx.changed() => if r.is_err() { return },
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
}

impl Worker {
    /// Restart counts survive a kubelet restart through the stored status.
    fn seed(&mut self, pod: &Value) {
        for field in ["containerStatuses", "initContainerStatuses"] {
            for s in pod.pointer(&format!("/status/{field}")).and_then(Value::as_array).into_iter().flatten() {
                let t = self.tracks.entry(name_of(s)).or_default();
                t.restart_count = s.get("restartCount").and_then(Value::as_u64).unwrap_or(0) as u32;
                t.ready = s.get("ready").and_then(Value::as_bool).unwrap_or(false);
                t.started = s.get("started").and_then(Value::as_bool).unwrap_or(false);
                if let Some(id) = s.get("containerID").and_then(Value::as_str) {
                    t.instance = id.strip_prefix("clusterd://").map(String::from);
                }
            }
        }
    }

    fn next_wakeup(&self) -> Instant {
        let mut at = Instant::now() + Duration::from_secs(1);
        for t in self.tracks.values() {
            for due in [t.retry_at, t.liveness.as_ref().map(|x| x.due), t.readiness.as_ref().map(|x| x.due)]
                .into_iter()
                .chain([t.startup.as_ref().map(|x| x.due)])
                .flatten()
            {
                at = at.min(due.max(Instant::now() + Duration::from_millis(20)));
            }
        }
        at
    }

    fn event(&self, pod: &Value, kind: EventType, reason: &str, message: String) {
        self.env.store.record_event(pod, kind, reason, message, &self.env.component());
    }

    async fn ensure_sandbox(&mut self, pod: &Value) -> Result<(String, Option<String>), String> {
        let uid = meta_str(pod, "uid").to_string();
        if let Some((id, ip)) = &self.sandbox {
            let rt = self.env.runtime.clone();
            let sid = id.clone();
            match blocking(move || rt.sandbox_status(&sid)).await {
                Ok(s) if s.ready => return Ok((id.clone(), ip.clone())),
                _ => {
                    let rt = self.env.runtime.clone();
                    let sid = id.clone();
                    let _ = blocking(move || rt.remove_pod_sandbox(&sid)).await;
                    self.sandbox = None;
                    self.event(
                        pod,
                        EventType::Normal,
                        "SandboxChanged",
                        "Pod sandbox changed, it will be killed and re-created.".into(),
                    );
                }
            }
        }
        let rt = self.env.runtime.clone();
        let u = uid.clone();
        let existing =
            blocking(move || Ok(rt.list_sandboxes()?.into_iter().filter(|s| s.config.uid == u).collect::<Vec<_>>()))
                .await
                .map_err(|e| e.to_string())?;
        if let Some(s) = existing.iter().find(|s| s.ready) {
            self.sandbox = Some((s.id.clone(), s.ip.clone()));
            return Ok((s.id.clone(), s.ip.clone()));
        }
        let hostname = pod.pointer("/spec/hostname").and_then(Value::as_str).unwrap_or(meta_str(pod, "name"));
        let cfg = SandboxConfig {
            name: meta_str(pod, "name").to_string(),
            namespace: meta_str(pod, "namespace").to_string(),
            uid,
            hostname: hostname.to_string(),
        };
        let _guard = self.env.sandbox_lock.lock().await;
        let rt = self.env.runtime.clone();
        let id = blocking(move || rt.run_pod_sandbox(cfg)).await.map_err(|e| e.to_string())?;
        let rt = self.env.runtime.clone();
        let sid = id.clone();
        let st = blocking(move || rt.sandbox_status(&sid)).await.map_err(|e| e.to_string())?;
        self.sandbox = Some((id.clone(), st.ip.clone()));
        Ok((id, st.ip))
    }

    /// Pull or find the image by the container's imagePullPolicy.
    async fn ensure_image(&self, pod: &Value, c: &Value) -> Result<(), (String, String)> {
        let image = c.get("image").and_then(Value::as_str).unwrap_or("").to_string();
        let policy = c
            .get("imagePullPolicy")
            .and_then(Value::as_str)
            .unwrap_or_else(|| crate::objects::defaults::pull_policy(&image))
            .to_string();
        let present = self.env.runtime.images().resolve(&image).is_ok();
        if policy == "Never" {
            return if present {
                Ok(())
            } else {
                Err((
                    "ErrImageNeverPull".into(),
                    format!("Container image \"{image}\" is not present with pull policy of Never"),
                ))
            };
        }
        if present && policy != "Always" {
            return Ok(());
        }
        self.event(pod, EventType::Normal, "Pulling", format!("Pulling image \"{image}\""));
        let t0 = Instant::now();
        match clusterd_runtime::image::pull::pull(self.env.runtime.images(), &image, &self.env.insecure_registries)
            .await
        {
            Ok(_) => {
                let msg = format!("Successfully pulled image \"{image}\" in {:.3}s", t0.elapsed().as_secs_f64());
                self.event(pod, EventType::Normal, "Pulled", msg);
                Ok(())
            }
            // An Always policy with the image at hand still runs it when the registry is away.
            Err(_) if present => Ok(()),
            Err(e) => {
                let msg = format!("Failed to pull image \"{image}\": {e}");
                self.event(pod, EventType::Warning, "Failed", msg.clone());
                Err(("ErrImagePull".into(), msg))
            }
        }
    }

    async fn start(
        &mut self,
        pod: &Value,
        c: &Value,
        sandbox: &str,
        ip: &str,
        volumes: &std::collections::BTreeMap<String, PathBuf>,
    ) -> Result<(), (String, String)> {
        self.ensure_image(pod, c).await?;
        let cfg_err = |e: spec::ConfigError| ("CreateContainerConfigError".to_string(), e.0);
        let env = spec::environment(pod, c, &self.env.store, ip, &self.env.host_ip).map_err(cfg_err)?;
        let cfg = spec::container_config(pod, c, volumes, env).map_err(cfg_err)?;
        let name = cfg.name.clone();
        let rt = self.env.runtime.clone();
        let sid = sandbox.to_string();
        let id = blocking(move || rt.create_container(&sid, cfg))
            .await
            .map_err(|e| ("CreateContainerError".to_string(), e.to_string()))?;
        self.event(pod, EventType::Normal, "Created", format!("Created container {name}"));
        let rt = self.env.runtime.clone();
        let cid = id.clone();
        if let Err(e) = blocking(move || rt.start_container(&cid)).await {
            // A container that did not start is not left behind half made.
            let rt = self.env.runtime.clone();
            let cid = id.clone();
            let _ = blocking(move || rt.remove_container(&cid)).await;
            return Err(("RunContainerError".to_string(), e.to_string()));
        }
        self.event(pod, EventType::Normal, "Started", format!("Started container {name}"));
        let t = self.tracks.entry(name).or_default();
        t.instance = Some(id);
        t.started = false;
        t.ready = false;
        let now = Instant::now();
        t.liveness = Probe::of(c, "livenessProbe").map(|p| Tally::new(&p, now));
        t.readiness = Probe::of(c, "readinessProbe").map(|p| Tally::new(&p, now));
        t.startup = Probe::of(c, "startupProbe").map(|p| Tally::new(&p, now));
        Ok(())
    }

    /// Start (or restart, honouring the back-off) a container that is not running.
    /// Returns whether it is running now.
    async fn bring_up(
        &mut self,
        pod: &Value,
        c: &Value,
        restart: bool,
        previous_run: Option<Duration>,
        at: &Placement<'_>,
    ) -> bool {
        let (sandbox, ip, volumes) = (at.sandbox, at.ip, at.volumes);
        let name = name_of(c);
        let now = Instant::now();
        let track = self.tracks.entry(name.clone()).or_default();
        if let Some(ran) = previous_run {
            if track.retry_at.is_none() {
                let wait = track.backoff.failed(ran);
                track.retry_at = Some(now + wait);
            }
        }
        if let Some(at) = track.retry_at {
            if now < at {
                let reason = match track.waiting.as_ref().map(|w| w.0.as_str()) {
                    Some("ErrImagePull" | "ImagePullBackOff") => "ImagePullBackOff",
                    _ if previous_run.is_some() => "CrashLoopBackOff",
                    // Another failure (config, create, start): its reason stays.
                    _ => return false,
                };
                let secs = track.backoff.next.as_secs() / 2;
                let msg = if reason == "CrashLoopBackOff" {
                    format!(
                        "back-off {}s restarting failed container={name} pod={}_{}({})",
                        secs.max(10),
                        meta_str(pod, "name"),
                        meta_str(pod, "namespace"),
                        meta_str(pod, "uid")
                    )
                } else {
                    format!("Back-off pulling image \"{}\"", c.get("image").and_then(Value::as_str).unwrap_or(""))
                };
                if track.last_event.as_deref() != Some(reason) {
                    track.last_event = Some(reason.to_string());
                    let ev = if reason == "CrashLoopBackOff" {
                        "Back-off restarting failed container".to_string()
                    } else {
                        msg.clone()
                    };
                    let pod = pod.clone();
                    self.event(
                        &pod,
                        EventType::Warning,
                        "BackOff",
                        format!("{ev} {name} in pod {}", meta_str(&pod, "name")),
                    );
                }
                let track = self.tracks.get_mut(&name).expect("track");
                track.waiting = Some((reason.into(), msg));
                return false;
            }
        }
        match self.start(pod, c, sandbox, ip, volumes).await {
            Ok(()) => {
                let t = self.tracks.get_mut(&name).expect("track");
                if restart {
                    t.restart_count += 1;
                }
                t.retry_at = None;
                t.waiting = None;
                t.last_event = None;
                true
            }
            Err((reason, message)) => {
                let t = self.tracks.get_mut(&name).expect("track");
                if reason == "ErrImagePull" || reason == "ErrImageNeverPull" {
                    let wait = t.backoff.failed(Duration::ZERO);
                    t.retry_at = Some(Instant::now() + wait.max(Duration::from_secs(1)));
                } else {
                    t.retry_at = Some(Instant::now() + Duration::from_secs(1));
                }
                if reason != "ErrImagePull" {
                    let pod = pod.clone();
                    self.event(&pod, EventType::Warning, "Failed", format!("Error: {message}"));
                }
                let t = self.tracks.get_mut(&name).expect("track");
                t.waiting = Some((reason, message));
                false
            }
        }
    }

    /// Run the due probes of a running container; kill it when liveness or
    /// startup fails. Returns whether it is still running.
    async fn probe(&mut self, pod: &Value, c: &Value, cur: &ContainerStatus, ip: &str) -> bool {
        let name = name_of(c);
        let now = Instant::now();
        let rt = self.env.runtime.clone();
        {
            let t = self.tracks.entry(name.clone()).or_default();
            if t.instance.as_deref() != Some(cur.id.as_str()) {
                // An instance found after a kubelet restart: probe it from now on.
                t.instance = Some(cur.id.clone());
                t.liveness = Probe::of(c, "livenessProbe").map(|p| Tally::new(&p, now));
                t.readiness = Probe::of(c, "readinessProbe").map(|p| Tally::new(&p, now));
                t.startup = Probe::of(c, "startupProbe").map(|p| Tally::new(&p, now));
            }
        }
        let mut kill: Option<String> = None;
        // Startup gates the other two.
        if let (Some(p), false) = (Probe::of(c, "startupProbe"), self.tracks[&name].started) {
            let t = self.tracks.get_mut(&name).expect("track");
            if t.startup.as_ref().is_some_and(|x| x.due <= now) {
                let r = probe::run(&p, c, ip, &cur.id, &rt).await;
                let t = self.tracks.get_mut(&name).expect("track");
                match t.startup.as_mut().expect("tally").record(&p, r.is_ok(), now) {
                    Some(true) => t.started = true,
                    Some(false) => kill = Some(format!("Container {name} failed startup probe, will be restarted")),
                    None => {}
                }
                if let Err(msg) = r {
                    self.event(pod, EventType::Warning, "Unhealthy", format!("Startup probe failed: {msg}"));
                }
            }
        } else {
            self.tracks.get_mut(&name).expect("track").started = true;
        }
        if self.tracks[&name].started && kill.is_none() {
            if let Some(p) = Probe::of(c, "livenessProbe") {
                if self.tracks[&name].liveness.as_ref().is_some_and(|x| x.due <= now) {
                    let r = probe::run(&p, c, ip, &cur.id, &rt).await;
                    let t = self.tracks.get_mut(&name).expect("track");
                    if t.liveness.as_mut().expect("tally").record(&p, r.is_ok(), now) == Some(false) {
                        kill = Some(format!("Container {name} failed liveness probe, will be restarted"));
                    }
                    if let Err(msg) = r {
                        self.event(pod, EventType::Warning, "Unhealthy", format!("Liveness probe failed: {msg}"));
                    }
                }
            }
            match Probe::of(c, "readinessProbe") {
                Some(p) => {
                    if self.tracks[&name].readiness.as_ref().is_some_and(|x| x.due <= now) {
                        let r = probe::run(&p, c, ip, &cur.id, &rt).await;
                        let t = self.tracks.get_mut(&name).expect("track");
                        if let Some(v) = t.readiness.as_mut().expect("tally").record(&p, r.is_ok(), now) {
                            t.ready = v;
                        }
                        if let Err(msg) = r {
                            self.event(pod, EventType::Warning, "Unhealthy", format!("Readiness probe failed: {msg}"));
                        }
                    }
                }
                None => self.tracks.get_mut(&name).expect("track").ready = true,
            }
        }
        if let Some(msg) = kill {
            self.event(pod, EventType::Normal, "Killing", msg);
            let t = self.tracks.get_mut(&name).expect("track");
            t.ready = false;
            let rt = self.env.runtime.clone();
            let id = cur.id.clone();
            let grace = grace_of(pod);
            let _ = blocking(move || rt.stop_container(&id, grace)).await;
            return false;
        }
        true
    }

    async fn sync(&mut self, pod: &Value) {
        let policy = pod.pointer("/spec/restartPolicy").and_then(Value::as_str).unwrap_or("Always").to_string();
        let init_specs = containers(pod, "initContainers");
        let app_specs = containers(pod, "containers");
        let mut obs = PodObserved { host_ip: self.env.host_ip.clone(), ..Default::default() };
        // A pod that restarts always never ends (unless deleted).
        let terminal = policy != "Always"
            && matches!(pod.pointer("/status/phase").and_then(Value::as_str), Some("Succeeded" | "Failed"));

        let sandbox =
            if terminal { self.sandbox.clone().ok_or_else(String::new) } else { self.ensure_sandbox(pod).await };
        let (sandbox_id, ip) = match sandbox {
            Ok(s) => s,
            Err(e) => {
                if !terminal {
                    self.event(
                        pod,
                        EventType::Warning,
                        "FailedCreatePodSandBox",
                        format!("Failed to create pod sandbox: {e}"),
                    );
                }
                obs.containers = app_specs
                    .iter()
                    .map(|c| Observed { name: name_of(c), image: image_of(c), ..Default::default() })
                    .collect();
                obs.initialized = init_specs.is_empty();
                self.write_status(pod, &obs).await;
                return;
            }
        };
        obs.pod_ip = ip.clone();
        let ip = ip.unwrap_or_default();

        let volumes = match spec::prepare_volumes(pod, &self.env.store, &self.env.pods_root) {
            Ok(v) => {
                self.mount_error = None;
                v
            }
            Err(e) => {
                if self.mount_error.as_deref() != Some(e.0.as_str()) {
                    self.event(pod, EventType::Warning, "FailedMount", e.0.clone());
                    self.mount_error = Some(e.0.clone());
                }
                Default::default()
            }
        };

        let at = Placement { sandbox: &sandbox_id, ip: &ip, volumes: &volumes };
        let rt = self.env.runtime.clone();
        let sid = sandbox_id.clone();
        let mut instances: HashMap<String, Vec<ContainerStatus>> = HashMap::new();
        if let Ok(list) = blocking(move || rt.list_containers(Some(&sid))).await {
            for c in list {
                instances.entry(c.name.clone()).or_default().push(c);
            }
        }
        // A container created but never started (the node stopped in between) is
        // removed; it is made again below.
        for v in instances.values_mut() {
            let (stale, keep): (Vec<_>, Vec<_>) = v.drain(..).partition(|c| c.state == ContainerState::Created);
            for c in stale {
                let rt = self.env.runtime.clone();
                let _ = blocking(move || rt.remove_container(&c.id)).await;
            }
            *v = keep;
            v.sort_by(|a, b| a.created_at.cmp(&b.created_at));
        }
        let newest = |name: &str| -> (Option<ContainerStatus>, Option<ContainerStatus>) {
            let v = instances.get(name);
            let cur = v.and_then(|v| v.last().cloned());
            let prev = v.and_then(|v| if v.len() >= 2 { v.get(v.len() - 2).cloned() } else { None });
            (cur, prev)
        };

        // Init containers, one at a time, each to completion.
        let mut initialized = true;
        for c in &init_specs {
            let name = name_of(c);
            let (mut cur, prev) = newest(&name);
            let mut o = Observed { name: name.clone(), image: image_of(c), previous: prev, ..Default::default() };
            if initialized && !terminal && self.mount_error.is_none() {
                let state = cur.as_ref().map(|c| (c.state, c.exit_code.unwrap_or(0)));
                let act = match state {
                    None => Some((false, None)),
                    Some((ContainerState::Exited, code)) if code != 0 && restarts(&policy, code) => {
                        Some((true, cur.as_ref().map(ran)))
                    }
                    Some((ContainerState::Exited, code)) if code != 0 => {
                        obs.init_failed = true;
                        None
                    }
                    _ => None,
                };
                if let Some((restart, prev_run)) = act {
                    if self.bring_up(pod, c, restart, prev_run, &at).await {
                        cur = self.current(&sandbox_id, &name).await;
                    }
                }
            }
            let done = cur.as_ref().is_some_and(|c| c.state == ContainerState::Exited && c.exit_code == Some(0));
            if !done {
                initialized = false;
            }
            let t = self.tracks.entry(name).or_default();
            if done {
                t.waiting = None;
            }
            o.current = cur;
            o.waiting = t.waiting.clone();
            o.restart_count = t.restart_count;
            o.ready = done;
            o.started = false;
            obs.init.push(o);
        }
        obs.initialized = initialized;

        for c in &app_specs {
            let name = name_of(c);
            let (mut cur, prev) = newest(&name);
            let mut will_restart = false;
            if initialized && !terminal && self.mount_error.is_none() {
                match cur.as_ref().map(|c| (c.state, c.exit_code.unwrap_or(0))) {
                    None if self.bring_up(pod, c, false, None, &at).await => {
                        cur = self.current(&sandbox_id, &name).await;
                    }
                    Some((ContainerState::Exited, code)) if restarts(&policy, code) => {
                        will_restart = true;
                        let run = cur.as_ref().map(ran);
                        if self.bring_up(pod, c, true, run, &at).await {
                            // Keep the instance that just exited for `logs --previous`; drop older ones.
                            if let Some(p) = &prev {
                                let rt = self.env.runtime.clone();
                                let id = p.id.clone();
                                let _ = blocking(move || rt.remove_container(&id)).await;
                            }
                            cur = self.current(&sandbox_id, &name).await;
                        }
                    }
                    Some((ContainerState::Running, _)) => {
                        let running = cur.clone().expect("current");
                        if !self.probe(pod, c, &running, &ip).await {
                            cur = self.current(&sandbox_id, &name).await;
                            will_restart = cur.as_ref().is_some_and(|c| restarts(&policy, c.exit_code.unwrap_or(0)));
                        }
                    }
                    _ => {}
                }
            }
            // Whatever the instance we ended on, an exited one that the policy
            // restarts keeps the pod Running (it may have exited since we started it).
            if let Some(c) = cur.as_ref().filter(|c| c.state == ContainerState::Exited) {
                will_restart = restarts(&policy, c.exit_code.unwrap_or(0));
            }
            let (_, prev) = newest(&name);
            let t = self.tracks.entry(name.clone()).or_default();
            let is_running = cur.as_ref().is_some_and(|c| c.state == ContainerState::Running);
            if is_running {
                t.waiting = None;
            }
            let previous = match (&cur, &prev) {
                (Some(c), Some(p)) if c.id == p.id => None,
                (Some(c), _) if c.state != ContainerState::Exited => {
                    instances.get(&name).and_then(|v| v.iter().rev().find(|i| i.id != c.id).cloned())
                }
                _ => prev,
            };
            obs.containers.push(Observed {
                name,
                image: image_of(c),
                current: cur,
                previous,
                waiting: t.waiting.clone(),
                restart_count: t.restart_count,
                ready: t.ready,
                started: t.started,
                will_restart,
            });
        }
        if self.mount_error.is_some() {
            for o in obs.containers.iter_mut().filter(|o| o.current.is_none()) {
                o.waiting = Some(("ContainerCreating".into(), String::new()));
            }
        }
        self.write_status(pod, &obs).await;
    }

    async fn current(&self, sandbox: &str, name: &str) -> Option<ContainerStatus> {
        let rt = self.env.runtime.clone();
        let sid = sandbox.to_string();
        let list = blocking(move || rt.list_containers(Some(&sid))).await.ok()?;
        list.into_iter().filter(|c| c.name == name).max_by(|a, b| a.created_at.cmp(&b.created_at))
    }

    async fn write_status(&self, pod: &Value, obs: &PodObserved) {
        let now = util::now();
        let new = status::pod_status(pod, obs, &now);
        if pod.get("status") == Some(&new) {
            return;
        }
        let Some(key) = key_of(pod) else { return };
        let uid = meta_str(pod, "uid").to_string();
        let (ns, name) = (meta_str(pod, "namespace"), meta_str(pod, "name"));
        let r = self
            .env
            .store
            .modify(&crate::objects::kinds::POD, ns, name, Origin::ControlPlane, |cur| {
                if meta_str(cur, "uid") != uid {
                    return false;
                }
                let fresh = status::pod_status(cur, obs, &now);
                if cur.get("status") == Some(&fresh) {
                    return false;
                }
                cur["status"] = fresh;
                true
            })
            .await;
        match r {
            Ok(_) | Err(RegistryError::NotFound { .. }) => {}
            Err(e) => tracing::warn!(error = %e, pod = %key, "kubelet: status update failed"),
        }
    }

    /// Stop and remove every sandbox of the pod, and its volumes.
    async fn remove_everything(&mut self, uid: Option<&str>, grace: Duration) {
        let rt = self.env.runtime.clone();
        let mut ids: Vec<String> = self.sandbox.take().map(|s| s.0).into_iter().collect();
        if let Some(uid) = uid {
            let u = uid.to_string();
            let r = rt.clone();
            if let Ok(list) = blocking(move || r.list_sandboxes()).await {
                ids.extend(list.into_iter().filter(|s| s.config.uid == u).map(|s| s.id));
            }
        }
        ids.sort();
        ids.dedup();
        for id in ids {
            let r = rt.clone();
            let res = blocking(move || {
                r.stop_pod_sandbox(&id, grace)?;
                r.remove_pod_sandbox(&id)
            })
            .await;
            if let Err(e) = res {
                tracing::warn!(error = %e, "kubelet: removing a sandbox failed");
            }
        }
        if let Some(uid) = uid {
            let _ = std::fs::remove_dir_all(self.env.pods_root.join(uid));
        }
    }

    /// Graceful deletion: SIGTERM, the grace period, SIGKILL; then the object goes.
    async fn terminate(&mut self, pod: &Value) {
        let uid = meta_str(pod, "uid").to_string();
        for s in pod.pointer("/status/containerStatuses").and_then(Value::as_array).into_iter().flatten() {
            if s.pointer("/state/running").is_some() {
                self.event(pod, EventType::Normal, "Killing", format!("Stopping container {}", name_of(s)));
            }
        }
        self.remove_everything(Some(&uid), grace_of(pod)).await;
        let Some(key) = key_of(pod) else { return };
        for _ in 0..20 {
            match self.env.store.get_key(&key) {
                Ok(Some(cur)) if meta_str(&cur, "uid") == uid => {
                    let rv = crate::objects::resource_version(&cur);
                    match self.env.store.remove(&key, rv).await {
                        Ok(_) => return,
                        Err(RegistryError::Conflict { .. }) => continue,
                        Err(e) => {
                            tracing::warn!(error = %e, pod = %key, "kubelet: removing the pod object failed");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                    }
                }
                _ => return,
            }
        }
    }
}

fn image_of(c: &Value) -> String {
    c.get("image").and_then(Value::as_str).unwrap_or("").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policy() {
        assert!(restarts("Always", 0));
        assert!(restarts("OnFailure", 1));
        assert!(!restarts("OnFailure", 0));
        assert!(!restarts("Never", 1));
    }
}
