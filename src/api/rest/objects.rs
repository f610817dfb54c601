//! One object: get, create, replace, patch, delete — and its `status`
//! subresource. Every write goes through the registry (admission, then one
//! compare-and-swap through Raft); `dryRun=All` runs the same checks and
//! stores nothing.

use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::body::{self, json};
use super::status::Failure;
use super::table;
use super::Call;
use crate::objects::{meta_str, Kind};
use crate::registry::deletion::{DeleteOptions, Propagation};
use crate::registry::{Patch, RegistryError};

/// The namespace of a request for a namespaced kind (the path's, else `default`).
fn namespace_of(call: &Call<'_>) -> String {
    call.target.kind.namespace_or_default(&call.target.namespace).to_string()
}

/// Answer one object, as itself or as a one-row Table.
pub fn object_answer(call: &Call<'_>, code: u16, obj: &Value) -> Response {
    if body::wants_table(call.headers) {
        return match body::include_object(&call.params) {
            Ok(include) => json(code, &table::object_table(call.target.kind, obj, include)),
            Err(f) => f.into_response(),
        };
    }
    json(code, obj)
}

/// `GET` one object (or its status).
pub fn get(call: &Call<'_>) -> Result<Response, Failure> {
    let kind = call.target.kind;
    let obj = call
        .registry()
        .get(kind, &namespace_of(call), &call.target.name)?
        .ok_or_else(|| RegistryError::not_found(kind, &call.target.name))?;
    Ok(object_answer(call, 200, &obj))
}

/// `fieldValidation`: fields the kind's schema does not know are refused
/// (`Strict`, kubectl's default), warned about (`Warn`, the API's default) or
/// let through (`Ignore`). Returns the warnings.
pub fn check_fields(call: &Call<'_>, doc: &Value) -> Result<Vec<String>, Failure> {
    let mode = call.params.get("fieldValidation").unwrap_or("Warn");
    if mode == "Ignore" {
        return Ok(vec![]);
    }
    let definition = crate::objects::schema::definition_of(call.target.kind);
    let unknown = crate::objects::schema::catalogue().unknown_fields(definition, doc);
    match (mode, unknown.is_empty()) {
        (_, true) => Ok(vec![]),
        ("Strict", false) => Err(Failure::bad_request(format!(
            "strict decoding error: {}",
            unknown.iter().map(|f| format!("unknown field \"{f}\"")).collect::<Vec<_>>().join(", ")
        ))),
        ("Warn", false) => Ok(unknown.iter().map(|f| format!("unknown field \"{f}\"")).collect()),
        (other, false) => Err(Failure::bad_request(format!(
            "fieldValidation: unsupported value \"{other}\": must be Ignore, Warn or Strict"
        ))),
    }
}

/// Add `Warning` headers (RFC 7234 form, as Kubernetes sends them) to an answer.
pub fn with_warnings(mut r: Response, warnings: &[String]) -> Response {
    for w in warnings {
        let text = format!("299 - \"{}\"", w.replace('"', "\\\""));
        if let Ok(v) = axum::http::HeaderValue::from_str(&text) {
            r.headers_mut().append("Warning", v);
        }
    }
    r
}

/// Check that a body is of the kind the path names and in its namespace,
/// filling in what a client may leave out (apiVersion, kind, namespace).
fn conform(call: &Call<'_>, mut obj: Value) -> Result<Value, Failure> {
    let kind = call.target.kind;
    let Some(map) = obj.as_object_mut() else {
        return Err(Failure::bad_request("the request body must be a JSON object"));
    };
    let given_kind = map.get("kind").and_then(Value::as_str).unwrap_or(kind.kind).to_string();
    let given_api = map.get("apiVersion").and_then(Value::as_str).unwrap_or(kind.api_version).to_string();
    if given_kind != kind.kind || given_api != kind.api_version {
        return Err(Failure::bad_request(format!(
            "the body of the request was of kind {given_api}, Kind={given_kind}; the path names {}, Kind={}",
            kind.api_version, kind.kind
        )));
    }
    map.insert("kind".into(), json!(kind.kind));
    map.insert("apiVersion".into(), json!(kind.api_version));
    if kind.namespaced {
        let ns = namespace_of(call);
        let meta = map.entry("metadata").or_insert_with(|| json!({}));
        match meta.get("namespace").and_then(Value::as_str) {
            None | Some("") => meta["namespace"] = json!(ns),
            Some(given) if given == ns => {}
            Some(_) => {
                return Err(Failure::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ))
            }
        }
    }
    Ok(obj)
}

/// `POST` to a collection.
pub async fn create(call: &Call<'_>, bytes: &[u8]) -> Result<Response, Failure> {
    let obj = conform(call, body::decode(&body::content_type(call.headers), bytes)?)?;
    let warnings = check_fields(call, &obj)?;
    let created = if super::query::dry_run(&call.params)? {
        call.registry().dry_run_create(obj)?
    } else {
        call.registry().create_by(obj, call.params.get("fieldManager").unwrap_or("")).await?
    };
    Ok(with_warnings(object_answer(call, 201, &created), &warnings))
}

