//! The commands the state machine applies: etcd-like transactions over keys.
//!
//! A command is fully determined before it is proposed (uids, timestamps and
//! defaults are set by the proposer), so applying it is deterministic on every node.

use serde::{Deserialize, Serialize};

/// A stored value with the revisions that describe its history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The value bytes (for objects: Kubernetes JSON).
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
    /// Revision (log index) that created the key.
    pub create_revision: u64,
    /// Revision (log index) that last changed the key; the object's resourceVersion.
    pub mod_revision: u64,
}

/// A condition a transaction checks before it applies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Compare {
    /// The key's mod revision equals the given one; 0 means "the key does not exist".
    ModRevision(String, u64),
    /// The key exists, whatever its revision.
    Exists(String),
}

/// One write inside a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Set a key to a value.
    Put {
        key: String,
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
    },
    /// Remove a key (a no-op if it does not exist).
    Delete { key: String },
}

/// A transaction: if every compare holds, all of `success` applies at one revision;
/// otherwise nothing is written.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Txn {
    /// Conditions, all of which must hold.
    pub compares: Vec<Compare>,
    /// Writes applied when the conditions hold.
    pub success: Vec<Op>,
}

impl Txn {
    /// A transaction that always applies the given writes.
    pub fn ops(success: Vec<Op>) -> Self {
        Txn { compares: Vec::new(), success }
    }
}

/// What is proposed to Raft.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// A guarded multi-key write.
    Txn(Txn),
    /// A transaction applied at most once: a retry carrying the same id (after a
    /// leader change left the first attempt's outcome unknown) gets the first
    /// attempt's result instead of applying again.
    Unique {
        /// Chosen at random by the proposer.
        id: u128,
        /// The transaction.
        txn: Txn,
    },
    /// Drop watch history (and the memory of unique ids) at and below this revision.
    Compact(u64),
}

/// A one-line summary for openraft's logs (never the values).
impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Txn(t) => write!(f, "txn({} compares, {} ops)", t.compares.len(), t.success.len()),
            Command::Unique { id, txn } => {
                write!(f, "unique {id:032x} txn({} compares, {} ops)", txn.compares.len(), txn.success.len())
            }
            Command::Compact(upto) => write!(f, "compact up to {upto}"),
        }
    }
}

/// The state machine's answer to one applied entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResponse {
    /// The revision of the entry (its log index).
    pub revision: u64,
    /// Whether the transaction's compares held (always true for other commands).
    pub succeeded: bool,
    /// For a failed transaction: the index of the first compare that failed.
    pub failed_compare: Option<usize>,
    /// For a failed transaction: the current value of the key of the failed compare.
    pub current: Option<KeyValue>,
    /// For a succeeded transaction: the previous value of every written key, in op order.
    pub prev: Vec<Option<KeyValue>>,
}

/// What happened to one key at one revision; the unit of watch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The revision of the change.
    pub revision: u64,
    /// Whether the key was put or deleted.
    pub kind: EventKind,
    /// The key's value after the change (for a delete: the value it had).
    pub kv: KeyValue,
    /// Whether the key existed before a put (a put on a new key is a create).
    pub existed: bool,
}

/// Put or delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// The key was created or changed.
    Put,
    /// The key was removed.
    Delete,
}
