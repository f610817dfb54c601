//! # clusterd
//!
//! A container orchestrator that does what a small Kubernetes cluster does, as one
//! binary per node with its own Raft.
//!
//! * [`objects`] — Kubernetes objects: kinds, validation, defaulting, admission, selectors.
//! * [`api`] — the gRPC API every node serves (`proto/clusterd.proto`).
//! * [`cluster`] — a node's life cycle: `init`, `join`, `start`.
//! * [`client`] — connecting to the API and the kubectl-shaped verbs.
//! * [`cli`] — the command line.
//!
//! The replicated store is the `clusterd-raft` crate; running containers is
//! `clusterd-runtime`'s job.

pub mod actors;
pub mod api;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod controllers;
pub mod kubelet;
pub mod objects;
pub mod scheduler;
pub mod util;
