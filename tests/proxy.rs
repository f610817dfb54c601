//! The proxy of a real node: its nftables table follows Services and
//! Endpoints written through the API, is rebuilt from the store when the node
//! restarts, and `clusterd reset` removes it. (Traffic through the rules is
//! tested in a network namespace by the library's tests; across hosts, by
//! the Services tests.)

mod fixtures;

use std::process::Command;
use std::time::Duration;

use fixtures::{step, wait_for, Cluster};

/// The proxy table of node `idx` (named after the node and its cluster).
fn table(c: &Cluster, idx: usize) -> String {
    let dir = clusterd::cluster::config::DataDir(c.nodes[idx].data_dir.clone());
    let (ca_pem, _) = dir.load_pki().unwrap();
    let name = &c.nodes[idx].name;
    clusterd::proxy::table_name(&format!("{name}-{}", clusterd::kubelet::cluster_tag(&ca_pem)))
}

/// `nft list table ip <table>`, if the table exists.
fn listed(table: &str) -> Option<String> {
    let out = Command::new("nft").args(["list", "table", "ip", table]).output().unwrap();
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn wait_listed(table: &str, what: &str, cond: impl Fn(&str) -> bool) -> String {
    wait_for(what, Duration::from_secs(30), || listed(table).filter(|l| cond(l)))
}

const SERVICE: &str = "
apiVersion: v1
kind: Service
metadata: {name: proxied}
spec:
  clusterIP: 10.96.77.7
  ports: [{name: http, port: 80, targetPort: 8080}]
";

const ENDPOINTS: &str = "
apiVersion: v1
kind: Endpoints
metadata: {name: proxied}
subsets:
- addresses: [{ip: 10.250.3.4}, {ip: 10.250.3.5}]
  ports: [{name: http, port: 8080}]
";

#[test]
fn the_proxy_table_follows_services_survives_a_restart_and_goes_with_reset() {
    let mut c = Cluster::init(&[]);
    c.wait_serving(0);
    let t = table(&c, 0);
    wait_listed(&t, "the node's proxy table", |l| l.contains("map service-ips"));

    step("a selector-less Service and its hand-written Endpoints: the ClusterIP leads to both");
    let out = c.apply(&format!("{SERVICE}---{ENDPOINTS}"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mapped = "10.96.77.7 . tcp . 80 : goto svc-";
    let both = "map { 0 : 10.250.3.4 . 8080, 1 : 10.250.3.5 . 8080 }";
    wait_listed(&t, "the Service's rules", |l| l.contains(mapped) && l.contains(both));

    step("a worker joins: its proxy has the same rules in its own table");
    let worker = c.join("n2", false);
    let t2 = table(&c, worker);
    assert_ne!(t, t2);
    wait_listed(&t2, "the worker's rules", |l| l.contains(mapped) && l.contains(both));
    c.nodes[worker].stop();
    let reset = Command::new(fixtures::bin()).args(["reset", "--data-dir"]).arg(&c.nodes[worker].data_dir).output();
    assert!(reset.unwrap().status.success());
    assert_eq!(listed(&t2), None, "reset removed the worker's table");

    step("the Endpoints deleted: connections to the ClusterIP are refused");
    c.ok(&["delete", "endpoints", "proxied"]);
    let refused = "10.96.77.7 . tcp . 80 : goto reject-chain";
    wait_listed(&t, "the reject element", |l| l.contains(refused) && !l.contains(mapped));

    step("a restart rebuilds the table from the store (the stale one is replaced)");
    c.nodes[0].stop();
    let bogus = "10.96.99.99 . tcp . 80 : drop";
    let stale = Command::new("nft")
        .args(["add element ip", &t, &format!("no-endpoint-services {{ {bogus} }}")])
        .status()
        .unwrap();
    assert!(stale.success());
    assert!(listed(&t).unwrap().contains(bogus));
    c.nodes[0].restart();
    c.wait_serving(0);
    wait_listed(&t, "the rebuilt table", |l| l.contains(refused) && !l.contains(bogus));
    let out = c.apply(ENDPOINTS);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_listed(&t, "the endpoints again", |l| l.contains(mapped) && l.contains(both));

    step("the Service deleted: its rules go");
    c.ok(&["delete", "service", "proxied"]);
    wait_listed(&t, "the Service's rules gone", |l| !l.contains("10.96.77.7"));

    step("`clusterd reset` removes the table");
    c.nodes[0].stop();
    let reset = Command::new(fixtures::bin()).args(["reset", "--data-dir"]).arg(&c.nodes[0].data_dir).output().unwrap();
    assert!(reset.status.success(), "{}", String::from_utf8_lossy(&reset.stderr));
    assert_eq!(listed(&t), None, "the proxy table is gone");
}
