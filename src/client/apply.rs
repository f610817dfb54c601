//! `apply` (and the object calls `create` and `delete` share): kubectl's
//! client-side apply over the API.
//!
//! `apply` keeps the applied manifest in the
//! `kubectl.kubernetes.io/last-applied-configuration` annotation, like kubectl:
//! the same manifest again is `unchanged`, a different one replaces the fields
//! the user owns (metadata and spec; status stays the server's).

use clap::Args;
use serde_json::Value;
use tonic::Code;

use super::connect::{ApiClient, ConnectOpts};
use super::error::{all_ok, outcome, CliError};
use super::manifest;
use crate::api::pb;
use crate::objects::{meta_str, Kind};

/// `-f FILE`.
#[derive(Args, Debug)]
pub struct FileArgs {
    /// Manifest file, or - for standard input.
    #[arg(short, long)]
    pub filename: String,
    /// Namespace for objects that name none.
    #[arg(short, long)]
    pub namespace: Option<String>,
}

/// Run `apply` (or, with `create_only`, `create`): every object of the
/// manifest in turn, each one's outcome on its own line; objects of kinds
/// the server does not know are reported and skipped, as kubectl does.
pub async fn run(opts: &ConnectOpts, f: &FileArgs, create_only: bool) -> Result<(), CliError> {
    let objects = manifest::read(&f.filename)?;
    let mut c = opts.connect().await?;
    let mut failed = 0;
    for obj in objects {
        if let Err(e) = manifest::kind_of(&obj, &f.filename) {
            manifest::report(&e);
            failed += 1;
            continue;
        }
        let name = display_name(&obj);
        let res = if create_only {
            create(&mut c, obj, f.namespace.as_deref()).await.map(|_| "created")
        } else {
            apply(&mut c, obj, f.namespace.as_deref()).await.map(|o| o.word())
        };
        outcome(res.map(|word| format!("{name} {word}")), &mut failed);
    }
    all_ok(failed)
}

/// The annotation holding the last applied manifest.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// What happened to one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It did not exist and was created.
    Created,
    /// It existed and was changed.
    Configured,
    /// It existed and already matched.
    Unchanged,
}

impl Outcome {
    /// kubectl's word.
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Configured => "configured",
            Outcome::Unchanged => "unchanged",
        }
    }
}

/// `configmap/NAME` as kubectl prints it.
pub fn display_name(obj: &Value) -> String {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("object").to_ascii_lowercase();
    let kind = match kind.as_str() {
        "deployment" | "replicaset" | "daemonset" | "statefulset" => format!("{kind}.apps"),
        "job" => "job.batch".to_string(),
        _ => kind,
    };
    format!("{kind}/{}", meta_str(obj, "name"))
}

fn with_namespace(mut obj: Value, namespace: Option<&str>) -> Value {
    if let (Some(ns), Some(kind)) = (namespace, Kind::of(&obj)) {
        if kind.namespaced && meta_str(&obj, "namespace").is_empty() {
            obj["metadata"]["namespace"] = Value::String(ns.to_string());
        }
    }
    obj
}

/// Create an object; it must not exist.
pub async fn create(client: &mut ApiClient, obj: Value, namespace: Option<&str>) -> Result<Value, tonic::Status> {
    let obj = with_namespace(obj, namespace);
    let resp = client.create(pb::ObjectRequest { json: obj.to_string() }).await?;
    serde_json::from_str(&resp.into_inner().json).map_err(|e| tonic::Status::internal(e.to_string()))
}

/// Apply a manifest: create it, or bring the existing object in line with it.
pub async fn apply(client: &mut ApiClient, manifest: Value, namespace: Option<&str>) -> Result<Outcome, tonic::Status> {
    let manifest = with_namespace(manifest, namespace);
    let kind = Kind::of(&manifest).map(|k| k.kind).unwrap_or("");
    let last_applied = {
        let mut m = manifest.clone();
        if let Some(ann) = m.pointer_mut("/metadata/annotations").and_then(Value::as_object_mut) {
            ann.remove(LAST_APPLIED);
        }
        m.to_string()
    };
    let mut desired = manifest.clone();
    if !desired.get("metadata").is_some_and(Value::is_object) {
        desired["metadata"] = serde_json::json!({});
    }
    desired["metadata"]["annotations"][LAST_APPLIED] = Value::String(last_applied.clone());
    let get = pb::GetRequest {
        kind: kind.to_string(),
        namespace: meta_str(&desired, "namespace").to_string(),
        name: meta_str(&desired, "name").to_string(),
        linearizable: false,
    };
    match client.get(get).await {
        Err(s) if s.code() == Code::NotFound && !s.message().starts_with("the server doesn't have") => {
            client.create(pb::ObjectRequest { json: desired.to_string() }).await?;
            Ok(Outcome::Created)
        }
        Err(s) => Err(s),
        Ok(resp) => {
            let existing: Value =
                serde_json::from_str(&resp.into_inner().json).map_err(|e| tonic::Status::internal(e.to_string()))?;
            let previous = existing.pointer(&format!("/metadata/annotations/{}", LAST_APPLIED.replace('/', "~1")));
            if previous.and_then(Value::as_str) == Some(last_applied.as_str()) {
                return Ok(Outcome::Unchanged);
            }
            desired["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"].clone();
            let updated = client.update(pb::ObjectRequest { json: desired.to_string() }).await?.into_inner();
            let updated: Value =
                serde_json::from_str(&updated.json).map_err(|e| tonic::Status::internal(e.to_string()))?;
            if updated["metadata"]["resourceVersion"] == existing["metadata"]["resourceVersion"] {
                Ok(Outcome::Unchanged)
            } else {
                Ok(Outcome::Configured)
            }
        }
    }
}

/// Delete an object by kind and name.
pub async fn delete(
    client: &mut ApiClient,
    kind: &str,
    namespace: &str,
    name: &str,
    grace_period_seconds: Option<i64>,
    propagation_policy: &str,
) -> Result<Value, tonic::Status> {
    let resp = client
        .delete(pb::DeleteRequest {
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
            resource_version: 0,
            grace_period_seconds,
            propagation_policy: propagation_policy.into(),
        })
        .await?;
    serde_json::from_str(&resp.into_inner().json).map_err(|e| tonic::Status::internal(e.to_string()))
}
