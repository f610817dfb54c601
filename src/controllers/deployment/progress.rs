//! A Deployment's status: the replica counts summed over its ReplicaSets, the
//! Available condition (at least `replicas - maxUnavailable` available) and
//! the Progressing condition, whose `lastUpdateTime` says when the rollout
//! last moved so that a rollout stuck for `progressDeadlineSeconds` is
//! reported. The decisions are pure functions of counts and times.

use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};

use super::sync::{annotate, annotation, counted, replicas_of, revision, Sets, Spec};
use super::REVISION;
use crate::controllers::framework::{Action, Outcome};
use crate::util::{chrono_of, time};

/// What one ReplicaSet reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct SetStatus {
    /// Pods it has.
    pub replicas: i64,
    /// Pods Ready.
    pub ready: i64,
    /// Pods available (Ready for minReadySeconds).
    pub available: i64,
}

impl SetStatus {
    /// The status of a ReplicaSet.
    pub fn of(rs: &ReplicaSet) -> Self {
        let (replicas, ready, available) = counted(rs);
        SetStatus { replicas, ready, available }
    }
}

/// A Deployment's replica counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Counts {
    /// Pods of every set.
    pub replicas: i64,
    /// Pods of the new set.
    pub updated: i64,
    /// Ready pods.
    pub ready: i64,
    /// Available pods.
    pub available: i64,
    /// Pods missing or not available, against the larger of desired and existing.
    pub unavailable: i64,
}

impl Counts {
    /// The counts of `sets`, of which `new` is the current template's, for
    /// `desired` replicas.
    pub fn sum(sets: &[SetStatus], new: Option<SetStatus>, desired: i64) -> Self {
        let replicas = sets.iter().map(|s| s.replicas).sum();
        let available = sets.iter().map(|s| s.available).sum();
        Counts {
            replicas,
            updated: new.map(|s| s.replicas).unwrap_or(0),
            ready: sets.iter().map(|s| s.ready).sum(),
            available,
            unavailable: (desired.max(replicas) - available).max(0),
        }
    }

    /// Whether the rollout is complete: every pod is of the new set, which
    /// asks for exactly `desired` (`new_spec`), and available.
    pub fn complete(&self, desired: i64, new_spec: Option<i64>) -> bool {
        self.updated == desired && self.replicas == desired && self.available == desired && new_spec == Some(desired)
    }

    /// Write the counts over a previous `status`.
    fn write(&self, status: &mut DeploymentStatus, generation: i64) {
        status.observed_generation = Some(generation);
        status.replicas = Some(self.replicas as i32);
        status.updated_replicas = Some(self.updated as i32);
        status.ready_replicas = Some(self.ready as i32);
        status.available_replicas = Some(self.available as i32);
        status.unavailable_replicas = Some(self.unavailable as i32);
    }

    /// The counts a status shows, to tell whether the rollout moved.
    fn shown(status: &DeploymentStatus) -> [Option<i32>; 4] {
        [status.replicas, status.updated_replicas, status.ready_replicas, status.available_replicas]
    }
}

/// What the Progressing condition should say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Progress {
    /// Paused: Unknown.
    Paused,
    /// The rollout has just completed.
    Complete,
    /// The rollout moved (or has just resumed): look again when the deadline would pass.
    Moving {
        /// Seconds until then.
        recheck: i64,
    },
    /// The rollout has not moved for the whole deadline.
    TimedOut,
    /// Not moved yet, but within the deadline: look again when it would pass.
    Waiting {
        /// Seconds until then.
        recheck: i64,
    },
    /// Nothing new to say (complete, or timed out, already).
    Unchanged,
}

/// What the previous round's Progressing condition said, and what this round saw.
#[derive(Clone, Copy, Debug)]
pub(super) struct Observed<'a> {
    /// `spec.paused`.
    pub paused: bool,
    /// The rollout is complete.
    pub complete: bool,
    /// Counts or ReplicaSets changed this round.
    pub progressed: bool,
    /// The Progressing condition's reason so far ("" without one).
    pub reason: &'a str,
    /// Its lastUpdateTime.
    pub last_update: Option<DateTime<Utc>>,
}

