//! Rollback. As in Kubernetes' apps/v1 the client rolls back (`rollout undo`
//! copies an old ReplicaSet's template into the Deployment) with what this
//! file gives it, and the controller's only part is to see a template it
//! already has a ReplicaSet for and make that set the newest revision again.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::sync::{annotate, revision, Sets};
use super::{HASH, REVISION};
use crate::controllers::framework::controller_uid;
use crate::objects::meta_str;

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

/// Rolling back to an older template makes its ReplicaSet the newest revision.
pub(super) fn promote(sets: &mut Sets) {
    let Some(i) = sets.new else { return };
    let (rs, changed) = &mut sets.items[i];
    if revision(rs) < sets.max_rev {
        annotate(rs, REVISION, (sets.max_rev + 1).to_string());
        *changed = true;
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{deploy, name, reconcile, rolling, rs_for};
    use super::super::sync::template_hash;
    use super::*;
    use crate::controllers::framework::{Action, Cache};

    #[test]
    fn a_rollback_template_is_the_deployments_own_again() {
        let d = deploy(2, "v1", rolling(json!(1), json!(0)));
        let rs = rs_for(&d, 2, 2, 1);
        let t = rollback_template(&rs);
        assert_eq!(t, d["spec"]["template"]);
        assert_eq!(template_hash(&t), template_hash(&d["spec"]["template"]));
    }

    #[test]
    fn history_lists_only_the_deployments_own_sets_by_revision() {
        let d = deploy(1, "v2", rolling(json!(1), json!(0)));
        let mine = [rs_for(&deploy(1, "v1", json!({})), 0, 0, 1), rs_for(&d, 1, 1, 2)];
        let mut other = rs_for(&deploy(1, "v3", json!({})), 1, 1, 7);
        other["metadata"]["ownerReferences"][0]["uid"] = json!("someone-else");
        let h = history(&d, &[mine[1].clone(), other, mine[0].clone()]);
        assert_eq!(h.keys().copied().collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(name(&h[&2]), name(&mine[1]));
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
