//! The one mapping of registry errors to gRPC status codes.

use tonic::{Code, Status};

use crate::registry::RegistryError;

/// The gRPC code of a registry error.
pub fn code(e: &RegistryError) -> Code {
    match e {
        RegistryError::NotFound { .. } => Code::NotFound,
        RegistryError::AlreadyExists { .. } => Code::AlreadyExists,
        RegistryError::Conflict { .. } | RegistryError::FieldManagerConflict(_) => Code::Aborted,
        RegistryError::Invalid(_) | RegistryError::BadRequest(_) => Code::InvalidArgument,
        RegistryError::TooLarge(_) => Code::ResourceExhausted,
        RegistryError::Gone { .. } => Code::OutOfRange,
        RegistryError::Forbidden(_) => Code::PermissionDenied,
        RegistryError::Unavailable(_) => Code::Unavailable,
        RegistryError::Internal(_) => Code::Internal,
    }
}

/// A registry error as a gRPC status: its code, and its message in Kubernetes' words.
pub fn status(e: RegistryError) -> Status {
    let message = match &e {
        RegistryError::Gone { .. } => format!("Gone: {e}"),
        _ => e.to_string(),
    };
    Status::new(code(&e), message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::kinds::POD;

    #[test]
    fn each_error_has_its_code() {
        let cases = [
            (RegistryError::not_found(&POD, "p"), Code::NotFound, "pods \"p\" not found"),
            (RegistryError::already_exists(&POD, "p"), Code::AlreadyExists, "pods \"p\" already exists"),
            (RegistryError::conflict(&POD, "p"), Code::Aborted, "Operation cannot be fulfilled on pods \"p\""),
            (
                RegistryError::Gone { requested: 3, compacted: 9 },
                Code::OutOfRange,
                "Gone: too old resource version: 3 (9)",
            ),
            (RegistryError::Forbidden("no".into()), Code::PermissionDenied, "no"),
        ];
        for (e, c, msg) in cases {
            let s = status(e);
            assert_eq!(s.code(), c);
            assert!(s.message().starts_with(msg), "{}", s.message());
        }
    }
}
