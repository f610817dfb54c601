//! Services across hosts: clusters whose nodes run on separate test hosts
//! (network namespaces on one bridge), pods reaching each other across
//! hosts, Services by ClusterIP, name and NodePort, cluster DNS.
//!
//! Needs root and `make images`.

mod fixtures;

use std::time::Duration;

use serde_json::Value;

use fixtures::{http_get, image, step, wait_for, Cluster};

/// `clusterd exec POD -- CMD` through node 0's API; (success, stdout).
fn exec(c: &Cluster, pod: &str, cmd: &[&str]) -> (bool, String) {
    let mut args = vec!["exec", pod, "--"];
    args.extend(cmd);
    let out = c.cli(&args);
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

fn pod(c: &Cluster, name: &str) -> Option<Value> {
    let out = c.cli(&["get", "pod", name, "-o", "json"]);
    out.status.success().then(|| serde_json::from_slice(&out.stdout).unwrap())
}

fn ready(p: &Value) -> bool {
    p["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// Wait until pod `name` is Ready; return it.
fn wait_ready(c: &Cluster, name: &str) -> Value {
    wait_for(&format!("pod {name} Ready"), Duration::from_secs(90), || pod(c, name).filter(ready))
}

/// The httpd of the test pods: `/` says `hello from <hostname>`,
/// `/cgi-bin/peer` the address the request came from.
const HTTPD: &str = "mkdir -p /www/cgi-bin && echo hello from $(hostname) > /www/index.html && printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho $REMOTE_ADDR\\n' > /www/cgi-bin/peer && chmod +x /www/cgi-bin/peer && exec httpd -f -p 8080 -h /www";

/// A busybox httpd pod (see [`HTTPD`]) on `node`.
fn httpd_pod(name: &str, node: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{app: {name}}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: httpd
    image: clusterd.local/busybox:v1
    imagePullPolicy: Never
    command: ["sh", "-c", {HTTPD:?}]
    ports:
    - {{name: http, containerPort: 8080}}
    readinessProbe:
      tcpSocket: {{port: 8080}}
      periodSeconds: 1
"#
    )
}

/// The client address busybox httpd reports (`[::ffff:a.b.c.d]`) as `a.b.c.d`.
fn peer(reported: &str) -> &str {
    reported.trim().trim_start_matches("[::ffff:").trim_end_matches(']')
}

fn routes_of(c: &Cluster, host: usize) -> String {
    String::from_utf8_lossy(&c.hosts().exec(host, &["ip", "route", "show"]).stdout).into_owned()
}

fn pod_cidr(c: &Cluster, node: &str) -> String {
    let n: Value = serde_json::from_str(&c.ok(&["get", "node", node, "-o", "json"])).unwrap();
    n["spec"]["podCIDR"].as_str().unwrap_or_default().to_string()
}

#[test]
fn pods_on_different_hosts_reach_each_other_and_a_removed_node_takes_its_route() {
    let mut c = Cluster::init_on_hosts(2, &[]);
    c.join_on(1, "w1", false);
    c.ok(&["image", "load", &image("busybox-v1.tar")]);
    wait_for("both nodes with pod CIDRs", Duration::from_secs(30), || {
        (!pod_cidr(&c, "n1").is_empty() && !pod_cidr(&c, "w1").is_empty()).then_some(())
    });

    step("each host routes the other's pod CIDR via the other's address");
    let (n1_cidr, w1_cidr) = (pod_cidr(&c, "n1"), pod_cidr(&c, "w1"));
    let (h0, h1) = (c.hosts().ip(0).to_string(), c.hosts().ip(1).to_string());
    wait_for("host-gw routes on both hosts", Duration::from_secs(30), || {
        let (r0, r1) = (routes_of(&c, 0), routes_of(&c, 1));
        (r0.contains(&format!("{w1_cidr} via {h1}")) && r1.contains(&format!("{n1_cidr} via {h0}"))).then_some(())
    });

    step("a pod on host 0 reaches a pod on host 1 by its address, which it sees unchanged");
    assert!(c.apply(&httpd_pod("a", "n1")).status.success());
    assert!(c.apply(&httpd_pod("b", "w1")).status.success());
    let a = wait_ready(&c, "a");
    let b = wait_ready(&c, "b");
    let (a_ip, b_ip) = (a["status"]["podIP"].as_str().unwrap(), b["status"]["podIP"].as_str().unwrap());
    let url = format!("http://{b_ip}:8080/");
    let body = wait_for("a → b across hosts", Duration::from_secs(20), || {
        let (ok, out) = exec(&c, "a", &["wget", "-qO-", &url]);
        ok.then_some(out)
    });
    assert_eq!(body, "hello from b\n");
    // b's httpd sees a's own address: no NAT between pods.
    let (ok, peer) = exec(&c, "a", &["wget", "-qO-", &format!("{url}cgi-bin/peer")]);
    assert!(ok, "a → b's cgi");
    assert_eq!(self::peer(&peer), a_ip);
    let (ok, peer) = exec(&c, "b", &["wget", "-qO-", &format!("http://{a_ip}:8080/cgi-bin/peer")]);
    assert!(ok, "b → a");
    assert_eq!(self::peer(&peer), b_ip);

    step("deleting node w1 removes host 0's route to its pods");
    c.nodes[1].kill9();
    c.ok(&["delete", "node", "w1"]);
    wait_for("the route to w1's pods gone", Duration::from_secs(30), || {
        (!routes_of(&c, 0).contains(&w1_cidr)).then_some(())
    });
}

/// The whole nftables ruleset of test host `host` (only its node's tables live there).
fn rules_of(c: &Cluster, host: usize) -> String {
    String::from_utf8_lossy(&c.hosts().exec(host, &["nft", "list", "ruleset"]).stdout).into_owned()
}

fn json(c: &Cluster, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    serde_json::from_str(&c.ok(&a)).unwrap()
}

/// The ready addresses of Endpoints `name`, sorted.
fn ready_addresses(c: &Cluster, name: &str) -> Vec<String> {
    let out = c.cli(&["get", "endpoints", name, "-o", "json"]);
    if !out.status.success() {
        return vec![];
    }
    let ep: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut ips: Vec<String> = ep["subsets"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["addresses"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a["ip"].as_str().map(String::from))
        .collect();
    ips.sort();
    ips
}

/// The IPs of the Running, Ready pods labelled `app=<app>`, sorted.
fn ready_pod_ips(c: &Cluster, app: &str) -> Vec<String> {
    let pods = json(c, &["get", "pods", "-l", &format!("app={app}")]);
    let mut ips: Vec<String> = pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| ready(p) && p["metadata"]["deletionTimestamp"].is_null())
        .filter_map(|p| p["status"]["podIP"].as_str().map(String::from))
        .collect();
    ips.sort();
    ips
}

const WEB: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: httpd
        image: clusterd.local/busybox:v1
        imagePullPolicy: Never
        command: ["sh", "-c", "touch /tmp/healthy && HTTPD_CMD"]
        ports:
        - {name: http, containerPort: 8080}
        readinessProbe:
          exec: {command: ["test", "-f", "/tmp/healthy"]}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: http}
---
apiVersion: v1
kind: Service
metadata:
  name: web-np
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080}
---
apiVersion: v1
kind: Pod
metadata:
  name: client
