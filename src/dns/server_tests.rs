//! The DNS server on loopback, asked over UDP and TCP as a pod's resolver
//! would: cluster names from a hand-fed snapshot, other names through a fake
//! upstream resolver the test runs on a random port.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use super::forward::Upstream;
use super::names::Names;
use super::server::SharedNames;
use super::DnsServer;
use crate::objects::network::ServiceNetwork;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn names(extra: &[serde_json::Value]) -> Names {
    let mut services = vec![
        json!({"metadata": {"namespace": "default", "name": "web"},
               "spec": {"clusterIP": "10.96.0.20", "ports": [{"name": "http", "port": 80}]}}),
        json!({"metadata": {"namespace": "default", "name": "db"},
               "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}}),
    ];
    services.extend(extra.iter().cloned());
    let services: Vec<k8s_openapi::api::core::v1::Service> =
        services.into_iter().map(|s| serde_json::from_value(s).unwrap()).collect();
    let endpoints: k8s_openapi::api::core::v1::Endpoints = serde_json::from_value(json!({
        "metadata": {"namespace": "default", "name": "db"}, "subsets": [{
            "addresses": [{"ip": "10.244.1.5", "hostname": "db-0"}, {"ip": "10.244.2.7", "hostname": "db-1"}],
            "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]}]}))
    .unwrap();
    Names::build(ServiceNetwork::default(), 1, &services, [&endpoints])
}

/// A resolver of the "host": UDP and TCP on one random loopback port.
/// `outside.example` has an address; `big.example` answers truncated over
/// UDP and in full (30 addresses) over TCP; `down.example` never answers.
struct FakeUpstream {
    addr: SocketAddr,
    asked: Arc<AtomicUsize>,
}

fn upstream_answer(query: &Message, tcp: bool) -> Option<Message> {
    let q = query.queries.first()?;
    let mut reply = Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.add_query(q.clone());
    let a = |last: u8| Record::from_rdata(q.name().clone(), 60, RData::A(Ipv4Addr::new(192, 0, 2, last).into()));
    match q.name().to_ascii().as_str() {
        "outside.example." => {
            reply.add_answer(a(7));
        }
        "big.example." if tcp => {
            reply.add_answers((1..=30).map(a));
        }
        "big.example." => reply.metadata.truncation = true,
        "down.example." => return None,
        _ => reply.metadata.response_code = ResponseCode::NXDomain,
    }
    Some(reply)
}

impl FakeUpstream {
    async fn start() -> FakeUpstream {
        let (udp, tcp) = loop {
            let udp = UdpSocket::bind((LOOPBACK, 0)).await.unwrap();
            let port = udp.local_addr().unwrap().port();
            if let Ok(tcp) = TcpListener::bind((LOOPBACK, port)).await {
                break (udp, tcp);
            }
        };
        let addr = udp.local_addr().unwrap();
        let asked = Arc::new(AtomicUsize::new(0));
        let count = asked.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok((n, from)) = udp.recv_from(&mut buf).await {
                count.fetch_add(1, Ordering::SeqCst);
                let Ok(q) = Message::from_vec(&buf[..n]) else { continue };
                if let Some(r) = upstream_answer(&q, false) {
                    let _ = udp.send_to(&r.to_vec().unwrap(), from).await;
                }
            }
        });
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = tcp.accept().await {
                tokio::spawn(async move {
                    let Ok(len) = conn.read_u16().await else { return };
                    let mut body = vec![0u8; len as usize];
                    if conn.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    let Some(r) = Message::from_vec(&body).ok().and_then(|q| upstream_answer(&q, true)) else { return };
                    let bytes = r.to_vec().unwrap();
                    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
                    framed.extend(bytes);
                    let _ = conn.write_all(&framed).await;
                });
            }
        });
        FakeUpstream { addr, asked }
    }
}

fn question(name: &str, qtype: RecordType, edns: bool) -> Message {
    let mut m = Message::query();
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    if edns {
        let mut e = Edns::new();
        e.set_max_payload(1232);
        m.set_edns(e);
    }
    m
}

async fn ask_udp(port: u16, name: &str, qtype: RecordType) -> Message {
    let sock = UdpSocket::bind((LOOPBACK, 0)).await.unwrap();
    sock.connect((LOOPBACK, port)).await.unwrap();
    let q = question(name, qtype, false);
    sock.send(&q.to_vec().unwrap()).await.unwrap();
    let mut buf = vec![0u8; 65535];
    let n = tokio::time::timeout(Duration::from_secs(5), sock.recv(&mut buf)).await.expect("an answer").unwrap();
    let m = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(m.metadata.id, q.metadata.id);
    m
}

async fn ask_tcp(port: u16, name: &str, qtype: RecordType) -> Message {
    let mut conn = TcpStream::connect((LOOPBACK, port)).await.unwrap();
    let q = question(name, qtype, true).to_vec().unwrap();
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend(q);
    conn.write_all(&framed).await.unwrap();
    let read = async {
        let len = conn.read_u16().await.unwrap();
        let mut body = vec![0u8; len as usize];
        conn.read_exact(&mut body).await.unwrap();
        body
    };
    let body = tokio::time::timeout(Duration::from_secs(5), read).await.expect("an answer");
    Message::from_vec(&body).unwrap()
}

fn rendered(records: &[Record]) -> Vec<String> {
    records.iter().map(|r| r.to_string()).collect()
}

#[tokio::test]
async fn cluster_names_are_answered_and_others_forwarded() {
    let upstream = FakeUpstream::start().await;
    let shared = SharedNames::new(names(&[]));
    let up = Upstream { servers: vec![upstream.addr], timeout: Duration::from_millis(300) };
    let dns = DnsServer::start(LOOPBACK, shared.clone(), up).unwrap();
    let port = dns.port;

    // A over UDP and over TCP: authoritative, TTL 5.
    for m in [
        ask_udp(port, "web.default.svc.cluster.local.", RecordType::A).await,
        ask_tcp(port, "web.default.svc.cluster.local.", RecordType::A).await,
    ] {
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.metadata.authoritative);
        assert_eq!(rendered(&m.answers), vec!["web.default.svc.cluster.local. 5 IN A 10.96.0.20"]);
    }
    // A StatefulSet pod's name.
    let m = ask_udp(port, "db-1.db.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(rendered(&m.answers), vec!["db-1.db.default.svc.cluster.local. 5 IN A 10.244.2.7"]);
    // SRV of a headless Service: one per pod, their addresses alongside.
    let m = ask_udp(port, "_pg._tcp.db.default.svc.cluster.local.", RecordType::SRV).await;
    assert_eq!(
        rendered(&m.answers),
        vec![
            "_pg._tcp.db.default.svc.cluster.local. 5 IN SRV 0 50 5432 db-0.db.default.svc.cluster.local.",
            "_pg._tcp.db.default.svc.cluster.local. 5 IN SRV 0 50 5432 db-1.db.default.svc.cluster.local.",
        ]
    );
    assert_eq!(
        rendered(&m.additionals),
        vec![
            "db-0.db.default.svc.cluster.local. 5 IN A 10.244.1.5",
            "db-1.db.default.svc.cluster.local. 5 IN A 10.244.2.7"
        ]
    );
    // PTR of a ClusterIP.
    let m = ask_udp(port, "20.0.96.10.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!(rendered(&m.answers), vec!["20.0.96.10.in-addr.arpa. 5 IN PTR web.default.svc.cluster.local."]);
    // An unknown cluster name: NXDOMAIN with the SOA.
    let m = ask_udp(port, "nope.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(m.answers.is_empty());
    assert_eq!(m.authorities.len(), 1);
    assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
    assert_eq!(m.authorities[0].name.to_ascii(), "cluster.local.");
    assert_eq!(upstream.asked.load(Ordering::SeqCst), 0, "cluster names are never forwarded");

    // Other names go to the host's resolver.
    let m = ask_udp(port, "outside.example.", RecordType::A).await;
    assert_eq!((m.metadata.response_code, m.metadata.authoritative), (ResponseCode::NoError, false));
    assert_eq!(rendered(&m.answers), vec!["outside.example. 60 IN A 192.0.2.7"]);
    let m = ask_udp(port, "unknown.example.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    // Truncated upstream over UDP: asked again over TCP; the whole answer comes over our TCP.
    let m = ask_tcp(port, "big.example.", RecordType::A).await;
    assert_eq!(m.answers.len(), 30);
    let m = ask_udp(port, "big.example.", RecordType::A).await;
    assert!(m.metadata.truncation, "30 addresses do not fit 512 bytes: the client is told to use TCP");
    // An upstream that does not answer: SERVFAIL (after the timeout).
    let m = ask_udp(port, "down.example.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert!(upstream.asked.load(Ordering::SeqCst) >= 5);

    // A new snapshot is answered from at once.
    let extra = json!({"metadata": {"namespace": "shop", "name": "cart"}, "spec": {"clusterIP": "10.96.3.3"}});
    shared.set(names(&[extra]));
    let m = ask_udp(port, "cart.shop.svc.cluster.local.", RecordType::A).await;
    assert_eq!(rendered(&m.answers), vec!["cart.shop.svc.cluster.local. 5 IN A 10.96.3.3"]);

    // Once shut down, the port is free again.
    dns.shutdown().await;
    assert!(TcpListener::bind((LOOPBACK, port)).await.is_ok(), "the TCP port is released");
}
