//! `scale` and `rollout` — read-modify-write of workloads through the API, and
//! the rollout status a user waits on, worded as kubectl words it.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::connect::{ApiClient, ConnectOpts};
use super::error::CliError;
use super::kinds::{self, display};
use crate::api::pb;
use crate::controllers::deployment::{history, rollback_template};
use crate::objects::typed::Object;
use crate::objects::{meta_str, Kind};

/// What a `rollout` verb acts on.
#[derive(Args, Debug)]
pub struct RolloutTarget {
    /// deployment/NAME (or `deployment NAME`).
    pub target: String,
    /// NAME, when the kind is given alone.
    pub name: Option<String>,
    /// Namespace.
    #[arg(short, long)]
    pub namespace: Option<String>,
}

/// `rollout` verbs.
#[derive(Subcommand, Debug)]
pub enum RolloutVerb {
    /// Wait for the rollout to finish; exits non-zero if it failed (progress deadline) or timed out.
    Status {
        #[command(flatten)]
        on: RolloutTarget,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// The revisions kept.
    History {
        #[command(flatten)]
        on: RolloutTarget,
    },
    /// Roll back to the previous revision, or to --to-revision.
    Undo {
        #[command(flatten)]
        on: RolloutTarget,
        /// The revision to go back to.
        #[arg(long)]
        to_revision: Option<i64>,
    },
    /// Stop rolling out template changes.
    Pause {
        #[command(flatten)]
        on: RolloutTarget,
    },
    /// Roll out again what changed while paused.
    Resume {
        #[command(flatten)]
        on: RolloutTarget,
    },
    /// Replace every pod with a new one, by a new rollout of the same spec.
    Restart {
        #[command(flatten)]
        on: RolloutTarget,
    },
}

/// Run a `rollout` verb.
pub async fn run(opts: &ConnectOpts, verb: &RolloutVerb) -> Result<(), CliError> {
    let on = match verb {
        RolloutVerb::Status { on, .. }
        | RolloutVerb::History { on }
        | RolloutVerb::Undo { on, .. }
        | RolloutVerb::Pause { on }
        | RolloutVerb::Resume { on }
        | RolloutVerb::Restart { on } => on,
    };
    let (kind, name) = target(&on.target, on.name.as_deref())?;
    if kind.kind != "Deployment" {
        return Err(CliError::Usage(format!("rollout of a {} is not supported (deployments only)", kind.kind)));
    }
    let ns = on.namespace.clone().unwrap_or_else(|| "default".into());
    let mut c = opts.connect().await?;
    let shown = display(kind, &name);
    match verb {
        RolloutVerb::Status { timeout, .. } => status(&mut c, &ns, &name, Duration::from_secs(*timeout)).await,
        RolloutVerb::History { .. } => {
            print!("{}", history_of(&mut c, &ns, &name).await?);
            Ok(())
        }
        RolloutVerb::Undo { to_revision, .. } => {
            println!("{}", undo(&mut c, &ns, &name, *to_revision).await?);
            Ok(())
        }
        RolloutVerb::Pause { .. } | RolloutVerb::Resume { .. } => {
            let pause = matches!(verb, RolloutVerb::Pause { .. });
            modify(&mut c, kind, &ns, &name, |o| {
                o["spec"]["paused"] = json!(pause);
                Ok(())
            })
            .await?;
            println!("{shown} {}", if pause { "paused" } else { "resumed" });
            Ok(())
        }
        RolloutVerb::Restart { .. } => {
            modify(&mut c, kind, &ns, &name, restart).await?;
            println!("{shown} restarted");
            Ok(())
        }
    }
}

/// `deployment/web`, `deploy web` → (kind, name).
pub fn target(what: &str, name: Option<&str>) -> Result<(&'static Kind, String), CliError> {
    let (k, n) = match (what.split_once('/'), name) {
        (Some((k, n)), None) => (k, n.to_string()),
        (None, Some(n)) => (what, n.to_string()),
        _ => return Err(CliError::Usage(format!("expected KIND/NAME or KIND NAME, got \"{what}\""))),
    };
    Ok((kinds::resolve(k)?, n))
}

/// Get an object.
pub async fn get(c: &mut ApiClient, kind: &Kind, ns: &str, name: &str) -> Result<Value, tonic::Status> {
    let r = c
        .get(pb::GetRequest { kind: kind.kind.into(), namespace: ns.into(), name: name.into(), linearizable: true })
        .await?;
    serde_json::from_str(&r.into_inner().json).map_err(|e| tonic::Status::internal(e.to_string()))
}

/// Change an object with `f` and write it back, retrying on conflicts.
pub async fn modify(
    c: &mut ApiClient,
    kind: &Kind,
    ns: &str,
    name: &str,
    f: impl Fn(&mut Value) -> Result<(), CliError>,
) -> Result<Value, CliError> {
    for _ in 0..5 {
        let mut obj = get(c, kind, ns, name).await?;
        f(&mut obj)?;
        match c.update(pb::ObjectRequest { json: obj.to_string() }).await {
            Ok(r) => {
                return serde_json::from_str(&r.into_inner().json)
                    .map_err(|e| tonic::Status::internal(e.to_string()).into())
            }
            Err(s) if s.code() == tonic::Code::Aborted => continue,
            Err(s) => return Err(s.into()),
        }
    }
    Err(tonic::Status::aborted("the object kept changing; try again").into())
}

/// The Deployment's ReplicaSets by revision, as the API lists them.
async fn revisions(c: &mut ApiClient, d: &Value) -> Result<BTreeMap<i64, ReplicaSet>, tonic::Status> {
    let r = c
        .list(pb::ListRequest {
            kind: "ReplicaSet".into(),
            namespace: meta_str(d, "namespace").into(),
            ..Default::default()
        })
        .await?;
    let bad =
        |e: serde_json::Error| tonic::Status::internal(format!("the server sent a list that does not parse: {e}"));
    let mut list: Value = serde_json::from_str(&r.into_inner().json).map_err(bad)?;
    let items: Vec<ReplicaSet> = serde_json::from_value(list["items"].take()).map_err(bad)?;
    let deployment: Deployment = serde_json::from_value(d.clone()).map_err(bad)?;
    Ok(history(&deployment, &items))
}

/// `rollout history`: the revisions of a Deployment.
pub async fn history_of(c: &mut ApiClient, ns: &str, name: &str) -> Result<String, tonic::Status> {
    let kind = &crate::objects::kinds::DEPLOYMENT;
    let d = get(c, kind, ns, name).await?;
    let mut out = format!("{}\nREVISION  CHANGE-CAUSE\n", display(kind, name));
    for (r, rs) in revisions(c, &d).await? {
        let annotations = rs.metadata.annotations.as_ref();
        let cause = annotations.and_then(|a| a.get("kubernetes.io/change-cause")).map_or("<none>", String::as_str);
        out.push_str(&format!("{r:<9} {cause}\n"));
    }
    Ok(out)
}

/// `rollout undo [--to-revision N]`: put an earlier revision's template back.
pub async fn undo(c: &mut ApiClient, ns: &str, name: &str, to: Option<i64>) -> Result<String, CliError> {
    let kind = &crate::objects::kinds::DEPLOYMENT;
    let d = get(c, kind, ns, name).await?;
    let sets = revisions(c, &d).await?;
    let current = sets.keys().last().copied().unwrap_or(0);
    let target = match to {
        Some(r) if r > 0 => sets.get(&r),
        _ => sets.range(..current).next_back().map(|(_, rs)| rs),
    };
    let Some(rs) = target else {
        return Err(tonic::Status::not_found(match to {
            Some(r) if r > 0 => format!("unable to find specified revision {r} in history"),
            _ => "no rollout history found for deployment \"".to_string() + name + "\"",
        })
        .into());
    };
    let template = rollback_template(rs);
    modify(c, kind, ns, name, |obj| {
        let current = Object::new(obj.clone());
        *obj = current.with_pod_template(template.clone()).ok_or_else(no_template)?;
        Ok(())
    })
    .await?;
    Ok(format!("{} rolled back", display(kind, name)))
}

/// What `rollout status` says of a Deployment now: Ok(Some(msg)) when done,
/// Ok(None) with a progress line when not yet, Err when it failed.
pub fn deployment_status(d: &Value) -> Result<(bool, String), CliError> {
    let d: Deployment = serde_json::from_value(d.clone())
        .map_err(|e| CliError::Usage(format!("the server sent a Deployment that does not parse: {e}")))?;
    let name = d.metadata.name.as_deref().unwrap_or_default();
    let status = d.status.clone().unwrap_or_default();
    if status.observed_generation.unwrap_or(0) < d.metadata.generation.unwrap_or(0) {
        return Ok((false, "Waiting for deployment spec update to be observed...".into()));
    }
    let progressing = status.conditions.iter().flatten().find(|c| c.type_ == "Progressing");
    if progressing.and_then(|c| c.reason.as_deref()) == Some("ProgressDeadlineExceeded") {
        return Err(CliError::Usage(format!("deployment \"{name}\" exceeded its progress deadline")));
    }
    let n = |v: Option<i32>| i64::from(v.unwrap_or(0));
    let want = d.spec.as_ref().and_then(|s| s.replicas).map_or(1, i64::from);
    let (updated, replicas, available) = (n(status.updated_replicas), n(status.replicas), n(status.available_replicas));
    let msg = if updated < want {
        format!("Waiting for deployment \"{name}\" rollout to finish: {updated} out of {want} new replicas have been updated...")
    } else if replicas > updated {
        format!(
            "Waiting for deployment \"{name}\" rollout to finish: {} old replicas are pending termination...",
            replicas - updated
        )
    } else if available < updated {
        format!("Waiting for deployment \"{name}\" rollout to finish: {available} of {updated} updated replicas are available...")
    } else {
        return Ok((true, format!("deployment \"{name}\" successfully rolled out")));
    };
    Ok((false, msg))
}

/// `rollout status`: print progress until the rollout ends; Err if it failed or timed out.
pub async fn status(c: &mut ApiClient, ns: &str, name: &str, timeout: Duration) -> Result<(), CliError> {
    let kind = &crate::objects::kinds::DEPLOYMENT;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = String::new();
    loop {
        let d = get(c, kind, ns, name).await.map_err(|s| CliError::Usage(s.message().to_string()))?;
        let (done, msg) = deployment_status(&d)?;
        if msg != last {
            println!("{msg}");
            last = msg;
        }
        if done {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(CliError::Usage("timed out waiting for the condition".into()));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// `kubectl.kubernetes.io/restartedAt` in the template: a new rollout of the same spec.
pub fn restart(obj: &mut Value) -> Result<(), CliError> {
    let current = Object::new(obj.clone());
    let mut template = current.pod_template().cloned().ok_or_else(no_template)?;
    let annotations =
        template.metadata.get_or_insert_with(Default::default).annotations.get_or_insert_with(Default::default);
    annotations.insert("kubectl.kubernetes.io/restartedAt".into(), crate::util::now());
    *obj = current.with_pod_template(template).ok_or_else(no_template)?;
    Ok(())
}

fn no_template() -> CliError {
    CliError::Usage("the object has no pod template".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_stamps_the_template_and_keeps_the_rest() {
        let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "resourceVersion": "7"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        restart(&mut d).unwrap();
        let stamped = &d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"];
        assert!(stamped.as_str().is_some_and(|t| t.ends_with('Z')), "{d}");
        assert_eq!((d["metadata"]["resourceVersion"].as_str(), d["spec"]["replicas"].as_i64()), (Some("7"), Some(2)));
        let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}});
        assert!(restart(&mut cm).unwrap_err().to_string().contains("no pod template"));
    }

    #[test]
    fn status_lines_follow_kubectl() {
        let mut d = json!({"metadata": {"name": "web", "generation": 2}, "spec": {"replicas": 3},
            "status": {"observedGeneration": 2, "updatedReplicas": 1, "replicas": 4, "availableReplicas": 3}});
        assert_eq!(
            deployment_status(&d).unwrap().1,
            "Waiting for deployment \"web\" rollout to finish: 1 out of 3 new replicas have been updated..."
        );
        d["status"] = json!({"observedGeneration": 2, "updatedReplicas": 3, "replicas": 3, "availableReplicas": 3});
        assert_eq!(deployment_status(&d).unwrap(), (true, "deployment \"web\" successfully rolled out".into()));
        d["status"]["conditions"] =
            json!([{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]);
        assert_eq!(
            deployment_status(&d).unwrap_err().to_string(),
            "error: deployment \"web\" exceeded its progress deadline"
        );
        assert_eq!(target("deploy/web", None).unwrap().1, "web");
        assert_eq!(display(&crate::objects::kinds::DEPLOYMENT, "web"), "deployment.apps/web");
    }
}
