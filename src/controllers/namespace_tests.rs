//! The namespace controller run on a real one-node store: a namespace of
//! 1,000+ objects it does not follow (ConfigMaps, Secrets, a Service with its
//! addresses) is emptied through the store and removed, and nothing outside it
//! is touched.

use std::time::Duration;

use actix::Actor;
use serde_json::{json, Value};

use super::namespace::Namespaces;
use super::runner::Controller;
use crate::objects::kinds;
use crate::registry::allocate::{CLUSTER_IPS, NODE_PORTS};
use crate::registry::deletion::DeleteOptions;
use crate::registry::testing::TestCluster;
use crate::registry::Registry;

fn object(kind: &str, ns: &str, name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": ns}, "data": {"v": "x".repeat(512)}})
}

fn count(r: &Registry, prefix: &str) -> usize {
    r.reader().list(prefix).unwrap().0.len()
}

#[actix_rt::test]
async fn a_namespace_of_a_thousand_objects_is_emptied_then_removed() {
    let c = TestCluster::start(1, json!({})).await;
    let r = c.registries[0].clone();
    r.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "big"}})).await.unwrap();
    let writes = (0..1000).map(|i| r.create(object("ConfigMap", "big", &format!("c{i}"))));
    futures::future::try_join_all(writes).await.unwrap();
    for i in 0..20 {
        r.create(object("Secret", "big", &format!("s{i}"))).await.unwrap();
    }
    let spec = json!({"type": "NodePort", "clusterIP": "10.96.0.50", "ports": [{"port": 80, "nodePort": 30080}]});
    r.create(
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "big"}, "spec": spec}),
    )
    .await
    .unwrap();
    r.create(object("ConfigMap", "default", "stays")).await.unwrap();
    let records = || count(&r, CLUSTER_IPS) + count(&r, NODE_PORTS);
    assert_eq!((count(&r, &kinds::CONFIG_MAP.prefix(Some("big"))), records()), (1000, 2));

    r.delete(&kinds::NAMESPACE, "", "big", &DeleteOptions::default()).await.unwrap();
    Controller::new(Namespaces, r.clone()).start();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while r.get(&kinds::NAMESPACE, "", "big").unwrap().is_some() {
        assert!(tokio::time::Instant::now() < deadline, "namespace big still there");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for kind in [&kinds::CONFIG_MAP, &kinds::SECRET, &kinds::SERVICE] {
        assert_eq!(count(&r, &kind.prefix(Some("big"))), 0, "{} left in big", kind.plural);
    }
    assert_eq!(records(), 0, "the Service's addresses are freed");
    assert!(r.get(&kinds::CONFIG_MAP, "default", "stays").unwrap().is_some(), "other namespaces are untouched");
    c.stop().await;
}
