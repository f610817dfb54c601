//! The Deployment controller: one ReplicaSet per pod template (named and
//! labelled by the template's hash), rolled over at a controlled rate —
//! RollingUpdate with maxSurge / maxUnavailable, or Recreate — with revisions
//! in the `deployment.kubernetes.io/revision` annotation, proportional scaling
//! during a rollout, pause, a progress deadline and history cleanup. Rollback
//! is the client's work (it copies an old ReplicaSet's template back), as in
//! Kubernetes' apps/v1.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use super::framework::{controller_ref, controller_uid, Action, Cache, Outcome, Reconciler};
use crate::objects::conditions::set_condition;
use crate::objects::key_of;
use crate::objects::kinds::{self, Kind};
use crate::objects::meta_str;

/// Annotation: the revision of a ReplicaSet (and of its Deployment).
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Annotation: the Deployment's replicas when the ReplicaSet was last sized.
pub const DESIRED: &str = "deployment.kubernetes.io/desired-replicas";
/// Label: the hash of the pod template.
pub const HASH: &str = "pod-template-hash";

/// The Deployment reconciler.
pub struct Deployments;

/// A stable, short hash of a pod template (Kubernetes' alphabet, 10 characters).
pub fn template_hash(template: &Value) -> String {
    use sha2::Digest;
    let mut t = template.clone();
    if let Some(labels) = t.pointer_mut("/metadata/labels").and_then(Value::as_object_mut) {
        labels.remove(HASH);
    }
    let digest = sha2::Sha256::digest(serde_json::to_vec(&t).expect("json"));
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    digest.iter().take(10).map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char).collect()
}

/// An int-or-percent of `total` (surge rounds up, unavailable rounds down).
pub fn resolve(v: Option<&Value>, total: i64, round_up: bool, default: i64) -> i64 {
    match v {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(default),
        Some(Value::String(s)) if s.ends_with('%') => {
            let pct: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
            if round_up {
                (pct * total + 99) / 100
            } else {
                pct * total / 100
            }
        }
        Some(Value::String(s)) => s.parse().unwrap_or(default),
        _ => default,
    }
}

fn replicas_of(obj: &Value) -> i64 {
    obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1)
}

fn status_num(obj: &Value, field: &str) -> i64 {
    obj.pointer(&format!("/status/{field}")).and_then(Value::as_i64).unwrap_or(0)
}

/// The revision annotation of a Deployment or ReplicaSet (0 when missing).
pub fn revision(obj: &Value) -> i64 {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(REVISION))
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn annotate(obj: &mut Value, key: &str, value: String) {
    let meta = obj["metadata"].as_object_mut().expect("metadata");
    let ann = meta.entry("annotations").or_insert(json!({}));
    if !ann.is_object() {
        *ann = json!({});
    }
    ann[key] = json!(value);
}

/// The ReplicaSet a Deployment makes for its current template.
pub fn new_replicaset(d: &Value, hash: &str, replicas: i64, revision: i64) -> Value {
    let mut template = d.pointer("/spec/template").cloned().unwrap_or(json!({}));
    template["metadata"]["labels"][HASH] = json!(hash);
    let mut selector = d.pointer("/spec/selector").cloned().unwrap_or(json!({}));
    selector["matchLabels"][HASH] = json!(hash);
    let mut labels = template["metadata"]["labels"].clone();
    labels[HASH] = json!(hash);
    let mut rs = json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": format!("{}-{hash}", meta_str(d, "name")),
            "namespace": meta_str(d, "namespace"),
            "labels": labels,
            "ownerReferences": [controller_ref(d)],
        },
        "spec": {
            "replicas": replicas,
            "minReadySeconds": d.pointer("/spec/minReadySeconds").cloned().unwrap_or(json!(0)),
            "selector": selector,
            "template": template,
        },
    });
    annotate(&mut rs, REVISION, revision.to_string());
    annotate(&mut rs, DESIRED, replicas_of(d).to_string());
    rs
}

/// Working copies of a Deployment's ReplicaSets; the changed ones are written at the end.
struct Sets {
    items: Vec<(Value, bool)>,
}

