//! `clusterd start`: run a node again from its data directory.

use std::path::Path;

use super::config::DataDir;
use super::run::{bind_api, start_raft, RunningNode};
use super::ClusterError;

/// Start the node kept in `data_dir` and run it until a signal. With new
/// addresses (a node whose host's address changed), the node takes them: its
/// Raft membership entry and registration are rewritten through the cluster,
/// and its certificate is issued again for them.
pub async fn start(data_dir: &Path, moved: Moved) -> Result<(), ClusterError> {
    let dir = DataDir(data_dir.to_path_buf());
    let mut state = dir.load_state()?;
    let old = state.clone();
    if let Some(a) = moved.raft_addr {
        state.raft_addr = a.to_string();
    }
    if let Some(a) = moved.api_addr {
        state.api_addr = a.to_string();
    }
    if state == old {
        return launch(&dir).await?.run_until_signal().await;
    }
    println!(
        "node {} moves: raft {} -> {}, api {} -> {}",
        state.name, old.raft_addr, state.raft_addr, old.api_addr, state.api_addr
    );
    super::moved::reissue_certificate(&dir, &state)?;
    dir.save_state(&state)?;
    let running = launch(&dir).await?;
    super::moved::announce(&running, &state).await?;
    running.run_until_signal().await
}

/// The addresses `start` is given, if the node moved.
#[derive(Clone, Copy, Debug, Default)]
pub struct Moved {
    /// The new Raft address.
    pub raft_addr: Option<std::net::SocketAddr>,
    /// The new API address.
    pub api_addr: Option<std::net::SocketAddr>,
}

/// Start the node kept in `dir`: its API, Raft member and actors.
pub(super) async fn launch(dir: &DataDir) -> Result<RunningNode, ClusterError> {
    let state = dir.load_state()?;
    let (ca_pem, id) = dir.load_pki()?;
    let api_addr = state
        .api_addr
        .parse()
        .map_err(|_| ClusterError::Config(format!("apiAddr \"{}\" is not IP:port", state.api_addr)))?;
    let listener = bind_api(api_addr).await?;
    let node = start_raft(dir, &state, &ca_pem, &id).await?;
    let running = RunningNode::serve(node, listener, ca_pem, dir, &state)?;
    tracing::info!(name = %state.name, api = %running.api_addr, "node started");
    println!("node {} started (api {}, raft {})", state.name, state.api_addr, state.raft_addr);
    Ok(running)
}
