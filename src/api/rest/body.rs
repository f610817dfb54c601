//! Bodies in and out: request bodies as JSON or YAML by their content type,
//! answers as JSON — or as a Table when the client asks for one (`kubectl get`).

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::status::Failure;
use crate::objects::admission::MAX_OBJECT_BYTES;

/// The largest request body taken (a manifest of the largest object, with room for YAML).
pub const MAX_BODY: usize = 3 * MAX_OBJECT_BYTES;

/// The request's content type without parameters (`application/json`).
pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// Decode a request body: YAML for `*yaml` content types, JSON otherwise.
pub fn decode(content_type: &str, bytes: &[u8]) -> Result<Value, Failure> {
    if bytes.len() > MAX_BODY {
        return Err(Failure::new(
            413,
            "RequestEntityTooLarge",
            format!("the request body is {} bytes, the limit is {MAX_BODY}", bytes.len()),
        ));
    }
    if content_type == "application/vnd.kubernetes.protobuf" {
        return super::protobuf::decode(bytes).map_err(|e| match e {
            super::protobuf::ProtobufError::Unsupported(_) => Failure::new(415, "UnsupportedMediaType", e.to_string()),
            super::protobuf::ProtobufError::Malformed(_) => Failure::bad_request(e.to_string()),
        });
    }
    if content_type.contains("protobuf") || content_type.contains("cbor") {
        return Err(Failure::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml (not {content_type})"),
        ));
    }
    let v: Value = if content_type.ends_with("yaml") {
        serde_yaml_ng::from_slice(bytes).map_err(|e| Failure::bad_request(format!("error decoding YAML: {e}")))?
    } else {
        serde_json::from_slice(bytes).map_err(|e| Failure::bad_request(format!("error decoding JSON: {e}")))?
    };
    Ok(v)
}

/// Whether the client asks for a Table (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`).
pub fn wants_table(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).any(super::table::wants_table)
}

/// The `includeObject` of a Table request.
pub fn include_object(params: &super::query::Params) -> Result<super::table::IncludeObject, Failure> {
    super::table::IncludeObject::parse(params.get("includeObject").unwrap_or(""))
        .map_err(|e| Failure::bad_request(e.to_string()))
}

/// A JSON answer already serialized.
pub fn json_bytes(code: u16, bytes: Vec<u8>) -> Response {
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    (code, [(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}

/// A JSON answer.
pub fn json(code: u16, v: &Value) -> Response {
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    (code, [(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_decode_by_content_type() {
        assert_eq!(
            decode("application/apply-patch+yaml", b"a: 1\nb: [x]").unwrap(),
            serde_json::json!({"a": 1, "b": ["x"]})
        );
        assert_eq!(decode("application/json", br#"{"a":1}"#).unwrap(), serde_json::json!({"a": 1}));
        assert_eq!(decode("application/json", b"{").unwrap_err().code, 400);
        assert_eq!(decode("application/vnd.kubernetes.protobuf", b"{}").unwrap_err().code, 400);
        assert_eq!(decode("application/cbor", b"").unwrap_err().code, 415);
    }
}
