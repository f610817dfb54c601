//! A running member of the replicated store: the Raft instance, its storage and
//! its transport, with the operations the application needs — propose (forwarded
//! to the leader from anywhere), linearizable read barriers, membership changes
//! and the cluster status.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::errors::{ClientWriteError, InitializeError, LinearizableReadError, RaftError};
use openraft::{ChangeMembers, Config, ReadPolicy, SnapshotPolicy};
use tokio::time::Instant;

use crate::addresses::Addresses;
use crate::command::{Command, CommandResponse};
use crate::incoming::{Incoming, Piece, Taken};
use crate::leadership::LeaderWatch;
use crate::network::NetworkFactory;
use crate::pki::{Identity, LiveIdentity};
use crate::rpc::{ClusterStatus, MemberStatus, RemoteError, Request, Response};
use crate::storage::snapshot_file::SnapshotDir;
use crate::storage::{self, SnapshotData, StoreReader};
use crate::transport::{Handler, Transport, TransportError};
use crate::types::{Member, NodeId, Raft, TypeConfig};

/// The most voters a cluster gets; further control-plane joiners stay learners.
pub const MAX_VOTERS: usize = 5;

/// How many entries behind the leader's log a new learner may be when it
/// counts as caught up (see [`RaftNode::add_member`]).
const LEARNER_LAG: u64 = 8;

/// How a node is set up.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// Raft node id.
    pub id: NodeId,
    /// Where the transport listens.
    pub bind: SocketAddr,
    /// The RocksDB directory.
    pub db_path: PathBuf,
    /// The cluster CA certificate, PEM.
    pub ca_pem: String,
    /// This node's certificate and key.
    pub identity: Identity,
    /// Build a snapshot (and purge the log behind it) after at least this many
    /// entries, and no sooner than the log since the last one is as long as
    /// the state has objects (see [`crate::snapshot_policy`]).
    pub snapshot_every: u64,
    /// Log entries kept behind a snapshot for followers that lag a little.
    pub keep_logs: u64,
    /// Raft heartbeat interval.
    pub heartbeat: Duration,
    /// Bytes per piece of a snapshot sent to a peer.
    pub snapshot_piece: u64,
    /// Transport addresses of members by name, used until the membership names
    /// a new address for them (a cluster whose addresses all changed).
    pub peers: Vec<(String, String)>,
}

impl NodeOptions {
    /// Defaults for everything but identity and place.
    pub fn new(id: NodeId, bind: SocketAddr, db_path: PathBuf, ca_pem: String, identity: Identity) -> Self {
        NodeOptions {
            id,
            bind,
            db_path,
            ca_pem,
            identity,
            snapshot_every: 10_000,
            keep_logs: 1_000,
            heartbeat: Duration::from_millis(100),
            snapshot_piece: 1 << 20,
            peers: Vec::new(),
        }
    }
}

/// A node operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Opening storage failed.
    #[error(transparent)]
    Open(#[from] storage::OpenError),
    /// The transport failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// An address was given for a name that is no member.
    #[error("no member is named {name} (members: {members})")]
    UnknownPeer { name: String, members: String },
    /// Raft refused to start or failed fatally.
    #[error("raft: {0}")]
    Raft(String),
    /// No leader answered before the deadline.
    #[error("no leader is available (waited {0:?})")]
    NoLeader(Duration),
    /// The leader (or this node) failed the request.
    #[error(transparent)]
    Remote(#[from] RemoteError),
}

/// A node service's refusal; its message travels to the calling node.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ServiceError(pub String);

/// What the application serves to other nodes over the transport (the kubelet's
/// logs, exec, image load and stats). Requests and answers are opaque bytes.
pub trait NodeService: Send + Sync + 'static {
    /// Answer one call.
    fn call(&self, body: Vec<u8>) -> futures::future::BoxFuture<'static, Result<Vec<u8>, ServiceError>>;
}

/// A running member.
pub struct RaftNode {
    /// This node's id.
    pub id: NodeId,
    /// The Raft instance.
    pub raft: Raft,
    /// Reads and watches of the local replica.
    pub store: StoreReader,
    transport: Arc<Transport>,
    /// Where each member is reached now.
    addresses: Addresses,
    identity: Arc<LiveIdentity>,
    service: std::sync::OnceLock<Arc<dyn NodeService>>,
    /// Snapshots being received from the leader.
    incoming: Incoming,
}