spec:
  nodeName: NODE
  terminationGracePeriodSeconds: 1
  containers:
  - name: sh
    image: clusterd.local/busybox:v1
    imagePullPolicy: Never
    command: ["sleep", "100000"]
"#;

#[test]
fn a_deployment_behind_a_service_answers_by_name_clusterip_and_nodeport_on_every_host() {
    let mut c = Cluster::init_on_hosts(3, &[]);
    let _upstream = fixtures::hosts::Resolver::start(c.hosts().gateway(), &[("outside.example", OUTSIDE)]);
    c.join_on(1, "n2", true);
    c.join_on(2, "w1", false);
    c.ok(&["image", "load", &image("busybox-v1.tar")]);

    step("a 3-replica Deployment, a ClusterIP and a NodePort Service, a client pod on w1");
    let manifest = WEB.replace("HTTPD_CMD", HTTPD).replace("NODE", "w1");
    let out = c.apply(&manifest);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_ready(&c, "client");
    wait_for("3 ready web pods in the Endpoints", Duration::from_secs(90), || {
        let pods = ready_pod_ips(&c, "web");
        (pods.len() == 3 && ready_addresses(&c, "web") == pods).then_some(())
    });
    let svc = json(&c, &["get", "svc", "web"]);
    let cluster_ip = svc["spec"]["clusterIP"].as_str().unwrap().to_string();
    assert!(cluster_ip.starts_with("10.96."), "ClusterIP from the default service CIDR: {cluster_ip}");
    let np = json(&c, &["get", "svc", "web-np"]);
    let node_port = np["spec"]["ports"][0]["nodePort"].as_u64().unwrap();
    assert!((30000..=32767).contains(&node_port), "{node_port}");

    step("from the client pod on another host: the short name, name.namespace, the FQDN and the ClusterIP answer");
    for target in ["web", "web.default", "web.default.svc.cluster.local", cluster_ip.as_str()] {
        let url = format!("http://{target}/");
        let body = wait_for(&format!("{url} from the client"), Duration::from_secs(30), || {
            let (ok, out) = exec(&c, "client", &["wget", "-qO-", &url]);
            ok.then_some(out)
        });
        assert!(body.starts_with("hello from web-"), "{url}: {body}");
    }

    step("30 requests through the Service reach more than one backend");
    let (ok, out) =
        exec(&c, "client", &["sh", "-c", "for i in $(seq 30); do wget -qO- http://web/ || echo failed; done"]);
    assert!(ok, "{out}");
    let backends: std::collections::BTreeSet<&str> = out.lines().collect();
    assert!(!backends.contains("failed"), "{out}");
    assert!(backends.len() > 1, "one backend answered all 30: {backends:?}");

    step("every host itself reaches the ClusterIP and asks the cluster DNS");
    for h in 0..3 {
        let out = c.hosts().exec(h, &["busybox", "nslookup", "web.default.svc.cluster.local", "10.96.0.10"]);
        let answer = String::from_utf8_lossy(&out.stdout);
        assert!(answer.contains(&cluster_ip), "host {h} → the DNS Service: {answer}");
        let url = format!("http://{cluster_ip}/");
        let out = c.hosts().exec(h, &["curl", "-fsS", "--max-time", "3", &url]);
        let body = String::from_utf8_lossy(&out.stdout);
        assert!(body.starts_with("hello from web-"), "host {h} → {url}: {body}");
    }

    step("from outside the cluster's hosts: the NodePort answers on every host");
    for h in 0..3 {
        let addr = format!("{}:{node_port}", c.hosts().ip(h));
        let body = wait_for(&format!("NodePort at {addr}"), Duration::from_secs(30), || http_get(&addr, "/"));
        assert!(body.starts_with("hello from web-"), "{addr}: {body}");
    }

    step("scaled to 5 and to 1: the Endpoints and every host's rules follow");
    let mut before = ready_pod_ips(&c, "web");
    for n in [5usize, 1] {
        c.ok(&["scale", "deployment", "web", &format!("--replicas={n}")]);
        let ips = wait_for(&format!("{n} ready endpoints"), Duration::from_secs(90), || {
            let pods = ready_pod_ips(&c, "web");
            (pods.len() == n && ready_addresses(&c, "web") == pods).then_some(pods)
        });
        let gone: Vec<&String> = before.iter().filter(|ip| !ips.contains(ip)).collect();
        for h in 0..3 {
            wait_for(&format!("host {h}'s rules for {n} endpoints"), Duration::from_secs(10), || {
                let rules = rules_of(&c, h);
                // `ip . port` in a random pick's map, `ip:port` when there is one endpoint.
                let has =
                    |ip: &String| rules.contains(&format!("{ip} . 8080")) || rules.contains(&format!("{ip}:8080"));
                (ips.iter().all(has) && !gone.iter().any(|ip| has(ip))).then_some(())
            });
        }
        before = ips;
    }

    step("back to 3; a pod failing readiness leaves the Endpoints and the traffic");
    c.ok(&["scale", "deployment", "web", "--replicas=3"]);
    let ips = wait_for("3 ready endpoints again", Duration::from_secs(90), || {
        let pods = ready_pod_ips(&c, "web");
        (pods.len() == 3 && ready_addresses(&c, "web") == pods).then_some(pods)
    });
    let pods = json(&c, &["get", "pods", "-l", "app=web"]);
    let sick = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["status"]["podIP"].as_str() == Some(ips[0].as_str()))
        .unwrap()["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let (ok, _) = exec(&c, &sick, &["rm", "/tmp/healthy"]);
    assert!(ok);
    wait_for("the unready pod out of the Endpoints", Duration::from_secs(10), || {
        let ready = ready_addresses(&c, "web");
        (ready.len() == 2 && !ready.contains(&ips[0])).then_some(())
    });
    wait_for("the client host's rules without it", Duration::from_secs(10), || {
        (!rules_of(&c, 2).contains(ips[0].as_str())).then_some(())
    });
    let (ok, out) =
        exec(&c, "client", &["sh", "-c", "for i in $(seq 20); do wget -qO- http://web/ || echo failed; done"]);
    assert!(ok && !out.contains("failed"), "{out}");
    assert!(!out.contains(&format!("hello from {sick}")), "the unready pod still got traffic:\n{out}");

    step("headless Service + StatefulSet: pod names resolve, SRV answers for the named port");
    let sts = STS.replace("HTTPD_CMD", HTTPD);
    let out = c.apply(&sts);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let db0 = wait_ready(&c, "db-0");
    let db0_ip = db0["status"]["podIP"].as_str().unwrap().to_string();
    let found = wait_for("db-0.db resolves", Duration::from_secs(30), || {
        let (ok, out) = exec(&c, "client", &["nslookup", "db-0.db.default.svc.cluster.local"]);
        (ok && out.contains(&db0_ip)).then_some(out)
    });
    assert!(found.contains(&db0_ip), "{found}");
    let (ok, out) = exec(&c, "client", &["nslookup", "-type=SRV", "_http._tcp.db.default.svc.cluster.local"]);
    assert!(ok && out.contains("8080"), "SRV: {out}");
    let (_, out) = exec(&c, "client", &["sh", "-c", "nslookup nothing-here.default.svc.cluster.local 2>&1"]);
    assert!(out.contains("NXDOMAIN"), "an unknown cluster name: {out}");
    let (ok, out) = exec(&c, "client", &["nslookup", "outside.example"]);
    assert!(
        ok && out.contains(&OUTSIDE.to_string()),
        "a name outside the cluster, forwarded to the host's resolver: {out}"
    );

    step("a pod reaches the API servers through the kubernetes Service, as in-cluster clients find it");
    let (ok, out) = exec(
        &c,
        "client",
        &[
            "sh",
            "-c",
            "nc -w 3 $KUBERNETES_SERVICE_HOST $KUBERNETES_SERVICE_PORT -e true && echo $KUBERNETES_SERVICE_HOST",
        ],
    );
    assert!(ok && out.trim() == "10.96.0.1", "the API through 10.96.0.1:443: {out}");
    let (ok, token) = exec(&c, "client", &["cat", "/var/run/secrets/kubernetes.io/serviceaccount/token"]);
    assert!(ok && !token.trim().is_empty(), "the service account token is mounted");

    step("w1 restarts with its rules gone: they are rebuilt from the store");
    c.nodes[2].stop();
    let out = c.hosts().exec(2, &["nft", "flush", "ruleset"]);
    assert!(out.status.success());
    assert!(!rules_of(&c, 2).contains("dnat"));
    c.nodes[2].restart();
    let addr = format!("{}:{node_port}", c.hosts().ip(2));
    let body = wait_for("the NodePort on w1's host again", Duration::from_secs(60), || http_get(&addr, "/"));
    assert!(body.starts_with("hello from web-"), "{body}");

    step("deleting the Services removes their rules on every host");
    c.ok(&["delete", "svc", "web", "web-np"]);
    for h in 0..3 {
        wait_for(&format!("host {h} without the Services' rules"), Duration::from_secs(10), || {
            let rules = rules_of(&c, h);
            (!rules.contains(&cluster_ip) && !rules.contains(&format!("{node_port}"))).then_some(())
        });
    }
}

