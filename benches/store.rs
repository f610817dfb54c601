//! Write throughput and latency of a 3-node clusterd cluster through its gRPC
//! API, against a 3-node etcd (Debian's etcd-server) in the same run, with the
//! same number of writes of the same size: each system written through its
//! leader and through a follower, with 1 and 64 clients. Then: each leader's
//! RSS; a node holding 100,000 objects (its RSS, and how long a new node takes
//! to catch up through a snapshot); the latency of writes while every node
//! builds a Raft snapshot of that state, against rounds without one; the time
//! from a leader `kill -9` to the first accepted write. Prints figures;
//! asserts nothing.
//!
//! `make bench` (or `cargo bench --bench store`); `BENCH_WRITES` sets the
//! number of writes per round (default 2000), `BENCH_REPS` how many times each
//! round runs (default 3; the rounds of both systems alternate),
//! `BENCH_OBJECTS` the objects of the large-state part (default 100,000).
//! `BENCH_PROFILE=N` runs only clusterd with N clients through its leader,
//! round after round for `BENCH_PROFILE_SECS` (default 30), after printing the
//! nodes' pids, for a profiler to attach to (`perf record -p`).

#[path = "../tests/fixtures/mod.rs"]
mod fixtures;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clusterd::api::etcd::kv_client::KvClient;
use clusterd::api::etcd::PutRequest;
use clusterd::api::pb;
use clusterd::cluster::config::AdminConfig;
use fixtures::{cpu_ticks, free_tcp, wait_for, Cluster};
use serde_json::json;

const VALUE_BYTES: usize = 512;

struct Round {
    writes: usize,
    elapsed: Duration,
    lat: Vec<Duration>,
    /// CPU time the servers (nodes or etcd members) and this client used.
    server_cpu: Duration,
    client_cpu: Duration,
}

/// A process's resident memory, in MiB.
fn rss_mib(pid: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib =
        status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()?.parse().ok());
    kib.unwrap_or(0.0) / 1024.0
}

/// CPU time (user + system) the processes have used so far; "self" is this one.
fn cpu_time(pids: &[String]) -> Duration {
    Duration::from_millis(pids.iter().map(|pid| cpu_ticks(pid)).sum::<u64>() * 10)
}

impl Round {
    fn per_sec(&self) -> f64 {
        self.writes as f64 / self.elapsed.as_secs_f64()
    }
    fn pct(&self, p: f64) -> Duration {
        if self.lat.is_empty() {
            return Duration::ZERO;
        }
        let mut l = self.lat.clone();
        l.sort();
        l[((l.len() as f64 * p).ceil() as usize).saturating_sub(1).min(l.len() - 1)]
    }
    fn line(&self, what: &str) -> String {
        let per_write = |d: Duration| d.as_secs_f64() * 1e6 / self.writes as f64;
        format!(
            "{what:<34} {:>9.0} writes/s   p50 {:>7.2} ms   p99 {:>7.2} ms   CPU/write: servers {:>4.0} us, client {:>3.0} us",
            self.per_sec(),
            self.pct(0.50).as_secs_f64() * 1e3,
            self.pct(0.99).as_secs_f64() * 1e3,
            per_write(self.server_cpu),
            per_write(self.client_cpu)
        )
    }
}

async fn run_round<F, Fut>(servers: &[String], writes: usize, clients: usize, op: F) -> Round
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    run_round_until(servers, writes, clients, Arc::new(AtomicBool::new(false)), op).await
}

/// A round of at most `writes` writes by `clients` clients, which stops early
/// once `stop` is set (each client finishes the write it is making).
async fn run_round_until<F, Fut>(
    servers: &[String],
    writes: usize,
    clients: usize,
    stop: Arc<AtomicBool>,
    op: F,
) -> Round
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let me = ["self".to_string()];
    let (server0, client0) = (cpu_time(servers), cpu_time(&me));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (op, stop) = (op.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = c;
            while i < writes && !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                op(c, i).await;
                lat.push(t.elapsed());
                i += clients;
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let elapsed = start.elapsed();
    let (server_cpu, client_cpu) = (cpu_time(servers) - server0, cpu_time(&me) - client0);
    Round { writes: lat.len(), elapsed, lat, server_cpu, client_cpu }
}

