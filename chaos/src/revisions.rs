//! One revision, one change. The store numbers every write with a revision
//! of its own, so two outputs naming different (key, value) pairs — or a
//! put and a delete — at one revision mean two nodes committed different
//! histories (a split brain), and one value seen at two revisions means a
//! write applied twice. Every output counts: write answers, reads, lists,
//! watch events and the final reads of every node. Values must also come
//! from somewhere: each value any output holds was carried by a create or
//! update of that same key which was not refused.

use std::collections::{BTreeMap, HashMap};

use crate::facts::{observations, refused, Change, Facts, Observation, Source};
use crate::history::{History, Key, Op, Revision, Value};
use crate::violation::{Violation, ViolationKind};

/// Checks revision uniqueness and the provenance of every value seen.
pub fn check(h: &History, facts: &Facts) -> Vec<Violation> {
    let mut out = Vec::new();
    let obs = observations(h);
    let ops_of = |sources: &[&Source]| -> Vec<Op> {
        let mut idx: Vec<usize> =
            sources.iter().filter_map(|s| if let Source::Op(n) = s { Some(*n) } else { None }).collect();
        idx.sort_unstable();
        idx.dedup();
        idx.into_iter().filter_map(|n| h.ops.get(n).cloned()).collect()
    };
    // Revision → first observation of each distinct (key, change).
    let mut by_rev: BTreeMap<Revision, Vec<&Observation>> = BTreeMap::new();
    for o in &obs {
        let seen = by_rev.entry(o.revision).or_default();
        if !seen.iter().any(|s| s.key == o.key && s.change == o.change) {
            seen.push(o);
        }
    }
    for (rev, seen) in &by_rev {
        if seen.len() > 1 {
            let names: Vec<String> =
                seen.iter().map(|o| format!("{} ({})", describe(&o.key, &o.change), o.source)).collect();
            let sources: Vec<&Source> = seen.iter().map(|o| &o.source).collect();
            out.push(
                Violation::new(ViolationKind::Revision, format!("revision {rev} names {}", names.join(" and ")))
                    .with_ops(ops_of(&sources)),
            );
        }
    }
    // Value → first observation at each distinct revision.
    let mut by_value: HashMap<&Value, Vec<&Observation>> = HashMap::new();
    for o in &obs {
        if let Change::Put(v) = &o.change {
            let seen = by_value.entry(v).or_default();
            if !seen.iter().any(|s| s.revision == o.revision) {
                seen.push(o);
            }
        }
    }
    let mut twice: Vec<(&Value, &Vec<&Observation>)> =
        by_value.iter().filter(|(_, s)| s.len() > 1).map(|(v, s)| (*v, s)).collect();
    twice.sort_by_key(|(v, _)| *v);
    for (v, seen) in twice {
        let names: Vec<String> = seen.iter().map(|o| format!("rev {} ({})", o.revision, o.source)).collect();
        let sources: Vec<&Source> = seen.iter().map(|o| &o.source).collect();
        out.push(
            Violation::new(
                ViolationKind::Revision,
                format!("value {v:?}, written once, is seen at {}", names.join(" and ")),
            )
            .with_ops(ops_of(&sources)),
        );
    }
    // Provenance: each value seen was written to that key by a write not refused.
    let mut reported: Vec<(&Key, &Value)> = Vec::new();
    for o in &obs {
        let Change::Put(v) = &o.change else { continue };
        if reported.contains(&(&o.key, v)) {
            continue;
        }
        let writer = facts.writer.get(v).and_then(|n| h.ops.get(*n));
        let why = match writer {
            None => Some("no write carried it".to_string()),
            Some(w) if w.call.key() != Some(&o.key) => {
                Some(format!("it was written to {}", w.call.key().map_or("nothing", |k| k.as_str())))
            }
            Some(w) if refused(&w.outcome) => Some(format!("its write was refused ({})", w.outcome)),
            Some(_) => None,
        };
        if let Some(why) = why {
            reported.push((&o.key, v));
            let mut ops = ops_of(&[&o.source]);
            ops.extend(writer.cloned());
            out.push(
                Violation::new(ViolationKind::Phantom, format!("{} holds {v:?} on {} but {why}", o.source, o.key))
                    .with_ops(ops),
            );
        }
    }
    out
}

fn describe(key: &Key, change: &Change) -> String {
    match change {
        Change::Put(v) => format!("{key}={v:?}"),
        Change::Delete => format!("delete of {key}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::EventKind::{Added, Deleted, Modified};
    use crate::history::Outcome::Conflict;
    use crate::sim::{simulate, SimConfig};
    use crate::testkit::*;

    fn run(h: History) -> Vec<(ViolationKind, String)> {
        check(&h, &Facts::new(&h)).into_iter().map(|v| (v.kind, v.explanation)).collect()
    }

    #[test]
    fn revisions_and_values_are_judged() {
        use ViolationKind::{Phantom, Revision};
        let base = vec![op(0, 0, 10, create("k", "a"), written(1)), op(0, 20, 30, update("k", "b", 1), written(2))];
        let table: Vec<(&str, History, Vec<ViolationKind>)> = vec![
            ("consistent", History { ops: base.clone(), ..History::default() }, vec![]),
            (
                "a read at a revision that wrote another value",
                History {
                    ops: [base.clone(), vec![op(1, 40, 50, get("k"), found("a", 2))]].concat(),
                    ..History::default()
                },
                vec![Revision, Revision],
            ),
            (
                "two keys at one revision across a watch and a final read",
                History {
                    ops: base.clone(),
                    watches: vec![watch(0, vec![ev(Added, "k", "a", 1), ev(Modified, "k", "b", 2)])],
                    finals: vec![fin("n1", 9, &[("k", "b", 2), ("j", "c", 2)])],
                },
                vec![Revision, Phantom],
            ),
            (
                "a delete and a put at one revision",
                History {
                    ops: base.clone(),
                    watches: vec![watch(0, vec![ev(Deleted, "k", "b", 2)])],
                    ..History::default()
                },
                vec![Revision],
            ),
            (
                "a refused write's value in a final read",
                History {
                    ops: [base.clone(), vec![op(1, 40, 50, update("k", "c", 1), Conflict)]].concat(),
                    finals: vec![fin("n1", 9, &[("k", "c", 3)])],
                    ..History::default()
                },
                vec![Phantom],
            ),
            (
                "a value written to another key",
                History {
                    ops: [base.clone(), vec![op(1, 40, 50, get("j"), found("a", 1))]].concat(),
                    ..History::default()
                },
                vec![Revision, Phantom],
            ),
        ];
        for (name, h, want) in table {
            let got = run(h);
            let kinds: Vec<ViolationKind> = got.iter().map(|(k, _)| *k).collect();
            assert_eq!(kinds, want, "{name}: {got:?}");
        }
    }

    #[test]
    fn simulated_histories_pass() {
        let h = simulate(&SimConfig { seed: 4, clients: 8, keys: 10, ops: 5000, unknown_pct: 10, lists: true });
        assert_eq!(run(h), vec![]);
    }
}
