//! The Recreate strategy: every old ReplicaSet goes to zero, and only when
//! none of their pods runs any more does the new one grow to full size, so
//! that two versions never run side by side.

use super::sync::{counted, scaled, Sets, Spec};
use crate::controllers::framework::Outcome;

/// The size a new template's ReplicaSet starts at: nothing while old sets
/// still ask for or run pods.
pub(super) fn first_size(replicas: i64, old_active: bool) -> i64 {
    if old_active {
        0
    } else {
        replicas
    }
}

/// One step: scale the old sets to zero; once their pods are gone, the new
/// set to `replicas`.
pub(super) fn step(spec: &Spec, sets: &mut Sets, new: usize, out: &mut Outcome) {
    let mut old_running = false;
    for i in sets.olds() {
        if sets.replicas(i) > 0 {
            out.actions.push(scaled(spec, false, sets.name(i), 0));
            sets.set_replicas(i, 0, spec.replicas);
        }
        old_running |= counted(sets.rs(i)).0 > 0;
    }
    if !old_running && sets.replicas(new) != spec.replicas {
        out.actions.push(scaled(spec, true, sets.name(new), spec.replicas));
        sets.set_replicas(new, spec.replicas, spec.replicas);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::fixtures::{created, deploy, name, reconcile, replaced_sets, rs_for};
    use super::*;
    use crate::controllers::framework::Cache;

    #[test]
    fn recreate_scales_old_to_zero_before_the_new_one_grows() {
        let v1 = deploy(2, "v1", json!({"type": "Recreate"}));
        let v2 = deploy(2, "v2", json!({"type": "Recreate"}));
        let mut c = Cache::default();
        c.put(v2.clone());
        c.put(rs_for(&v1, 2, 2, 1));
        let new = created(&reconcile(&c));
        assert_eq!(new["spec"]["replicas"], 0);
        c.put(rs_for(&v2, 0, 0, 2));
        let out = reconcile(&c);
        let old_name = name(&rs_for(&v1, 2, 2, 1));
        assert_eq!(replaced_sets(&out).get(&old_name), Some(&0));
        assert_eq!(replaced_sets(&out).len(), 1, "the new set waits until the old pods are gone");
    }

    #[test]
    fn the_new_set_grows_once_the_old_pods_are_gone() {
        let v1 = deploy(2, "v1", json!({"type": "Recreate"}));
        let v2 = deploy(2, "v2", json!({"type": "Recreate"}));
        let mut c = Cache::default();
        c.put(v2.clone());
        c.put(rs_for(&v1, 0, 0, 1));
        let new = rs_for(&v2, 0, 0, 2);
        c.put(new.clone());
        assert_eq!(replaced_sets(&reconcile(&c)).get(&name(&new)), Some(&2));
    }

    #[test]
    fn a_first_recreate_set_starts_full_and_later_ones_empty() {
        assert_eq!(first_size(3, false), 3);
        assert_eq!(first_size(3, true), 0);
    }
}
