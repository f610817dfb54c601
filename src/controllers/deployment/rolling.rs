//! The RollingUpdate strategy: the new ReplicaSet grows while the total stays
//! within `replicas + maxSurge`, and old ones shrink while at least
//! `replicas - maxUnavailable` pods stay available. The arithmetic is pure
//! functions of counts, so that each limit can be checked case by case.

use k8s_openapi::api::apps::v1::ReplicaSet;

#[cfg(test)]
use super::limits::{resolve, Limits};
use super::sync::{counted, replicas_of, scaled, Sets, Spec};
use crate::controllers::framework::Outcome;

/// The size a new template's ReplicaSet starts at: all `replicas` when it
/// is the first, else as many as fit within the surge over the `total` the
/// old sets ask for.
pub(super) fn first_size(replicas: i64, surge: i64, total: i64, has_old: bool) -> i64 {
    if has_old {
        (replicas + surge - total).clamp(0, replicas)
    } else {
        replicas
    }
}

/// The new set's next size: up by the room the surge leaves over `total`
/// (never past `replicas`), down to `replicas` if above it.
pub(super) fn new_set_size(current: i64, replicas: i64, surge: i64, total: i64) -> i64 {
    let room = replicas + surge - total;
    if current < replicas && room > 0 {
        (current + room).min(replicas)
    } else {
        current.min(replicas)
    }
}

/// An old ReplicaSet as the scale-down sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Old {
    /// The pods it asks for.
    pub replicas: i64,
    /// Its available pods, at most `replicas`.
    pub available: i64,
}

/// How far one old set shrinks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Cut {
    /// Unavailable pods removed first: they count for nothing.
    pub unhealthy: i64,
    /// Available pods removed after them.
    pub available: i64,
}

/// The cuts of the old sets, oldest first. `total` is what all sets ask for,
/// `available` what they have available, `new_unavailable` the new set's
/// pods not available yet. Unhealthy pods go as long as the total stays
/// above `min_available` plus the new set's unavailable pods; available ones
/// as far as `available` stays at `min_available`.
pub(super) fn scale_down(
    olds: &[Old],
    total: i64,
    available: i64,
    min_available: i64,
    new_unavailable: i64,
) -> Vec<Cut> {
    let mut budget = total - min_available - new_unavailable;
    let mut down = (available - min_available).max(0);
    olds.iter()
        .map(|o| {
            let unhealthy = (o.replicas - o.available).max(0).min(budget.max(0));
            budget -= unhealthy;
            let available = (o.replicas - unhealthy).min(down);
            if available > 0 {
                down -= available;
            }
            Cut { unhealthy, available: available.max(0) }
        })
        .collect()
}

