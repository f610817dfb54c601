//! The openraft type configuration and the node record carried in the membership.
//!
//! The membership itself is the directory of the cluster: every node's name and
//! addresses live there, so a node that knows the membership knows where to send
//! a forwarded write or a join request.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::command::{Command, CommandResponse};
use crate::storage::StateMachine;

/// Raft node id. The first node is 1; joiners get the revision of their registration.
pub type NodeId = u64;

/// What the membership records about one node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The node's unique name (its Kubernetes Node name).
    pub name: String,
    /// `host:port` of the node's QUIC transport.
    pub raft_addr: String,
    /// `host:port` of the node's gRPC API.
    pub api_addr: String,
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.raft_addr)
    }
}

openraft::declare_raft_types!(
    /// The type configuration of clusterd's Raft group.
    pub TypeConfig:
        D = Command,
        R = CommandResponse,
        NodeId = NodeId,
        Node = Member,
);

/// What a snapshot carries: a stream over its file (see [`crate::storage::SnapshotData`]).
pub use crate::storage::SnapshotData;
/// openraft's `Raft` over clusterd's types and state machine.
pub type Raft = openraft::Raft<TypeConfig, StateMachine>;
/// A log id over clusterd's types.
pub type LogId = openraft::alias::LogIdOf<TypeConfig>;
/// The id of a leadership (term and node) over clusterd's types.
pub type LeaderId = openraft::alias::LeaderIdOf<TypeConfig>;
/// A vote over clusterd's types.
pub type Vote = openraft::alias::VoteOf<TypeConfig>;
/// A log entry over clusterd's types.
pub type Entry = openraft::alias::EntryOf<TypeConfig>;
/// Storage errors over clusterd's types.
pub type StorageError = openraft::StorageError<TypeConfig>;
/// The membership stored with its log id.
pub type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
/// Snapshot metadata.
pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
/// A snapshot with its data.
pub type Snapshot = openraft::alias::SnapshotOf<TypeConfig, SnapshotData>;
