//! Fault schedules drawn from a seed, so a failing run can be replayed:
//! the same seed, duration, node count and fault kinds give the same faults
//! at the same offsets. Faults come one at a time, each followed by a quiet
//! gap in which the cluster should recover (the harness measures how long
//! it takes), and the last part of the run (`quiet_tail`) has no fault at
//! all, so every fault has healed before the checks read the final state.

use std::str::FromStr;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// A kind of fault, as enabled in a configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum FaultClass {
    /// `Fault::Partition`.
    Partition,
    /// `Fault::OneWayPartition`.
    OneWayPartition,
    /// `Fault::IsolateLeader`.
    IsolateLeader,
    /// `Fault::Kill`.
    Kill,
    /// `Fault::Pause`.
    Pause,
    /// `Fault::DiskFull`.
    DiskFull,
    /// `Fault::RestartAll`.
    RestartAll,
}

impl FaultClass {
    /// Every kind.
    pub const ALL: [FaultClass; 7] = [
        FaultClass::Partition,
        FaultClass::OneWayPartition,
        FaultClass::IsolateLeader,
        FaultClass::Kill,
        FaultClass::Pause,
        FaultClass::DiskFull,
        FaultClass::RestartAll,
    ];

    /// The kind's name (as `FromStr` reads it, and the summary prints it).
    pub fn name(self) -> &'static str {
        match self {
            FaultClass::Partition => "partition",
            FaultClass::OneWayPartition => "one-way-partition",
            FaultClass::IsolateLeader => "isolate-leader",
            FaultClass::Kill => "kill",
            FaultClass::Pause => "pause",
            FaultClass::DiskFull => "disk-full",
            FaultClass::RestartAll => "restart-all",
        }
    }

    /// Whether the kind needs at least two nodes.
    fn needs_peers(self) -> bool {
        matches!(self, FaultClass::Partition | FaultClass::OneWayPartition | FaultClass::IsolateLeader)
    }
}

impl std::fmt::Display for FaultClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FaultClass {
    type Err = ScheduleError;

    fn from_str(s: &str) -> Result<FaultClass, ScheduleError> {
        FaultClass::ALL.into_iter().find(|c| c.name() == s).ok_or_else(|| ScheduleError::UnknownKind(s.to_string()))
    }
}

/// One fault, with its targets (nodes are indices `0..nodes`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fault {
    /// Nodes in different groups cannot reach each other (both ways).
    Partition { groups: Vec<Vec<usize>> },
    /// Packets from `from` to `to` are dropped; the other way still flows.
    OneWayPartition { from: usize, to: usize },
    /// Whichever node leads when the fault starts is cut off from the others.
    IsolateLeader,
    /// The node is killed with SIGKILL, and restarted from its data dir at the end.
    Kill { node: usize },
    /// The node is stopped (SIGSTOP) past the election timeout, then continued.
    Pause { node: usize },
    /// The node's data filesystem is full (writes fail with ENOSPC) until the end.
    DiskFull { node: usize },
    /// Every node is killed and restarted at once (restarted at the end).
    RestartAll,
}

impl Fault {
    /// The fault's kind.
    pub fn class(&self) -> FaultClass {
        match self {
            Fault::Partition { .. } => FaultClass::Partition,
            Fault::OneWayPartition { .. } => FaultClass::OneWayPartition,
            Fault::IsolateLeader => FaultClass::IsolateLeader,
            Fault::Kill { .. } => FaultClass::Kill,
            Fault::Pause { .. } => FaultClass::Pause,
            Fault::DiskFull { .. } => FaultClass::DiskFull,
            Fault::RestartAll => FaultClass::RestartAll,
        }
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Partition { groups } => write!(f, "partition {groups:?}"),
            Fault::OneWayPartition { from, to } => write!(f, "one-way partition {from} -> {to}"),
            Fault::IsolateLeader => write!(f, "isolate leader"),
            Fault::Kill { node } => write!(f, "kill {node}"),
            Fault::Pause { node } => write!(f, "pause {node}"),
            Fault::DiskFull { node } => write!(f, "disk full on {node}"),
            Fault::RestartAll => write!(f, "restart all"),
        }
    }
}

/// A fault at its place in the run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledFault {
    /// What to inject.
    pub fault: Fault,
    /// Offset from the start of the run.
    pub start: Duration,
    /// How long it lasts; it is healed at `start + duration`.
    pub duration: Duration,
}

impl ScheduledFault {
    /// When the fault is healed.
    pub fn healed(&self) -> Duration {
        self.start + self.duration
    }
}

