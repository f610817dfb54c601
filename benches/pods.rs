//! Pods on a 3-node local cluster (real node processes, real containers):
//!
//! 1. Pod start latency: 100 single-container pods, image present, created
//!    (a) at 20 pods/s and (b) all at once; time from create to Running as
//!    seen by a watch; p50 / p99.
//! 2. Scheduler throughput: 1,000 simulated nodes — Node objects with Leases
//!    and no kubelet (a simulation, named so) — and 10,000 pending pods on the
//!    3-node control plane; bindings committed per second.
//!
//! Prints figures; asserts nothing. `cargo bench --bench pods`; `BENCH_PODS`
//! and `BENCH_SIM_PODS` change the counts.

#[path = "../tests/fixtures/mod.rs"]
mod fixtures;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clusterd::api::pb;
use clusterd::client::ApiClient;
use clusterd::cluster::config::AdminConfig;
use fixtures::{ms, pct, wait_for, Cluster};
use serde_json::{json, Value};
use tokio::sync::Mutex;

async fn client(c: &Cluster, idx: usize) -> ApiClient {
    let cfg = AdminConfig::load(&c.config).unwrap();
    clusterd::client::connect(&cfg, &[c.nodes[idx].api_addr.clone()]).await.unwrap().0
}

fn bench_pod(ns: &str, name: &str) -> String {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
           "spec": {"terminationGracePeriodSeconds": 0, "containers": [{"name": "c", "image": "clusterd.local/busybox:v1",
                    "imagePullPolicy": "Never", "command": ["sleep", "3600"]}]}})
    .to_string()
}

