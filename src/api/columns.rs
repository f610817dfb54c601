//! The columns `kubectl get` shows for each kind, as Kubernetes' API server
//! declares them (name, type, `-o wide` priority), and the cells of one
//! object. One definition serves two layers: the REST API's Tables (kubectl
//! asks the server for them and prints what it gets) and `clusterd get`,
//! so the two cannot drift apart.
//!
//! The cells are always the full set, wide columns included (the API server
//! does the same: a client drops the `priority: 1` columns unless it was
//! asked for `-o wide`). Objects are read through their `k8s-openapi` type;
//! an object its type refuses shows its name and age only.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};
use k8s_openapi::api::{
    apps::v1 as apps, batch::v1 as batch, coordination::v1 as coord, core::v1 as core, discovery::v1 as discovery,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, MicroTime, Time};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::objects::Kind;

/// What a column holds, as a Table's `columnDefinitions[].type` says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnType {
    /// Text.
    String,
    /// A whole number.
    Integer,
    /// A point in time (RFC 3339).
    Date,
}

impl ColumnType {
    /// The OpenAPI type name Tables carry.
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnType::String => "string",
            ColumnType::Integer => "integer",
            ColumnType::Date => "date",
        }
    }
}

/// One column of a kind's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Column {
    /// Kubernetes' name for it (`Cluster-IP`); kubectl prints it upper-cased.
    pub name: &'static str,
    /// What its cells hold.
    pub ty: ColumnType,
    /// `name` for the column holding the object's name, else empty.
    pub format: &'static str,
    /// A human description.
    pub description: &'static str,
    /// 0: always shown; 1: shown with `-o wide` only.
    pub priority: u8,
}

impl Column {
    /// The header kubectl prints for it.
    pub fn header(&self) -> String {
        self.name.to_uppercase()
    }
}

/// One cell: text, or a number where Kubernetes sends a number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cell {
    /// Text.
    Text(String),
    /// A whole number.
    Integer(i64),
}

impl Cell {
    /// The cell as it goes into a Table row.
    pub fn to_json(&self) -> Value {
        match self {
            Cell::Text(s) => Value::String(s.clone()),
            Cell::Integer(n) => Value::from(*n),
        }
    }
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cell::Text(s) => f.write_str(s),
            Cell::Integer(n) => write!(f, "{n}"),
        }
    }
}

impl From<String> for Cell {
    fn from(s: String) -> Self {
        Cell::Text(s)
    }
}

impl From<&str> for Cell {
    fn from(s: &str) -> Self {
        Cell::Text(s.to_string())
    }
}

impl From<i64> for Cell {
    fn from(n: i64) -> Self {
        Cell::Integer(n)
    }
}

impl From<i32> for Cell {
    fn from(n: i32) -> Self {
        Cell::Integer(n.into())
    }
}

impl From<usize> for Cell {
    fn from(n: usize) -> Self {
        Cell::Integer(i64::try_from(n).unwrap_or(i64::MAX))
    }
}

const fn col(name: &'static str, ty: ColumnType, description: &'static str) -> Column {
    Column { name, ty, format: "", description, priority: 0 }
}

const fn text(name: &'static str, description: &'static str) -> Column {
    col(name, ColumnType::String, description)
}

const fn int(name: &'static str, description: &'static str) -> Column {
    col(name, ColumnType::Integer, description)
}

const fn wide(name: &'static str, description: &'static str) -> Column {
    Column { name, ty: ColumnType::String, format: "", description, priority: 1 }
}

const NAME: Column = Column {
    name: "Name",
    ty: ColumnType::String,
    format: "name",
    description: "The object's name, unique among objects of its kind in its namespace.",
    priority: 0,
};
const AGE: Column = text("Age", "How long ago the object was created.");
const CONTAINERS: Column = wide("Containers", "The names of the containers in the pod template.");
const IMAGES: Column = wide("Images", "The images of the containers in the pod template.");
const SELECTOR: Column = wide("Selector", "The label selector choosing the pods it manages.");

static POD: &[Column] = &[
    NAME,
    text("Ready", "Ready containers out of all the pod's containers."),
    text("Status", "The pod's state in one word: its phase, or why a container is not running."),
    text("Restarts", "How often the pod's containers restarted, and when last."),
    AGE,
    wide("IP", "The pod's address."),
    wide("Node", "The node the pod is bound to."),
    wide("Nominated Node", "The node the scheduler preempted pods on for this pod."),
    wide("Readiness Gates", "Readiness gates met out of the pod's readiness gates."),
];

static NODE: &[Column] = &[
    NAME,
    text("Status", "Whether the node is ready, and whether it takes new pods."),
    text("Roles", "The roles its node-role labels give the node."),
    AGE,
    text("Version", "The version its kubelet reports."),
    wide("Internal-IP", "The node's first internal address."),
    wide("External-IP", "The node's first external address."),
    wide("OS-Image", "The operating system the node reports."),
    wide("Kernel-Version", "The kernel the node reports."),
    wide("Container-Runtime", "The container runtime the node reports."),
];

static NAMESPACE: &[Column] = &[NAME, text("Status", "Whether the namespace is active or being deleted."), AGE];

