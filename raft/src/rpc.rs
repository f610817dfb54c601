//! The messages nodes exchange over the transport: Raft's own RPCs, forwarded
//! writes and reads, and membership requests.

use openraft::errors::RaftError;
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};
use serde::{Deserialize, Serialize};

use crate::command::{Command, CommandResponse};
use crate::types::{Member, NodeId, SnapshotMeta, TypeConfig, Vote};

/// A request from one node to another.
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    /// Raft AppendEntries.
    Append(AppendEntriesRequest<TypeConfig>),
    /// Raft RequestVote.
    Vote(VoteRequest<TypeConfig>),
    /// A piece of a snapshot, sent by the leader holding `vote` (received by
    /// `incoming`). Pieces of one transfer come in order; the last
    /// one (`done`) is answered once the snapshot is installed.
    SnapshotChunk {
        /// The sender's vote.
        vote: Vote,
        /// What the snapshot covers.
        meta: SnapshotMeta,
        /// The transfer's id, random per transfer.
        transfer: u64,
        /// Where in the snapshot file this piece starts.
        offset: u64,
        /// The piece's bytes.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
        /// Whether this is the last piece.
        done: bool,
    },
    /// A client write forwarded to the leader.
    Write(Command),
    /// Ask the leader for a linearizable read index.
    ReadIndex,
    /// Add a node (learner, then voter if asked and there is room).
    AddMember { id: NodeId, member: Member, voter: bool },
    /// Remove a node from the membership.
    RemoveMember { id: NodeId },
    /// The whole cluster's status, as the leader sees it.
    ClusterStatus,
    /// This node's own last applied revision.
    Applied,
    /// An application-level call to this node (logs, exec, image load, stats):
    /// opaque bytes handed to the registered [`crate::node::NodeService`].
    App(#[serde(with = "serde_bytes")] Vec<u8>),
}

/// An application-level failure carried back over the transport.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RemoteError {
    /// The receiver is not the leader; it names the leader it knows and its
    /// transport address.
    #[error("not the leader (leader: {0:?})")]
    NotLeader(Option<(NodeId, String)>),
    /// The request failed on the receiver.
    #[error("{0}")]
    Failed(String),
}

/// The answer to a [`Request`], variant for variant.
#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    /// Raft AppendEntries.
    Append(Result<AppendEntriesResponse<TypeConfig>, RaftError<TypeConfig>>),
    /// Raft RequestVote.
    Vote(Result<VoteResponse<TypeConfig>, RaftError<TypeConfig>>),
    /// The snapshot was installed (or refused for a newer vote, which the
    /// response carries): the answer to a transfer's last piece.
    Snapshot(Result<SnapshotResponse<TypeConfig>, RaftError<TypeConfig>>),
    /// A snapshot piece was taken (more are expected), or refused: the
    /// sender starts the transfer over.
    SnapshotChunk(Result<(), RemoteError>),
    /// A forwarded write.
    Write(Result<CommandResponse, RemoteError>),
    /// The read index.
    ReadIndex(Result<u64, RemoteError>),
    /// Membership change done.
    Membership(Result<(), RemoteError>),
    /// Cluster status.
    ClusterStatus(Result<ClusterStatus, RemoteError>),
    /// Last applied revision.
    Applied(u64),
    /// The answer of the application's node service.
    App(Result<Vec<u8>, RemoteError>),
}

/// What `clusterd status` shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// The current leader, if any.
    pub leader: Option<NodeId>,
    /// Every member of the membership.
    pub members: Vec<MemberStatus>,
}

/// One member in [`ClusterStatus`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    /// Raft node id.
    pub id: NodeId,
    /// Name, addresses.
    pub member: Member,
    /// Voter or learner.
    pub voter: bool,
    /// The member's last applied revision; `None` when it did not answer.
    pub last_applied: Option<u64>,
}