/// Create `n` pods in namespace `ns` (`gap` apart, or all at once) and return
/// each pod's create → Running latency as seen by a watch.
async fn start_latency(c: &Cluster, ns: &str, n: usize, gap: Option<Duration>) -> (Vec<Duration>, Duration) {
    let mut api = client(c, 0).await;
    api.create(pb::ObjectRequest {
        json: json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}).to_string(),
    })
    .await
    .unwrap();
    // Pods mount their service account's token: let its controller make it first, as
    // Kubernetes' own tests wait for the default service account.
    for _ in 0..300 {
        let req = pb::GetRequest {
            kind: "secret".into(),
            namespace: ns.into(),
            name: "default-token".into(),
            linearizable: false,
        };
        if api.get(req).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let created: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let mut watch = api
        .watch(pb::WatchRequest { kind: "pod".into(), namespace: ns.into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let seen = created.clone();
    let waiter = tokio::spawn(async move {
        let mut lat = HashMap::new();
        while lat.len() < n {
            let Some(ev) = watch.message().await.unwrap() else { break };
            let obj: Value = serde_json::from_str(&ev.json).unwrap();
            if obj.pointer("/status/phase").and_then(Value::as_str) == Some("Running") {
                let name = obj["metadata"]["name"].as_str().unwrap().to_string();
                if let Some(t0) = seen.lock().await.get(&name) {
                    lat.entry(name).or_insert_with(|| t0.elapsed());
                }
            }
        }
        lat.into_values().collect::<Vec<_>>()
    });
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..n {
        let mut api = api.clone();
        let created = created.clone();
        let name = format!("p{i}");
        let body = bench_pod(ns, &name);
        let t = async move {
            created.lock().await.insert(name, Instant::now());
            api.create(pb::ObjectRequest { json: body }).await.unwrap();
        };
        match gap {
            Some(g) => {
                t.await;
                tokio::time::sleep(g).await;
            }
            None => tasks.push(tokio::spawn(t)),
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let lat = tokio::time::timeout(Duration::from_secs(300), waiter).await.expect("pods Running").unwrap();
    (lat, start.elapsed())
}

async fn delete_namespace_pods(c: &Cluster, ns: &str, n: usize) {
    let api = client(c, 0).await;
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let mut api = api.clone();
            let ns = ns.to_string();
            tokio::spawn(async move {
                let _ = api
                    .delete(pb::DeleteRequest {
                        kind: "pod".into(),
                        namespace: ns,
                        name: format!("p{i}"),
                        resource_version: 0,
                        grace_period_seconds: Some(0),
                        propagation_policy: String::new(),
                    })
                    .await;
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    // The kubelets remove the containers before the objects go: wait for that,
    // so the next figure does not pay for this teardown.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let left = api
            .clone()
            .list(pb::ListRequest { kind: "pod".into(), namespace: ns.into(), ..Default::default() })
            .await
            .ok()
            .and_then(|r| serde_json::from_str::<Value>(&r.into_inner().json).ok())
            .and_then(|l| l["items"].as_array().map(Vec::len))
            .unwrap_or(usize::MAX);
        if left == 0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Wait (up to 30 s) until the node processes are nearly idle — the previous
/// phases' events, deletions and RocksDB compactions done — so the scheduler
/// figure measures the scheduler.
fn quiesce(c: &Cluster) {
    let pids = c.node_pids();
    let ticks = || -> u64 { pids.iter().map(|pid| fixtures::cpu_ticks(pid)).sum() };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = ticks();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(1));
        let now = ticks();
        // Clock ticks are 1/100 s: under 10 ticks a second is under 10 % of a core.
        if now - last < 10 {
            return;
        }
        last = now;
    }
}

/// Simulated nodes and pending pods; bindings per second.
async fn scheduler_throughput(c: &Cluster, nodes: usize, pods: usize) -> String {
    let api = client(c, 0).await;
    let leader = c.status()["leader"].as_str().unwrap().to_string();
    let mut a = api.clone();
    a.create(pb::ObjectRequest {
        json: json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "sim"}}).to_string(),
    })
    .await
    .unwrap();
    // Pods first (no simulated node exists yet: they wait as Unschedulable).
    let t0 = Instant::now();
    run_parallel(&api, 64, pods, |i| {
        // No owners: the garbage collector would rightly remove pods of owners that do not exist.
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("s{i}"), "namespace": "sim"},
               "spec": {"nodeSelector": {"clusterd.io/simulated": "true"},
                        "containers": [{"name": "c", "image": "clusterd.local/busybox:v1",
                                        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}})
        .to_string()
    })
    .await;
    let created = t0.elapsed();
    // Follow changes from now on (not the pods' creation history).
    let rv = api
        .clone()
        .list(pb::ListRequest { kind: "namespace".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .resource_version;
    let mut watch = api
        .clone()
        .watch(pb::WatchRequest {
            kind: "pod".into(),
            namespace: "sim".into(),
            resource_version: rv,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let counter = tokio::spawn(async move {
        let mut bound = std::collections::HashSet::new();
        let mut first = None;
        while bound.len() < pods {
            let Some(ev) = watch.message().await.unwrap() else { break };
            let obj: Value = serde_json::from_str(&ev.json).unwrap();
            if obj.pointer("/spec/nodeName").and_then(Value::as_str).is_some_and(|n| !n.is_empty()) {
                first.get_or_insert_with(Instant::now);
                bound.insert(obj["metadata"]["name"].as_str().unwrap().to_string());
            }
        }
        (first.unwrap_or_else(Instant::now), Instant::now())
    });
    let t1 = Instant::now();
    run_parallel(&api, 64, nodes, |i| {
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": format!("sim-{i:04}"),
               "labels": {"clusterd.io/simulated": "true", "kubernetes.io/hostname": format!("sim-{i:04}")}},
               "spec": {"podCIDR": format!("10.250.{}.0/24", i % 250)},
               "status": {"capacity": {"cpu": "32", "memory": "128Gi", "pods": "110"},
                          "allocatable": {"cpu": "32", "memory": "128Gi", "pods": "110"},
                          "conditions": [{"type": "Ready", "status": "True", "reason": "SimulatedNode"}]}})
        .to_string()
    })
    .await;
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    run_parallel(&api, 64, nodes, |i| {
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
               "metadata": {"name": format!("sim-{i:04}"), "namespace": "kube-node-lease"},
               "spec": {"holderIdentity": format!("sim-{i:04}"), "leaseDurationSeconds": 40, "renewTime": now}})
        .to_string()
    })
    .await;
    let nodes_made = t1.elapsed();
    let (first, last) = tokio::time::timeout(Duration::from_secs(600), counter).await.expect("all bound").unwrap();
    let span = last.duration_since(first);
    let from_nodes = last.duration_since(t1);
    format!(
        "scheduler (leader {leader}): {pods} pods created in {:.1} s, {nodes} simulated nodes + leases in {:.1} s\n\
         {:<34} {:>9.0} bindings/s   (first to last binding {:.2} s; {:.2} s from the first node created)",
        created.as_secs_f64(),
        nodes_made.as_secs_f64(),
        "bindings committed",
        pods as f64 / span.as_secs_f64().max(1e-3),
        span.as_secs_f64(),
        from_nodes.as_secs_f64()
    )
}

