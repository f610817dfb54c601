//! Write throughput and latency of a 3-node clusterd cluster through its gRPC
//! API, against a 3-node etcd (Debian's etcd-server) in the same run, with the
//! same number of writes of the same size. Also: time from a leader `kill -9`
//! to the first accepted write. Prints figures; asserts nothing.
//!
//! `make bench` (or `cargo bench --bench store`); `BENCH_WRITES` sets the
//! number of writes per round (default 2000), `BENCH_REPS` how many times each
//! round runs (default 3; the rounds of both systems alternate).

#[path = "../tests/fixtures/mod.rs"]
mod fixtures;

use std::process::{Child, Command, Stdio};
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

/// CPU time (user + system) the processes have used so far; "self" is this one.
fn cpu_time(pids: &[String]) -> Duration {
    Duration::from_millis(pids.iter().map(|pid| cpu_ticks(pid)).sum::<u64>() * 10)
}

impl Round {
    fn per_sec(&self) -> f64 {
        self.writes as f64 / self.elapsed.as_secs_f64()
    }
    fn pct(&self, p: f64) -> Duration {
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
    let op = Arc::new(op);
    let me = ["self".to_string()];
    let (server0, client0) = (cpu_time(servers), cpu_time(&me));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = c;
            while i < writes {
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
    Round { writes, elapsed, lat, server_cpu, client_cpu }
}

fn value(i: usize) -> String {
    let pad = "x".repeat(VALUE_BYTES);
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("b{i}")}, "data": {"v": pad}})
        .to_string()
}

async fn clusterd_round(c: &Cluster, leader: usize, writes: usize, clients: usize, tag: &str) -> Round {
    let cfg = AdminConfig::load(&c.config).unwrap();
    let mut conns = Vec::new();
    for _ in 0..clients.min(16) {
        conns.push(clusterd::client::connect(&cfg, &[c.nodes[leader].api_addr.clone()]).await.unwrap().0);
    }
    let conns = Arc::new(conns);
    let tag = tag.to_string();
    let pids = c.node_pids();
    run_round(&pids, writes, clients, move |c, i| {
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
    _dir: tempfile::TempDir,
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
    let server = ca.issue("etcd", &["127.0.0.1".into()]).unwrap();
    let client = ca.issue("bench", &[]).unwrap();
    let file = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let (ca_f, cert_f, key_f) =
        (file("ca.crt", ca.cert_pem()), file("etcd.crt", &server.cert_pem), file("etcd.key", &server.key_pem));
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
    Some(Etcd { children, client_urls: clients, tls: Arc::new(tls), _dir: dir })
}

async fn etcd_client(e: &Etcd) -> Option<KvClient<tonic::transport::Channel>> {
    let addr = e.client_urls[0].trim_start_matches("https://").to_string();
    clusterd::client::connect::channel(&addr, e.tls.clone()).await.ok().map(KvClient::new)
}

async fn etcd_round(etcd: &Etcd, writes: usize, clients: usize, tag: &str) -> Round {
    let mut conns = Vec::new();
    for _ in 0..clients.min(16) {
        conns.push(etcd_client(etcd).await.expect("connect to etcd"));
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

    // Both systems run for the whole comparison and their rounds alternate, so a
    // slow spell of this (shared, virtual) machine does not fall on one side only.
    let etcd = start_etcd();
    if let Some(e) = &etcd {
        wait_for("etcd to serve", Duration::from_secs(30), || {
            rt.block_on(async {
                let mut c = etcd_client(e).await?;
                c.put(PutRequest { key: b"warmup".to_vec(), value: b"x".to_vec() }).await.ok()
            })
        });
    }
    let reps: usize = std::env::var("BENCH_REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(3).max(1);
    let mut rounds: [Vec<Round>; 4] = Default::default();
    for rep in 0..reps {
        for (slot, clients) in [(0, 1), (2, 64)] {
            let tag = format!("c{clients}r{rep}");
            rounds[slot].push(rt.block_on(clusterd_round(&c, leader, writes, clients, &tag)));
            if let Some(e) = &etcd {
                rounds[slot + 1].push(rt.block_on(etcd_round(e, writes, clients, &format!("e{clients}r{rep}"))));
            }
        }
    }
    println!("{reps} alternating rounds each; the line is the round with the median throughput:");
    let names =
        ["clusterd, 1 client", "etcd 3-node mTLS, 1 client", "clusterd, 64 clients", "etcd 3-node mTLS, 64 clients"];
    for rs in rounds.iter_mut() {
        rs.sort_by(|a, b| a.per_sec().total_cmp(&b.per_sec()));
    }
    let medians: Vec<Option<&Round>> = rounds.iter().map(|rs| rs.get(rs.len() / 2)).collect();
    for (i, name) in names.iter().enumerate() {
        if let Some(r) = medians[i] {
            let all: Vec<String> = rounds[i].iter().map(|r| format!("{:.0}", r.per_sec())).collect();
            println!("{}   (rounds: {} writes/s)", r.line(name), all.join(" / "));
        }
    }
    match (medians[0], medians[1], medians[2], medians[3]) {
        (Some(cd1), Some(e1), Some(cd64), Some(e64)) => {
            println!(
                "ratio clusterd/etcd: 1 client {:.2}x throughput (p99 {:.2} vs {:.2} ms); 64 clients {:.2}x throughput",
                cd1.per_sec() / e1.per_sec(),
                cd1.pct(0.99).as_secs_f64() * 1e3,
                e1.pct(0.99).as_secs_f64() * 1e3,
                cd64.per_sec() / e64.per_sec()
            );
        }
        _ => println!("etcd: not installed (apt-get install etcd-server); no comparison"),
    }
    drop(etcd);

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