impl Sets {
    fn set_replicas(&mut self, i: usize, n: i64, desired: i64) {
        let (rs, changed) = &mut self.items[i];
        if replicas_of(rs) != n {
            rs["spec"]["replicas"] = json!(n);
            *changed = true;
        }
        let d = desired.to_string();
        if rs.pointer("/metadata/annotations").and_then(|a| a.get(DESIRED)).and_then(Value::as_str) != Some(d.as_str())
        {
            annotate(rs, DESIRED, d);
            *changed = true;
        }
    }
}

impl Reconciler for Deployments {
    const NAME: &'static str = "deployment";
    const PRIMARY: &'static Kind = &kinds::DEPLOYMENT;

    fn watches(&self) -> Vec<&'static Kind> {
        vec![&kinds::DEPLOYMENT, &kinds::REPLICA_SET]
    }

    fn affected(&self, obj: &Value, _cache: &Cache) -> Vec<String> {
        super::framework::self_or_owners(obj, Self::PRIMARY, &kinds::REPLICA_SET)
    }

    fn reconcile(&self, key: &str, cache: &Cache, now: chrono::DateTime<chrono::Utc>) -> Outcome {
        let Some(d) = cache.get(&kinds::DEPLOYMENT, key) else { return Outcome::default() };
        if d.pointer("/metadata/deletionTimestamp").is_some() {
            return Outcome::default();
        }
        let mut out = Outcome::default();
        let ns = meta_str(d, "namespace");
        let uid = meta_str(d, "uid");
        let name = meta_str(d, "name");
        let replicas = replicas_of(d);
        let hash = template_hash(d.pointer("/spec/template").unwrap_or(&Value::Null));
        let mut owned: Vec<Value> = cache.owned_by(&kinds::REPLICA_SET, ns, uid).cloned().collect();
        owned.sort_by_key(|r| (revision(r), meta_str(r, "creationTimestamp").to_string()));
        let max_rev = owned.iter().map(revision).max().unwrap_or(0);
        let new_idx = owned.iter().position(|r| {
            r.pointer("/metadata/labels").and_then(|l| l.get(HASH)).and_then(Value::as_str) == Some(hash.as_str())
        });
        let paused = d.pointer("/spec/paused").and_then(Value::as_bool).unwrap_or(false);
        let strategy = d.pointer("/spec/strategy/type").and_then(Value::as_str).unwrap_or("RollingUpdate");
        let surge = if strategy == "Recreate" {
            0
        } else {
            resolve(d.pointer("/spec/strategy/rollingUpdate/maxSurge"), replicas, true, 1)
        };
        let mut unavailable = if strategy == "Recreate" {
            replicas
        } else {
            resolve(d.pointer("/spec/strategy/rollingUpdate/maxUnavailable"), replicas, false, 0)
        };
        if surge == 0 && unavailable == 0 {
            unavailable = 1;
        }
        let event = |msg: String| Action::Event {
            object: d.clone(),
            warning: false,
            reason: "ScalingReplicaSet".into(),
            message: msg,
        };

        if new_idx.is_none() && !paused {
            // A new template: its ReplicaSet, sized by the strategy.
            let total: i64 = owned.iter().map(replicas_of).sum();
            let old_active = owned.iter().any(|r| replicas_of(r) > 0 || status_num(r, "replicas") > 0);
            let size = if strategy == "Recreate" {
                if old_active {
                    0
                } else {
                    replicas
                }
            } else if owned.is_empty() {
                replicas
            } else {
                (replicas + surge - total).clamp(0, replicas)
            };
            let rs = new_replicaset(d, &hash, size, max_rev + 1);
            out.actions.push(event(format!("Scaled up replica set {} to {size}", meta_str(&rs, "name"))));
            out.actions.push(Action::Create(rs));
            let mut nd = d.clone();
            annotate(&mut nd, REVISION, (max_rev + 1).to_string());
            set_condition(
                &mut nd,
                "Progressing",
                "True",
                "NewReplicaSetCreated",
                &format!("Created new replica set \"{name}-{hash}\""),
                &crate::util::now(),
            );
            stamp_progress(&mut nd, now);
            out.actions.push(Action::Replace(nd));
            return out;
        }

        let mut sets = Sets { items: owned.into_iter().map(|r| (r, false)).collect() };
        if let Some(i) = new_idx {
            // Rolling back to an older template makes its ReplicaSet the newest revision.
            if revision(&sets.items[i].0) < max_rev {
                annotate(&mut sets.items[i].0, REVISION, (max_rev + 1).to_string());
                sets.items[i].1 = true;
            }
        }
        let total = |sets: &Sets| sets.items.iter().map(|(r, _)| replicas_of(r)).sum::<i64>();
        let scaling = sets.items.iter().any(|(r, _)| {
            replicas_of(r) > 0
                && r.pointer("/metadata/annotations").and_then(|a| a.get(DESIRED)).and_then(Value::as_str)
                    != Some(replicas.to_string().as_str())
        });
        let active: Vec<usize> = (0..sets.items.len()).filter(|&i| replicas_of(&sets.items[i].0) > 0).collect();
        if paused || (scaling && active.len() > 1) {
            // Proportional scaling: every active set grows or shrinks by its share.
            let allowed = replicas + if paused { 0 } else { surge };
            let current = total(&sets);
            if current != allowed && current > 0 {
                let mut left = allowed;
                let n = active.len();
                for (j, &i) in active.iter().enumerate() {
                    let r = replicas_of(&sets.items[i].0);
                    let size = if j + 1 == n { left.max(0) } else { (r * allowed + current / 2) / current };
                    left -= size;
                    if size != r {
                        out.actions.push(event(format!(
                            "Scaled {} replica set {} to {size}",
                            if size > r { "up" } else { "down" },
                            meta_str(&sets.items[i].0, "name")
                        )));
                    }
                    sets.set_replicas(i, size, replicas);
                }
            } else {
                for &i in &active {
                    let r = replicas_of(&sets.items[i].0);
                    sets.set_replicas(i, r, replicas);
                }
            }
        } else if let Some(ni) = new_idx {
            let new_r = replicas_of(&sets.items[ni].0);
            let olds: Vec<usize> = (0..sets.items.len()).filter(|&i| i != ni).collect();
            if strategy == "Recreate" {
                let mut old_running = false;
                for &i in &olds {
                    if replicas_of(&sets.items[i].0) > 0 {
                        out.actions.push(event(format!(
                            "Scaled down replica set {} to 0",
                            meta_str(&sets.items[i].0, "name")
                        )));
                        sets.set_replicas(i, 0, replicas);
                    }
                    old_running |= status_num(&sets.items[i].0, "replicas") > 0;
                }
                if !old_running && new_r != replicas {
                    out.actions.push(event(format!(
                        "Scaled up replica set {} to {replicas}",
                        meta_str(&sets.items[ni].0, "name")
                    )));
                    sets.set_replicas(ni, replicas, replicas);
                }
            } else {
                // Scale the new set up within the surge.
                let room = replicas + surge - total(&sets);
                if new_r < replicas && room > 0 {
                    let size = (new_r + room).min(replicas);
                    out.actions.push(event(format!(
                        "Scaled up replica set {} to {size}",
                        meta_str(&sets.items[ni].0, "name")
                    )));
                    sets.set_replicas(ni, size, replicas);
                } else if new_r > replicas {
                    sets.set_replicas(ni, replicas, replicas);
                } else {
                    sets.set_replicas(ni, new_r, replicas);
                }
                // Scale old sets down as far as availability allows, oldest first;
                // unavailable old pods go first, they count for nothing.
                let min_available = replicas - unavailable;
                // A set being scaled down may still report pods it is stopping: no
                // set counts more available pods than it is meant to have.
                let avail = |r: &Value| status_num(r, "availableReplicas").min(replicas_of(r));
                let available: i64 = sets.items.iter().map(|(r, _)| avail(r)).sum();
                let new_rs = &sets.items[ni].0;
                let new_unavailable = (replicas_of(new_rs) - status_num(new_rs, "availableReplicas")).max(0);
                let mut budget = total(&sets) - min_available - new_unavailable;
                for &i in &olds {
                    let r = replicas_of(&sets.items[i].0);
                    let unhealthy = (r - avail(&sets.items[i].0)).max(0);
                    let cut = unhealthy.min(budget.max(0));
                    if cut > 0 {
                        budget -= cut;
                        sets.set_replicas(i, r - cut, replicas);
                    }
                }
                let mut down = (available - min_available).max(0);
                for &i in &olds {
                    let r = replicas_of(&sets.items[i].0);
                    let cut = r.min(down);
                    if cut > 0 {
                        down -= cut;
                        out.actions.push(event(format!(
                            "Scaled down replica set {} to {}",
                            meta_str(&sets.items[i].0, "name"),
                            r - cut
                        )));
                        sets.set_replicas(i, r - cut, replicas);
                    } else if r > 0 {
                        sets.set_replicas(i, r, replicas);
                    }
                }
            }
        }

        // History: ReplicaSets scaled to zero beyond revisionHistoryLimit go, oldest first.
        let limit = d.pointer("/spec/revisionHistoryLimit").and_then(Value::as_i64).unwrap_or(10).max(0) as usize;
        let dead: Vec<usize> = (0..sets.items.len())
            .filter(|&i| Some(i) != new_idx)
            .filter(|&i| replicas_of(&sets.items[i].0) == 0 && status_num(&sets.items[i].0, "replicas") == 0)
            .collect();
        let mut removed = Vec::new();
        if dead.len() > limit {
            for &i in dead.iter().take(dead.len() - limit) {
                let rs = &sets.items[i].0;
                out.actions.push(Action::Delete {
                    key: key_of(rs).unwrap_or_default(),
                    rv: crate::objects::resource_version(rs),
                });
                removed.push(i);
            }
        }
        for (i, (rs, changed)) in sets.items.iter().enumerate() {
            if *changed && !removed.contains(&i) {
                out.actions.push(Action::Replace(rs.clone()));
            }
        }

        // Status and conditions.
        let new_rs = new_idx.map(|i| &sets.items[i].0);
        let sum = |f: &str| sets.items.iter().map(|(r, _)| status_num(r, f)).sum::<i64>();
        let (status_replicas, ready, available) = (sum("replicas"), sum("readyReplicas"), sum("availableReplicas"));
        let updated = new_rs.map(|r| status_num(r, "replicas")).unwrap_or(0);
        let mut nd = d.clone();
        let old_status = d.get("status").cloned().unwrap_or(json!({}));
        let mut status = old_status.clone();
        status["observedGeneration"] = d.pointer("/metadata/generation").cloned().unwrap_or(json!(1));
        status["replicas"] = json!(status_replicas);
        status["updatedReplicas"] = json!(updated);
        status["readyReplicas"] = json!(ready);
        status["availableReplicas"] = json!(available);
        status["unavailableReplicas"] = json!((replicas.max(status_replicas) - available).max(0));
        nd["status"] = status;
        let stamp = crate::util::now();
        if available >= replicas - unavailable {
            set_condition(
                &mut nd,
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
                &stamp,
            );
        } else {
            set_condition(
                &mut nd,
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
                &stamp,
            );
        }
        let rs_name = new_rs.map(|r| meta_str(r, "name").to_string()).unwrap_or_default();
        let complete = updated == replicas
            && status_replicas == replicas
            && available == replicas
            && new_rs.is_some_and(|r| replicas_of(r) == replicas);
        let progressed = ["replicas", "updatedReplicas", "readyReplicas", "availableReplicas"]
            .iter()
            .any(|f| old_status.get(*f) != nd["status"].get(*f))
            || sets.items.iter().any(|(_, c)| *c);
        let deadline = d.pointer("/spec/progressDeadlineSeconds").and_then(Value::as_i64).unwrap_or(600);
        let progressing = condition(d, "Progressing");
        let reason = progressing.as_ref().and_then(|c| c.get("reason")?.as_str().map(String::from)).unwrap_or_default();
        if paused {
            set_condition(&mut nd, "Progressing", "Unknown", "DeploymentPaused", "Deployment is paused", &stamp);
        } else if complete {
            if reason != "NewReplicaSetAvailable" {
                set_condition(
                    &mut nd,
                    "Progressing",
                    "True",
                    "NewReplicaSetAvailable",
                    &format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
                    &stamp,
                );
                stamp_progress(&mut nd, now);
            }
        } else if progressed || reason == "DeploymentPaused" || reason == "NewReplicaSetAvailable" || reason.is_empty()
        {
            set_condition(
                &mut nd,
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                &format!("ReplicaSet \"{rs_name}\" is progressing."),
                &stamp,
            );
            stamp_progress(&mut nd, now);
            out.requeue_after = Some(Duration::from_secs(deadline.max(1) as u64));
        } else if reason != "ProgressDeadlineExceeded" {
            let last = progressing
                .as_ref()
                .and_then(|c| c.get("lastUpdateTime")?.as_str())
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&chrono::Utc))
                .unwrap_or(now);
            let passed = now.signed_duration_since(last).num_seconds();
            if passed >= deadline {
                set_condition(
                    &mut nd,
                    "Progressing",
                    "False",
                    "ProgressDeadlineExceeded",
                    &format!("ReplicaSet \"{rs_name}\" has timed out progressing."),
                    &stamp,
                );
                stamp_progress(&mut nd, now);
                out.actions.push(Action::Event {
                    object: d.clone(),
                    warning: true,
                    reason: "ProgressDeadlineExceeded".into(),
                    message: format!("Deployment \"{name}\" has timed out progressing"),
                });
            } else {
                out.requeue_after = Some(Duration::from_secs((deadline - passed).max(1) as u64));
            }
        }
        if let Some(r) = new_rs {
            let rev = revision(r).to_string();
            if d.pointer("/metadata/annotations").and_then(|a| a.get(REVISION)).and_then(Value::as_str)
                != Some(rev.as_str())
            {
                annotate(&mut nd, REVISION, rev);
            }
        }
        if &nd != d {
            out.actions.push(Action::Replace(nd));
        }
        out
    }
}

