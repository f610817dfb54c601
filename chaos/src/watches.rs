//! Watches see every change once and in order, across reconnects and
//! failovers. A watch log covers the revisions (from, last] where `last` is
//! the last revision it delivered; within that range:
//!
//! * revisions strictly increase (a repeat is a duplicate, a step back is a
//!   reorder);
//! * every change the history reveals at a revision in the range (write
//!   answers, reads, lists, other watches, final reads) is delivered — a
//!   missing one is a gap;
//! * an event's kind fits the write: Added for a create, Modified for an
//!   update; a Deleted event carries the value the key held (the latest
//!   change before it is the put of that value, when its revision is known).
//!
//! Events whose write the history does not otherwise know (its answer was
//! lost) are welcome: they are observations themselves, and `revisions`
//! holds them to the other outputs (one change per revision, values from
//! writes of that key).

use std::collections::{BTreeMap, HashSet};

use crate::facts::{Change, Facts};
use crate::history::{Call, EventKind, History, Key, Revision, WatchLog};
use crate::violation::{Violation, ViolationKind};

/// At most this many violations are told per watch log (the rest counted).
const MAX_PER_LOG: usize = 10;

/// Checks every watch log of `h`.
pub fn check(h: &History, facts: &Facts) -> Vec<Violation> {
    let changes: BTreeMap<Revision, &(Key, Change)> = facts.at.iter().map(|(r, c)| (*r, c)).collect();
    let mut out = Vec::new();
    for (n, log) in h.watches.iter().enumerate() {
        let mut found = check_log(h, facts, &changes, log);
        let name =
            format!("watch #{n} (watcher {}, from rev {}, {} reconnects)", log.watcher, log.from, log.reconnects);
        let more = found.len().saturating_sub(MAX_PER_LOG);
        found.truncate(MAX_PER_LOG);
        for why in found {
            out.push(Violation::new(ViolationKind::Watch, format!("{name}: {why}")));
        }
        if more > 0 {
            out.push(Violation::new(ViolationKind::Watch, format!("{name}: {more} more violations")));
        }
    }
    out
}

fn check_log(h: &History, facts: &Facts, changes: &BTreeMap<Revision, &(Key, Change)>, log: &WatchLog) -> Vec<String> {
    let mut found = Vec::new();
    let mut last = log.from;
    let mut delivered: HashSet<Revision> = HashSet::new();
    for (i, e) in log.events.iter().enumerate() {
        if e.revision <= last {
            let what = if delivered.contains(&e.revision) || e.revision == last { "duplicate" } else { "out of order" };
            found.push(format!(
                "event #{i} at rev {} ({} {}) is {what}: rev {last} came before",
                e.revision,
                kind(&e.kind),
                e.key
            ));
        } else {
            last = e.revision;
        }
        delivered.insert(e.revision);
        match e.kind {
            EventKind::Added | EventKind::Modified => {
                let call = facts.writer.get(&e.value).and_then(|w| h.ops.get(*w)).map(|o| &o.call);
                let fits = match call {
                    Some(Call::Create { .. }) => e.kind == EventKind::Added,
                    Some(Call::Update { .. }) => e.kind == EventKind::Modified,
                    _ => true,
                };
                if !fits {
                    found.push(format!(
                        "event #{i} at rev {} is {} {}={:?}, but that value was written by {}",
                        e.revision,
                        kind(&e.kind),
                        e.key,
                        e.value,
                        call.map_or("nothing".to_string(), |c| c.to_string())
                    ));
                }
            }
            EventKind::Deleted => {
                if let Some(rv) = facts.value_rev.get(&e.value).copied() {
                    let before = facts.latest_at(&e.key, e.revision.saturating_sub(1));
                    if rv >= e.revision || before != Some((rv, &Change::Put(e.value.clone()))) {
                        let held = match before {
                            Some((r, Change::Put(v))) => format!("{v:?} (rev {r})"),
                            Some((r, Change::Delete)) => format!("nothing (deleted at rev {r})"),
                            None => "nothing known".to_string(),
                        };
                        found.push(format!(
                            "event #{i} deletes {} at rev {} carrying {:?} (rev {rv}), but the key held {held}",
                            e.key, e.revision, e.value
                        ));
                    }
                }
            }
        }
    }
    for (rev, (key, change)) in changes.range(log.from..=last).filter(|(r, _)| **r > log.from) {
        if !delivered.contains(rev) {
            let what = match change {
                Change::Put(v) => format!("{key}={v:?}"),
                Change::Delete => format!("the delete of {key}"),
            };
            found.push(format!("missed rev {rev} ({what}) between rev {} and its last event at rev {last}", log.from));
        }
    }
    found
}

