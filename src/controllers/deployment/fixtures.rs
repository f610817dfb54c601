//! Objects the Deployment tests share: a Deployment `web` in namespace `d`,
//! the ReplicaSet its controller would have made for a template, and the
//! sizes a reconcile wrote.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use serde_json::{json, Value};

use super::{key, new_replicaset, template_hash, Deployments};
use crate::controllers::framework::{Action, Cache, Outcome, Reconciler};

/// Deployment `d/web` with `replicas` of `image`, a history limit of 1 and a 60 s deadline.
pub fn deploy(replicas: i64, image: &str, strategy: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "web", "namespace": "d", "uid": "d1", "generation": 1, "resourceVersion": "9"},
           "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}}, "strategy": strategy,
                    "revisionHistoryLimit": 1, "progressDeadlineSeconds": 60,
                    "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": image}]}}}})
}

/// A RollingUpdate strategy.
pub fn rolling(surge: Value, unavail: Value) -> Value {
    json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavail}})
}

/// The ReplicaSet of `d`'s template at revision `rev`, `available` of its `replicas` up.
pub fn rs_for(d: &Value, replicas: i64, available: i64, rev: i64) -> Value {
    let d: Deployment = serde_json::from_value(d.clone()).expect("a Deployment");
    let hash = template_hash(&d.spec.as_ref().expect("a spec").template);
    let mut rs = serde_json::to_value(new_replicaset(&d, &hash, replicas, rev)).expect("json");
    rs["metadata"]["uid"] = json!(format!("rs-{hash}"));
    rs["metadata"]["resourceVersion"] = json!("4");
    rs["status"] = json!({"replicas": replicas, "readyReplicas": available, "availableReplicas": available});
    rs
}

/// Reconcile `d/web` now.
pub fn reconcile(c: &Cache) -> Outcome {
    Deployments.reconcile(&key("d", "web"), c, chrono::Utc::now())
}

/// The ReplicaSet written first in an outcome's creates.
pub fn created(out: &Outcome) -> Value {
    out.actions.iter().find_map(|a| if let Action::Create(r) = a { Some(r.clone()) } else { None }).expect("a create")
}

/// ReplicaSet name → replicas, of every ReplicaSet an outcome rewrites.
pub fn replaced_sets(out: &Outcome) -> BTreeMap<String, i64> {
    out.actions
        .iter()
        .filter_map(|a| match a {
            Action::Replace(r) if r["kind"] == "ReplicaSet" => {
                Some((r["metadata"]["name"].as_str().unwrap().to_string(), r["spec"]["replicas"].as_i64().unwrap()))
            }
            _ => None,
        })
        .collect()
}

/// The name of an object.
pub fn name(obj: &Value) -> String {
    obj["metadata"]["name"].as_str().unwrap_or_default().to_string()
}

/// Set one annotation of an object's JSON.
pub fn annotate_json(obj: &mut Value, key: &str, value: &str) {
    obj["metadata"]["annotations"][key] = json!(value);
}
