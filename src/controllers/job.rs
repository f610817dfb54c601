//! The Job controller: runs pods until `completions` succeed, at most
//! `parallelism` at a time; failures (failed pods, and container restarts under
//! OnFailure) count against `backoffLimit`, with Kubernetes' back-off between
//! new pods; `activeDeadlineSeconds` bounds the whole Job. Complete or Failed
//! is a condition; finished pods are kept for their logs.

use std::time::Duration;

use serde_json::{json, Value};

use super::framework::{delete_pod, pod_from_template, Action, Cache, Outcome, Reconciler};
use crate::objects::conditions::set_condition;
use crate::objects::kinds::{self, Kind};
use crate::objects::meta_str;

/// The Job reconciler.
pub struct Jobs;

fn num(obj: &Value, ptr: &str, default: i64) -> i64 {
    obj.pointer(ptr).and_then(Value::as_i64).unwrap_or(default)
}

fn phase(p: &Value) -> &str {
    p.pointer("/status/phase").and_then(Value::as_str).unwrap_or("Pending")
}

fn finished(job: &Value) -> bool {
    job.pointer("/status/conditions").and_then(Value::as_array).is_some_and(|cs| {
        cs.iter().any(|c| (c["type"] == "Complete" || c["type"] == "Failed") && c["status"] == "True")
    })
}

/// A pod for the Job from its template, labelled as Kubernetes labels them.
pub fn job_pod(job: &Value) -> Value {
    let (name, uid) = (meta_str(job, "name"), meta_str(job, "uid"));
    pod_from_template(
        &crate::objects::typed::Object::new(job.clone()),
        None,
        &[("job-name", name), ("batch.kubernetes.io/job-name", name), ("controller-uid", uid)],
    )
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
        let Some(job) = cache.get(&kinds::JOB, key) else { return Outcome::default() };
        if crate::objects::being_deleted(job) {
            return Outcome::default();
        }
        let ns = meta_str(job, "namespace");
        let pods: Vec<&Value> = cache.owned_by(&kinds::POD, ns, meta_str(job, "uid")).map(|o| o.raw()).collect();
        let on_failure = job.pointer("/spec/template/spec/restartPolicy").and_then(Value::as_str) == Some("OnFailure");
        let succeeded = pods.iter().filter(|p| phase(p) == "Succeeded").count() as i64;
        let failed_pods = pods.iter().filter(|p| phase(p) == "Failed").count() as i64;
        let restarts: i64 = if on_failure {
            pods.iter()
                .flat_map(|p| {
                    p.pointer("/status/containerStatuses").and_then(Value::as_array).cloned().unwrap_or_default()
                })
                .map(|c| c["restartCount"].as_i64().unwrap_or(0))
                .sum()
        } else {
            0
        };
        let failed = failed_pods + restarts;
        let active: Vec<&Value> = pods.iter().copied().filter(|p| !crate::objects::pod::inactive(p)).collect();
        let ready = active.iter().filter(|p| super::framework::pod_ready(p)).count();
        let completions = num(job, "/spec/completions", 1);
        let parallelism = num(job, "/spec/parallelism", 1);
        let backoff_limit = num(job, "/spec/backoffLimit", 6);
        let stamp = crate::util::rfc3339(now);
        let mut out = Outcome::default();
        let mut nj = job.clone();
        let start = job.pointer("/status/startTime").and_then(Value::as_str).map(String::from).unwrap_or(stamp.clone());
        nj["status"]["startTime"] = json!(start);
        let started =
            chrono::DateTime::parse_from_rfc3339(&start).map(|t| t.with_timezone(&chrono::Utc)).unwrap_or(now);

        if !finished(job) {
            let deadline = job.pointer("/spec/activeDeadlineSeconds").and_then(Value::as_i64);
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
                set_condition(&mut nj, "FailureTarget", "True", reason, message, &stamp);
                set_condition(&mut nj, "Failed", "True", reason, message, &stamp);
                out.actions.push(Action::Event {
                    object: job.clone(),
                    warning: true,
                    reason: reason.into(),
                    message: message.into(),
                });
            } else if succeeded >= completions {
                set_condition(
                    &mut nj,
                    "SuccessCriteriaMet",
                    "True",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                    &stamp,
                );
                set_condition(
                    &mut nj,
                    "Complete",
                    "True",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                    &stamp,
                );
                nj["status"]["completionTime"] = json!(stamp);
                out.actions.push(Action::Event {
                    object: job.clone(),
                    warning: false,
                    reason: "Completed".into(),
                    message: "Job completed".into(),
                });
            } else {
                let want = parallelism.min(completions - succeeded).max(0);
                let have = active.len() as i64;
                if have < want {
                    // Kubernetes' back-off after failures: 10 s doubling, capped at 6 minutes.
                    let last_failure = pods
                        .iter()
                        .filter(|p| phase(p) == "Failed")
                        .filter_map(|p| {
                            p.pointer("/status/containerStatuses/0/state/terminated/finishedAt")?
                                .as_str()
                                .map(String::from)
                        })
                        .max();
                    let wait = if failed_pods == 0 {
                        Duration::ZERO
                    } else {
                        Duration::from_secs((10u64 << (failed_pods - 1).min(6)).min(360))
                    };
                    let since = last_failure
                        .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
                        .map(|t| now.signed_duration_since(t.with_timezone(&chrono::Utc)).to_std().unwrap_or_default())
                        .unwrap_or(wait);
                    if since >= wait {
                        for _ in have..want {
                            out.actions.push(Action::Create(job_pod(job)));
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
        nj["status"]["active"] = json!(if finished(&nj) { 0 } else { active.len() });
        nj["status"]["ready"] = json!(ready);
        nj["status"]["succeeded"] = json!(succeeded);
        nj["status"]["failed"] = json!(failed);
        if &nj != job {
            out.actions.push(Action::Replace(nj));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(completions: i64, parallelism: i64, backoff: i64) -> Value {
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "namespace": "d", "uid": "j1", "resourceVersion": "3"},
               "spec": {"completions": completions, "parallelism": parallelism, "backoffLimit": backoff,
                        "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}})
    }

    fn pod(name: &str, phase: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "d", "uid": name,
               "ownerReferences": [{"kind": "Job", "name": "j", "uid": "j1", "controller": true}]},
               "status": {"phase": phase, "containerStatuses": [{"state": {"terminated": {"finishedAt": "2020-01-01T00:00:00Z"}}}]}})
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
        let p = job_pod(&job(3, 2, 6));
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
