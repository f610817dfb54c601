//! Server-side Tables: `kubectl get` asks for
//! `application/json;as=Table;v=v1;g=meta.k8s.io` and prints the columns the
//! server chose, so the server must know kubectl's columns (a plain list
//! prints as NAME and AGE only). The columns and cells come from
//! [`crate::api::columns`], the same definition `clusterd get` prints.
//!
//! Every cell is sent, the `-o wide` ones too: kubectl drops the
//! `priority: 1` columns itself unless asked for them. Each row carries the
//! object as `includeObject` asks: its metadata as a `PartialObjectMetadata`
//! (the default; kubectl reads names and namespaces from it), the whole
//! object, or nothing.
//!
//! A watch sends each event's object as a Table of one row. As the API
//! server does, only a watch's first Table carries the column definitions
//! (build it with [`object_table`]); the others ([`table_row_event`]) leave
//! them out and kubectl keeps using the first ones. Status objects (ERROR
//! events) are sent as they are.

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use crate::api::columns::{self, Column};
use crate::objects::Kind;

/// The `apiVersion` of Tables and of the metadata-only row objects.
pub const META_V1: &str = "meta.k8s.io/v1";

/// What each row carries besides its cells (the `includeObject` parameter).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IncludeObject {
    /// Nothing (`None`).
    None,
    /// The object's metadata as a `PartialObjectMetadata` (`Metadata`, the default).
    #[default]
    Metadata,
    /// The whole object (`Object`).
    Object,
}

/// An `includeObject` value Kubernetes does not know.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("includeObject must be one of None, Metadata or Object, not {0:?}")]
pub struct UnknownIncludeObject(pub String);

impl IncludeObject {
    /// The `includeObject` query parameter; empty means the default.
    pub fn parse(s: &str) -> Result<Self, UnknownIncludeObject> {
        match s {
            "None" => Ok(IncludeObject::None),
            "" | "Metadata" => Ok(IncludeObject::Metadata),
            "Object" => Ok(IncludeObject::Object),
            other => Err(UnknownIncludeObject(other.to_string())),
        }
    }
}

/// Whether an `Accept` header asks for a `meta.k8s.io/v1` Table
/// (`application/json;as=Table;v=v1;g=meta.k8s.io`, possibly among other
/// media types, as kubectl sends it).
pub fn wants_table(accept: &str) -> bool {
    accept.split(',').any(|media| {
        let mut parts = media.split(';').map(str::trim);
        let ty = parts.next().unwrap_or_default();
        let params: Vec<(&str, &str)> = parts.filter_map(|p| p.split_once('=')).collect();
        let param = |k: &str| params.iter().find(|(name, _)| name.eq_ignore_ascii_case(k)).map(|(_, v)| *v);
        (ty == "application/json" || ty == "*/*" || ty == "application/*")
            && param("as") == Some("Table")
            && param("g") == Some("meta.k8s.io")
            && param("v") == Some("v1")
    })
}

/// A Table of `objects` (all of `kind`) with its column definitions;
/// `list_meta` is its `metadata` (the list's `resourceVersion`, `continue`,
/// …; for a single object, `{"resourceVersion": <the object's>}`).
pub fn table(kind: &Kind, objects: &[Value], include: IncludeObject, list_meta: Value) -> Value {
    table_at(kind, objects, include, list_meta, true, Utc::now())
}

/// One object as a Table with its column definitions, its `metadata` the
/// object's `resourceVersion`: the answer to a GET of one object, and the
/// object of a watch's first event.
pub fn object_table(kind: &Kind, obj: &Value, include: IncludeObject) -> Value {
    table_at(kind, std::slice::from_ref(obj), include, version_of(obj), true, Utc::now())
}

/// A watch event's object as a Table: one row, no column definitions (the
/// first event of a watch carries them: build that one with
/// [`object_table`]). Its `metadata` has the object's `resourceVersion`.
pub fn table_row_event(kind: &Kind, obj: &Value, include: IncludeObject) -> Value {
    table_at(kind, std::slice::from_ref(obj), include, version_of(obj), false, Utc::now())
}

fn version_of(obj: &Value) -> Value {
    json!({"resourceVersion": crate::objects::meta_str(obj, "resourceVersion")})
}