impl RaftNode {
    /// Open storage, bind the transport and start Raft. The node serves the
    /// transport at once; call [`RaftNode::initialize`] on the first node of a
    /// new cluster.
    pub async fn start(opts: NodeOptions) -> Result<Arc<RaftNode>, NodeError> {
        let (log_store, state_machine, store) = storage::open(&opts.db_path)?;
        let identity = LiveIdentity::new(&opts.ca_pem, &opts.identity).map_err(TransportError::from)?;
        let transport = Arc::new(Transport::bind(opts.bind, identity.clone())?);
        let hb = opts.heartbeat.as_millis() as u64;
        let config = Config {
            cluster_name: "clusterd".into(),
            heartbeat_interval: hb,
            election_timeout_min: hb * 4,
            election_timeout_max: hb * 8,
            // Snapshots are asked for by `snapshot_policy`, which weighs the state's size.
            snapshot_policy: SnapshotPolicy::Never,
            max_in_snapshot_log_to_keep: opts.keep_logs,
            snapshot_max_chunk_size: opts.snapshot_piece,
            // A learner is added (a join returns) once its log is within this
            // many entries of the leader's. openraft's default, 5,000, let a
            // join into any small cluster return before the new node had a
            // single entry: stopped right after, its replica held nothing, not
            // even the cluster CA a move needs (moved test, under load).
            replication_lag_threshold: LEARNER_LAG,
            ..Default::default()
        }
        .validate()
        .map_err(|e| NodeError::Raft(e.to_string()))?;
        // Given addresses are in the book before Raft's first election.
        let addresses = Addresses::with_given(opts.peers.iter().cloned());
        let network = NetworkFactory { transport: transport.clone(), addresses: addresses.clone() };
        let raft = Raft::new(opts.id, Arc::new(config), network, log_store, state_machine)
            .await
            .map_err(|e| NodeError::Raft(e.to_string()))?;
        if let Some(e) = unknown_peer(&raft, &opts.peers).await {
            let _ = raft.shutdown().await;
            transport.close();
            return Err(e);
        }
        // Keep the address book in step with the membership (looked at only
        // when the membership's log id moves, not on every write).
        let mut metrics = raft.metrics();
        let book = addresses.clone();
        tokio::spawn(async move {
            let mut seen = None;
            loop {
                let nodes: Option<Vec<(NodeId, Member)>> = {
                    let m = metrics.borrow_watched();
                    let at = *m.membership_config.log_id();
                    (seen != Some(at)).then(|| {
                        seen = Some(at);
                        m.membership_config.nodes().map(|(id, n)| (*id, n.clone())).collect()
                    })
                };
                if let Some(nodes) = nodes {
                    book.update(nodes.iter().map(|(id, m)| (id, m)));
                }
                if metrics.changed().await.is_err() {
                    return;
                }
            }
        });
        tokio::spawn(crate::snapshot_policy::run(raft.clone(), store.clone(), opts.snapshot_every));
        let node = Arc::new(RaftNode {
            id: opts.id,
            raft,
            store,
            transport: transport.clone(),
            addresses,
            identity,
            service: Default::default(),
            incoming: Incoming::new(SnapshotDir::of(&opts.db_path)),
        });
        tokio::spawn(transport.serve(node.clone()));
        Ok(node)
    }

    /// Register the application's node service (once; later calls are ignored).
    pub fn set_service(&self, service: Arc<dyn NodeService>) {
        let _ = self.service.set(service);
    }

    /// Call the node service of the member at transport address `addr` (this node's
    /// own service without a network hop when `addr` is ours).
    pub async fn call_node(&self, addr: &str, body: Vec<u8>, timeout: Duration) -> Result<Vec<u8>, NodeError> {
        if addr == self.raft_addr().to_string() {
            return match self.handle(Request::App(body)).await {
                Response::App(r) => Ok(r?),
                other => Err(RemoteError::Failed(format!("unexpected answer {other:?}")).into()),
            };
        }
        match self.transport.call(addr, &Request::App(body), timeout).await? {
            Response::App(r) => Ok(r?),
            other => Err(RemoteError::Failed(format!("unexpected answer {other:?}")).into()),
        }
    }

    /// This node's certificate, as the transport presents it (replace it to
    /// renew: new connections present the new one).
    pub fn identity(&self) -> &Arc<LiveIdentity> {
        &self.identity
    }

