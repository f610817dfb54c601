//! What a node keeps in its data directory, and the admin's client config.
//!
//! ```text
//! D/node.json        id, name, addresses, role, tuning
//! D/pki/ca.crt       the cluster CA certificate
//! D/pki/node.crt     this node's certificate (server and client; renewed in place)
//! D/pki/node.key
//! D/db/              RocksDB: Raft log and state machine
//! D/admin.conf       (init only) the admin's client config
//! D/kubeconfig       (init only) the same credentials for kubectl
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use clusterd_raft::pki::Identity;

use super::ClusterError;

/// `D/node.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeState {
    /// Raft node id.
    pub id: u64,
    /// Node name.
    pub name: String,
    /// Transport address (QUIC).
    pub raft_addr: String,
    /// API address (gRPC over TLS).
    pub api_addr: String,
    /// Whether the node joined as a control-plane node (voter).
    pub control_plane: bool,
    /// Build a Raft snapshot after at least this many entries (see
    /// `clusterd_raft::snapshot_policy`).
    pub snapshot_every: u64,
    /// Entries kept behind a snapshot.
    pub keep_logs: u64,
    /// Scheduled snapshots into `D/snapshots` (voters only).
    #[serde(default, skip_serializing_if = "super::backups::BackupSchedule::is_off")]
    pub backups: super::backups::BackupSchedule,
    /// Registries the kubelet pulls from over plain HTTP.
    #[serde(default)]
    pub insecure_registries: Vec<String>,
    /// The address other hosts reach this node at (`--node-ip`); default:
    /// the Raft address's IP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_ip: Option<String>,
    /// The host's resolver settings (`--resolv-conf`); default: `/etc/resolv.conf`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolv_conf: Option<String>,
    /// How long this node's certificates are valid and when it renews them
    /// (`--cert-validity`, `--cert-renew-before`).
    #[serde(default)]
    pub certificates: super::cert_policy::CertPolicy,
}

/// The data directory layout.
#[derive(Clone, Debug)]
pub struct DataDir(pub PathBuf);

fn io_err(path: &Path, source: std::io::Error) -> ClusterError {
    ClusterError::Io { path: path.display().to_string(), source }
}

/// Write a file whole: write a temporary file, sync it, rename it into place.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), ClusterError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| io_err(&tmp, e))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| io_err(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io_err(path, e))
}

fn read(path: &Path) -> Result<String, ClusterError> {
    std::fs::read_to_string(path).map_err(|e| io_err(path, e))
}

impl DataDir {
    /// `D/node.json`.
    pub fn state_path(&self) -> PathBuf {
        self.0.join("node.json")
    }

    /// `D/db`.
    pub fn db_path(&self) -> PathBuf {
        self.0.join("db")
    }

    /// `D/kubeconfig` (init only): the admin's kubeconfig.
    pub fn kubeconfig(&self) -> PathBuf {
        self.0.join("kubeconfig")
    }

    /// `D/admin.conf`.
    pub fn admin_conf(&self) -> PathBuf {
        self.0.join("admin.conf")
    }

    /// Whether a node was set up here.
    pub fn initialized(&self) -> bool {
        self.state_path().exists()
    }

    /// Refuse a directory that holds a node or the remains of a failed setup.
    pub fn ensure_fresh(&self) -> Result<(), ClusterError> {
        if self.initialized() {
            return Err(ClusterError::Config(format!(
                "{} already holds a node: use `clusterd start --data-dir {}`",
                self.0.display(),
                self.0.display()
            )));
        }
        if self.db_path().exists() {
            return Err(ClusterError::Config(format!(
                "{} holds the remains of a failed setup (db/ without node.json): remove the directory and try again",
                self.0.display()
            )));
        }
        std::fs::create_dir_all(self.0.join("pki")).map_err(|e| io_err(&self.0, e))
    }

    /// Save the node state (last step of a setup).
    pub fn save_state(&self, state: &NodeState) -> Result<(), ClusterError> {
        let bytes = serde_json::to_vec_pretty(state).map_err(|e| ClusterError::Config(e.to_string()))?;
        write_atomic(&self.state_path(), &bytes, 0o644)
    }

    /// Load the node state.
    pub fn load_state(&self) -> Result<NodeState, ClusterError> {
        if !self.initialized() {
            return Err(ClusterError::Config(format!(
                "{} holds no node: run `clusterd init` or `clusterd join` first",
                self.0.display()
            )));
        }
        serde_json::from_str(&read(&self.state_path())?)
            .map_err(|e| ClusterError::Config(format!("{}: {e}", self.state_path().display())))
    }

    /// `D/pki/node.crt`: this node's certificate.
    pub fn node_cert_path(&self) -> PathBuf {
        self.0.join("pki").join("node.crt")
    }

