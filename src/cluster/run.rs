//! Running a node: the Raft member and the API server, until a signal.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use clusterd_raft::pki::Identity;
use clusterd_raft::{NodeOptions, RaftNode};

use super::config::{DataDir, NodeState};
use super::ClusterError;
use crate::api::service::Api;
use crate::controllers::daemonset::DaemonSets;
use crate::controllers::deployment::Deployments;
use crate::controllers::gc::GarbageCollector;
use crate::controllers::job::Jobs;
use crate::controllers::nodeipam::NodeIpam;
use crate::controllers::nodelifecycle::{self, NodeLifecycle};
use crate::controllers::replicaset::ReplicaSets;
use crate::controllers::runner::Controller;
use crate::controllers::statefulset::StatefulSets;
use crate::kubelet::{cluster_tag, KubeletConfig};
use crate::registry::Registry;
use crate::scheduler::Scheduler;
use actix::Actor;

/// A node whose Raft member and API server are running.
pub struct RunningNode {
    /// The Raft member.
    pub node: Arc<RaftNode>,
    /// The API's bound address.
    pub api_addr: SocketAddr,
    stop: watch::Sender<bool>,
    api: tokio::task::JoinHandle<()>,
    /// The scheduler's and the controllers' threads.
    arbiters: Vec<actix::Arbiter>,
}

/// Bind a TCP listener, naming the address on failure.
pub async fn bind_api(addr: SocketAddr) -> Result<TcpListener, ClusterError> {
    TcpListener::bind(addr).await.map_err(|source| ClusterError::Bind { addr: addr.to_string(), source })
}

/// A free UDP port on `addr`'s host, for a transport address given with port 0.
pub fn pick_port(addr: SocketAddr) -> Result<SocketAddr, ClusterError> {
    if addr.port() != 0 {
        return Ok(addr);
    }
    let sock =
        std::net::UdpSocket::bind(addr).map_err(|source| ClusterError::Bind { addr: addr.to_string(), source })?;
    sock.local_addr().map_err(|source| ClusterError::Bind { addr: addr.to_string(), source })
}

/// The first steps of `init` and `join`: a fresh data directory, the API
/// listener bound, and the transport address (a free port for port 0).
pub async fn prepare(args: &super::NodeArgs) -> Result<(DataDir, TcpListener, SocketAddr, SocketAddr), ClusterError> {
    args.certificates.check()?;
    let dir = DataDir(args.data_dir.clone());
    dir.ensure_fresh()?;
    let listener = bind_api(args.api_addr).await?;
    let api_addr =
        listener.local_addr().map_err(|source| ClusterError::Bind { addr: args.api_addr.to_string(), source })?;
    let raft_addr = pick_port(args.raft_addr)?;
    Ok((dir, listener, api_addr, raft_addr))
}

/// Start the Raft member from a data directory's state; `peers` are members'
/// addresses given at start, by name (see `clusterd start --peer`).
pub async fn start_raft(
    dir: &DataDir,
    state: &NodeState,
    ca_pem: &str,
    id: &Identity,
    peers: &[(String, String)],
) -> Result<Arc<RaftNode>, ClusterError> {
    let bind: SocketAddr = state
        .raft_addr
        .parse()
        .map_err(|_| ClusterError::Config(format!("raftAddr \"{}\" is not IP:port", state.raft_addr)))?;
    let mut opts = NodeOptions::new(state.id, bind, dir.db_path(), ca_pem.to_string(), id.clone());
    opts.snapshot_every = state.snapshot_every;
    opts.keep_logs = state.keep_logs;
    opts.peers = peers.to_vec();
    Ok(RaftNode::start(opts).await?)
}

/// How often the leader compacts watch history, and how many revisions it keeps.
const COMPACT_EVERY: std::time::Duration = std::time::Duration::from_secs(300);
const HISTORY_KEPT: u64 = 10_000;

/// History compaction on its own schedule (independent of log purging), by the leader.
async fn compact_history(node: Arc<RaftNode>, mut stopped: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(COMPACT_EVERY);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        let upto = node.store.revision().saturating_sub(HISTORY_KEPT);
        if node.is_leader() && upto > node.store.compacted() {
            let cmd = clusterd_raft::Command::Compact(upto);
            if let Err(e) = node.propose(cmd, std::time::Duration::from_secs(10)).await {
                tracing::warn!(error = %e, "history compaction failed");
            }
        }
    }
}

