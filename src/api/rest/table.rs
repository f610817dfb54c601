//! (being written by a helper: server-side Tables)

use serde_json::{json, Value};

use crate::objects::Kind;

/// What a Table row carries of its object.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IncludeObject {
    /// `PartialObjectMetadata` (the default).
    #[default]
    Metadata,
    /// The whole object.
    Object,
    /// Nothing.
    None,
}

impl IncludeObject {
    /// `includeObject=` of a request.
    pub fn parse(s: &str) -> IncludeObject {
        match s {
            "Object" => IncludeObject::Object,
            "None" => IncludeObject::None,
            _ => IncludeObject::Metadata,
        }
    }
}

/// A `meta.k8s.io/v1` Table of `objects`.
pub fn table(_kind: &Kind, objects: &[Value], include: IncludeObject, list_meta: Value) -> Value {
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let object = match include {
                IncludeObject::Object => o.clone(),
                IncludeObject::None => Value::Null,
                IncludeObject::Metadata => {
                    json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": o["metadata"]})
                }
            };
            json!({"cells": [o["metadata"]["name"], o["metadata"]["creationTimestamp"]], "object": object})
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": [
            {"name": "Name", "type": "string", "format": "name", "description": "", "priority": 0},
            {"name": "Created At", "type": "date", "format": "", "description": "", "priority": 0},
        ],
        "rows": rows,
    })
}