/// A column's definition as Tables carry it.
pub fn column_definition(c: &Column) -> Value {
    json!({
        "name": c.name,
        "type": c.ty.as_str(),
        "format": c.format,
        "description": c.description,
        "priority": c.priority,
    })
}

fn table_at(
    kind: &Kind,
    objects: &[Value],
    include: IncludeObject,
    list_meta: Value,
    with_columns: bool,
    now: DateTime<Utc>,
) -> Value {
    let definitions: Vec<Value> =
        if with_columns { columns::columns(kind).iter().map(column_definition).collect() } else { Vec::new() };
    let rows: Vec<Value> = objects.iter().map(|o| row(kind, o, include, now)).collect();
    let metadata = if list_meta.is_object() { list_meta } else { Value::Object(Map::new()) };
    json!({
        "kind": "Table",
        "apiVersion": META_V1,
        "metadata": metadata,
        "columnDefinitions": definitions,
        "rows": rows,
    })
}

fn row(kind: &Kind, obj: &Value, include: IncludeObject, now: DateTime<Utc>) -> Value {
    let cells: Vec<Value> = columns::cells(kind, obj, now).iter().map(columns::Cell::to_json).collect();
    let object = match include {
        IncludeObject::None => Value::Null,
        IncludeObject::Metadata => json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": META_V1,
            "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
        }),
        IncludeObject::Object => with_type(kind, obj),
    };
    let mut r = json!({"cells": cells, "object": object});
    if let Some((reason, message)) = columns::completed(kind, obj) {
        r["conditions"] = json!([{"type": "Completed", "status": "True", "reason": reason, "message": message}]);
    }
    r
}

