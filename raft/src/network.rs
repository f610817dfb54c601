//! openraft's network over the node transport: AppendEntries, votes and whole
//! snapshots, one transport request each.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use openraft::errors::{Fatal, NetworkError, RPCError, RaftError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};

use crate::addresses::Addresses;
use crate::rpc::{Request, Response};
use crate::transport::{Transport, TransportError};
use crate::types::{Member, NodeId, Snapshot, SnapshotData, TypeConfig, Vote};

/// Makes one [`PeerClient`] per target; connections are made lazily.
#[derive(Clone)]
pub struct NetworkFactory {
    pub(crate) transport: Arc<Transport>,
    /// The members' current addresses (see [`Addresses`]).
    pub(crate) addresses: Addresses,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> PeerClient {
        PeerClient {
            target,
            name: node.name.clone(),
            addr: node.raft_addr.clone(),
            transport: self.transport.clone(),
            addresses: self.addresses.clone(),
        }
    }
}

/// Sends Raft RPCs to one peer.
pub struct PeerClient {
    target: NodeId,
    /// The peer's member name (addresses given at start are by name).
    name: String,
    /// The address the client was made with (until the book knows better).
    addr: String,
    transport: Arc<Transport>,
    addresses: Addresses,
}

/// Why a call to a peer failed, before openraft's error shapes.
#[derive(Debug, thiserror::Error)]
enum CallError {
    /// The peer could not be reached.
    #[error(transparent)]
    Unreachable(TransportError),
    /// The request may or may not have arrived.
    #[error(transparent)]
    Network(TransportError),
    /// The peer answered with something else than the request's answer.
    #[error("node {target} answered {answer}")]
    Unexpected { target: NodeId, answer: String },
    /// The local snapshot file could not be read.
    #[error("read the snapshot to send: {0}")]
    Read(std::io::Error),
    /// The peer's Raft has stopped.
    #[error("node {target}: {fatal}")]
    Fatal { target: NodeId, fatal: Fatal<TypeConfig> },
}

impl From<CallError> for RPCError<TypeConfig> {
    fn from(e: CallError) -> Self {
        match e {
            // A stopped peer is as good as unreachable: back off before retrying.
            CallError::Unreachable(_) | CallError::Fatal { .. } => RPCError::Unreachable(Unreachable::new(&e)),
            CallError::Network(_) | CallError::Unexpected { .. } | CallError::Read(_) => {
                RPCError::Network(NetworkError::new(&e))
            }
        }
    }
}

impl From<CallError> for StreamingError<TypeConfig> {
    fn from(e: CallError) -> Self {
        match RPCError::from(e) {
            RPCError::Unreachable(u) => StreamingError::Unreachable(u),
            RPCError::Network(n) => StreamingError::Network(n),
            RPCError::Timeout(t) => StreamingError::Timeout(t),
            RPCError::RemoteError(r) => StreamingError::Network(NetworkError::new(&r)),
        }
    }
}

impl PeerClient {
    async fn send(&self, req: Request, ttl: Duration) -> Result<Response, CallError> {
        let addr = self.addresses.get(self.target, &self.name).unwrap_or_else(|| self.addr.clone());
        self.transport.call(&addr, &req, ttl).await.map_err(|e| match e {
            TransportError::Unreachable { .. } => CallError::Unreachable(e),
            e => CallError::Network(e),
        })
    }

    fn answer<T>(&self, r: Result<T, RaftError<TypeConfig>>) -> Result<T, CallError> {
        r.map_err(|e| CallError::Fatal { target: self.target, fatal: e.unwrap_fatal() })
    }

    fn unexpected(&self, answer: Response) -> CallError {
        CallError::Unexpected { target: self.target, answer: format!("{answer:?}") }
    }
}

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.send(Request::Append(rpc), option.hard_ttl()).await? {
            Response::Append(r) => Ok(self.answer(r)?),
            other => Err(self.unexpected(other).into()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.send(Request::Vote(rpc), option.hard_ttl()).await? {
            Response::Vote(r) => Ok(self.answer(r)?),
            other => Err(self.unexpected(other).into()),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        // Still sent whole: the transport has no chunked snapshot request yet.
        let data = snapshot.snapshot;
        let data = tokio::task::spawn_blocking(move || data.into_bytes())
            .await
            .map_err(|e| CallError::Read(std::io::Error::other(e)))?
            .map_err(CallError::Read)?;
        let req = Request::Snapshot { vote, meta: snapshot.meta, data };
        let answer = tokio::select! {
            answer = self.send(req, option.hard_ttl()) => answer?,
            closed = cancel => return Err(StreamingError::Closed(closed)),
        };
        match answer {
            Response::Snapshot(r) => Ok(self.answer(r)?),
            other => Err(self.unexpected(other).into()),
        }
    }
}