    /// The transport's bound address.
    pub fn raft_addr(&self) -> SocketAddr {
        self.transport.local_addr().expect("bound endpoint has an address")
    }

    /// Make this node the single voter of a new cluster (harmless if already done).
    pub async fn initialize(&self, member: Member) -> Result<(), NodeError> {
        match self.raft.initialize(BTreeMap::from([(self.id, member)])).await {
            Ok(()) => Ok(()),
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
            Err(e) => Err(NodeError::Raft(e.to_string())),
        }
    }

    /// The current leader as this node knows it.
    pub fn leader(&self) -> Option<NodeId> {
        self.raft.server_metrics().borrow_watched().current_leader
    }

    /// Follow the leader as this node knows it, through every change.
    pub fn leader_watch(&self) -> LeaderWatch {
        LeaderWatch::new(self.raft.server_metrics())
    }

    /// Whether this node is the leader.
    pub fn is_leader(&self) -> bool {
        self.raft.is_leader()
    }

    /// The membership record of node `id`.
    pub fn member(&self, id: NodeId) -> Option<Member> {
        self.raft.server_metrics().borrow_watched().membership_config.membership().get_node(&id).cloned()
    }

    /// This node's own membership entry, once Raft has loaded the membership
    /// from storage (right after start its metrics are still empty).
    pub async fn own_member(&self, wait: Duration) -> Option<Member> {
        let id = self.id;
        let loaded =
            move |m: &openraft::RaftMetrics<TypeConfig>| m.membership_config.membership().get_node(&id).is_some();
        let _ = self.raft.wait(Some(wait)).metrics(loaded, "this node's membership entry").await;
        self.member(id)
    }

    /// Where member `id` is reached now: its membership address, or the
    /// address this node was given for it at start (see [`Addresses`]).
    pub fn address_of(&self, id: NodeId) -> Option<String> {
        let m = self.member(id)?;
        Some(self.addresses.get(id, &m.name).unwrap_or(m.raft_addr))
    }

    /// Every member with whether it votes.
    pub fn members(&self) -> Vec<(NodeId, Member, bool)> {
        let stored = self.raft.server_metrics().borrow_watched().membership_config.clone();
        let m = stored.membership();
        let voters: BTreeSet<NodeId> = m.voter_ids().collect();
        m.nodes().map(|(id, n)| (*id, n.clone(), voters.contains(id))).collect()
    }

