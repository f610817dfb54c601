//! What the whole host uses, for `top nodes`: kubectl shows a node's own CPU
//! and memory (the root cgroup as the kubelet sees it), not the sum of its
//! pods, so system daemons and the node process itself count too. Read from
//! `/proc/stat` and `/proc/meminfo`, which mean the same under cgroup v1 and v2.

use clusterd_runtime::runtime::Stats;

/// The clock tick `/proc/stat` counts in (`USER_HZ`): 100 on every Linux
/// architecture clusterd builds for.
pub const USER_HZ: u64 = 100;

/// CPU time the host spent busy, in ticks, from the aggregate `cpu` line of
/// `/proc/stat`: user, nice, system, irq and softirq (guest time is already
/// inside user; idle, iowait and steal are not this host's work).
pub fn busy_ticks(proc_stat: &str) -> Option<u64> {
    let line = proc_stat.lines().find(|l| l.split_whitespace().next() == Some("cpu"))?;
    let f: Vec<u64> = line.split_whitespace().skip(1).map(|n| n.parse().ok()).collect::<Option<_>>()?;
    let at = |i: usize| f.get(i).copied().unwrap_or(0);
    if f.len() < 4 {
        return None;
    }
    Some(at(0) + at(1) + at(2) + at(5) + at(6))
}

/// The host's memory working set in bytes, as cadvisor counts the root
/// cgroup's: memory in use (total less free) less the inactive file cache,
/// which the kernel can drop at once.
pub fn working_set_bytes(meminfo: &str) -> Option<u64> {
    let field = |name: &str| -> Option<u64> {
        let line = meminfo.lines().find(|l| l.split(':').next() == Some(name))?;
        let mut parts = line.split(':').nth(1)?.split_whitespace();
        let n: u64 = parts.next()?.parse().ok()?;
        Some(match parts.next() {
            Some("kB") => n * 1024,
            _ => n,
        })
    };
    let used = field("MemTotal")?.saturating_sub(field("MemFree")?);
    Some(used.saturating_sub(field("Inactive(file)").unwrap_or(0)))
}

/// The host's CPU time (ns) and memory working set (bytes) now; zeros for
/// what cannot be read.
pub fn sample() -> Stats {
    let cpu = std::fs::read_to_string("/proc/stat").ok().and_then(|s| busy_ticks(&s)).unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| working_set_bytes(&s)).unwrap_or(0);
    Stats { cpu_usage_ns: cpu * (1_000_000_000 / USER_HZ), memory_working_set: mem }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_ticks_from_proc_stat() {
        let cases: &[(&str, Option<u64>)] = &[
            (
                "cpu  95317 0 10140 10472 414 0 51 40 0 0\ncpu0 47532 0 4706 5863 102 0 5 13 0 0\n",
                Some(95317 + 10140 + 51),
            ),
            ("cpu  10 20 30 1000 500 40 50 60 70 80\nintr 1 2 3\n", Some(10 + 20 + 30 + 40 + 50)),
            ("cpu  1 2 3 4\n", Some(6)),
            ("cpu0 1 2 3 4 5 6 7\n", None),
            ("cpu  1 2 x 4\n", None),
            ("cpu  1 2\n", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(busy_ticks(text), *want, "{text:?}");
        }
    }

    #[test]
    fn working_set_from_meminfo() {
        let cases: &[(&str, Option<u64>)] = &[
            (
                "MemTotal:       24684084 kB\nMemFree:        19998624 kB\nMemAvailable:   22803068 kB\nInactive(file):  2188444 kB\n",
                Some((24684084 - 19998624 - 2188444) * 1024),
            ),
            ("MemTotal: 1000 kB\nMemFree: 400 kB\n", Some(600 * 1024)),
            ("MemTotal: 1000 kB\nMemFree: 400 kB\nInactive(file): 900 kB\n", Some(0)),
            ("MemFree: 400 kB\n", None),
            ("MemTotal: lots\nMemFree: 400 kB\n", None),
        ];
        for (text, want) in cases {
            assert_eq!(working_set_bytes(text), *want, "{text:?}");
        }
    }

    #[test]
    fn this_host_is_seen_working() {
        let before = sample();
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(300);
        let mut x = 0u64;
        while std::time::Instant::now() < deadline {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let after = sample();
        assert!(after.cpu_usage_ns > before.cpu_usage_ns, "a busy loop of 300 ms shows as CPU time");
        assert!(after.memory_working_set > 0);
    }
}
