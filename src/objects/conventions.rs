//! Names and places that several components agree on: where a pod finds its
//! service-account token, what its Secret is called, where the cluster's
//! settings are kept.

/// Where a pod's service-account token, CA and namespace are mounted.
pub const SERVICE_ACCOUNT_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Where the cluster's settings live in the store.
pub const CLUSTER_CONFIG_KEY: &str = "/clusterd/config";

/// The name of a ServiceAccount's token Secret.
pub fn token_secret_name(sa: &str) -> String {
    format!("{sa}-token")
}

/// Keys under which clusterd keeps its own (non-object) records.
pub mod keys {
    /// The cluster CA (certificate and key), JSON.
    pub const CA: &str = "/clusterd/pki/ca";
    /// SHA-256 (hex) of the admin bearer token.
    pub const ADMIN_TOKEN: &str = "/clusterd/admin-token";
    /// Node registrations: `/clusterd/members/<name>`.
    pub const MEMBERS: &str = "/clusterd/members/";
    /// Key prefixes a backup snapshot leaves out: node registrations name
    /// members a restored cluster does not have (and would keep those names
    /// from joining it again). The Raft membership is not in the keys at all.
    pub const NOT_IN_SNAPSHOTS: &[&str] = &[MEMBERS];
}

/// The namespace of the nodes' heartbeat Leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";
