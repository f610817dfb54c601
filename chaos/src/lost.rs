//! No acknowledged write is lost. After every fault has healed, each node
//! is read once (`FinalRead`); the rules, all decided from the history:
//!
//! 1. There is at least one final read, and every node's items are the same
//!    (key, value, revision) set: replicas converge.
//! 2. A node read at revision R has applied every acknowledged write: R is
//!    at least the highest revision any write answer carried.
//! 3. For each key, the final state is the latest change the history reveals
//!    for it: the change with the highest revision among acknowledged
//!    writes, unknown writes whose value some output showed with its
//!    revision, and deletes seen by watches. If that change is a put of `v`
//!    at `r`, the node holds exactly `v` at `r`, unless a delete whose
//!    revision nothing reveals (lost answer, or an answer without one) could
//!    have come after it, which may leave the key absent; if it is a delete,
//!    the node does not hold the key at an older revision. A value held at a
//!    higher revision than any other output shows is itself an observation
//!    (an unknown write that took effect) and is the latest change.
//! 4. Items are at revisions ≤ the revision the node was read at.
//!
//! Values that no write wrote are `revisions`' to report (provenance).

use std::collections::BTreeMap;

use crate::facts::{Change, Facts};
use crate::history::{Call, History, Key, Op, Outcome, Revision, Value};
use crate::violation::{Violation, ViolationKind};

/// Checks the final reads of `h`.
pub fn check(h: &History, facts: &Facts) -> Vec<Violation> {
    let mut out = Vec::new();
    let Some(first) = h.finals.first() else {
        return vec![Violation::new(ViolationKind::LostWrite, "no final reads: acknowledged writes were not checked")];
    };
    let state = |items: &[(Key, Value, Revision)]| -> BTreeMap<Key, (Value, Revision)> {
        items.iter().map(|(k, v, r)| (k.clone(), (v.clone(), *r))).collect()
    };
    let reference = state(&first.items);
    for f in &h.finals[1..] {
        let other = state(&f.items);
        if other != reference {
            let mut keys: Vec<&Key> = reference.keys().chain(other.keys()).collect();
            keys.sort();
            keys.dedup();
            let differ: Vec<String> = keys
                .into_iter()
                .filter(|k| reference.get(*k) != other.get(*k))
                .map(|k| format!("{k}: {} vs {}", show(reference.get(k)), show(other.get(k))))
                .collect();
            out.push(Violation::new(
                ViolationKind::LostWrite,
                format!("nodes {} and {} disagree after healing: {}", first.node, f.node, differ.join("; ")),
            ));
        }
    }
    let acked = h
        .ops
        .iter()
        .filter_map(|o| match (&o.call, &o.outcome) {
            (Call::Create { .. } | Call::Update { .. }, Outcome::Written { revision }) => Some((*revision, o)),
            (Call::Delete { .. }, Outcome::Deleted { revision: Some(revision) }) => Some((*revision, o)),
            _ => None,
        })
        .max_by_key(|(r, _)| *r);
    for f in &h.finals {
        if let Some((r, op)) = acked {
            if f.revision < r {
                out.push(
                    Violation::new(
                        ViolationKind::LostWrite,
                        format!(
                            "node {} was read at rev {} below an acknowledged write at rev {r}",
                            f.node, f.revision
                        ),
                    )
                    .with_ops(vec![op.clone()]),
                );
            }
        }
        let held = state(&f.items);
        for (key, (v, r)) in &held {
            if *r > f.revision {
                out.push(Violation::new(
                    ViolationKind::LostWrite,
                    format!(
                        "node {} holds {key}={v:?} at rev {r}, above the rev {} it was read at",
                        f.node, f.revision
                    ),
                ));
            }
        }
        for (key, changes) in &facts.by_key {
            let Some((latest, change)) = changes.iter().next_back() else { continue };
            let writer = writer_op(h, facts, change);
            match (held.get(key), change) {
                (Some((v, r)), Change::Put(w)) if r < latest => out.push(
                    Violation::new(
                        ViolationKind::LostWrite,
                        format!("node {} holds {key}={v:?} (rev {r}): {w:?} written at rev {latest} is lost", f.node),
                    )
                    .with_ops(writer.into_iter().collect()),
                ),
                (Some((v, r)), Change::Delete) if r < latest => out.push(Violation::new(
                    ViolationKind::LostWrite,
                    format!("node {} holds {key}={v:?} (rev {r}): its delete at rev {latest} is lost", f.node),
                )),
                (None, Change::Put(w)) => {
                    let sent = writer.as_ref().map_or(0, |o| o.invoke);
                    if !unrevealed_delete_after(h, key, sent) {
                        out.push(
                            Violation::new(
                                ViolationKind::LostWrite,
                                format!(
                                    "node {} lacks {key}: {w:?} written at rev {latest} is lost (no delete explains it)",
                                    f.node
                                ),
                            )
                            .with_ops(writer.into_iter().collect()),
                        );
                    }
                }
                _ => {}
            }
        }
    }
    out
}

