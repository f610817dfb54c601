//! The `scale` subresource of Deployments, ReplicaSets and StatefulSets: an
//! `autoscaling/v1` `Scale` read from the object; a write of one (PUT, or a
//! PATCH of it — `kubectl scale`) changes only `spec.replicas`.

use axum::response::Response;
use serde_json::{json, Value};

use super::body::{self, json};
use super::objects::patch_of;
use super::status::Failure;
use super::Call;
use crate::objects::selector::LabelSelector;
use crate::objects::{meta_str, Kind};
use crate::registry::{Patch, RegistryError};

/// The selector of a workload as the label-selector string Scale carries.
fn selector_string(obj: &Value) -> String {
    let sel = LabelSelector::from_object(&obj["spec"]["selector"]);
    sel.to_string()
}

/// The Scale of a workload object.
pub fn scale_of(obj: &Value) -> Value {
    let meta = &obj["metadata"];
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"],
            "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(1)},
        "status": {
            "replicas": obj["status"]["replicas"].as_i64().unwrap_or(0),
            "selector": selector_string(obj),
        },
    })
}

fn current(call: &Call<'_>, kind: &Kind, ns: &str) -> Result<Value, Failure> {
    Ok(call
        .registry()
        .get(kind, ns, &call.target.name)?
        .ok_or_else(|| RegistryError::not_found(kind, &call.target.name))?)
}

/// `GET …/scale`.
pub fn get(call: &Call<'_>) -> Result<Response, Failure> {
    let kind = call.target.kind;
    let ns = kind.namespace_or_default(&call.target.namespace).to_string();
    Ok(json(200, &scale_of(&current(call, kind, &ns)?)))
}

/// `PUT` or `PATCH …/scale`.
pub async fn write(call: &Call<'_>, bytes: &[u8], is_patch: bool) -> Result<Response, Failure> {
    let kind = call.target.kind;
    let ns = kind.namespace_or_default(&call.target.namespace).to_string();
    let obj = current(call, kind, &ns)?;
    let wanted = if is_patch {
        let patch = match patch_of(&body::content_type(call.headers), bytes)? {
            // A Scale has no lists: its strategic merge patch is a merge patch.
            Patch::Strategic(p) => Patch::Merge(p),
            p => p,
        };
        patch.apply(&scale_of(&obj)).map_err(|e| Failure::bad_request(e.to_string()))?
    } else {
        body::decode(&body::content_type(call.headers), bytes)?
    };
    let replicas =
        wanted["spec"]["replicas"].as_i64().filter(|r| *r >= 0 && *r <= i32::MAX as i64).ok_or_else(|| {
            Failure::from(RegistryError::Invalid(crate::objects::admission::Invalid {
                kind: "Scale".into(),
                name: call.target.name.clone(),
                causes: vec![crate::objects::validate::FieldError {
                    field: "spec.replicas".into(),
                    message: format!(
                        "Invalid value: {}: must be greater than or equal to 0",
                        wanted["spec"]["replicas"]
                    ),
                }],
            }))
        })?;
    // A resourceVersion in the Scale is a precondition on the object.
    let mut change = json!({"spec": {"replicas": replicas}});
    let rv = meta_str(&wanted, "resourceVersion");
    if !rv.is_empty() && !is_patch {
        change["metadata"] = json!({"resourceVersion": rv});
    }
    let patch = Patch::Merge(change);
    let written = if super::query::dry_run(&call.params)? {
        call.registry().dry_run_patch(kind, &ns, &call.target.name, &patch, false)?
    } else {
        call.registry().patch(kind, &ns, &call.target.name, &patch, false).await?
    };
    Ok(json(200, &scale_of(&written)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deployment_reads_as_a_scale() {
        let d = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "uid": "u1", "resourceVersion": "7"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}},
            "status": {"replicas": 2},
        });
        let s = scale_of(&d);
        assert_eq!(s["spec"]["replicas"], 3);
        assert_eq!(s["status"], json!({"replicas": 2, "selector": "app=web"}));
        assert_eq!(s["metadata"]["resourceVersion"], "7");
    }
}