fn kind(k: &EventKind) -> &'static str {
    match k {
        EventKind::Added => "added",
        EventKind::Modified => "modified",
        EventKind::Deleted => "deleted",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::EventKind::{Added, Deleted, Modified};
    use crate::history::Outcome::Unknown;
    use crate::history::WatchEvent;
    use crate::sim::{simulate, SimConfig};
    use crate::testkit::*;

    #[test]
    fn watch_logs_are_judged() {
        let ops = vec![
            op(0, 0, 10, create("a", "a1"), written(1)),
            op(0, 20, 30, update("a", "a2", 1), written(2)),
            op(0, 40, 50, create("b", "b1"), written(3)),
            op(0, 60, 70, delete("a"), deleted(4)),
            op(0, 80, 90, update("b", "b2", 3), Unknown),
        ];
        let all = vec![
            ev(Added, "a", "a1", 1),
            ev(Modified, "a", "a2", 2),
            ev(Added, "b", "b1", 3),
            ev(Deleted, "a", "a2", 4),
        ];
        let table: Vec<(&str, u64, Vec<WatchEvent>, usize)> = vec![
            ("every change once, in order", 0, all.clone(), 0),
            ("from a later revision", 2, all[2..].to_vec(), 0),
            ("nothing delivered yet", 4, vec![], 0),
            ("stopped early: no gap past its last event", 0, all[..2].to_vec(), 0),
            ("an unknown write delivered", 0, [all.clone(), vec![ev(Modified, "b", "b2", 5)]].concat(), 0),
            ("a gap", 0, vec![all[0].clone(), all[2].clone(), all[3].clone()], 1),
            ("a duplicate", 0, vec![all[0].clone(), all[1].clone(), all[1].clone(), all[2].clone(), all[3].clone()], 1),
            ("out of order", 0, vec![all[1].clone(), all[0].clone(), all[2].clone(), all[3].clone()], 1),
            ("a revision at or below from", 2, all[1..].to_vec(), 1),
            ("a create delivered as modified", 0, [vec![ev(Modified, "a", "a1", 1)], all[1..].to_vec()].concat(), 1),
            ("a delete carrying an older value", 0, [all[..3].to_vec(), vec![ev(Deleted, "a", "a1", 4)]].concat(), 1),
        ];
        for (name, from, events, want) in table {
            let h = History { ops: ops.clone(), watches: vec![watch(from, events)], ..History::default() };
            let got = check(&h, &Facts::new(&h));
            assert_eq!(got.len(), want, "{name}: {got:#?}");
            assert!(got.iter().all(|v| v.kind == ViolationKind::Watch), "{name}");
        }
    }

    #[test]
    fn a_change_seen_only_by_another_watcher_is_a_gap() {
        let ops = vec![op(0, 0, 10, create("a", "a1"), Unknown), op(0, 20, 30, create("b", "b1"), written(2))];
        let h = History {
            ops,
            watches: vec![
                watch(0, vec![ev(Added, "a", "a1", 1), ev(Added, "b", "b1", 2)]),
                watch(0, vec![ev(Added, "b", "b1", 2)]),
            ],
            ..History::default()
        };
        let got = check(&h, &Facts::new(&h));
        assert_eq!(got.len(), 1, "{got:#?}");
        assert!(got[0].explanation.contains("missed rev 1"), "{}", got[0]);
    }

    #[test]
    fn simulated_histories_pass() {
        let h = simulate(&SimConfig { seed: 7, clients: 8, keys: 10, ops: 5000, unknown_pct: 10, lists: true });
        let got = check(&h, &Facts::new(&h));
        assert!(got.is_empty(), "{}", got[0]);
    }
}
