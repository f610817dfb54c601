//! The Kubernetes REST API under load, on one node holding 10,000 pods (never
//! scheduled: their scheduler does not exist, so no containers run):
//! LIST of all pods (p50/p99, bytes/s), GET p99, and 1,000 concurrent watches
//! each receiving one update (delivery p99, from the write's start).
//! Goals: LIST 10,000 pods ≤ 300 ms p99; watch delivery p99 ≤ 50 ms.
//! `BENCH_PODS` and `BENCH_WATCHES` change the sizes.

#[path = "../tests/fixtures/mod.rs"]
mod fixtures;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clusterd::api::pb;
use clusterd::cluster::config::AdminConfig;
use clusterd_raft::pki;
use fixtures::{ms, pct, Cluster};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http2::SendRequest;
use serde_json::{json, Value};

type Conn = SendRequest<Empty<Bytes>>;

/// An HTTP/2 connection to the REST API with the admin's certificate.
async fn connect(cfg: &AdminConfig, addr: &str) -> Conn {
    let id = cfg.identity().unwrap();
    let tls = pki::client_config(&cfg.certificate_authority, Some(&id), &[b"h2"]).unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let name = rustls_pki_types::ServerName::try_from(pki::NODE_SERVER_NAME).unwrap();
    let stream = tokio_rustls::TlsConnector::from(Arc::new(tls)).connect(name, tcp).await.unwrap();
    let (send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    send
}

fn request(path: &str) -> hyper::Request<Empty<Bytes>> {
    hyper::Request::get(format!("https://clusterd{path}")).body(Empty::new()).unwrap()
}

/// GET `path`; the body's bytes.
async fn get(conn: &mut Conn, path: &str) -> Bytes {
    conn.ready().await.unwrap();
    let resp = conn.send_request(request(path)).await.unwrap();
    assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
    resp.into_body().collect().await.unwrap().to_bytes()
}

fn pod(name: &str) -> String {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "bench", "tier": "load"}},
        "spec": {
            "schedulerName": "bench-nobody",
            "containers": [{
                "name": "c", "image": "clusterd.local/busybox:v1", "command": ["sleep", "3600"],
                "env": [{"name": "A", "value": "some value"}, {"name": "B", "value": "another value"}],
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
            }],
        },
    })
    .to_string()
}

