//! Kubernetes objects: the kinds clusterd serves, their validation, defaulting and
//! admission, and label/field selectors. Objects are `serde_json::Value`s checked
//! against `k8s-openapi`'s types, so unknown fields survive a round trip.

pub mod admission;
pub mod conditions;
pub mod conventions;
pub mod defaults;
#[cfg(test)]
pub(crate) mod fuzz_config;
#[cfg(test)]
pub(crate) mod fuzz_manifests;
#[cfg(test)]
mod fuzz_quantity;
#[cfg(test)]
mod fuzz_selectors;
pub mod kinds;
pub mod merge;
pub mod network;
pub mod owners;
pub mod patch_meta;
pub mod pod;
pub mod quantity;
pub mod schema;
pub mod selector;
pub mod typed;
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

/// The stored bytes of an object with its resourceVersion set, as JSON bytes,
/// without parsing the object into a value: the number goes in at the start
/// of the top-level `metadata` object, located by a borrowing parse (lists of
/// thousands of objects are served this way).
pub fn with_resource_version_bytes(bytes: &[u8], revision: u64) -> Result<Vec<u8>, serde_json::Error> {
    #[derive(serde::Deserialize)]
    struct Top<'a> {
        #[serde(borrow)]
        metadata: Option<&'a serde_json::value::RawValue>,
    }
    let top: Top = serde_json::from_slice(bytes)?;
    let Some(meta) = top.metadata.filter(|m| m.get().starts_with('{')) else {
        return with_resource_version(bytes, revision).and_then(|v| serde_json::to_vec(&v));
    };
    let at = meta.get().as_ptr() as usize - bytes.as_ptr() as usize + 1;
    let empty = meta.get()[1..].trim_start().starts_with('}');
    let field = format!("\"resourceVersion\":\"{revision}\"{}", if empty { "" } else { "," });
    let mut out = Vec::with_capacity(bytes.len() + field.len());
    out.extend_from_slice(&bytes[..at]);
    out.extend_from_slice(field.as_bytes());
    out.extend_from_slice(&bytes[at..]);
    Ok(out)
}

/// The stored form of an object: its JSON without resourceVersion.
pub fn encode(obj: &Value) -> Vec<u8> {
    let mut obj = obj.clone();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    serde_json::to_vec(&obj).expect("JSON values serialize")
}

/// An object's resourceVersion as a number (0 when missing).
pub fn resource_version(obj: &Value) -> u64 {
    meta_str(obj, "resourceVersion").parse().unwrap_or(0)
}

/// The store key of an object.
pub fn key_of(obj: &Value) -> Option<String> {
    let kind = Kind::of(obj)?;
    let ns = if kind.namespaced { meta_str(obj, "namespace") } else { "" };
    Some(kind.key(ns, meta_str(obj, "name")))
}

/// Whether an object carries a deletionTimestamp (it is being deleted).
pub fn being_deleted(obj: &Value) -> bool {
    obj.get("metadata").and_then(|m| m.get("deletionTimestamp")).is_some_and(|t| !t.is_null())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_resource_version_goes_into_the_raw_bytes_as_into_the_value() {
        for raw in [
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","labels":{"a":"b"}},"spec":{"template":{"metadata":{}}}}"#,
            r#"{"kind":"Pod","metadata":{}}"#,
            r#"{"kind":"Pod","metadata": { } ,"x":1}"#,
            r#"{"kind":"Pod"}"#,
        ] {
            let fast: serde_json::Value =
                serde_json::from_slice(&super::with_resource_version_bytes(raw.as_bytes(), 42).unwrap()).unwrap();
            let slow = super::with_resource_version(raw.as_bytes(), 42).unwrap();
            assert_eq!(fast, slow, "{raw}");
        }
    }
}
