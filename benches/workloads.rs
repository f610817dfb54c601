//! A 100-replica Deployment on the 3-node local cluster (real node processes,
//! real containers): time to all Ready, time for a full rolling update v1 → v2
//! with maxSurge 25%, and — with the default node grace period (40 s) and
//! eviction timeout (20 s) — time from `kill -9` of a node until its pods run
//! elsewhere. Prints figures; asserts nothing. `BENCH_REPLICAS` changes the size.

#[path = "../tests/fixtures/mod.rs"]
mod fixtures;

use std::time::{Duration, Instant};

use fixtures::{wait_for, Cluster};
use serde_json::Value;

fn deployment(replicas: u32, image: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: bench
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: bench}}
  strategy:
    type: RollingUpdate
    rollingUpdate: {{maxSurge: 25%, maxUnavailable: 0}}
  template:
    metadata:
      labels: {{app: bench}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: clusterd.local/busybox:{image}
        imagePullPolicy: Never
        command: ["sleep", "3600"]
"#
    )
}

fn pods(c: &Cluster) -> Vec<Value> {
    serde_json::from_str::<Value>(&c.ok(&["get", "pods", "-o", "json"])).unwrap()["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn main() {
    clusterd_raft::pki::install_default_provider();
    let replicas: u32 = std::env::var("BENCH_REPLICAS").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    println!("workloads bench: a {replicas}-replica Deployment on 3 control-plane nodes on loopback, {cores} cores");
    let mut c = Cluster::init(&[]);
    c.join("n2", true);
    c.join("n3", true);
    let images = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/images");
    for v in ["busybox-v1.tar", "busybox-v2.tar"] {
        c.ok(&["image", "load", images.join(v).to_str().unwrap()]);
    }
    wait_for("the default service account token", Duration::from_secs(30), || {
        c.cli(&["get", "secret", "default-token"]).status.success().then_some(())
    });
    // As `rollout status` decides it: the current spec observed, every replica updated and available.
    let settled = |c: &Cluster| {
        let d: Value = serde_json::from_str(&c.ok(&["get", "deploy", "bench", "-o", "json"])).unwrap();
        let s = &d["status"];
        let observed = s["observedGeneration"].as_i64() >= d["metadata"]["generation"].as_i64();
        (observed
            && s["updatedReplicas"] == replicas
            && s["availableReplicas"] == replicas
            && s["replicas"] == replicas)
            .then_some(())
    };

    let t0 = Instant::now();
    assert!(c.apply(&deployment(replicas, "v1")).status.success());
    wait_for("all replicas Ready", Duration::from_secs(600), || settled(&c));
    let ready = t0.elapsed();
    println!("{:<44} {:>7.1} s", format!("{replicas} replicas created → all Ready"), ready.as_secs_f64());

    let t1 = Instant::now();
    assert!(c.apply(&deployment(replicas, "v2")).status.success());
    wait_for("the rolling update", Duration::from_secs(900), || settled(&c));
    println!("{:<44} {:>7.1} s", "rolling update v1 → v2 (maxSurge 25%)", t1.elapsed().as_secs_f64());

    // Kill a node that is not the leader; its pods come back elsewhere after
    // the grace period (40 s) and the eviction timeout (20 s).
    let leader = c.status()["leader"].as_str().unwrap().to_string();
    let victim = c.nodes.iter().position(|n| n.name != leader && n.name != "n1").unwrap();
    let name = c.nodes[victim].name.clone();
    let on_victim = pods(&c).iter().filter(|p| p["spec"]["nodeName"] == name.as_str()).count();
    // The kill lands somewhere in the lease's 10 s renewal period; how long
    // after the last renewal is part of the figure (grace counts from it).
    let lease: Value =
        serde_json::from_str(&c.ok(&["get", "lease", &name, "-n", "kube-node-lease", "-o", "json"])).unwrap();
    c.nodes[victim].kill9();
    let t2 = Instant::now();
    let renewed = lease["spec"]["renewTime"].as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
    let since_renewal =
        renewed.map(|t| (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_milliseconds() as f64 / 1e3);
    // Where the time goes: NotReady (grace), eviction (toleration), replacements Ready.
    let mut not_ready = None;
    let mut evicted = None;
    wait_for("the killed node's pods elsewhere", Duration::from_secs(600), || {
        if not_ready.is_none() {
            let node: Value = serde_json::from_str(&c.ok(&["get", "node", &name, "-o", "json"])).unwrap();
            let tainted = node["spec"]["taints"].as_array().is_some_and(|t| !t.is_empty());
            not_ready = tainted.then(|| t2.elapsed());
            return None;
        }
        let gone = pods(&c).iter().all(|p| p["spec"]["nodeName"] != name.as_str());
        if gone && evicted.is_none() {
            evicted = Some(t2.elapsed());
        }
        (gone && settled(&c).is_some()).then_some(())
    });
    let total = t2.elapsed();
    println!(
        "{:<44} {:>7.1} s   ({on_victim} pods on {name}; lease renewed {:.1} s before the kill; grace 40 s + toleration 20 s: NotReady at {:.1} s, evicted at {:.1} s)",
        "kill -9 of a node → its pods Ready elsewhere",
        total.as_secs_f64(),
        since_renewal.unwrap_or(f64::NAN),
        not_ready.unwrap_or_default().as_secs_f64(),
        evicted.unwrap_or_default().as_secs_f64(),
    );
}