/// What a schedule is drawn from.
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduleConfig {
    /// The seed: the same seed draws the same schedule.
    pub seed: u64,
    /// The whole run.
    pub total: Duration,
    /// How many nodes the cluster has (faults name nodes `0..nodes`).
    pub nodes: usize,
    /// The kinds that may be drawn.
    pub kinds: Vec<FaultClass>,
    /// Bounds of one fault's duration (a pause must outlast the election timeout).
    pub min_fault: Duration,
    /// See `min_fault`.
    pub max_fault: Duration,
    /// Bounds of the quiet gap before each fault.
    pub min_gap: Duration,
    /// See `min_gap`.
    pub max_gap: Duration,
    /// The fraction of the run at its end with no fault.
    pub quiet_tail: f64,
}

impl ScheduleConfig {
    /// Every kind, faults of 2–8 s, gaps of 1–4 s, the last 20% quiet.
    pub fn new(seed: u64, total: Duration, nodes: usize) -> ScheduleConfig {
        ScheduleConfig {
            seed,
            total,
            nodes,
            kinds: FaultClass::ALL.to_vec(),
            min_fault: Duration::from_secs(2),
            max_fault: Duration::from_secs(8),
            min_gap: Duration::from_secs(1),
            max_gap: Duration::from_secs(4),
            quiet_tail: 0.2,
        }
    }
}

/// Why no schedule could be drawn.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScheduleError {
    #[error("a schedule needs at least one node")]
    NoNodes,
    #[error("no enabled fault kind applies to {0} node(s)")]
    NoKinds(usize),
    #[error("a bound is inverted: fault {min_fault:?}..{max_fault:?}, gap {min_gap:?}..{max_gap:?}")]
    Bounds { min_fault: Duration, max_fault: Duration, min_gap: Duration, max_gap: Duration },
    #[error("the quiet tail must be a fraction in [0, 1), not {0}")]
    QuietTail(String),
    #[error("the run ({total:?}) leaves no room for one gap and one fault before its quiet tail")]
    TooShort { total: Duration },
    #[error("unknown fault kind {0:?} (known: partition, one-way-partition, isolate-leader, kill, pause, disk-full, restart-all)")]
    UnknownKind(String),
}

