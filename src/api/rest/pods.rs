//! The write subresources of pods: `eviction` (a delete with the eviction's
//! options — clusterd has no PodDisruptionBudgets, so every eviction is
//! allowed) and `binding` (a scheduler's placement of an unbound pod).

use axum::response::Response;
use serde_json::{json, Value};

use super::body::{self, json};
use super::status::Failure;
use super::Call;
use crate::objects::kinds;
use crate::registry::deletion::{DeleteOptions, Propagation};
use crate::registry::{Origin, RegistryError};

/// `POST …/pods/{name}/eviction`.
pub async fn evict(call: &Call<'_>, bytes: &[u8]) -> Result<Response, Failure> {
    let eviction = body::decode(&body::content_type(call.headers), bytes)?;
    let name = eviction["metadata"]["name"].as_str().unwrap_or(&call.target.name);
    if name != call.target.name {
        return Err(Failure::bad_request(format!("name in URL does not match name in Eviction object: {name}")));
    }
    let opts = &eviction["deleteOptions"];
    let delete = DeleteOptions {
        grace_period_seconds: opts.get("gracePeriodSeconds").and_then(Value::as_i64),
        propagation: Propagation::parse(opts.get("propagationPolicy").and_then(Value::as_str).unwrap_or(""))?,
        resource_version: opts["preconditions"]["resourceVersion"].as_str().and_then(|r| r.parse().ok()),
        uid: opts["preconditions"]["uid"].as_str().map(str::to_string),
    };
    let ns = kinds::POD.namespace_or_default(&call.target.namespace).to_string();
    if !super::query::dry_run(&call.params)? {
        call.registry().delete(&kinds::POD, &ns, name, &delete).await?;
    }
    Ok(json(201, &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})))
}

/// `POST …/pods/{name}/binding`: set the pod's node, once.
pub async fn bind(call: &Call<'_>, bytes: &[u8]) -> Result<Response, Failure> {
    let binding = body::decode(&body::content_type(call.headers), bytes)?;
    let node = binding["target"]["name"].as_str().unwrap_or("").to_string();
    if node.is_empty() {
        return Err(RegistryError::Invalid(crate::objects::admission::Invalid {
            kind: "Binding".into(),
            name: call.target.name.clone(),
            causes: vec![crate::objects::validate::FieldError {
                field: "target.name".into(),
                message: "Required value".into(),
            }],
        })
        .into());
    }
    let ns = kinds::POD.namespace_or_default(&call.target.namespace).to_string();
    let mut already = None;
    call.registry()
        .modify(&kinds::POD, &ns, &call.target.name, Origin::ControlPlane, |pod| {
            match pod["spec"]["nodeName"].as_str() {
                Some(n) if !n.is_empty() => {
                    already = Some(n.to_string());
                    false
                }
                _ => {
                    pod["spec"]["nodeName"] = json!(node);
                    true
                }
            }
        })
        .await?;
    if let Some(n) = already {
        return Err(Failure::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on pods/binding \"{}\": pod {} is already assigned to node \"{n}\"",
                call.target.name, call.target.name
            ),
        ));
    }
    Ok(json(201, &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})))
}
