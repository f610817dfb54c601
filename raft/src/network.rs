//! openraft's network over the node transport: AppendEntries and votes, one
//! transport request each, and snapshots in pieces (received by `incoming`).

use std::future::Future;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use openraft::errors::{Fatal, NetworkError, RPCError, RaftError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};

use crate::addresses::Addresses;
use crate::rpc::{RemoteError, Request, Response};
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
    /// The peer refused a snapshot piece: the transfer starts over.
    #[error("node {target} refused a snapshot piece: {error}")]
    Refused { target: NodeId, error: RemoteError },
    /// The peer's Raft has stopped.
    #[error("node {target}: {fatal}")]
    Fatal { target: NodeId, fatal: Fatal<TypeConfig> },
}

impl From<CallError> for RPCError<TypeConfig> {
    fn from(e: CallError) -> Self {
        match e {
            // A stopped peer is as good as unreachable: back off before retrying.
            CallError::Unreachable(_) | CallError::Fatal { .. } => RPCError::Unreachable(Unreachable::new(&e)),
            CallError::Network(_) | CallError::Unexpected { .. } | CallError::Read(_) | CallError::Refused { .. } => {
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

/// Bytes per snapshot piece when openraft names no size.
const PIECE: usize = 1 << 20;
/// The largest snapshot piece sent, whatever the configuration says.
const MAX_PIECE: usize = 64 << 20;
/// The least time a snapshot piece gets to arrive and be answered.
const PIECE_TTL_FLOOR: Duration = Duration::from_secs(2);

/// What the last piece of a snapshot of `size` bytes gets on top of a
/// piece's time: the receiver installs the snapshot before it answers.
fn install_time(size: u64) -> Duration {
    let mib = u32::try_from(size.div_ceil(1 << 20)).unwrap_or(u32::MAX);
    Duration::from_secs(10).saturating_add(Duration::from_millis(250).saturating_mul(mib))
}

/// Read the next `len` bytes of `data` off the async workers.
fn read_piece(mut data: SnapshotData, len: usize) -> tokio::task::JoinHandle<std::io::Result<(SnapshotData, Vec<u8>)>> {
    tokio::task::spawn_blocking(move || {
        let mut piece = vec![0u8; len];
        data.read_exact(&mut piece)?;
        Ok((data, piece))
    })
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
        // The file is read piece by piece, the next piece read while the
        // current one travels: two pieces in memory at most.
        let piece = option.snapshot_chunk_size().filter(|n| *n > 0).unwrap_or(PIECE).min(MAX_PIECE);
        let ttl = option.hard_ttl().max(PIECE_TTL_FLOOR);
        let (meta, data) = (snapshot.meta, snapshot.snapshot);
        let size = data.size().map_err(CallError::Read)?;
        let transfer: u64 = rand::random();
        let piece_len = |from: u64| usize::try_from(size - from).map_or(piece, |left| left.min(piece));
        let mut next = Some(read_piece(data, piece_len(0)));
        tokio::pin!(cancel);
        let mut offset = 0u64;
        loop {
            let reading = next.take().expect("a piece is read until the last");
            let (data, bytes) =
                reading.await.map_err(|e| CallError::Read(std::io::Error::other(e)))?.map_err(CallError::Read)?;
            let end = offset + bytes.len() as u64;
            let done = end >= size;
            let ttl = if done { ttl.saturating_add(install_time(size)) } else { ttl };
            if !done {
                next = Some(read_piece(data, piece_len(end)));
            }
            let req = Request::SnapshotChunk { vote, meta: meta.clone(), transfer, offset, data: bytes, done };
            // Every piece is sent where the address book says the peer is now.
            let answer = tokio::select! {
                answer = self.send(req, ttl) => answer?,
                closed = &mut cancel => return Err(StreamingError::Closed(closed)),
            };
            match answer {
                Response::SnapshotChunk(Ok(())) if !done => {}
                Response::Snapshot(r) if done => return Ok(self.answer(r)?),
                Response::SnapshotChunk(Err(error)) => {
                    return Err(CallError::Refused { target: self.target, error }.into());
                }
                other => return Err(self.unexpected(other).into()),
            }
            offset = end;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::alloc_probe::Gauge;
    use crate::command::{Command, Op, Txn};
    use crate::node::{NodeError, NodeOptions, RaftNode};
    use crate::pki::{self, Ca};
    use crate::storage::snapshot_file::SnapshotDir;
    use crate::types::Member;

    const WAIT: Duration = Duration::from_secs(30);

    struct Harness {
        ca: Ca,
        dir: tempfile::TempDir,
    }

    impl Harness {
        fn new() -> Self {
            pki::install_default_provider();
            Harness { ca: Ca::generate("test").unwrap(), dir: tempfile::tempdir().unwrap() }
        }

        fn db(&self, id: u64) -> std::path::PathBuf {
            self.dir.path().join(format!("n{id}"))
        }

        fn identity(&self, name: &str) -> pki::Identity {
            self.ca.issue(name, &["127.0.0.1".into()], pki::NODE_VALIDITY).unwrap()
        }

        /// Start node `id` on a port of its own; snapshots are sent in
        /// `piece`s. A node just stopped may hold its store a moment longer.
        async fn node(&self, id: u64, piece: u64) -> (Arc<RaftNode>, Member) {
            let deadline = tokio::time::Instant::now() + WAIT;
            let node = loop {
                let identity = self.identity(&format!("n{id}"));
                let db = self.db(id);
                let mut opts =
                    NodeOptions::new(id, "127.0.0.1:0".parse().unwrap(), db, self.ca.cert_pem().into(), identity);
                opts.snapshot_every = 1_000_000;
                opts.keep_logs = 0;
                opts.snapshot_piece = piece;
                match RaftNode::start(opts).await {
                    Ok(node) => break node,
                    Err(NodeError::Open(e)) if tokio::time::Instant::now() < deadline => {
                        tracing::debug!(error = %e, "the store is still held");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(e) => panic!("start n{id}: {e}"),
                }
            };
            let member =
                Member { name: format!("n{id}"), raft_addr: node.raft_addr().to_string(), api_addr: String::new() };
            (node, member)
        }
    }

    /// Build a snapshot of everything `node` applied, asking again while
    /// openraft drops the request (it does while a build is under way).
    async fn snapshot_now(node: &RaftNode) -> u64 {
        let applied = node.store.revision();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            node.snapshot().await.unwrap();
            let built = node
                .raft
                .wait(Some(Duration::from_secs(1)))
                .metrics(|m| m.snapshot.is_some_and(|s| s.index >= applied), "the snapshot built")
                .await;
            if let Ok(m) = built {
                return m.snapshot.unwrap().index;
            }
            assert!(tokio::time::Instant::now() < deadline, "no snapshot was built");
        }
    }

    /// Make `node` the only voter of a new cluster, its membership committed.
    async fn lead_alone(node: &RaftNode, member: Member) {
        node.initialize(member).await.unwrap();
        let id = node.id;
        node.raft
            .wait(Some(WAIT))
            .metrics(
                |m| m.current_leader == Some(id) && m.last_applied.is_some_and(|l| l.index >= 1),
                "leading, the membership applied",
            )
            .await
            .unwrap();
    }

    /// Add `member` as a learner, again while the leader's own first
    /// membership change is still under way.
    async fn add_learner(leader: &RaftNode, id: u64, member: Member) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match leader.add_member(id, member.clone(), false, WAIT).await {
                Ok(()) => return,
                Err(e) if e.to_string().contains("undergoing a configuration change") => {
                    assert!(tokio::time::Instant::now() < deadline, "add member {id}: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("add member {id}: {e}"),
            }
        }
    }

    const KEYS: usize = 3_000;
    const VALUE: usize = 1024;

    /// A runtime whose every thread (workers and blocking pool) notes its
    /// allocations in `gauge`.
    fn measured_runtime(gauge: Gauge) -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .on_thread_start(move || gauge.join())
            .build()
            .unwrap()
    }

    #[test]
    fn a_snapshot_sent_in_pieces_installs_every_key_and_no_allocation_holds_it_whole() {
        let gauge = Gauge::new();
        gauge.join();
        measured_runtime(gauge).block_on(async {
            let h = Harness::new();
            let piece = 64 << 10;
            let (n1, m1) = h.node(1, piece).await;
            lead_alone(&n1, m1).await;
            for batch in 0..KEYS / 100 {
                let ops = (batch * 100..(batch + 1) * 100)
                    .map(|i| Op::Put { key: format!("/k/{i:05}"), value: vec![(i % 251) as u8; VALUE] })
                    .collect();
                n1.propose(Command::Txn(Txn::ops(ops)), WAIT).await.unwrap();
            }
            let index = snapshot_now(&n1).await;
            n1.raft
                .wait(Some(WAIT))
                .metrics(|m| m.purged.is_some_and(|p| p.index >= index), "the log purged behind the snapshot")
                .await
                .unwrap();
            let snap = SnapshotDir::file_names(&h.db(1));
            let size = std::fs::metadata(h.db(1).join("snapshots").join(&snap[0])).unwrap().len();
            assert!(size > (KEYS * VALUE) as u64, "the snapshot holds every value: {size} bytes");

            // Only what the transfer and the install allocate from here (a
            // node's start allocates buffers of a few MiB: QUIC's, openraft's).
            let (n2, m2) = h.node(2, piece).await;
            gauge.reset();
            add_learner(&n1, 2, m2).await;
            // The add returns once the learner caught up: it holds the snapshot.
            assert!(n2.store.revision() >= index, "the learner holds the snapshot when its add returns");
            let target = n1.store.revision();
            assert!(n2.store.wait_applied(target, WAIT).await, "the learner caught up");
            let largest = gauge.largest();

            let (kvs, _) = n2.store.list("/k/").unwrap();
            assert_eq!(kvs.len(), KEYS, "every key arrived");
            for (i, kv) in kvs.iter().enumerate() {
                assert_eq!(
                    (kv.key.as_str(), kv.value.as_slice()),
                    (format!("/k/{i:05}").as_str(), &[(i % 251) as u8; VALUE][..])
                );
            }
            assert!(n2.store.compacted() >= index, "the learner caught up through the snapshot");
            let files = SnapshotDir::file_names(&h.db(2));
            assert!(
                files.len() == 1 && files[0].ends_with(".snap"),
                "the received snapshot is the learner's one snapshot file, no spool left: {files:?}"
            );
            assert!(largest >= piece as usize, "the gauge saw the pieces: {largest}");
            assert!(largest < size as usize / 4, "an allocation of {largest} bytes for a snapshot of {size}");
            n2.shutdown().await;
            n1.shutdown().await;
        });
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_transfer_cut_short_installs_nothing_and_its_spool_is_gone_after_a_restart() {
        let h = Harness::new();
        // A genuine snapshot of another store.
        let other = tempfile::tempdir().unwrap();
        let (snapshot, size) = {
            use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
            let (_log, mut sm, _reader) = crate::storage::open(other.path()).unwrap();
            let entries = (1..=200u64)
                .map(|i| crate::types::Entry {
                    log_id: crate::types::LogId::new(crate::types::LeaderId { term: 1, node_id: 1 }, i),
                    payload: openraft::EntryPayload::Normal(Command::Txn(Txn::ops(vec![Op::Put {
                        key: format!("/k/{i}"),
                        value: vec![7; 1000],
                    }]))),
                })
                .collect();
            sm.apply_batch(entries).unwrap();
            let snap = sm.get_snapshot_builder().await.build_snapshot().await.unwrap();
            let size = snap.snapshot.size().unwrap();
            (snap, size)
        };
        let (meta, bytes) = (snapshot.meta, snapshot.snapshot.into_bytes().unwrap());
        let (n2, _) = h.node(2, 1 << 20).await;
        let addr = n2.raft_addr().to_string();
        let sender = {
            let live = pki::LiveIdentity::new(h.ca.cert_pem(), &h.identity("n1")).unwrap();
            Transport::bind("127.0.0.1:0".parse().unwrap(), live).unwrap()
        };
        let vote = Vote::new(1, 1);
        let pieces: Vec<&[u8]> = bytes.chunks(32 << 10).collect();
        assert!(pieces.len() > 3, "{size} bytes");
        let mut offset = 0u64;
        for p in &pieces[..pieces.len() - 1] {
            let req = Request::SnapshotChunk {
                vote,
                meta: meta.clone(),
                transfer: 42,
                offset,
                data: p.to_vec(),
                done: false,
            };
            let answer = sender.call(&addr, &req, WAIT).await.unwrap();
            assert!(matches!(answer, Response::SnapshotChunk(Ok(()))), "{answer:?}");
            offset += p.len() as u64;
        }
        let spool = SnapshotDir::file_names(&h.db(2));
        assert!(spool.iter().any(|f| f.starts_with("incoming-")), "the pieces are spooled: {spool:?}");
        // A piece out of place is refused: the sender would start over.
        let late =
            Request::SnapshotChunk { vote, meta: meta.clone(), transfer: 42, offset: 1, data: vec![0], done: true };
        let answer = sender.call(&addr, &late, WAIT).await.unwrap();
        assert!(matches!(answer, Response::SnapshotChunk(Err(_))), "{answer:?}");
        sender.close();
        // The sender is gone before its last piece; the node stops and starts again.
        assert_eq!(n2.store.list("/k/").unwrap().0.len(), 0, "nothing is installed");
        n2.shutdown().await;
        drop(n2);
        let (n2, _) = h.node(2, 1 << 20).await;
        assert_eq!(n2.store.revision(), 0, "nothing is installed after the restart");
        assert_eq!(n2.store.list("/k/").unwrap().0.len(), 0);
        assert!(SnapshotDir::file_names(&h.db(2)).is_empty(), "the spool is removed at the restart");
        n2.shutdown().await;
    }
}
