//! Operating the quorum on real multi-process clusters: recovering from the
//! loss of two of three voters with `clusterd recover`, its refusal on a
//! healthy cluster, and replacing a dead voter. Needs root and `make images`.

mod fixtures;

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use fixtures::{bin, http_get, image, step, wait_for, Cluster};

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn cm(name: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  key: v\n")
}

fn three_voters() -> Cluster {
    let mut c = Cluster::init(&[]);
    c.join("n2", true);
    c.join("n3", true);
    c
}

/// Apply a manifest through node `idx`'s API.
fn apply_at(c: &Cluster, idx: usize, manifest: &str) -> std::process::Output {
    let path = c.dir.path().join(format!("{}.yaml", rand_name()));
    std::fs::write(&path, manifest).unwrap();
    c.cli_at(idx, &["apply", "-f", path.to_str().unwrap()])
}

fn rand_name() -> String {
    use std::sync::atomic::AtomicU32;
    static N: AtomicU32 = AtomicU32::new(0);
    format!("m{}", N.fetch_add(1, Ordering::SeqCst))
}

/// Member names and roles as `status` shows them, sorted.
fn roles(st: &Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = st["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["name"].as_str().unwrap().to_string(), m["role"].as_str().unwrap().to_string()))
        .collect();
    v.sort();
    v
}

fn voters(names: &[&str]) -> Vec<(String, String)> {
    names.iter().map(|n| (n.to_string(), "voter".to_string())).collect()
}

/// Wait until every member has applied the same revision.
fn all_caught_up(c: &Cluster) -> Value {
    wait_for("all members caught up", Duration::from_secs(60), || {
        let st = c.status();
        let applied: Vec<Option<u64>> =
            st["members"].as_array().unwrap().iter().map(|m| m["lastApplied"].as_u64()).collect();
        applied.iter().all(|a| a.is_some() && *a == applied[0]).then_some(st)
    })
}

/// A node is gone for good: killed, what it made on the host removed, its data directory deleted.
fn destroy(c: &mut Cluster, idx: usize) {
    let n = &mut c.nodes[idx];
    n.kill9();
    let out = Command::new(bin()).args(["reset", "--data-dir"]).arg(&n.data_dir).output().unwrap();
    assert!(out.status.success(), "reset {}: {}", n.name, stderr(&out));
    std::fs::remove_dir_all(&n.data_dir).unwrap();
}

/// `clusterd ARGS` run to its end within `limit` (else killed: `None`); its output.
fn run_bounded(args: &[&str], limit: Duration) -> Option<std::process::Output> {
    let mut child = Command::new(bin())
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(child.wait_with_output().unwrap())
}

/// `clusterd recover` run to its end (it must not start a node); its output.
fn recover_refused(data_dir: &std::path::Path) -> std::process::Output {
    let dir = data_dir.display().to_string();
    run_bounded(&["recover", "--data-dir", &dir], Duration::from_secs(30))
        .expect("recover did not refuse: it is running a node")
}

/// The pod's main process start time (field 22 of /proc/1/stat, in ticks since boot).
fn main_process_start(c: &Cluster, pod: &str) -> String {
    let out = c.cli_at(0, &["exec", pod, "--", "cat", "/proc/1/stat"]);
    assert!(out.status.success(), "exec: {}", stderr(&out));
    let text = stdout(&out);
    let after_comm = &text[text.rfind(')').unwrap() + 1..];
    after_comm.split_whitespace().nth(19).unwrap().to_string()
}

fn pod(c: &Cluster, name: &str) -> Option<Value> {
    let out = c.cli_at(0, &["get", "pod", name, "-o", "json"]);
    out.status.success().then(|| serde_json::from_slice(&out.stdout).unwrap())
}

fn running(p: &Value) -> bool {
    p["status"]["phase"] == "Running"
        && p["status"]["conditions"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

const KEEPER: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: keeper
spec:
  nodeName: n1
  terminationGracePeriodSeconds: 1
  containers:
  - name: httpd
    image: clusterd.local/busybox:v1
    command: ["sh", "-c", "mkdir -p /www && echo hello from $(hostname) > /www/index.html && exec httpd -f -p 8080 -h /www"]
    readinessProbe:
      tcpSocket: {port: 8080}
      periodSeconds: 1
"#;

/// Polls the pod's server until stopped; counts the answers and the misses.
struct Prober {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    missed: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Prober {
    fn start(addr: String) -> Prober {
        let (stop, ok, missed) =
            (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (s, o, m) = (stop.clone(), ok.clone(), missed.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match http_get(&addr, "/") {
                    Some(body) if body == "hello from keeper\n" => o.fetch_add(1, Ordering::SeqCst),
                    _ => m.fetch_add(1, Ordering::SeqCst),
                };
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Prober { stop, ok, missed, thread: Some(thread) }
    }

    /// Stop; (answers, misses).
    fn finish(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap();
        (self.ok.load(Ordering::SeqCst), self.missed.load(Ordering::SeqCst))
    }
}

#[test]
fn a_lone_survivor_recovers_the_cluster_and_its_pod_keeps_running() {
    let mut c = three_voters();
    c.ok(&["image", "load", &image("busybox-v1.tar")]);
    let out = apply_at(&c, 0, KEEPER);
    assert!(out.status.success(), "{}", stderr(&out));
    let before = wait_for("pod keeper running on n1", Duration::from_secs(60), || pod(&c, "keeper").filter(running));
    assert_eq!(before["spec"]["nodeName"], "n1");
    let container = before["status"]["containerStatuses"][0]["containerID"].clone();
    let started = main_process_start(&c, "keeper");
    let ip = before["status"]["podIP"].as_str().unwrap().to_string();
    assert!(apply_at(&c, 0, &cm("before-loss")).status.success());
    let prober = Prober::start(format!("{ip}:8080"));

    step("n2 and n3 are gone for good: kill -9, their data directories deleted");
    let lost_at = Instant::now();
    destroy(&mut c, 1);
    destroy(&mut c, 2);
    step("n1 alone has no quorum: a write is not accepted");
    let path = c.dir.path().join("no-quorum.yaml");
    std::fs::write(&path, cm("no-quorum")).unwrap();
    let (config, server, file) = (c.config.to_str().unwrap(), &c.nodes[0].api_addr, path.to_str().unwrap());
    let out = run_bounded(&["--config", config, "--server", server, "apply", "-f", file], Duration::from_secs(20));
    assert!(out.is_none_or(|o| !o.status.success()), "a write was accepted without a quorum");

    step("stop n1 and run `clusterd recover` on its data directory");
    assert!(c.nodes[0].stop().success());
    let data_dir = c.nodes[0].data_dir.display().to_string();
    let recover_at = Instant::now();
    c.nodes[0].run_as(&["recover", "--data-dir", &data_dir]);
    let out = wait_for("a write accepted by the recovered node", Duration::from_secs(10), || {
        assert!(c.nodes[0].alive(), "recover exited:\n{}", c.nodes[0].log());
        let out = apply_at(&c, 0, &cm("after-recovery"));
        out.status.success().then_some(out)
    });
    let took = recover_at.elapsed();
    eprintln!(
        "first write accepted {:.2} s after `recover` was started ({:.1} s after the quorum was lost)",
        took.as_secs_f64(),
        lost_at.elapsed().as_secs_f64()
    );
    assert_eq!(stdout(&out).trim(), "configmap/after-recovery created");
    let log = c.nodes[0].log();
    assert!(log.contains("recovered: node n1 is now the only voter"), "{log}");
    assert!(log.contains("--name n2 --control-plane"), "no rejoin instructions:\n{log}");
    assert_eq!(roles(&c.status()), voters(&["n1"]));
    assert!(c.cli_at(0, &["get", "cm", "before-loss"]).status.success(), "a committed write was lost");

    step("the pod on n1 kept running throughout: same container, same process, it never stopped answering");
    let after = wait_for("pod keeper running after recovery", Duration::from_secs(30), || {
        pod(&c, "keeper").filter(|p| running(p) && p["status"]["containerStatuses"][0]["containerID"] == container)
    });
    assert_eq!(after["status"]["containerStatuses"][0]["restartCount"], 0);
    assert_eq!(main_process_start(&c, "keeper"), started, "the pod's process was restarted");
    let (answered, missed) = prober.finish();
    eprintln!("the pod answered {answered} probes during the loss and recovery, missed {missed}");
    assert!(answered > 0);
    assert_eq!(missed, 0, "the pod stopped answering");

    step("two fresh nodes join under the old names as voters: three voters again");
    c.nodes.truncate(1);
    c.join("n2", true);
    c.join("n3", true);
    let st = all_caught_up(&c);
    assert_eq!(roles(&st), voters(&["n1", "n2", "n3"]));
    let out = apply_at(&c, 2, &cm("with-three"));
    assert!(out.status.success(), "{}", stderr(&out));
    for name in ["before-loss", "after-recovery", "with-three"] {
        assert!(c.cli_at(1, &["get", "cm", name]).status.success(), "{name} missing on the new n2");
    }
}

#[test]
fn recover_is_refused_on_a_healthy_cluster_and_changes_nothing() {
    let mut c = three_voters();
    assert!(apply_at(&c, 0, &cm("kept")).status.success());
    let roles_before = roles(&all_caught_up(&c));
    assert_eq!(roles_before, voters(&["n1", "n2", "n3"]));

    step("stop n1: n2 and n3 still form a quorum, so recovering n1 would split the cluster");
    assert!(c.nodes[0].stop().success());
    let out = recover_refused(&c.nodes[0].data_dir);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("would split a healthy cluster"), "{}", stderr(&out));
    assert!(stderr(&out).contains("n2") && stderr(&out).contains("n3"), "{}", stderr(&out));

    step("while it runs, its store is in use: recover says to stop the node first");
    c.nodes[0].restart();
    c.wait_serving(0);
    let out = recover_refused(&c.nodes[0].data_dir);
    assert!(stderr(&out).contains("stop the node first"), "{}", stderr(&out));

    step("nothing changed: three voters, n1 among them, writes and the old data");
    let st = all_caught_up(&c);
    assert_eq!(roles(&st), roles_before);
    assert!(apply_at(&c, 0, &cm("after-refusal")).status.success());
    assert!(c.cli_at(0, &["get", "cm", "kept"]).status.success());
}

#[test]
fn a_dead_voter_is_replaced_and_the_quorum_is_three_again() {
    let mut c = three_voters();
    assert!(apply_at(&c, 0, &cm("before")).status.success());

    step("kill -9 n3 and remove it from the membership while it is down");
    c.nodes[2].kill9();
    let out = c.cli(&["member", "remove", "n3"]);
    assert!(out.status.success(), "member remove of a dead voter: {}", stderr(&out));
    assert_eq!(roles(&c.status()), voters(&["n1", "n2"]));

    step("n3's host is wiped; a new node joins under its name as a voter");
    let out = Command::new(bin()).args(["reset", "--data-dir"]).arg(&c.nodes[2].data_dir).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::remove_dir_all(&c.nodes[2].data_dir).unwrap();
    c.nodes.remove(2);
    c.join("n3", true);
    let st = all_caught_up(&c);
    assert_eq!(roles(&st), voters(&["n1", "n2", "n3"]));

    step("three voters: writes work, also with another voter down");
    assert!(apply_at(&c, 2, &cm("after")).status.success());
    assert!(c.cli_at(2, &["get", "cm", "before"]).status.success(), "the new voter lacks the old data");
    c.nodes[1].kill9();
    let out = wait_for("a write with n2 down", Duration::from_secs(30), || {
        let out = apply_at(&c, 0, &cm("quorum-of-two"));
        out.status.success().then_some(out)
    });
    assert_eq!(stdout(&out).trim(), "configmap/quorum-of-two created");
}
