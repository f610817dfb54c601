//! How a command fails, worded as kubectl words it: server refusals as
//! `Error from server (Reason): …`, usage errors as `error: …`, and a
//! partial failure when some objects of a manifest failed.

use tonic::Code;

use super::manifest::ManifestError;
use crate::cluster::dial::ConnectError;
use crate::cluster::ClusterError;

/// A command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The server refused the call.
    #[error("Error from server ({}): {}", reason(.0.code()), .0.message())]
    Server(#[from] tonic::Status),
    /// The server could not be reached.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// A manifest could not be read.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A node could not be set up or run.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The command line is not usable.
    #[error("error: {0}")]
    Usage(String),
    /// Several objects failed (the rest succeeded).
    #[error("{0} object(s) failed")]
    Partial(usize),
}

/// The Kubernetes `Status` reason of a gRPC code.
pub fn reason(code: Code) -> &'static str {
    match code {
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::InvalidArgument => "Invalid",
        Code::Aborted => "Conflict",
        Code::Unauthenticated => "Unauthorized",
        Code::PermissionDenied => "Forbidden",
        Code::OutOfRange => "Gone",
        Code::Unavailable => "ServiceUnavailable",
        Code::ResourceExhausted => "RequestEntityTooLarge",
        _ => "InternalError",
    }
}

/// Print one object's outcome as kubectl does: success on stdout, error on
/// stderr (counted in `failed`).
pub fn outcome(r: Result<String, tonic::Status>, failed: &mut usize) {
    match r {
        Ok(line) => println!("{line}"),
        Err(s) => {
            eprintln!("{}", CliError::Server(s));
            *failed += 1;
        }
    }
}

/// Fail the command if any object failed.
pub fn all_ok(failed: usize) -> Result<(), CliError> {
    if failed > 0 {
        return Err(CliError::Partial(failed));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_read_like_kubectl() {
        let e = CliError::Server(tonic::Status::not_found("configmaps \"x\" not found"));
        assert_eq!(e.to_string(), "Error from server (NotFound): configmaps \"x\" not found");
        assert_eq!(CliError::Usage("no".into()).to_string(), "error: no");
        assert!(all_ok(0).is_ok());
        assert_eq!(all_ok(2).unwrap_err().to_string(), "2 object(s) failed");
    }
}
