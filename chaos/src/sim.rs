//! A sequential store driven by concurrent simulated clients: every
//! operation takes effect at one instant between its invoke and complete, so
//! the histories it records are correct by construction (the checkers must
//! accept them) and large (to time the checkers).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::history::{Call, EventKind, FinalRead, History, Op, Outcome, WatchEvent, WatchLog};

pub struct SimConfig {
    pub seed: u64,
    pub clients: usize,
    pub keys: usize,
    pub ops: usize,
    /// Percent of answers lost (half of those writes never take effect).
    pub unknown_pct: u32,
    /// Whether clients also list.
    pub lists: bool,
}

pub fn simulate(cfg: &SimConfig) -> History {
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let mut store: BTreeMap<String, (String, u64)> = BTreeMap::new();
    let mut rev = 0u64;
    let mut changes: Vec<WatchEvent> = Vec::new();
    let mut known: Vec<HashMap<String, u64>> = vec![HashMap::new(); cfg.clients];
    let mut heap = BinaryHeap::new();
    let mut next_invoke = vec![0u64; cfg.clients];
    for (c, next) in next_invoke.iter_mut().enumerate() {
        let invoke = rng.gen_range(0..100);
        *next = invoke;
        heap.push(Reverse((invoke + rng.gen_range(1..1000), c)));
    }
    let mut ops = Vec::new();
    let mut n = 0;
    while ops.len() < cfg.ops {
        let Some(Reverse((lin, c))) = heap.pop() else { break };
        let invoke = next_invoke[c];
        let key = format!("k{}", rng.gen_range(0..cfg.keys));
        n += 1;
        let value = format!("c{c}-{n}");
        let dice = rng.gen_range(0..100);
        let call = if dice < 15 {
            Call::Create { key: key.clone(), value: value.clone() }
        } else if dice < 55 {
            let expected = match (known[c].get(&key), rng.gen_bool(0.2)) {
                (Some(r), false) => *r,
                _ => rng.gen_range(0..=rev.max(1)),
            };
            Call::Update { key: key.clone(), value: value.clone(), expected }
        } else if dice < 65 {
            let expected = if rng.gen_bool(0.5) { known[c].get(&key).copied() } else { None };
            Call::Delete { key: key.clone(), expected }
        } else if dice < 90 || !cfg.lists {
            Call::Get { key: key.clone() }
        } else {
            Call::List
        };
        let lost = rng.gen_range(0..100) < cfg.unknown_pct;
        let skip = lost && call.is_write() && rng.gen_bool(0.5);
        let cur = store.get(&key).cloned();
        let outcome = if skip {
            Outcome::Unknown
        } else {
            match &call {
                Call::Create { .. } => match cur {
                    Some(_) => Outcome::Exists,
                    None => {
                        rev += 1;
                        store.insert(key.clone(), (value.clone(), rev));
                        changes.push(WatchEvent {
                            kind: EventKind::Added,
                            key: key.clone(),
                            value,
                            revision: rev,
                            at: lin,
                        });
                        Outcome::Written { revision: rev }
                    }
                },
                Call::Update { expected, .. } => match cur {
                    None => Outcome::NotFound,
                    Some((_, r)) if r != *expected => Outcome::Conflict,
                    Some(_) => {
                        rev += 1;
                        store.insert(key.clone(), (value.clone(), rev));
                        changes.push(WatchEvent {
                            kind: EventKind::Modified,
                            key: key.clone(),
                            value,
                            revision: rev,
                            at: lin,
                        });
                        Outcome::Written { revision: rev }
                    }
                },
                Call::Delete { expected, .. } => match cur {
                    None => Outcome::NotFound,
                    Some((_, r)) if expected.is_some_and(|e| e != r) => Outcome::Conflict,
                    Some((v, _)) => {
                        rev += 1;
                        store.remove(&key);
                        changes.push(WatchEvent {
                            kind: EventKind::Deleted,
                            key: key.clone(),
                            value: v,
                            revision: rev,
                            at: lin,
                        });
                        Outcome::Deleted { revision: Some(rev) }
                    }
                },
                Call::Get { .. } => match cur {
                    None => Outcome::NotFound,
                    Some((value, revision)) => Outcome::Found { value, revision },
                },
                Call::List => Outcome::Listed {
                    revision: rev,
                    items: store.iter().map(|(k, (v, r))| (k.clone(), v.clone(), *r)).collect(),
                },
            }
        };
        match &outcome {
            Outcome::Written { revision } | Outcome::Found { revision, .. } => {
                known[c].insert(key.clone(), *revision);
            }
            Outcome::Listed { items, .. } => {
                for (k, _, r) in items {
                    known[c].insert(k.clone(), *r);
                }
            }
            _ => {}
        }
        let outcome = if lost { Outcome::Unknown } else { outcome };
        let complete = lin + rng.gen_range(1..1000) + if lost { 2000 } else { 0 };
        ops.push(Op { client: c, invoke, complete, call, outcome });
        next_invoke[c] = complete + rng.gen_range(0..200);
        heap.push(Reverse((next_invoke[c] + rng.gen_range(1..1000), c)));
    }
    let half = rev / 2;
    let watches = vec![
        WatchLog { watcher: 0, from: 0, events: changes.clone(), reconnects: 0 },
        WatchLog {
            watcher: 1,
            from: half,
            events: changes.iter().filter(|e| e.revision > half).cloned().collect(),
            reconnects: 2,
        },
    ];
    let items: Vec<_> = store.iter().map(|(k, (v, r))| (k.clone(), v.clone(), *r)).collect();
    let finals = ["n1", "n2", "n3"]
        .iter()
        .map(|node| FinalRead { node: node.to_string(), revision: rev + 5, items: items.clone() })
        .collect();
    History { ops, watches, finals }
}
