//! The node's cgroups, in every hierarchy the host mounts (cgroup v1
//! controllers, v2, or both): reading a container's use, removing a pod's
//! tree, and placing a pod's pause process where it can always be found.
//!
//! Why the pause is placed: a pause process outlives the node daemon (it is
//! detached), and a daemon killed between forking it and recording its pid
//! would otherwise leave a process nothing names. The runtime records the
//! sandbox and makes the cgroup `/clusterd-<node>/<sandbox>/pause` first; the
//! shim enters it before it forks the pause, so the pause is born inside it.
//! Whatever runs in the cgroup is then found, and killed, from the record —
//! or from the node's cgroup tree alone. One hierarchy suffices to name
//! processes: the v2 one (all of `/sys/fs/cgroup` on a v2 host, `unified` on
//! a hybrid one), else a v1 hierarchy without settings a process needs.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::runtime::Stats;

/// The cgroup hierarchies mounted on this host (v1 controllers and v2).
pub fn roots() -> Vec<PathBuf> {
    let base = Path::new("/sys/fs/cgroup");
    let mut roots = Vec::new();
    if base.join("cgroup.controllers").exists() {
        roots.push(base.to_path_buf());
        return roots;
    }
    if let Ok(rd) = std::fs::read_dir(base) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                roots.push(p);
            }
        }
    }
    roots
}

/// Remove a cgroup directory tree (children first) in every hierarchy.
pub fn remove(rel: &str) {
    fn rm(dir: &Path) {
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    rm(&e.path());
                }
            }
        }
        let _ = std::fs::remove_dir(dir);
    }
    for root in roots() {
        rm(&root.join(rel.trim_start_matches('/')));
    }
}

/// CPU and memory use read from the cgroup at `path` (v1 or v2).
pub fn stats(path: &str) -> Stats {
    let rel = path.trim_start_matches('/');
    let read = |p: PathBuf| std::fs::read_to_string(p).ok();
    let num = |s: Option<String>| s.and_then(|s| s.trim().parse::<u64>().ok());
    let base = Path::new("/sys/fs/cgroup");
    let stat_field = |text: &str, key: &str| {
        text.lines().find_map(|l| l.strip_prefix(key).and_then(|v| v.trim().parse::<u64>().ok())).unwrap_or(0)
    };
    if base.join("cgroup.controllers").exists() {
        let dir = base.join(rel);
        let cpu = read(dir.join("cpu.stat")).map(|t| stat_field(&t, "usage_usec ") * 1000).unwrap_or(0);
        let usage = num(read(dir.join("memory.current"))).unwrap_or(0);
        let inactive = read(dir.join("memory.stat")).map(|t| stat_field(&t, "inactive_file ")).unwrap_or(0);
        return Stats { cpu_usage_ns: cpu, memory_working_set: usage.saturating_sub(inactive) };
    }
    let cpu = num(read(base.join("cpuacct").join(rel).join("cpuacct.usage"))).unwrap_or(0);
    let mem = base.join("memory").join(rel);
    let usage = num(read(mem.join("memory.usage_in_bytes"))).unwrap_or(0);
    let inactive = read(mem.join("memory.stat")).map(|t| stat_field(&t, "total_inactive_file ")).unwrap_or(0);
    Stats { cpu_usage_ns: cpu, memory_working_set: usage.saturating_sub(inactive) }
}

/// The hierarchy pause processes are placed in (see the module docs), if the
/// host has one.
pub fn identity_root() -> Option<PathBuf> {
    let base = Path::new("/sys/fs/cgroup");
    if base.join("cgroup.controllers").exists() {
        return Some(base.to_path_buf());
    }
    ["unified", "pids", "freezer"].iter().map(|h| base.join(h)).find(|p| p.join("cgroup.procs").exists())
}

fn in_identity(rel: &str) -> Option<PathBuf> {
    identity_root().map(|root| root.join(rel.trim_start_matches('/')))
}

/// Make the cgroup `rel` in the identity hierarchy (its parents too).
pub fn create(rel: &str) -> std::io::Result<()> {
    let dir = in_identity(rel).ok_or_else(|| std::io::Error::other("no cgroup hierarchy to place processes in"))?;
    std::fs::create_dir_all(dir)
}

/// Move the calling process into the cgroup `rel` of the identity hierarchy,
/// which must exist: a cgroup removed meanwhile (its sandbox was cleaned up)
/// is an error, not a new cgroup.
pub fn enter(rel: &str) -> std::io::Result<()> {
    let dir = in_identity(rel).ok_or_else(|| std::io::Error::other("no cgroup hierarchy to place processes in"))?;
    std::fs::write(dir.join("cgroup.procs"), "0")
}

/// The processes in the cgroup `rel` of the identity hierarchy (none when it does not exist).
pub fn procs(rel: &str) -> Vec<i32> {
    in_identity(rel).map(|dir| procs_in(&dir)).unwrap_or_default()
}

fn procs_in(dir: &Path) -> Vec<i32> {
    let text = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    text.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// SIGKILL every process in `dir` until none is left (up to `limit`);
/// whether it is empty.
fn kill_in(dir: &Path, limit: Duration) -> bool {
    // `cgroup.kill` (v2, Linux 5.14) kills the lot at once, forks in flight too.
    let _ = std::fs::write(dir.join("cgroup.kill"), "1");
    let deadline = Instant::now() + limit;
    loop {
        let pids = procs_in(dir);
        if pids.is_empty() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        for pid in pids {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Kill every process in the cgroup `rel` of the identity hierarchy and wait
/// until it is empty (a few seconds at most); whether it is.
pub fn kill_all(rel: &str) -> bool {
    in_identity(rel).is_none_or(|dir| !dir.exists() || kill_in(&dir, Duration::from_secs(5)))
}

/// Kill every process anywhere under `rel`, in every hierarchy: what is left
/// of a node whose records are gone.
pub fn kill_tree(rel: &str) {
    fn walk(dir: &Path) {
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(&e.path());
                }
            }
        }
        kill_in(dir, Duration::from_secs(5));
    }
    for root in roots() {
        let dir = root.join(rel.trim_start_matches('/'));
        if dir.exists() {
            walk(&dir);
        }
    }
}
