//! What the whole history says about each write, gathered once so every
//! checker judges against the same knowledge. A write's value is unique in a
//! run, so any output naming a value together with a revision (a create's
//! answer, a get, a list item, a watch event, a final read) tells the
//! revision at which that value was written, even for a write whose own
//! answer was lost. Deletions are learned the same way from delete answers
//! and Deleted watch events.

use std::collections::{BTreeMap, HashMap};

use crate::history::{Call, EventKind, History, Key, Outcome, Revision, Value};

/// Where a fact was learned, for explanations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The outcome of operation number `n` of `History::ops`.
    Op(usize),
    /// Event number `event` of watch log number `log`.
    Watch { log: usize, event: usize },
    /// The final read of `node`.
    Final { node: String },
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Op(n) => write!(f, "op #{n}"),
            Source::Watch { log, event } => write!(f, "watch log #{log} event #{event}"),
            Source::Final { node } => write!(f, "final read of {node}"),
        }
    }
}

/// What happened at one revision to one key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Change {
    /// The key was made to hold this value (a create or an update).
    Put(Value),
    /// The key was deleted.
    Delete,
}

/// One output saying that `key` changed by `change` at `revision`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    /// The revision of the change.
    pub revision: Revision,
    /// The key changed.
    pub key: Key,
    /// What the change was.
    pub change: Change,
    /// The output that told it.
    pub source: Source,
}

/// Every (revision, key, change) any output of the history names, in the
/// order of the history (ops, then watch logs, then final reads).
pub fn observations(h: &History) -> Vec<Observation> {
    let mut out = Vec::new();
    for (n, op) in h.ops.iter().enumerate() {
        let source = Source::Op(n);
        match (&op.call, &op.outcome) {
            (Call::Create { key, value } | Call::Update { key, value, .. }, Outcome::Written { revision }) => {
                out.push(Observation {
                    revision: *revision,
                    key: key.clone(),
                    change: Change::Put(value.clone()),
                    source,
                })
            }
            (Call::Delete { key, .. }, Outcome::Deleted { revision: Some(revision) }) => {
                out.push(Observation { revision: *revision, key: key.clone(), change: Change::Delete, source })
            }
            (Call::Get { key }, Outcome::Found { value, revision }) => out.push(Observation {
                revision: *revision,
                key: key.clone(),
                change: Change::Put(value.clone()),
                source,
            }),
            (Call::List, Outcome::Listed { items, .. }) => {
                for (key, value, revision) in items {
                    out.push(Observation {
                        revision: *revision,
                        key: key.clone(),
                        change: Change::Put(value.clone()),
                        source: source.clone(),
                    })
                }
            }
            _ => {}
        }
    }
    for (log, w) in h.watches.iter().enumerate() {
        for (event, e) in w.events.iter().enumerate() {
            let change = match e.kind {
                EventKind::Deleted => Change::Delete,
                EventKind::Added | EventKind::Modified => Change::Put(e.value.clone()),
            };
            out.push(Observation {
                revision: e.revision,
                key: e.key.clone(),
                change,
                source: Source::Watch { log, event },
            });
        }
    }
    for f in &h.finals {
        for (key, value, revision) in &f.items {
            out.push(Observation {
                revision: *revision,
                key: key.clone(),
                change: Change::Put(value.clone()),
                source: Source::Final { node: f.node.clone() },
            });
        }
    }
    out
}

/// The knowledge the checkers share.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    /// Value → the operation (index into `History::ops`) whose create or
    /// update call carried it.
    pub writer: HashMap<Value, usize>,
    /// Value → the revision it was written at (the first observation wins;
    /// `revisions` reports disagreements).
    pub value_rev: HashMap<Value, Revision>,
    /// Revision → the change it made (first observation wins).
    pub at: HashMap<Revision, (Key, Change)>,
    /// Per key: every known change by revision.
    pub by_key: BTreeMap<Key, BTreeMap<Revision, Change>>,
}

impl Facts {
    /// Gathers the facts of a history.
    pub fn new(h: &History) -> Facts {
        let mut facts = Facts::default();
        for (n, op) in h.ops.iter().enumerate() {
            if let Call::Create { value, .. } | Call::Update { value, .. } = &op.call {
                facts.writer.entry(value.clone()).or_insert(n);
            }
        }
        for o in observations(h) {
            if let Change::Put(v) = &o.change {
                facts.value_rev.entry(v.clone()).or_insert(o.revision);
            }
            facts.at.entry(o.revision).or_insert_with(|| (o.key.clone(), o.change.clone()));
            facts.by_key.entry(o.key).or_default().entry(o.revision).or_insert(o.change);
        }
        facts
    }

    /// The key a value was written to, if a create or update carried it.
    pub fn key_of(&self, h: &History, value: &Value) -> Option<Key> {
        self.writer.get(value).and_then(|n| h.ops.get(*n)).and_then(|op| op.call.key().cloned())
    }

    /// The latest known change to `key` at or below `revision`.
    pub fn latest_at(&self, key: &Key, revision: Revision) -> Option<(Revision, &Change)> {
        self.by_key.get(key).and_then(|m| m.range(..=revision).next_back()).map(|(r, c)| (*r, c))
    }
}

/// Whether an outcome says the call definitely did not take effect.
pub fn refused(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::NotFound | Outcome::Conflict | Outcome::Exists)
}
