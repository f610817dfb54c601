//! Kubernetes objects: the kinds clusterd serves, their validation, defaulting and
//! admission, and label/field selectors. Objects are `serde_json::Value`s checked
//! against `k8s-openapi`'s types, so unknown fields survive a round trip.

pub mod admission;
pub mod defaults;
pub mod kinds;
pub mod quantity;
pub mod selector;
pub mod validate;

use serde_json::Value;

pub use kinds::Kind;

/// A string field of `metadata`, or "".
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.get("metadata").and_then(|m| m.get(field)).and_then(Value::as_str).unwrap_or("")
}

/// The stored bytes of an object with its resourceVersion set.
pub fn with_resource_version(bytes: &[u8], revision: u64) -> Result<Value, serde_json::Error> {
    let mut obj: Value = serde_json::from_slice(bytes)?;
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(revision.to_string()));
    }
    Ok(obj)
}
