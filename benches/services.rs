//! Services at scale on 3 nodes, each on its own test host (network
//! namespaces on a bridge; real node processes, real nftables, one real
//! httpd pod as the backend that answers):
//!
//! 0. 1,000 selector-less Services, each with hand-written Endpoints of 10
//!    addresses — **simulated endpoints**: addresses no pod has, in
//!    10.250.0.0/16, which the test hosts drop (their default route leads
//!    into a link without carrier); the proxy programs them all the same.
//! 1. Service create → its ClusterIP answering on every node: Services
//!    selecting the httpd pod are created one at a time; a prober thread in
//!    each host's network namespace connects to the new ClusterIP until it
//!    answers. p50 / p99 of the slowest node.
//! 2. Endpoint change → every node's rules updated: the Endpoints of a
//!    selector-less Service are switched from a dead address to the httpd
//!    pod; time until its ClusterIP answers on every node. p50 / p99.
//! 3. One node's table: lines of `nft list table`, and its update
//!    transactions' sizes and times as the proxy logs them.
//! 4. DNS on one node: closed-loop UDP clients in a host's namespace asking
//!    the DNS Service address for Service names; queries/s and p50 / p99.
//!
//! Prints figures; asserts nothing. `cargo bench --bench services`;
//! `BENCH_SERVICES` (1,000), `BENCH_PROBES` (50) and `BENCH_DNS_CLIENTS` (4)
//! change the counts. Needs root and `make images`.

#[path = "../tests/fixtures/mod.rs"]
mod fixtures;

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use clusterd::api::pb;
use clusterd::client::ApiClient;
use clusterd::cluster::config::AdminConfig;
use fixtures::{image, ms, pct, wait_for, Cluster};
use serde_json::{json, Value};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn client(c: &Cluster) -> ApiClient {
    let cfg = AdminConfig::load(&c.config).unwrap();
    clusterd::client::connect(&cfg, &[c.nodes[0].api_addr.clone()]).await.unwrap().0
}

/// Enter test host `ns`'s network namespace (this thread only).
fn enter(ns: &str) {
    let f = std::fs::File::open(format!("/run/netns/{ns}")).unwrap();
    nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
}

/// Whether a TCP connection to `addr` is accepted within 50 ms.
fn answers(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(50)).is_ok()
}