/// The object with its `kind` and `apiVersion` (items of a stored list may
/// leave them out; a row's object must say what it is).
fn with_type(kind: &Kind, obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.entry("kind").or_insert_with(|| kind.kind.into());
        m.entry("apiVersion").or_insert_with(|| kind.api_version.into());
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::kinds;

    fn at(t: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc)
    }

    fn pod(name: &str, phase: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "apps", "uid": "u-1", "resourceVersion": "42",
                "labels": {"app": "web"}, "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"nodeName": "n1", "containers": [{"name": "a", "image": "busybox"}]},
            "status": {"phase": phase, "podIP": "10.0.0.5", "containerStatuses": [
                {"name": "a", "image": "busybox", "imageID": "", "ready": phase == "Running", "restartCount": 0,
                 "state": if phase == "Running" { json!({"running": {}}) } else { json!({"terminated": {"exitCode": 0, "reason": "Completed"}}) }}]}})
    }

    #[test]
    fn a_list_becomes_a_table_kubectl_prints() {
        let now = at("2026-01-01T00:05:00Z");
        let pods = [pod("web-1", "Running"), pod("job-1", "Succeeded")];
        let meta = json!({"resourceVersion": "57", "continue": "abc"});
        let t = table_at(&kinds::POD, &pods, IncludeObject::Metadata, meta.clone(), true, now);
        assert_eq!((t["kind"].as_str(), t["apiVersion"].as_str()), (Some("Table"), Some("meta.k8s.io/v1")));
        assert_eq!(t["metadata"], meta);
        let defs = t["columnDefinitions"].as_array().unwrap();
        let names: Vec<&str> = defs.iter().map(|d| d["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            ["Name", "Ready", "Status", "Restarts", "Age", "IP", "Node", "Nominated Node", "Readiness Gates"]
        );
        assert_eq!(defs[0]["format"], "name");
        assert_eq!(defs[0]["type"], "string");
        let priorities: Vec<i64> = defs.iter().map(|d| d["priority"].as_i64().unwrap()).collect();
        assert_eq!(priorities, [0, 0, 0, 0, 0, 1, 1, 1, 1]);

        let rows = t["rows"].as_array().unwrap();
        assert_eq!(
            rows[0]["cells"],
            json!(["web-1", "1/1", "Running", "0", "5m", "10.0.0.5", "n1", "<none>", "<none>"])
        );
        assert_eq!(rows[1]["cells"][2], "Completed");
        let object = &rows[0]["object"];
        assert_eq!(object["kind"], "PartialObjectMetadata");
        assert_eq!(object["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(object["metadata"], pods[0]["metadata"]);
        assert!(object.get("spec").is_none(), "metadata only");
        assert!(rows[0].get("conditions").is_none());
        assert_eq!(rows[1]["conditions"][0]["type"], "Completed");
        assert_eq!(rows[1]["conditions"][0]["reason"], "Succeeded");
    }

    #[test]
    fn include_object_chooses_what_rows_carry() {
        let now = at("2026-01-01T00:05:00Z");
        let mut bare = pod("web-1", "Running");
        let m = bare.as_object_mut().unwrap();
        m.remove("kind");
        m.remove("apiVersion");
        let whole = table_at(&kinds::POD, &[bare.clone()], IncludeObject::Object, json!({}), true, now);
        let object = &whole["rows"][0]["object"];
        assert_eq!((object["kind"].as_str(), object["apiVersion"].as_str()), (Some("Pod"), Some("v1")));
        assert_eq!(object["spec"], bare["spec"]);
        let none = table_at(&kinds::POD, &[bare], IncludeObject::None, Value::Null, true, now);
        assert!(none["rows"][0]["object"].is_null());
        assert_eq!(none["metadata"], json!({}));

        assert_eq!(IncludeObject::parse(""), Ok(IncludeObject::Metadata));
        assert_eq!(IncludeObject::parse("Metadata"), Ok(IncludeObject::Metadata));
        assert_eq!(IncludeObject::parse("Object"), Ok(IncludeObject::Object));
        assert_eq!(IncludeObject::parse("None"), Ok(IncludeObject::None));
        assert_eq!(IncludeObject::parse("object"), Err(UnknownIncludeObject("object".into())));
    }

    #[test]
    fn watch_events_carry_one_row_and_no_columns() {
        let ev = table_row_event(&kinds::POD, &pod("web-1", "Running"), IncludeObject::Metadata);
        assert_eq!(ev["kind"], "Table");
        assert_eq!(ev["columnDefinitions"], json!([]));
        assert_eq!(ev["metadata"]["resourceVersion"], "42");
        let rows = ev["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["cells"][0], "web-1");
        assert_eq!(rows[0]["cells"].as_array().unwrap().len(), columns::columns(&kinds::POD).len());
        let first = object_table(&kinds::POD, &pod("web-1", "Running"), IncludeObject::Metadata);
        assert_eq!(first["columnDefinitions"].as_array().unwrap().len(), 9);
        assert_eq!(first["metadata"]["resourceVersion"], "42");
        assert_eq!(first["rows"][0]["cells"], ev["rows"][0]["cells"]);
    }

    #[test]
    fn integer_cells_are_numbers_and_every_kind_fills_its_columns() {
        let now = at("2026-01-01T00:05:00Z");
        let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web-abc", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}},
            "status": {"replicas": 3, "readyReplicas": 2}});
        let t = table_at(&kinds::REPLICA_SET, &[rs], IncludeObject::None, json!({}), true, now);
        assert_eq!(t["rows"][0]["cells"], json!(["web-abc", 3, 3, 2, "5m", "", "", "app=web"]));
        assert_eq!(t["columnDefinitions"][1]["type"], "integer");
        for kind in kinds::KINDS {
            let obj = json!({"metadata": {"name": "x", "creationTimestamp": "2026-01-01T00:00:00Z"}});
            let t = table_at(kind, &[obj], IncludeObject::Metadata, json!({}), true, now);
            let (defs, cells) = (&t["columnDefinitions"], &t["rows"][0]["cells"]);
            assert_eq!(defs.as_array().unwrap().len(), cells.as_array().unwrap().len(), "{}", kind.kind);
        }
    }

    #[test]
    fn kubectl_accept_headers_ask_for_tables() {
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert!(wants_table(kubectl));
        assert!(wants_table("application/json; as=Table; v=v1; g=meta.k8s.io"));
        assert!(!wants_table("application/json"));
        assert!(!wants_table("application/json;as=Table;v=v1beta1;g=meta.k8s.io"));
        assert!(!wants_table("application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"));
    }
}
