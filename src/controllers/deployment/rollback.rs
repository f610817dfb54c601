//! Rollback. As in Kubernetes' apps/v1 the client rolls back (`rollout undo`
//! copies an old ReplicaSet's template into the Deployment) with what this
//! file gives it, and the controller's only part is to see a template it
//! already has a ReplicaSet for and make that set the newest revision again.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;

use super::sync::{annotate, revision, Sets};
use super::{HASH, REVISION};

/// The ReplicaSets of a Deployment by revision (for `rollout history` / `undo`).
pub fn history(d: &Deployment, sets: &[ReplicaSet]) -> BTreeMap<i64, ReplicaSet> {
    let uid = d.metadata.uid.as_deref();
    let controlled_by_d = |rs: &&ReplicaSet| {
        let refs = rs.metadata.owner_references.iter().flatten();
        refs.filter(|o| o.controller == Some(true)).any(|o| Some(o.uid.as_str()) == uid)
    };
    sets.iter().filter(controlled_by_d).map(|r| (revision(&r.metadata), r.clone())).collect()
}

/// The template to roll back to: the ReplicaSet's, without its hash label.
pub fn rollback_template(rs: &ReplicaSet) -> PodTemplateSpec {
    let mut t = rs.spec.as_ref().and_then(|s| s.template.clone()).unwrap_or_default();
    if let Some(l) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        l.remove(HASH);
    }
    t
}

/// Rolling back to an older template makes its ReplicaSet the newest revision.
pub(super) fn promote(sets: &mut Sets) {
    let Some(i) = sets.new else { return };
    let set = &mut sets.items[i];
    if revision(&set.rs.metadata) < sets.max_rev {
        annotate(&mut set.rs.metadata, REVISION, (sets.max_rev + 1).to_string());
        set.changed = true;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::super::fixtures::{deploy, name, reconcile, rolling, rs_for};
    use super::super::sync::template_hash;
    use super::*;
    use crate::controllers::framework::{Action, Cache};

    fn typed<T: serde::de::DeserializeOwned>(v: &Value) -> T {
        serde_json::from_value(v.clone()).unwrap()
    }

    #[test]
    fn a_rollback_template_is_the_deployments_own_again() {
        let d = deploy(2, "v1", rolling(json!(1), json!(0)));
        let rs = rs_for(&d, 2, 2, 1);
        let t = rollback_template(&typed(&rs));
        assert_eq!(json!(t), d["spec"]["template"]);
        assert_eq!(template_hash(&t), template_hash(&typed(&d["spec"]["template"])));
    }

    #[test]
    fn history_lists_only_the_deployments_own_sets_by_revision() {
        let d = deploy(1, "v2", rolling(json!(1), json!(0)));
        let mine = [rs_for(&deploy(1, "v1", json!({})), 0, 0, 1), rs_for(&d, 1, 1, 2)];
        let mut other = rs_for(&deploy(1, "v3", json!({})), 1, 1, 7);
        other["metadata"]["ownerReferences"][0]["uid"] = json!("someone-else");
        let sets: Vec<ReplicaSet> = [&mine[1], &other, &mine[0]].into_iter().map(typed).collect();
        let h = history(&typed(&d), &sets);
        assert_eq!(h.keys().copied().collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(h[&2].metadata.name.as_deref(), Some(name(&mine[1]).as_str()));
    }

    #[test]
    fn rolling_back_makes_the_old_set_the_newest_revision() {
        // Revisions 1 (v1) and 2 (v2); the Deployment goes back to v1.
        let v1 = deploy(2, "v1", rolling(json!(1), json!(0)));
        let v2 = deploy(2, "v2", rolling(json!(1), json!(0)));
        let mut c = Cache::default();
        c.put(v1.clone());
        c.put(rs_for(&v1, 0, 0, 1));
        c.put(rs_for(&v2, 2, 2, 2));
        let out = reconcile(&c);
        let back = out
            .actions
            .iter()
            .find_map(|a| match a {
                Action::Replace(r) if name(r) == name(&rs_for(&v1, 0, 0, 1)) => Some(r),
                _ => None,
            })
            .expect("the v1 set is rewritten");
        assert_eq!(back["metadata"]["annotations"][REVISION], "3");
        assert!(!out.actions.iter().any(|a| matches!(a, Action::Create(_))), "no new set for a known template");
        let d = out.actions.iter().find_map(|a| match a {
            Action::Replace(r) if r["kind"] == "Deployment" => Some(r),
            _ => None,
        });
        assert_eq!(d.expect("the Deployment is updated")["metadata"]["annotations"][REVISION], "3");
    }
}
