//! What a fault run prints: operations by outcome, faults by kind, how long
//! the cluster took to take writes again after each fault healed; and the
//! run's interim checks (until the checkers of `clusterd_chaos` judge the
//! history): nodes agree after healing, no revision names two values, each
//! watch's revisions increase.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use clusterd_chaos::history::{Call, History, Op, Outcome, Revision};

/// A fault as it happened.
#[derive(Clone, Debug)]
pub struct FaultRecord {
    /// The fault kind's label.
    pub kind: &'static str,
    /// What was done, e.g. "kill -9 n2".
    pub what: String,
    /// Run times (ns) of injection and of healing.
    pub injected: u64,
    pub healed: u64,
}

fn call_label(c: &Call) -> &'static str {
    match c {
        Call::Create { .. } => "create",
        Call::Update { .. } => "update",
        Call::Delete { .. } => "delete",
        Call::Get { .. } => "get",
        Call::List => "list",
    }
}

fn outcome_label(o: &Outcome) -> &'static str {
    match o {
        Outcome::Written { .. } => "written",
        Outcome::Deleted { .. } => "deleted",
        Outcome::Found { .. } => "found",
        Outcome::NotFound => "not-found",
        Outcome::Listed { .. } => "listed",
        Outcome::Conflict => "conflict",
        Outcome::Exists => "exists",
        Outcome::Unknown => "unknown",
    }
}

/// Whether `op` is a write the cluster acknowledged.
fn acked_write(op: &Op) -> bool {
    matches!(op.outcome, Outcome::Written { .. } | Outcome::Deleted { .. })
}

/// How long after each fault healed the first write invoked after it was
/// acknowledged (`None`: none was).
pub fn recoveries(faults: &[FaultRecord], ops: &[Op]) -> Vec<Option<Duration>> {
    faults
        .iter()
        .map(|f| {
            ops.iter()
                .filter(|o| acked_write(o) && o.invoke >= f.healed)
                .map(|o| o.complete - f.healed)
                .min()
                .map(Duration::from_nanos)
        })
        .collect()
}

/// The longest time without an acknowledged write from each fault's
/// injection until the first acknowledged write after it healed: how long
/// the cluster took no writes.
pub fn outages(faults: &[FaultRecord], ops: &[Op]) -> Vec<Duration> {
    let mut done: Vec<u64> = ops.iter().filter(|o| acked_write(o)).map(|o| o.complete).collect();
    done.sort();
    faults
        .iter()
        .map(|f| {
            let mut last = f.injected;
            let mut longest = 0;
            for &t in done.iter().filter(|&&t| t > f.injected) {
                longest = longest.max(t - last);
                last = t;
                if t >= f.healed {
                    break;
                }
            }
            Duration::from_nanos(longest)
        })
        .collect()
}

fn counts<'a>(labels: impl Iterator<Item = &'a str>) -> String {
    let mut m: BTreeMap<&str, usize> = BTreeMap::new();
    for l in labels {
        *m.entry(l).or_default() += 1;
    }
    m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
}

/// The `p` quantile of `v` (sorted here).
fn quantile(v: &[Duration], p: f64) -> Duration {
    let mut l = v.to_vec();
    l.sort();
    l[((l.len() as f64 * p).ceil() as usize).saturating_sub(1).min(l.len() - 1)]
}

/// The run's summary.
pub fn summary(h: &History, faults: &[FaultRecord], checks: &[(&str, Vec<String>)]) -> String {
    let mut s = String::new();
    s += &format!("operations: {} ({})\n", h.ops.len(), counts(h.ops.iter().map(|o| call_label(&o.call))));
    s += &format!("  by outcome: {}\n", counts(h.ops.iter().map(|o| outcome_label(&o.outcome))));
    s += &format!("faults: {} ({})\n", faults.len(), counts(faults.iter().map(|f| f.kind)));
    let rec = recoveries(faults, &h.ops);
    let out = outages(faults, &h.ops);
    for ((f, r), o) in faults.iter().zip(&rec).zip(&out) {
        let held = Duration::from_nanos(f.healed - f.injected);
        let r = r.map_or("no write since".to_string(), |r| format!("{:.2}s", r.as_secs_f64()));
        let r = format!("{r}, longest time without an ok write {:.2}s", o.as_secs_f64());
        s += &format!(
            "  {:>7.1}s {:<40} held {:.1}s, first ok write after heal {r}\n",
            f.injected as f64 / 1e9,
            f.what,
            held.as_secs_f64()
        );
    }
    let got: Vec<Duration> = rec.iter().flatten().copied().collect();
    if !got.is_empty() {
        s += &format!(
            "recovery (heal to first ok write): p50 {:.2}s, max {:.2}s{}\n",
            quantile(&got, 0.5).as_secs_f64(),
            got.iter().max().unwrap().as_secs_f64(),
            if got.len() < rec.len() {
                format!(" ({} faults without a write after)", rec.len() - got.len())
            } else {
                String::new()
            }
        );
    }
    if !out.is_empty() {
        s += &format!(
            "write outage (longest time without an ok write, per fault): p50 {:.2}s, max {:.2}s\n",
            quantile(&out, 0.5).as_secs_f64(),
            out.iter().max().unwrap().as_secs_f64()
        );
    }
    let events: usize = h.watches.iter().map(|w| w.events.len()).sum();
    let reconnects: usize = h.watches.iter().map(|w| w.reconnects).sum();
    s += &format!("watches: {} watchers, {events} events, {reconnects} reconnects\n", h.watches.len());
    for f in &h.finals {
        s += &format!("final read on {}: revision {}, {} keys\n", f.node, f.revision, f.items.len());
    }
    for (name, violations) in checks {
        match violations.len() {
            0 => s += &format!("check {name}: passed\n"),
            n => s += &format!("check {name}: {n} violations\n"),
        }
    }
    s
}

