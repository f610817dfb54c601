//! Cluster DNS on a real node: Services and hand-written Endpoints stored
//! through the API are answered by the node's DNS server within moments, and
//! a deleted Service's name is gone; a pod's containers get the cluster's
//! resolver settings, their hosts file and the Service variables. The pod
//! test needs root and `make images`.

mod fixtures;

use std::net::{Ipv4Addr, UdpSocket};
use std::time::Duration;

use fixtures::{image, step, wait_for, Cluster};
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

/// The DNS port node `n1` logged at start (`dns: serving … port=P`).
fn dns_port(log: &str) -> Option<u16> {
    let line = log.lines().find(|l| l.contains("dns: serving the cluster's names"))?;
    // Drop colour codes, then read `port=P`.
    let mut plain = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    let rest = &plain[plain.find("port=")? + 5..];
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// Ask the node's server; the answers as `type data` strings, and the code.
fn ask(port: u16, name: &str, qtype: RecordType) -> (ResponseCode, Vec<String>) {
    let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut q = Message::query();
    q.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    sock.send_to(&q.to_vec().unwrap(), (Ipv4Addr::LOCALHOST, port)).unwrap();
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).expect("an answer from the node's DNS server");
    let m = Message::from_vec(&buf[..n]).unwrap();
    let answers = m.answers.iter().map(|r| format!("{} {}", r.record_type(), r.data)).collect();
    (m.metadata.response_code, answers)
}

#[test]
fn services_and_endpoints_are_answered_by_the_nodes_dns() {
    let mut c = Cluster::init(&[]);
    c.wait_serving(0);
    let port = wait_for("the DNS port in the log", Duration::from_secs(30), || dns_port(&c.nodes[0].log()));

    step("a Service with a ClusterIP, a headless one with Endpoints of two named pods");
    let out = c.apply(
        r#"apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: 10.96.0.50
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: default}
spec:
  clusterIP: None
  ports: [{name: pg, port: 5432}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: db, namespace: default}
subsets:
- addresses:
  - {ip: 10.244.0.5, hostname: db-0}
  - {ip: 10.244.0.6, hostname: db-1}
  ports: [{name: pg, port: 5432, protocol: TCP}]
"#,
    );
    assert!(out.status.success(), "apply: {}", String::from_utf8_lossy(&out.stderr));

    let name = "web.default.svc.cluster.local.";
    wait_for("the Service's name", Duration::from_secs(10), || {
        (ask(port, name, RecordType::A) == (ResponseCode::NoError, vec!["A 10.96.0.50".into()])).then_some(())
    });
    assert_eq!(
        ask(port, "db-1.db.default.svc.cluster.local.", RecordType::A),
        (ResponseCode::NoError, vec!["A 10.244.0.6".into()])
    );
    assert_eq!(
        ask(port, "_pg._tcp.db.default.svc.cluster.local.", RecordType::SRV),
        (
            ResponseCode::NoError,
            vec![
                "SRV 0 50 5432 db-0.db.default.svc.cluster.local.".into(),
                "SRV 0 50 5432 db-1.db.default.svc.cluster.local.".into()
            ]
        )
    );
    assert_eq!(
        ask(port, "50.0.96.10.in-addr.arpa.", RecordType::PTR),
        (ResponseCode::NoError, vec!["PTR web.default.svc.cluster.local.".into()])
    );
    assert_eq!(ask(port, "nope.default.svc.cluster.local.", RecordType::A).0, ResponseCode::NXDomain);

    step("the Service deleted: its name is gone");
    c.ok(&["delete", "service", "web"]);
    wait_for("the name to go", Duration::from_secs(10), || {
        (ask(port, name, RecordType::A).0 == ResponseCode::NXDomain).then_some(())
    });
}

fn exec(c: &Cluster, pod: &str, cmd: &[&str]) -> String {
    let mut args = vec!["exec", pod, "--"];
    args.extend(cmd);
    let out = c.cli(&args);
    assert!(out.status.success(), "exec {cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_pods_containers_get_resolv_conf_hosts_and_service_variables() {
    let c = Cluster::init(&[]);
    c.ok(&["image", "load", &image("busybox-v1.tar")]);
    step("a Service in the pod's namespace, then a pod with a subdomain and host aliases");
    let svc = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\nspec:\n  clusterIP: 10.96.0.60\n  ports: [{name: http, port: 80}]\n";
    assert!(c.apply(svc).status.success());
    let pod = r#"apiVersion: v1
kind: Pod
metadata: {name: web-0, namespace: default}
spec:
  hostname: web-0
  subdomain: web
  terminationGracePeriodSeconds: 1
  hostAliases:
  - {ip: 10.1.2.3, hostnames: [legacy.example, old.example]}
  containers:
  - name: app
    image: clusterd.local/busybox:v1
    command: ["sh", "-c", "sleep 3600"]
"#;
    assert!(c.apply(pod).status.success());
    let ip = wait_for("the pod to run", Duration::from_secs(60), || {
        let out = c.cli(&["get", "pod", "web-0", "-o", "json"]);
        let p: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        (p["status"]["phase"] == "Running").then(|| p["status"]["podIP"].as_str().map(String::from))?
    });

    let resolv = exec(&c, "web-0", &["cat", "/etc/resolv.conf"]);
    let lines: Vec<&str> = resolv.lines().collect();
    assert_eq!(lines[0], "nameserver 10.96.0.10", "{resolv}");
    assert!(lines[1].starts_with("search default.svc.cluster.local svc.cluster.local cluster.local"), "{resolv}");
    assert_eq!(lines.last().copied(), Some("options ndots:5"), "{resolv}");

    let hosts = exec(&c, "web-0", &["cat", "/etc/hosts"]);
    assert!(hosts.contains(&format!("{ip}\tweb-0.web.default.svc.cluster.local\tweb-0\n")), "{hosts}");
    assert!(hosts.contains("# Entries added by HostAliases.\n10.1.2.3\tlegacy.example\told.example\n"), "{hosts}");
    // The files are the node's, read-only for the container.
    let write = c.cli(&["exec", "web-0", "--", "sh", "-c", "echo x >> /etc/hosts"]);
    assert!(!write.status.success(), "/etc/hosts is read-only in the container");

    let env = exec(&c, "web-0", &["env"]);
    for want in [
        "WEB_SERVICE_HOST=10.96.0.60",
        "WEB_SERVICE_PORT=80",
        "WEB_SERVICE_PORT_HTTP=80",
        "WEB_PORT=tcp://10.96.0.60:80",
    ] {
        assert!(env.lines().any(|l| l == want), "{want} missing in:\n{env}");
    }
}