    /// Send `make()` to the leader — this node or a peer — retrying while the
    /// leader is unknown or moving, until `deadline` passes.
    /// A request that is not `idempotent` is not resent once it may have reached
    /// the leader: its error says the outcome is unknown.
    async fn on_leader(
        &self,
        make: impl Fn() -> Request,
        wait: Duration,
        idempotent: bool,
    ) -> Result<Response, NodeError> {
        let deadline = Instant::now() + wait;
        let mut watch = self.leader_watch();
        loop {
            let leader = watch.leader();
            let attempt = match leader {
                // A leader that lost its quorum keeps its role until it hears of
                // another term: its own writes wait no longer than the caller.
                Some(l) if l == self.id => {
                    let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(100));
                    match tokio::time::timeout(left, self.handle(make())).await {
                        Ok(resp) => Some(Ok(resp)),
                        Err(_) => Some(Err(TransportError::Timeout(format!("the local leader {l}")))),
                    }
                }
                Some(l) => match self.address_of(l) {
                    Some(addr) => {
                        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(100));
                        let mut deposed = self.leader_watch();
                        let deposed = async move { deposed.until_not(Some(l)).await };
                        // A leader that dies mid-request is noticed by the election, not
                        // by waiting out the connection's idle timeout.
                        let req = make();
                        tokio::select! {
                            r = self.transport.call(&addr, &req, left) => Some(r),
                            _ = deposed => Some(Err(TransportError::Broken {
                                addr: addr.clone(),
                                reason: "the leader changed while the request was in flight; its outcome is unknown".into(),
                            })),
                        }
                    }
                    None => None,
                },
                None => None,
            };
            match attempt {
                Some(Ok(resp)) if !is_not_leader(&resp) => return Ok(resp),
                // A leader that cannot be reached or that stepped down: try again.
                Some(Ok(_)) | Some(Err(TransportError::Unreachable { .. })) | None => {}
                Some(Err(TransportError::Broken { .. } | TransportError::Timeout(_))) if idempotent => {}
                Some(Err(e)) => return Err(e.into()),
            }
            if Instant::now() >= deadline {
                return Err(NodeError::NoLeader(wait));
            }
            let pause = tokio::time::sleep(Duration::from_millis(50));
            tokio::select! {
                _ = pause => {}
                _ = watch.changed() => {}
            }
        }
    }

    /// Propose a command through the leader and return its result once this node
    /// has applied it too (so a read here sees the write). A transaction is sent
    /// with a unique id, so it is resent safely when the leader changes under it.
    pub async fn propose(&self, cmd: Command, wait: Duration) -> Result<CommandResponse, NodeError> {
        let cmd = match cmd {
            Command::Txn(txn) => Command::Unique { id: rand::random(), txn },
            other => other,
        };
        let idempotent = !matches!(cmd, Command::Txn(_));
        match self.on_leader(|| Request::Write(cmd.clone()), wait, idempotent).await? {
            Response::Write(Ok(resp)) => {
                self.store.wait_applied(resp.revision, wait).await;
                Ok(resp)
            }
            Response::Write(Err(e)) => Err(e.into()),
            other => Err(RemoteError::Failed(format!("unexpected answer {other:?}")).into()),
        }
    }

    /// Wait until this node has applied everything committed when the call began,
    /// as confirmed by the leader: reads after it are linearizable.
    pub async fn read_barrier(&self, wait: Duration) -> Result<u64, NodeError> {
        match self.on_leader(|| Request::ReadIndex, wait, true).await? {
            Response::ReadIndex(Ok(index)) => {
                if !self.store.wait_applied(index, wait).await {
                    return Err(NodeError::Remote(RemoteError::Failed(format!(
                        "this node did not reach read index {index} in {wait:?}"
                    ))));
                }
                Ok(index)
            }
            Response::ReadIndex(Err(e)) => Err(e.into()),
            other => Err(RemoteError::Failed(format!("unexpected answer {other:?}")).into()),
        }
    }

    /// Add a node: as a learner that has caught up (its log within a few
    /// entries of the leader's; a snapshot installed if it needed one), then as
    /// a voter if asked and the cluster has fewer than [`MAX_VOTERS`].
    pub async fn add_member(&self, id: NodeId, member: Member, voter: bool, wait: Duration) -> Result<(), NodeError> {
        let make = || Request::AddMember { id, member: member.clone(), voter };
        membership_answer(self.on_leader(make, wait, true).await?)
    }

    /// Remove a node from the membership.
    pub async fn remove_member(&self, id: NodeId, wait: Duration) -> Result<(), NodeError> {
        membership_answer(self.on_leader(|| Request::RemoveMember { id }, wait, true).await?)
    }

    /// The cluster's status as the leader sees it.
    pub async fn cluster_status(&self, wait: Duration) -> Result<ClusterStatus, NodeError> {
        match self.on_leader(|| Request::ClusterStatus, wait, true).await? {
            Response::ClusterStatus(r) => Ok(r?),
            other => Err(RemoteError::Failed(format!("unexpected answer {other:?}")).into()),
        }
    }

    /// Build a snapshot now (and purge the log behind it by policy).
    pub async fn snapshot(&self) -> Result<(), NodeError> {
        self.raft.trigger().snapshot().await.map_err(|e| NodeError::Raft(e.to_string()))
    }

    /// Stop Raft and close the transport.
    pub async fn shutdown(&self) {
        let _ = self.raft.shutdown().await;
        self.transport.close();
    }

    fn not_leader(&self) -> RemoteError {
        self.redirect(self.leader())
    }

    fn redirect(&self, leader: Option<NodeId>) -> RemoteError {
        RemoteError::NotLeader(leader.and_then(|l| self.address_of(l).map(|a| (l, a))))
    }

    /// Ask the cluster, through any of `peers` (transport addresses), to add this
    /// node. Used by a joining node, which does not know the leader yet, and by
    /// a moved node (which may be the leader itself: then it asks itself).
    pub async fn request_membership(
        &self,
        peers: &[String],
        member: Member,
        voter: bool,
        wait: Duration,
    ) -> Result<(), NodeError> {
        let deadline = Instant::now() + wait;
        let req = Request::AddMember { id: self.id, member: member.clone(), voter };
        let mut targets: Vec<String> = peers.to_vec();
        let mut last_err = None;
        while Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            let answer = match targets.first() {
                _ if self.is_leader() => {
                    Ok(Response::Membership(self.local_add_member(self.id, member.clone(), voter).await))
                }
                Some(addr) => self.transport.call(addr, &req, left).await,
                // A member alone in its membership: it leads once it has elected itself.
                None => Err(TransportError::Unreachable { addr: "a leader".into(), reason: "no peer to ask".into() }),
            };
            match answer {
                Ok(Response::Membership(Ok(()))) => return Ok(()),
                Ok(Response::Membership(Err(RemoteError::NotLeader(Some((leader, leader_addr))))))
                    if leader != self.id =>
                {
                    targets.retain(|t| *t != leader_addr);
                    targets.insert(0, leader_addr);
                    continue;
                }
                Ok(Response::Membership(Err(e))) => last_err = Some(NodeError::Remote(e)),
                Ok(other) => last_err = Some(RemoteError::Failed(format!("unexpected answer {other:?}")).into()),
                Err(e) => last_err = Some(e.into()),
            }
            targets.rotate_left(1);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(last_err.unwrap_or(NodeError::NoLeader(wait)))
    }

    /// Take a piece of a snapshot; install the snapshot after its last one.
    async fn snapshot_piece(&self, piece: Piece) -> Response {
        let (transfer, size) = (piece.transfer, piece.offset + piece.data.len() as u64);
        let received = match self.incoming.take(piece).await {
            Ok(Taken::More) => return Response::SnapshotChunk(Ok(())),
            Ok(Taken::Complete(received)) => received,
            Err(e) => {
                tracing::info!(error = %e, "refused a snapshot piece");
                return Response::SnapshotChunk(Err(RemoteError::Failed(e.to_string())));
            }
        };
        let data = match SnapshotData::received(received.path.clone()) {
            Ok(data) => data,
            Err(e) => {
                return Response::SnapshotChunk(Err(RemoteError::Failed(format!("open the received snapshot: {e}"))))
            }
        };
        tracing::info!(transfer = %format_args!("{transfer:x}"), bytes = size, snapshot = ?received.meta.last_log_id, "installing a received snapshot");
        let snapshot = crate::types::Snapshot { meta: received.meta.clone(), snapshot: data };
        let answer = self.raft.install_full_snapshot(received.vote, snapshot).await.map_err(RaftError::Fatal);
        // The install took the file; one it refused goes with `received`.
        drop(received);
        Response::Snapshot(answer)
    }

    async fn local_write(&self, cmd: Command) -> Result<CommandResponse, RemoteError> {
        match self.raft.client_write(cmd).await {
            Ok(resp) => Ok(resp.data),
            // Not the leader (or its lease ran out), or the entry was dropped by a
            // leader change before commit: the proposer resends it, and a resent
            // transaction carries its unique id, so it applies at most once.
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f) | ClientWriteError::LogEntryDiscarded(f))) => {
                Err(self.redirect(f.leader_id))
            }
            Err(e) => Err(RemoteError::Failed(e.to_string())),
        }
    }

    async fn local_add_member(&self, id: NodeId, member: Member, voter: bool) -> Result<(), RemoteError> {
        if !self.is_leader() {
            return Err(self.not_leader());
        }
        let fail = |e: RaftError<TypeConfig, ClientWriteError<TypeConfig>>| match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => self.redirect(f.leader_id),
            e => RemoteError::Failed(e.to_string()),
        };
        // A member asking again with other addresses has moved: its entry is
        // rewritten in place (it keeps its role).
        if let Some((_, known, _)) = self.members().into_iter().find(|m| m.0 == id) {
            if known != member {
                let nodes = std::collections::BTreeMap::from([(id, member)]);
                self.raft.change_membership(ChangeMembers::SetNodes(nodes), false).await.map_err(fail)?;
            }
            return Ok(());
        }
        self.raft.add_learner(id, member, true).await.map_err(fail)?;
        if voter {
            let mut voters: BTreeSet<NodeId> = self.members().into_iter().filter(|m| m.2).map(|m| m.0).collect();
            if voters.len() < MAX_VOTERS && voters.insert(id) {
                self.raft.change_membership(voters, false).await.map_err(fail)?;
            }
        }
        Ok(())
    }

    async fn local_remove_member(&self, id: NodeId) -> Result<(), RemoteError> {
        if !self.is_leader() {
            return Err(self.not_leader());
        }
        let fail = |e: RaftError<TypeConfig, ClientWriteError<TypeConfig>>| RemoteError::Failed(e.to_string());
        let members = self.members();
        let Some(target) = members.iter().find(|m| m.0 == id) else {
            return Err(RemoteError::Failed(format!("node {id} is not a member")));
        };
        if target.2 {
            let ids = BTreeSet::from([id]);
            self.raft.change_membership(ChangeMembers::RemoveVoters(ids), false).await.map_err(fail)?;
        }
        self.raft.change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false).await.map_err(fail)?;
        Ok(())
    }

    async fn local_status(&self) -> Result<ClusterStatus, RemoteError> {
        if !self.is_leader() {
            return Err(self.not_leader());
        }
        let members = self.members();
        let asks = members.iter().map(|(id, _, _)| async move {
            if *id == self.id {
                return Some(self.store.revision());
            }
            let addr = self.address_of(*id)?;
            match self.transport.call(&addr, &Request::Applied, Duration::from_millis(500)).await {
                Ok(Response::Applied(r)) => Some(r),
                _ => None,
            }
        });
        let applied = futures::future::join_all(asks).await;
        let members = members
            .into_iter()
            .zip(applied)
            .map(|((id, member, voter), last_applied)| MemberStatus { id, member, voter, last_applied })
            .collect();
        Ok(ClusterStatus { leader: Some(self.id), members })
    }
}

