//! The life cycle of a node: `init` a new cluster, `join` one, `start` again from
//! a data directory, `recover` one from the loss of its quorum, and run until a
//! signal stops it.

pub mod backups;
pub mod cert_policy;
pub mod config;
pub mod dial;
mod init;
mod join;
mod moved;
pub mod node_cert;
pub mod recover;
mod renewal;
mod reset;
mod restore;
mod run;
pub mod service_unit;
pub mod snapshot_file;
mod start;

use std::net::SocketAddr;
use std::path::PathBuf;

pub use init::init;
pub use join::join;
pub use moved::Peer;
pub use recover::recover;
pub use renewal::stamp;
pub use reset::reset;
pub use restore::restore;
pub use run::{pick_port, RunningNode};
pub use start::{start, Moved};

/// A node could not be set up or run.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The data directory or a config is not usable.
    #[error("{0}")]
    Config(String),
    /// The Raft node failed.
    #[error(transparent)]
    Node(#[from] clusterd_raft::NodeError),
    /// Certificates.
    #[error(transparent)]
    Pki(#[from] clusterd_raft::pki::PkiError),
    /// Binding an address failed.
    #[error("bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Joining failed.
    #[error("join: {0}")]
    Join(String),
    /// An API call made during setup failed.
    #[error("{0}")]
    Api(String),
}

/// How a node is placed and tuned; shared by `init`, `join` and `start`.
#[derive(Clone, Debug)]
pub struct NodeArgs {
    /// The data directory.
    pub data_dir: PathBuf,
    /// The node name (unique in the cluster).
    pub name: String,
    /// Transport address; port 0 picks a free one.
    pub raft_addr: SocketAddr,
    /// API address; port 0 picks a free one.
    pub api_addr: SocketAddr,
    /// Build a snapshot after at least this many entries (see
    /// `clusterd_raft::snapshot_policy`).
    pub snapshot_every: u64,
    /// Entries kept behind a snapshot.
    pub keep_logs: u64,
    /// Scheduled snapshots into the data directory (voters only).
    pub backups: backups::BackupSchedule,
    /// The cluster's pod network (`init` only).
    pub cluster_cidr: String,
    /// Lease age (s) after which a node is NotReady (`init` only).
    pub node_grace_period: u64,
    /// How long (s) pods tolerate an unreachable node by default (`init` only).
    pub pod_eviction_timeout: u64,
    /// Registries pulled from over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// The ClusterIP range (`init` only).
    pub service_cidr: String,
    /// The NodePort range, `lo-hi` (`init` only).
    pub service_node_port_range: String,
    /// The cluster's DNS domain (`init` only).
    pub cluster_domain: String,
    /// The address other hosts reach this node's pods through (default: the
    /// Raft address's IP).
    pub node_ip: Option<std::net::IpAddr>,
    /// The resolver settings forwarded names and `dnsPolicy: Default` pods
    /// use (default: `/etc/resolv.conf`).
    pub resolv_conf: Option<PathBuf>,
    /// How long this node's certificates are valid, and when it renews them.
    pub certificates: cert_policy::CertPolicy,
}
