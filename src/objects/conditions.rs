//! Status conditions, written the way Kubernetes writes them: one per type,
//! whose lastTransitionTime moves only when its status does. One setter for
//! every kind's condition type (pods, Deployments, Jobs).

use k8s_openapi::api::apps::v1::DeploymentCondition;
use k8s_openapi::api::batch::v1::JobCondition;
use k8s_openapi::api::core::v1::PodCondition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// What a condition of some kind's status has in common.
pub trait Condition {
    /// A condition of type `kind` now in `status`, last changed `now`.
    fn new(kind: &str, status: &str, reason: Option<String>, message: Option<String>, now: Time) -> Self;
    /// Its type (`Ready`).
    fn kind(&self) -> &str;
    /// Its status (`True`, `False`, `Unknown`).
    fn status(&self) -> &str;
    /// Its lastTransitionTime.
    fn transition(&mut self) -> &mut Option<Time>;
    /// Keep what a replaced condition had that a new one does not say
    /// (a Deployment's lastUpdateTime, which only progress moves).
    fn keep_from(&mut self, _old: &mut Self) {}
}

/// Set condition `kind` in `list`, keeping its transition time when the
/// status is unchanged; an empty reason or message is left out.
pub fn set<C: Condition>(list: &mut Vec<C>, kind: &str, status: &str, reason: &str, message: &str, now: &Time) {
    let text = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let mut cond = C::new(kind, status, text(reason), text(message), now.clone());
    match list.iter_mut().find(|c| c.kind() == kind) {
        Some(old) => {
            if old.status() == status {
                *cond.transition() = old.transition().take().or(Some(now.clone()));
            }
            cond.keep_from(old);
            *old = cond;
        }
        None => list.push(cond),
    }
}

macro_rules! condition {
    ($ty:ty { $($extra:ident),* } $(, keeps $kept:ident)?) => {
        impl Condition for $ty {
            fn new(kind: &str, status: &str, reason: Option<String>, message: Option<String>, now: Time) -> Self {
                Self {
                    type_: kind.into(),
                    status: status.into(),
                    reason,
                    message,
                    last_transition_time: Some(now),
                    $($extra: None,)*
                }
            }

            fn kind(&self) -> &str {
                &self.type_
            }

            fn status(&self) -> &str {
                &self.status
            }

            fn transition(&mut self) -> &mut Option<Time> {
                &mut self.last_transition_time
            }

            $(fn keep_from(&mut self, old: &mut Self) {
                self.$kept = old.$kept.take();
            })?
        }
    };
}

condition!(PodCondition { last_probe_time, observed_generation });
condition!(JobCondition { last_probe_time });
// A Deployment's lastUpdateTime moves only with its progress, not with every set.
condition!(DeploymentCondition { last_update_time }, keeps last_update_time);

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(s).unwrap())
    }

    #[test]
    fn transition_time_moves_with_the_status_only() {
        let mut list: Vec<PodCondition> = Vec::new();
        set(&mut list, "Ready", "False", "", "", &at(0));
        set(&mut list, "Ready", "False", "R", "m", &at(1));
        assert_eq!((list[0].last_transition_time.clone(), list[0].reason.as_deref()), (Some(at(0)), Some("R")));
        set(&mut list, "Ready", "True", "", "", &at(2));
        set(&mut list, "PodScheduled", "True", "", "", &at(3));
        assert_eq!(
            (list.len(), list[0].last_transition_time.clone(), list[0].reason.as_deref()),
            (2, Some(at(2)), None)
        );
    }

    #[test]
    fn a_deployment_condition_keeps_its_update_time() {
        let mut list = vec![DeploymentCondition {
            last_update_time: Some(at(5)),
            ..Condition::new("Progressing", "True", None, None, at(1))
        }];
        set(&mut list, "Progressing", "True", "ReplicaSetUpdated", "", &at(9));
        assert_eq!(
            (list[0].last_transition_time.clone(), list[0].last_update_time.clone()),
            (Some(at(1)), Some(at(5)))
        );
        let mut jobs: Vec<JobCondition> = Vec::new();
        set(&mut jobs, "Complete", "True", "Done", "", &at(3));
        assert_eq!(jobs[0].last_transition_time, Some(at(3)));
    }
}
