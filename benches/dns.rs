//! Cluster DNS throughput and latency on one node: the DNS server on
//! loopback answering from 1,000 Services (900 with a ClusterIP, 100 headless
//! with 10 ready endpoints each: simulated Endpoints, no pods), asked by N
//! concurrent UDP clients (each waits for its answer before the next
//! question) for a fixed time. Prints queries/s and latency percentiles;
//! asserts nothing. Goal (issue 13): ≥ 20,000 queries/s with p99 ≤ 2 ms.
//!
//! `cargo bench --bench dns`; `BENCH_DNS_CLIENTS` (default 32) and
//! `BENCH_DNS_SECS` (default 5) set the clients and the duration. Server and
//! clients share the machine's cores (two runtimes of two threads each).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};
use serde_json::json;

use clusterd::dns::forward::Upstream;
use clusterd::dns::names::Names;
use clusterd::dns::server::SharedNames;
use clusterd::dns::DnsServer;
use clusterd::objects::network::ServiceNetwork;

const SERVICES: usize = 1000;
const HEADLESS: usize = 100;
const ENDPOINTS: usize = 10;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn names() -> Names {
    let mut services = Vec::new();
    let mut endpoints = Vec::new();
    for i in 0..SERVICES {
        let name = format!("svc-{i}");
        let headless = i < HEADLESS;
        let ip = if headless { "None".to_string() } else { format!("10.96.{}.{}", i / 250, i % 250 + 1) };
        services.push(
            serde_json::from_value::<k8s_openapi::api::core::v1::Service>(json!({
                "metadata": {"namespace": "bench", "name": name},
                "spec": {"clusterIP": ip, "ports": [{"name": "http", "port": 80}]}}))
            .unwrap(),
        );
        let addresses: Vec<_> = (0..ENDPOINTS)
            .map(|e| json!({"ip": format!("10.244.{}.{}", i % 200, e * 20 + i / 200 + 1), "hostname": format!("{name}-{e}")}))
            .collect();
        endpoints.push(
            serde_json::from_value::<k8s_openapi::api::core::v1::Endpoints>(json!({
                "metadata": {"namespace": "bench", "name": name},
                "subsets": [{"addresses": addresses, "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]}))
            .unwrap(),
        );
    }
    Names::build(ServiceNetwork::default(), 1, &services, &endpoints)
}

/// The wire form of `A svc-i.bench.svc.cluster.local`, for each Service.
fn questions() -> Vec<Vec<u8>> {
    (0..SERVICES)
        .map(|i| {
            let mut m = Message::query();
            m.metadata.recursion_desired = true;
            let name = Name::from_ascii(format!("svc-{i}.bench.svc.cluster.local.")).unwrap();
            m.add_query(Query::query(name, RecordType::A));
            m.to_vec().unwrap()
        })
        .collect()
}

struct ClientResult {
    latencies: Vec<Duration>,
    lost: u64,
}

async fn client(port: u16, questions: Arc<Vec<Vec<u8>>>, until: Instant, seed: usize) -> ClientResult {
    let sock = tokio::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    sock.connect((Ipv4Addr::LOCALHOST, port)).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let mut out = ClientResult { latencies: Vec::new(), lost: 0 };
    let mut i = seed;
    let mut id: u16 = (seed as u16).wrapping_mul(7919);
    while Instant::now() < until {
        i = (i * 31 + 17) % questions.len();
        id = id.wrapping_add(1);
        let mut q = questions[i].clone();
        q[..2].copy_from_slice(&id.to_be_bytes());
        let began = Instant::now();
        sock.send(&q).await.unwrap();
        let answered = tokio::time::timeout(Duration::from_secs(1), async {
            loop {
                let n = sock.recv(&mut buf).await.unwrap();
                if n >= 2 && buf[..2] == id.to_be_bytes() {
                    return buf[3] & 0x0f; // RCODE
                }
            }
        })
        .await;
        match answered {
            Ok(0) => out.latencies.push(began.elapsed()),
            _ => out.lost += 1,
        }
    }
    out
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn main() {
    let clients = env_or("BENCH_DNS_CLIENTS", 32) as usize;
    let secs = env_or("BENCH_DNS_SECS", 5);
    let server_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let client_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();

    let began = Instant::now();
    let snapshot = names();
    println!(
        "dns bench: {SERVICES} Services ({HEADLESS} headless × {ENDPOINTS} endpoints), built in {:?}",
        began.elapsed()
    );
    let dns = server_rt.block_on(async {
        let upstream = Upstream { servers: Vec::new(), timeout: Duration::from_secs(1) };
        DnsServer::start(IpAddr::V4(Ipv4Addr::LOCALHOST), SharedNames::new(snapshot), upstream).unwrap()
    });
    let port = dns.port;
    let questions = Arc::new(questions());

    // Warm up (sockets, caches) for half a second.
    let warm = Instant::now() + Duration::from_millis(500);
    client_rt.block_on(async {
        let tasks: Vec<_> =
            (0..clients).map(|c| tokio::spawn(client(port, questions.clone(), warm, c * 101))).collect();
        for t in tasks {
            t.await.unwrap();
        }
    });

    let start = Instant::now();
    let until = start + Duration::from_secs(secs);
    let results: Vec<ClientResult> = client_rt.block_on(async {
        let tasks: Vec<_> =
            (0..clients).map(|c| tokio::spawn(client(port, questions.clone(), until, c * 101 + 5))).collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    let elapsed = start.elapsed();
    let lost: u64 = results.iter().map(|r| r.lost).sum();
    let mut lat: Vec<Duration> = results.into_iter().flat_map(|r| r.latencies).collect();
    lat.sort();
    let qps = lat.len() as f64 / elapsed.as_secs_f64();
    println!(
        "dns bench: {clients} UDP clients for {:.1}s: {} answers, {qps:.0} queries/s, lost {lost}",
        elapsed.as_secs_f64(),
        lat.len()
    );
    println!(
        "dns bench: latency p50 {:?}  p90 {:?}  p99 {:?}  p99.9 {:?}  max {:?}",
        percentile(&lat, 0.50),
        percentile(&lat, 0.90),
        percentile(&lat, 0.99),
        percentile(&lat, 0.999),
        lat.last().copied().unwrap_or_default()
    );
    println!(
        "dns bench: goal ≥ 20000 q/s with p99 ≤ 2 ms: {}",
        if qps >= 20_000.0 && percentile(&lat, 0.99) <= Duration::from_millis(2) { "met" } else { "not met" }
    );
    server_rt.block_on(dns.shutdown());
}
