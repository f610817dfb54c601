//! Strategic merge patch and server-side apply through a real registry: what
//! a user patching or applying a Deployment sees stored.

use serde_json::{json, Value};

use super::testing::TestCluster;
use super::{Patch, RegistryError};
use crate::objects::kinds::{self, DEPLOYMENT};
use crate::objects::resource_version;

fn deployment(replicas: u32, containers: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": containers}}}})
}

fn containers(d: &Value) -> Vec<(String, String)> {
    d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap().into(), c["image"].as_str().unwrap().into()))
        .collect()
}

fn pair(n: &str, i: &str) -> (String, String) {
    (n.into(), i.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strategic_patch_of_one_image_keeps_the_other_containers() {
    let c = TestCluster::start(1, json!({})).await;
    let r = &c.registries[0];
    r.create(deployment(1, json!([{"name": "app", "image": "app:1"}, {"name": "log", "image": "log:1"}])))
        .await
        .unwrap();
    let patch =
        Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "app:2"}]}}}}));
    let patched = r.patch(&DEPLOYMENT, "default", "web", &patch, false).await.unwrap();
    assert_eq!(containers(&patched), [pair("app", "app:2"), pair("log", "log:1")]);
    let stored = r.get(&DEPLOYMENT, "default", "web").unwrap().unwrap();
    assert_eq!(containers(&stored), [pair("app", "app:2"), pair("log", "log:1")]);
    assert_eq!(stored["metadata"]["generation"], 2, "a spec change");
    // A malformed patch writes nothing.
    let bad = Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"image": "no-name"}]}}}}));
    assert!(matches!(r.patch(&DEPLOYMENT, "default", "web", &bad, false).await, Err(RegistryError::BadRequest(_))));
    assert_eq!(resource_version(&r.get(&DEPLOYMENT, "default", "web").unwrap().unwrap()), resource_version(&stored));
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_creates_is_idempotent_conflicts_and_forces() {
    let c = TestCluster::start(1, json!({})).await;
    let r = &c.registries[0];
    let config = deployment(2, json!([{"name": "app", "image": "app:1"}]));
    let created = r.apply(&DEPLOYMENT, "default", "web", config.clone(), "kubectl", false).await.unwrap();
    assert_eq!(created["spec"]["replicas"], 2);
    assert_eq!(created["metadata"]["managedFields"][0]["manager"], "kubectl");
    assert_eq!(created["metadata"]["managedFields"][0]["operation"], "Apply");
    assert!(created["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]["f:replicas"].is_object());

    // The same configuration again writes nothing.
    let again = r.apply(&DEPLOYMENT, "default", "web", config.clone(), "kubectl", false).await.unwrap();
    assert_eq!(resource_version(&again), resource_version(&created));

    // Another manager changing replicas conflicts, and nothing is written.
    let scale =
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 5}});
    match r.apply(&DEPLOYMENT, "default", "web", scale.clone(), "autoscaler", false).await {
        Err(RegistryError::FieldManagerConflict(e)) => {
            assert_eq!(e.conflicts.len(), 1);
            assert_eq!((e.conflicts[0].manager.as_str(), e.conflicts[0].field.as_str()), ("kubectl", ".spec.replicas"));
        }
        other => panic!("not a conflict: {other:?}"),
    }
    let stored = r.get(&DEPLOYMENT, "default", "web").unwrap().unwrap();
    assert_eq!((stored["spec"]["replicas"].as_u64(), resource_version(&stored)), (Some(2), resource_version(&created)));

    // Forced, it takes replicas over.
    let forced = r.apply(&DEPLOYMENT, "default", "web", scale, "autoscaler", true).await.unwrap();
    assert_eq!(forced["spec"]["replicas"], 5);

    // kubectl adds a container and stops applying replicas: the container is
    // merged in, replicas stays (the autoscaler owns it).
    let mut next = deployment(2, json!([{"name": "app", "image": "app:1"}, {"name": "log", "image": "log:1"}]));
    next["spec"].as_object_mut().unwrap().remove("replicas");
    let after = r.apply(&DEPLOYMENT, "default", "web", next.clone(), "kubectl", false).await.unwrap();
    assert_eq!(after["spec"]["replicas"], 5);
    assert_eq!(containers(&after), [pair("app", "app:1"), pair("log", "log:1")]);
    // Then it drops the log container again: it goes.
    next["spec"]["template"]["spec"]["containers"].as_array_mut().unwrap().pop();
    let after = r.apply(&DEPLOYMENT, "default", "web", next, "kubectl", false).await.unwrap();
    assert_eq!(containers(&after), [pair("app", "app:1")]);
    // Applying replicas again (at the autoscaler's value) shares it, no conflict.
    let shared = r.apply(
        &DEPLOYMENT,
        "default",
        "web",
        deployment(5, json!([{"name": "app", "image": "app:1"}])),
        "kubectl",
        false,
    );
    assert_eq!(shared.await.unwrap()["spec"]["replicas"], 5);
    // At its old value, it conflicts again.
    assert!(matches!(
        r.apply(&DEPLOYMENT, "default", "web", config, "kubectl", false).await,
        Err(RegistryError::FieldManagerConflict(_))
    ));
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applying_a_service_and_a_config_map_twice_writes_once() {
    let c = TestCluster::start(1, json!({})).await;
    let r = &c.registries[0];
    // Ports without a protocol: the stored ones have TCP (defaulted) and are
    // still the same items under the keys port+protocol.
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}]}});
    let cm =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "conf"}, "data": {"a": "1", "b": "2"}});
    for (kind, name, body) in [(&kinds::SERVICE, "web", svc), (&kinds::CONFIG_MAP, "conf", cm.clone())] {
        let first = r.apply(kind, "default", name, body.clone(), "kubectl", false).await.unwrap();
        let second = r.apply(kind, "default", name, body, "kubectl", false).await.unwrap();
        assert_eq!(resource_version(&second), resource_version(&first), "{}", kind.kind);
        assert_eq!(second, first);
    }
    // A key the manager stops applying goes; one another writer added stays.
    let mut edited = r.get(&kinds::CONFIG_MAP, "default", "conf").unwrap().unwrap();
    let before = edited.clone();
    edited["data"]["c"] = json!("3");
    super::apply::record_update("kubectl-edit", &before, &mut edited);
    r.update(edited, super::Origin::User).await.unwrap();
    let mut less = cm;
    less["data"].as_object_mut().unwrap().remove("b");
    let after = r.apply(&kinds::CONFIG_MAP, "default", "conf", less, "kubectl", false).await.unwrap();
    assert_eq!(after["data"], json!({"a": "1", "c": "3"}));
    let managers: Vec<&str> =
        after["metadata"]["managedFields"].as_array().unwrap().iter().map(|e| e["manager"].as_str().unwrap()).collect();
    assert_eq!(managers, ["kubectl", "kubectl-edit"]);
    c.stop().await;
}
