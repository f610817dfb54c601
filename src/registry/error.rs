//! The one error type of every read and write of objects. Each door maps it
//! once: the gRPC API to status codes (`api::status`), the Kubernetes REST API
//! to `Status` objects through [`RegistryError::reason`] and
//! [`RegistryError::http_code`].

use crate::objects::admission::{AdmissionError, Invalid};
use crate::objects::Kind;

/// Why a read or write of objects failed. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The object does not exist (or no longer has the uid the caller meant).
    #[error("{resource} \"{name}\" not found")]
    NotFound {
        /// Resource name (`pods`).
        resource: String,
        /// Object name.
        name: String,
    },
    /// An object of that name exists already.
    #[error("{resource} \"{name}\" already exists")]
    AlreadyExists {
        /// Resource name (`pods`).
        resource: String,
        /// Object name.
        name: String,
    },
    /// The object changed since the caller read it (its resourceVersion is stale).
    #[error("Operation cannot be fulfilled on {resource} \"{name}\": the object has been modified; please apply your changes to the latest version and try again")]
    Conflict {
        /// Resource name (`pods`).
        resource: String,
        /// Object name.
        name: String,
    },
    /// A server-side apply would change fields other managers own (409,
    /// causes of reason `FieldManagerConflict`).
    #[error(transparent)]
    FieldManagerConflict(super::apply::Conflicts),
    /// Fields are invalid; every cause names its field.
    #[error(transparent)]
    Invalid(Invalid),
    /// The request itself is malformed (not JSON, unknown kind, bad option).
    #[error("{0}")]
    BadRequest(String),
    /// The object is larger than the store takes.
    #[error("request entity too large: the object is {0} bytes, the limit is {max}", max = crate::objects::admission::MAX_OBJECT_BYTES)]
    TooLarge(usize),
    /// A resourceVersion older than the compacted history.
    #[error("too old resource version: {requested} ({compacted})")]
    Gone {
        /// The revision asked for.
        requested: u64,
        /// The oldest revision still kept.
        compacted: u64,
    },
    /// The write is not allowed (e.g. creating in a terminating namespace).
    #[error("{0}")]
    Forbidden(String),
    /// No leader took the write in time; try again.
    #[error("the store is unavailable: {0}")]
    Unavailable(#[source] clusterd_raft::NodeError),
    /// Local storage or encoding failed.
    #[error("internal error: {0}")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl RegistryError {
    /// NotFound for an object of `kind`.
    pub fn not_found(kind: &Kind, name: &str) -> Self {
        RegistryError::NotFound { resource: kind.plural.into(), name: name.into() }
    }

    /// Conflict on an object of `kind`.
    pub fn conflict(kind: &Kind, name: &str) -> Self {
        RegistryError::Conflict { resource: kind.plural.into(), name: name.into() }
    }

    /// AlreadyExists for an object of `kind`.
    pub fn already_exists(kind: &Kind, name: &str) -> Self {
        RegistryError::AlreadyExists { resource: kind.plural.into(), name: name.into() }
    }

    /// Wrap a local failure (storage, encoding).
    pub fn internal(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        RegistryError::Internal(e.into())
    }

    /// Kubernetes' `Status.reason` for this error.
    pub fn reason(&self) -> &'static str {
        match self {
            RegistryError::NotFound { .. } => "NotFound",
            RegistryError::AlreadyExists { .. } => "AlreadyExists",
            RegistryError::Conflict { .. } | RegistryError::FieldManagerConflict(_) => "Conflict",
            RegistryError::Invalid(_) => "Invalid",
            RegistryError::BadRequest(_) => "BadRequest",
            RegistryError::TooLarge(_) => "RequestEntityTooLarge",
            RegistryError::Gone { .. } => "Expired",
            RegistryError::Forbidden(_) => "Forbidden",
            RegistryError::Unavailable(_) => "ServiceUnavailable",
            RegistryError::Internal(_) => "InternalError",
        }
    }

    /// Kubernetes' HTTP status code for this error.
    pub fn http_code(&self) -> u16 {
        match self {
            RegistryError::NotFound { .. } => 404,
            RegistryError::AlreadyExists { .. }
            | RegistryError::Conflict { .. }
            | RegistryError::FieldManagerConflict(_) => 409,
            RegistryError::Invalid(_) => 422,
            RegistryError::BadRequest(_) => 400,
            RegistryError::TooLarge(_) => 413,
            RegistryError::Gone { .. } => 410,
            RegistryError::Forbidden(_) => 403,
            RegistryError::Unavailable(_) => 503,
            RegistryError::Internal(_) => 500,
        }
    }

    /// Whether trying the same write again later may succeed (the controllers'
    /// back-off retries these and gives up on the others until the next change).
    pub fn retriable(&self) -> bool {
        !matches!(
            self,
            RegistryError::NotFound { .. } | RegistryError::Conflict { .. } | RegistryError::FieldManagerConflict(_)
        )
    }
}

impl From<AdmissionError> for RegistryError {
    fn from(e: AdmissionError) -> Self {
        match e {
            AdmissionError::Invalid(invalid) => RegistryError::Invalid(invalid),
            AdmissionError::BadRequest(m) => RegistryError::BadRequest(m),
            AdmissionError::TooLarge(n) => RegistryError::TooLarge(n),
        }
    }
}

impl From<clusterd_raft::storage::reader::ReadError> for RegistryError {
    fn from(e: clusterd_raft::storage::reader::ReadError) -> Self {
        RegistryError::internal(e)
    }
}

impl From<serde_json::Error> for RegistryError {
    fn from(e: serde_json::Error) -> Self {
        RegistryError::internal(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::validate::FieldError;

    #[test]
    fn invalid_lists_every_cause_as_kubernetes_does() {
        let one = RegistryError::Invalid(Invalid {
            kind: "Deployment".into(),
            name: "web".into(),
            causes: vec![FieldError { field: "spec.replicas".into(), message: "Invalid value: -3".into() }],
        });
        assert_eq!(one.to_string(), "Deployment \"web\" is invalid: spec.replicas: Invalid value: -3");
        let two = RegistryError::Invalid(Invalid {
            kind: "Deployment".into(),
            name: "web".into(),
            causes: vec![
                FieldError { field: "spec.replicas".into(), message: "Invalid value: -3".into() },
                FieldError { field: "spec.selector".into(), message: "Required value".into() },
            ],
        });
        assert_eq!(
            two.to_string(),
            "Deployment \"web\" is invalid: [spec.replicas: Invalid value: -3, spec.selector: Required value]"
        );
        assert_eq!((two.reason(), two.http_code()), ("Invalid", 422));
    }
}
