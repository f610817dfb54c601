//! Lists span keys, so the per-key search cannot judge them; revisions can.
//! A list answered at revision R is a snapshot: each key's entry must be the
//! change with the highest revision ≤ R that any output reveals (absent if
//! that change is a delete), and R must respect real time — no earlier than
//! any revision already seen by an operation that completed before the list
//! was sent, no later than the revision of any write sent after it returned;
//! and a read sent after the list returned must not see an older state of a
//! key than the list did.
//!
//! Deletes whose revision nothing reveals (their answer was lost or carried
//! none) may sit anywhere after they were sent, so a key missing from a
//! list, or a read not finding it, is excused by such a delete.

use std::collections::{BTreeMap, BTreeSet};

use crate::facts::{Change, Facts};
use crate::history::{Call, History, Key, Op, Outcome, Revision};
use crate::violation::{Violation, ViolationKind};

/// How many reads of each key after a list are held to it.
const READS_AFTER_LIST: usize = 8;

/// The revision an operation's answer shows the store had reached.
fn seen_revision(op: &Op) -> Option<Revision> {
    match &op.outcome {
        Outcome::Written { revision } | Outcome::Found { revision, .. } | Outcome::Listed { revision, .. } => {
            Some(*revision)
        }
        Outcome::Deleted { revision } => *revision,
        _ => None,
    }
}

/// The revision an operation wrote at, when its answer tells.
fn write_revision(op: &Op) -> Option<Revision> {
    match (&op.call, &op.outcome) {
        (Call::Create { .. } | Call::Update { .. }, Outcome::Written { revision }) => Some(*revision),
        (Call::Delete { .. }, Outcome::Deleted { revision }) => *revision,
        _ => None,
    }
}

/// Every delete whose revision nothing reveals (its answer was lost, or
/// carried none), by key.
fn unrevealed_deletes(h: &History) -> BTreeMap<&Key, Vec<&Op>> {
    let mut m: BTreeMap<&Key, Vec<&Op>> = BTreeMap::new();
    for o in &h.ops {
        if let (Call::Delete { key, .. }, Outcome::Unknown | Outcome::Deleted { revision: None }) =
            (&o.call, &o.outcome)
        {
            m.entry(key).or_default().push(o);
        }
    }
    m
}

/// Whether one of those deletes of `key` could have taken effect after
/// time `after` and before time `before`.
fn unknown_delete(deletes: &BTreeMap<&Key, Vec<&Op>>, key: &Key, after: u64, before: u64) -> bool {
    deletes
        .get(key)
        .is_some_and(|ds| ds.iter().any(|o| o.invoke < before && (o.outcome == Outcome::Unknown || o.complete > after)))
}

/// When the write of a value was sent (0 if unknown).
fn sent_at(h: &History, facts: &Facts, change: &Change) -> u64 {
    match change {
        Change::Put(v) => facts.writer.get(v).and_then(|n| h.ops.get(*n)).map_or(0, |o| o.invoke),
        Change::Delete => 0,
    }
}