fn value(i: usize) -> String {
    let pad = "x".repeat(VALUE_BYTES);
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("b{i}")}, "data": {"v": pad}})
        .to_string()
}

/// A round of creates through node `via` (the leader, or a follower that
/// forwards to it).
async fn clusterd_round(c: &Cluster, via: usize, writes: usize, clients: usize, tag: &str) -> Round {
    clusterd_round_until(c, via, writes, clients, tag, Arc::new(AtomicBool::new(false))).await
}

/// [`clusterd_round`], stopping early once `stop` is set.
async fn clusterd_round_until(
    c: &Cluster,
    via: usize,
    writes: usize,
    clients: usize,
    tag: &str,
    stop: Arc<AtomicBool>,
) -> Round {
    let cfg = AdminConfig::load(&c.config).unwrap();
    let mut conns = Vec::new();
    for _ in 0..clients.min(16) {
        conns.push(clusterd::client::connect(&cfg, &[c.nodes[via].api_addr.clone()]).await.unwrap().0);
    }
    let conns = Arc::new(conns);
    let tag = tag.to_string();
    let pids = c.node_pids();
    run_round_until(&pids, writes, clients, stop, move |c, i| {
        let mut client = conns[c % conns.len()].clone();
        let body = value(i).replace(&format!("\"b{i}\""), &format!("\"{tag}-{i}\""));
        async move {
            client.create(pb::ObjectRequest { json: body }).await.expect("create");
        }
    })
    .await
}