/// The tag in the names of this node's host resources (cgroups, bridge,
/// nftables tables): its cluster CA's, recorded in the data dir the first
/// time (`D/host-tag`) and kept from then on. A node restored (with a new CA)
/// or re-joined into a data dir whose containers still run keeps the names,
/// and so finds its containers and adopts them instead of starting them again.
fn host_tag(ca_pem: &str, dir: &DataDir) -> String {
    let path = dir.0.join("host-tag");
    if let Ok(recorded) = std::fs::read_to_string(&path) {
        let recorded = recorded.trim();
        if !recorded.is_empty() && recorded.chars().all(|c| c.is_ascii_hexdigit()) {
            return recorded.to_string();
        }
    }
    let tag = cluster_tag(ca_pem);
    // Not recorded: the next start computes the same tag from the same CA.
    if let Err(e) = std::fs::write(&path, format!("{tag}\n")) {
        tracing::warn!(path = %path.display(), error = %e, "could not record the host tag");
    }
    tag
}

/// The kubelet's settings for this node.
pub fn kubelet_config(ca_pem: &str, dir: &DataDir, state: &NodeState) -> KubeletConfig {
    let ip = state.node_ip.clone().unwrap_or_else(|| {
        state.raft_addr.parse::<SocketAddr>().map(|a| a.ip().to_string()).unwrap_or_else(|_| "127.0.0.1".into())
    });
    KubeletConfig {
        name: state.name.clone(),
        host_key: format!("{}-{}", state.name, host_tag(ca_pem, dir)),
        ip,
        control_plane: state.control_plane,
        // Mount sources and bundle paths must be absolute, whatever the user typed.
        data_dir: std::path::absolute(&dir.0).unwrap_or_else(|_| dir.0.clone()),
        lease_seconds: 40,
        renew_every: std::time::Duration::from_secs(10),
        max_pods: 110,
        insecure_registries: state.insecure_registries.clone(),
        resolv_conf: state.resolv_conf.clone().unwrap_or_else(|| crate::util::resolv::HOST_RESOLV_CONF.into()).into(),
    }
}

/// Start the node's actors on the actix system: the kubelet and the proxy everywhere; the
/// scheduler and controllers on control-plane nodes (they act while leading).
/// The scheduler and the controllers each get an arbiter (a thread with its own
/// event loop), so a flood of pod events in one does not delay the others.
/// Returns those arbiters (stopping them stops their actors).
fn start_actors(
    node: &Arc<RaftNode>,
    store: &Registry,
    ca_pem: &str,
    dir: &DataDir,
    state: &NodeState,
    stop: watch::Receiver<bool>,
) -> Vec<actix::Arbiter> {
    let mut arbiters = Vec::new();
    if state.control_plane {
        let scheduling = actix::Arbiter::new();
        let s = store.clone();
        Scheduler::start_in_arbiter(&scheduling.handle(), move |_| Scheduler::new(s));
        let s = store.clone();
        NodeIpam::start_in_arbiter(&scheduling.handle(), move |_| NodeIpam::new(s));
        let settings: serde_json::Value = node
            .store
            .get(crate::objects::conventions::CLUSTER_CONFIG_KEY)
            .ok()
            .flatten()
            .and_then(|kv| serde_json::from_slice(&kv.value).ok())
            .unwrap_or_default();
        let secs = |field: &str, default: std::time::Duration| {
            settings
                .get(field)
                .and_then(serde_json::Value::as_u64)
                .map(std::time::Duration::from_secs)
                .unwrap_or(default)
        };
        let lifecycle = NodeLifecycle {
            grace: secs("nodeGracePeriodSeconds", nodelifecycle::DEFAULT_GRACE),
            toleration: secs("podEvictionTimeoutSeconds", nodelifecycle::DEFAULT_TOLERATION),
        };
        let reader = node.store.clone();
        let endpoints_reader = node.store.clone();
        let members_reader = node.store.clone();
        let s = store.clone();
        let controllers = actix::Arbiter::new();
        controllers.spawn_fn(move || {
            use crate::controllers::endpoints::ServiceEndpoints;
            Controller::new(ServiceEndpoints::reading(endpoints_reader), s.clone()).start();
            Controller::new(crate::controllers::endpointslice::ServiceEndpointSlices, s.clone()).start();
            let api_endpoints = crate::controllers::apiserver_endpoints::ApiServerEndpoints::reading(members_reader);
            Controller::new(api_endpoints, s.clone()).start();
            Controller::new(ReplicaSets, s.clone()).start();
            Controller::new(Deployments, s.clone()).start();
            Controller::new(GarbageCollector, s.clone()).start();
            Controller::new(Jobs, s.clone()).start();
            Controller::new(crate::controllers::serviceaccount::ServiceAccounts { reader }, s.clone()).start();
            Controller::new(crate::controllers::namespace::Namespaces, s.clone()).start();
            Controller::new(DaemonSets, s.clone()).start();
            Controller::new(StatefulSets, s.clone()).start();
            Controller::new(lifecycle, s).start();
        });
        arbiters.extend([scheduling, controllers]);
    }
    // Cluster DNS on every node; the proxy sends the DNS Service's address to its port.
    let mut dns = crate::dns::DnsConfig::default();
    if let Some(path) = &state.resolv_conf {
        dns.resolv_conf = path.into();
    }
    let dns_port = match crate::dns::serve(dns, store.clone(), stop.clone()) {
        Ok(port) => Some(port),
        Err(e) => {
            tracing::error!(error = %e, "dns: the node's DNS server did not start");
            None
        }
    };
    let proxy = crate::proxy::ProxyConfig {
        node: state.name.clone(),
        table: crate::proxy::table_name(&kubelet_config(ca_pem, dir, state).host_key),
        dns_port,
    };
    tokio::spawn(crate::proxy::run(proxy, store.clone(), stop.clone()));
    actix::spawn(crate::kubelet::run(kubelet_config(ca_pem, dir, state), store.clone(), stop));
    arbiters
}

