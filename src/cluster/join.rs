//! `clusterd join`: add a node to a cluster with a join token.

use std::time::Duration;

use clusterd_raft::Member;

use super::config::NodeState;
use super::dial::connect_pinned;
use super::run::{prepare, start_raft, RunningNode};
use super::{ClusterError, NodeArgs};
use crate::api::pb;
use crate::api::tokens::JoinToken;

/// Join the cluster served at `server` and run this node until a signal.
/// A control-plane node becomes a voter (while the cluster has fewer than five),
/// a worker a learner.
pub async fn join(server: &str, token: &str, control_plane: bool, args: NodeArgs) -> Result<(), ClusterError> {
    let parsed = JoinToken::parse(token).map_err(|e| ClusterError::Join(e.to_string()))?;
    let (dir, listener, api_addr, raft_addr) = prepare(&args).await?;

    let mut client =
        connect_pinned(server, &parsed.ca_fingerprint).await.map_err(|e| ClusterError::Join(e.to_string()))?;
    let resp = client
        .join(pb::JoinRequest {
            token: token.to_string(),
            name: args.name.clone(),
            raft_addr: raft_addr.to_string(),
            api_addr: api_addr.to_string(),
            control_plane,
            cert_validity_seconds: args.certificates.validity_seconds,
        })
        .await
        .map_err(|s| ClusterError::Join(s.message().to_string()))?
        .into_inner();
    let id = clusterd_raft::pki::Identity { cert_pem: resp.node_cert, key_pem: resp.node_key };
    dir.save_pki(&resp.ca_cert, &id)?;
    let state = NodeState::of_new_node(&args, resp.node_id, raft_addr, api_addr, control_plane);
    let node = start_raft(&dir, &state, &resp.ca_cert, &id, &[]).await?;
    let member =
        Member { name: state.name.clone(), raft_addr: state.raft_addr.clone(), api_addr: state.api_addr.clone() };
    node.request_membership(&resp.peers, member, control_plane, Duration::from_secs(120)).await?;
    dir.save_state(&state)?;
    let running = RunningNode::serve(node, listener, resp.ca_cert, &dir, &state)?;
    let role = if control_plane { "control-plane" } else { "worker" };
    println!(
        "node {} joined as {role} (id {}, api {}, raft {})",
        state.name, state.id, state.api_addr, state.raft_addr
    );
    running.run_until_signal().await
}