fn main() {
    clusterd_raft::pki::install_default_provider();
    let pods: usize = std::env::var("BENCH_PODS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let watches: usize = std::env::var("BENCH_WATCHES").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000);
    let c = Cluster::init(&[]);
    let cfg = AdminConfig::load(&c.config).unwrap();
    let addr = c.nodes[0].api_addr.clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        println!("kubeapi bench: one node on loopback, {pods} pods stored, {watches} watches");
        let grpc = clusterd::client::connect(&cfg, std::slice::from_ref(&addr)).await.unwrap().0;
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for w in 0..32 {
            let mut api = grpc.clone();
            tasks.push(tokio::spawn(async move {
                for i in (w..pods).step_by(32) {
                    api.create(pb::ObjectRequest { json: pod(&format!("p-{i:05}")) }).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        println!("  stored {pods} pods in {:.1} s", t0.elapsed().as_secs_f64());

        let mut conn = connect(&cfg, &addr).await;
        let mut lists = Vec::new();
        let mut bytes = 0usize;
        let mut stored = Vec::new();
        for _ in 0..20 {
            let t = Instant::now();
            let body = get(&mut conn, "/api/v1/pods").await;
            lists.push(t.elapsed());
            bytes = body.len();
            let v: Value = serde_json::from_slice(&body).unwrap();
            stored = v["items"].as_array().unwrap().clone();
            assert_eq!(stored.len(), pods);
        }
        let p50 = pct(&lists, 0.5);
        println!(
            "  LIST {pods} pods: p50 {:.0} ms, p99 {:.0} ms (goal ≤ 300), {:.1} MB each, {:.0} MB/s at p50",
            ms(p50),
            ms(pct(&lists, 0.99)),
            bytes as f64 / 1e6,
            bytes as f64 / 1e6 / p50.as_secs_f64()
        );
        let mut tables = Vec::new();
        for _ in 0..5 {
            conn.ready().await.unwrap();
            let mut req = request("/api/v1/namespaces/default/pods");
            req.headers_mut().insert("accept", "application/json;as=Table;v=v1;g=meta.k8s.io".parse().unwrap());
            let t = Instant::now();
            let resp = conn.send_request(req).await.unwrap();
            let _ = resp.into_body().collect().await.unwrap();
            tables.push(t.elapsed());
        }
        println!("  LIST as a Table (kubectl get pods): p50 {:.0} ms", ms(pct(&tables, 0.5)));

        let mut gets = Vec::new();
        for i in 0..2000 {
            let t = Instant::now();
            get(&mut conn, &format!("/api/v1/namespaces/default/pods/p-{:05}", (i * 7919) % pods)).await;
            gets.push(t.elapsed());
        }
        println!("  GET one pod: p50 {:.2} ms, p99 {:.2} ms", ms(pct(&gets, 0.5)), ms(pct(&gets, 0.99)));

        // Watches: one per pod, by name, spread over connections of 100 streams.
        let watches = watches.min(pods);
        let rv = {
            let v: Value = serde_json::from_slice(&get(&mut conn, "/api/v1/namespaces/default/pods?limit=1").await).unwrap();
            v["metadata"]["resourceVersion"].as_str().unwrap().to_string()
        };
        let sent: Arc<Vec<std::sync::OnceLock<Instant>>> = Arc::new((0..watches).map(|_| Default::default()).collect());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel();
        let mut conns = Vec::new();
        for _ in 0..watches.div_ceil(100) {
            conns.push(connect(&cfg, &addr).await);
        }
        for i in 0..watches {
            let mut conn = conns[i / 100].clone();
            let (tx, ready_tx, sent) = (tx.clone(), ready_tx.clone(), sent.clone());
            let path = format!(
                "/api/v1/namespaces/default/pods?watch=true&resourceVersion={rv}&fieldSelector=metadata.name%3Dp-{i:05}"
            );
            tokio::spawn(async move {
                conn.ready().await.unwrap();
                let resp = conn.send_request(request(&path)).await.unwrap();
                let _ = ready_tx.send(());
                let mut body = resp.into_body();
                while let Some(frame) = body.frame().await {
                    let Ok(frame) = frame else { return };
                    if let Some(data) = frame.data_ref() {
                        if data.windows(8).any(|w| w == b"MODIFIED") {
                            let at = Instant::now();
                            let _ = tx.send(at - *sent[i].get().unwrap());
                            return;
                        }
                    }
                }
            });
        }
        for _ in 0..watches {
            ready_rx.recv().await.unwrap();
        }
        let updates: Arc<Vec<String>> = Arc::new(
            stored[..watches]
                .iter()
                .map(|p| {
                    let mut p = p.clone();
                    p["metadata"]["labels"]["touched"] = json!("yes");
                    p.to_string()
                })
                .collect(),
        );
        let t = Instant::now();
        let mut writers = Vec::new();
        for w in 0..16 {
            let (mut api, sent, updates) = (grpc.clone(), sent.clone(), updates.clone());
            writers.push(tokio::spawn(async move {
                for i in (w..watches).step_by(16) {
                    let _ = sent[i].set(Instant::now());
                    api.update(pb::ObjectRequest { json: updates[i].clone() }).await.unwrap();
                }
            }));
        }
        for w in writers {
            w.await.unwrap();
        }
        let mut delivered = Vec::new();
        while delivered.len() < watches {
            match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
                Ok(Some(d)) => delivered.push(d),
                _ => break,
            }
        }
        println!(
            "  {watches} watches, one update each ({} writes in {:.2} s): delivered {}, p50 {:.1} ms, p99 {:.1} ms (goal ≤ 50)",
            watches,
            t.elapsed().as_secs_f64(),
            delivered.len(),
            ms(pct(&delivered, 0.5)),
            ms(pct(&delivered, 0.99))
        );
    });
    drop(c);
}
