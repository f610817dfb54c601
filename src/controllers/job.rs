//! The Job controller: runs pods until `completions` succeed, at most
//! `parallelism` at a time; failures (failed pods, and container restarts under
//! OnFailure) count against `backoffLimit`, with Kubernetes' back-off between
//! new pods; `activeDeadlineSeconds` bounds the whole Job. Complete or Failed
//! is a condition; finished pods are kept for their logs.

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use super::daemonset::owned_pods;
use super::framework::{delete_pod, pod_from_template, Action, Cache, Outcome, Reconciler};
use crate::objects::kinds::{self, Kind};
use crate::objects::pod::PodFacts;
use crate::objects::typed::Object;

/// The Job reconciler.
pub struct Jobs;

/// `now` as the API writes times (whole seconds).
fn api_time(now: chrono::DateTime<chrono::Utc>) -> Time {
    Time(Timestamp::from_second(now.timestamp()).unwrap_or_default())
}

/// An API time as a chrono time.
fn chrono_time(t: &Time) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(t.0.as_second(), t.0.subsec_nanosecond().max(0) as u32).unwrap_or_default()
}

/// Whether the Job has a Complete or Failed condition.
fn finished(job: &Job) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True"))
}

/// Set a True condition, keeping its transition time if it was True already.
fn set_true(job: &mut Job, kind: &str, reason: &str, message: &str, now: &Time) {
    let conditions = job.status.get_or_insert_with(Default::default).conditions.get_or_insert_with(Vec::new);
    crate::objects::conditions::set(conditions, kind, "True", reason, message, now);
}

/// When a failed pod's first container finished.
fn finished_at(pod: &Pod) -> Option<&Time> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    statuses.first()?.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref()
}

/// A pod for the Job from its template, labelled as Kubernetes labels them.
pub fn job_pod(job: &Object) -> Value {
    let meta = job.metadata();
    let name = meta.and_then(|m| m.name.as_deref()).unwrap_or("");
    let uid = meta.and_then(|m| m.uid.as_deref()).unwrap_or("");
    pod_from_template(job, None, &[("job-name", name), ("batch.kubernetes.io/job-name", name), ("controller-uid", uid)])
}

impl Reconciler for Jobs {
    const NAME: &'static str = "job";
    const PRIMARY: &'static Kind = &kinds::JOB;

