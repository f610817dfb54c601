//! The generated rules against the real kernel, in a network namespace each
//! test makes (and removes): `nft` accepts the full table and the incremental
//! transactions, and a connection to a ClusterIP or a NodePort reaches the
//! endpoint (or is refused when there is none). Needs root, as `make test` runs.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Endpoints, Service};
use serde_json::json;

use super::diff::transaction;
use super::nft::Nft;
use super::rules::tests::{endpoints, many, node, service};
use super::rules::{build, NodeView, Ruleset};

/// A network namespace for one test, deleted when dropped.
struct Netns(String);

impl Netns {
    fn new(label: &str) -> Netns {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!("clusterd-proxytest-{}-{label}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst));
        ip(&["netns", "add", &name]);
        let ns = Netns(name);
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    fn ip(&self, args: &[&str]) {
        let mut all = vec!["netns", "exec", &self.0, "ip"];
        all.extend_from_slice(args);
        ip(&all);
    }

    fn nft(&self) -> Nft {
        Nft::in_netns(&self.0)
    }

    /// Run `f` on a thread inside the namespace.
    fn enter<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/var/run/netns/{}", self.0);
        std::thread::spawn(move || {
            let fd = std::fs::File::open(&path).expect("the namespace's file");
            nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
        .join()
        .expect("the thread in the namespace")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip runs");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

fn web(spec: serde_json::Value) -> Service {
    service("web", spec)
}

fn web_endpoints(ips: &[&str], port: u16) -> Endpoints {
    let addrs: Vec<(&str, &str, bool)> = ips.iter().map(|ip| (*ip, "n1", true)).collect();
    endpoints("web", &addrs, &[("http", port, "TCP")])
}

/// A model with every kind of rule: several endpoints, a NodePort, ClientIP
/// affinity, a Service without endpoints, the DNS redirect.
fn model(view: &NodeView, web_ips: &[&str]) -> Ruleset {
    let svc = web(json!({"clusterIP": "10.96.0.20", "type": "NodePort", "sessionAffinity": "ClientIP",
        "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}));
    let empty = service("empty", json!({"clusterIP": "10.96.0.30", "ports": [{"name": "http", "port": 80}]}));
    let plain = service("plain", json!({"clusterIP": "10.96.0.40", "ports": [{"name": "http", "port": 80}]}));
    let eps = web_endpoints(web_ips, 8080);
    let plain_eps =
        endpoints("plain", &[("10.244.1.9", "n1", true), ("10.244.3.9", "n3", true)], &[("http", 80, "TCP")]);
    build(view, &[&svc, &empty, &plain], &[&eps, &plain_eps])
}

#[tokio::test]
async fn nft_accepts_the_table_and_its_changes() {
    let ns = Netns::new("apply");
    let nft = ns.nft();
    let mut view = node();
    view.dns = Some(("10.96.0.10".parse().unwrap(), 40053));
    let three = model(&view, &["10.244.1.2", "10.244.1.3", "10.244.2.4"]);
    nft.apply(&transaction(None, &three)).await.expect("the full table");
    let listed = nft.list_table(&view.table).await.unwrap();
    for want in [
        "map service-ips",
        "map service-nodeports",
        "10.96.0.20 . tcp . 80 : goto svc-",
        "tcp . 30080 : goto ext-",
        "10.96.0.30 . tcp . 80 : goto reject-chain",
        "numgen random mod 3 vmap",
        "dnat to 10.244.2.4:8080",
        "to numgen random mod 2 map { 0 : 10.244.1.9 . 80, 1 : 10.244.3.9 . 80 }",
        "10.244.1.9 . 10.244.1.9",
        "redirect to :40053",
        "flags dynamic,timeout",
    ] {
        assert!(listed.contains(want), "{want} missing from\n{listed}");
    }
    // A 4th endpoint, then the Service deleted: each an incremental transaction.
    let four = model(&view, &["10.244.1.2", "10.244.1.3", "10.244.2.4", "10.244.2.5"]);
    let tx = transaction(Some(&three), &four);
    assert!(!tx.starts_with("add table"), "incremental:\n{tx}");
    nft.apply(&tx).await.expect("adding an endpoint");
    assert!(nft.list_table(&view.table).await.unwrap().contains("numgen random mod 4 vmap"));
    let gone = build(&view, &[], &[]);
    nft.apply(&transaction(Some(&four), &gone)).await.expect("deleting the Service");
    let listed = nft.list_table(&view.table).await.unwrap();
    assert!(!listed.contains("svc-") && !listed.contains("ep-") && !listed.contains("aff-"), "{listed}");
    assert!(!listed.contains("10.96.0.20") && !listed.contains("10.244.1.9"), "{listed}");
    // A restart: the table rebuilt over the one in place, in one transaction.
    nft.apply(&transaction(None, &three)).await.expect("the rebuild");
    assert!(nft.list_table(&view.table).await.unwrap().contains("numgen random mod 3 vmap"));
    // And `reset`'s delete, twice (a missing table is fine).
    for _ in 0..2 {
        nft.apply(&super::diff::delete_table(&view.table)).await.expect("delete");
    }
    assert!(nft.list_table(&view.table).await.is_err());
}

/// Connect to `to` from inside the namespace (to a listener on `listen`) and
/// say what happened: `Ok` with the server's greeting, or the error kind.
fn connect(ns: &Netns, listen: Option<SocketAddr>, to: SocketAddr) -> Result<String, std::io::ErrorKind> {
    ns.enter(move || {
        let listener = listen.map(|a| TcpListener::bind(a).expect("bind the endpoint"));
        let mut conn = TcpStream::connect_timeout(&to, Duration::from_secs(3)).map_err(|e| e.kind())?;
        let listener = listener.expect("a connection needs a listener");
        let (mut server, _) = listener.accept().expect("accept");
        server.write_all(b"hello from the endpoint").unwrap();
        drop(server);
        let mut got = String::new();
        conn.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        conn.read_to_string(&mut got).map_err(|e| e.kind())?;
        Ok(got)
    })
}

/// A free TCP port on `ip` inside the namespace.
fn free_port(ns: &Netns, ip: Ipv4Addr) -> u16 {
    ns.enter(move || TcpListener::bind((ip, 0)).unwrap().local_addr().unwrap().port())
}

#[tokio::test]
async fn a_cluster_ip_and_a_node_port_reach_the_endpoint() {
    let ns = Netns::new("traffic");
    // The endpoint's address is on a veth link, which also carries the default route.
    ns.ip(&["link", "add", "ep0", "type", "veth", "peer", "name", "ep1"]);
    ns.ip(&["link", "set", "ep1", "up"]);
    ns.ip(&["addr", "add", "10.244.1.2/24", "dev", "ep0"]);
    ns.ip(&["link", "set", "ep0", "up"]);
    ns.ip(&["route", "add", "default", "dev", "ep0"]);
    let endpoint: Ipv4Addr = "10.244.1.2".parse().unwrap();
    let port = free_port(&ns, endpoint);
    let view = node();
    let svc = web(json!({"clusterIP": "10.96.0.20", "type": "NodePort",
        "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}));
    let empty = service("empty", json!({"clusterIP": "10.96.0.30", "ports": [{"name": "http", "port": 80}]}));
    let eps = web_endpoints(&["10.244.1.2"], port);
    let rs = build(&view, &[&svc, &empty], &[&eps]);
    ns.nft().apply(&transaction(None, &rs)).await.expect("the table");
    let listen = Some(SocketAddr::from((endpoint, port)));
    assert_eq!(connect(&ns, listen, "10.96.0.20:80".parse().unwrap()).as_deref(), Ok("hello from the endpoint"));
    assert_eq!(connect(&ns, listen, "10.244.1.2:30080".parse().unwrap()).as_deref(), Ok("hello from the endpoint"));
    // Without endpoints the connection is refused at once, not left to time out.
    assert_eq!(connect(&ns, None, "10.96.0.30:80".parse().unwrap()), Err(std::io::ErrorKind::ConnectionRefused));
    // The endpoint gone (an incremental change): refused too.
    let none = build(&view, &[&svc, &empty], &[]);
    ns.nft().apply(&transaction(Some(&rs), &none)).await.expect("the change");
    assert_eq!(connect(&ns, None, "10.96.0.20:80".parse().unwrap()), Err(std::io::ErrorKind::ConnectionRefused));
}

/// What the kernel side of one endpoint change costs at 1,000 Services × 10
/// endpoints: the full table applied, then a one-endpoint transaction.
#[tokio::test]
#[ignore = "a measurement: cargo test --lib proxy::netns -- --ignored --nocapture"]
async fn scale_apply_1000_services_of_10_endpoints() {
    let ns = Netns::new("scale");
    let nft = ns.nft();
    let (s0, e0) = many(1000, 10, None);
    let (s1, e1) = many(1000, 10, Some(500));
    let before = build(&node(), &s0.iter().collect::<Vec<_>>(), &e0.iter().collect::<Vec<_>>());
    let after = build(&node(), &s1.iter().collect::<Vec<_>>(), &e1.iter().collect::<Vec<_>>());
    let started = std::time::Instant::now();
    nft.apply(&transaction(None, &before)).await.expect("the full table");
    let full = started.elapsed();
    let tx = transaction(Some(&before), &after);
    let started = std::time::Instant::now();
    nft.apply(&tx).await.expect("one endpoint more");
    let one = started.elapsed();
    let started = std::time::Instant::now();
    nft.apply(&transaction(Some(&after), &before)).await.expect("one endpoint less");
    let back = started.elapsed();
    println!("nft: full table {full:?}; one endpoint added {one:?}, removed {back:?}");
}