/// A given address whose name is no member's (a typo would leave the member
/// unreachable without a word). The membership is known once Raft has loaded
/// it from storage (its first metrics are empty).
async fn unknown_peer(raft: &Raft, peers: &[(String, String)]) -> Option<NodeError> {
    if peers.is_empty() {
        return None;
    }
    let loaded = |m: &openraft::RaftMetrics<TypeConfig>| m.membership_config.membership().nodes().next().is_some();
    let _ = raft.wait(Some(Duration::from_secs(10))).metrics(loaded, "the membership loaded").await;
    let metrics = raft.metrics().borrow_watched().membership_config.clone();
    let names: BTreeSet<String> = metrics.membership().nodes().map(|(_, m)| m.name.clone()).collect();
    let (name, _) = peers.iter().find(|(name, _)| !names.contains(name))?;
    let members = names.into_iter().collect::<Vec<_>>().join(", ");
    Some(NodeError::UnknownPeer { name: name.clone(), members })
}

fn is_not_leader(resp: &Response) -> bool {
    matches!(
        resp,
        Response::Write(Err(RemoteError::NotLeader(_)))
            | Response::ReadIndex(Err(RemoteError::NotLeader(_)))
            | Response::Membership(Err(RemoteError::NotLeader(_)))
            | Response::ClusterStatus(Err(RemoteError::NotLeader(_)))
    )
}