    /// Replace this node's certificate (renewed for the key it has): the one
    /// file is written whole and renamed into place, then its directory is
    /// synced, so a restart finds the old certificate or the new one.
    pub fn save_node_cert(&self, cert_pem: &str) -> Result<(), ClusterError> {
        let path = self.node_cert_path();
        write_atomic(&path, cert_pem.as_bytes(), 0o644)?;
        let pki = self.0.join("pki");
        std::fs::File::open(&pki).and_then(|d| d.sync_all()).map_err(|e| io_err(&pki, e))
    }

    /// Save the CA certificate and this node's identity.
    pub fn save_pki(&self, ca_pem: &str, id: &Identity) -> Result<(), ClusterError> {
        let pki = self.0.join("pki");
        write_atomic(&pki.join("ca.crt"), ca_pem.as_bytes(), 0o644)?;
        write_atomic(&pki.join("node.crt"), id.cert_pem.as_bytes(), 0o644)?;
        write_atomic(&pki.join("node.key"), id.key_pem.as_bytes(), 0o600)
    }

    /// Load the CA certificate and this node's identity.
    pub fn load_pki(&self) -> Result<(String, Identity), ClusterError> {
        let pki = self.0.join("pki");
        let ca = read(&pki.join("ca.crt"))?;
        let id = Identity { cert_pem: read(&pki.join("node.crt"))?, key_pem: read(&pki.join("node.key"))? };
        Ok((ca, id))
    }
}

impl NodeState {
    /// The state a new node records (`node.json`): its settings, the
    /// node's id in the cluster, its bound addresses and its role.
    pub fn of_new_node(
        args: &super::NodeArgs,
        id: u64,
        raft_addr: std::net::SocketAddr,
        api_addr: std::net::SocketAddr,
        control_plane: bool,
    ) -> NodeState {
        NodeState {
            id,
            name: args.name.clone(),
            raft_addr: raft_addr.to_string(),
            api_addr: api_addr.to_string(),
            control_plane,
            snapshot_every: args.snapshot_every,
            keep_logs: args.keep_logs,
            backups: args.backups,
            insecure_registries: args.insecure_registries.clone(),
            node_ip: args.node_ip.map(|ip| ip.to_string()),
            resolv_conf: args.resolv_conf.as_ref().map(|p| p.display().to_string()),
            certificates: args.certificates,
        }
    }
}

/// The admin's client config (`admin.conf`, YAML).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminConfig {
    /// `clusterd.io/v1`.
    pub api_version: String,
    /// `Config`.
    pub kind: String,
    /// API servers, `host:port`; tried in order.
    pub servers: Vec<String>,
    /// The cluster CA certificate, PEM.
    pub certificate_authority: String,
    /// The client certificate, PEM.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub client_certificate: String,
    /// The client key, PEM.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub client_key: String,
    /// A bearer token (an alternative to the client certificate).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub token: String,
}

impl AdminConfig {
    /// Read a config file.
    pub fn load(path: &Path) -> Result<AdminConfig, ClusterError> {
        serde_yaml_ng::from_str(&read(path)?).map_err(|e| ClusterError::Config(format!("{}: {e}", path.display())))
    }

    /// Write a config file, readable by its owner only.
    pub fn save(&self, path: &Path) -> Result<(), ClusterError> {
        let text = serde_yaml_ng::to_string(self).map_err(|e| ClusterError::Config(e.to_string()))?;
        write_atomic(path, text.as_bytes(), 0o600)
    }

    /// The same credentials as a kubeconfig for kubectl and client libraries:
    /// one cluster entry (and context) per API server, the first current.
    pub fn kubeconfig(&self, servers: &[String]) -> String {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
        let name = |i: usize| if i == 0 { "clusterd".to_string() } else { format!("clusterd-{}", i + 1) };
        let clusters: Vec<serde_json::Value> = servers
            .iter()
            .enumerate()
            .map(|(i, s)| {
                serde_json::json!({"name": name(i), "cluster": {
                    "server": format!("https://{s}"),
                    "certificate-authority-data": b64(&self.certificate_authority),
                }})
            })
            .collect();
        let contexts: Vec<serde_json::Value> = (0..servers.len())
            .map(|i| serde_json::json!({"name": name(i), "context": {"cluster": name(i), "user": "clusterd-admin"}}))
            .collect();
        let mut user = serde_json::Map::new();
        if !self.client_certificate.is_empty() {
            user.insert("client-certificate-data".into(), b64(&self.client_certificate).into());
            user.insert("client-key-data".into(), b64(&self.client_key).into());
        } else if !self.token.is_empty() {
            user.insert("token".into(), self.token.clone().into());
        }
        let config = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": clusters,
            "contexts": contexts,
            "current-context": "clusterd",
            "users": [{"name": "clusterd-admin", "user": user}],
            "preferences": {},
        });
        serde_yaml_ng::to_string(&config).unwrap_or_default()
    }

    /// The client identity, if the config has a certificate.
    pub fn identity(&self) -> Option<Identity> {
        (!self.client_certificate.is_empty())
            .then(|| Identity { cert_pem: self.client_certificate.clone(), key_pem: self.client_key.clone() })
    }
}