/// Draws the faults of a run, in order, none overlapping.
pub fn schedule(cfg: &ScheduleConfig) -> Result<Vec<ScheduledFault>, ScheduleError> {
    if cfg.nodes == 0 {
        return Err(ScheduleError::NoNodes);
    }
    let mut kinds: Vec<FaultClass> = cfg.kinds.iter().copied().filter(|k| cfg.nodes > 1 || !k.needs_peers()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    if kinds.is_empty() {
        return Err(ScheduleError::NoKinds(cfg.nodes));
    }
    if cfg.min_fault > cfg.max_fault || cfg.min_gap > cfg.max_gap {
        return Err(ScheduleError::Bounds {
            min_fault: cfg.min_fault,
            max_fault: cfg.max_fault,
            min_gap: cfg.min_gap,
            max_gap: cfg.max_gap,
        });
    }
    if !(0.0..1.0).contains(&cfg.quiet_tail) {
        return Err(ScheduleError::QuietTail(cfg.quiet_tail.to_string()));
    }
    let end = cfg.total.mul_f64(1.0 - cfg.quiet_tail);
    if cfg.min_gap + cfg.min_fault > end {
        return Err(ScheduleError::TooShort { total: cfg.total });
    }
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let between = |rng: &mut StdRng, lo: Duration, hi: Duration| -> Duration {
        Duration::from_millis(rng.gen_range(lo.as_millis() as u64..=hi.as_millis() as u64))
    };
    let mut out = Vec::new();
    let mut now = Duration::ZERO;
    loop {
        let start = now + between(&mut rng, cfg.min_gap, cfg.max_gap);
        let duration = between(&mut rng, cfg.min_fault, cfg.max_fault);
        if start + duration > end {
            // Fit a last, shorter fault if the minimum still fits.
            if start + cfg.min_fault <= end {
                out.push(ScheduledFault { fault: draw(&mut rng, &kinds, cfg.nodes), start, duration: end - start });
            }
            break;
        }
        out.push(ScheduledFault { fault: draw(&mut rng, &kinds, cfg.nodes), start, duration });
        now = start + duration;
    }
    Ok(out)
}

fn draw(rng: &mut StdRng, kinds: &[FaultClass], nodes: usize) -> Fault {
    let class = kinds[rng.gen_range(0..kinds.len())];
    match class {
        FaultClass::Partition => {
            let mut order: Vec<usize> = (0..nodes).collect();
            order.shuffle(rng);
            let mut groups: Vec<Vec<usize>> = if nodes >= 3 && rng.gen_bool(0.2) {
                // Every node alone: no majority anywhere.
                order.iter().map(|n| vec![*n]).collect()
            } else {
                let cut = rng.gen_range(1..nodes);
                vec![order[..cut].to_vec(), order[cut..].to_vec()]
            };
            for g in &mut groups {
                g.sort_unstable();
            }
            groups.sort();
            Fault::Partition { groups }
        }
        FaultClass::OneWayPartition => {
            let from = rng.gen_range(0..nodes);
            let to = (from + rng.gen_range(1..nodes)) % nodes;
            Fault::OneWayPartition { from, to }
        }
        FaultClass::IsolateLeader => Fault::IsolateLeader,
        FaultClass::Kill => Fault::Kill { node: rng.gen_range(0..nodes) },
        FaultClass::Pause => Fault::Pause { node: rng.gen_range(0..nodes) },
        FaultClass::DiskFull => Fault::DiskFull { node: rng.gen_range(0..nodes) },
        FaultClass::RestartAll => Fault::RestartAll,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(seed: u64) -> ScheduleConfig {
        ScheduleConfig::new(seed, Duration::from_secs(120), 3)
    }

    #[test]
    fn the_same_seed_draws_the_same_schedule_and_others_differ() {
        let a = schedule(&cfg(42)).expect("schedule");
        assert_eq!(a, schedule(&cfg(42)).expect("schedule"));
        for seed in 0..20 {
            if seed != 42 {
                assert_ne!(a, schedule(&cfg(seed)).expect("schedule"), "seed {seed}");
            }
        }
    }

    #[test]
    fn faults_are_apart_valid_and_healed_before_the_quiet_tail() {
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..200 {
            for nodes in [1, 2, 3, 5] {
                let mut c = cfg(seed);
                c.nodes = nodes;
                let s = schedule(&c).expect("schedule");
                assert!(!s.is_empty());
                let mut prev_end = Duration::ZERO;
                for f in &s {
                    assert!(f.start >= prev_end + c.min_gap, "seed {seed}: {s:?}");
                    assert!(f.duration >= c.min_fault && f.duration <= c.max_fault, "seed {seed}: {f:?}");
                    assert!(f.healed() <= Duration::from_secs(96), "seed {seed}: {f:?}");
                    prev_end = f.healed();
                    seen.insert(f.fault.class());
                    match &f.fault {
                        Fault::Partition { groups } => {
                            let mut all: Vec<usize> = groups.concat();
                            all.sort_unstable();
                            assert_eq!(all, (0..nodes).collect::<Vec<_>>());
                            assert!(groups.len() >= 2 && groups.iter().all(|g| !g.is_empty()));
                        }
                        Fault::OneWayPartition { from, to } => assert!(from != to && *from < nodes && *to < nodes),
                        Fault::Kill { node } | Fault::Pause { node } | Fault::DiskFull { node } => {
                            assert!(*node < nodes)
                        }
                        Fault::IsolateLeader | Fault::RestartAll => assert!(nodes > 1 || f.fault == Fault::RestartAll),
                    }
                }
            }
        }
        assert_eq!(seen.len(), FaultClass::ALL.len(), "every kind is drawn: {seen:?}");
    }

    #[test]
    fn only_enabled_kinds_are_drawn() {
        let mut c = cfg(7);
        c.kinds = vec![FaultClass::Kill, FaultClass::Pause];
        let s = schedule(&c).expect("schedule");
        assert!(s.iter().all(|f| matches!(f.fault, Fault::Kill { .. } | Fault::Pause { .. })), "{s:?}");
    }

    #[test]
    fn impossible_configurations_are_refused() {
        // (what, the change to a valid configuration, the error wanted)
        type Case = (&'static str, Box<dyn Fn(&mut ScheduleConfig)>, ScheduleError);
        let table: Vec<Case> = vec![
            ("no nodes", Box::new(|c| c.nodes = 0), ScheduleError::NoNodes),
            (
                "only partitions of one node",
                Box::new(|c| {
                    c.nodes = 1;
                    c.kinds = vec![FaultClass::Partition, FaultClass::IsolateLeader];
                }),
                ScheduleError::NoKinds(1),
            ),
            ("no kinds", Box::new(|c| c.kinds.clear()), ScheduleError::NoKinds(3)),
            (
                "too short",
                Box::new(|c| c.total = Duration::from_secs(3)),
                ScheduleError::TooShort { total: Duration::from_secs(3) },
            ),
            ("tail of one", Box::new(|c| c.quiet_tail = 1.0), ScheduleError::QuietTail("1".into())),
        ];
        for (name, change, want) in table {
            let mut c = cfg(1);
            change(&mut c);
            assert_eq!(schedule(&c), Err(want), "{name}");
        }
        let mut c = cfg(1);
        c.min_gap = Duration::from_secs(9);
        assert!(matches!(schedule(&c), Err(ScheduleError::Bounds { .. })));
    }

    #[test]
    fn kinds_parse_from_their_names() {
        for k in FaultClass::ALL {
            assert_eq!(k.name().parse::<FaultClass>(), Ok(k));
        }
        assert_eq!("flood".parse::<FaultClass>(), Err(ScheduleError::UnknownKind("flood".into())));
    }
}
