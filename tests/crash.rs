//! A node killed at the worst moments of starting a pod (crash points, see
//! `clusterd_runtime::failpoint`): its pause process runs and the sandbox
//! record does not have it yet (`pause-started`); a container's rootfs is
//! mounted and its record not written (`container-mounted`). Nothing the node
//! started may be unknown to it afterwards: a restarted node runs the pod
//! once, and `clusterd reset` leaves none of it behind. Needs root and
//! `make images`.

mod fixtures;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use fixtures::{bin, image, step, wait_for, Cluster};

/// Pause processes (`clusterd shim pause … --hostname H …`, the zygote's
/// forks show that title too) of the pod whose hostname is `hostname`.
fn pauses(hostname: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(raw) = std::fs::read(e.path().join("cmdline")) else { continue };
        let text = String::from_utf8_lossy(&raw).replace('\0', " ");
        let words: Vec<&str> = text.split_whitespace().collect();
        let pause = words.windows(2).any(|w| w == ["shim", "pause"]);
        if pause && words.windows(2).any(|w| w == ["--hostname", hostname]) {
            pids.push(pid);
        }
    }
    pids
}

/// Removes what a failing run leaves of the pod (its pause processes and
/// rootfs mounts under the node's data directory), so that even a failed
/// assertion leaves the host clean. Made after the cluster, so dropped before
/// it (the harness then resets the node and removes its directory).
struct Sweep {
    hostname: String,
    data_dir: PathBuf,
}

