//! The Kubernetes REST API: kubectl and client libraries, unmodified, over the
//! same registry as the gRPC API, on the same TLS port (paths tell them apart).

pub mod exec;
pub mod logs;
pub mod openapi;
pub mod status;
pub mod table;
