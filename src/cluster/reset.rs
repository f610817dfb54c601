//! `clusterd reset`: remove what a stopped node left on the host — its pods'
//! containers and sandboxes, its bridge, nftables tables (the pod network's
//! and the proxy's) and cgroups — as `kubeadm reset` does. The data directory
//! itself is left to the user.

use std::path::Path;

use clusterd_runtime::Runtime;

use super::config::DataDir;
use super::run::kubelet_config;
use super::ClusterError;

/// Reset the node kept in `data_dir`.
pub async fn reset(data_dir: &Path) -> Result<(), ClusterError> {
    let dir = DataDir(data_dir.to_path_buf());
    let state = dir.load_state()?;
    let (ca_pem, _) = dir.load_pki()?;
    let cfg = kubelet_config(&ca_pem, &dir, &state);
    let cidr = std::fs::read_to_string(cfg.pod_cidr_file()).ok().map(|s| s.trim().to_string());
    let rcfg = cfg.runtime_config(cidr, None);
    let host_key = cfg.host_key.clone();
    // The proxy's table first, whatever becomes of the rest (and the rest
    // whatever becomes of it).
    let proxy_table = crate::proxy::table_name(&host_key);
    let proxy = crate::proxy::remove_table(&proxy_table).await.map_err(|e| ClusterError::Config(e.to_string()));
    if proxy.is_ok() {
        println!("node {host_key}: removed the proxy's nftables table {proxy_table}");
    }
    let runtime = tokio::task::spawn_blocking(move || -> Result<(), ClusterError> {
        let failed = |e: clusterd_runtime::RuntimeError| ClusterError::Config(e.to_string());
        // Opening the runtime removes what a crashed node began and did not
        // finish; `reset` then removes everything else it recorded, and kills
        // whatever is left in the node's cgroups.
        let rt = Runtime::new(rcfg).map_err(failed)?;
        let sandboxes = rt.reset().map_err(failed)?;
        println!("node {host_key}: removed {sandboxes} pod sandbox(es), its network and cgroups");
        Ok(())
    })
    .await
    .map_err(|e| ClusterError::Config(e.to_string()))?;
    runtime.and(proxy)
}
