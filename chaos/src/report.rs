//! One verdict for a run: every checker over one history, with the counts a
//! reader needs to trust a pass (how much was checked, which faults, how
//! fast the cluster recovered) and, on failure, what broke and the smallest
//! set of operations that shows it. The harness prints it as is.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::facts::{refused, Facts};
use crate::history::{Call, History, Key, Outcome};
use crate::linearizable::{self, Budget};
use crate::schedule::ScheduledFault;
use crate::violation::{Violation, ViolationKind};
use crate::{lists, lost, revisions, watches};

/// How many operations of one kind ended how.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutcomeCounts {
    /// Took effect (writes) or answered (reads, lists).
    pub ok: usize,
    /// Definitely had no effect: not found, conflict, exists.
    pub refused: usize,
    /// No answer: may or may not have taken effect.
    pub unknown: usize,
}

/// A fault the harness injected, filled in by the harness.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultRecord {
    /// Its kind (`FaultClass::name`).
    pub kind: String,
    /// What exactly (targets), for the log.
    pub description: String,
    /// Offsets from the start of the run.
    pub start: Duration,
    /// When it was healed (offset from the start of the run).
    pub healed: Duration,
    /// When the cluster answered a linearizable write again after healing;
    /// `None` if it did not before the run ended.
    pub recovered: Option<Duration>,
}

impl FaultRecord {
    /// The record of a scheduled fault, before its recovery is known.
    pub fn scheduled(f: &ScheduledFault) -> FaultRecord {
        FaultRecord {
            kind: f.fault.class().name().to_string(),
            description: f.fault.to_string(),
            start: f.start,
            healed: f.healed(),
            recovered: None,
        }
    }

    /// How long after healing the cluster recovered.
    pub fn recovery(&self) -> Option<Duration> {
        self.recovered.map(|r| r.saturating_sub(self.healed))
    }
}

/// The verdict on a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// The seed of the run (set by the harness), printed to replay it.
    pub seed: Option<u64>,
    /// Operations by call kind ("create", "update", "delete", "get", "list").
    pub ops: BTreeMap<&'static str, OutcomeCounts>,
    /// Watch logs, events delivered, and reconnects.
    pub watches: usize,
    /// Events the watch logs hold in all.
    pub watch_events: usize,
    /// Times watch streams broke and were resumed.
    pub reconnects: usize,
    /// Nodes read after healing.
    pub finals: usize,
    /// Keys and operations the linearizability search covered.
    pub keys_checked: usize,
    /// See `keys_checked`.
    pub ops_checked: usize,
    /// Keys whose search ran out of its time budget (neither proven nor refuted).
    pub inconclusive: Vec<Key>,
    /// Every violation found, by checker.
    pub violations: Vec<Violation>,
    /// Faults injected (filled in by the harness).
    pub faults: Vec<FaultRecord>,
    /// How long the checks took.
    pub check_time: Duration,
}

/// Runs every checker with the default budget.
pub fn check(h: &History) -> Report {
    check_with(h, Budget::default())
}

/// Runs every checker, the linearizability search within `budget` per key.
pub fn check_with(h: &History, budget: Budget) -> Report {
    let started = Instant::now();
    let facts = Facts::new(h);
    let mut report = Report {
        watches: h.watches.len(),
        watch_events: h.watches.iter().map(|w| w.events.len()).sum(),
        reconnects: h.watches.iter().map(|w| w.reconnects).sum(),
        finals: h.finals.len(),
        ..Report::default()
    };
    for op in &h.ops {
        let kind = match op.call {
            Call::Create { .. } => "create",
            Call::Update { .. } => "update",
            Call::Delete { .. } => "delete",
            Call::Get { .. } => "get",
            Call::List => "list",
        };
        let counts = report.ops.entry(kind).or_default();
        match &op.outcome {
            Outcome::Unknown => counts.unknown += 1,
            o if refused(o) && !matches!(op.call, Call::Get { .. }) => counts.refused += 1,
            _ => counts.ok += 1,
        }
    }
    let lin = linearizable::check(h, &facts, budget);
    report.keys_checked = lin.keys;
    report.ops_checked = lin.ops;
    report.inconclusive = lin.inconclusive;
    report.violations = lin.violations;
    report.violations.extend(lists::check(h, &facts));
    report.violations.extend(lost::check(h, &facts));
    report.violations.extend(watches::check(h, &facts));
    report.violations.extend(revisions::check(h, &facts));
    report.check_time = started.elapsed();
    report
}

impl Report {
    /// Whether every check passed: no violation, and no key left undecided.
    pub fn ok(&self) -> bool {
        self.violations.is_empty() && self.inconclusive.is_empty()
    }

    /// Violations counted by kind.
    pub fn violations_by_kind(&self) -> BTreeMap<ViolationKind, usize> {
        let mut m = BTreeMap::new();
        for v in &self.violations {
            *m.entry(v.kind).or_insert(0) += 1;
        }
        m
    }

