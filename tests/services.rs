//! Services across hosts: clusters whose nodes run on separate test hosts
//! (network namespaces on one bridge), pods reaching each other across
//! hosts, Services by ClusterIP, name and NodePort, cluster DNS.
//!
//! Needs root and `make images`.

mod fixtures;

use std::time::Duration;

use serde_json::Value;

use fixtures::{image, step, wait_for, Cluster};

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
