//! The node life-cycle verbs' flags — `init`, `join`, `start`, `recover`, `reset` — and
//! their hand-over to the cluster layer, which runs the node.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::error::CliError;
use crate::cluster::backups::BackupSchedule;
use crate::cluster::cert_policy::CertPolicy;
use crate::cluster::{self, NodeArgs};

/// Placement and tuning flags shared by `init` and `join`.
#[derive(Args, Debug, Clone)]
pub struct NodeFlags {
    /// Data directory of this node.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Node name, unique in the cluster (default: the host name).
    #[arg(long)]
    pub name: Option<String>,
    /// Raft transport address (QUIC); port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:2380")]
    pub raft_addr: SocketAddr,
    /// API address (gRPC over TLS); port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub api_addr: SocketAddr,
    /// Build a Raft snapshot (and purge the log behind it) after N entries at
    /// least, and not before the log since the last one is as long as the
    /// state has objects (0: never).
    #[arg(long, default_value_t = 10_000)]
    pub snapshot_every: u64,
    /// Log entries kept behind a snapshot.
    #[arg(long, default_value_t = 1_000)]
    pub keep_logs: u64,
    /// Seconds between the snapshots this node writes into DATA_DIR/snapshots
    /// if it is a voter (0: none); see `clusterd snapshot status|restore`.
    #[arg(long, default_value_t = 43_200)]
    pub snapshot_interval: u64,
    /// Scheduled snapshots kept (the oldest are removed).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub snapshot_retain: u64,
    /// Pod network of the whole cluster (a /16), split into a /24 per node (`init` only).
    #[arg(long, default_value = crate::objects::network::DEFAULT_CLUSTER_CIDR)]
    pub cluster_cidr: String,
    /// Seconds without a Lease renewal before a node is NotReady (`init` only).
    #[arg(long, default_value_t = 40)]
    pub node_grace_period: u64,
    /// Seconds pods tolerate an unreachable node before they are evicted,
    /// unless they say otherwise (`init` only).
    #[arg(long, default_value_t = 20)]
    pub pod_eviction_timeout: u64,
    /// Registries this node pulls from over plain HTTP (host:port, repeatable).
    #[arg(long = "insecure-registry")]
    pub insecure_registries: Vec<String>,
    /// ClusterIP range of Services (`init` only).
    #[arg(long, default_value = crate::objects::network::DEFAULT_SERVICE_CIDR)]
    pub service_cidr: String,
    /// NodePort range of Services, lo-hi (`init` only).
    #[arg(long, default_value = crate::objects::network::DEFAULT_NODE_PORT_RANGE)]
    pub service_node_port_range: String,
    /// The cluster's DNS domain (`init` only).
    #[arg(long, default_value = crate::objects::network::DEFAULT_CLUSTER_DOMAIN)]
    pub cluster_domain: String,
    /// The address other hosts reach this node (and its pods' network) at
    /// (default: the Raft address's IP).
    #[arg(long)]
    pub node_ip: Option<std::net::IpAddr>,
    /// Resolver configuration of this host: where the node's DNS forwards
    /// names outside the cluster, and what `dnsPolicy: Default` pods get
    /// (default: /etc/resolv.conf).
    #[arg(long)]
    pub resolv_conf: Option<PathBuf>,
    /// How long the certificates this node obtains are valid (e.g. 365d,
    /// 720h, 30s); never past the cluster CA's expiry.
    #[arg(long, default_value = "365d", value_parser = crate::util::duration::parse)]
    pub cert_validity: Duration,
    /// The node renews its certificate through the cluster when less than
    /// this is left (e.g. 30d, 14s).
    #[arg(long, default_value = "30d", value_parser = crate::util::duration::parse)]
    pub cert_renew_before: Duration,
}

impl NodeFlags {
    /// The node's arguments, the name defaulting to the host name.
    pub fn args(&self) -> NodeArgs {
        NodeArgs {
            data_dir: self.data_dir.clone(),
            name: self.name.clone().unwrap_or_else(hostname),
            raft_addr: self.raft_addr,
            api_addr: self.api_addr,
            snapshot_every: self.snapshot_every,
            keep_logs: self.keep_logs,
            backups: BackupSchedule { interval_seconds: self.snapshot_interval, retain: self.snapshot_retain as usize },
            cluster_cidr: self.cluster_cidr.clone(),
            node_grace_period: self.node_grace_period,
            pod_eviction_timeout: self.pod_eviction_timeout,
            insecure_registries: self.insecure_registries.clone(),
            service_cidr: self.service_cidr.clone(),
            service_node_port_range: self.service_node_port_range.clone(),
            cluster_domain: self.cluster_domain.clone(),
            node_ip: self.node_ip,
            resolv_conf: self.resolv_conf.as_ref().map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone())),
            certificates: CertPolicy::new(self.cert_validity, self.cert_renew_before),
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_ascii_lowercase())
        .unwrap_or_else(|_| "node".into())
}

/// `join` arguments.
#[derive(Args, Debug)]
pub struct JoinArgs {
    /// API address of a node of the cluster.
    pub server_addr: String,
    /// Join token (`clusterd token create`).
    #[arg(long)]
    pub token: String,
    /// Join as a control-plane node (Raft voter); otherwise as a worker (learner).
    #[arg(long)]
    pub control_plane: bool,
    #[command(flatten)]
    pub node: NodeFlags,
}

/// `start` arguments.
#[derive(Args, Debug)]
pub struct StartArgs {
    /// Data directory of the node.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// A new Raft address, when the host's address changed (the node's
    /// membership entry, registration and certificate follow).
    #[arg(long)]
    pub raft_addr: Option<SocketAddr>,
    /// A new API address, when the host's address changed.
    #[arg(long)]
    pub api_addr: Option<SocketAddr>,
    /// Another member's new Raft address, when every node moved (repeat for
    /// each other member): reached there until the membership names it.
    #[arg(long = "peer", value_name = "NAME=RAFTADDR")]
    pub peers: Vec<cluster::Peer>,
}

/// `reset` arguments.
#[derive(Args, Debug)]
pub struct DataDirArgs {
    /// Data directory of the node.
    #[arg(long)]
    pub data_dir: PathBuf,
}

/// `recover` arguments.
#[derive(Args, Debug)]
pub struct RecoverArgs {
    /// Data directory of the stopped surviving voter.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Recover even if a quorum of the old members answers (it splits the cluster).
    #[arg(long)]
    pub force: bool,
}

/// Run `init`.
pub async fn init(flags: &NodeFlags) -> Result<(), CliError> {
    Ok(cluster::init(flags.args()).await?)
}

/// Run `join`.
pub async fn join(a: &JoinArgs) -> Result<(), CliError> {
    Ok(cluster::join(&a.server_addr, &a.token, a.control_plane, a.node.args()).await?)
}

/// Run `start`.
pub async fn start(a: &StartArgs) -> Result<(), CliError> {
    let moved = cluster::Moved { raft_addr: a.raft_addr, api_addr: a.api_addr, peers: a.peers.clone() };
    Ok(cluster::start(&a.data_dir, moved).await?)
}

/// Run `recover`.
pub async fn recover(a: &RecoverArgs) -> Result<(), CliError> {
    Ok(cluster::recover(&a.data_dir, a.force).await?)
}

/// Run `reset`.
pub async fn reset(a: &DataDirArgs) -> Result<(), CliError> {
    Ok(cluster::reset(&a.data_dir).await?)
}