/// The Progressing decision for a deadline of `deadline` seconds.
pub(super) fn progress(o: &Observed, deadline: i64, now: DateTime<Utc>) -> Progress {
    if o.paused {
        Progress::Paused
    } else if o.complete {
        if o.reason != "NewReplicaSetAvailable" {
            Progress::Complete
        } else {
            Progress::Unchanged
        }
    } else if o.progressed || matches!(o.reason, "DeploymentPaused" | "NewReplicaSetAvailable" | "") {
        Progress::Moving { recheck: deadline.max(1) }
    } else if o.reason != "ProgressDeadlineExceeded" {
        let passed = now.signed_duration_since(o.last_update.unwrap_or(now)).num_seconds();
        if passed >= deadline {
            Progress::TimedOut
        } else {
            Progress::Waiting { recheck: (deadline - passed).max(1) }
        }
    } else {
        Progress::Unchanged
    }
}

/// Progressing after a new template's ReplicaSet was made.
pub(super) fn new_replicaset_created(d: &mut Deployment, rs_name: &str, now: DateTime<Utc>) {
    let message = format!("Created new replica set \"{rs_name}\"");
    set_condition(d, "Progressing", "True", "NewReplicaSetCreated", &message, now);
    stamp_progress(d, now);
}

/// Write the Deployment's status, conditions and revision if they changed.
pub(super) fn update(spec: &Spec, sets: &Sets, now: DateTime<Utc>, out: &mut Outcome) {
    let d = spec.d;
    let new_rs = sets.new.map(|i| sets.rs(i));
    let statuses: Vec<SetStatus> = sets.items.iter().map(|s| SetStatus::of(&s.rs)).collect();
    let counts = Counts::sum(&statuses, new_rs.map(SetStatus::of), spec.replicas);
    let mut nd = d.clone();
    let old_status = d.status.clone().unwrap_or_default();
    let status = nd.status.get_or_insert_with(Default::default);
    counts.write(status, d.metadata.generation.unwrap_or(1));
    let moved = Counts::shown(&old_status) != Counts::shown(status);
    set_available(&mut nd, counts.available >= spec.replicas - spec.limits.unavailable, now);
    let progressing = condition(d, "Progressing");
    let observed = Observed {
        paused: spec.paused,
        complete: counts.complete(spec.replicas, new_rs.map(replicas_of)),
        progressed: moved || sets.changed(),
        reason: progressing.and_then(|c| c.reason.as_deref()).unwrap_or_default(),
        last_update: progressing.and_then(|c| c.last_update_time.as_ref()).map(chrono_of),
    };
    let rs_name = new_rs.and_then(|r| r.metadata.name.as_deref()).unwrap_or_default();
    let step = progress(&observed, spec.deadline, now);
    set_progressing(&mut nd, step, rs_name, now, out);
    if step == Progress::TimedOut {
        out.actions.push(Action::Event {
            object: spec.obj.raw().clone(),
            warning: true,
            reason: "ProgressDeadlineExceeded".into(),
            message: format!(
                "Deployment \"{}\" has timed out progressing",
                d.metadata.name.as_deref().unwrap_or_default()
            ),
        });
    }
    if let Some(rev) = new_rs.map(|r| revision(&r.metadata).to_string()) {
        if annotation(&d.metadata, REVISION) != Some(rev.as_str()) {
            annotate(&mut nd.metadata, REVISION, rev);
        }
    }
    if &nd != d {
        out.actions.push(Action::Replace(spec.obj.with(&nd)));
    }
}

