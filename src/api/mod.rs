//! The gRPC API every node serves: object CRUD and watch, and cluster calls.
//! Bodies are Kubernetes JSON; see `proto/clusterd.proto`.

pub mod auth;
pub mod deletion;
pub mod pods;
pub mod server;
pub mod service;
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

/// Keys under which clusterd keeps its own (non-object) records.
pub mod keys {
    /// The cluster CA (certificate and key), JSON.
    pub const CA: &str = "/clusterd/pki/ca";
    /// SHA-256 (hex) of the admin bearer token.
    pub const ADMIN_TOKEN: &str = "/clusterd/admin-token";
    /// Node registrations: `/clusterd/members/<name>`.
    pub const MEMBERS: &str = "/clusterd/members/";
}