/// Checks every answered list of `h`.
pub fn check(h: &History, facts: &Facts) -> Vec<Violation> {
    let mut out = Vec::new();
    // Operations by completion, with the highest revision seen so far; and
    // by invocation, with the lowest revision written from then on.
    let mut by_complete: Vec<(u64, Revision, usize)> =
        h.ops.iter().enumerate().filter_map(|(n, o)| seen_revision(o).map(|r| (o.complete, r, n))).collect();
    by_complete.sort_unstable();
    let mut max_seen: Vec<(Revision, usize)> = Vec::with_capacity(by_complete.len());
    for &(_, r, n) in &by_complete {
        let best = max_seen.last().copied().filter(|(m, _)| *m >= r).unwrap_or((r, n));
        max_seen.push(best);
    }
    let mut by_invoke: Vec<(u64, Revision, usize)> =
        h.ops.iter().enumerate().filter_map(|(n, o)| write_revision(o).map(|r| (o.invoke, r, n))).collect();
    by_invoke.sort_unstable();
    let mut min_written: Vec<(Revision, usize)> = vec![(Revision::MAX, usize::MAX); by_invoke.len() + 1];
    for (i, &(_, r, n)) in by_invoke.iter().enumerate().rev() {
        let later = min_written[i + 1];
        min_written[i] = if r < later.0 { (r, n) } else { later };
    }

    let deletes = unrevealed_deletes(h);
    let mut gets_by_key: BTreeMap<&Key, Vec<&Op>> = BTreeMap::new();
    for o in &h.ops {
        if let Call::Get { key } = &o.call {
            gets_by_key.entry(key).or_default().push(o);
        }
    }
    for gets in gets_by_key.values_mut() {
        gets.sort_by_key(|o| o.invoke);
    }

    for list in &h.ops {
        let (Call::List, Outcome::Listed { revision: at, items }) = (&list.call, &list.outcome) else { continue };
        let at = *at;
        let mut fail = |why: String, mut ops: Vec<Op>| {
            ops.push(list.clone());
            out.push(Violation::new(ViolationKind::List, format!("list at rev {at}: {why}")).with_ops(ops));
        };
        // Real time: revisions seen before it was sent, written after it returned.
        let before = by_complete.partition_point(|(c, _, _)| *c < list.invoke);
        if let Some(&(r, n)) = before.checked_sub(1).and_then(|i| max_seen.get(i)) {
            if r > at {
                fail(
                    format!("an operation that completed before it was sent had seen rev {r}"),
                    vec![h.ops[n].clone()],
                );
            }
        }
        let after = by_invoke.partition_point(|(i, _, _)| *i <= list.complete);
        if let Some(&(r, n)) = min_written.get(after) {
            if r <= at {
                fail(format!("a write sent after it returned was written at rev {r}"), vec![h.ops[n].clone()]);
            }
        }
        // The snapshot.
        let mut listed: BTreeSet<&Key> = BTreeSet::new();
        for (key, value, rev) in items {
            if !listed.insert(key) {
                fail(format!("{key} is listed twice"), vec![]);
                continue;
            }
            if *rev > at {
                fail(format!("{key}={value:?} is at rev {rev}, after the list's revision"), vec![]);
                continue;
            }
            if let Some((r, change)) = facts.latest_at(key, at) {
                if r > *rev {
                    let what = match change {
                        Change::Put(v) => format!("{v:?} was written"),
                        Change::Delete => "it was deleted".to_string(),
                    };
                    fail(
                        format!("{key}={value:?} (rev {rev}) is stale: at rev {r} {what}"),
                        writer_ops(h, facts, change),
                    );
                }
            }
        }
        for (key, changes) in &facts.by_key {
            if listed.contains(key) {
                continue;
            }
            let Some((r, change @ Change::Put(v))) = changes.range(..=at).next_back() else { continue };
            if !unknown_delete(&deletes, key, sent_at(h, facts, change), list.complete) {
                fail(format!("{key} is missing though {v:?} was written at rev {r}"), writer_ops(h, facts, change));
            }
        }
        // Reads sent after it returned see no older state (the first few
        // of each key: the per-key search orders the later ones).
        for (key, gets) in &gets_by_key {
            let first = gets.partition_point(|o| o.invoke <= list.complete);
            for get in gets.iter().skip(first).take(READS_AFTER_LIST) {
                let Some((x, change)) = facts.latest_at(key, at) else { continue };
                match &get.outcome {
                    Outcome::Found { revision, .. } if *revision < x => fail(
                        format!("a later read of {key} saw rev {revision}, older than the list's rev {x}"),
                        vec![(*get).clone()],
                    ),
                    Outcome::NotFound if matches!(change, Change::Put(_)) => {
                        let deleted_later = facts.by_key.get(*key).is_some_and(|m| {
                            m.range((std::ops::Bound::Excluded(x), std::ops::Bound::Unbounded))
                                .any(|(_, c)| *c == Change::Delete)
                        });
                        if !deleted_later && !unknown_delete(&deletes, key, sent_at(h, facts, change), get.complete) {
                            fail(
                                format!(
                                    "a later read did not find {key}, listed at rev {x}, and no delete explains it"
                                ),
                                vec![(*get).clone()],
                            )
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    out
}

fn writer_ops(h: &History, facts: &Facts, change: &Change) -> Vec<Op> {
    match change {
        Change::Put(v) => facts.writer.get(v).and_then(|n| h.ops.get(*n)).cloned().into_iter().collect(),
        Change::Delete => vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Outcome::{NotFound, Unknown};
    use crate::sim::{simulate, SimConfig};
    use crate::testkit::*;

    fn list(client: usize, invoke: u64, complete: u64, outcome: Outcome) -> Op {
        op(client, invoke, complete, Call::List, outcome)
    }

    #[test]
    fn lists_are_judged_against_revisions_and_real_time() {
        let base = vec![
            op(0, 0, 10, create("a", "a1"), written(1)),
            op(0, 20, 30, create("b", "b1"), written(2)),
            op(0, 40, 50, update("a", "a2", 1), written(3)),
        ];
        let table: Vec<(&str, Vec<Op>, usize)> = vec![
            ("a correct snapshot", vec![list(1, 60, 70, listed(3, &[("a", "a2", 3), ("b", "b1", 2)]))], 0),
            ("an old snapshot while writes ran", vec![list(1, 15, 70, listed(1, &[("a", "a1", 1)]))], 0),
            (
                "a stale revision after a completed write",
                vec![list(1, 60, 70, listed(2, &[("a", "a1", 1), ("b", "b1", 2)]))],
                1,
            ),
            (
                "a stale item at a current revision",
                vec![list(1, 60, 70, listed(3, &[("a", "a1", 1), ("b", "b1", 2)]))],
                1,
            ),
            ("a missing key", vec![list(1, 60, 70, listed(3, &[("a", "a2", 3)]))], 1),
            (
                "a missing key excused by an unknown delete",
                vec![op(2, 52, 58, delete("b"), Unknown), list(1, 60, 70, listed(3, &[("a", "a2", 3)]))],
                0,
            ),
            (
                "a key listed twice",
                vec![list(1, 60, 70, listed(3, &[("a", "a2", 3), ("a", "a2", 3), ("b", "b1", 2)]))],
                1,
            ),
            (
                "an item above the list's revision",
                vec![list(1, 60, 70, listed(2, &[("a", "a2", 3), ("b", "b1", 2)]))],
                2,
            ),
            (
                "a write sent after the list returned at a revision below it",
                vec![
                    list(1, 60, 70, listed(4, &[("a", "a2", 3), ("b", "b1", 2)])),
                    op(2, 80, 90, delete("b"), deleted(4)),
                ],
                2,
            ),
            (
                "a read after the list going back in time",
                vec![
                    list(1, 60, 70, listed(3, &[("a", "a2", 3), ("b", "b1", 2)])),
                    op(2, 80, 90, get("a"), found("a1", 1)),
                ],
                1,
            ),
            (
                "a read after the list not finding a listed key",
                vec![list(1, 60, 70, listed(3, &[("a", "a2", 3), ("b", "b1", 2)])), op(2, 80, 90, get("b"), NotFound)],
                1,
            ),
            (
                "a read after the list not finding a key deleted since",
                vec![
                    list(1, 60, 70, listed(3, &[("a", "a2", 3), ("b", "b1", 2)])),
                    op(3, 71, 75, delete("b"), deleted(4)),
                    op(2, 80, 90, get("b"), NotFound),
                ],
                0,
            ),
            ("an unknown list tells nothing", vec![list(1, 60, 70, Unknown)], 0),
        ];
        for (name, extra, want) in table {
            let h = History { ops: [base.clone(), extra].concat(), ..History::default() };
            let got = check(&h, &Facts::new(&h));
            assert_eq!(got.len(), want, "{name}: {got:#?}");
            assert!(got.iter().all(|v| v.kind == ViolationKind::List && !v.ops.is_empty()), "{name}");
        }
    }

    #[test]
    fn simulated_histories_pass() {
        let h = simulate(&SimConfig { seed: 5, clients: 8, keys: 10, ops: 5000, unknown_pct: 10, lists: true });
        assert!(h.ops.iter().any(|o| matches!(o.outcome, Outcome::Listed { .. })));
        let got = check(&h, &Facts::new(&h));
        assert!(got.is_empty(), "{}", got[0]);
    }
}