/// `PUT` an object (or its status).
pub async fn update(call: &Call<'_>, bytes: &[u8]) -> Result<Response, Failure> {
    let obj = conform(call, body::decode(&body::content_type(call.headers), bytes)?)?;
    let name = meta_str(&obj, "name");
    if name != call.target.name {
        return Err(Failure::bad_request(format!(
            "the name of the object ({name}) does not match the name on the URL ({})",
            call.target.name
        )));
    }
    let warnings = check_fields(call, &obj)?;
    let status = call.target.subresource == "status";
    let updated = match (super::query::dry_run(&call.params)?, status) {
        (true, _) => call.registry().dry_run_update(obj, status)?,
        (false, status) => {
            call.registry().update_by(obj, status, call.params.get("fieldManager").unwrap_or("")).await?
        }
    };
    Ok(with_warnings(object_answer(call, 200, &updated), &warnings))
}

/// The patch a `PATCH` request carries, by its content type.
pub fn patch_of(content_type: &str, bytes: &[u8]) -> Result<Patch, Failure> {
    let doc = |ct| body::decode(ct, bytes);
    match content_type {
        "application/json-patch+json" => Ok(Patch::Json(doc(content_type)?)),
        "application/merge-patch+json" => Ok(Patch::Merge(doc(content_type)?)),
        "application/strategic-merge-patch+json" => Ok(Patch::Strategic(doc(content_type)?)),
        other => Err(Failure::unsupported_media_type(other)),
    }
}

/// `PATCH` an object (or its status).
pub async fn patch(call: &Call<'_>, bytes: &[u8]) -> Result<Response, Failure> {
    let kind = call.target.kind;
    let content_type = body::content_type(call.headers);
    if content_type == "application/apply-patch+yaml" && call.target.subresource.is_empty() {
        return apply(call, bytes).await;
    }
    let patch = patch_of(&content_type, bytes)?;
    let warnings = match &patch {
        Patch::Json(_) => vec![],
        Patch::Merge(doc) | Patch::Strategic(doc) => check_fields(call, doc)?,
    };
    let (ns, name) = (namespace_of(call), call.target.name.clone());
    let status = call.target.subresource == "status";
    let patched = if super::query::dry_run(&call.params)? {
        call.registry().dry_run_patch(kind, &ns, &name, &patch, status)?
    } else {
        call.registry()
            .patch_by(kind, &ns, &name, &patch, status, call.params.get("fieldManager").unwrap_or(""))
            .await?
    };
    Ok(with_warnings(object_answer(call, 200, &patched), &warnings))
}

/// `PATCH` with `application/apply-patch+yaml`: server-side apply by the
/// request's `fieldManager` (`force` takes over fields other managers own).
/// 201 when it created the object.
pub async fn apply(call: &Call<'_>, bytes: &[u8]) -> Result<Response, Failure> {
    let kind = call.target.kind;
    let config = body::decode("application/apply-patch+yaml", bytes)?;
    let warnings = check_fields(call, &config)?;
    let (ns, name) = (namespace_of(call), call.target.name.clone());
    let manager = call.params.get("fieldManager").unwrap_or("");
    let force = call.params.flag("force")?;
    let existed = call.registry().get(kind, &ns, &name)?.is_some();
    let applied = if super::query::dry_run(&call.params)? {
        call.registry().dry_run_apply(kind, &ns, &name, config, manager, force)?
    } else {
        call.registry().apply(kind, &ns, &name, config, manager, force).await?
    };
    Ok(with_warnings(object_answer(call, if existed { 200 } else { 201 }, &applied), &warnings))
}

/// The deletion options of a request: its `DeleteOptions` body, then the query.
pub fn delete_options(call: &Call<'_>, bytes: &[u8]) -> Result<(DeleteOptions, bool), Failure> {
    let body = if bytes.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        body::decode(&body::content_type(call.headers), bytes)?
    };
    let grace = match body.get("gracePeriodSeconds").and_then(Value::as_i64) {
        Some(g) => Some(g),
        None => call.params.number("gracePeriodSeconds")?,
    };
    let policy = body
        .get("propagationPolicy")
        .and_then(Value::as_str)
        .or_else(|| call.params.get("propagationPolicy"))
        .unwrap_or("")
        .to_string();
    let pre = &body["preconditions"];
    let resource_version = match pre.get("resourceVersion").and_then(Value::as_str) {
        Some(rv) => {
            Some(rv.parse().map_err(|_| Failure::bad_request("preconditions.resourceVersion: must be a number"))?)
        }
        None => None,
    };
    let dry_run = super::query::dry_run(&call.params)?
        || body.get("dryRun").and_then(Value::as_array).is_some_and(|d| d.iter().any(|x| x == "All"));
    let opts = DeleteOptions {
        grace_period_seconds: grace,
        propagation: Propagation::parse(&policy)?,
        resource_version,
        uid: pre.get("uid").and_then(Value::as_str).map(str::to_string),
    };
    Ok((opts, dry_run))
}

/// Delete one object of `kind` as the request asks, answering its last state.
pub async fn delete_one(
    call: &Call<'_>,
    kind: &'static Kind,
    ns: &str,
    name: &str,
    bytes: &[u8],
) -> Result<Value, Failure> {
    let (opts, dry_run) = delete_options(call, bytes)?;
    if dry_run {
        return Ok(call.registry().get(kind, ns, name)?.ok_or_else(|| RegistryError::not_found(kind, name))?);
    }
    Ok(call.registry().delete(kind, ns, name, &opts).await?)
}

/// `DELETE` an object.
pub async fn delete(call: &Call<'_>, bytes: &[u8]) -> Result<Response, Failure> {
    let last = delete_one(call, call.target.kind, &namespace_of(call), &call.target.name, bytes).await?;
    Ok(json(200, &last))
}