fn condition(d: &Value, kind: &str) -> Option<Value> {
    d.pointer("/status/conditions")?.as_array()?.iter().find(|c| c["type"] == kind).cloned()
}

/// Progressing's lastUpdateTime says when the rollout last moved.
fn stamp_progress(d: &mut Value, now: chrono::DateTime<chrono::Utc>) {
    if let Some(list) = d.pointer_mut("/status/conditions").and_then(Value::as_array_mut) {
        if let Some(c) = list.iter_mut().find(|c| c["type"] == "Progressing") {
            c["lastUpdateTime"] = json!(crate::util::rfc3339(now));
        }
    }
}

/// The ReplicaSets of a Deployment by revision (for `rollout history` / `undo`).
pub fn history(d: &Value, sets: &[Value]) -> BTreeMap<i64, Value> {
    let uid = meta_str(d, "uid");
    sets.iter().filter(|r| controller_uid(r).as_deref() == Some(uid)).map(|r| (revision(r), r.clone())).collect()
}

/// The template to roll back to: the ReplicaSet's, without its hash label.
pub fn rollback_template(rs: &Value) -> Value {
    let mut t = rs.pointer("/spec/template").cloned().unwrap_or(json!({}));
    if let Some(l) = t.pointer_mut("/metadata/labels").and_then(Value::as_object_mut) {
        l.remove(HASH);
    }
    t
}

