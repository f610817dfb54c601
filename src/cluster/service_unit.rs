//! Supervision: the systemd unit that keeps a node running. `Restart=always`
//! brings a killed node back (it finds its containers again); `KillMode=process`
//! stops only the daemon, so the pods' containers outlive a restart, as they
//! outlive a kubelet's; `Delegate=yes` leaves the cgroups below the unit to the
//! node. `clusterd install-service` writes it.

use std::path::{Path, PathBuf};

use super::config::{write_atomic, DataDir};
use super::ClusterError;

/// The unit's file name for a node.
pub fn unit_name(node: &str) -> String {
    format!("clusterd-{node}.service")
}

/// The unit that runs `exe start --data-dir data_dir` for `node`.
pub fn unit_file(exe: &Path, data_dir: &Path, node: &str) -> String {
    format!(
        "[Unit]
Description=clusterd node {node}
Documentation=https://github.com/clusterd/clusterd
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
ExecStart={exe} start --data-dir {dir}
Restart=always
RestartSec=2
# Stop the daemon only: the pods' containers keep running, and the restarted
# node finds them again.
KillMode=process
# SIGTERM, then the node's own grace time before SIGKILL.
TimeoutStopSec=30
# The node manages the cgroups of its pods below the unit.
Delegate=yes
LimitNOFILE=1048576
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
OOMScoreAdjust=-999

[Install]
WantedBy=multi-user.target
",
        exe = exe.display(),
        dir = data_dir.display(),
    )
}

/// Write the unit of the node in `data_dir` into `unit_dir`; returns its path.
pub fn install(data_dir: &Path, unit_dir: &Path) -> Result<PathBuf, ClusterError> {
    let data_dir = std::fs::canonicalize(data_dir)
        .map_err(|source| ClusterError::Io { path: data_dir.display().to_string(), source })?;
    let state = DataDir(data_dir.clone()).load_state()?;
    let exe =
        std::env::current_exe().map_err(|source| ClusterError::Io { path: "current executable".into(), source })?;
    let path = unit_dir.join(unit_name(&state.name));
    std::fs::create_dir_all(unit_dir)
        .map_err(|source| ClusterError::Io { path: unit_dir.display().to_string(), source })?;
    write_atomic(&path, unit_file(&exe, &data_dir, &state.name).as_bytes(), 0o644)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unit_restarts_the_node_and_leaves_its_containers() {
        let unit = unit_file(Path::new("/usr/local/bin/clusterd"), Path::new("/var/lib/clusterd/n1"), "n1");
        for line in [
            "ExecStart=/usr/local/bin/clusterd start --data-dir /var/lib/clusterd/n1",
            "Restart=always",
            "KillMode=process",
            "Delegate=yes",
            "WantedBy=multi-user.target",
        ] {
            assert!(unit.lines().any(|l| l == line), "{line} missing in:\n{unit}");
        }
        assert_eq!(unit_name("n1"), "clusterd-n1.service");
    }
}
