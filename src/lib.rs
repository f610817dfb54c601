//! # clusterd
//!
//! A container orchestrator that does what a small Kubernetes cluster does, as one
//! binary per node with its own Raft.
//!
//! * [`objects`] — Kubernetes objects: kinds, validation, defaulting, admission, selectors.
//! * [`registry`] — the one writer of objects, the node's informers, Events.
//! * [`scheduler`], [`controllers`], [`kubelet`] — the node's actors, fed by the registry.
//! * [`proxy`], [`dns`] — Services' ClusterIPs and NodePorts in nftables, and
//!   the cluster DNS, on every node from its replica (beside the actors).
//! * [`api`] — the gRPC API every node serves (`proto/clusterd.proto`).
//! * [`cluster`] — a node's life cycle: `init`, `join`, `start`.
//! * [`client`] — connecting to the API and the kubectl-shaped verbs.
//! * [`cli`] — the command line.
//!
//! Layers point one way: `objects → util → registry → {scheduler, controllers,
//! kubelet, proxy, dns} → api → cluster → client → cli`; no module imports one above it
//! and no modules or files import each other in a loop (checked by
//! `shared/tools/layers.py`).
//!
//! The replicated store is the `clusterd-raft` crate; running containers is
//! `clusterd-runtime`'s job.

pub mod api;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod controllers;
pub mod dns;
pub mod kubelet;
pub mod objects;
pub mod proxy;
pub mod registry;
pub mod scheduler;
pub mod util;