impl Drop for Sweep {
    fn drop(&mut self) {
        for pid in pauses(&self.hostname) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
        for m in mounts_under(&self.data_dir) {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

fn pod_status(c: &Cluster, name: &str) -> Option<Value> {
    let out = c.cli(&["get", "pod", name, "-o", "json"]);
    out.status.success().then(|| serde_json::from_slice(&out.stdout).unwrap())
}

fn running(p: &Value) -> bool {
    let ready = p
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
    p["status"]["phase"] == "Running" && ready
}

/// The cgroup directories named after node `n1` of this cluster, in any hierarchy.
fn node_cgroups(c: &Cluster) -> Vec<PathBuf> {
    let ca = std::fs::read_to_string(c.nodes[0].data_dir.join("pki/ca.crt")).unwrap();
    let name = format!("clusterd-n1-{}", clusterd::kubelet::cluster_tag(&ca));
    let mut found = Vec::new();
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        for dir in [h.path().join(&name), PathBuf::from("/sys/fs/cgroup").join(&name)] {
            if dir.is_dir() && !found.contains(&dir) {
                found.push(dir);
            }
        }
    }
    found
}

/// Processes whose network namespace is `ns` (a `net:[inode]` link).
fn in_netns(ns: &str) -> Vec<String> {
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.parse::<u32>().is_ok()
            && std::fs::read_link(e.path().join("ns/net")).is_ok_and(|l| l.to_string_lossy() == ns)
        {
            pids.push(name);
        }
    }
    pids
}

/// Mount points under `dir`.
fn mounts_under(dir: &std::path::Path) -> Vec<String> {
    let under = dir.display().to_string();
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines().filter_map(|l| l.split(' ').nth(4)).filter(|m| m.starts_with(&under)).map(String::from).collect()
}

/// Rootfs mounts under node `n1`'s containers directory.
fn rootfs_mounts(c: &Cluster) -> Vec<String> {
    mounts_under(&c.nodes[0].data_dir.join("runtime/containers"))
}

/// A one-node cluster with the test image, whose node is restarted with the
/// crash point `failpoint`; a pod is applied and the node dies starting it
/// there. Returns the cluster, the pod's name (its hostname) and the sweeper.
fn crash_while_starting_a_pod(tag: &str, failpoint: &str) -> (Cluster, String, Sweep) {
    let pod = format!("crash-{tag}-{}", std::process::id());
    let mut c = Cluster::init(&[]);
    let sweep = Sweep { hostname: pod.clone(), data_dir: c.nodes[0].data_dir.clone() };
    c.ok(&["image", "load", &image("busybox-v1.tar")]);
    wait_for("n1 with a pod CIDR", Duration::from_secs(60), || {
        let out = c.cli(&["get", "node", "n1", "-o", "json"]);
        let node: Value = serde_json::from_slice(&out.stdout).ok()?;
        node.pointer("/spec/podCIDR").map(|_| ())
    });

    step(&format!("n1 restarts with CLUSTERD_FAILPOINT={failpoint}"));
    c.nodes[0].stop();
    c.nodes[0].restart_with_env(&[("CLUSTERD_FAILPOINT", failpoint)]);
    c.wait_serving(0);

    step("a pod is applied; n1 dies at the crash point while starting it");
    let manifest = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {pod}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: clusterd.local/busybox:v1\n    command: [\"sleep\", \"3600\"]\n"
    );
    let out = c.apply(&manifest);
    assert!(out.status.success(), "apply: {}", String::from_utf8_lossy(&out.stderr));
    let n = &mut c.nodes[0];
    wait_for("n1 to die at the crash point", Duration::from_secs(60), || (!n.alive()).then_some(()));
    assert!(n.log().contains("CLUSTERD_FAILPOINT"), "n1 died elsewhere:\n{}", n.log());
    n.kill9();
    let left = pauses(&pod);
    assert_eq!(left.len(), 1, "the crash landed after the pause started: one pause of {pod} runs ({left:?})");
    if failpoint == "container-mounted" {
        assert_eq!(rootfs_mounts(&c).len(), 1, "the crash landed after the rootfs was mounted");
    }
    (c, pod, sweep)
}

/// Restart the crashed node: the pod runs, with one pause and one rootfs.
fn restart_runs_the_pod_once(failpoint: &str) {
    let (mut c, pod, _sweep) = crash_while_starting_a_pod(&format!("restart-{failpoint}"), failpoint);

    step("n1 restarts without the crash point: the pod runs, with one pause process and one rootfs");
    c.nodes[0].restart();
    c.wait_serving(0);
    wait_for(&format!("pod {pod} Running and Ready"), Duration::from_secs(90), || {
        pod_status(&c, &pod).filter(running).map(|_| ())
    });
    let left = pauses(&pod);
    assert_eq!(left.len(), 1, "exactly one pause process of {pod} runs after the restart: {left:?}");
    let mounts = rootfs_mounts(&c);
    assert_eq!(mounts.len(), 1, "exactly one rootfs is mounted for the pod's one container: {mounts:?}");
}

/// `clusterd reset` of the crashed node: no pause, netns, rootfs or cgroup is left.
fn reset_leaves_nothing_behind(failpoint: &str) {
    let (c, pod, _sweep) = crash_while_starting_a_pod(&format!("reset-{failpoint}"), failpoint);
    let pause = pauses(&pod)[0];
    let netns = std::fs::read_link(format!("/proc/{pause}/ns/net")).unwrap().to_string_lossy().into_owned();

    step("clusterd reset of n1's data directory");
    let out = Command::new(bin()).args(["reset", "--data-dir"]).arg(&c.nodes[0].data_dir).output().unwrap();
    assert!(out.status.success(), "reset: {}", String::from_utf8_lossy(&out.stderr));
    wait_for("no pause process of the pod", Duration::from_secs(10), || pauses(&pod).is_empty().then_some(()));
    wait_for("the pod's network namespace to be gone", Duration::from_secs(10), || {
        in_netns(&netns).is_empty().then_some(())
    });
    let mounts = rootfs_mounts(&c);
    assert!(mounts.is_empty(), "rootfs mounts are left: {mounts:?}");
    let cgroups = node_cgroups(&c);
    assert!(cgroups.is_empty(), "n1's cgroups are left: {cgroups:?}");
}

#[test]
fn a_node_restarted_after_a_crash_between_forking_a_pause_and_recording_it_runs_the_pod_once() {
    restart_runs_the_pod_once("pause-started");
}

#[test]
fn reset_after_a_crash_between_forking_a_pause_and_recording_it_leaves_nothing_behind() {
    reset_leaves_nothing_behind("pause-started");
}

#[test]
fn a_node_restarted_after_a_crash_between_mounting_a_rootfs_and_recording_it_runs_the_pod_once() {
    restart_runs_the_pod_once("container-mounted");
}

#[test]
fn reset_after_a_crash_between_mounting_a_rootfs_and_recording_it_leaves_nothing_behind() {
    reset_leaves_nothing_behind("container-mounted");
}
