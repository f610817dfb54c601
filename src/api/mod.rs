//! The gRPC API every node serves: object CRUD and watch, and cluster calls.
//! Bodies are Kubernetes JSON; see `proto/clusterd.proto`.

pub mod auth;
pub mod columns;
#[cfg(test)]
mod fuzz_requests;
pub mod pods;
pub mod rest;
pub mod server;
pub mod service;
pub mod status;
pub mod tokens;

/// Code generated from `proto/clusterd.proto`.
#[allow(missing_docs, clippy::all)]
pub mod pb {
    tonic::include_proto!("clusterd.v1");
}

/// etcd's Put, for the benchmark's comparison.
#[allow(missing_docs, clippy::all)]
pub mod etcd {
    tonic::include_proto!("etcdserverpb");
}

pub use crate::objects::conventions::keys;