impl RunningNode {
    /// Serve the API for `node` on `listener`, presenting the node's
    /// certificate, which the node renews before it expires.
    pub fn serve(
        node: Arc<RaftNode>,
        listener: TcpListener,
        ca_pem: String,
        dir: &DataDir,
        state: &NodeState,
    ) -> Result<Self, ClusterError> {
        let api_addr = listener.local_addr().map_err(|source| ClusterError::Bind { addr: "api".into(), source })?;
        let registry = Registry::new(node.clone());
        let (stop, mut stopped) = watch::channel(false);
        let arbiters = start_actors(&node, &registry, &ca_pem, dir, state, stop.subscribe());
        let api = Api::new(registry);
        tokio::spawn(compact_history(node.clone(), stop.subscribe()));
        // A certificate that expired while the node was down is renewed before the API serves it.
        super::renewal::renew_now_if_due(&node, dir, state);
        tokio::spawn(super::renewal::run(node.clone(), dir.clone(), state.clone(), stop.subscribe()));
        let id = node.identity().clone();
        if state.control_plane {
            let cluster = clusterd_raft::pki::fingerprint_pem(&ca_pem).unwrap_or_default();
            let (store, name) = (node.store.clone(), state.name.clone());
            tokio::spawn(super::backups::run(store, dir.0.clone(), state.backups, cluster, name, stop.subscribe()));
        }
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            if let Err(e) = crate::api::server::serve(listener, api, id, shutdown).await {
                tracing::error!(error = %e, "api server failed");
            }
        });
        Ok(RunningNode { node, api_addr, stop, api: task, arbiters })
    }

    /// Run until SIGTERM or SIGINT, then stop cleanly.
    pub async fn run_until_signal(self) -> Result<(), ClusterError> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term =
            signal(SignalKind::terminate()).map_err(|source| ClusterError::Io { path: "signal".into(), source })?;
        let mut int =
            signal(SignalKind::interrupt()).map_err(|source| ClusterError::Io { path: "signal".into(), source })?;
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: stopping"),
            _ = int.recv() => tracing::info!("SIGINT: stopping"),
        }
        self.shutdown().await;
        Ok(())
    }

    /// Stop the actors, the API server and the Raft member.
    pub async fn shutdown(self) {
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), self.api).await;
        self.node.shutdown().await;
        tracing::info!("node: the API and Raft are stopped");
    }
}