/// The Available condition.
fn set_available(d: &mut Deployment, available: bool, now: DateTime<Utc>) {
    let (status, reason, message) = if available {
        ("True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
    } else {
        ("False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.")
    };
    set_condition(d, "Available", status, reason, message, now);
}

/// Carry out a Progressing decision on `d` (the new version of the Deployment).
fn set_progressing(d: &mut Deployment, step: Progress, rs_name: &str, now: DateTime<Utc>, out: &mut Outcome) {
    match step {
        Progress::Paused => {
            set_condition(d, "Progressing", "Unknown", "DeploymentPaused", "Deployment is paused", now);
        }
        Progress::Complete => {
            let message = format!("ReplicaSet \"{rs_name}\" has successfully progressed.");
            set_condition(d, "Progressing", "True", "NewReplicaSetAvailable", &message, now);
            stamp_progress(d, now);
        }
        Progress::Moving { recheck } => {
            let message = format!("ReplicaSet \"{rs_name}\" is progressing.");
            set_condition(d, "Progressing", "True", "ReplicaSetUpdated", &message, now);
            stamp_progress(d, now);
            out.requeue_after = Some(Duration::from_secs(recheck as u64));
        }
        Progress::TimedOut => {
            let message = format!("ReplicaSet \"{rs_name}\" has timed out progressing.");
            set_condition(d, "Progressing", "False", "ProgressDeadlineExceeded", &message, now);
            stamp_progress(d, now);
        }
        Progress::Waiting { recheck } => out.requeue_after = Some(Duration::from_secs(recheck as u64)),
        Progress::Unchanged => {}
    }
}

/// A condition of a Deployment.
fn condition<'a>(d: &'a Deployment, kind: &str) -> Option<&'a DeploymentCondition> {
    d.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == kind)
}

/// Set a condition (its transition time moves with its status only; its
/// update time only with [`stamp_progress`]).
fn set_condition(d: &mut Deployment, kind: &str, status: &str, reason: &str, message: &str, now: DateTime<Utc>) {
    let list = d.status.get_or_insert_with(Default::default).conditions.get_or_insert_with(Vec::new);
    crate::objects::conditions::set(list, kind, status, reason, message, &time(now));
}