/// The key of a Deployment.
pub fn key(ns: &str, name: &str) -> String {
    Kind::resolve("deployment").expect("deployment").key(ns, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deploy(replicas: i64, image: &str, strategy: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web", "namespace": "d", "uid": "d1", "generation": 1, "resourceVersion": "9"},
               "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}}, "strategy": strategy,
                        "revisionHistoryLimit": 1, "progressDeadlineSeconds": 60,
                        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": image}]}}}})
    }

    fn rolling(surge: Value, unavail: Value) -> Value {
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavail}})
    }

    fn rs_for(d: &Value, replicas: i64, available: i64, rev: i64) -> Value {
        let hash = template_hash(&d["spec"]["template"]);
        let mut rs = new_replicaset(d, &hash, replicas, rev);
        rs["metadata"]["uid"] = json!(format!("rs-{hash}"));
        rs["metadata"]["resourceVersion"] = json!("4");
        rs["status"] = json!({"replicas": replicas, "readyReplicas": available, "availableReplicas": available});
        rs
    }

    fn now() -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now()
    }

    fn replaced_sets(out: &Outcome) -> BTreeMap<String, i64> {
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

    #[test]
    fn percentages_round_like_kubernetes() {
        assert_eq!(resolve(Some(&json!("25%")), 10, true, 0), 3);
        assert_eq!(resolve(Some(&json!("25%")), 10, false, 0), 2);
        assert_eq!(resolve(Some(&json!(2)), 10, false, 0), 2);
    }

    #[test]
    fn a_new_deployment_makes_a_full_replicaset_with_revision_one() {
        let d = deploy(3, "v1", rolling(json!("25%"), json!("25%")));
        let mut c = Cache::default();
        c.put(d.clone());
        let out = Deployments.reconcile(&key("d", "web"), &c, now());
        let rs = out.actions.iter().find_map(|a| if let Action::Create(r) = a { Some(r) } else { None }).unwrap();
        assert_eq!(rs["spec"]["replicas"], 3);
        assert_eq!(rs["metadata"]["annotations"][REVISION], "1");
        let hash = rs["metadata"]["labels"][HASH].as_str().unwrap();
        assert_eq!(rs["spec"]["selector"]["matchLabels"][HASH], hash);
        assert_eq!(rs["metadata"]["name"], format!("web-{hash}"));
    }

    #[test]
    fn a_rolling_update_stays_within_surge_and_unavailability() {
        let v1 = deploy(4, "v1", rolling(json!(1), json!(0)));
        let v2 = deploy(4, "v2", rolling(json!(1), json!(0)));
        let mut c = Cache::default();
        c.put(v2.clone());
        c.put(rs_for(&v1, 4, 4, 1));
        // Step 1: the new set is created with the surge (1).
        let out = Deployments.reconcile(&key("d", "web"), &c, now());
        let new =
            out.actions.iter().find_map(|a| if let Action::Create(r) = a { Some(r.clone()) } else { None }).unwrap();
        assert_eq!(new["spec"]["replicas"], 1);
        assert_eq!(new["metadata"]["annotations"][REVISION], "2");
        // Step 2: the new pod is not available yet: nothing old may go (maxUnavailable 0).
        let mut new_rs = rs_for(&v2, 1, 0, 2);
        c.put(new_rs.clone());
        let out = Deployments.reconcile(&key("d", "web"), &c, now());
        assert!(replaced_sets(&out).values().all(|&n| n != 3), "{:?}", replaced_sets(&out));
        // Step 3: it is available: one old pod goes.
        new_rs["status"]["availableReplicas"] = json!(1);
        c.put(new_rs);
        let out = Deployments.reconcile(&key("d", "web"), &c, now());
        let old_name = rs_for(&v1, 4, 4, 1)["metadata"]["name"].as_str().unwrap().to_string();
        assert_eq!(replaced_sets(&out).get(&old_name), Some(&3));
    }

    #[test]
    fn a_set_still_stopping_pods_does_not_count_them_as_available() {
        let v1 = deploy(3, "v1", rolling(json!(1), json!(0)));
        let v2 = deploy(3, "v2", rolling(json!(1), json!(0)));
        let mut c = Cache::default();
        c.put(v2.clone());
        // Old: scaled to 2 but its status still shows the 3 it had; new: 2 wanted, 1 available.
        let mut old = rs_for(&v1, 2, 3, 1);
        old["status"]["replicas"] = json!(3);
        annotate(&mut old, DESIRED, "3".into());
        let mut new = rs_for(&v2, 2, 1, 2);
        annotate(&mut new, DESIRED, "3".into());
        c.put(old.clone());
        c.put(new);
        let out = Deployments.reconcile(&key("d", "web"), &c, now());
        assert_eq!(replaced_sets(&out).get(old["metadata"]["name"].as_str().unwrap()), None, "{:?}", out.actions);
    }

    #[test]
    fn recreate_scales_old_to_zero_before_the_new_one_grows() {
        let v1 = deploy(2, "v1", json!({"type": "Recreate"}));
        let v2 = deploy(2, "v2", json!({"type": "Recreate"}));
        let mut c = Cache::default();
        c.put(v2.clone());
        c.put(rs_for(&v1, 2, 2, 1));
        let out = Deployments.reconcile(&key("d", "web"), &c, now());
        let new =
            out.actions.iter().find_map(|a| if let Action::Create(r) = a { Some(r.clone()) } else { None }).unwrap();
        assert_eq!(new["spec"]["replicas"], 0);
        c.put(rs_for(&v2, 0, 0, 2));
        let out = Deployments.reconcile(&key("d", "web"), &c, now());
        let old_name = rs_for(&v1, 2, 2, 1)["metadata"]["name"].as_str().unwrap().to_string();
        assert_eq!(replaced_sets(&out).get(&old_name), Some(&0));
        assert_eq!(replaced_sets(&out).len(), 1, "the new set waits until the old pods are gone");
    }

    #[test]
    fn scaling_mid_rollout_is_proportional() {
        let v1 = deploy(10, "v1", rolling(json!(3), json!(2)));
        let v2 = deploy(20, "v2", rolling(json!(3), json!(2)));
        let mut c = Cache::default();
        c.put(v2.clone());
        let mut old = rs_for(&v1, 8, 8, 1);
        annotate(&mut old, DESIRED, "10".into());
        let mut new = rs_for(&v2, 5, 0, 2);
        annotate(&mut new, DESIRED, "10".into());
        c.put(old.clone());
        c.put(new.clone());
        let out = Deployments.reconcile(&key("d", "web"), &c, now());
        let sizes = replaced_sets(&out);
        let total: i64 = sizes.values().sum();
        assert_eq!(total, 20 + 3, "replicas plus maxSurge");
        assert!(sizes[old["metadata"]["name"].as_str().unwrap()] > 8);
        assert!(sizes[new["metadata"]["name"].as_str().unwrap()] > 5);
    }

    #[test]
    fn pause_starts_no_rollout_and_the_deadline_is_reported() {
        let v1 = deploy(2, "v1", rolling(json!(1), json!(0)));
        let mut v2 = deploy(2, "v2", rolling(json!(1), json!(0)));
        v2["spec"]["paused"] = json!(true);
        let mut c = Cache::default();
        c.put(v2.clone());
        c.put(rs_for(&v1, 2, 2, 1));
        let out = Deployments.reconcile(&key("d", "web"), &c, now());
        assert!(!out.actions.iter().any(|a| matches!(a, Action::Create(_))), "paused: no new ReplicaSet");
        // Unpaused, stuck: the new pods never become available; the deadline passes.
        let mut stuck = deploy(2, "v2", rolling(json!(1), json!(0)));
        stuck["status"] = json!({"replicas": 3, "updatedReplicas": 1, "readyReplicas": 2, "availableReplicas": 2, "unavailableReplicas": 1, "observedGeneration": 1,
            "conditions": [{"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated", "lastUpdateTime": "2020-01-01T00:00:00Z", "lastTransitionTime": "2020-01-01T00:00:00Z"}]});
        let mut c = Cache::default();
        c.put(stuck.clone());
        c.put(rs_for(&v1, 2, 2, 1));
        let mut new = rs_for(&stuck, 1, 0, 2);
        annotate(&mut new, DESIRED, "2".into());
        c.put(new);
        let out = Deployments.reconcile(&key("d", "web"), &c, now());
        let d = out
            .actions
            .iter()
            .find_map(|a| if let Action::Replace(r) = a { (r["kind"] == "Deployment").then_some(r) } else { None })
            .unwrap();
        let p = d["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Progressing").unwrap();
        assert_eq!(p["reason"], "ProgressDeadlineExceeded");
        assert_eq!(p["status"], "False");
    }

    #[test]
    fn old_replicasets_beyond_the_history_limit_are_removed() {
        let v1 = deploy(1, "v1", rolling(json!(1), json!(0)));
        let v2 = deploy(1, "v2", rolling(json!(1), json!(0)));
        let v3 = deploy(1, "v3", rolling(json!(1), json!(0)));
        let mut c = Cache::default();
        c.put(v3.clone());
        c.put(rs_for(&v1, 0, 0, 1));
        c.put(rs_for(&v2, 0, 0, 2));
        let mut new = rs_for(&v3, 1, 1, 3);
        annotate(&mut new, DESIRED, "1".into());
        c.put(new);
        let out = Deployments.reconcile(&key("d", "web"), &c, now());
        let deleted: Vec<&String> = out
            .actions
            .iter()
            .filter_map(|a| if let Action::Delete { key, .. } = a { Some(key) } else { None })
            .collect();
        assert_eq!(deleted.len(), 1);
        assert!(deleted[0].ends_with(rs_for(&v1, 0, 0, 1)["metadata"]["name"].as_str().unwrap()));
    }
}
