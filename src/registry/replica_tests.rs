//! Writes through a follower whose replica lags behind the leader: what the
//! cluster committed decides whether a compare-and-swap or a delete applies,
//! never the follower's older copy. (Found by the fault runs,
//! `tests/chaos.rs`: an update through a follower answered NotFound just
//! after a create was acknowledged, one at the right resourceVersion answered
//! Conflict just after a delete; linearizability violations.)

use serde_json::{json, Value};

use super::testing::TestCluster;
use super::{DeleteOptions, Origin, RegistryError};
use crate::objects::kinds;

fn cm(name: &str, v: &str, rv: Option<u64>) -> Value {
    let mut obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": name, "namespace": "default"}, "data": {"v": v}});
    if let Some(rv) = rv {
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
    }
    obj
}

fn rv(obj: &Value) -> u64 {
    obj["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_judges_a_write_by_what_the_cluster_committed() {
    let c = TestCluster::start(3, json!({})).await;
    let (leader, follower) = (&c.registries[0], &c.registries[2]);
    for round in 0..20 {
        let name = format!("lag-{round}");
        // Acknowledged by the leader; at once written on through the follower.
        let created = leader.create(cm(&name, "a", None)).await.unwrap();
        let updated = follower.update(cm(&name, "b", Some(rv(&created))), Origin::User).await;
        let updated = updated.unwrap_or_else(|e| panic!("round {round}: update at the created version: {e:?}"));
        let changed = leader.update(cm(&name, "c", Some(rv(&updated))), Origin::User).await.unwrap();
        let at = DeleteOptions { resource_version: Some(rv(&changed)), ..DeleteOptions::default() };
        let deleted = follower.delete(&kinds::CONFIG_MAP, "default", &name, &at).await;
        deleted.unwrap_or_else(|e| panic!("round {round}: delete at the current version: {e:?}"));
        // Gone on the leader: through the follower an update of it is NotFound, not Conflict.
        let again = follower.update(cm(&name, "d", Some(rv(&changed))), Origin::User).await;
        assert!(matches!(again, Err(RegistryError::NotFound { .. })), "round {round}: update after delete: {again:?}");
    }
    c.stop().await;
}