struct Etcd {
    children: Vec<Child>,
    client_urls: Vec<String>,
    tls: Arc<rustls::ClientConfig>,
    /// etcdctl's TLS flags.
    ctl_tls: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Etcd {
    /// The index of the member that leads, as `etcdctl endpoint status` says.
    fn leader(&self) -> Option<usize> {
        let out = Command::new("etcdctl")
            .args(["--endpoints", &self.client_urls.join(","), "endpoint", "status", "-w", "json"])
            .args(&self.ctl_tls)
            .output()
            .ok()?;
        let statuses: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        statuses.as_array()?.iter().position(|s| {
            let member = &s["Status"]["header"]["member_id"];
            !member.is_null() && *member == s["Status"]["leader"]
        })
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A 3-member etcd with mutual TLS on client and peer traffic, as clusterd has,
/// so the comparison is like for like.
fn start_etcd() -> Option<Etcd> {
    if Command::new("etcd").arg("--version").output().is_err() {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = clusterd_raft::pki::Ca::generate("etcd-bench").unwrap();
    let server = ca.issue("etcd", &["127.0.0.1".into()], clusterd_raft::pki::NODE_VALIDITY).unwrap();
    let client = ca.issue("bench", &[], clusterd_raft::pki::NODE_VALIDITY).unwrap();
    let file = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let (ca_f, cert_f, key_f) =
        (file("ca.crt", ca.cert_pem()), file("etcd.crt", &server.cert_pem), file("etcd.key", &server.key_pem));
    let ctl_tls = vec![
        format!("--cacert={ca_f}"),
        format!("--cert={}", file("bench.crt", &client.cert_pem)),
        format!("--key={}", file("bench.key", &client.key_pem)),
    ];
    let peers: Vec<String> = (0..3).map(|_| format!("https://{}", free_tcp())).collect();
    let clients: Vec<String> = (0..3).map(|_| format!("https://{}", free_tcp())).collect();
    let initial: Vec<String> = peers.iter().enumerate().map(|(i, p)| format!("e{i}={p}")).collect();
    let mut children = Vec::new();
    for i in 0..3 {
        let child = Command::new("etcd")
            .args(["--name", &format!("e{i}"), "--data-dir", dir.path().join(format!("e{i}")).to_str().unwrap()])
            .args(["--listen-client-urls", &clients[i], "--advertise-client-urls", &clients[i]])
            .args(["--listen-peer-urls", &peers[i], "--initial-advertise-peer-urls", &peers[i]])
            .args(["--initial-cluster", &initial.join(","), "--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", "bench", "--log-level", "error"])
            .args(["--cert-file", &cert_f, "--key-file", &key_f, "--trusted-ca-file", &ca_f, "--client-cert-auth"])
            .args(["--peer-cert-file", &cert_f, "--peer-key-file", &key_f, "--peer-trusted-ca-file", &ca_f])
            .arg("--peer-client-cert-auth")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        children.push(child);
    }
    let tls = clusterd_raft::pki::client_config(ca.cert_pem(), Some(&client), &[b"h2"]).unwrap();
    Some(Etcd { children, client_urls: clients, tls: Arc::new(tls), ctl_tls, _dir: dir })
}

async fn etcd_client(e: &Etcd, via: usize) -> Option<KvClient<tonic::transport::Channel>> {
    let addr = e.client_urls[via].trim_start_matches("https://").to_string();
    clusterd::client::connect::channel(&addr, e.tls.clone()).await.ok().map(KvClient::new)
}

async fn etcd_round(etcd: &Etcd, via: usize, writes: usize, clients: usize, tag: &str) -> Round {
    let mut conns = Vec::new();
    for _ in 0..clients.min(16) {
        conns.push(etcd_client(etcd, via).await.expect("connect to etcd"));
    }
    let conns = Arc::new(conns);
    let tag = tag.to_string();
    let pids: Vec<String> = etcd.children.iter().map(|ch| ch.id().to_string()).collect();
    run_round(&pids, writes, clients, move |c, i| {
        let mut client = conns[c % conns.len()].clone();
        let req = PutRequest {
            key: format!("/registry/configmaps/default/{tag}-{i}").into_bytes(),
            value: value(i).into_bytes(),
        };
        async move {
            client.put(req).await.expect("etcd put");
        }
    })
    .await
}

/// The Raft snapshot files (`*.snap`) of a node's store, and whether one is
/// being written (a `*.part` beside them).
fn snapshot_files(dir: &std::path::Path) -> (BTreeSet<String>, bool) {
    let (mut done, mut part) = (BTreeSet::new(), false);
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".part") {
            part = true;
        } else if name.ends_with(".snap") {
            done.insert(name);
        }
    }
    (done, part)
}

/// Ask every node to build a Raft snapshot now; returns a thread that sets
/// `done` and answers how long it took once every node has a new snapshot
/// file (none half written).
fn snapshot_all(rt: &tokio::runtime::Runtime, c: &Cluster, done: Arc<AtomicBool>) -> std::thread::JoinHandle<Duration> {
    let dirs: Vec<PathBuf> = c.nodes.iter().map(|n| n.data_dir.join("db").join("snapshots")).collect();
    let before: Vec<BTreeSet<String>> = dirs.iter().map(|d| snapshot_files(d).0).collect();
    let cfg = AdminConfig::load(&c.config).unwrap();
    let started = Instant::now();
    for n in &c.nodes {
        rt.block_on(async {
            let mut client = clusterd::client::connect(&cfg, std::slice::from_ref(&n.api_addr)).await.unwrap().0;
            client.snapshot(pb::SnapshotRequest {}).await.expect("snapshot");
        });
    }
    std::thread::spawn(move || {
        let built = wait_for("every node's snapshot", Duration::from_secs(300), || {
            let all = dirs.iter().zip(&before).all(|(d, old)| {
                let (now, part) = snapshot_files(d);
                !part && now.difference(old).next().is_some()
            });
            all.then(|| started.elapsed())
        });
        done.store(true, Ordering::Relaxed);
        built
    })
}

fn clusterd_pid(c: &Cluster, i: usize) -> String {
    c.nodes[i].child.as_ref().map(|ch| ch.id().to_string()).unwrap_or_default()
}

fn main() {
    clusterd_raft::pki::install_default_provider();
    // Nodes log as users run them (warnings only), not as verbosely as the tests.
    std::env::set_var("CLUSTERD_TEST_LOG", "warn,clusterd=info");
    let writes: usize = std::env::var("BENCH_WRITES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    println!(
        "store bench: {writes} writes of a {VALUE_BYTES}-byte value per round, 3 nodes on loopback, fsync on, {} cores",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );

    let mut c = Cluster::init(&[]);
    c.join("n2", true);
    c.join("n3", true);
    let leader_name = c.status()["leader"].as_str().unwrap().to_string();
    let leader = c.nodes.iter().position(|n| n.name == leader_name).unwrap();
    if let Some(clients) = std::env::var("BENCH_PROFILE").ok().and_then(|v| v.parse::<usize>().ok()) {
        let secs: u64 = std::env::var("BENCH_PROFILE_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(30);
        let followers: Vec<String> = (0..3).filter(|&i| i != leader).map(|i| clusterd_pid(&c, i)).collect();
        println!("profile: leader pid {} followers pids {}", clusterd_pid(&c, leader), followers.join(" "));
        let start = Instant::now();
        let mut rep = 0;
        while start.elapsed() < Duration::from_secs(secs) {
            let r = rt.block_on(clusterd_round(&c, leader, writes, clients, &format!("p{rep}")));
            println!("{}", r.line(&format!("clusterd, {clients} client(s) via leader")));
            rep += 1;
        }
        return;
    }

    // Both systems run for the whole comparison and their rounds alternate, so a
    // slow spell of this (shared, virtual) machine does not fall on one side only.
    let etcd = start_etcd();
    let mut etcd_leader = 0;
    if let Some(e) = &etcd {
        wait_for("etcd to serve", Duration::from_secs(30), || {
            rt.block_on(async {
                let mut c = etcd_client(e, 0).await?;
                c.put(PutRequest { key: b"warmup".to_vec(), value: b"x".to_vec() }).await.ok()
            })
        });
        etcd_leader = wait_for("etcd's leader", Duration::from_secs(30), || e.leader());
    }
    let reps: usize = std::env::var("BENCH_REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(3).max(1);
    // (clients, through the leader?) for each pair of series: clusterd, etcd.
    let kinds = [(1, true), (64, true), (1, false), (64, false)];
    let mut rounds: Vec<Vec<Round>> = (0..kinds.len() * 2).map(|_| Vec::new()).collect();
    for rep in 0..reps {
        for (k, &(clients, to_leader)) in kinds.iter().enumerate() {
            let via = |leader: usize| if to_leader { leader } else { (leader + 1) % 3 };
            let tag = format!("c{clients}{to_leader}r{rep}");
            rounds[2 * k].push(rt.block_on(clusterd_round(&c, via(leader), writes, clients, &tag)));
            if let Some(e) = &etcd {
                let tag = format!("e{tag}");
                rounds[2 * k + 1].push(rt.block_on(etcd_round(e, via(etcd_leader), writes, clients, &tag)));
            }
        }
    }
    println!("{reps} alternating rounds each; the line is the round with the median throughput:");
    for rs in rounds.iter_mut() {
        rs.sort_by(|a, b| a.per_sec().total_cmp(&b.per_sec()));
    }
    let median = |i: usize| rounds[i].get(rounds[i].len() / 2);
    for (k, &(clients, to_leader)) in kinds.iter().enumerate() {
        let via = if to_leader { "leader" } else { "follower" };
        for (i, system) in [(2 * k, "clusterd"), (2 * k + 1, "etcd 3-node mTLS")] {
            if let Some(r) = median(i) {
                let all: Vec<String> = rounds[i].iter().map(|r| format!("{:.0}", r.per_sec())).collect();
                let name = format!("{system}, {clients} client(s) via {via}");
                println!("{}   (rounds: {} writes/s)", r.line(&name), all.join(" / "));
            }
        }
        if let (Some(cd), Some(e)) = (median(2 * k), median(2 * k + 1)) {
            println!(
                "  ratio clusterd/etcd, {clients} client(s) via {via}: {:.2}x throughput; p99 {:.2} vs {:.2} ms",
                cd.per_sec() / e.per_sec(),
                cd.pct(0.99).as_secs_f64() * 1e3,
                e.pct(0.99).as_secs_f64() * 1e3
            );
        }
    }
    match &etcd {
        Some(e) => println!(
            "leader RSS after the rounds: clusterd {:.0} MiB, etcd {:.0} MiB",
            rss_mib(&clusterd_pid(&c, leader)),
            rss_mib(&e.children[etcd_leader].id().to_string())
        ),
        None => println!("etcd: not installed (apt-get install etcd-server); no comparison"),
    }
    drop(etcd);

    // A large state: its memory, and a new node catching up through a snapshot.
    let objects: usize = std::env::var("BENCH_OBJECTS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let bulk = rt.block_on(clusterd_round(&c, leader, objects, 64, "bulk"));
    let rss: Vec<String> = (0..3).map(|i| format!("{:.0}", rss_mib(&clusterd_pid(&c, i)))).collect();
    println!(
        "{objects} objects of {VALUE_BYTES} B written at {:.0} writes/s; RSS of the 3 nodes: {} MiB (leader first: {:.0} MiB)",
        bulk.per_sec(),
        rss.join(" / "),
        rss_mib(&clusterd_pid(&c, leader))
    );
    let applied = |st: &serde_json::Value, name: &str| {
        st["members"].as_array()?.iter().find(|m| m["name"] == name)?["lastApplied"].as_u64()
    };
    let target = applied(&c.status(), &leader_name).unwrap_or(0);
    let joined = Instant::now();
    c.join("n4", false);
    let caught_up = wait_for("the new node to catch up", Duration::from_secs(300), || {
        (applied(&c.status(), "n4")? >= target).then(|| joined.elapsed())
    });
    let n4 = c.nodes.len() - 1;
    println!(
        "new node n4: joined and caught up with {objects}+ objects in {:.1} s (snapshot install); its RSS {:.0} MiB",
        caught_up.as_secs_f64(),
        rss_mib(&clusterd_pid(&c, n4))
    );

    // Writes while every node builds a snapshot of that state (as all do at
    // about the same index by the snapshot policy), against rounds of the same
    // length without one. A round makes at most 4,000 writes, far fewer than
    // the state's objects, after which the policy would build one on its own.
    const SNAP_CAP: usize = 4000;
    let warm = snapshot_all(&rt, &c, Arc::new(AtomicBool::new(false))).join().unwrap();
    println!(
        "snapshot of {objects}+ objects on all {} nodes at once, no writes: built in {:.2} s",
        c.nodes.len(),
        warm.as_secs_f64()
    );
    for clients in [1, 16] {
        let mut last = warm;
        let (mut without, mut with, mut builds) = (Vec::new(), Vec::new(), Vec::new());
        for rep in 0..reps {
            let stop = Arc::new(AtomicBool::new(false));
            let timer = {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    std::thread::sleep(last);
                    stop.store(true, Ordering::Relaxed);
                })
            };
            let tag = format!("nosnap{clients}r{rep}");
            without.push(rt.block_on(clusterd_round_until(&c, leader, SNAP_CAP, clients, &tag, stop)));
            timer.join().unwrap();
            let stop = Arc::new(AtomicBool::new(false));
            let building = snapshot_all(&rt, &c, stop.clone());
            let tag = format!("snap{clients}r{rep}");
            with.push(rt.block_on(clusterd_round_until(&c, leader, SNAP_CAP, clients, &tag, stop)));
            last = building.join().unwrap();
            builds.push(format!("{:.2}", last.as_secs_f64()));
        }
        for (rs, what) in [(&mut without, "no snapshot"), (&mut with, "all nodes building a snapshot")] {
            rs.sort_by_key(|a| a.pct(0.99));
            let p99s: Vec<String> = rs.iter().map(|r| format!("{:.2}", r.pct(0.99).as_secs_f64() * 1e3)).collect();
            let r = &rs[rs.len() / 2];
            println!(
                "{}   (p99 of the rounds: {} ms; {} writes in the median one)",
                r.line(&format!("clusterd, {clients} client(s), {what}")),
                p99s.join(" / "),
                r.writes
            );
        }
        println!("  snapshots under {clients}-client load built in {} s", builds.join(" / "));
    }

    // Failover: kill -9 the leader, then write through another node until accepted.
    let other = (leader + 1) % 3;
    let cfg = AdminConfig::load(&c.config).unwrap();
    let mut client = rt.block_on(clusterd::client::connect(&cfg, &[c.nodes[other].api_addr.clone()])).unwrap().0;
    c.nodes[leader].kill9();
    let killed = Instant::now();
    let mut i = 0;
    loop {
        i += 1;
        let body = value(i).replace(&format!("\"b{i}\""), &format!("\"failover-{i}\""));
        if rt.block_on(client.create(pb::ObjectRequest { json: body })).is_ok() {
            break;
        }
        assert!(killed.elapsed() < Duration::from_secs(60), "no write accepted within 60 s");
    }
    println!("leader kill -9 -> first accepted write: {:.0} ms", killed.elapsed().as_secs_f64() * 1e3);
}