/// One step of a rolling update: grow the new set within the surge, then
/// shrink the old ones within the availability.
pub(super) fn step(spec: &Spec, sets: &mut Sets, new: usize, out: &mut Outcome) {
    let replicas = spec.replicas;
    let current = sets.replicas(new);
    let size = new_set_size(current, replicas, spec.limits.surge, sets.total());
    if size > current {
        out.actions.push(scaled(spec, true, sets.name(new), size));
    }
    sets.set_replicas(new, size, replicas);

    // A set being scaled down may still report pods it is stopping: no set
    // counts more available pods than it is meant to have.
    let avail = |r: &ReplicaSet| counted(r).2.min(replicas_of(r));
    let available: i64 = sets.items.iter().map(|s| avail(&s.rs)).sum();
    let new_unavailable = (sets.replicas(new) - counted(sets.rs(new)).2).max(0);
    let olds = sets.olds();
    let old: Vec<Old> =
        olds.iter().map(|&i| Old { replicas: sets.replicas(i), available: avail(sets.rs(i)) }).collect();
    let cuts = scale_down(&old, sets.total(), available, replicas - spec.limits.unavailable, new_unavailable);
    for ((&i, o), cut) in olds.iter().zip(&old).zip(cuts) {
        let r = o.replicas - cut.unhealthy;
        if cut.unhealthy > 0 {
            sets.set_replicas(i, r, replicas);
        }
        if cut.available > 0 {
            out.actions.push(scaled(spec, false, sets.name(i), r - cut.available));
            sets.set_replicas(i, r - cut.available, replicas);
        } else if r > 0 {
            sets.set_replicas(i, r, replicas);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::fixtures::annotate_json;
    use super::super::fixtures::{created, deploy, name, reconcile, replaced_sets, rolling, rs_for};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn ios(v: serde_json::Value) -> IntOrString {
        serde_json::from_value(v).unwrap()
    }
    use super::super::{DESIRED, REVISION};
    use super::*;
    use crate::controllers::framework::Cache;

    #[test]
    fn percentages_round_like_kubernetes() {
        // (value, total, round up, default) -> count
        let cases = [
            (Some(ios(json!("25%"))), 10, true, 0, 3),
            (Some(ios(json!("25%"))), 10, false, 0, 2),
            (Some(ios(json!(2))), 10, false, 0, 2),
            (Some(ios(json!("0%"))), 10, true, 1, 0),
            (Some(ios(json!("100%"))), 7, false, 0, 7),
            (Some(ios(json!("3"))), 10, true, 1, 3),
            (None, 10, true, 1, 1),
            (Some(ios(json!("lots"))), 10, false, 0, 0),
        ];
        for (v, total, up, default, want) in cases {
            assert_eq!(resolve(v.as_ref(), total, up, default), want, "{v:?} of {total}");
        }
    }

    #[test]
    fn limits_follow_the_strategy() {
        // (recreate, maxSurge, maxUnavailable, replicas) -> (surge, unavailable)
        let cases = [
            (false, None, None, 4, (1, 0)),
            (false, Some(ios(json!("25%"))), Some(ios(json!("25%"))), 10, (3, 2)),
            (false, Some(ios(json!(0))), Some(ios(json!(0))), 4, (0, 1)),
            (false, Some(ios(json!("0%"))), Some(ios(json!("10%"))), 5, (0, 1)),
            (false, Some(ios(json!(0))), Some(ios(json!(2))), 4, (0, 2)),
            (true, Some(ios(json!(5))), Some(ios(json!(5))), 3, (0, 3)),
            (true, None, None, 0, (0, 1)),
        ];
        for (recreate, s, u, replicas, (surge, unavailable)) in cases {
            assert_eq!(
                Limits::of(recreate, s.as_ref(), u.as_ref(), replicas),
                Limits { surge, unavailable },
                "recreate {recreate}, {s:?}/{u:?} of {replicas}"
            );
        }
    }

    #[test]
    fn the_new_set_grows_within_the_surge() {
        // first_size: (replicas, surge, old total, has old) -> size
        let first =
            [(3, 1, 0, false, 3), (4, 1, 4, true, 1), (4, 0, 4, true, 0), (4, 2, 1, true, 4), (4, 1, 9, true, 0)];
        for (replicas, surge, total, has_old, want) in first {
            assert_eq!(first_size(replicas, surge, total, has_old), want, "first of {replicas}+{surge} over {total}");
        }
        // new_set_size: (current, replicas, surge, total) -> size
        let next = [
            (1, 4, 1, 5, 1), // at the surge: wait
            (1, 4, 1, 4, 2), // one old pod went: one more
            (1, 4, 2, 3, 4), // room for more than is missing: stop at replicas
            (4, 4, 1, 5, 4), // done
            (6, 4, 1, 6, 4), // the Deployment shrank: down to replicas
            (0, 4, 0, 3, 1), // surge 0: grows as old ones go
        ];
        for (current, replicas, surge, total, want) in next {
            assert_eq!(new_set_size(current, replicas, surge, total), want, "{current} of {replicas}+{surge}, {total}");
        }
    }

    #[test]
    fn old_sets_shrink_within_the_availability() {
        let old = |replicas, available| Old { replicas, available };
        let cut = |unhealthy, available| Cut { unhealthy, available };
        // (olds, total, available, min available, new unavailable) -> cuts
        type Case = (Vec<Old>, i64, i64, i64, i64, Vec<Cut>);
        let cases: Vec<Case> = vec![
            // 4 old + 1 new not yet available, maxUnavailable 0: nothing goes.
            (vec![old(4, 4)], 5, 4, 4, 1, vec![cut(0, 0)]),
            // The new pod is available: one old one goes.
            (vec![old(4, 4)], 5, 5, 4, 0, vec![cut(0, 1)]),
            // maxUnavailable 2 of 4: two go at once.
            (vec![old(4, 4)], 4, 4, 2, 0, vec![cut(0, 2)]),
            // Unhealthy old pods go first, within the budget, and cost no availability.
            (vec![old(4, 2)], 5, 2, 2, 1, vec![cut(2, 0)]),
            // The budget for unhealthy pods is shared oldest first.
            (vec![old(2, 0), old(2, 0)], 6, 2, 2, 1, vec![cut(2, 0), cut(1, 0)]),
            // Available pods go from the oldest set first.
            (vec![old(1, 1), old(3, 3)], 6, 6, 3, 0, vec![cut(0, 1), cut(0, 2)]),
            // Below the minimum already: nothing goes.
            (vec![old(3, 1)], 3, 1, 3, 0, vec![cut(0, 0)]),
            // An empty old set stays empty.
            (vec![old(0, 0)], 3, 3, 2, 0, vec![cut(0, 0)]),
        ];
        for (olds, total, available, min, new_unavailable, want) in cases {
            assert_eq!(scale_down(&olds, total, available, min, new_unavailable), want, "{olds:?}");
        }
    }

    #[test]
    fn a_rolling_update_stays_within_surge_and_unavailability() {
        let v1 = deploy(4, "v1", rolling(json!(1), json!(0)));
        let v2 = deploy(4, "v2", rolling(json!(1), json!(0)));
        let mut c = Cache::default();
        c.put(v2.clone());
        c.put(rs_for(&v1, 4, 4, 1));
        // Step 1: the new set is created with the surge (1).
        let new = created(&reconcile(&c));
        assert_eq!(new["spec"]["replicas"], 1);
        assert_eq!(new["metadata"]["annotations"][REVISION], "2");
        // Step 2: the new pod is not available yet: nothing old may go (maxUnavailable 0).
        let mut new_rs = rs_for(&v2, 1, 0, 2);
        c.put(new_rs.clone());
        let out = reconcile(&c);
        assert!(replaced_sets(&out).values().all(|&n| n != 3), "{:?}", replaced_sets(&out));
        // Step 3: it is available: one old pod goes.
        new_rs["status"]["availableReplicas"] = json!(1);
        c.put(new_rs);
        let out = reconcile(&c);
        assert_eq!(replaced_sets(&out).get(&name(&rs_for(&v1, 4, 4, 1))), Some(&3));
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
        annotate_json(&mut old, DESIRED, "3");
        let mut new = rs_for(&v2, 2, 1, 2);
        annotate_json(&mut new, DESIRED, "3");
        c.put(old.clone());
        c.put(new);
        let out = reconcile(&c);
        assert_eq!(replaced_sets(&out).get(&name(&old)), None, "{:?}", out.actions);
    }
}
