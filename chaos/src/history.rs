//! What a run's clients did and were told. Times are nanoseconds since the
//! run began, taken by the client right before sending and right after the
//! answer: the real-time order the checkers hold the store to.
//!
//! Every value a workload writes is unique in the run (e.g. `c3-1177`), so a
//! value seen anywhere names the one write that wrote it.

use serde::{Deserialize, Serialize};

/// An object's name within the workload's namespace.
pub type Key = String;
/// What a write stores; unique per write in a run.
pub type Value = String;
/// A store revision (an object's resourceVersion, a list's revision).
pub type Revision = u64;

/// One operation as a client invoked it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Call {
    /// Create `key` holding `value`; refused if it exists.
    Create { key: Key, value: Value },
    /// Replace `key`'s value if it is still at revision `expected`
    /// (compare-and-swap on the resourceVersion).
    Update { key: Key, value: Value, expected: Revision },
    /// Delete `key` (if it is still at `expected`, when given).
    Delete { key: Key, expected: Option<Revision> },
    /// A linearizable read of one key.
    Get { key: Key },
    /// A linearizable list of every key of the workload.
    List,
}

impl Call {
    /// The key this call touches (`None` for a list).
    pub fn key(&self) -> Option<&Key> {
        match self {
            Call::Create { key, .. } | Call::Update { key, .. } | Call::Delete { key, .. } | Call::Get { key } => {
                Some(key)
            }
            Call::List => None,
        }
    }

    /// Whether the call may change the store.
    pub fn is_write(&self) -> bool {
        matches!(self, Call::Create { .. } | Call::Update { .. } | Call::Delete { .. })
    }
}

/// What the client was told.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// A create or update took effect; the object is now at `revision`.
    Written { revision: Revision },
    /// A delete took effect (at `revision` when the answer says).
    Deleted { revision: Option<Revision> },
    /// A get found the key holding `value`, last written at `revision`.
    Found { value: Value, revision: Revision },
    /// A get, update or delete found no such key: nothing was written.
    NotFound,
    /// A list at revision `revision` holding these (key, value, revision)s.
    Listed { revision: Revision, items: Vec<(Key, Value, Revision)> },
    /// A compare-and-swap or delete precondition failed: nothing was written.
    Conflict,
    /// A create of a key that exists: nothing was written.
    Exists,
    /// No answer, a timeout or a lost connection: a write may or may not
    /// have taken effect (at any time after it was invoked); a read tells
    /// nothing.
    Unknown,
}

/// One operation: who, when, what, and what came back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// The client (one operation in flight per client at a time).
    pub client: usize,
    /// When the call was sent.
    pub invoke: u64,
    /// When the answer came (for `Outcome::Unknown`: when the client gave
    /// up; the checkers treat an unknown write as possibly taking effect at
    /// any later time).
    pub complete: u64,
    pub call: Call,
    pub outcome: Outcome,
}

/// What a watch delivered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    Added,
    Modified,
    Deleted,
}

/// One event a watch delivered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchEvent {
    pub kind: EventKind,
    pub key: Key,
    /// The value carried (a Deleted event carries the last value).
    pub value: Value,
    /// The event's revision (for Deleted: the revision of the deletion).
    pub revision: Revision,
    /// When the client received it.
    pub at: u64,
}

/// One watcher's whole record: it watched every key of the workload from
/// revision `from` (exclusive), reconnecting (through any node) after the
/// last revision it had seen whenever its stream broke, until `until`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchLog {
    pub watcher: usize,
    pub from: Revision,
    pub events: Vec<WatchEvent>,
    /// How many times the stream broke and was resumed.
    pub reconnects: usize,
}

/// The state of the workload's keys as one node served it after every
/// fault healed: key → (value, revision), and the revision it was read at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalRead {
    pub node: String,
    pub revision: Revision,
    pub items: Vec<(Key, Value, Revision)>,
}

/// A whole run's record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    pub ops: Vec<Op>,
    pub watches: Vec<WatchLog>,
    pub finals: Vec<FinalRead>,
}

/// Nanoseconds as milliseconds with three decimals.
fn ms(ns: u64) -> String {
    format!("{}.{:03}ms", ns / 1_000_000, (ns / 1_000) % 1_000)
}

impl std::fmt::Display for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Call::Create { key, value } => write!(f, "create {key} = {value:?}"),
            Call::Update { key, value, expected } => write!(f, "update {key} = {value:?} if at rev {expected}"),
            Call::Delete { key, expected: Some(e) } => write!(f, "delete {key} if at rev {e}"),
            Call::Delete { key, expected: None } => write!(f, "delete {key}"),
            Call::Get { key } => write!(f, "get {key}"),
            Call::List => write!(f, "list"),
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Written { revision } => write!(f, "written at rev {revision}"),
            Outcome::Deleted { revision: Some(r) } => write!(f, "deleted at rev {r}"),
            Outcome::Deleted { revision: None } => write!(f, "deleted"),
            Outcome::Found { value, revision } => write!(f, "found {value:?} (rev {revision})"),
            Outcome::NotFound => write!(f, "not found"),
            Outcome::Listed { revision, items } => {
                write!(f, "listed at rev {revision}: [")?;
                for (n, (k, v, r)) in items.iter().enumerate() {
                    let sep = if n == 0 { "" } else { ", " };
                    write!(f, "{sep}{k}={v:?}@{r}")?;
                }
                write!(f, "]")
            }
            Outcome::Conflict => write!(f, "conflict"),
            Outcome::Exists => write!(f, "exists"),
            Outcome::Unknown => write!(f, "unknown"),
        }
    }
}

/// One line: client, invoke–complete times, call, outcome.
impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "c{} [{} – {}] {} → {}", self.client, ms(self.invoke), ms(self.complete), self.call, self.outcome)
    }
}