    fn watches(&self) -> Vec<&'static Kind> {
        vec![&kinds::JOB, &kinds::POD]
    }

    fn affected(&self, obj: &Value, _cache: &Cache) -> Vec<String> {
        super::framework::self_or_owners(obj, Self::PRIMARY, &kinds::POD)
    }

    fn reconcile(&self, key: &str, cache: &Cache, now: chrono::DateTime<chrono::Utc>) -> Outcome {
        let Some(obj) = cache.object(&kinds::JOB, key) else { return Outcome::default() };
        let Some(job) = obj.job() else { return Outcome::default() };
        if job.metadata.deletion_timestamp.is_some() {
            return Outcome::default();
        }
        let ns = job.metadata.namespace.as_deref().unwrap_or("");
        let pods: Vec<(&Object, &Pod)> = owned_pods(cache, ns, job.metadata.uid.as_deref().unwrap_or("")).collect();
        let spec = job.spec.as_ref();
        let pod_spec = spec.and_then(|s| s.template.spec.as_ref());
        let on_failure = pod_spec.and_then(|t| t.restart_policy.as_deref()) == Some("OnFailure");
        let succeeded = pods.iter().filter(|(_, p)| p.phase() == "Succeeded").count() as i64;
        let failed_pods = pods.iter().filter(|(_, p)| p.phase() == "Failed").count() as i64;
        let restarts: i64 = if on_failure {
            pods.iter()
                .filter_map(|(_, p)| p.status.as_ref()?.container_statuses.as_ref())
                .flatten()
                .map(|c| c.restart_count as i64)
                .sum()
        } else {
            0
        };
        let failed = failed_pods + restarts;
        let active: Vec<&Object> = pods.iter().filter(|(_, p)| !p.inactive()).map(|(o, _)| *o).collect();
        let ready = pods.iter().filter(|(_, p)| !p.inactive() && p.is_ready()).count();
        let completions = spec.and_then(|s| s.completions).unwrap_or(1) as i64;
        let parallelism = spec.and_then(|s| s.parallelism).unwrap_or(1) as i64;
        let backoff_limit = spec.and_then(|s| s.backoff_limit).unwrap_or(6) as i64;
        let stamp = api_time(now);
        let mut out = Outcome::default();
        let mut next = job.clone();
        let start = next.status.get_or_insert_with(Default::default).start_time.get_or_insert(stamp.clone()).clone();
        let started = chrono_time(&start);

        if !finished(job) {
            let deadline = spec.and_then(|s| s.active_deadline_seconds);
            let over = deadline.is_some_and(|d| now.signed_duration_since(started).num_seconds() >= d);
            let failure = if failed > backoff_limit {
                Some(("BackoffLimitExceeded", "Job has reached the specified backoff limit"))
            } else if over {
                Some(("DeadlineExceeded", "Job was active longer than specified deadline"))
            } else {
                None
            };
            if let Some((reason, message)) = failure {
                for p in &active {
                    out.actions.push(delete_pod(p, now));
                }
                set_true(&mut next, "FailureTarget", reason, message, &stamp);
                set_true(&mut next, "Failed", reason, message, &stamp);
                out.actions.push(Action::Event {
                    object: obj.raw().clone(),
                    warning: true,
                    reason: reason.into(),
                    message: message.into(),
                });
            } else if succeeded >= completions {
                let (reason, message) = ("CompletionsReached", "Reached expected number of succeeded pods");
                set_true(&mut next, "SuccessCriteriaMet", reason, message, &stamp);
                set_true(&mut next, "Complete", reason, message, &stamp);
                next.status.get_or_insert_with(Default::default).completion_time = Some(stamp.clone());
                out.actions.push(Action::Event {
                    object: obj.raw().clone(),
                    warning: false,
                    reason: "Completed".into(),
                    message: "Job completed".into(),
                });
            } else {
                let want = parallelism.min(completions - succeeded).max(0);
                let have = active.len() as i64;
                if have < want {
                    // Kubernetes' back-off after failures: 10 s doubling, capped at 6 minutes.
                    let last_failure =
                        pods.iter().filter(|(_, p)| p.phase() == "Failed").filter_map(|(_, p)| finished_at(p)).max();
                    let wait = if failed_pods == 0 {
                        Duration::ZERO
                    } else {
                        Duration::from_secs((10u64 << (failed_pods - 1).min(6)).min(360))
                    };
                    let since = last_failure
                        .map(|t| now.signed_duration_since(chrono_time(t)).to_std().unwrap_or_default())
                        .unwrap_or(wait);
                    if since >= wait {
                        for _ in have..want {
                            out.actions.push(Action::Create(job_pod(obj)));
                        }
                    } else {
                        out.requeue_after = Some(wait - since);
                    }
                } else if have > want {
                    for p in active.iter().take((have - want) as usize) {
                        out.actions.push(delete_pod(p, now));
                    }
                }
                if let Some(d) = deadline {
                    let left = d - now.signed_duration_since(started).num_seconds();
                    let after = Duration::from_secs(left.max(1) as u64);
                    out.requeue_after = Some(out.requeue_after.map_or(after, |r| r.min(after)));
                }
            }
        }
        let done = finished(&next);
        let status = next.status.get_or_insert_with(Default::default);
        status.active = Some(if done { 0 } else { active.len() as i32 });
        status.ready = Some(ready as i32);
        status.succeeded = Some(succeeded as i32);
        status.failed = Some(failed as i32);
        if next != *job {
            out.actions.push(Action::Replace(obj.with(&next)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(completions: i64, parallelism: i64, backoff: i64) -> Value {
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "namespace": "d", "uid": "j1", "resourceVersion": "3"},
               "spec": {"completions": completions, "parallelism": parallelism, "backoffLimit": backoff,
                        "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}})
    }

    fn pod(name: &str, phase: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "d", "uid": name,
               "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": "j1", "controller": true}]},
               "status": {"phase": phase, "containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                   "state": {"terminated": {"exitCode": 0, "finishedAt": "2020-01-01T00:00:00Z"}}}]}})
    }

    fn creates(out: &Outcome) -> usize {
        out.actions.iter().filter(|a| matches!(a, Action::Create(_))).count()
    }

    fn condition(out: &Outcome, kind: &str) -> Option<Value> {
        out.actions.iter().find_map(|a| match a {
            Action::Replace(j) => j["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == kind).cloned(),
            _ => None,
        })
    }

    #[test]
    fn runs_parallelism_pods_until_completions() {
        let mut c = Cache::default();
        c.put(job(3, 2, 6));
        let out = Jobs.reconcile("/registry/jobs/d/j", &c, chrono::Utc::now());
        assert_eq!(creates(&out), 2);
        let p = job_pod(&Object::new(job(3, 2, 6)));
        assert_eq!(p["metadata"]["labels"]["job-name"], "j");
        c.put(pod("a", "Succeeded"));
        c.put(pod("b", "Succeeded"));
        c.put(pod("c", "Running"));
        assert_eq!(creates(&Jobs.reconcile("/registry/jobs/d/j", &c, chrono::Utc::now())), 0);
        c.put(pod("c", "Succeeded"));
        let out = Jobs.reconcile("/registry/jobs/d/j", &c, chrono::Utc::now());
        assert_eq!(condition(&out, "Complete").unwrap()["status"], "True");
    }

    #[test]
    fn fails_past_its_active_deadline() {
        let mut j = job(1, 1, 6);
        j["spec"]["activeDeadlineSeconds"] = json!(5);
        j["status"] = json!({"startTime": "2020-01-01T00:00:00Z"});
        let mut c = Cache::default();
        c.put(j);
        c.put(pod("a", "Running"));
        let out = Jobs.reconcile("/registry/jobs/d/j", &c, chrono::Utc::now());
        assert_eq!(condition(&out, "Failed").unwrap()["reason"], "DeadlineExceeded");
        assert!(
            out.actions.iter().any(|a| matches!(a, Action::Delete { .. } | Action::Replace(_))),
            "the running pod is stopped"
        );
    }

    #[test]
    fn fails_past_the_backoff_limit() {
        let mut c = Cache::default();
        c.put(job(1, 1, 1));
        c.put(pod("a", "Failed"));
        let out = Jobs.reconcile("/registry/jobs/d/j", &c, chrono::Utc::now());
        assert_eq!(creates(&out), 1, "one failure is within the limit (after the back-off)");
        c.put(pod("b", "Failed"));
        let out = Jobs.reconcile("/registry/jobs/d/j", &c, chrono::Utc::now());
        assert_eq!(condition(&out, "Failed").unwrap()["reason"], "BackoffLimitExceeded");
        assert_eq!(creates(&out), 0);
    }
}
