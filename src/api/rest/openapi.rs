//! (being written by a helper: OpenAPI v2 and v3 documents)

use std::sync::Arc;

use serde_json::{json, Value};

/// `GET /openapi/v3`.
pub fn v3_index() -> Value {
    json!({"paths": {}})
}

/// `GET /openapi/v3/<group-version path>`.
pub fn v3_document(_group_version_path: &str) -> Option<Arc<Value>> {
    None
}

/// `GET /openapi/v2`.
pub fn v2() -> Arc<Value> {
    Arc::new(json!({"swagger": "2.0", "info": {"title": "clusterd", "version": "v1"}, "paths": {}, "definitions": {}}))
}
