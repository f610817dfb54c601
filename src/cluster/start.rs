//! `clusterd start`: run a node again from its data directory.

use std::path::Path;

use super::config::DataDir;
use super::moved::Peer;
use super::run::{bind_api, start_raft, RunningNode};
use super::ClusterError;

/// Start the node kept in `data_dir` and run it until a signal. With new
/// addresses (a node whose host's address changed), the node takes them: its
/// Raft membership entry and registration are rewritten through the cluster,
/// and its certificate is issued again for them (the membership and
/// registration are also rewritten when an earlier move was not recorded
/// before the node stopped). Peers given with their new
/// addresses (a whole cluster moved) are reached there.
pub async fn start(data_dir: &Path, moved: Moved) -> Result<(), ClusterError> {
    let dir = DataDir(data_dir.to_path_buf());
    let mut state = dir.load_state()?;
    let old = state.clone();
    let peers = super::moved::given_addresses(&state.name, &moved.peers)?;
    if let Some(a) = moved.raft_addr {
        state.raft_addr = a.to_string();
    }
    if let Some(a) = moved.api_addr {
        state.api_addr = a.to_string();
    }
    if state != old {
        println!(
            "node {} moves: raft {} -> {}, api {} -> {}",
            state.name, old.raft_addr, state.raft_addr, old.api_addr, state.api_addr
        );
        super::moved::reissue_certificate(&dir, &state)?;
        dir.save_state(&state)?;
    }
    let running = launch(&dir, &peers).await?;
    tokio::spawn(super::moved::announce(running.node.clone(), state));
    running.run_until_signal().await
}

/// The addresses `start` is given, if the node (or the others) moved.
#[derive(Clone, Debug, Default)]
pub struct Moved {
    /// The new Raft address.
    pub raft_addr: Option<std::net::SocketAddr>,
    /// The new API address.
    pub api_addr: Option<std::net::SocketAddr>,
    /// Other members' new Raft addresses.
    pub peers: Vec<Peer>,
}

/// Start the node kept in `dir`: its API, Raft member and actors; `peers`
/// are members' addresses given at start (by name).
pub(super) async fn launch(dir: &DataDir, peers: &[(String, String)]) -> Result<RunningNode, ClusterError> {
    let state = dir.load_state()?;
    let (ca_pem, id) = dir.load_pki()?;
    let api_addr = state
        .api_addr
        .parse()
        .map_err(|_| ClusterError::Config(format!("apiAddr \"{}\" is not IP:port", state.api_addr)))?;
    let listener = bind_api(api_addr).await?;
    let node = start_raft(dir, &state, &ca_pem, &id, peers).await?;
    let running = RunningNode::serve(node, listener, ca_pem, dir, &state)?;
    tracing::info!(name = %state.name, api = %running.api_addr, "node started");
    println!("node {} started (api {}, raft {})", state.name, state.api_addr, state.raft_addr);
    Ok(running)
}
