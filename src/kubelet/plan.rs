//! What a pod worker does next, decided without touching anything: from the
//! pod's spec, what the runtime shows of its sandbox and containers, and what
//! the worker remembers between passes (restart counts, back-off, probe
//! tallies). Time is an input, never read here. Keeping every rule of the
//! kubelet — sandbox, init containers in order, restart policy with back-off,
//! probes, graceful stop, the status to report — in pure functions is what lets
//! them be tested in tables without root; the executor only carries out the
//! [`Action`]s and feeds their outcomes back through [`Memory`].

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod, Probe as ProbeSpec};
use tokio::time::Instant;

use clusterd_runtime::{ContainerState, ContainerStatus};

use super::backoff::Backoff;
use super::probe::{Probe, Tally};
use super::status::{Observed, PodObserved};
use crate::objects::pod::PodFacts;

/// The pod's `restartPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartPolicy {
    /// Restart whatever the exit code (the default).
    Always,
    /// Restart after a non-zero exit.
    OnFailure,
    /// Never restart.
    Never,
}

impl RestartPolicy {
    /// The policy as written in a pod spec; anything unknown is `Always`.
    pub fn parse(s: Option<&str>) -> RestartPolicy {
        match s {
            Some("Never") => RestartPolicy::Never,
            Some("OnFailure") => RestartPolicy::OnFailure,
            _ => RestartPolicy::Always,
        }
    }

    /// Whether a container that exited with `exit_code` is started again.
    pub fn restarts(self, exit_code: i32) -> bool {
        match self {
            RestartPolicy::Never => false,
            RestartPolicy::OnFailure => exit_code != 0,
            RestartPolicy::Always => true,
        }
    }
}

/// Which of a container's three probes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    /// Gates the other two until it passes; failing it restarts the container.
    Startup,
    /// Failing it restarts the container.
    Liveness,
    /// Decides whether the container is Ready.
    Readiness,
}

impl ProbeKind {
    /// How Kubernetes names it in events ("Liveness probe failed: …").
    pub fn label(self) -> &'static str {
        match self {
            ProbeKind::Startup => "Startup",
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
        }
    }

    /// The container's probe of this kind, as written.
    fn of(self, c: &Container) -> Option<&ProbeSpec> {
        match self {
            ProbeKind::Startup => c.startup_probe.as_ref(),
            ProbeKind::Liveness => c.liveness_probe.as_ref(),
            ProbeKind::Readiness => c.readiness_probe.as_ref(),
        }
    }

    const ALL: [ProbeKind; 3] = [ProbeKind::Startup, ProbeKind::Liveness, ProbeKind::Readiness];
}

/// One container of the pod spec, with its probes read once.
#[derive(Clone, Debug)]
pub struct ContainerSpec {
    /// Its name.
    pub name: String,
    /// Its image, as written.
    pub image: String,
    /// `imagePullPolicy`, defaulted from the image's tag when unset.
    pub pull_policy: String,
    /// Startup, liveness and readiness probes, when set.
    pub probes: HashMap<ProbeKind, Probe>,
    /// The container as in the pod (for the runtime config and probe handlers).
    pub raw: Container,
}

impl ContainerSpec {
    /// Read one entry of `containers` / `initContainers`.
    pub fn of(raw: &Container) -> ContainerSpec {
        let image = raw.image.clone().unwrap_or_default();
        let pull_policy = match &raw.image_pull_policy {
            Some(p) => p.clone(),
            None => crate::objects::defaults::pull_policy(&image).to_string(),
        };
        ContainerSpec {
            name: raw.name.clone(),
            image,
            pull_policy,
            probes: ProbeKind::ALL.iter().filter_map(|k| Some((*k, Probe::of(k.of(raw)?)))).collect(),
            raw: raw.clone(),
        }
    }

    /// The probe of that kind, if the container has one.
    pub fn probe(&self, kind: ProbeKind) -> Option<&Probe> {
        self.probes.get(&kind)
    }
}

