//! # clusterd-runtime
//!
//! Runs pods on this host — real OCI containers through youki's libcontainer,
//! with no containerd or Docker. Knows nothing of Raft; the kubelet drives it.
//!
//! * [`runtime`] — the CRI-shaped API: sandboxes and containers.
//! * [`shim`] — the per-container process that creates, holds and reaps a container.
//! * [`bundle`] — OCI runtime specs.
//! * [`cgroup`] — the node's cgroups, and where a pod's pause process is placed.
//! * [`image`] — the content-addressed image store and OCI archives.
//! * [`network`] — the node's bridge, per-pod veths, IPAM and masquerade.
//! * [`recovery`] — what a restarted runtime keeps or removes of an earlier run.
//! * [`failpoint`] — crash points a test can make the node die at.

pub mod bundle;
pub mod cgroup;
pub mod error;
pub mod failpoint;
pub mod image;
pub mod network;
pub mod recovery;
pub mod runtime;
pub mod shim;

pub use bundle::{Mount, Resources};
pub use error::RuntimeError;
pub use runtime::{ContainerConfig, ContainerState, ContainerStatus, Runtime, RuntimeConfig, SandboxConfig};
