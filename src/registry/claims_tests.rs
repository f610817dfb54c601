//! Service addresses through real registries: what a user creating, changing
//! and deleting Services sees, and what the store then holds.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::allocate::{CLUSTER_IPS, NODE_PORTS};
use super::testing::TestCluster;
use super::{DeleteOptions, Origin, Registry, RegistryError};
use crate::objects::kinds;

fn service(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"}, "spec": spec})
}

/// Every allocation record: key -> owner.
fn records(r: &Registry) -> BTreeMap<String, String> {
    [CLUSTER_IPS, NODE_PORTS]
        .into_iter()
        .flat_map(|p| r.reader().list(p).unwrap().0)
        .map(|kv| (kv.key, String::from_utf8(kv.value).unwrap()))
        .collect()
}

/// The fields an Invalid error names.
fn invalid_fields(e: RegistryError) -> Vec<String> {
    match e {
        RegistryError::Invalid(i) => i.causes.into_iter().map(|c| c.field).collect(),
        other => panic!("not Invalid: {other}"),
    }
}

fn node_port(svc: &Value, i: usize) -> u64 {
    svc["spec"]["ports"][i]["nodePort"].as_u64().unwrap_or_else(|| panic!("no nodePort: {svc}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_on_two_nodes_never_share_an_address() {
    // Small ranges (62 addresses, 60 ports) for 50 Services: automatic picks
    // collide often, and only the records' compares keep them apart.
    let c = TestCluster::start(2, json!({"serviceCIDR": "10.100.0.0/26", "serviceNodePortRange": "30000-30059"})).await;
    let creates = (0..50).map(|i| {
        let r = c.registries[i % 2].clone();
        async move { r.create(service(&format!("s{i}"), json!({"type": "NodePort", "ports": [{"port": 80}]}))).await }
    });
    let created: Vec<Value> =
        futures::future::join_all(creates).await.into_iter().collect::<Result<_, _>>().expect("every create succeeds");
    let ips: BTreeSet<&str> = created.iter().map(|s| s["spec"]["clusterIP"].as_str().unwrap()).collect();
    let ports: BTreeSet<u64> = created.iter().map(|s| node_port(s, 0)).collect();
    assert_eq!((ips.len(), ports.len()), (50, 50), "distinct addresses");
    assert!(ips.iter().all(|ip| ip.starts_with("10.100.0.")));
    assert!(ports.iter().all(|p| (30000..=30059).contains(p)));
    // Each record names its Service, on both members.
    c.registries[0].node().read_barrier(std::time::Duration::from_secs(10)).await.unwrap();
    let held = records(&c.registries[0]);
    assert_eq!(held.len(), 100);
    for s in &created {
        let owner = kinds::SERVICE.key("default", s["metadata"]["name"].as_str().unwrap());
        assert_eq!(held[&format!("{CLUSTER_IPS}{}", s["spec"]["clusterIP"].as_str().unwrap())], owner);
        assert_eq!(held[&format!("{NODE_PORTS}{}", node_port(s, 0))], owner);
    }
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requested_addresses_are_checked_and_a_refusal_writes_nothing() {
    let c = TestCluster::start(1, json!({})).await;
    let r = &c.registries[0];
    let a = r
        .create(service(
            "a",
            json!({"type": "NodePort", "clusterIP": "10.96.0.50", "ports": [{"port": 80, "nodePort": 30080}]}),
        ))
        .await
        .unwrap();
    assert_eq!((&a["spec"]["clusterIP"], node_port(&a, 0)), (&json!("10.96.0.50"), 30080));
    assert_eq!(a["spec"]["clusterIPs"], json!(["10.96.0.50"]));
    let before = records(r);
    let cases = [
        ("b", json!({"clusterIP": "10.96.0.50", "ports": [{"port": 80}]}), "spec.clusterIP"),
        ("c", json!({"clusterIP": "10.0.0.1", "ports": [{"port": 80}]}), "spec.clusterIP"),
        ("d", json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}), "spec.ports[0].nodePort"),
        ("e", json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 8080}]}), "spec.ports[0].nodePort"),
        ("f", json!({"ports": [{"port": 80, "nodePort": 30090}]}), "spec.ports[0].nodePort"),
    ];
    for (name, spec, field) in cases {
        let err = r.create(service(name, spec.clone())).await.unwrap_err();
        assert_eq!(invalid_fields(err), vec![field], "{spec}");
        assert!(r.get(&kinds::SERVICE, "default", name).unwrap().is_none(), "{name} was not written");
    }
    assert_eq!(records(r), before, "no record was written");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_keep_move_and_release_addresses() {
    let c = TestCluster::start(1, json!({})).await;
    let r = &c.registries[0];
    let manifest = service("web", json!({"type": "NodePort", "ports": [{"name": "http", "port": 80}]}));
    let web = r.create(manifest.clone()).await.unwrap();
    let (ip, port) = (web["spec"]["clusterIP"].clone(), node_port(&web, 0));

    // Re-applying the manifest (no clusterIP, no nodePort) keeps both.
    let again = r.update(manifest.clone(), Origin::User).await.unwrap();
    assert_eq!((&again["spec"]["clusterIP"], node_port(&again, 0)), (&ip, port));

    // clusterIP is immutable.
    let mut moved = again.clone();
    moved["spec"]["clusterIP"] = json!("10.96.0.77");
    let err = r.update(moved, Origin::User).await.unwrap_err();
    assert_eq!(invalid_fields(err), vec!["spec.clusterIP"]);

    // NodePort -> ClusterIP releases the port; someone else may ask for it.
    let mut cluster_ip = again.clone();
    cluster_ip["spec"]["type"] = json!("ClusterIP");
    let cluster_ip = r.update(cluster_ip, Origin::User).await.unwrap();
    assert!(cluster_ip["spec"]["ports"][0].get("nodePort").is_none(), "{cluster_ip}");
    let owner = kinds::SERVICE.key("default", "web");
    assert_eq!(records(r), BTreeMap::from([(format!("{CLUSTER_IPS}{}", ip.as_str().unwrap()), owner.clone())]));
    let other = json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": port}]});
    r.create(service("other", other)).await.unwrap();

    // ClusterIP -> NodePort claims a new port; a requested change moves it.
    let np = r.update(manifest.clone(), Origin::User).await.unwrap();
    let new_port = node_port(&np, 0);
    assert_ne!(new_port, port);
    let mut asked = np.clone();
    asked["spec"]["ports"][0]["nodePort"] = json!(30111);
    r.update(asked, Origin::User).await.unwrap();
    let held = records(r);
    assert_eq!(held.get(&format!("{NODE_PORTS}30111")), Some(&owner));
    assert!(!held.contains_key(&format!("{NODE_PORTS}{new_port}")), "the old port is released");

    // Asking for a taken port is refused, naming the field, and changes nothing.
    let mut taken = r.get(&kinds::SERVICE, "default", "web").unwrap().unwrap();
    taken["spec"]["ports"][0]["nodePort"] = json!(port);
    let err = r.update(taken, Origin::User).await.unwrap_err();
    assert_eq!(invalid_fields(err), vec!["spec.ports[0].nodePort"]);
    assert_eq!(records(r), held);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_service_frees_its_addresses() {
    let c = TestCluster::start(1, json!({})).await;
    let r = &c.registries[0];
    let spec = json!({"type": "NodePort", "clusterIP": "10.96.0.50", "ports": [{"port": 80, "nodePort": 30080}]});
    r.create(service("a", spec.clone())).await.unwrap();
    r.delete(&kinds::SERVICE, "default", "a", &DeleteOptions::default()).await.unwrap();
    assert!(records(r).is_empty(), "{:?}", records(r));
    r.create(service("b", spec.clone())).await.unwrap();

    // A namespace's Services removed by prefix take their records with them.
    r.create(service("c", json!({"type": "LoadBalancer", "ports": [{"port": 81}]}))).await.unwrap();
    assert_eq!(records(r).len(), 4);
    r.remove_prefix(&kinds::SERVICE.prefix(Some("default"))).await.unwrap();
    assert!(records(r).is_empty(), "{:?}", records(r));
    r.create(service("d", spec)).await.unwrap();
    // The control plane's removal by key frees them too.
    r.remove(&kinds::SERVICE.key("default", "d"), 0).await.unwrap();
    assert!(records(r).is_empty(), "{:?}", records(r));
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_services_hold_nothing_and_load_balancers_say_none_exists() {
    let c = TestCluster::start(1, json!({})).await;
    let r = &c.registries[0];
    let headless = r.create(service("db", json!({"clusterIP": "None", "ports": [{"port": 5432}]}))).await.unwrap();
    assert_eq!(headless["spec"]["clusterIP"], "None");
    assert!(records(r).is_empty());

    let lb = r.create(service("lb", json!({"type": "LoadBalancer", "ports": [{"port": 80}]}))).await.unwrap();
    let port = node_port(&lb, 0);
    let cond = &lb["status"]["conditions"][0];
    assert_eq!((&cond["status"], &cond["reason"]), (&json!("False"), &json!("NoLoadBalancerProvider")));
    assert!(cond["message"].as_str().unwrap().contains(&format!("{port}/TCP")), "{cond}");
    assert_eq!(records(r).len(), 2);
    // The stored object is what the create returned.
    let stored = r.get(&kinds::SERVICE, "default", "lb").unwrap().unwrap();
    assert_eq!(stored["status"], lb["status"]);
    c.stop().await;
}