fn membership_answer(resp: Response) -> Result<(), NodeError> {
    match resp {
        Response::Membership(r) => Ok(r?),
        other => Err(RemoteError::Failed(format!("unexpected answer {other:?}")).into()),
    }
}

impl Handler for RaftNode {
    async fn handle(&self, req: Request) -> Response {
        match req {
            Request::Append(rpc) => Response::Append(self.raft.append_entries(rpc).await),
            Request::Vote(rpc) => Response::Vote(self.raft.vote(rpc).await),
            Request::SnapshotChunk { vote, meta, transfer, offset, data, done } => {
                self.snapshot_piece(Piece { vote, meta, transfer, offset, data, done }).await
            }
            Request::Write(cmd) => Response::Write(self.local_write(cmd).await),
            Request::ReadIndex => {
                Response::ReadIndex(match self.raft.ensure_linearizable(ReadPolicy::ReadIndex).await {
                    Ok(read) => Ok(read.log_id().index),
                    Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(f))) => {
                        Err(self.redirect(f.leader_id))
                    }
                    Err(e) => Err(RemoteError::Failed(e.to_string())),
                })
            }
            Request::AddMember { id, member, voter } => {
                Response::Membership(self.local_add_member(id, member, voter).await)
            }
            Request::RemoveMember { id } => Response::Membership(self.local_remove_member(id).await),
            Request::ClusterStatus => Response::ClusterStatus(self.local_status().await),
            Request::Applied => Response::Applied(self.store.revision()),
            Request::App(body) => Response::App(match self.service.get() {
                Some(svc) => svc.call(body).await.map_err(|e| RemoteError::Failed(e.0)),
                None => Err(RemoteError::Failed("this node serves no node calls yet".into())),
            }),
        }
    }
}