/// From each host's namespace, wait until `addr` answers; the time from `t0`
/// to the slowest host's first answer.
fn until_answering_everywhere(c: &Cluster, addr: SocketAddr, t0: Instant) -> Duration {
    let hosts: Vec<String> = c.hosts().names.clone();
    let threads: Vec<_> = hosts
        .into_iter()
        .map(|ns| {
            std::thread::spawn(move || {
                enter(&ns);
                let deadline = Instant::now() + Duration::from_secs(30);
                while !answers(addr) {
                    assert!(Instant::now() < deadline, "{addr} never answered in {ns}");
                    std::thread::sleep(Duration::from_millis(1));
                }
                t0.elapsed()
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).max().unwrap()
}

fn service(name: &str, selector: Option<&str>) -> String {
    let mut s = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
                       "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}});
    if let Some(app) = selector {
        s["spec"]["selector"] = json!({"app": app});
    }
    s.to_string()
}

fn endpoints(name: &str, ips: &[String], rv: Option<&str>) -> String {
    let addresses: Vec<Value> = ips.iter().map(|ip| json!({"ip": ip})).collect();
    let mut e = json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": "default"},
                       "subsets": [{"addresses": addresses, "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]});
    if let Some(rv) = rv {
        e["metadata"]["resourceVersion"] = json!(rv);
    }
    e.to_string()
}

async fn cluster_ip(api: &mut ApiClient, name: &str) -> String {
    let req =
        pb::GetRequest { kind: "service".into(), namespace: "default".into(), name: name.into(), linearizable: false };
    let svc: Value = serde_json::from_str(&api.get(req).await.unwrap().into_inner().json).unwrap();
    svc["spec"]["clusterIP"].as_str().unwrap().to_string()
}

/// An A query for `name`, id `id`.
fn dns_query(id: u16, name: &str) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend([0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend(label.as_bytes());
    }
    q.extend([0, 0, 1, 0, 1]);
    q
}

fn main() {
    let services = env("BENCH_SERVICES", 1000);
    let probes = env("BENCH_PROBES", 50);
    let dns_clients = env("BENCH_DNS_CLIENTS", 4);
    // The proxy's transactions (size, decide and apply times) are logged at debug.
    if std::env::var_os("CLUSTERD_TEST_LOG").is_none() {
        std::env::set_var("CLUSTERD_TEST_LOG", "info,clusterd::proxy=debug");
    }
    let rt = tokio::runtime::Runtime::new().unwrap();

    let mut c = Cluster::init_on_hosts(3, &["--snapshot-every", "100000"]);
    c.join_on(1, "n2", true);
    c.join_on(2, "n3", true);
    c.ok(&["image", "load", &image("busybox-v1.tar")]);
    let pod = r#"apiVersion: v1
kind: Pod
metadata:
  name: backend
  labels: {app: backend}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: httpd
    image: clusterd.local/busybox:v1
    imagePullPolicy: Never
    command: ["sh", "-c", "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www"]
"#;
    assert!(c.apply(pod).status.success());
    let backend_ip = wait_for("the backend pod's address", Duration::from_secs(60), || {
        let out = c.cli(&["get", "pod", "backend", "-o", "json"]);
        let p: Value = serde_json::from_slice(&out.stdout).ok()?;
        (p["status"]["phase"] == "Running").then(|| p["status"]["podIP"].as_str().map(String::from))?
    });

    println!("== services: 3 nodes on 3 test hosts, {services} Services × 10 simulated endpoints");
    let t = Instant::now();
    rt.block_on(async {
        let api = client(&c).await;
        let mut tasks = Vec::new();
        for w in 0..16 {
            let mut api = api.clone();
            tasks.push(tokio::spawn(async move {
                for i in (w..services).step_by(16) {
                    let name = format!("sim-{i}");
                    api.create(pb::ObjectRequest { json: service(&name, None) }).await.unwrap();
                    let ips: Vec<String> =
                        (0..10).map(|k| format!("10.250.{}.{}", i / 25, (i % 25) * 10 + k + 1)).collect();
                    api.create(pb::ObjectRequest { json: endpoints(&name, &ips, None) }).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    println!("created {services} Services + Endpoints in {:.1} s", t.elapsed().as_secs_f64());
    // Wait until the last one is programmed everywhere.
    let table_has = |c: &Cluster, what: &str| -> bool {
        (0..3).all(|h| String::from_utf8_lossy(&c.hosts().exec(h, &["nft", "list", "ruleset"]).stdout).contains(what))
    };
    let last_ip = rt.block_on(async { cluster_ip(&mut client(&c).await, &format!("sim-{}", services - 1)).await });
    wait_for("every node's rules for all Services", Duration::from_secs(300), || table_has(&c, &last_ip).then_some(()));

    println!("-- 1. Service create → ClusterIP answering on every node ({probes} Services, one at a time)");
    let mut lat = Vec::new();
    for i in 0..probes {
        let name = format!("probe-{i}");
        let (t0, ip) = rt.block_on(async {
            let mut api = client(&c).await;
            let t0 = Instant::now();
            let created = api.create(pb::ObjectRequest { json: service(&name, Some("backend")) }).await.unwrap();
            let svc: Value = serde_json::from_str(&created.into_inner().json).unwrap();
            (t0, svc["spec"]["clusterIP"].as_str().unwrap().to_string())
        });
        lat.push(until_answering_everywhere(&c, format!("{ip}:80").parse().unwrap(), t0));
    }
    println!(
        "create → answering on all 3 nodes: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(pct(&lat, 0.5)),
        ms(pct(&lat, 0.99)),
        ms(pct(&lat, 1.0))
    );

    println!("-- 2. Endpoint change → rules updated on every node ({probes} changes)");
    let mut lat = Vec::new();
    let name = "sim-0";
    let ip = rt.block_on(async { cluster_ip(&mut client(&c).await, name).await });
    let addr: SocketAddr = format!("{ip}:80").parse().unwrap();
    for _ in 0..probes {
        for target in [vec!["10.250.255.1".to_string()], vec![backend_ip.clone()]] {
            let live = target[0] == backend_ip;
            let t0 = rt.block_on(async {
                let mut api = client(&c).await;
                let req = pb::GetRequest {
                    kind: "endpoints".into(),
                    namespace: "default".into(),
                    name: name.into(),
                    linearizable: false,
                };
                let cur: Value = serde_json::from_str(&api.get(req).await.unwrap().into_inner().json).unwrap();
                let rv = cur["metadata"]["resourceVersion"].as_str().unwrap().to_string();
                let t0 = Instant::now();
                api.update(pb::ObjectRequest { json: endpoints(name, &target, Some(&rv)) }).await.unwrap();
                t0
            });
            if live {
                lat.push(until_answering_everywhere(&c, addr, t0));
            } else {
                wait_for("the dead endpoint programmed", Duration::from_secs(30), || {
                    table_has(&c, "10.250.255.1").then_some(())
                });
            }
        }
    }
    println!(
        "endpoint change → every node's rules: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(pct(&lat, 0.5)),
        ms(pct(&lat, 0.99)),
        ms(pct(&lat, 1.0))
    );

    println!("-- 3. one node's table");
    let listing = String::from_utf8_lossy(&c.hosts().exec(0, &["nft", "list", "ruleset"]).stdout).into_owned();
    println!("nft ruleset of host 0: {} lines, {} KiB", listing.lines().count(), listing.len() / 1024);
    let log = c.nodes[0].log();
    let field = |l: &str, name: &str| -> Option<u64> {
        let plain: String = l.chars().filter(|c| !c.is_control()).collect();
        let at = plain.find(name)? + name.len();
        let digits: String =
            plain[at..].chars().skip_while(|c| !c.is_ascii_digit()).take_while(|c| c.is_ascii_digit()).collect();
        digits.parse().ok()
    };
    // Rounds of one or two Services (the endpoint changes above), not the first build.
    let rounds: Vec<(u64, u64, u64)> = log
        .lines()
        .filter(|l| l.contains("proxy: rules updated"))
        .filter_map(|l| Some((field(l, "services")?, field(l, "lines")?, field(l, "apply_us")?)))
        .collect();
    let small: Vec<&(u64, u64, u64)> = rounds.iter().filter(|r| r.0 <= 2).collect();
    if let Some(last) = rounds.iter().max_by_key(|r| r.1) {
        println!("largest transaction on n1: {} lines, applied in {:.1} ms", last.1, last.2 as f64 / 1e3);
    }
    if !small.is_empty() {
        let apply: Vec<Duration> = small.iter().map(|r| Duration::from_micros(r.2)).collect();
        let lines: u64 = small.iter().map(|r| r.1).sum::<u64>() / small.len() as u64;
        println!(
            "one-Service update transactions on n1: {} rounds, ~{lines} lines each, nft apply p50 {:.1} ms, p99 {:.1} ms",
            small.len(),
            ms(pct(&apply, 0.5)),
            ms(pct(&apply, 0.99))
        );
    }

    println!("-- 4. DNS on one node ({dns_clients} closed-loop UDP clients, 5 s, names of random Services)");
    let ns = c.hosts().names[0].clone();
    let dns: SocketAddr = "10.96.0.10:53".parse().unwrap();
    let start = Instant::now() + Duration::from_millis(200);
    let threads: Vec<_> = (0..dns_clients)
        .map(|w| {
            let ns = ns.clone();
            std::thread::spawn(move || {
                enter(&ns);
                let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
                sock.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
                sock.connect(dns).unwrap();
                let mut lat = Vec::new();
                let mut failed = 0u64;
                let mut buf = [0u8; 1500];
                while Instant::now() < start {
                    std::thread::sleep(Duration::from_millis(1));
                }
                let end = start + Duration::from_secs(5);
                let mut id: u16 = (w as u16) << 12;
                while Instant::now() < end {
                    id = id.wrapping_add(1);
                    let name = format!("sim-{}.default.svc.cluster.local", (id as usize * 7919) % services);
                    let t0 = Instant::now();
                    sock.send(&dns_query(id, &name)).unwrap();
                    loop {
                        match sock.recv(&mut buf) {
                            Ok(n) if n >= 12 && buf[..2] == id.to_be_bytes() => {
                                // An answer with an address (ANCOUNT > 0), not an error.
                                if buf[3] & 0x0f == 0 && u16::from_be_bytes([buf[6], buf[7]]) > 0 {
                                    lat.push(t0.elapsed());
                                } else {
                                    failed += 1;
                                }
                                break;
                            }
                            Ok(_) => continue,
                            Err(_) => {
                                failed += 1;
                                break;
                            }
                        }
                    }
                }
                (lat, failed)
            })
        })
        .collect();
    let mut lat = Vec::new();
    let mut failed = 0;
    for t in threads {
        let (l, f) = t.join().unwrap();
        lat.extend(l);
        failed += f;
    }
    if lat.is_empty() {
        println!("DNS: no answers ({failed} failed)");
    } else {
        println!(
            "DNS: {:.0} queries/s answered, p50 {:.3} ms, p99 {:.3} ms ({failed} failed or timed out)",
            lat.len() as f64 / 5.0,
            ms(pct(&lat, 0.5)),
            ms(pct(&lat, 0.99))
        );
    }
    drop(c);
}