async fn run_parallel(api: &ApiClient, clients: usize, n: usize, body: impl Fn(usize) -> String) {
    let bodies: Arc<Vec<String>> = Arc::new((0..n).map(body).collect());
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let mut api = api.clone();
            let bodies = bodies.clone();
            let next = next.clone();
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if i >= bodies.len() {
                        return;
                    }
                    api.create(pb::ObjectRequest { json: bodies[i].clone() }).await.expect("create");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

/// What a typed object costs: one parse per change of a real, running pod as
/// the store holds it, made by its first reader and shared by all.
fn typed_parse_cost(c: &Cluster) -> String {
    let pods: Value = serde_json::from_str(&c.ok(&["get", "pods", "-A", "-o", "json"])).unwrap();
    let Some(pod) = pods["items"].as_array().and_then(|items| items.first()).cloned() else {
        return "typed parse: no pod left to measure".into();
    };
    let n = 20_000;
    let start = Instant::now();
    for _ in 0..n {
        let obj = clusterd::objects::typed::Object::new(std::hint::black_box(pod.clone()));
        std::hint::black_box(obj.pod().is_some());
    }
    let per = start.elapsed() / n;
    let bytes = pod.to_string().len();
    format!(
        "{:<34} {:>7.1} us per pod object ({bytes} bytes of JSON), once per change",
        "typed parse (first reader)",
        per.as_secs_f64() * 1e6
    )
}

fn main() {
    clusterd_raft::pki::install_default_provider();
    let pods: usize = std::env::var("BENCH_PODS").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let sim_pods: usize = std::env::var("BENCH_SIM_PODS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    println!("pods bench: 3 control-plane nodes on loopback, {cores} cores");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let mut c = Cluster::init(&[]);
    c.join("n2", true);
    c.join("n3", true);
    let images = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/images/busybox-v1.tar");
    c.ok(&["image", "load", images.to_str().unwrap()]);
    wait_for("3 nodes with pod CIDRs", Duration::from_secs(30), || {
        let nodes: Value = serde_json::from_str(&c.ok(&["get", "nodes", "-o", "json"])).unwrap();
        let items = nodes["items"].as_array().cloned().unwrap_or_default();
        (items.len() == 3 && items.iter().all(|n| n.pointer("/spec/podCIDR").is_some())).then_some(())
    });

    wait_for("the default service account token", Duration::from_secs(30), || {
        c.cli(&["get", "secret", "default-token"]).status.success().then_some(())
    });
    let (paced, paced_total) = rt.block_on(start_latency(&c, "paced", pods, Some(Duration::from_millis(50))));
    let parse_cost = typed_parse_cost(&c);
    rt.block_on(delete_namespace_pods(&c, "paced", pods));
    let (burst, burst_total) = rt.block_on(start_latency(&c, "burst", pods, None));
    rt.block_on(delete_namespace_pods(&c, "burst", pods));
    println!(
        "{:<34} p50 {:>7.1} ms   p99 {:>7.1} ms   ({pods} pods in {:.1} s)",
        "pod start, 20 pods/s",
        ms(pct(&paced, 0.5)),
        ms(pct(&paced, 0.99)),
        paced_total.as_secs_f64()
    );
    println!(
        "{:<34} p50 {:>7.1} ms   p99 {:>7.1} ms   ({pods} pods in {:.1} s)",
        "pod start, all at once",
        ms(pct(&burst, 0.5)),
        ms(pct(&burst, 0.99)),
        burst_total.as_secs_f64()
    );
    quiesce(&c);
    println!("{}", rt.block_on(scheduler_throughput(&c, 1000, sim_pods)));
    println!("{parse_cost}");
    if std::env::var("BENCH_VERBOSE").is_ok() {
        for n in &c.nodes {
            for l in n.log().lines().filter(|l| l.contains("scheduler")) {
                eprintln!("{}: {l}", n.name);
            }
        }
    }
    drop(c);
}
