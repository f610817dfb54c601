//! What a fault run prints before its verdict (`clusterd_chaos::Report`):
//! operations by outcome, each fault with how long the cluster took to take
//! writes again after it healed and its longest time without a write.

use std::collections::BTreeMap;
use std::time::Duration;

use clusterd_chaos::history::{Call, History, Op, Outcome};

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
pub fn summary(h: &History, faults: &[FaultRecord]) -> String {
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
    s
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
