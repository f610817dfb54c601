//! `clusterd start`: run a node again from its data directory.

use std::path::Path;

use super::config::DataDir;
use super::run::{bind_api, start_raft, RunningNode};
use super::ClusterError;

/// Start the node kept in `data_dir` and run it until a signal.
pub async fn start(data_dir: &Path) -> Result<(), ClusterError> {
    let dir = DataDir(data_dir.to_path_buf());
    launch(&dir).await?.run_until_signal().await
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
    let running = RunningNode::serve(node, listener, ca_pem, id, dir, &state)?;
    tracing::info!(name = %state.name, api = %running.api_addr, "node started");
    println!("node {} started (api {}, raft {})", state.name, state.api_addr, state.raft_addr);
    Ok(running)
}