    /// Faults counted by kind.
    pub fn faults_by_kind(&self) -> BTreeMap<&str, usize> {
        let mut m = BTreeMap::new();
        for f in &self.faults {
            *m.entry(f.kind.as_str()).or_insert(0) += 1;
        }
        m
    }

    /// The median and the worst recovery time, over the faults that recovered.
    pub fn recovery(&self) -> Option<(Duration, Duration)> {
        let mut times: Vec<Duration> = self.faults.iter().filter_map(FaultRecord::recovery).collect();
        times.sort_unstable();
        let max = *times.last()?;
        Some((times[(times.len() - 1) / 2], max))
    }

    /// How many operations in all.
    pub fn total_ops(&self) -> usize {
        self.ops.values().map(|c| c.ok + c.refused + c.unknown).sum()
    }
}

/// How many violations the summary prints in full.
const SHOWN: usize = 20;

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verdict = if self.ok() { "PASSED" } else { "FAILED" };
        let seed = self.seed.map_or(String::new(), |s| format!(" (seed {s})"));
        writeln!(f, "chaos run{seed}: {verdict}")?;
        writeln!(f, "  operations: {}", self.total_ops())?;
        for (kind, c) in &self.ops {
            writeln!(f, "    {kind:<7} ok {:>7}  refused {:>6}  unknown {:>6}", c.ok, c.refused, c.unknown)?;
        }
        writeln!(
            f,
            "  watches: {} ({} events, {} reconnects); final reads: {}",
            self.watches, self.watch_events, self.reconnects, self.finals
        )?;
        let kinds: Vec<String> = self.faults_by_kind().iter().map(|(k, n)| format!("{k} {n}")).collect();
        writeln!(f, "  faults: {} ({})", self.faults.len(), kinds.join(", "))?;
        let unrecovered = self.faults.iter().filter(|r| r.recovered.is_none()).count();
        match self.recovery() {
            Some((p50, max)) => writeln!(
                f,
                "  recovery after healing: p50 {:.2}s, max {:.2}s, not recovered {unrecovered}",
                p50.as_secs_f64(),
                max.as_secs_f64()
            )?,
            None => writeln!(f, "  recovery after healing: none measured, not recovered {unrecovered}")?,
        }
        let by_kind = self.violations_by_kind();
        let checks = [
            ViolationKind::Linearizability,
            ViolationKind::List,
            ViolationKind::LostWrite,
            ViolationKind::Watch,
            ViolationKind::Revision,
            ViolationKind::Phantom,
        ];
        let line: Vec<String> = checks
            .iter()
            .map(|k| match by_kind.get(k) {
                None => format!("{k} ok"),
                Some(n) => format!("{k} FAILED ({n})"),
            })
            .collect();
        writeln!(f, "  checks: {}", line.join(", "))?;
        writeln!(
            f,
            "  linearizability: {} keys, {} operations; inconclusive keys: {}; checked in {:.2}s",
            self.keys_checked,
            self.ops_checked,
            if self.inconclusive.is_empty() { "none".to_string() } else { self.inconclusive.join(", ") },
            self.check_time.as_secs_f64()
        )?;
        for v in self.violations.iter().take(SHOWN) {
            write!(f, "  {v}")?;
        }
        if self.violations.len() > SHOWN {
            writeln!(f, "  ... and {} more violations", self.violations.len() - SHOWN)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Outcome::{Conflict, Unknown};
    use crate::sim::{simulate, SimConfig};
    use crate::testkit::*;

    #[test]
    fn a_correct_run_passes_and_its_summary_counts_everything() {
        let h = simulate(&SimConfig { seed: 11, clients: 8, keys: 10, ops: 3000, unknown_pct: 10, lists: true });
        let mut r = check(&h);
        r.seed = Some(11);
        r.faults = vec![
            FaultRecord {
                kind: "kill".into(),
                description: "kill 1".into(),
                start: Duration::from_secs(2),
                healed: Duration::from_secs(5),
                recovered: Some(Duration::from_millis(6500)),
            },
            FaultRecord {
                kind: "pause".into(),
                description: "pause 0".into(),
                start: Duration::from_secs(8),
                healed: Duration::from_secs(10),
                recovered: Some(Duration::from_millis(10_500)),
            },
            FaultRecord {
                kind: "kill".into(),
                description: "kill 2".into(),
                start: Duration::from_secs(12),
                healed: Duration::from_secs(14),
                recovered: Some(Duration::from_secs(17)),
            },
        ];
        let scheduled = crate::schedule::ScheduledFault {
            fault: crate::schedule::Fault::OneWayPartition { from: 0, to: 2 },
            start: Duration::from_secs(20),
            duration: Duration::from_secs(3),
        };
        let mut record = FaultRecord::scheduled(&scheduled);
        assert_eq!((record.kind.as_str(), record.healed), ("one-way-partition", Duration::from_secs(23)));
        assert_eq!(record.recovery(), None);
        record.recovered = Some(Duration::from_secs(21));
        assert_eq!(record.recovery(), Some(Duration::ZERO), "recovered while the fault was on");
        let text = r.to_string();
        println!("{text}");
        assert!(r.ok(), "{text}");
        assert_eq!(r.total_ops(), 3000);
        assert!(text.contains("chaos run (seed 11): PASSED"), "{text}");
        assert!(text.contains("faults: 3 (kill 2, pause 1)"), "{text}");
        assert!(text.contains("p50 1.50s, max 3.00s, not recovered 0"), "{text}");
        assert!(text.contains("linearizability ok"), "{text}");
    }

    #[test]
    fn a_broken_run_fails_with_each_violation_explained() {
        let h = History {
            ops: vec![
                op(0, 0, 10, create("a", "a1"), written(1)),
                op(0, 20, 30, update("a", "a2", 1), written(2)),
                op(1, 40, 50, get("a"), found("a1", 1)),
                op(1, 60, 70, update("a", "a3", 2), Conflict),
                op(2, 80, 90, delete("a"), Unknown),
            ],
            finals: vec![fin("n1", 2, &[("a", "a1", 1)])],
            ..History::default()
        };
        let r = check(&h);
        let text = r.to_string();
        println!("{text}");
        assert!(!r.ok());
        let kinds = r.violations_by_kind();
        assert_eq!(kinds.get(&ViolationKind::Linearizability), Some(&1), "{text}");
        assert_eq!(kinds.get(&ViolationKind::LostWrite), Some(&1), "{text}");
        assert!(text.contains("FAILED"), "{text}");
        assert!(text.contains("get a → found \"a1\" (rev 1)"), "{text}");
        assert_eq!(r.ops.get("update"), Some(&OutcomeCounts { ok: 1, refused: 1, unknown: 0 }));
        assert_eq!(r.ops.get("delete"), Some(&OutcomeCounts { ok: 0, refused: 0, unknown: 1 }));
    }

    #[test]
    fn the_time_of_every_check_per_10000_ops_is_printed() {
        let h = simulate(&SimConfig { seed: 12, clients: 8, keys: 10, ops: 10_000, unknown_pct: 10, lists: true });
        let r = check(&h);
        assert!(r.ok(), "{r}");
        println!(
            "every check: {} ops ({} watch events, {} final reads) in {:?}",
            r.total_ops(),
            r.watch_events,
            r.finals,
            r.check_time
        );
    }

    #[test]
    fn no_false_alarms_on_many_correct_runs() {
        for seed in 0..40u64 {
            let unknown_pct = (seed % 5) as u32 * 10;
            let keys = 1 + (seed % 4) as usize * 3;
            let mut h =
                simulate(&SimConfig { seed: 100 + seed, clients: 6, keys, ops: 1500, unknown_pct, lists: true });
            if seed % 2 == 1 {
                // Less knowledge: lost writes only revealed by reads, lists and final reads.
                h.watches.clear();
            }
            let r = check(&h);
            assert!(r.ok(), "seed {seed}: {r}");
        }
    }

    #[test]
    fn injected_faults_in_a_correct_run_are_caught_by_their_checker() {
        let base = simulate(&SimConfig { seed: 31, clients: 6, keys: 4, ops: 1500, unknown_pct: 0, lists: true });
        assert!(check(&base).ok());
        type Mutation = Box<dyn Fn(&mut History)>;
        let table: Vec<(&str, Mutation, ViolationKind)> = vec![
            (
                "a final read loses a key",
                Box::new(|h| {
                    for f in &mut h.finals {
                        f.items.remove(0);
                    }
                }),
                ViolationKind::LostWrite,
            ),
            (
                "a watch skips an event",
                Box::new(|h| {
                    h.watches[0].events.remove(10);
                }),
                ViolationKind::Watch,
            ),
            (
                "a watch repeats an event",
                Box::new(|h| {
                    let e = h.watches[0].events[10].clone();
                    h.watches[0].events.insert(11, e);
                }),
                ViolationKind::Watch,
            ),
            (
                "a list misses an item",
                Box::new(|h| {
                    let list = h
                        .ops
                        .iter_mut()
                        .rev()
                        .find(|o| matches!(&o.outcome, Outcome::Listed { items, .. } if !items.is_empty()))
                        .expect("a non-empty list");
                    if let Outcome::Listed { items, .. } = &mut list.outcome {
                        items.remove(0);
                    }
                }),
                ViolationKind::List,
            ),
            (
                "two writes answered with one revision",
                Box::new(|h| {
                    let mut written = h.ops.iter_mut().filter(|o| matches!(o.outcome, Outcome::Written { .. }));
                    let first = written.next().map(|o| o.outcome.clone()).expect("a write");
                    let second = written.nth(5).expect("more writes");
                    second.outcome = first;
                }),
                ViolationKind::Revision,
            ),
        ];
        for (name, mutate, kind) in table {
            let mut h = base.clone();
            mutate(&mut h);
            let r = check(&h);
            assert!(r.violations_by_kind().contains_key(&kind), "{name}: {r}");
        }
    }
}
