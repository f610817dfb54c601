//! # clusterd-raft
//!
//! A replicated, watchable key/value store — clusterd's replacement for etcd. It
//! knows nothing of pods: keys are strings, values are bytes.
//!
//! * [`storage`] — the Raft log and the state machine in one RocksDB.
//! * [`command`] — etcd-like transactions with compare-and-swap.
//! * [`pki`] — the cluster CA and node certificates (replaceable while in use).
//! * [`transport`] — QUIC with mutual TLS between nodes.
//! * [`addresses`] — where each member is reached now.
//! * [`leadership`] — who leads, followed through changes.
//! * [`snapshot_policy`] — when a node snapshots its state (and purges its log).
//! * [`recover`] — a survivor made the only voter after its quorum was lost for good.
//! * [`node`] — a running member: propose (forwarded to the leader), read, watch,
//!   membership changes.

#[cfg(test)]
mod alloc_probe;
pub mod codec;
pub mod command;
#[cfg(test)]
mod fuzz_frames;
pub mod storage;
pub mod types;

pub use command::{Command, CommandResponse, Compare, Event, EventKind, KeyValue, Op, Txn};
pub use storage::{Gone, StoreReader};
pub use types::{Member, NodeId, Raft, TypeConfig};
pub mod addresses;
mod incoming;
pub mod leadership;
mod live_identity;
pub mod network;
pub mod node;
pub mod pki;
pub mod recover;
pub mod rpc;
pub mod snapshot_policy;
pub mod transport;

pub use leadership::LeaderWatch;
pub use node::{NodeError, NodeOptions, NodeService, RaftNode, ServiceError};
pub use storage::reader::WatchItem;
