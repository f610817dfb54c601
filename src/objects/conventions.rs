//! Names and places that several components agree on: where a pod finds its
//! service-account token, what its Secret is called, where the cluster's
//! settings are kept.

/// Where a pod's service-account token, CA and namespace are mounted.
pub const SERVICE_ACCOUNT_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Where the cluster's settings live in the store.
pub const CLUSTER_CONFIG_KEY: &str = "/clusterd/config";

/// The names a node's certificate carries besides `clusterd-node` and
/// `localhost`: the IPs of its Raft and API addresses, and its name.
pub fn node_certificate_names(name: &str, raft_addr: &str, api_addr: &str) -> Vec<String> {
    let mut out: Vec<String> = [raft_addr, api_addr]
        .iter()
        .filter_map(|a| a.parse::<std::net::SocketAddr>().ok())
        .map(|a| a.ip().to_string())
        .collect();
    out.dedup();
    out.push(name.to_string());
    out
}

/// A node's certificate: for its user and the names above, signed by `ca`,
/// valid for `validity`; for the node's key `key_pem` if given (a renewal
/// keeps the key), else for a new one. `init`, the join handler, a moved
/// node and a renewal all issue it here.
pub fn issue_node_certificate(
    ca: &clusterd_raft::pki::Ca,
    name: &str,
    raft_addr: &str,
    api_addr: &str,
    validity: std::time::Duration,
    key_pem: Option<&str>,
) -> Result<clusterd_raft::pki::Identity, clusterd_raft::pki::PkiError> {
    let names = node_certificate_names(name, raft_addr, api_addr);
    match key_pem {
        Some(key) => ca.issue_for_key(&node_user(name), &names, validity, key),
        None => ca.issue(&node_user(name), &names, validity),
    }
}

/// The user name of a node's certificate.
pub fn node_user(name: &str) -> String {
    format!("system:node:{name}")
}

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
    /// The field of a registration in which its node publishes when its
    /// certificate expires (RFC 3339).
    pub const MEMBER_CERT_NOT_AFTER: &str = "certNotAfter";
    /// Key prefixes a backup snapshot leaves out: node registrations name
    /// members a restored cluster does not have (and would keep those names
    /// from joining it again). The Raft membership is not in the keys at all.
    pub const NOT_IN_SNAPSHOTS: &[&str] = &[MEMBERS];
}

/// The namespace of the nodes' heartbeat Leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_certificate_names_its_addresses_and_its_name() {
        assert_eq!(node_certificate_names("n2", "127.0.0.2:2380", "127.0.0.3:6443"), ["127.0.0.2", "127.0.0.3", "n2"]);
        assert_eq!(node_certificate_names("n1", "10.0.0.1:2380", "10.0.0.1:6443"), ["10.0.0.1", "n1"]);
        assert_eq!(node_user("n1"), "system:node:n1");
    }
}
