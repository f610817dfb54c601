//! How a node gets its own certificate from the cluster CA its own
//! replica holds — for a node that moved (its stopped replica) and for a
//! running node renewing (its live replica). The CA key is replicated to every
//! node, so no other node has to answer.

use clusterd_raft::pki::{Ca, Identity};
use clusterd_raft::StoreReader;

use super::config::NodeState;
use super::ClusterError;
use crate::objects::conventions::{self, keys};

/// The cluster CA kept in a replica.
pub fn replica_ca(replica: &StoreReader) -> Result<Ca, ClusterError> {
    let kv = replica
        .get(keys::CA)
        .map_err(|e| ClusterError::Config(e.to_string()))?
        .ok_or_else(|| ClusterError::Config("the replica holds no cluster CA".into()))?;
    serde_json::from_slice(&kv.value).map_err(|e| ClusterError::Config(format!("the cluster CA: {e}")))
}

/// A certificate for the node `state` describes — its name and addresses —
/// signed by the CA in `replica`, valid for the node's policy; for the node's
/// key `key_pem` if given (a renewal), else for a new key.
pub fn issue_from_replica(
    replica: &StoreReader,
    state: &NodeState,
    key_pem: Option<&str>,
) -> Result<Identity, ClusterError> {
    let ca = replica_ca(replica)?;
    Ok(conventions::issue_node_certificate(
        &ca,
        &state.name,
        &state.raft_addr,
        &state.api_addr,
        state.certificates.validity(),
        key_pem,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::cert_policy::CertPolicy;
    use clusterd_raft::pki;

    #[test]
    fn a_node_state_without_a_policy_gets_the_defaults() {
        let json = r#"{"id":1,"name":"n1","raftAddr":"127.0.0.1:1","apiAddr":"127.0.0.1:2","controlPlane":true,
            "snapshotEvery":10,"keepLogs":10}"#;
        let state: NodeState = serde_json::from_str(json).unwrap();
        assert_eq!(state.certificates, CertPolicy::default());
        assert_eq!(state.certificates.validity(), pki::NODE_VALIDITY);
    }
}
