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
        "dnat to ip saddr:40053",
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
/// say what happened: `Ok` with the address the endpoint saw the connection
/// come from, or the error kind.
fn connect(ns: &Netns, listen: Option<SocketAddr>, to: SocketAddr) -> Result<String, std::io::ErrorKind> {
    ns.enter(move || {
        let listener = listen.map(|a| TcpListener::bind(a).expect("bind the endpoint"));
        let mut conn = TcpStream::connect_timeout(&to, Duration::from_secs(3)).map_err(|e| e.kind())?;
        let listener = listener.expect("a connection needs a listener");
        let (mut server, peer) = listener.accept().expect("accept");
        server.write_all(peer.ip().to_string().as_bytes()).unwrap();
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
    assert!(connect(&ns, listen, "10.96.0.20:80".parse().unwrap()).is_ok());
    assert!(connect(&ns, listen, "10.244.1.2:30080".parse().unwrap()).is_ok());
    // Without endpoints the connection is refused at once, not left to time out.
    assert_eq!(connect(&ns, None, "10.96.0.30:80".parse().unwrap()), Err(std::io::ErrorKind::ConnectionRefused));
    // The endpoint gone (an incremental change): refused too.
    let none = build(&view, &[&svc, &empty], &[]);
    ns.nft().apply(&transaction(Some(&rs), &none)).await.expect("the change");
    assert_eq!(connect(&ns, None, "10.96.0.20:80".parse().unwrap()), Err(std::io::ErrorKind::ConnectionRefused));
}

/// Which of `listeners` (bound in the namespace) each of `n` connections to
/// `to` reaches.
fn spread(ns: &Netns, listeners: Vec<SocketAddr>, to: SocketAddr, n: usize) -> Vec<usize> {
    ns.enter(move || {
        let bound: Vec<TcpListener> = listeners.iter().map(|a| TcpListener::bind(a).expect("bind")).collect();
        bound.iter().for_each(|l| l.set_nonblocking(true).unwrap());
        (0..n)
            .map(|_| {
                let _conn = TcpStream::connect_timeout(&to, Duration::from_secs(3)).expect("connect");
                let deadline = std::time::Instant::now() + Duration::from_secs(3);
                loop {
                    if let Some(i) = bound.iter().position(|l| l.accept().is_ok()) {
                        return i;
                    }
                    assert!(std::time::Instant::now() < deadline, "no endpoint accepted");
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
            .collect()
    })
}

#[tokio::test]
async fn endpoints_are_picked_at_random_unless_the_client_has_affinity() {
    let ns = Netns::new("spread");
    ns.ip(&["link", "add", "ep0", "type", "veth", "peer", "name", "ep1"]);
    ns.ip(&["link", "set", "ep1", "up"]);
    ns.ip(&["addr", "add", "10.244.1.2/24", "dev", "ep0"]);
    ns.ip(&["addr", "add", "10.244.1.3/24", "dev", "ep0"]);
    ns.ip(&["link", "set", "ep0", "up"]);
    ns.ip(&["route", "add", "default", "dev", "ep0"]);
    let port = free_port(&ns, "10.244.1.2".parse().unwrap());
    let listeners: Vec<SocketAddr> = ["10.244.1.2", "10.244.1.3"]
        .iter()
        .map(|ip| SocketAddr::from((ip.parse::<Ipv4Addr>().unwrap(), port)))
        .collect();
    let eps = web_endpoints(&["10.244.1.2", "10.244.1.3"], port);
    let to: SocketAddr = "10.96.0.20:80".parse().unwrap();
    let random = web(json!({"clusterIP": "10.96.0.20", "ports": [{"name": "http", "port": 80}]}));
    let random_rules = build(&node(), &[&random], &[&eps]);
    ns.nft().apply(&transaction(None, &random_rules)).await.expect("the table");
    let picks = spread(&ns, listeners.clone(), to, 24);
    assert!(picks.contains(&0) && picks.contains(&1), "both endpoints answer: {picks:?}");
    let sticky = web(json!({"clusterIP": "10.96.0.20", "sessionAffinity": "ClientIP",
        "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}, "ports": [{"name": "http", "port": 80}]}));
    let sticky_rules = build(&node(), &[&sticky], &[&eps]);
    ns.nft().apply(&transaction(Some(&random_rules), &sticky_rules)).await.expect("affinity on");
    let picks = spread(&ns, listeners, to, 12);
    assert!(picks.iter().all(|p| *p == picks[0]), "one client, one endpoint: {picks:?}");
}

#[tokio::test]
async fn a_pod_reaches_itself_through_its_service() {
    // A node and a pod on it, joined by a veth pair: the pod's traffic to the
    // ClusterIP is routed through the node, whose rules send it back.
    let host = Netns::new("hairpin-node");
    let pod = Netns::new("hairpin-pod");
    host.ip(&["link", "add", "h0", "type", "veth", "peer", "name", "p0"]);
    host.ip(&["link", "set", "p0", "netns", &pod.0]);
    host.ip(&["addr", "add", "10.244.1.1/24", "dev", "h0"]);
    host.ip(&["link", "set", "h0", "up"]);
    host.enter(|| std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").expect("forwarding on"));
    pod.ip(&["addr", "add", "10.244.1.2/24", "dev", "p0"]);
    pod.ip(&["link", "set", "p0", "up"]);
    pod.ip(&["route", "add", "default", "via", "10.244.1.1"]);
    let port = free_port(&pod, "10.244.1.2".parse().unwrap());
    let svc = web(json!({"clusterIP": "10.96.0.20", "ports": [{"name": "http", "port": 80}]}));
    let rules = build(&node(), &[&svc], &[&web_endpoints(&["10.244.1.2"], port)]);
    host.nft().apply(&transaction(None, &rules)).await.expect("the table");
    let listen = Some(SocketAddr::from(([10, 244, 1, 2], port)));
    let to: SocketAddr = "10.96.0.20:80".parse().unwrap();
    assert_eq!(
        connect(&pod, listen, to).as_deref(),
        Ok("10.244.1.1"),
        "the pod reaches itself, its address masqueraded as the node's"
    );
    // Without the hairpin pair the reply never comes (the pod drops a packet
    // from its own address), so the connection times out.
    let mut without = rules.clone();
    without.sets.get_mut(super::rules::HAIRPIN).unwrap().elements.clear();
    host.nft().apply(&transaction(Some(&rules), &without)).await.expect("no hairpin");
    assert_eq!(connect(&pod, listen, to), Err(std::io::ErrorKind::TimedOut));
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
