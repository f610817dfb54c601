//! Fault runs: a three-voter cluster on test hosts, each node's data dir on a
//! small tmpfs of its own, under a seeded schedule of faults (partitions,
//! one-way drops, the leader isolated, kill -9 and restart, SIGSTOP past the
//! election timeout, a full data dir, every node killed at once) while
//! clients create, compare-and-swap, delete, get and list a few hot keys
//! through different nodes and watchers follow them across failovers.
//! Everything the clients did and were told is recorded as a
//! `clusterd_chaos::history::History` and judged after every fault healed.
//!
//! `make test` runs a short run (60 s of faults, fixed seed); `make chaos`
//! a long one (`CHAOS_SECONDS`, `CHAOS_SEED`). A failing run prints its seed
//! and violations and keeps the nodes' logs and the history under
//! `target/chaos/`; `CHAOS_FAULTS=kill,pause` limits a run to those kinds,
//! `CHAOS_HOLD_SECONDS` holds each fault that long.
//! Needs root.

mod fixtures;
#[path = "fixtures/nemesis.rs"]
mod nemesis;
#[path = "chaos/summary.rs"]
mod summary;
#[path = "chaos/watcher.rs"]
mod watcher;
#[path = "chaos/workload.rs"]
mod workload;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clusterd::cluster::config::AdminConfig;
use clusterd_chaos::history::{Call, FinalRead, History, Op, Outcome};
use clusterd_chaos::schedule::{Fault, FaultClass, ScheduleConfig};

use fixtures::{step, wait_for, Cluster};
use nemesis::{FaultKind, Nemesis, Target};
use summary::FaultRecord;
use watcher::Until;
use workload::{dial, Clock};

/// Concurrent clients, each bound to a node.
const CLIENTS: usize = 6;
/// Watchers.
const WATCHERS: usize = 2;
/// The size of each node's data-dir tmpfs.
const TMPFS_MIB: u64 = 256;
/// The seed and length of the short run.
const SEED: u64 = 215;
const SECONDS: u64 = 60;

/// One fault of a schedule: what, how long it holds before it heals, and how
/// long the cluster runs undisturbed before it.
#[derive(Clone, Debug)]
struct Planned {
    kind: FaultKind,
    rest: Duration,
    hold: Duration,
}

/// The nemesis's form of a drawn fault (a full disk is drawn as the variant
/// that makes writes fail: RocksDB preallocates its log, so a running node
/// would not notice soon; see `FaultKind::FillDiskRestart`).
fn nemesis_fault(f: &Fault) -> FaultKind {
    match f {
        Fault::Partition { groups } => {
            let mut of = [0u8; 8];
            for (g, members) in groups.iter().enumerate() {
                for &n in members {
                    of[n] = g as u8;
                }
            }
            FaultKind::Groups(of)
        }
        Fault::OneWayPartition { from, to } => FaultKind::OneWay { from: *from, to: *to },
        Fault::IsolateLeader => FaultKind::IsolateLeader,
        Fault::Kill { node } => FaultKind::Kill(Target::Node(*node)),
        Fault::Pause { node } => FaultKind::Pause(Target::Node(*node)),
        Fault::DiskFull { node } => FaultKind::FillDiskRestart(Target::Node(*node)),
        Fault::RestartAll => FaultKind::KillAll,
    }
}