/// What a worker needs of its pod object.
#[derive(Clone, Debug)]
pub struct PodSpec {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.uid`.
    pub uid: String,
    /// `spec.hostname`, else the pod's name.
    pub hostname: String,
    /// `spec.restartPolicy`.
    pub policy: RestartPolicy,
    /// `spec.initContainers`, in order.
    pub init: Vec<ContainerSpec>,
    /// `spec.containers`, in order.
    pub containers: Vec<ContainerSpec>,
    /// How long containers get between SIGTERM and SIGKILL: the deletion's
    /// grace period, else `terminationGracePeriodSeconds`, else 30 s.
    pub grace: Duration,
    /// The pod has a `deletionTimestamp`.
    pub deleting: bool,
    /// The stored phase is Succeeded or Failed.
    pub finished: bool,
}

impl PodSpec {
    /// Read the parts of a pod object a worker acts on.
    pub fn of(pod: &Pod) -> PodSpec {
        let spec = pod.spec.as_ref();
        let meta = &pod.metadata;
        let list = |l: Option<&Vec<Container>>| l.into_iter().flatten().map(ContainerSpec::of).collect();
        let grace = meta
            .deletion_grace_period_seconds
            .or_else(|| spec?.termination_grace_period_seconds)
            .and_then(|s| u64::try_from(s).ok())
            .unwrap_or(30);
        let name = meta.name.clone().unwrap_or_default();
        PodSpec {
            hostname: spec.and_then(|s| s.hostname.clone()).unwrap_or_else(|| name.clone()),
            name,
            namespace: meta.namespace.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
            policy: RestartPolicy::parse(spec.and_then(|s| s.restart_policy.as_deref())),
            init: list(spec.and_then(|s| s.init_containers.as_ref())),
            containers: list(spec.map(|s| &s.containers)),
            grace: Duration::from_secs(grace),
            deleting: meta.deletion_timestamp.is_some(),
            finished: pod.finished(),
        }
    }

    /// A pod that does not restart always and has finished: nothing runs again.
    pub fn terminal(&self) -> bool {
        self.policy != RestartPolicy::Always && self.finished
    }

    /// An init or app container by name.
    pub fn container(&self, name: &str) -> Option<&ContainerSpec> {
        self.init.iter().chain(&self.containers).find(|c| c.name == name)
    }
}

/// The pod's sandbox as the runtime shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxSeen {
    /// Its id.
    pub id: String,
    /// The pod's IP.
    pub ip: Option<String>,
    /// Whether its namespaces' holder still lives.
    pub ready: bool,
}

/// What the runtime shows of one pod, and whether its volumes are in place.
#[derive(Clone, Debug, Default)]
pub struct Observation {
    /// The sandbox the worker uses (or last used), if any.
    pub sandbox: Option<SandboxSeen>,
    /// Every instance of each container in that sandbox, oldest first.
    pub instances: HashMap<String, Vec<ContainerStatus>>,
    /// Why the volumes could not be prepared.
    pub mount_error: Option<String>,
}

impl Observation {
    /// Group a sandbox's container list by name, oldest instance first.
    pub fn new(sandbox: Option<SandboxSeen>, containers: Vec<ContainerStatus>, mount_error: Option<String>) -> Self {
        let mut instances: HashMap<String, Vec<ContainerStatus>> = HashMap::new();
        for c in containers {
            instances.entry(c.name.clone()).or_default().push(c);
        }
        for v in instances.values_mut() {
            v.sort_by(|a, b| a.created_at.cmp(&b.created_at));
        }
        Observation { sandbox, instances, mount_error }
    }

    /// Instances that were started at some point (a created-but-never-started
    /// one is left over from a node that stopped in between), oldest first.
    fn live(&self, name: &str) -> Vec<&ContainerStatus> {
        self.instances.get(name).into_iter().flatten().filter(|c| c.state != ContainerState::Created).collect()
    }

    /// The newest live instance and the one before it.
    fn newest(&self, name: &str) -> (Option<&ContainerStatus>, Option<&ContainerStatus>) {
        let v = self.live(name);
        let n = v.len();
        (v.last().copied(), n.checked_sub(2).map(|i| v[i]))
    }
}

/// Normal or Warning, as Kubernetes events are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// Routine.
    Normal,
    /// Something went wrong.
    Warning,
}

/// An event to record on the pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Normal or Warning.
    pub kind: EventKind,
    /// Kubernetes' reason (`BackOff`, `Unhealthy`, …).
    pub reason: &'static str,
    /// The human text.
    pub message: String,
}

/// One step for the executor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Record an event on the pod.
    Event(Event),
    /// Remove a sandbox that died; a new one is made next.
    RemoveSandbox {
        /// The dead sandbox.
        id: String,
    },
    /// Make the pod's sandbox. Every later action but [`Action::Report`] needs it:
    /// when it fails they are dropped.
    CreateSandbox,
    /// Remove one container instance (left over, or older than the one kept for `logs --previous`).
    RemoveContainer {
        /// The instance.
        id: String,
    },
    /// Pull the image if needed, then create and start a container.
    Start {
        /// The container (init or app).
        name: String,
        /// Whether this is a restart (counted in `restartCount`).
        restart: bool,
        /// An older instance to remove once the new one runs.
        prune: Option<String>,
    },
    /// Run one probe against a running instance.
    Probe {
        /// The container.
        name: String,
        /// Which probe.
        kind: ProbeKind,
        /// The instance probed.
        id: String,
    },
    /// Stop one instance: SIGTERM, then SIGKILL after `grace`.
    Kill {
        /// The instance.
        id: String,
        /// Time between the two signals.
        grace: Duration,
    },
    /// Stop and remove every sandbox of the pod (SIGTERM, `grace`, SIGKILL) and its volumes.
    StopPod {
        /// The pod's uid (its sandboxes and volume directory).
        uid: String,
        /// Time between the two signals.
        grace: Duration,
    },
    /// Remove the pod object: the graceful deletion is complete.
    RemovePod,
    /// Observe again and write the pod's status.
    Report,
}

impl Action {
    fn event(kind: EventKind, reason: &'static str, message: String) -> Action {
        Action::Event(Event { kind, reason, message })
    }
}

/// Why a container could not be started; each is the waiting reason Kubernetes shows.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    /// `ErrImagePull`: the pull failed and the image is not at hand.
    #[error("{0}")]
    ImagePull(String),
    /// `ErrImageNeverPull`: policy Never and the image is not at hand.
    #[error("{0}")]
    ImageNeverPull(String),
    /// `CreateContainerConfigError`: a referenced secret, key or field is missing.
    #[error("{0}")]
    Config(String),
    /// `CreateContainerError`: the runtime refused to create it.
    #[error("{0}")]
    Create(String),
    /// `RunContainerError`: it was created but did not start (e.g. unknown command).
    #[error("{0}")]
    Run(String),
}

impl StartError {
    /// The container's waiting reason.
    pub fn reason(&self) -> &'static str {
        match self {
            StartError::ImagePull(_) => "ErrImagePull",
            StartError::ImageNeverPull(_) => "ErrImageNeverPull",
            StartError::Config(_) => "CreateContainerConfigError",
            StartError::Create(_) => "CreateContainerError",
            StartError::Run(_) => "RunContainerError",
        }
    }
}

/// Whether to pull a container's image before starting it, by its pull policy
/// and whether the image is at hand: `Ok(true)` pull, `Ok(false)` use the local one.
pub fn should_pull(c: &ContainerSpec, present: bool) -> Result<bool, StartError> {
    match c.pull_policy.as_str() {
        "Never" if present => Ok(false),
        "Never" => Err(StartError::ImageNeverPull(format!(
            "Container image \"{}\" is not present with pull policy of Never",
            c.image
        ))),
        "Always" => Ok(true),
        _ => Ok(!present),
    }
}

/// A probe's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// The handler succeeded.
    Success,
    /// It failed, with the message Kubernetes shows.
    Failure(String),
}

/// What the worker remembers of one container across its instances.
#[derive(Clone, Debug, Default)]
pub struct Track {
    /// Restarts so far (`restartCount`).
    pub restart_count: u32,
    /// The restart (or image pull) back-off.
    pub backoff: Backoff,
    /// No start before this time.
    pub retry_at: Option<Instant>,
    /// The waiting reason and message shown while it does not run.
    pub waiting: Option<(String, String)>,
    /// The instance the probe tallies belong to.
    pub instance: Option<String>,
    /// The startup probe passed (or there is none).
    pub started: bool,
    /// The readiness probe passed (or there is none).
    pub ready: bool,
    /// Probe tallies of the current instance.
    pub tallies: HashMap<ProbeKind, Tally>,
    /// The last back-off reason evented, so each back-off is told once.
    pub last_event: Option<String>,
}

/// What a pod worker remembers between passes.
#[derive(Clone, Debug, Default)]
pub struct Memory {
    /// Per container name.
    pub tracks: HashMap<String, Track>,
    /// The mount error last evented.
    pub mount_error: Option<String>,
}

/// How long an instance ran before it exited.
pub fn ran(c: &ContainerStatus) -> Duration {
    let parse = |t: &Option<String>| t.as_deref().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
    match (parse(&c.started_at), parse(&c.finished_at)) {
        (Some(a), Some(b)) => (b - a).to_std().unwrap_or_default(),
        _ => Duration::ZERO,
    }
}

fn exited(c: &ContainerStatus) -> Option<i32> {
    (c.state == ContainerState::Exited).then(|| c.exit_code.unwrap_or(0))
}

/// The whole plan of one pass over a pod.
pub fn plan(spec: &PodSpec, seen: &Observation, mem: &mut Memory, now: Instant) -> Vec<Action> {
    if spec.deleting {
        return stop(spec, seen);
    }
    let mut out = Vec::new();
    if spec.terminal() {
        // Nothing runs again; the status is still reported while there is something to report from.
        if seen.sandbox.is_some() {
            out.push(Action::Report);
        }
        return out;
    }
    // A sandbox that died takes its containers with it: they are made again in a new one.
    let fresh = match &seen.sandbox {
        Some(s) if s.ready => false,
        Some(s) => {
            out.push(Action::RemoveSandbox { id: s.id.clone() });
            out.push(Action::event(
                EventKind::Normal,
                "SandboxChanged",
                "Pod sandbox changed, it will be killed and re-created.".into(),
            ));
            out.push(Action::CreateSandbox);
            true
        }
        None => {
            out.push(Action::CreateSandbox);
            true
        }
    };
    let empty = Observation::default();
    let seen_in = if fresh { &empty } else { seen };
    for v in seen_in.instances.values() {
        for c in v.iter().filter(|c| c.state == ContainerState::Created) {
            out.push(Action::RemoveContainer { id: c.id.clone() });
        }
    }
    if let Some(e) = &seen.mount_error {
        if mem.mount_error.as_ref() != Some(e) {
            out.push(Action::event(EventKind::Warning, "FailedMount", e.clone()));
        }
    }
    mem.mount_error = seen.mount_error.clone();
    if mem.mount_error.is_none() && init_containers(spec, seen_in, mem, now, &mut out) {
        app_containers(spec, seen_in, mem, now, &mut out);
    }
    out.push(Action::Report);
    out
}

/// Graceful deletion: tell which containers are stopped, stop the pod, remove the object.
fn stop(spec: &PodSpec, seen: &Observation) -> Vec<Action> {
    let mut out: Vec<Action> = spec
        .containers
        .iter()
        .filter(|c| seen.newest(&c.name).0.is_some_and(|i| i.state == ContainerState::Running))
        .map(|c| Action::event(EventKind::Normal, "Killing", format!("Stopping container {}", c.name)))
        .collect();
    out.push(Action::StopPod { uid: spec.uid.clone(), grace: spec.grace });
    out.push(Action::RemovePod);
    out
}

/// The plan for a pod removed from the store at once (forced): nothing of it stays.
pub fn gone(uid: &str) -> Vec<Action> {
    vec![Action::StopPod { uid: uid.to_string(), grace: Duration::ZERO }]
}

/// Init containers run one at a time, in order, each to success. Returns
/// whether all have succeeded (the app containers may start).
fn init_containers(spec: &PodSpec, seen: &Observation, mem: &mut Memory, now: Instant, out: &mut Vec<Action>) -> bool {
    for c in &spec.init {
        let track = mem.tracks.entry(c.name.clone()).or_default();
        let (cur, _) = seen.newest(&c.name);
        match cur.map(|i| (i.state, exited(i))) {
            None => bring_up(spec, c, track, Attempt::first(), now, out),
            Some((_, Some(0))) => {
                track.waiting = None;
                continue;
            }
            Some((_, Some(code))) if spec.policy.restarts(code) => {
                bring_up(spec, c, track, Attempt::again(cur.map(ran), None), now, out)
            }
            // Failed for good (the pod fails), or still running.
            _ => {}
        }
        return false;
    }
    true
}

fn app_containers(spec: &PodSpec, seen: &Observation, mem: &mut Memory, now: Instant, out: &mut Vec<Action>) {
    for c in &spec.containers {
        let track = mem.tracks.entry(c.name.clone()).or_default();
        let (cur, prev) = seen.newest(&c.name);
        match cur.map(|i| (i.state, exited(i))) {
            None => bring_up(spec, c, track, Attempt::first(), now, out),
            Some((_, Some(code))) if spec.policy.restarts(code) => {
                // Keep the instance that just exited for `logs --previous`; older ones go.
                let prune = prev.map(|p| p.id.clone());
                bring_up(spec, c, track, Attempt::again(cur.map(ran), prune), now, out)
            }
            Some((ContainerState::Running, _)) => {
                track.waiting = None;
                probes(c, cur.expect("running"), track, now, out);
            }
            _ => {}
        }
    }
}

/// One attempt to bring a container up.
struct Attempt {
    /// A restart (an instance ran before).
    restart: bool,
    /// How long the last instance ran, if it ran and exited.
    previous_run: Option<Duration>,
    /// An older instance to remove once the new one starts.
    prune: Option<String>,
}

impl Attempt {
    fn first() -> Self {
        Attempt { restart: false, previous_run: None, prune: None }
    }

    fn again(previous_run: Option<Duration>, prune: Option<String>) -> Self {
        Attempt { restart: true, previous_run, prune }
    }
}

/// Start (or restart, honouring the back-off) a container that does not run.
fn bring_up(
    spec: &PodSpec,
    c: &ContainerSpec,
    track: &mut Track,
    attempt: Attempt,
    now: Instant,
    out: &mut Vec<Action>,
) {
    let Attempt { restart, previous_run, prune } = attempt;
    if let Some(ran) = previous_run {
        if track.retry_at.is_none() {
            track.retry_at = Some(now + track.backoff.failed(ran));
        }
    }
    if let Some(at) = track.retry_at {
        if now < at {
            let reason = match track.waiting.as_ref().map(|w| w.0.as_str()) {
                Some("ErrImagePull" | "ImagePullBackOff") => "ImagePullBackOff",
                _ if previous_run.is_some() => "CrashLoopBackOff",
                // Another failure (config, create, start): its reason stays.
                _ => return,
            };
            let name = &c.name;
            let message = if reason == "CrashLoopBackOff" {
                let secs = (track.backoff.next.as_secs() / 2).max(10);
                format!(
                    "back-off {secs}s restarting failed container={name} pod={}_{}({})",
                    spec.name, spec.namespace, spec.uid
                )
            } else {
                format!("Back-off pulling image \"{}\"", c.image)
            };
            if track.last_event.as_deref() != Some(reason) {
                track.last_event = Some(reason.to_string());
                let what = if reason == "CrashLoopBackOff" {
                    "Back-off restarting failed container".to_string()
                } else {
                    message.clone()
                };
                out.push(Action::event(EventKind::Warning, "BackOff", format!("{what} {name} in pod {}", spec.name)));
            }
            track.waiting = Some((reason.into(), message));
            return;
        }
    }
    out.push(Action::Start { name: c.name.clone(), restart, prune });
}

/// The due probes of a running instance; startup gates liveness and readiness.
fn probes(c: &ContainerSpec, cur: &ContainerStatus, track: &mut Track, now: Instant, out: &mut Vec<Action>) {
    // An instance seen for the first time (found after a kubelet restart), or a
    // probe without a tally: probe it from now on.
    if track.instance.as_deref() != Some(cur.id.as_str()) {
        track.instance = Some(cur.id.clone());
        track.tallies.clear();
    }
    for (kind, p) in &c.probes {
        track.tallies.entry(*kind).or_insert_with(|| Tally::new(p, now));
    }
    let due = |t: &Track, kind: ProbeKind| t.tallies.get(&kind).is_some_and(|x| x.due <= now);
    let probe = |kind: ProbeKind| Action::Probe { name: c.name.clone(), kind, id: cur.id.clone() };
    if c.probe(ProbeKind::Startup).is_some() && !track.started {
        if due(track, ProbeKind::Startup) {
            out.push(probe(ProbeKind::Startup));
        }
        return;
    }
    track.started = true;
    // Readiness first: a liveness failure stops the instance, and a probe of a
    // stopped instance would only fail.
    match c.probe(ProbeKind::Readiness) {
        Some(_) if due(track, ProbeKind::Readiness) => out.push(probe(ProbeKind::Readiness)),
        Some(_) => {}
        None => track.ready = true,
    }
    if due(track, ProbeKind::Liveness) {
        out.push(probe(ProbeKind::Liveness));
    }
}

impl Memory {
    /// Restart counts and readiness survive a kubelet restart through the stored status.
    pub fn seed(&mut self, pod: &Pod) {
        let status = pod.status.as_ref();
        let lists = status.into_iter().flat_map(|s| [&s.container_statuses, &s.init_container_statuses]);
        for s in lists.flatten().flatten() {
            let t = self.tracks.entry(s.name.clone()).or_default();
            t.restart_count = u32::try_from(s.restart_count).unwrap_or(0);
            t.ready = s.ready;
            t.started = s.started.unwrap_or(false);
            if let Some(id) = &s.container_id {
                t.instance = id.strip_prefix("clusterd://").map(String::from);
            }
        }
    }

    /// A container started as instance `id` at `now`.
    pub fn on_started(&mut self, c: &ContainerSpec, restart: bool, id: String, now: Instant) {
        let t = self.tracks.entry(c.name.clone()).or_default();
        t.instance = Some(id);
        t.started = false;
        t.ready = false;
        t.tallies = c.probes.iter().map(|(k, p)| (*k, Tally::new(p, now))).collect();
        if restart {
            t.restart_count += 1;
        }
        t.retry_at = None;
        t.waiting = None;
        t.last_event = None;
    }

    /// A container failed to start at `now`: when to try again, and what to tell.
    pub fn on_start_failed(&mut self, name: &str, err: &StartError, now: Instant) -> Vec<Action> {
        let t = self.tracks.entry(name.to_string()).or_default();
        let mut out = Vec::new();
        t.retry_at = Some(match err {
            StartError::ImagePull(_) | StartError::ImageNeverPull(_) => {
                now + t.backoff.failed(Duration::ZERO).max(Duration::from_secs(1))
            }
            _ => now + Duration::from_secs(1),
        });
        // A failed pull was told when it failed.
        if !matches!(err, StartError::ImagePull(_)) {
            out.push(Action::event(EventKind::Warning, "Failed", format!("Error: {err}")));
        }
        t.waiting = Some((err.reason().to_string(), err.to_string()));
        out
    }

    /// A probe of instance `id` gave `outcome` at `now`: the verdict's consequences.
    pub fn on_probe(
        &mut self,
        c: &ContainerSpec,
        kind: ProbeKind,
        id: &str,
        outcome: &ProbeOutcome,
        grace: Duration,
        now: Instant,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        let (Some(p), Some(t)) = (c.probe(kind), self.tracks.get_mut(&c.name)) else { return out };
        if t.instance.as_deref() != Some(id) {
            return out;
        }
        let verdict = t.tallies.entry(kind).or_insert_with(|| Tally::new(p, now)).record(
            p,
            *outcome == ProbeOutcome::Success,
            now,
        );
        if let ProbeOutcome::Failure(msg) = outcome {
            out.push(Action::event(EventKind::Warning, "Unhealthy", format!("{} probe failed: {msg}", kind.label())));
        }
        match (kind, verdict) {
            (ProbeKind::Startup, Some(true)) => t.started = true,
            (ProbeKind::Readiness, Some(ready)) => t.ready = ready,
            (ProbeKind::Startup | ProbeKind::Liveness, Some(false)) => {
                let which = if kind == ProbeKind::Startup { "startup" } else { "liveness" };
                out.push(Action::event(
                    EventKind::Normal,
                    "Killing",
                    format!("Container {} failed {which} probe, will be restarted", c.name),
                ));
                t.ready = false;
                out.push(Action::Kill { id: id.to_string(), grace });
            }
            _ => {}
        }
        out
    }

    /// When the worker should look again: the next retry or probe, within a second.
    pub fn next_wakeup(&self, now: Instant) -> Instant {
        let soonest = now + Duration::from_millis(20);
        self.tracks
            .values()
            .flat_map(|t| t.retry_at.into_iter().chain(t.tallies.values().map(|x| x.due)))
            .fold(now + Duration::from_secs(1), |at, due| at.min(due.max(soonest)))
    }
}

/// What to report of the pod, from what the runtime shows after a pass.
pub fn report(spec: &PodSpec, seen: &Observation, mem: &Memory, host_ip: &str) -> PodObserved {
    let track = |name: &str| mem.tracks.get(name).cloned().unwrap_or_default();
    let mut obs = PodObserved { host_ip: host_ip.to_string(), ..Default::default() };
    if seen.sandbox.is_none() {
        // No sandbox: nothing has run (yet).
        obs.containers = spec
            .containers
            .iter()
            .map(|c| Observed {
                name: c.name.clone(),
                image: c.image.clone(),
                restart_count: track(&c.name).restart_count,
                ..Default::default()
            })
            .collect();
        obs.initialized = spec.init.is_empty();
        return obs;
    }
    obs.pod_ip = seen.sandbox.as_ref().and_then(|s| s.ip.clone());
    let mut initialized = true;
    for c in &spec.init {
        let (cur, prev) = seen.newest(&c.name);
        let t = track(&c.name);
        let done = cur.and_then(exited) == Some(0);
        if !done && initialized {
            if let Some(code) = cur.and_then(exited) {
                obs.init_failed = !spec.policy.restarts(code);
            }
        }
        initialized &= done;
        obs.init.push(Observed {
            name: c.name.clone(),
            image: c.image.clone(),
            current: cur.cloned(),
            previous: prev.cloned(),
            waiting: if done { None } else { t.waiting.clone() },
            restart_count: t.restart_count,
            ready: done,
            started: false,
            will_restart: false,
        });
    }
    obs.initialized = initialized;
    for c in &spec.containers {
        let (cur, prev) = seen.newest(&c.name);
        let t = track(&c.name);
        let running = cur.is_some_and(|i| i.state == ContainerState::Running);
        let mut waiting = if running { None } else { t.waiting.clone() };
        if cur.is_none() && mem.mount_error.is_some() {
            waiting = Some(("ContainerCreating".into(), String::new()));
        }
        obs.containers.push(Observed {
            name: c.name.clone(),
            image: c.image.clone(),
            current: cur.cloned(),
            previous: prev.cloned(),
            waiting,
            restart_count: t.restart_count,
            ready: t.ready,
            started: t.started,
            will_restart: cur.and_then(exited).is_some_and(|code| spec.policy.restarts(code)),
        });
    }
    obs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubelet::status;
    use serde_json::{json, Value};

    /// A pod spec from a pod written as JSON, as the store holds it.
    fn spec_of(pod: &Value) -> PodSpec {
        PodSpec::of(&serde_json::from_value(pod.clone()).expect("a pod"))
    }

    /// The status the kubelet would write, as JSON.
    fn status_of(obs: &PodObserved) -> Value {
        let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        serde_json::to_value(status::pod_status(&Pod::default(), obs, &now)).expect("a status")
    }

    fn pod(spec: Value) -> Value {
        json!({"metadata": {"name": "web", "namespace": "default", "uid": "u1"}, "spec": spec})
    }

    fn app_pod(policy: &str) -> Value {
        pod(json!({"restartPolicy": policy, "containers": [{"name": "app", "image": "busybox"}]}))
    }

    fn inst(name: &str, seq: u32, state: ContainerState, exit: Option<i32>) -> ContainerStatus {
        ContainerStatus {
            id: format!("{name}-{seq}"),
            created_at: format!("2026-01-01T00:00:{seq:02}Z"),
            ..super::super::fake::instance(name, state, exit)
        }
    }

    fn running(name: &str, seq: u32) -> ContainerStatus {
        inst(name, seq, ContainerState::Running, None)
    }

    fn exited(name: &str, seq: u32, code: i32) -> ContainerStatus {
        inst(name, seq, ContainerState::Exited, Some(code))
    }

    fn seen(list: Vec<ContainerStatus>) -> Observation {
        let sandbox = SandboxSeen { id: "s1".into(), ip: Some("10.1.0.2".into()), ready: true };
        Observation::new(Some(sandbox), list, None)
    }

    /// (container, restart) of every Start in a plan.
    fn starts(actions: &[Action]) -> Vec<(String, bool)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Start { name, restart, .. } => Some((name.clone(), *restart)),
                _ => None,
            })
            .collect()
    }

    fn events(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Event(e) => Some(format!("{}: {}", e.reason, e.message)),
                _ => None,
            })
            .collect()
    }

    fn phase_of(spec: &PodSpec, seen: &Observation, mem: &Memory) -> &'static str {
        status::phase(&report(spec, seen, mem, "192.0.2.1"))
    }

    /// Apply a plan's starts to the memory as if each succeeded.
    fn started(spec: &PodSpec, actions: &[Action], mem: &mut Memory, now: Instant) {
        for a in actions {
            if let Action::Start { name, restart, .. } = a {
                mem.on_started(spec.container(name).unwrap(), *restart, format!("{name}-new"), now);
            }
        }
    }

    #[test]
    fn restart_policy_by_exit_code() {
        let now = Instant::now();
        // policy, exit code, restarted, phase reported
        let table = [
            ("Always", 0, true, "Running"),
            ("Always", 1, true, "Running"),
            ("OnFailure", 0, false, "Succeeded"),
            ("OnFailure", 1, true, "Running"),
            ("Never", 0, false, "Succeeded"),
            ("Never", 1, false, "Failed"),
        ];
        for (policy, code, restarted, phase) in table {
            let spec = spec_of(&app_pod(policy));
            let seen = seen(vec![exited("app", 1, code)]);
            let mut mem = Memory::default();
            let actions = plan(&spec, &seen, &mut mem, now);
            let want: Vec<(String, bool)> = if restarted { vec![("app".into(), true)] } else { vec![] };
            assert_eq!(starts(&actions), want, "{policy} exit {code}");
            assert_eq!(phase_of(&spec, &seen, &mem), phase, "{policy} exit {code}");
        }
    }

    #[test]
    fn a_new_pod_gets_a_sandbox_and_its_first_init_container_only() {
        let p = pod(json!({
            "initContainers": [{"name": "a", "image": "busybox"}, {"name": "b", "image": "busybox"}],
            "containers": [{"name": "app", "image": "busybox"}],
        }));
        let spec = spec_of(&p);
        let actions = plan(&spec, &Observation::default(), &mut Memory::default(), Instant::now());
        assert_eq!(
            actions,
            vec![
                Action::CreateSandbox,
                Action::Start { name: "a".into(), restart: false, prune: None },
                Action::Report
            ]
        );
    }

    #[test]
    fn init_containers_run_in_order_one_at_a_time() {
        let p = |policy: &str| {
            pod(json!({
                "restartPolicy": policy,
                "initContainers": [{"name": "a", "image": "busybox"}, {"name": "b", "image": "busybox"}],
                "containers": [{"name": "app", "image": "busybox"}, {"name": "side", "image": "busybox"}],
            }))
        };
        let s = |n: &str| n.to_string();
        // policy, what runs, what starts, phase, initialized
        type Row<'a> = (&'a str, Vec<ContainerStatus>, Vec<(String, bool)>, &'a str, bool);
        let table: Vec<Row> = vec![
            ("Always", vec![running("a", 1)], vec![], "Pending", false),
            ("Always", vec![exited("a", 1, 0)], vec![(s("b"), false)], "Pending", false),
            (
                "Always",
                vec![exited("a", 1, 0), exited("b", 2, 0)],
                vec![(s("app"), false), (s("side"), false)],
                "Pending",
                true,
            ),
            ("Always", vec![exited("a", 1, 0), exited("b", 2, 1)], vec![(s("b"), true)], "Pending", false),
            ("OnFailure", vec![exited("a", 1, 3)], vec![(s("a"), true)], "Pending", false),
            ("Never", vec![exited("a", 1, 0), exited("b", 2, 1)], vec![], "Failed", false),
            (
                "Always",
                vec![exited("a", 1, 0), exited("b", 2, 0), running("app", 3), running("side", 4)],
                vec![],
                "Running",
                true,
            ),
        ];
        for (i, (policy, list, want, phase, initialized)) in table.into_iter().enumerate() {
            let spec = spec_of(&p(policy));
            let seen = seen(list);
            let mut mem = Memory::default();
            let actions = plan(&spec, &seen, &mut mem, Instant::now());
            assert_eq!(starts(&actions), want, "row {i}");
            let obs = report(&spec, &seen, &mem, "192.0.2.1");
            assert_eq!(status::phase(&obs), phase, "row {i}");
            assert_eq!(obs.initialized, initialized, "row {i}");
        }
    }

    #[test]
    fn restart_back_off_doubles_and_shows_crash_loop_back_off() {
        let spec = spec_of(&app_pod("Always"));
        let t0 = Instant::now();
        let mut mem = Memory::default();
        let mut seq = 1;
        let mut crash_at = t0;
        let mut waits = Vec::new();
        // Each instance crashes at once; find when the next start comes, second by second.
        for _ in 0..4 {
            let obs = seen(vec![exited("app", seq, 1)]);
            let mut t = crash_at;
            loop {
                let actions = plan(&spec, &obs, &mut mem, t);
                if !starts(&actions).is_empty() {
                    started(&spec, &actions, &mut mem, t);
                    break;
                }
                let waiting = mem.tracks["app"].waiting.clone().unwrap();
                assert_eq!(waiting.0, "CrashLoopBackOff");
                t += Duration::from_secs(1);
            }
            waits.push((t - crash_at).as_secs());
            seq += 1;
            crash_at = t + Duration::from_millis(1);
        }
        assert_eq!(waits, vec![0, 10, 20, 40]);
        assert_eq!(mem.tracks["app"].restart_count, 4);
        // While waiting: the reason, the message, one BackOff event.
        let obs = seen(vec![exited("app", seq, 1)]);
        let first = plan(&spec, &obs, &mut mem, crash_at);
        let again = plan(&spec, &obs, &mut mem, crash_at + Duration::from_secs(5));
        assert_eq!(events(&first), vec!["BackOff: Back-off restarting failed container app in pod web".to_string()]);
        assert!(events(&again).is_empty());
        let st = status_of(&report(&spec, &obs, &mem, "192.0.2.1"));
        let c = &st["containerStatuses"][0];
        assert_eq!(c["state"]["waiting"]["reason"], "CrashLoopBackOff");
        assert_eq!(
            c["state"]["waiting"]["message"],
            "back-off 80s restarting failed container=app pod=web_default(u1)"
        );
        assert_eq!(c["lastState"]["terminated"]["exitCode"], 1);
        assert_eq!(c["restartCount"], 4);
        assert_eq!(st["phase"], "Running");
    }

    #[test]
    fn back_off_is_forgotten_after_ten_minutes_of_running() {
        let spec = spec_of(&app_pod("Always"));
        let now = Instant::now();
        // ran, back-off before: restarted at once?
        for (ran_secs, at_once) in [(5, false), (599, false), (601, true), (3600, true)] {
            let mut mem = Memory::default();
            mem.tracks.entry("app".into()).or_default().backoff.next = Duration::from_secs(80);
            let mut c = exited("app", 1, 1);
            let finished = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap()
                + chrono::Duration::seconds(ran_secs);
            c.finished_at = Some(finished.to_rfc3339());
            let actions = plan(&spec, &seen(vec![c]), &mut mem, now);
            assert_eq!(!starts(&actions).is_empty(), at_once, "ran {ran_secs}s");
        }
    }

    #[test]
    fn a_restart_keeps_the_instance_that_exited_and_prunes_older_ones() {
        let spec = spec_of(&app_pod("Always"));
        let actions =
            plan(&spec, &seen(vec![exited("app", 1, 1), exited("app", 2, 1)]), &mut Memory::default(), Instant::now());
        assert!(actions.contains(&Action::Start { name: "app".into(), restart: true, prune: Some("app-1".into()) }));
    }

    fn probed(probes: Value) -> PodSpec {
        let mut c = json!({"name": "app", "image": "busybox"});
        for (k, v) in probes.as_object().unwrap() {
            c[k] = v.clone();
        }
        spec_of(&pod(json!({"containers": [c], "terminationGracePeriodSeconds": 7})))
    }

    fn probe_kinds(actions: &[Action]) -> Vec<ProbeKind> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Probe { kind, .. } => Some(*kind),
                _ => None,
            })
            .collect()
    }

    fn fail(msg: &str) -> ProbeOutcome {
        ProbeOutcome::Failure(msg.into())
    }

    #[test]
    fn liveness_failures_kill_with_the_grace_and_the_container_restarts() {
        let spec = probed(
            json!({"livenessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1, "failureThreshold": 2}}),
        );
        let c = spec.container("app").unwrap();
        let t0 = Instant::now();
        let mut mem = Memory::default();
        mem.on_started(c, false, "app-1".into(), t0);
        let obs = seen(vec![running("app", 1)]);
        assert_eq!(probe_kinds(&plan(&spec, &obs, &mut mem, t0)), vec![ProbeKind::Liveness]);
        let first = mem.on_probe(c, ProbeKind::Liveness, "app-1", &fail("exit 1"), spec.grace, t0);
        assert_eq!(events(&first), vec!["Unhealthy: Liveness probe failed: exit 1".to_string()]);
        // Not due again within the period.
        assert!(probe_kinds(&plan(&spec, &obs, &mut mem, t0 + Duration::from_millis(500))).is_empty());
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(probe_kinds(&plan(&spec, &obs, &mut mem, t1)), vec![ProbeKind::Liveness]);
        let second = mem.on_probe(c, ProbeKind::Liveness, "app-1", &fail("exit 1"), spec.grace, t1);
        assert_eq!(
            events(&second),
            vec![
                "Unhealthy: Liveness probe failed: exit 1".to_string(),
                "Killing: Container app failed liveness probe, will be restarted".to_string()
            ]
        );
        assert!(second.contains(&Action::Kill { id: "app-1".into(), grace: Duration::from_secs(7) }));
        assert!(!mem.tracks["app"].ready);
        // Killed (SIGKILL after the grace: 137): restarted at once, the first time.
        let after = seen(vec![exited("app", 1, 137)]);
        assert_eq!(starts(&plan(&spec, &after, &mut mem, t1)), vec![("app".to_string(), true)]);
    }

    #[test]
    fn readiness_decides_ready_without_restarts() {
        let spec = probed(
            json!({"readinessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 1, "failureThreshold": 1, "successThreshold": 2}}),
        );
        let c = spec.container("app").unwrap();
        let t0 = Instant::now();
        let obs = seen(vec![running("app", 1)]);
        // outcome → ready after it
        let table = [
            (ProbeOutcome::Success, false),
            (ProbeOutcome::Success, true),
            (fail("refused"), false),
            (ProbeOutcome::Success, false),
            (ProbeOutcome::Success, true),
        ];
        let mut mem = Memory::default();
        mem.on_started(c, false, "app-1".into(), t0);
        for (i, (outcome, ready)) in table.into_iter().enumerate() {
            let t = t0 + Duration::from_secs(i as u64);
            assert_eq!(probe_kinds(&plan(&spec, &obs, &mut mem, t)), vec![ProbeKind::Readiness], "step {i}");
            let then = mem.on_probe(c, ProbeKind::Readiness, "app-1", &outcome, spec.grace, t);
            assert!(!then.iter().any(|a| matches!(a, Action::Kill { .. })), "step {i}");
            assert_eq!(mem.tracks["app"].ready, ready, "step {i}");
            let st = status_of(&report(&spec, &obs, &mem, "192.0.2.1"));
            let cond = st["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").unwrap().clone();
            assert_eq!(cond["status"], if ready { "True" } else { "False" }, "step {i}");
            assert_eq!(st["phase"], "Running");
        }
    }

    #[test]
    fn a_container_without_readiness_probe_is_ready_once_running() {
        let spec = probed(json!({}));
        let mut mem = Memory::default();
        let obs = seen(vec![running("app", 1)]);
        plan(&spec, &obs, &mut mem, Instant::now());
        assert!(mem.tracks["app"].ready && mem.tracks["app"].started);
    }

    #[test]
    fn the_startup_probe_gates_liveness_and_readiness() {
        let spec = probed(json!({
            "startupProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1, "failureThreshold": 3},
            "livenessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1},
            "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1},
        }));
        let c = spec.container("app").unwrap();
        let t0 = Instant::now();
        let obs = seen(vec![running("app", 1)]);
        let mut mem = Memory::default();
        mem.on_started(c, false, "app-1".into(), t0);
        assert_eq!(probe_kinds(&plan(&spec, &obs, &mut mem, t0)), vec![ProbeKind::Startup]);
        mem.on_probe(c, ProbeKind::Startup, "app-1", &fail("not yet"), spec.grace, t0);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(probe_kinds(&plan(&spec, &obs, &mut mem, t1)), vec![ProbeKind::Startup]);
        assert!(!mem.tracks["app"].started && !mem.tracks["app"].ready);
        mem.on_probe(c, ProbeKind::Startup, "app-1", &ProbeOutcome::Success, spec.grace, t1);
        assert!(mem.tracks["app"].started);
        let t2 = t0 + Duration::from_secs(2);
        assert_eq!(probe_kinds(&plan(&spec, &obs, &mut mem, t2)), vec![ProbeKind::Readiness, ProbeKind::Liveness]);
    }

    #[test]
    fn a_failing_startup_probe_kills_the_container() {
        let spec = probed(
            json!({"startupProbe": {"exec": {"command": ["false"]}, "periodSeconds": 1, "failureThreshold": 2}}),
        );
        let c = spec.container("app").unwrap();
        let t0 = Instant::now();
        let mut mem = Memory::default();
        mem.on_started(c, false, "app-1".into(), t0);
        assert!(mem.on_probe(c, ProbeKind::Startup, "app-1", &fail("no"), spec.grace, t0).len() == 1);
        let then = mem.on_probe(c, ProbeKind::Startup, "app-1", &fail("no"), spec.grace, t0);
        assert!(events(&then).contains(&"Killing: Container app failed startup probe, will be restarted".to_string()));
        assert!(then.contains(&Action::Kill { id: "app-1".into(), grace: Duration::from_secs(7) }));
    }

    #[test]
    fn probes_resume_on_instances_found_after_a_kubelet_restart() {
        let spec = probed(json!({"livenessProbe": {"exec": {"command": ["true"]}}}));
        let mut mem = Memory::default();
        mem.seed(
            &serde_json::from_value(json!({"status": {"containerStatuses": [
                {"name": "app", "containerID": "clusterd://app-1", "restartCount": 3, "ready": true, "started": true}
            ]}}))
            .expect("a pod"),
        );
        let actions = plan(&spec, &seen(vec![running("app", 1)]), &mut mem, Instant::now());
        assert_eq!(probe_kinds(&actions), vec![ProbeKind::Liveness]);
        assert_eq!(mem.tracks["app"].restart_count, 3);
    }

    #[test]
    fn deletion_stops_the_pod_with_its_grace_then_removes_the_object() {
        // deletionGracePeriodSeconds, terminationGracePeriodSeconds → grace
        for (deletion, termination, grace) in
            [(Some(5), Some(60), 5), (None, Some(60), 60), (None, None, 30), (Some(0), None, 0)]
        {
            let mut p = app_pod("Always");
            p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
            if let Some(d) = deletion {
                p["metadata"]["deletionGracePeriodSeconds"] = json!(d);
            }
            if let Some(t) = termination {
                p["spec"]["terminationGracePeriodSeconds"] = json!(t);
            }
            let actions = plan(&spec_of(&p), &seen(vec![running("app", 1)]), &mut Memory::default(), Instant::now());
            assert_eq!(
                actions,
                vec![
                    Action::event(EventKind::Normal, "Killing", "Stopping container app".into()),
                    Action::StopPod { uid: "u1".into(), grace: Duration::from_secs(grace) },
                    Action::RemovePod,
                ]
            );
        }
    }

    #[test]
    fn a_finished_pod_is_left_alone() {
        let mut p = app_pod("Never");
        p["status"] = json!({"phase": "Succeeded"});
        let spec = spec_of(&p);
        let mut mem = Memory::default();
        assert_eq!(plan(&spec, &seen(vec![exited("app", 1, 0)]), &mut mem, Instant::now()), vec![Action::Report]);
        // Nothing to report from: the stored status stays.
        assert_eq!(plan(&spec, &Observation::default(), &mut mem, Instant::now()), vec![]);
        // A pod that restarts always is never finished.
        let mut p = app_pod("Always");
        p["status"] = json!({"phase": "Succeeded"});
        let actions = plan(&spec_of(&p), &seen(vec![exited("app", 1, 0)]), &mut mem, Instant::now());
        assert_eq!(starts(&actions), vec![("app".to_string(), true)]);
    }

    #[test]
    fn leftovers_and_dead_sandboxes_are_cleaned_up() {
        let spec = spec_of(&app_pod("Always"));
        let now = Instant::now();
        let left = seen(vec![inst("app", 1, ContainerState::Created, None)]);
        let actions = plan(&spec, &left, &mut Memory::default(), now);
        assert_eq!(
            actions,
            vec![
                Action::RemoveContainer { id: "app-1".into() },
                Action::Start { name: "app".into(), restart: false, prune: None },
                Action::Report
            ]
        );
        let mut dead = seen(vec![running("app", 1)]);
        dead.sandbox.as_mut().unwrap().ready = false;
        let actions = plan(&spec, &dead, &mut Memory::default(), now);
        assert_eq!(actions[0], Action::RemoveSandbox { id: "s1".into() });
        assert_eq!(
            events(&actions),
            vec!["SandboxChanged: Pod sandbox changed, it will be killed and re-created.".to_string()]
        );
        assert_eq!(actions[2], Action::CreateSandbox);
        assert_eq!(starts(&actions), vec![("app".to_string(), false)]);
    }

    #[test]
    fn a_mount_error_holds_the_containers_and_is_told_once() {
        let spec = spec_of(&app_pod("Always"));
        let mut obs = seen(vec![]);
        obs.mount_error = Some("secret \"db\" not found".into());
        let mut mem = Memory::default();
        let first = plan(&spec, &obs, &mut mem, Instant::now());
        assert_eq!(
            first,
            vec![Action::event(EventKind::Warning, "FailedMount", "secret \"db\" not found".into()), Action::Report]
        );
        assert_eq!(plan(&spec, &obs, &mut mem, Instant::now()), vec![Action::Report]);
        let st = status_of(&report(&spec, &obs, &mem, "192.0.2.1"));
        assert_eq!(st["containerStatuses"][0]["state"]["waiting"]["reason"], "ContainerCreating");
        obs.mount_error = None;
        assert_eq!(starts(&plan(&spec, &obs, &mut mem, Instant::now())), vec![("app".to_string(), false)]);
    }

    #[test]
    fn image_pull_policy() {
        let c = |image: &str, policy: Option<&str>| {
            let mut raw = json!({"name": "app", "image": image});
            if let Some(p) = policy {
                raw["imagePullPolicy"] = json!(p);
            }
            ContainerSpec::of(&serde_json::from_value(raw).expect("a container"))
        };
        // image, policy, present → pull?
        let table = [
            ("busybox:1", None, true, Ok(false)),
            ("busybox:1", None, false, Ok(true)),
            ("busybox:latest", None, true, Ok(true)),
            ("busybox:1", Some("Always"), true, Ok(true)),
            ("busybox:1", Some("IfNotPresent"), false, Ok(true)),
            ("busybox:1", Some("Never"), true, Ok(false)),
            ("busybox:1", Some("Never"), false, Err("ErrImageNeverPull")),
        ];
        for (image, policy, present, want) in table {
            let got = should_pull(&c(image, policy), present).map_err(|e| e.reason());
            assert_eq!(got, want, "{image} {policy:?} present={present}");
        }
    }

    #[test]
    fn a_failed_pull_backs_off_as_image_pull_back_off() {
        let spec = spec_of(&app_pod("Always"));
        let t0 = Instant::now();
        let mut mem = Memory::default();
        let obs = seen(vec![]);
        assert_eq!(starts(&plan(&spec, &obs, &mut mem, t0)).len(), 1);
        let then = mem.on_start_failed("app", &StartError::ImagePull("Failed to pull".into()), t0);
        assert!(then.is_empty(), "the pull failure was told by the pull");
        assert_eq!(mem.tracks["app"].waiting.as_ref().unwrap().0, "ErrImagePull");
        let waiting = plan(&spec, &obs, &mut mem, t0 + Duration::from_millis(500));
        assert!(starts(&waiting).is_empty());
        assert_eq!(events(&waiting), vec!["BackOff: Back-off pulling image \"busybox\" app in pod web".to_string()]);
        assert_eq!(mem.tracks["app"].waiting.as_ref().unwrap().0, "ImagePullBackOff");
        assert_eq!(starts(&plan(&spec, &obs, &mut mem, t0 + Duration::from_secs(1))).len(), 1);
        // A config error is told and retried each second under its own reason.
        let then = mem.on_start_failed("app", &StartError::Config("secret \"db\" not found".into()), t0);
        assert_eq!(events(&then), vec!["Failed: Error: secret \"db\" not found".to_string()]);
        assert!(plan(&spec, &obs, &mut mem, t0 + Duration::from_millis(500))
            .iter()
            .all(|a| !matches!(a, Action::Start { .. } | Action::Event(_))));
        assert_eq!(mem.tracks["app"].waiting.as_ref().unwrap().0, "CreateContainerConfigError");
    }

    #[test]
    fn the_worker_wakes_for_the_soonest_retry_or_probe_within_a_second() {
        let t0 = Instant::now();
        let mut mem = Memory::default();
        assert_eq!(mem.next_wakeup(t0), t0 + Duration::from_secs(1));
        mem.tracks.entry("a".into()).or_default().retry_at = Some(t0 + Duration::from_millis(300));
        assert_eq!(mem.next_wakeup(t0), t0 + Duration::from_millis(300));
        mem.tracks.entry("b".into()).or_default().retry_at = Some(t0 - Duration::from_secs(5));
        assert_eq!(mem.next_wakeup(t0), t0 + Duration::from_millis(20));
    }
}
