//! A broken promise, told so a person can see it: which check, what is
//! wrong in words, and the operations that show it (as few as were found).

use crate::history::Op;

/// Which promise a violation breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ViolationKind {
    /// The operations on one key have no legal sequential order.
    Linearizability,
    /// A list disagrees with the writes' revisions or with real time.
    List,
    /// An acknowledged write is missing after healing, the nodes disagree,
    /// or a final read holds what no write wrote.
    LostWrite,
    /// A watch skipped, repeated, reordered or invented a change.
    Watch,
    /// One revision names two different changes (or one value two revisions).
    Revision,
    /// An output holds a value that no create or update of that key wrote
    /// (or one whose write was refused).
    Phantom,
}

impl std::fmt::Display for ViolationKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ViolationKind::Linearizability => "linearizability",
            ViolationKind::List => "list",
            ViolationKind::LostWrite => "lost write",
            ViolationKind::Watch => "watch",
            ViolationKind::Revision => "revision",
            ViolationKind::Phantom => "phantom value",
        })
    }
}

/// One violation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Which check found it.
    pub kind: ViolationKind,
    /// What is wrong, in words.
    pub explanation: String,
    /// The operations that show it (a minimal failing sub-history for
    /// linearizability), in invoke order; may be empty.
    pub ops: Vec<Op>,
}

impl Violation {
    /// A violation shown by no particular operations.
    pub fn new(kind: ViolationKind, explanation: impl Into<String>) -> Violation {
        Violation { kind, explanation: explanation.into(), ops: Vec::new() }
    }

    /// The same violation, shown by these operations.
    pub fn with_ops(mut self, mut ops: Vec<Op>) -> Violation {
        ops.sort_by_key(|o| (o.invoke, o.complete, o.client));
        self.ops = ops;
        self
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "[{}] {}", self.kind, self.explanation)?;
        for op in &self.ops {
            writeln!(f, "    {op}")?;
        }
        Ok(())
    }
}
