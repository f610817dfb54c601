//! Failures as Kubernetes reports them: a `meta.k8s.io/v1` `Status` object
//! with the HTTP code, a reason kubectl and client libraries branch on, and for
//! invalid objects one cause per field.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::registry::RegistryError;

/// A failed request, answered as a `Status` object.
#[derive(Debug)]
pub struct Failure {
    /// HTTP status code.
    pub code: u16,
    /// `Status.reason` (`NotFound`, `Invalid`, …).
    pub reason: &'static str,
    /// What happened, in Kubernetes' words.
    pub message: String,
    /// `Status.details` (name, kind, causes), if any.
    pub details: Option<Value>,
}

impl Failure {
    /// A failure with no details.
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Failure { code, reason, message: message.into(), details: None }
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Failure::new(400, "BadRequest", message)
    }

    /// 404 NotFound for a path that names nothing clusterd serves.
    pub fn no_route(path: &str) -> Self {
        Failure::new(404, "NotFound", format!("the server could not find the requested resource ({path})"))
    }

    /// 401 Unauthorized.
    pub fn unauthorized() -> Self {
        Failure::new(401, "Unauthorized", "Unauthorized")
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed(method: &str, what: &str) -> Self {
        Failure::new(405, "MethodNotAllowed", format!("{method} is not supported on {what}"))
    }

    /// 415 UnsupportedMediaType.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Failure::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format: {content_type}"),
        )
    }

    /// The `Status` object of this failure.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

impl From<RegistryError> for Failure {
    fn from(e: RegistryError) -> Self {
        let details = match &e {
            RegistryError::NotFound { resource, name }
            | RegistryError::AlreadyExists { resource, name }
            | RegistryError::Conflict { resource, name } => Some(json!({"name": name, "kind": resource})),
            RegistryError::FieldManagerConflict(c) => Some(json!({"causes": c.causes()})),
            RegistryError::Invalid(inv) => Some(json!({
                "name": inv.name,
                "kind": inv.kind,
                "causes": inv.causes.iter().map(|c| json!({
                    "reason": cause_reason(&c.message),
                    "message": c.message,
                    "field": c.field,
                })).collect::<Vec<_>>(),
            })),
            _ => None,
        };
        let message = match &e {
            RegistryError::Gone { .. } => format!("Gone: {e}"),
            _ => e.to_string(),
        };
        Failure { code: e.http_code(), reason: e.reason(), message, details }
    }
}

impl From<tonic::Status> for Failure {
    /// The node-reaching calls (logs, exec) report as gRPC statuses.
    fn from(s: tonic::Status) -> Self {
        use tonic::Code;
        let (code, reason) = match s.code() {
            Code::NotFound => (404, "NotFound"),
            Code::AlreadyExists => (409, "AlreadyExists"),
            Code::Aborted => (409, "Conflict"),
            Code::InvalidArgument | Code::FailedPrecondition => (400, "BadRequest"),
            Code::OutOfRange => (410, "Expired"),
            Code::PermissionDenied => (403, "Forbidden"),
            Code::Unauthenticated => (401, "Unauthorized"),
            Code::Unavailable | Code::DeadlineExceeded => (503, "ServiceUnavailable"),
            Code::ResourceExhausted => (429, "TooManyRequests"),
            _ => (500, "InternalError"),
        };
        Failure::new(code, reason, s.message())
    }
}

/// The cause type Kubernetes gives a field error, from its message's first words.
fn cause_reason(message: &str) -> &'static str {
    for (prefix, reason) in [
        ("Required value", "FieldValueRequired"),
        ("Invalid value", "FieldValueInvalid"),
        ("Duplicate value", "FieldValueDuplicate"),
        ("Unsupported value", "FieldValueNotSupported"),
        ("Forbidden", "FieldValueForbidden"),
        ("Too long", "FieldValueTooLong"),
        ("Too many", "FieldValueTooMany"),
        ("Not found", "FieldValueNotFound"),
    ] {
        if message.starts_with(prefix) {
            return reason;
        }
    }
    "FieldValueInvalid"
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (code, [(header::CONTENT_TYPE, "application/json")], self.to_status().to_string()).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::admission::Invalid;
    use crate::objects::kinds::POD;
    use crate::objects::validate::FieldError;

    #[test]
    fn registry_errors_become_kubernetes_statuses() {
        let cases = [
            (RegistryError::not_found(&POD, "p"), 404, "NotFound"),
            (RegistryError::already_exists(&POD, "p"), 409, "AlreadyExists"),
            (RegistryError::conflict(&POD, "p"), 409, "Conflict"),
            (RegistryError::Gone { requested: 1, compacted: 5 }, 410, "Expired"),
            (RegistryError::BadRequest("no".into()), 400, "BadRequest"),
        ];
        for (e, code, reason) in cases {
            let s = Failure::from(e).to_status();
            assert_eq!((s["code"].as_u64(), s["reason"].as_str()), (Some(code), Some(reason)), "{s}");
            assert_eq!(s["kind"], "Status");
        }
    }

    #[test]
    fn invalid_objects_name_each_field() {
        let e = RegistryError::Invalid(Invalid {
            kind: "Pod".into(),
            name: "p".into(),
            causes: vec![
                FieldError { field: "spec.containers".into(), message: "Required value".into() },
                FieldError { field: "metadata.name".into(), message: "Invalid value: \"A\"".into() },
            ],
        });
        let s = Failure::from(e).to_status();
        assert_eq!(s["code"], 422);
        let causes = s["details"]["causes"].as_array().unwrap();
        assert_eq!(causes[0]["field"], "spec.containers");
        assert_eq!(causes[0]["reason"], "FieldValueRequired");
        assert_eq!(causes[1]["reason"], "FieldValueInvalid");
    }
}