/// The run's faults, drawn by `clusterd_chaos::schedule` from the seed (the
/// kinds `CHAOS_FAULTS=kill,pause,…` names, else every kind), as the
/// nemesis injects them one after another: each after its gap, held for its
/// duration (or `CHAOS_HOLD_SECONDS`). The next one waits until every node
/// serves again, so a run takes longer than its schedule.
fn schedule(seed: u64, seconds: u64, nodes: usize) -> Vec<Planned> {
    let mut cfg = ScheduleConfig::new(seed, Duration::from_secs(seconds), nodes);
    if let Ok(only) = std::env::var("CHAOS_FAULTS") {
        cfg.kinds = only.split(',').map(|k| k.trim().parse::<FaultClass>().expect("CHAOS_FAULTS")).collect();
    }
    let hold = std::env::var("CHAOS_HOLD_SECONDS").ok().and_then(|v| v.parse().ok()).map(Duration::from_secs);
    let drawn = clusterd_chaos::schedule::schedule(&cfg).expect("a fault schedule");
    let mut last_end = Duration::ZERO;
    drawn
        .iter()
        .map(|f| {
            let rest = f.start.saturating_sub(last_end);
            last_end = f.healed();
            Planned { kind: nemesis_fault(&f.fault), rest, hold: hold.unwrap_or(f.duration) }
        })
        .collect()
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A linearizable list of the workload's keys through `server`: (revision, items).
async fn list_through(cfg: &AdminConfig, server: &str) -> Option<FinalRead> {
    let mut api = dial(cfg, server).await?;
    match workload::send(&mut api, &Call::List).await {
        workload::Answer::List(l, revision) => {
            Some(FinalRead { node: String::new(), revision, items: workload::items(&l)? })
        }
        _ => None,
    }
}

/// A write after the run, through any node, recorded as client `id`'s: the
/// revision the watchers must reach.
async fn fence(id: usize, cfg: &AdminConfig, servers: &[String], clock: Clock, ops: &mut Vec<Op>) -> Option<u64> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut attempt = 0;
    while Instant::now() < deadline {
        let server = &servers[attempt % servers.len()];
        attempt += 1;
        let Some(mut api) = dial(cfg, server).await else { continue };
        let call = Call::Create { key: format!("fence-{attempt}"), value: format!("fence-{attempt}") };
        let invoke = clock.now();
        let answer = workload::send(&mut api, &call).await;
        let complete = clock.now();
        let outcome = workload::outcome(&call, answer);
        ops.push(Op { client: id, invoke, complete, call, outcome: outcome.clone() });
        if let Outcome::Written { revision } = outcome {
            return Some(revision);
        }
    }
    None
}

/// Where a run keeps its record.
fn run_dir(seed: u64) -> PathBuf {
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/chaos").join(format!("seed-{seed}-{stamp}"))
}