/// Progressing's lastUpdateTime says when the rollout last moved.
fn stamp_progress(d: &mut Deployment, now: DateTime<Utc>) {
    let conditions = d.status.as_mut().and_then(|s| s.conditions.as_mut());
    if let Some(c) = conditions.into_iter().flatten().find(|c| c.type_ == "Progressing") {
        c.last_update_time = Some(time(now));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::fixtures::{deploy, reconcile, rolling, rs_for};
    use super::*;
    use crate::controllers::framework::Cache;

    #[test]
    fn pause_starts_no_rollout_and_the_deadline_is_reported() {
        let v1 = deploy(2, "v1", rolling(json!(1), json!(0)));
        let mut v2 = deploy(2, "v2", rolling(json!(1), json!(0)));
        v2["spec"]["paused"] = json!(true);
        let mut c = Cache::default();
        c.put(v2.clone());
        c.put(rs_for(&v1, 2, 2, 1));
        let out = reconcile(&c);
        assert!(!out.actions.iter().any(|a| matches!(a, Action::Create(_))), "paused: no new ReplicaSet");
        // Unpaused, stuck: the new pods never become available; the deadline passes.
        let mut stuck = deploy(2, "v2", rolling(json!(1), json!(0)));
        stuck["status"] = json!({"replicas": 3, "updatedReplicas": 1, "readyReplicas": 2, "availableReplicas": 2, "unavailableReplicas": 1, "observedGeneration": 1,
            "conditions": [{"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated", "lastUpdateTime": "2020-01-01T00:00:00Z", "lastTransitionTime": "2020-01-01T00:00:00Z"}]});
        let mut c = Cache::default();
        c.put(stuck.clone());
        c.put(rs_for(&v1, 2, 2, 1));
        let mut new = rs_for(&stuck, 1, 0, 2);
        super::super::fixtures::annotate_json(&mut new, super::super::DESIRED, "2");
        c.put(new);
        let out = reconcile(&c);
        let d = out
            .actions
            .iter()
            .find_map(|a| if let Action::Replace(r) = a { (r["kind"] == "Deployment").then_some(r) } else { None })
            .unwrap();
        let p = d["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Progressing").unwrap();
        assert_eq!(p["reason"], "ProgressDeadlineExceeded");
        assert_eq!(p["status"], "False");
        let warned = out.actions.iter().any(|a| {
            matches!(a, Action::Event { warning: true, reason, object, .. }
                if reason == "ProgressDeadlineExceeded" && object == &stuck)
        });
        assert!(warned, "a warning about the Deployment as it was: {:?}", out.actions);
    }

    #[test]
    fn counts_sum_the_sets_and_unavailability_covers_the_larger_of_desired_and_existing() {
        let s = |replicas, ready, available| SetStatus { replicas, ready, available };
        let c = |replicas, updated, ready, available, unavailable| Counts {
            replicas,
            updated,
            ready,
            available,
            unavailable,
        };
        // (sets, new set, desired) -> counts
        let cases: Vec<(Vec<SetStatus>, Option<SetStatus>, i64, Counts)> = vec![
            (vec![], None, 3, c(0, 0, 0, 0, 3)),
            (vec![s(3, 3, 3)], Some(s(3, 3, 3)), 3, c(3, 3, 3, 3, 0)),
            (vec![s(4, 4, 4), s(1, 1, 0)], Some(s(1, 1, 0)), 4, c(5, 1, 5, 4, 1)),
            (vec![s(3, 2, 1)], Some(s(3, 2, 1)), 2, c(3, 3, 2, 1, 2)),
            (vec![s(2, 2, 2), s(0, 0, 0)], Some(s(0, 0, 0)), 2, c(2, 0, 2, 2, 0)),
            (vec![s(1, 1, 1)], None, 0, c(1, 0, 1, 1, 0)),
            (vec![s(5, 5, 5)], Some(s(5, 5, 5)), 3, c(5, 5, 5, 5, 0)),
            (vec![s(2, 1, 1), s(2, 2, 2)], Some(s(2, 2, 2)), 6, c(4, 2, 3, 3, 3)),
        ];
        for (sets, new, desired, want) in cases {
            assert_eq!(Counts::sum(&sets, new, desired), want, "{sets:?} new {new:?} for {desired}");
        }
    }

    #[test]
    fn complete_means_every_pod_new_and_available_at_the_desired_size() {
        let done = Counts { replicas: 3, updated: 3, ready: 3, available: 3, unavailable: 0 };
        assert!(done.complete(3, Some(3)));
        assert!(!done.complete(3, Some(4)), "the new set still asks for more");
        assert!(!done.complete(3, None));
        assert!(!Counts { available: 2, ..done }.complete(3, Some(3)));
        assert!(!Counts { updated: 2, ..done }.complete(3, Some(3)));
        assert!(!Counts { replicas: 4, ..done }.complete(3, Some(3)));
    }

    #[test]
    fn progressing_follows_pause_completion_movement_and_the_deadline() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T00:10:00Z").unwrap().with_timezone(&Utc);
        let ago = |s: i64| Some(now - chrono::Duration::seconds(s));
        let o = |paused, complete, progressed, reason, last_update| Observed {
            paused,
            complete,
            progressed,
            reason,
            last_update,
        };
        use Progress::*;
        // (observed, deadline) -> decision
        let cases = [
            (o(true, true, true, "ReplicaSetUpdated", None), 60, Paused),
            (o(false, true, false, "ReplicaSetUpdated", ago(5)), 60, Complete),
            (o(false, true, true, "NewReplicaSetAvailable", ago(5)), 60, Unchanged),
            (o(false, false, true, "ReplicaSetUpdated", ago(500)), 60, Moving { recheck: 60 }),
            (o(false, false, false, "", None), 60, Moving { recheck: 60 }),
            (o(false, false, false, "DeploymentPaused", ago(500)), 60, Moving { recheck: 60 }),
            (o(false, false, false, "NewReplicaSetAvailable", ago(500)), 0, Moving { recheck: 1 }),
            (o(false, false, false, "ReplicaSetUpdated", ago(20)), 60, Waiting { recheck: 40 }),
            (o(false, false, false, "ReplicaSetUpdated", ago(60)), 60, TimedOut),
            (o(false, false, false, "NewReplicaSetCreated", None), 60, Waiting { recheck: 60 }),
            (o(false, false, false, "ProgressDeadlineExceeded", ago(500)), 60, Unchanged),
            (o(false, false, true, "ProgressDeadlineExceeded", ago(500)), 60, Moving { recheck: 60 }),
        ];
        for (observed, deadline, want) in cases {
            assert_eq!(progress(&observed, deadline, now), want, "{observed:?} deadline {deadline}");
        }
    }
}