static DEPLOYMENT: &[Column] = &[
    NAME,
    text("Ready", "Ready pods out of the wanted replicas."),
    text("Up-to-date", "Pods running the current template."),
    text("Available", "Pods available to serve."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

static REPLICA_SET: &[Column] = &[
    NAME,
    int("Desired", "The replicas wanted."),
    int("Current", "The replicas that exist."),
    int("Ready", "The replicas that are ready."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

static DAEMON_SET: &[Column] = &[
    NAME,
    int("Desired", "Nodes that should run the daemon pod."),
    int("Current", "Nodes running a daemon pod."),
    int("Ready", "Nodes whose daemon pod is ready."),
    int("Up-to-date", "Nodes running the current template."),
    int("Available", "Nodes whose daemon pod is available."),
    text("Node Selector", "The node selector of the pod template."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

static STATEFUL_SET: &[Column] =
    &[NAME, text("Ready", "Ready pods out of the wanted replicas."), AGE, CONTAINERS, IMAGES];

static JOB: &[Column] = &[
    NAME,
    text("Status", "Whether the job runs, completed, failed or is suspended."),
    text("Completions", "Pods that succeeded out of the completions wanted."),
    text("Duration", "How long the job ran, or has been running."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

static SERVICE: &[Column] = &[
    NAME,
    text("Type", "How the service is exposed."),
    text("Cluster-IP", "The service's virtual address in the cluster."),
    text("External-IP", "Addresses the service is reachable at from outside."),
    text("Port(s)", "The service's ports, with their node ports."),
    AGE,
    wide("Selector", "The labels of the pods the service sends traffic to."),
];

static ENDPOINTS: &[Column] = &[NAME, text("Endpoints", "The addresses and ports behind the service."), AGE];

static ENDPOINT_SLICE: &[Column] = &[
    NAME,
    text("AddressType", "The kind of addresses in the slice."),
    text("Ports", "The ports of the slice."),
    text("Endpoints", "The addresses in the slice."),
    AGE,
];

static CONFIG_MAP: &[Column] = &[NAME, text("Data", "The number of keys."), AGE];

static SECRET: &[Column] = &[NAME, text("Type", "The secret's type."), text("Data", "The number of keys."), AGE];

static SERVICE_ACCOUNT: &[Column] = &[NAME, text("Secrets", "The number of secrets it references."), AGE];

static LEASE: &[Column] = &[NAME, text("Holder", "Who holds the lease."), AGE];

static EVENT: &[Column] = &[
    text("Last Seen", "How long ago the event last happened."),
    text("Type", "Normal or Warning."),
    text("Reason", "Why the event happened, in one word."),
    text("Object", "The object the event is about."),
    wide("Subobject", "The part of the object the event is about."),
    wide("Source", "The component that reported the event."),
    text("Message", "What happened."),
    wide("First Seen", "How long ago the event first happened."),
    wide("Count", "How often the event happened."),
    Column { priority: 1, ..NAME },
];

static DEFAULT: &[Column] = &[NAME, AGE];

/// The columns of a kind's table (NAME and AGE for a kind without its own).
pub fn columns(kind: &Kind) -> &'static [Column] {
    match kind.kind {
        "Pod" => POD,
        "Node" => NODE,
        "Namespace" => NAMESPACE,
        "Deployment" => DEPLOYMENT,
        "ReplicaSet" => REPLICA_SET,
        "DaemonSet" => DAEMON_SET,
        "StatefulSet" => STATEFUL_SET,
        "Job" => JOB,
        "Service" => SERVICE,
        "Endpoints" => ENDPOINTS,
        "EndpointSlice" => ENDPOINT_SLICE,
        "ConfigMap" => CONFIG_MAP,
        "Secret" => SECRET,
        "ServiceAccount" => SERVICE_ACCOUNT,
        "Lease" => LEASE,
        "Event" => EVENT,
        _ => DEFAULT,
    }
}

/// The cells of one object, one per column of [`columns`], wide ones
/// included.
pub fn cells(kind: &Kind, raw: &Value, now: DateTime<Utc>) -> Vec<Cell> {
    let defs = columns(kind);
    let printed = match kind.kind {
        "Pod" => typed(raw).map(|o| pod(&o, now)),
        "Node" => typed(raw).map(|o| node(&o, now)),
        "Namespace" => typed(raw).map(|o| namespace(&o, now)),
        "Deployment" => typed(raw).map(|o| deployment(&o, now)),
        "ReplicaSet" => typed(raw).map(|o| replica_set(&o, now)),
        "DaemonSet" => typed(raw).map(|o| daemon_set(&o, now)),
        "StatefulSet" => typed(raw).map(|o| stateful_set(&o, now)),
        "Job" => typed(raw).map(|o| job(&o, now)),
        "Service" => typed(raw).map(|o| service(&o, now)),
        "Endpoints" => typed(raw).map(|o| endpoints(&o, now)),
        "EndpointSlice" => typed(raw).map(|o| endpoint_slice(&o, now)),
        "ConfigMap" => typed(raw).map(|o| config_map(&o, now)),
        "Secret" => typed(raw).map(|o| secret(&o, now)),
        "ServiceAccount" => typed(raw).map(|o| service_account(&o, now)),
        "Lease" => typed(raw).map(|o| lease(&o, now)),
        "Event" => typed(raw).map(|o| event(&o, now)),
        _ => None,
    };
    let mut out = printed.unwrap_or_else(|| name_and_age(defs, raw, now));
    out.resize(defs.len(), Cell::Text(String::new()));
    out
}

/// Whether a row is for something finished (a pod that succeeded or
/// failed): Tables mark such rows with a `Completed` condition.
pub fn completed(kind: &Kind, raw: &Value) -> Option<(&'static str, &'static str)> {
    if kind.kind != "Pod" {
        return None;
    }
    match raw.pointer("/status/phase").and_then(Value::as_str) {
        Some("Succeeded") => Some(("Succeeded", "The pod has completed successfully.")),
        Some("Failed") => Some(("Failed", "The pod failed.")),
        _ => None,
    }
}

/// The column headers `clusterd get` prints (the wide ones with `-o wide`).
pub fn headers(kind: &Kind, wide: bool) -> Vec<String> {
    columns(kind).iter().filter(|c| wide || c.priority == 0).map(Column::header).collect()
}

/// One row as `clusterd get` prints it: the cells of [`headers`].
pub fn row(kind: &Kind, raw: &Value, wide: bool, now: DateTime<Utc>) -> Vec<String> {
    columns(kind)
        .iter()
        .zip(cells(kind, raw, now))
        .filter(|(c, _)| wide || c.priority == 0)
        .map(|(_, cell)| cell.to_string())
        .collect()
}

/// Time since `created` (RFC 3339), as kubectl prints ages.
pub fn age(created: &str, now: DateTime<Utc>) -> String {
    match DateTime::parse_from_rfc3339(created) {
        Ok(t) => human_duration(now - t.with_timezone(&Utc)),
        Err(_) => "<unknown>".into(),
    }
}

/// A duration as Kubernetes shows one to people: two or three significant
/// figures (`45s`, `3m20s`, `25m`, `4h10m`, `20h`, `3d5h`, `30d`, `2y40d`).
/// A little negative (clocks a second apart) is `0s`; more is `<invalid>`.
pub fn human_duration(d: TimeDelta) -> String {
    let seconds = d.num_seconds();
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        return with_rest(minutes, "m", seconds % 60, "s");
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        return with_rest(hours, "h", minutes % 60, "m");
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        return with_rest(days, "d", hours % 24, "h");
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if hours < 24 * 365 * 8 {
        return with_rest(years, "y", days % 365, "d");
    }
    format!("{years}y")
}

fn with_rest(n: i64, unit: &str, rest: i64, rest_unit: &str) -> String {
    if rest == 0 {
        format!("{n}{unit}")
    } else {
        format!("{n}{unit}{rest}{rest_unit}")
    }
}

/// The typed form of `raw`; items of a list may leave out their kind, which
/// the types accept.
fn typed<T: DeserializeOwned>(raw: &Value) -> Option<T> {
    T::deserialize(raw).ok()
}

/// The cells of an object without a printer of its own, or one its type
/// refuses: its name and age where those columns are.
fn name_and_age(defs: &[Column], raw: &Value, now: DateTime<Utc>) -> Vec<Cell> {
    let meta = |f: &str| raw.pointer(&format!("/metadata/{f}")).and_then(Value::as_str).unwrap_or("");
    defs.iter()
        .map(|c| match c.name {
            "Name" => meta("name").into(),
            "Age" => age(meta("creationTimestamp"), now).into(),
            _ => Cell::Text(String::new()),
        })
        .collect()
}

fn time(t: &Time) -> DateTime<Utc> {
    crate::util::chrono_of(t)
}

fn micro_time(t: &MicroTime) -> DateTime<Utc> {
    DateTime::from_timestamp(t.0.as_second(), t.0.subsec_nanosecond().max(0) as u32).unwrap_or_default()
}

/// Time since `t`, `<unknown>` when there is none.
fn since(t: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    t.map_or_else(|| "<unknown>".into(), |t| human_duration(now - t))
}

fn created(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, now: DateTime<Utc>) -> Cell {
    since(meta.creation_timestamp.as_ref().map(time), now).into()
}

fn name(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Cell {
    meta.name.clone().unwrap_or_default().into()
}

fn or_none(s: impl Into<String>) -> Cell {
    let s = s.into();
    if s.is_empty() {
        "<none>".into()
    } else {
        s.into()
    }
}

/// `a=1,b=2`, or `<none>`.
fn format_labels(labels: Option<&BTreeMap<String, String>>) -> String {
    let l: Vec<String> = labels.into_iter().flatten().map(|(k, v)| format!("{k}={v}")).collect();
    if l.is_empty() {
        "<none>".into()
    } else {
        l.join(",")
    }
}

/// A label selector as Kubernetes writes one (`app=web,tier in (a,b),!old`),
/// its requirements ordered by key; empty when it selects everything (or,
/// missing, nothing).
fn selector_string(sel: Option<&LabelSelector>) -> String {
    let Some(sel) = sel else { return String::new() };
    let mut reqs: Vec<(&str, String)> =
        sel.match_labels.iter().flatten().map(|(k, v)| (k.as_str(), format!("{k}={v}"))).collect();
    for e in sel.match_expressions.iter().flatten() {
        let mut values: Vec<&str> = e.values.iter().flatten().map(String::as_str).collect();
        values.sort_unstable();
        let k = &e.key;
        let r = match e.operator.as_str() {
            "In" => format!("{k} in ({})", values.join(",")),
            "NotIn" => format!("{k} notin ({})", values.join(",")),
            "Exists" => k.clone(),
            "DoesNotExist" => format!("!{k}"),
            _ => return "<error>".into(),
        };
        reqs.push((k.as_str(), r));
    }
    reqs.sort_by(|a, b| a.0.cmp(b.0));
    reqs.into_iter().map(|(_, r)| r).collect::<Vec<_>>().join(",")
}

/// [`selector_string`], `<none>` when empty.
fn format_selector(sel: Option<&LabelSelector>) -> Cell {
    or_none(selector_string(sel))
}

/// The CONTAINERS and IMAGES cells of a pod template.
fn containers_and_images(template: Option<&core::PodTemplateSpec>) -> [Cell; 2] {
    let containers = template.and_then(|t| t.spec.as_ref()).map(|s| s.containers.as_slice()).unwrap_or_default();
    let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
    let images: Vec<&str> = containers.iter().map(|c| c.image.as_deref().unwrap_or("")).collect();
    [names.join(",").into(), images.join(",").into()]
}

fn pod(p: &core::Pod, now: DateTime<Utc>) -> Vec<Cell> {
    let (no_spec, no_status) = (core::PodSpec::default(), core::PodStatus::default());
    let spec = p.spec.as_ref().unwrap_or(&no_spec);
    let status = p.status.as_ref().unwrap_or(&no_status);
    let conditions = status.conditions.as_deref().unwrap_or_default();
    let condition_true = |ty: &str| conditions.iter().any(|c| c.type_ == ty && c.status == "True");
    let phase = status.phase.as_deref().unwrap_or_default();
    let mut reason = status.reason.clone().filter(|r| !r.is_empty()).unwrap_or_else(|| phase.to_string());
    if conditions.iter().any(|c| c.type_ == "PodScheduled" && c.reason.as_deref() == Some("SchedulingGated")) {
        reason = "SchedulingGated".into();
    }

    // Init containers that keep running beside the others (sidecars) count
    // among the pod's containers.
    let init_containers: HashMap<&str, &core::Container> =
        spec.init_containers.iter().flatten().map(|c| (c.name.as_str(), c)).collect();
    let sidecar = |name: &str| init_containers.get(name).and_then(|c| c.restart_policy.as_deref()) == Some("Always");
    let total = spec.containers.len() + init_containers.keys().filter(|n| sidecar(n)).count();
    let mut ready = 0;
    let (mut restarts, mut sidecar_restarts) = (0i64, 0i64);
    let (mut last_restart, mut sidecar_last_restart) = (None, None);
    let finished = |c: &core::ContainerStatus| {
        c.last_state.as_ref().and_then(|s| s.terminated.as_ref()).and_then(|t| t.finished_at.as_ref()).map(time)
    };

    let mut initializing = false;
    let init_statuses = status.init_container_statuses.as_deref().unwrap_or_default();
    for (i, c) in init_statuses.iter().enumerate() {
        restarts += i64::from(c.restart_count);
        last_restart = last_restart.max(finished(c));
        if sidecar(&c.name) {
            sidecar_restarts += i64::from(c.restart_count);
            sidecar_last_restart = sidecar_last_restart.max(finished(c));
        }
        let state = c.state.clone().unwrap_or_default();
        match (&state.terminated, &state.waiting) {
            (Some(t), _) if t.exit_code == 0 => continue,
            _ if sidecar(&c.name) && c.started == Some(true) => {
                ready += usize::from(c.ready);
                continue;
            }
            (Some(t), _) => {
                reason = match (t.reason.as_deref(), t.signal) {
                    (Some(r), _) if !r.is_empty() => format!("Init:{r}"),
                    (_, Some(sig)) if sig != 0 => format!("Init:Signal:{sig}"),
                    _ => format!("Init:ExitCode:{}", t.exit_code),
                };
            }
            (None, Some(w)) if w.reason.as_deref().is_some_and(|r| !r.is_empty() && r != "PodInitializing") => {
                reason = format!("Init:{}", w.reason.as_deref().unwrap_or_default());
            }
            _ => reason = format!("Init:{i}/{}", init_containers.len()),
        }
        initializing = true;
        break;
    }

    if !initializing || condition_true("Initialized") {
        restarts = sidecar_restarts;
        last_restart = sidecar_last_restart;
        let mut running = false;
        // The first container's state decides, so walk them backwards.
        for c in status.container_statuses.iter().flatten().rev() {
            restarts += i64::from(c.restart_count);
            last_restart = last_restart.max(finished(c));
            let state = c.state.as_ref();
            let waiting =
                state.and_then(|s| s.waiting.as_ref()).and_then(|w| w.reason.clone()).filter(|r| !r.is_empty());
            let terminated = state.and_then(|s| s.terminated.as_ref());
            if let Some(w) = waiting {
                reason = w;
            } else if let Some(t) = terminated {
                reason = match (t.reason.as_deref(), t.signal) {
                    (Some(r), _) if !r.is_empty() => r.to_string(),
                    (_, Some(sig)) if sig != 0 => format!("Signal:{sig}"),
                    _ => format!("ExitCode:{}", t.exit_code),
                };
            } else if c.ready && state.is_none_or(|s| s.running.is_some()) {
                running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && running {
            reason = if condition_true("Ready") { "Running" } else { "NotReady" }.into();
        }
    }

    if p.metadata.deletion_timestamp.is_some() {
        if status.reason.as_deref() == Some("NodeLost") {
            reason = "Unknown".into();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".into();
        }
    }

    let restarts = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", human_duration(now - t)),
        _ => restarts.to_string(),
    };
    let ip = status
        .pod_ips
        .iter()
        .flatten()
        .next()
        .map(|i| i.ip.clone())
        .or_else(|| status.pod_ip.clone())
        .unwrap_or_default();
    let gates = spec.readiness_gates.as_deref().unwrap_or_default();
    let gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let met = gates
            .iter()
            .filter(|g| conditions.iter().find(|c| c.type_ == g.condition_type).is_some_and(|c| c.status == "True"))
            .count();
        format!("{met}/{}", gates.len())
    };
    vec![
        name(&p.metadata),
        format!("{ready}/{total}").into(),
        reason.into(),
        restarts.into(),
        created(&p.metadata, now),
        or_none(ip),
        or_none(spec.node_name.clone().unwrap_or_default()),
        or_none(status.nominated_node_name.clone().unwrap_or_default()),
        gates.into(),
    ]
}

fn node(n: &core::Node, now: DateTime<Utc>) -> Vec<Cell> {
    let no_status = core::NodeStatus::default();
    let status = n.status.as_ref().unwrap_or(&no_status);
    let ready = status.conditions.iter().flatten().find(|c| c.type_ == "Ready");
    let mut state = vec![match ready {
        Some(c) if c.status == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if n.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        state.push("SchedulingDisabled");
    }
    let roles: BTreeSet<&str> = n
        .metadata
        .labels
        .iter()
        .flatten()
        .filter_map(|(k, v)| match k.strip_prefix("node-role.kubernetes.io/") {
            Some(role) if !role.is_empty() => Some(role),
            _ if k == "kubernetes.io/role" && !v.is_empty() => Some(v.as_str()),
            _ => None,
        })
        .collect();
    let address = |ty: &str| {
        let a = status.addresses.iter().flatten().find(|a| a.type_ == ty).map(|a| a.address.clone());
        or_none(a.unwrap_or_default())
    };
    let info = status.node_info.clone().unwrap_or_default();
    let known = |s: String| if s.is_empty() { "<unknown>".to_string() } else { s };
    vec![
        name(&n.metadata),
        state.join(",").into(),
        or_none(roles.into_iter().collect::<Vec<_>>().join(",")),
        created(&n.metadata, now),
        info.kubelet_version.into(),
        address("InternalIP"),
        address("ExternalIP"),
        known(info.os_image).into(),
        known(info.kernel_version).into(),
        known(info.container_runtime_version).into(),
    ]
}

fn namespace(ns: &core::Namespace, now: DateTime<Utc>) -> Vec<Cell> {
    let phase = ns.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
    vec![name(&ns.metadata), phase.into(), created(&ns.metadata, now)]
}

fn deployment(d: &apps::Deployment, now: DateTime<Utc>) -> Vec<Cell> {
    let spec = d.spec.as_ref();
    let status = d.status.clone().unwrap_or_default();
    let wanted = spec.and_then(|s| s.replicas).unwrap_or(1);
    let [containers, images] = containers_and_images(spec.map(|s| &s.template));
    vec![
        name(&d.metadata),
        format!("{}/{wanted}", status.ready_replicas.unwrap_or(0)).into(),
        status.updated_replicas.unwrap_or(0).into(),
        status.available_replicas.unwrap_or(0).into(),
        created(&d.metadata, now),
        containers,
        images,
        selector_string(spec.map(|s| &s.selector)).into(),
    ]
}

fn replica_set(rs: &apps::ReplicaSet, now: DateTime<Utc>) -> Vec<Cell> {
    let spec = rs.spec.as_ref();
    let status = rs.status.clone().unwrap_or_default();
    let [containers, images] = containers_and_images(spec.and_then(|s| s.template.as_ref()));
    vec![
        name(&rs.metadata),
        spec.and_then(|s| s.replicas).unwrap_or(1).into(),
        status.replicas.into(),
        status.ready_replicas.unwrap_or(0).into(),
        created(&rs.metadata, now),
        containers,
        images,
        format_selector(spec.map(|s| &s.selector)),
    ]
}

fn daemon_set(ds: &apps::DaemonSet, now: DateTime<Utc>) -> Vec<Cell> {
    let spec = ds.spec.as_ref();
    let s = ds.status.clone().unwrap_or_default();
    let template = spec.map(|s| &s.template);
    let node_selector = template.and_then(|t| t.spec.as_ref()).and_then(|s| s.node_selector.as_ref());
    let [containers, images] = containers_and_images(template);
    vec![
        name(&ds.metadata),
        s.desired_number_scheduled.into(),
        s.current_number_scheduled.into(),
        s.number_ready.into(),
        s.updated_number_scheduled.unwrap_or(0).into(),
        s.number_available.unwrap_or(0).into(),
        format_labels(node_selector).into(),
        created(&ds.metadata, now),
        containers,
        images,
        format_selector(spec.map(|s| &s.selector)),
    ]
}

fn stateful_set(sts: &apps::StatefulSet, now: DateTime<Utc>) -> Vec<Cell> {
    let spec = sts.spec.as_ref();
    let ready = sts.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0);
    let wanted = spec.and_then(|s| s.replicas).unwrap_or(1);
    let [containers, images] = containers_and_images(spec.map(|s| &s.template));
    vec![name(&sts.metadata), format!("{ready}/{wanted}").into(), created(&sts.metadata, now), containers, images]
}

fn job(job: &batch::Job, now: DateTime<Utc>) -> Vec<Cell> {
    let spec = job.spec.as_ref();
    let status = job.status.clone().unwrap_or_default();
    let succeeded = status.succeeded.unwrap_or(0);
    let completions = match (spec.and_then(|s| s.completions), spec.and_then(|s| s.parallelism).unwrap_or(0)) {
        (Some(c), _) => format!("{succeeded}/{c}"),
        (None, p) if p > 1 => format!("{succeeded}/1 of {p}"),
        (None, _) => format!("{succeeded}/1"),
    };
    let duration = match (status.start_time.as_ref().map(time), status.completion_time.as_ref().map(time)) {
        (None, _) => String::new(),
        (Some(start), None) => human_duration(now - start),
        (Some(start), Some(end)) => human_duration(end - start),
    };
    // The first condition of a type says whether the job has it.
    let has = |ty: &str| status.conditions.iter().flatten().find(|c| c.type_ == ty).is_some_and(|c| c.status == "True");
    let state = if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else if job.metadata.deletion_timestamp.is_some() {
        "Terminating"
    } else if has("Suspended") {
        "Suspended"
    } else if has("FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let [containers, images] = containers_and_images(spec.map(|s| &s.template));
    vec![
        name(&job.metadata),
        state.into(),
        completions.into(),
        duration.into(),
        created(&job.metadata, now),
        containers,
        images,
        format_selector(spec.and_then(|s| s.selector.as_ref())),
    ]
}

fn service(svc: &core::Service, now: DateTime<Utc>) -> Vec<Cell> {
    let no_spec = core::ServiceSpec::default();
    let spec = svc.spec.as_ref().unwrap_or(&no_spec);
    let ty = spec.type_.clone().unwrap_or_else(|| "ClusterIP".into());
    let cluster_ip = spec.cluster_ips.iter().flatten().next().or(spec.cluster_ip.as_ref()).cloned();
    let ports: Vec<String> = spec
        .ports
        .iter()
        .flatten()
        .map(|p| {
            let proto = p.protocol.as_deref().unwrap_or("TCP");
            match p.node_port {
                Some(np) if np > 0 => format!("{}:{np}/{proto}", p.port),
                _ => format!("{}/{proto}", p.port),
            }
        })
        .collect();
    vec![
        name(&svc.metadata),
        ty.clone().into(),
        or_none(cluster_ip.unwrap_or_default()),
        external_ip(svc, spec, &ty).into(),
        or_none(ports.join(",")),
        created(&svc.metadata, now),
        format_labels(spec.selector.as_ref()).into(),
    ]
}

/// EXTERNAL-IP: the external name, the load balancer's addresses
/// (`<pending>` while it has none) and the external IPs.
fn external_ip(svc: &core::Service, spec: &core::ServiceSpec, ty: &str) -> String {
    let external = spec.external_ips.clone().unwrap_or_default();
    match ty {
        "ClusterIP" | "NodePort" if external.is_empty() => "<none>".into(),
        "ClusterIP" | "NodePort" => external.join(","),
        "LoadBalancer" => {
            let ingress = svc.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|lb| lb.ingress.as_ref());
            let lb: BTreeSet<String> = ingress
                .into_iter()
                .flatten()
                .filter_map(|i| i.ip.clone().filter(|ip| !ip.is_empty()).or_else(|| i.hostname.clone()))
                .filter(|a| !a.is_empty())
                .collect();
            let all: Vec<String> = lb.into_iter().chain(external).collect();
            if all.is_empty() {
                "<pending>".into()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => spec.external_name.clone().unwrap_or_default(),
        _ => "<unknown>".into(),
    }
}

/// Up to three items, then how many more: `a,b,c + 2 more...`.
fn first_three(items: Vec<String>, empty: &str) -> String {
    if items.is_empty() {
        return empty.into();
    }
    let shown = items.iter().take(3).cloned().collect::<Vec<_>>().join(",");
    if items.len() > 3 {
        format!("{shown} + {} more...", items.len() - 3)
    } else {
        shown
    }
}

fn host_port(ip: &str, port: i32) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

fn endpoints(ep: &core::Endpoints, now: DateTime<Utc>) -> Vec<Cell> {
    let mut all = Vec::new();
    for sub in ep.subsets.iter().flatten() {
        let addresses = sub.addresses.iter().flatten();
        match sub.ports.as_deref() {
            // Headless services may have no ports.
            None | Some([]) => all.extend(addresses.map(|a| a.ip.clone())),
            Some(ports) => {
                for p in ports {
                    all.extend(addresses.clone().map(|a| host_port(&a.ip, p.port)));
                }
            }
        }
    }
    vec![name(&ep.metadata), first_three(all, "<none>").into(), created(&ep.metadata, now)]
}

fn endpoint_slice(slice: &discovery::EndpointSlice, now: DateTime<Utc>) -> Vec<Cell> {
    let ports: Vec<String> = slice
        .ports
        .iter()
        .flatten()
        .map(|p| match (p.port, &p.name) {
            (Some(port), _) => port.to_string(),
            (None, Some(name)) => name.clone(),
            (None, None) => "*".into(),
        })
        .collect();
    let addresses: Vec<String> = slice.endpoints.iter().flat_map(|e| e.addresses.iter().cloned()).collect();
    vec![
        name(&slice.metadata),
        slice.address_type.clone().into(),
        first_three(ports, "<unset>").into(),
        first_three(addresses, "<unset>").into(),
        created(&slice.metadata, now),
    ]
}

fn config_map(cm: &core::ConfigMap, now: DateTime<Utc>) -> Vec<Cell> {
    let count = cm.data.as_ref().map_or(0, BTreeMap::len) + cm.binary_data.as_ref().map_or(0, BTreeMap::len);
    vec![name(&cm.metadata), count.into(), created(&cm.metadata, now)]
}

fn secret(s: &core::Secret, now: DateTime<Utc>) -> Vec<Cell> {
    let count = s.data.as_ref().map_or(0, BTreeMap::len);
    vec![name(&s.metadata), s.type_.clone().unwrap_or_default().into(), count.into(), created(&s.metadata, now)]
}

fn service_account(sa: &core::ServiceAccount, now: DateTime<Utc>) -> Vec<Cell> {
    let count = sa.secrets.as_ref().map_or(0, Vec::len);
    vec![name(&sa.metadata), count.into(), created(&sa.metadata, now)]
}

fn lease(l: &coord::Lease, now: DateTime<Utc>) -> Vec<Cell> {
    let holder = l.spec.as_ref().and_then(|s| s.holder_identity.clone()).unwrap_or_default();
    vec![name(&l.metadata), holder.into(), created(&l.metadata, now)]
}

fn event(e: &core::Event, now: DateTime<Utc>) -> Vec<Cell> {
    let first = match e.first_timestamp.as_ref() {
        Some(t) => Some(time(t)),
        None => e.event_time.as_ref().map(micro_time),
    };
    let first_seen = since(first, now);
    let mut last_seen = e.last_timestamp.as_ref().map_or_else(|| first_seen.clone(), |t| since(Some(time(t)), now));
    let mut count = e.count.unwrap_or(0);
    if let Some(series) = &e.series {
        last_seen = since(series.last_observed_time.as_ref().map(micro_time), now);
        count = series.count.unwrap_or(0);
    } else if count == 0 {
        count = 1;
    }
    let involved = &e.involved_object;
    let kind = involved.kind.as_deref().unwrap_or_default().to_lowercase();
    let object = match involved.name.as_deref() {
        Some(n) if !n.is_empty() => format!("{kind}/{n}"),
        _ => kind,
    };
    let nonempty =
        |a: Option<&String>, b: Option<&String>| a.filter(|s| !s.is_empty()).or(b).cloned().unwrap_or_default();
    let source = e.source.clone().unwrap_or_default();
    let component = nonempty(source.component.as_ref(), e.reporting_component.as_ref());
    let host = nonempty(source.host.as_ref(), e.reporting_instance.as_ref());
    let source = if host.is_empty() { component } else { format!("{component}, {host}") };
    vec![
        last_seen.into(),
        e.type_.clone().unwrap_or_default().into(),
        e.reason.clone().unwrap_or_default().into(),
        object.into(),
        involved.field_path.clone().unwrap_or_default().into(),
        source.into(),
        e.message.as_deref().unwrap_or_default().trim().into(),
        first_seen.into(),
        count.into(),
        name(&e.metadata),
    ]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::objects::kinds;

    fn at(t: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn durations_read_as_kubernetes_writes_them() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (200, "3m20s"),
            (600, "10m"),
            (3600, "60m"),
            (3 * 3600, "3h"),
            (4 * 3600 + 600, "4h10m"),
            (20 * 3600 + 59 * 60, "20h"),
            (2 * 86400, "2d"),
            (3 * 86400 + 5 * 3600, "3d5h"),
            (30 * 86400, "30d"),
            (2 * 365 * 86400 + 40 * 86400, "2y40d"),
            (9 * 365 * 86400, "9y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(TimeDelta::seconds(secs)), want, "{secs}s");
        }
        assert_eq!(age("not a time", at("2026-01-01T00:00:00Z")), "<unknown>");
    }

    fn pod(status: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"nodeName": "n1", "containers": [{"name": "a", "image": "i"}, {"name": "b", "image": "i"},
                {"name": "c", "image": "i"}]},
            "status": status})
    }

    fn running(ready: bool, restarts: i32) -> Value {
        json!({"name": "x", "image": "i", "imageID": "", "ready": ready, "restartCount": restarts, "state": {"running": {}}})
    }

    #[test]
    fn pod_cells_say_what_kubectl_says() {
        let now = at("2026-01-01T00:10:00Z");
        let crashing = json!({"name": "c", "image": "i", "imageID": "", "ready": false, "restartCount": 4,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2026-01-01T00:09:30Z"}}});
        let cases = [
            (
                "2/3 ready, one crashing",
                pod(json!({"phase": "Running", "podIP": "10.0.0.5",
                    "containerStatuses": [running(true, 0), running(true, 1), crashing]})),
                vec!["web-1", "2/3", "CrashLoopBackOff", "5 (30s ago)", "10m", "10.0.0.5", "n1", "<none>", "<none>"],
            ),
            (
                "all running",
                pod(json!({"phase": "Running", "podIPs": [{"ip": "10.0.0.6"}],
                    "containerStatuses": [running(true, 0), running(true, 0), running(true, 0)]})),
                vec!["web-1", "3/3", "Running", "0", "10m", "10.0.0.6", "n1", "<none>", "<none>"],
            ),
            (
                "not started yet",
                pod(json!({"phase": "Pending"})),
                vec!["web-1", "0/3", "Pending", "0", "10m", "<none>", "n1", "<none>", "<none>"],
            ),
            (
                "evicted",
                pod(json!({"phase": "Failed", "reason": "Evicted"})),
                vec!["web-1", "0/3", "Evicted", "0", "10m", "<none>", "n1", "<none>", "<none>"],
            ),
            (
                "a container exited without a reason",
                pod(json!({"phase": "Running", "containerStatuses": [running(true, 0), running(true, 0),
                    {"name": "c", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                     "state": {"terminated": {"exitCode": 3}}}]})),
                vec!["web-1", "2/3", "ExitCode:3", "0", "10m", "<none>", "n1", "<none>", "<none>"],
            ),
        ];
        for (what, obj, want) in cases {
            assert_eq!(row(&kinds::POD, &obj, true, now), want, "{what}");
        }

        let mut deleting = pod(json!({"phase": "Running", "containerStatuses": [running(true, 0)]}));
        deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:09:00Z");
        assert_eq!(row(&kinds::POD, &deleting, false, now)[2], "Terminating");
        let mut done = pod(json!({"phase": "Succeeded"}));
        done["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:09:00Z");
        assert_eq!(row(&kinds::POD, &done, false, now)[2], "Succeeded", "a finished pod is not Terminating");
    }

    #[test]
    fn pods_initializing_show_their_init_containers() {
        let now = at("2026-01-01T00:10:00Z");
        let mut obj = pod(json!({"phase": "Pending", "initContainerStatuses": [
            {"name": "setup", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
             "state": {"terminated": {"exitCode": 0}}},
            {"name": "migrate", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
             "state": {"running": {}}}]}));
        obj["spec"]["initContainers"] = json!([{"name": "setup", "image": "i"}, {"name": "migrate", "image": "i"}]);
        assert_eq!(row(&kinds::POD, &obj, false, now)[2], "Init:1/2");
        obj["status"]["initContainerStatuses"][1]["state"] = json!({"waiting": {"reason": "ImagePullBackOff"}});
        assert_eq!(row(&kinds::POD, &obj, false, now)[2], "Init:ImagePullBackOff");
        obj["status"]["initContainerStatuses"][1]["state"] = json!({"terminated": {"exitCode": 2}});
        assert_eq!(row(&kinds::POD, &obj, false, now)[2], "Init:ExitCode:2");
    }

    #[test]
    fn nodes_show_readiness_roles_and_wide_details() {
        let now = at("2026-01-01T00:10:00Z");
        let node = json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "n1", "creationTimestamp": "2026-01-01T00:00:00Z",
                "labels": {"node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "etcd", "zone": "a"}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.1.0.1"}],
                "nodeInfo": {"kubeletVersion": "v1.33.0-clusterd", "osImage": "Debian GNU/Linux 12",
                    "kernelVersion": "6.1.0", "containerRuntimeVersion": "youki://0.5",
                    "architecture": "", "bootID": "", "kubeProxyVersion": "", "machineID": "", "operatingSystem": "",
                    "systemUUID": ""}}});
        assert_eq!(
            row(&kinds::NODE, &node, true, now),
            [
                "n1",
                "Ready",
                "control-plane,etcd",
                "10m",
                "v1.33.0-clusterd",
                "10.1.0.1",
                "<none>",
                "Debian GNU/Linux 12",
                "6.1.0",
                "youki://0.5"
            ]
        );
        let mut cordoned = node.clone();
        cordoned["spec"] = json!({"unschedulable": true});
        cordoned["status"]["conditions"][0]["status"] = json!("False");
        cordoned["metadata"]["labels"] = json!({});
        let r = row(&kinds::NODE, &cordoned, false, now);
        assert_eq!((r[1].as_str(), r[2].as_str()), ("NotReady,SchedulingDisabled", "<none>"));
        assert_eq!(headers(&kinds::NODE, false), ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]);
    }

    #[test]
    fn rows_show_what_kubectl_shows() {
        let now = at("2026-01-01T00:10:00Z");
        let created = "2026-01-01T00:00:00Z";
        let meta = |name: &str| json!({"name": name, "creationTimestamp": created});
        let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta("web"),
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "api"]}]},
                "template": {"spec": {"containers": [{"name": "web", "image": "nginx:1"}, {"name": "log", "image": "busybox"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": meta("web-abc"),
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}},
            "status": {"replicas": 2, "readyReplicas": 1}});
        let ds = json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": meta("agent"),
            "spec": {"selector": {}, "template": {"spec": {"nodeSelector": {"os": "linux"},
                "containers": [{"name": "agent", "image": "agent:2"}]}}},
            "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
                "updatedNumberScheduled": 3, "numberAvailable": 2, "numberMisscheduled": 0}});
        let sts = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": meta("db"),
            "spec": {"replicas": 3, "selector": {}, "serviceName": "db", "template": {}}, "status": {"replicas": 3, "readyReplicas": 1}});
        let job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": meta("once"),
            "spec": {"completions": 2, "template": {}},
            "status": {"succeeded": 2, "startTime": "2026-01-01T00:01:00Z", "completionTime": "2026-01-01T00:04:20Z",
                "conditions": [{"type": "Complete", "status": "True"}]}});
        let svc = |spec: Value| json!({"apiVersion": "v1", "kind": "Service", "metadata": meta("web"), "spec": spec});
        let node_port = svc(json!({"type": "NodePort", "clusterIP": "10.96.0.5", "selector": {"app": "web"},
            "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}, {"port": 53, "protocol": "UDP", "nodePort": 30053}]}));
        let lb = svc(
            json!({"type": "LoadBalancer", "clusterIP": "10.96.0.6", "ports": [{"port": 443, "protocol": "TCP", "nodePort": 31443}]}),
        );
        let headless =
            svc(json!({"type": "ClusterIP", "clusterIP": "None", "ports": [{"port": 80, "protocol": "TCP"}]}));
        let external = svc(json!({"type": "ExternalName", "externalName": "example.com"}));
        let slice = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": meta("web-abc"),
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}, {"name": "dns", "port": 53}],
            "endpoints": (1..=5).map(|i| json!({"addresses": [format!("10.0.0.{i}")]})).collect::<Vec<_>>()});
        let ep = json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": meta("web"),
            "subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 80}, {"port": 443}]}]});
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("conf"),
            "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}});
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta("token"),
            "type": "Opaque", "data": {"a": "AA=="}});
        let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta("default")});
        let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta("n1"),
            "spec": {"holderIdentity": "n1"}});
        let ns =
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": meta("apps"), "status": {"phase": "Active"}});
        let event = json!({"apiVersion": "v1", "kind": "Event", "metadata": meta("web-1.abc"),
            "involvedObject": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{web}"},
            "reason": "Pulled", "message": "pulled the image\n", "type": "Normal", "count": 4,
            "firstTimestamp": "2026-01-01T00:02:00Z", "lastTimestamp": "2026-01-01T00:09:55Z",
            "source": {"component": "kubelet", "host": "n1"}});
        let cases = [
            (
                &kinds::DEPLOYMENT,
                deploy,
                vec!["web", "2/3", "3", "2", "10m", "web,log", "nginx:1,busybox", "app=web,tier in (api,front)"],
            ),
            (&kinds::REPLICA_SET, rs, vec!["web-abc", "2", "2", "1", "10m", "", "", "app=web"]),
            (
                &kinds::DAEMON_SET,
                ds,
                vec!["agent", "3", "3", "2", "3", "2", "os=linux", "10m", "agent", "agent:2", "<none>"],
            ),
            (&kinds::STATEFUL_SET, sts, vec!["db", "1/3", "10m", "", ""]),
            (&kinds::JOB, job, vec!["once", "Complete", "2/2", "3m20s", "10m", "", "", "<none>"]),
            (
                &kinds::SERVICE,
                node_port,
                vec!["web", "NodePort", "10.96.0.5", "<none>", "80:30080/TCP,53:30053/UDP", "10m", "app=web"],
            ),
            (
                &kinds::SERVICE,
                lb,
                vec!["web", "LoadBalancer", "10.96.0.6", "<pending>", "443:31443/TCP", "10m", "<none>"],
            ),
            (&kinds::SERVICE, headless, vec!["web", "ClusterIP", "None", "<none>", "80/TCP", "10m", "<none>"]),
            (
                &kinds::SERVICE,
                external,
                vec!["web", "ExternalName", "<none>", "example.com", "<none>", "10m", "<none>"],
            ),
            (
                &kinds::ENDPOINT_SLICE,
                slice,
                vec!["web-abc", "IPv4", "8080,53", "10.0.0.1,10.0.0.2,10.0.0.3 + 2 more...", "10m"],
            ),
            (&kinds::ENDPOINTS, ep, vec!["web", "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 1 more...", "10m"]),
            (&kinds::CONFIG_MAP, cm, vec!["conf", "3", "10m"]),
            (&kinds::SECRET, secret, vec!["token", "Opaque", "1", "10m"]),
            (&kinds::SERVICE_ACCOUNT, sa, vec!["default", "0", "10m"]),
            (&kinds::LEASE, lease, vec!["n1", "n1", "10m"]),
            (&kinds::NAMESPACE, ns, vec!["apps", "Active", "10m"]),
            (
                &kinds::EVENT,
                event,
                vec![
                    "5s",
                    "Normal",
                    "Pulled",
                    "pod/web-1",
                    "spec.containers{web}",
                    "kubelet, n1",
                    "pulled the image",
                    "8m",
                    "4",
                    "web-1.abc",
                ],
            ),
        ];
        for (kind, obj, want) in cases {
            assert_eq!(row(kind, &obj, true, now), want, "{}", kind.kind);
            assert_eq!(headers(kind, true).len(), want.len(), "{}", kind.kind);
        }
    }

    #[test]
    fn wide_columns_have_priority_one() {
        let wide =
            |kind: &Kind| -> Vec<&str> { columns(kind).iter().filter(|c| c.priority == 1).map(|c| c.name).collect() };
        assert_eq!(wide(&kinds::POD), ["IP", "Node", "Nominated Node", "Readiness Gates"]);
        assert_eq!(
            wide(&kinds::NODE),
            ["Internal-IP", "External-IP", "OS-Image", "Kernel-Version", "Container-Runtime"]
        );
        assert_eq!(wide(&kinds::DEPLOYMENT), ["Containers", "Images", "Selector"]);
        assert_eq!(wide(&kinds::SERVICE), ["Selector"]);
        assert_eq!(wide(&kinds::EVENT), ["Subobject", "Source", "First Seen", "Count", "Name"]);
        assert_eq!(headers(&kinds::POD, false), ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
        assert_eq!(headers(&kinds::EVENT, false), ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]);
        for kind in kinds::KINDS {
            let defs = columns(kind);
            assert_eq!(defs.iter().filter(|c| c.format == "name").count(), 1, "{}: one name column", kind.kind);
            // Wide columns come last, except the Event's, as Kubernetes orders them.
            if kind.kind != "Event" {
                let first_wide = defs.iter().position(|c| c.priority == 1).unwrap_or(defs.len());
                assert!(defs[first_wide..].iter().all(|c| c.priority == 1), "{}", kind.kind);
            }
        }
    }

    #[test]
    fn objects_their_type_refuses_show_name_and_age() {
        let now = at("2026-01-01T00:10:00Z");
        let bad = json!({"metadata": {"name": "odd", "creationTimestamp": "2026-01-01T00:09:00Z"},
            "spec": {"containers": "not a list"}});
        assert_eq!(row(&kinds::POD, &bad, false, now), ["odd", "", "", "", "60s"]);
    }
}
