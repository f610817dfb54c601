//! A node whose host's address changed: started with its new addresses, it
//! gets a certificate that names them (issued from the cluster CA its own
//! replica holds), then tells the cluster — its Raft membership entry is
//! rewritten through the leader, and its registration (what other nodes use
//! to reach it for logs and exec) is updated.

use std::time::Duration;

use serde_json::json;

use clusterd_raft::pki::Identity;
use clusterd_raft::{Command, Member, Op, Txn};

use super::config::{DataDir, NodeState};
use super::run::RunningNode;
use super::ClusterError;
use crate::objects::conventions::keys;

/// How long the moved node keeps asking for its new membership entry.
const ANNOUNCE_WAIT: Duration = Duration::from_secs(60);

/// Issue this node a certificate for its new addresses from the CA in its
/// own (stopped) replica, and keep it in the data dir.
pub fn reissue_certificate(dir: &DataDir, state: &NodeState) -> Result<Identity, ClusterError> {
    let (ca_pem, _) = dir.load_pki()?;
    let (_log, _sm, reader) = clusterd_raft::storage::open(&dir.db_path())
        .map_err(|e| ClusterError::Config(format!("{}: {e}", dir.db_path().display())))?;
    let id = super::node_cert::issue_from_replica(&reader, state, None)?;
    dir.save_pki(&ca_pem, &id)?;
    Ok(id)
}

/// Tell the cluster the node's new addresses: its membership entry (through
/// the leader, reached at the addresses this replica knows) and its registration.
pub async fn announce(running: &RunningNode, state: &NodeState) -> Result<(), ClusterError> {
    let node = &running.node;
    let member =
        Member { name: state.name.clone(), raft_addr: state.raft_addr.clone(), api_addr: state.api_addr.clone() };
    let peers: Vec<String> =
        node.members().into_iter().filter(|(id, _, _)| *id != state.id).map(|(_, m, _)| m.raft_addr).collect();
    node.request_membership(&peers, member, state.control_plane, ANNOUNCE_WAIT).await?;
    let key = format!("{}{}", keys::MEMBERS, state.name);
    let record = json!({
        "name": state.name,
        "raftAddr": state.raft_addr,
        "apiAddr": state.api_addr,
        "controlPlane": state.control_plane,
    });
    let put = Op::Put { key, value: record.to_string().into_bytes() };
    node.propose(Command::Txn(Txn::ops(vec![put])), ANNOUNCE_WAIT).await?;
    println!(
        "node {} now at raft {}, api {}: membership and registration updated",
        state.name, state.raft_addr, state.api_addr
    );
    Ok(())
}