#[test]
fn a_cluster_under_faults_keeps_its_promises() {
    let seed = env_u64("CHAOS_SEED", SEED);
    let seconds = env_u64("CHAOS_SECONDS", SECONDS);
    step(&format!("fault run: seed {seed}, {seconds} s of faults"));
    clusterd_raft::pki::install_default_provider();
    let mut c = Cluster::init_on_hosts_tmpfs(3, &[], Some(TMPFS_MIB));
    c.join_on(1, "n2", true);
    c.join_on(2, "n3", true);
    let out = c.apply("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: chaos\n");
    assert!(out.status.success(), "namespace chaos: {}", String::from_utf8_lossy(&out.stderr));
    let cfg = AdminConfig::load(&c.config).unwrap();
    let servers: Vec<String> = c.nodes.iter().map(|n| n.api_addr.clone()).collect();
    let names: Vec<String> = c.nodes.iter().map(|n| n.name.clone()).collect();
    let mut nemesis = Nemesis::new(c);

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let from = rt.block_on(list_through(&cfg, &servers[0])).expect("the workload's starting revision").revision;
    let clock = Clock(Instant::now());
    let stop = Arc::new(AtomicBool::new(false));
    let until = Until::default();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| rt.spawn(workload::client(id, cfg.clone(), servers.clone(), seed, clock, stop.clone())))
        .collect();
    let watchers: Vec<_> = (0..WATCHERS)
        .map(|id| rt.spawn(watcher::watcher(id, cfg.clone(), servers.clone(), from, clock, until.clone())))
        .collect();

    let mut faults = Vec::new();
    for planned in schedule(seed, seconds, names.len()) {
        std::thread::sleep(planned.rest);
        let injected = clock.now();
        let (what, line) = nemesis.inject(planned.kind);
        step(&format!("{:.1}s: {line}", injected as f64 / 1e9));
        std::thread::sleep(planned.hold);
        nemesis.heal(what);
        let healed = clock.now();
        // The next fault comes only when every node serves again (a node
        // that does not within a while is a finding, and restarted).
        for i in 0..names.len() {
            nemesis.ensure_recovers(i, &line);
        }
        faults.push(FaultRecord { kind: planned.kind.label(), what: line, injected, healed });
    }
    nemesis.heal_all();
    step("faults over: every node must serve again");
    for i in 0..names.len() {
        nemesis.ensure_recovers(i, "the last fault");
    }
    // Two more seconds of work on the healed cluster, so the history ends
    // with operations no fault overlaps.
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::SeqCst);
    let mut ops: Vec<Op> = clients.into_iter().flat_map(|t| rt.block_on(t).expect("a client")).collect();
    let fenced = rt.block_on(fence(CLIENTS, &cfg, &servers, clock, &mut ops)).expect("a write after the run");
    until.revision.store(fenced, Ordering::SeqCst);
    step(&format!("the watchers must reach revision {fenced}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut watches = Vec::new();
    for mut w in watchers {
        let left = deadline.saturating_duration_since(Instant::now());
        let log = match rt.block_on(async { tokio::time::timeout(left, &mut w).await }) {
            Ok(log) => log.expect("a watcher"),
            Err(_) => {
                until.give_up.store(true, Ordering::SeqCst);
                rt.block_on(w).expect("a watcher")
            }
        };
        let last = log.events.last().map_or(log.from, |e| e.revision);
        if last < fenced {
            nemesis.findings.push(format!("watcher {} saw revision {last} last, not {fenced}", log.watcher));
        }
        watches.push(log);
    }
    let finals: Vec<FinalRead> = servers
        .iter()
        .zip(&names)
        .map(|(server, name)| {
            let read = wait_for(&format!("a final read on {name}"), Duration::from_secs(60), || {
                rt.block_on(list_through(&cfg, server))
            });
            FinalRead { node: name.clone(), ..read }
        })
        .collect();
    ops.sort_by_key(|o| o.invoke);
    let history = History { ops, watches, finals };

    let dir = run_dir(seed);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("history.json"), serde_json::to_vec(&history).unwrap()).unwrap();
    let mut report = clusterd_chaos::check(&history);
    report.seed = Some(seed);
    let recovered = summary::recoveries(&faults, &history.ops);
    report.faults = faults
        .iter()
        .zip(&recovered)
        .map(|(f, r)| clusterd_chaos::report::FaultRecord {
            kind: f.kind.to_string(),
            description: f.what.clone(),
            start: Duration::from_nanos(f.injected),
            healed: Duration::from_nanos(f.healed),
            recovered: r.map(|r| Duration::from_nanos(f.healed) + r),
        })
        .collect();
    eprintln!("===== fault run, seed {seed}, {seconds} s =====");
    eprint!("{}", summary::summary(&history, &faults));
    eprint!("{report}");
    for f in &nemesis.notes {
        eprintln!("note: {f}");
    }
    for f in &nemesis.findings {
        eprintln!("finding: {f}");
    }
    eprintln!("history: {}", dir.join("history.json").display());
    if !report.ok() || !nemesis.findings.is_empty() {
        for n in &nemesis.cluster.nodes {
            std::fs::write(dir.join(format!("{}.log", n.name)), n.log()).unwrap();
        }
        eprintln!("nodes' logs kept in {}", dir.display());
    }
    assert!(report.ok(), "seed {seed}: the checks failed (above); record in {}", dir.display());
    assert!(nemesis.findings.is_empty(), "seed {seed}: {:?}; record in {}", nemesis.findings, dir.display());
}
