//! The Deployment controller: one ReplicaSet per pod template (named and
//! labelled by the template's hash), rolled over at a controlled rate —
//! RollingUpdate with maxSurge / maxUnavailable, or Recreate — with revisions
//! in the `deployment.kubernetes.io/revision` annotation, proportional scaling
//! during a rollout, pause, a progress deadline and history cleanup. Rollback
//! is the client's work (it copies an old ReplicaSet's template back), as in
//! Kubernetes' apps/v1.
//!
//! The reconcile is split by concern, as Kubernetes splits its own deployment
//! controller, so that each step can be read and tested alone: [`sync`] finds
//! or makes the current template's ReplicaSet, scales proportionally and
//! cleans up history; [`rolling`] and [`recreate`] are the two strategies;
//! [`rollback`] is what rollout history and undo need; [`progress`] writes the
//! status and the Available / Progressing conditions. This file only
//! dispatches between them.

mod limits;
mod progress;
mod recreate;
mod rollback;
mod rolling;
mod sync;

/// A new template: its ReplicaSet, sized by the strategy, and the
/// Deployment's next revision.
fn create_new(spec: &Spec, sets: &Sets, now: chrono::DateTime<chrono::Utc>) -> Outcome {
    let size = if spec.recreate {
        let old_active = sets.items.iter().any(|s| replicas_of(&s.rs) > 0 || counted(&s.rs).0 > 0);
        recreate::first_size(spec.replicas, old_active)
    } else {
        rolling::first_size(spec.replicas, spec.limits.surge, sets.total(), !sets.items.is_empty())
    };
    let rev = sets.max_rev + 1;
    let rs = new_replicaset(spec.d, &spec.hash, size, rev);
    let rs_name = rs.metadata.name.clone().unwrap_or_default();
    let mut out = Outcome::default();
    out.actions.push(scaled(spec, true, &rs_name, size));
    out.actions.push(Action::Create(serde_json::to_value(&rs).expect("a ReplicaSet serializes")));
    let mut nd = spec.d.clone();
    annotate(&mut nd.metadata, REVISION, rev.to_string());
    progress::new_replicaset_created(&mut nd, &rs_name, now);
    out.actions.push(Action::Replace(spec.obj.with(&nd)));
    out
}

#[cfg(test)]
mod fixtures;

pub use limits::resolve;
pub use rollback::{history, rollback_template};
pub use sync::{new_replicaset, revision, template_hash};

use serde_json::Value;

use super::framework::{Action, Cache, Outcome, Reconciler};
use crate::objects::kinds::{self, Kind};
use sync::{annotate, counted, replicas_of, scaled, Sets, Spec};

/// Annotation: the revision of a ReplicaSet (and of its Deployment).
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Annotation: the Deployment's replicas when the ReplicaSet was last sized.
pub const DESIRED: &str = "deployment.kubernetes.io/desired-replicas";
/// Label: the hash of the pod template.
pub const HASH: &str = "pod-template-hash";

/// The Deployment reconciler.
pub struct Deployments;

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
        let Some(spec) = cache.object(&kinds::DEPLOYMENT, key).and_then(Spec::of) else { return Outcome::default() };
        if spec.d.metadata.deletion_timestamp.is_some() {
            return Outcome::default();
        }
        let mut sets = Sets::owned(&spec, cache);
        if sets.new.is_none() && !spec.paused {
            return create_new(&spec, &sets, now);
        }
        let mut out = Outcome::default();
        rollback::promote(&mut sets);
        if spec.paused || sets.resized_mid_rollout(spec.replicas) {
            sync::scale_proportionally(&spec, &mut sets, &mut out);
        } else if let Some(new) = sets.new {
            if spec.recreate {
                recreate::step(&spec, &mut sets, new, &mut out);
            } else {
                rolling::step(&spec, &mut sets, new, &mut out);
            }
        }
        sync::clean_up_and_write(&spec, &sets, &mut out);
        progress::update(&spec, &sets, now, &mut out);
        out
    }
}

/// The key of a Deployment.
pub fn key(ns: &str, name: &str) -> String {
    kinds::DEPLOYMENT.key(ns, name)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::fixtures::{deploy, reconcile, rolling};
    use super::*;
    use crate::controllers::framework::Action;

    #[test]
    fn a_deployment_being_deleted_is_left_alone() {
        let mut d = deploy(3, "v1", rolling(json!(1), json!(0)));
        d["metadata"]["deletionTimestamp"] = json!("2020-01-01T00:00:00Z");
        let mut c = Cache::default();
        c.put(d);
        assert_eq!(reconcile(&c), Outcome::default());
    }

    #[test]
    fn a_missing_deployment_asks_for_nothing() {
        let out = Deployments.reconcile(&key("d", "web"), &Cache::default(), chrono::Utc::now());
        assert!(out.actions.is_empty() && out.requeue_after.is_none());
    }

    #[test]
    fn a_settled_deployment_writes_nothing_again() {
        let mut c = Cache::default();
        c.put(deploy(2, "v1", rolling(json!(1), json!(0))));
        // Round 1 creates the ReplicaSet and stamps the Deployment; feed both back.
        for a in reconcile(&c).actions {
            if let Action::Create(mut rs) | Action::Replace(mut rs) = a {
                if rs["kind"] == "ReplicaSet" {
                    rs["metadata"]["uid"] = json!("rs1");
                    rs["status"] = json!({"replicas": 2, "readyReplicas": 2, "availableReplicas": 2});
                }
                c.put(rs);
            }
        }
        // Round 2 records the completed rollout; round 3 has nothing left to say.
        let out = reconcile(&c);
        for a in &out.actions {
            if let Action::Replace(d) = a {
                c.put(d.clone());
            }
        }
        let out = reconcile(&c);
        assert!(!out.actions.iter().any(|a| matches!(a, Action::Create(_) | Action::Replace(_))), "{out:?}");
    }
}