/// The interim checks of a history: (name, violations).
pub fn interim_checks(h: &History) -> Vec<(&'static str, Vec<String>)> {
    vec![
        ("nodes agree after healing", nodes_agree(h)),
        ("one value per revision", one_value_per_revision(h)),
        ("watch revisions increase", watch_order(h)),
    ]
}

fn nodes_agree(h: &History) -> Vec<String> {
    let Some(first) = h.finals.first() else { return vec!["no final reads".into()] };
    h.finals
        .iter()
        .filter(|f| f.items != first.items)
        .map(|f| format!("{} holds {:?}, {} holds {:?}", first.node, first.items, f.node, f.items))
        .collect()
}

/// Every revision seen (acknowledged writes, reads, lists, watches, final
/// reads) names at most one (key, value).
fn one_value_per_revision(h: &History) -> Vec<String> {
    let mut seen: BTreeMap<Revision, BTreeSet<(String, String)>> = BTreeMap::new();
    let mut note = |rev: Revision, k: &str, v: &str| {
        seen.entry(rev).or_default().insert((k.to_string(), v.to_string()));
    };
    for op in &h.ops {
        match (&op.call, &op.outcome) {
            (Call::Create { key, value } | Call::Update { key, value, .. }, Outcome::Written { revision }) => {
                note(*revision, key, value)
            }
            (Call::Get { key }, Outcome::Found { value, revision }) => note(*revision, key, value),
            (_, Outcome::Listed { items, .. }) => items.iter().for_each(|(k, v, r)| note(*r, k, v)),
            _ => {}
        }
    }
    for w in &h.watches {
        for e in w.events.iter().filter(|e| e.kind != clusterd_chaos::history::EventKind::Deleted) {
            note(e.revision, &e.key, &e.value);
        }
    }
    for f in &h.finals {
        f.items.iter().for_each(|(k, v, r)| note(*r, k, v));
    }
    seen.into_iter().filter(|(_, s)| s.len() > 1).map(|(r, s)| format!("revision {r} names {s:?}")).collect()
}

fn watch_order(h: &History) -> Vec<String> {
    let mut out = Vec::new();
    for w in &h.watches {
        let mut last = w.from;
        for e in &w.events {
            if e.revision <= last {
                out.push(format!(
                    "watcher {}: {:?} {} at revision {} after {last}",
                    w.watcher, e.kind, e.key, e.revision
                ));
            }
            last = last.max(e.revision);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clusterd_chaos::history::{EventKind, FinalRead, WatchEvent, WatchLog};

    fn write(invoke: u64, complete: u64, key: &str, value: &str, revision: u64) -> Op {
        let call = Call::Create { key: key.into(), value: value.into() };
        Op { client: 0, invoke, complete, call, outcome: Outcome::Written { revision } }
    }

    #[test]
    fn recovery_is_the_first_write_invoked_after_the_heal() {
        let f = |healed| FaultRecord { kind: "kill", what: "kill -9 n1".into(), injected: 0, healed };
        let mut unknown = write(150, 400, "a", "x", 0);
        unknown.outcome = Outcome::Unknown;
        let ops =
            vec![write(50, 120, "a", "v", 3), unknown, write(160, 300, "a", "w", 5), write(170, 250, "b", "u", 4)];
        let r = recoveries(&[f(100), f(1000)], &ops);
        assert_eq!(r, vec![Some(Duration::from_nanos(150)), None]);
        // Acknowledged at 120, 250, 300: from the injection at 0 until 120,
        // the first after the heal at 100; then 130 more until 250 when the
        // fault held until 200.
        assert_eq!(outages(&[f(100), f(200)], &ops), vec![Duration::from_nanos(120), Duration::from_nanos(130)]);
    }

    #[test]
    fn interim_checks_find_what_they_look_for() {
        let fr = |node: &str, items: Vec<(String, String, u64)>| FinalRead { node: node.into(), revision: 9, items };
        let ev = |revision| WatchEvent { kind: EventKind::Added, key: "a".into(), value: "v".into(), revision, at: 0 };
        let good = History {
            ops: vec![write(0, 1, "a", "v", 3)],
            watches: vec![WatchLog { watcher: 0, from: 2, events: vec![ev(3)], reconnects: 0 }],
            finals: vec![fr("n1", vec![("a".into(), "v".into(), 3)]), fr("n2", vec![("a".into(), "v".into(), 3)])],
        };
        assert!(interim_checks(&good).iter().all(|(_, v)| v.is_empty()));
        let bad = History {
            ops: vec![write(0, 1, "a", "v", 3), write(0, 1, "b", "w", 3)],
            watches: vec![WatchLog { watcher: 0, from: 2, events: vec![ev(3), ev(3)], reconnects: 1 }],
            finals: vec![fr("n1", vec![("a".into(), "v".into(), 3)]), fr("n2", vec![])],
        };
        let found: Vec<usize> = interim_checks(&bad).iter().map(|(_, v)| v.len()).collect();
        assert_eq!(found, vec![1, 1, 1]);
    }
}
