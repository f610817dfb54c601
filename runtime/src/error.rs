//! The runtime's errors, shaped so a kubelet can turn them into Kubernetes
//! reasons (`ErrImagePull`, `CreateContainerError`, ...).

use std::path::PathBuf;

/// What went wrong while running pods.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The image reference does not parse.
    #[error("invalid image reference \"{0}\"")]
    InvalidImageName(String),
    /// The image is not in the local store.
    #[error("image \"{0}\" not found")]
    ImageNotFound(String),
    /// Pulling the image failed (`ErrImagePull`).
    #[error("pulling image \"{image}\": {reason}")]
    ImagePull {
        /// The reference.
        image: String,
        /// Why.
        reason: String,
    },
    /// An image archive or blob is malformed.
    #[error("bad image {what}: {reason}")]
    BadImage {
        /// What was being read.
        what: String,
        /// Why.
        reason: String,
    },
    /// The container could not be created (`CreateContainerError`).
    #[error("creating container {id}: {reason}")]
    CreateContainer {
        /// Container id.
        id: String,
        /// Why.
        reason: String,
    },
    /// The container could not be started (`RunContainerError`), e.g. an unknown command.
    #[error("starting container {id}: {reason}")]
    StartContainer {
        /// Container id.
        id: String,
        /// Why.
        reason: String,
    },
    /// No such container.
    #[error("container \"{0}\" not found")]
    ContainerNotFound(String),
    /// No such pod sandbox.
    #[error("pod sandbox \"{0}\" not found")]
    SandboxNotFound(String),
    /// The sandbox could not be set up (`CreatePodSandboxError`).
    #[error("pod sandbox {id}: {reason}")]
    Sandbox {
        /// Sandbox id.
        id: String,
        /// Why.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A host command (ip, mount) failed.
    #[error("{command}: {reason}")]
    Host {
        /// What ran.
        command: String,
        /// Why.
        reason: String,
    },
}

impl RuntimeError {
    /// The Kubernetes waiting reason this error maps to.
    pub fn reason(&self) -> &'static str {
        match self {
            RuntimeError::InvalidImageName(_) => "InvalidImageName",
            RuntimeError::ImageNotFound(_) | RuntimeError::ImagePull { .. } | RuntimeError::BadImage { .. } => {
                "ErrImagePull"
            }
            RuntimeError::StartContainer { .. } => "RunContainerError",
            RuntimeError::Sandbox { .. } | RuntimeError::SandboxNotFound(_) => "CreatePodSandboxError",
            _ => "CreateContainerError",
        }
    }
}

/// `?` for io errors with the path attached.
pub(crate) trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T, RuntimeError>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T, RuntimeError> {
        self.map_err(|source| RuntimeError::Io { path: path.into(), source })
    }
}