/// What the test hosts' resolver says `outside.example` is (a documentation
/// address: nothing is ever sent to it).
const OUTSIDE: std::net::Ipv4Addr = std::net::Ipv4Addr::new(192, 0, 2, 7);

const STS: &str = r#"apiVersion: v1
kind: Service
metadata:
  name: db
spec:
  clusterIP: None
  selector: {app: db}
  ports:
  - {name: http, port: 8080}
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  serviceName: db
  replicas: 1
  selector:
    matchLabels: {app: db}
  template:
    metadata:
      labels: {app: db}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: httpd
        image: clusterd.local/busybox:v1
        imagePullPolicy: Never
        command: ["sh", "-c", "HTTPD_CMD"]
        ports:
        - {name: http, containerPort: 8080}
"#;

#[test]
fn bad_service_input_is_refused_naming_the_field_and_nothing_is_written() {
    let c = Cluster::init(&[]);
    let svc = |name: &str, spec: &str| {
        format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  selector: {{app: x}}\n{spec}")
    };
    let first = svc("first", "  type: NodePort\n  clusterIP: 10.96.7.7\n  ports:\n  - {port: 80, nodePort: 30100}\n");
    let out = c.apply(&first);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let cases = [
        ("taken-ip", "  clusterIP: 10.96.7.7\n  ports:\n  - {port: 80}\n", "spec.clusterIP"),
        ("foreign-ip", "  clusterIP: 192.168.7.7\n  ports:\n  - {port: 80}\n", "spec.clusterIP"),
        ("taken-port", "  type: NodePort\n  ports:\n  - {port: 80, nodePort: 30100}\n", "spec.ports[0].nodePort"),
        ("far-port", "  type: NodePort\n  ports:\n  - {port: 80, nodePort: 20000}\n", "spec.ports[0].nodePort"),
    ];
    for (name, spec, field) in cases {
        let out = c.apply(&svc(name, spec));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name} was accepted");
        assert!(err.contains(field), "{name}: the error does not name {field}: {err}");
        assert!(!c.cli(&["get", "svc", name]).status.success(), "{name} was written");
    }

    step("changing the clusterIP is refused; the Service keeps its address");
    let changed = first.replace("10.96.7.7", "10.96.7.8");
    let out = c.apply(&changed);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("spec.clusterIP"));
    let kept = json(&c, &["get", "svc", "first"]);
    assert_eq!(kept["spec"]["clusterIP"], "10.96.7.7");

    step("once deleted, its address and port can be taken again");
    c.ok(&["delete", "svc", "first"]);
    let again = svc("again", "  type: NodePort\n  clusterIP: 10.96.7.7\n  ports:\n  - {port: 80, nodePort: 30100}\n");
    let out = c.apply(&again);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