fn show(x: Option<&(Value, Revision)>) -> String {
    x.map_or("absent".to_string(), |(v, r)| format!("{v:?}@{r}"))
}

fn writer_op(h: &History, facts: &Facts, change: &Change) -> Option<Op> {
    match change {
        Change::Put(v) => facts.writer.get(v).and_then(|n| h.ops.get(*n)).cloned(),
        Change::Delete => None,
    }
}

/// Whether a delete of `key` whose revision nothing reveals may have taken
/// effect after time `after`.
fn unrevealed_delete_after(h: &History, key: &Key, after: u64) -> bool {
    h.ops.iter().any(|o| {
        matches!(&o.call, Call::Delete { key: k, .. } if k == key)
            && match o.outcome {
                Outcome::Unknown => true,
                Outcome::Deleted { revision: None } => o.complete > after,
                _ => false,
            }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::EventKind::Deleted;
    use crate::history::FinalRead;
    use crate::history::Outcome::Unknown;
    use crate::sim::{simulate, SimConfig};
    use crate::testkit::*;

    #[test]
    fn final_reads_are_judged() {
        let base = vec![
            op(0, 0, 10, create("a", "a1"), written(1)),
            op(0, 20, 30, create("b", "b1"), written(2)),
            op(0, 40, 50, update("a", "a2", 1), written(3)),
        ];
        let good = [("a", "a2", 3), ("b", "b1", 2)];
        let table: Vec<(&str, Vec<Op>, Vec<FinalRead>, usize)> = vec![
            ("all nodes hold the latest", vec![], vec![fin("n1", 3, &good), fin("n2", 7, &good)], 0),
            ("no final reads", vec![], vec![], 1),
            ("nodes disagree", vec![], vec![fin("n1", 3, &good), fin("n2", 3, &[("a", "a2", 3)])], 2),
            ("an acknowledged update lost", vec![], vec![fin("n1", 3, &[("a", "a1", 1), ("b", "b1", 2)])], 1),
            ("an acknowledged create lost", vec![], vec![fin("n1", 3, &[("a", "a2", 3)])], 1),
            ("a node behind the acknowledged writes", vec![], vec![fin("n1", 2, &[("a", "a2", 3), ("b", "b1", 2)])], 2),
            ("an acknowledged delete lost", vec![op(0, 60, 70, delete("b"), deleted(4))], vec![fin("n1", 4, &good)], 1),
            (
                "an acknowledged delete kept",
                vec![op(0, 60, 70, delete("b"), deleted(4))],
                vec![fin("n1", 4, &[("a", "a2", 3)])],
                0,
            ),
            (
                "an unknown update that took effect",
                vec![op(0, 60, 70, update("b", "b2", 2), Unknown)],
                vec![fin("n1", 9, &[("a", "a2", 3), ("b", "b2", 9)])],
                0,
            ),
            (
                "an unknown update that did not",
                vec![op(0, 60, 70, update("b", "b2", 2), Unknown)],
                vec![fin("n1", 9, &good)],
                0,
            ),
            (
                "a key gone through an unknown delete",
                vec![op(0, 60, 70, delete("b"), Unknown)],
                vec![fin("n1", 9, &[("a", "a2", 3)])],
                0,
            ),
            (
                "an unknown write seen by a read, then lost",
                vec![op(0, 60, 70, update("b", "b2", 2), Unknown), op(1, 80, 90, get("b"), found("b2", 5))],
                vec![fin("n1", 9, &good)],
                1,
            ),
        ];
        for (name, extra, finals, want) in table {
            let h = History { ops: [base.clone(), extra].concat(), finals, ..History::default() };
            let got = check(&h, &Facts::new(&h));
            assert_eq!(got.len(), want, "{name}: {got:#?}");
            assert!(got.iter().all(|v| v.kind == ViolationKind::LostWrite), "{name}");
        }
    }

    #[test]
    fn a_delete_seen_only_by_a_watch_counts() {
        let h = History {
            ops: vec![op(0, 0, 10, create("a", "a1"), written(1)), op(0, 20, 30, delete("a"), Unknown)],
            watches: vec![watch(0, vec![ev(Deleted, "a", "a1", 2)])],
            finals: vec![fin("n1", 2, &[("a", "a1", 1)])],
        };
        let got = check(&h, &Facts::new(&h));
        assert_eq!(got.len(), 1, "{got:#?}");
    }

    #[test]
    fn simulated_histories_pass() {
        let h = simulate(&SimConfig { seed: 6, clients: 8, keys: 10, ops: 5000, unknown_pct: 10, lists: true });
        let got = check(&h, &Facts::new(&h));
        assert!(got.is_empty(), "{}", got[0]);
    }
}
