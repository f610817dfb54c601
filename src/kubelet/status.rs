//! A pod's status from what the kubelet observed of its containers — a pure
//! function, so phases, conditions and container states are unit-tested.

use serde_json::{json, Value};

use clusterd_runtime::{ContainerState, ContainerStatus};

use crate::objects::conditions::set_condition;

/// What the kubelet knows of one container of the pod.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// Container name.
    pub name: String,
    /// Image as in the spec.
    pub image: String,
    /// The newest instance in the runtime.
    pub current: Option<ContainerStatus>,
    /// The instance before it (for `lastState`).
    pub previous: Option<ContainerStatus>,
    /// Why it is waiting (reason, message), overriding the runtime state.
    pub waiting: Option<(String, String)>,
    /// Restarts so far.
    pub restart_count: u32,
    /// Readiness (probe, or running when it has none).
    pub ready: bool,
    /// Whether the startup probe (if any) passed.
    pub started: bool,
    /// For an exited container: whether the restart policy starts it again.
    pub will_restart: bool,
}

/// What the kubelet knows of the pod.
#[derive(Clone, Debug, Default)]
pub struct PodObserved {
    /// The sandbox's IP.
    pub pod_ip: Option<String>,
    /// The node's IP.
    pub host_ip: String,
    /// Init containers, in order.
    pub init: Vec<Observed>,
    /// App containers, in order.
    pub containers: Vec<Observed>,
    /// Every init container completed successfully.
    pub initialized: bool,
    /// An init container failed and will not run again.
    pub init_failed: bool,
}

fn secs(t: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|d| d.with_timezone(&chrono::Utc).to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|_| t.to_string())
}

fn terminated(c: &ContainerStatus) -> Value {
    let code = c.exit_code.unwrap_or(0);
    let reason = c.reason.clone().unwrap_or_else(|| if code == 0 { "Completed".into() } else { "Error".into() });
    json!({"terminated": {
        "exitCode": code,
        "reason": reason,
        "startedAt": c.started_at.as_deref().map(secs),
        "finishedAt": c.finished_at.as_deref().map(secs),
        "containerID": format!("clusterd://{}", c.id),
    }})
}

/// One entry of `containerStatuses`.
pub fn container_status(o: &Observed, default_waiting: &str) -> Value {
    let (state, last) = match (&o.waiting, &o.current) {
        (Some((reason, message)), cur) => {
            let mut w = json!({"reason": reason});
            if !message.is_empty() {
                w["message"] = json!(message);
            }
            let last = cur.as_ref().filter(|c| c.state == ContainerState::Exited).or(o.previous.as_ref());
            (json!({"waiting": w}), last.map(terminated))
        }
        (None, Some(c)) => match c.state {
            ContainerState::Running => (
                json!({"running": {"startedAt": c.started_at.as_deref().map(secs)}}),
                o.previous.as_ref().map(terminated),
            ),
            ContainerState::Exited => (terminated(c), o.previous.as_ref().map(terminated)),
            ContainerState::Created => (json!({"waiting": {"reason": default_waiting}}), None),
        },
        (None, None) => (json!({"waiting": {"reason": default_waiting}}), o.previous.as_ref().map(terminated)),
    };
    let running = o.current.as_ref().is_some_and(|c| c.state == ContainerState::Running) && o.waiting.is_none();
    let mut s = json!({
        "name": o.name,
        "image": o.image,
        "imageID": o.current.as_ref().map(|c| c.image_id.clone()).unwrap_or_default(),
        "ready": o.ready && running,
        "restartCount": o.restart_count,
        "started": running && o.started,
        "state": state,
        "lastState": last.unwrap_or(json!({})),
    });
    if let Some(c) = &o.current {
        s["containerID"] = json!(format!("clusterd://{}", c.id));
    }
    s
}

/// The pod phase, as Kubernetes decides it.
pub fn phase(obs: &PodObserved) -> &'static str {
    if obs.init_failed {
        return "Failed";
    }
    if !obs.initialized {
        return "Pending";
    }
    let mut running = 0;
    let mut waiting = 0;
    let mut restarting = 0;
    let mut failed = 0;
    for c in &obs.containers {
        match c.current.as_ref().map(|c| c.state) {
            Some(ContainerState::Running) => running += 1,
            Some(ContainerState::Exited) => {
                if c.will_restart {
                    restarting += 1;
                } else if c.current.as_ref().and_then(|c| c.exit_code).unwrap_or(0) != 0 {
                    failed += 1;
                }
            }
            _ if c.restart_count > 0 => restarting += 1,
            _ => waiting += 1,
        }
    }
    if waiting > 0 {
        "Pending"
    } else if running > 0 || restarting > 0 {
        "Running"
    } else if failed > 0 {
        "Failed"
    } else {
        "Succeeded"
    }
}

/// The pod's new `status` (conditions keep their transition times when unchanged).
pub fn pod_status(pod: &Value, obs: &PodObserved, now: &str) -> Value {
    let mut p = json!({"status": pod.get("status").cloned().unwrap_or(json!({}))});
    let phase = phase(obs);
    let names = |list: &[Observed], f: &dyn Fn(&Observed) -> bool| {
        list.iter().filter(|o| f(o)).map(|o| o.name.clone()).collect::<Vec<_>>()
    };
    let incomplete = names(&obs.init, &|o| {
        !o.current.as_ref().is_some_and(|c| c.state == ContainerState::Exited && c.exit_code == Some(0))
    });
    if obs.initialized {
        set_condition(&mut p, "Initialized", "True", "", "", now);
    } else {
        let msg = format!("containers with incomplete status: [{}]", incomplete.join(" "));
        set_condition(&mut p, "Initialized", "False", "ContainersNotInitialized", &msg, now);
    }
    let terminal = phase == "Succeeded" || phase == "Failed";
    let unready = names(&obs.containers, &|o| {
        !(o.ready && o.waiting.is_none() && o.current.as_ref().is_some_and(|c| c.state == ContainerState::Running))
    });
    if unready.is_empty() && !obs.containers.is_empty() {
        set_condition(&mut p, "ContainersReady", "True", "", "", now);
        set_condition(&mut p, "Ready", "True", "", "", now);
    } else {
        let (reason, msg) = if terminal {
            ("PodCompleted", String::new())
        } else {
            ("ContainersNotReady", format!("containers with unready status: [{}]", unready.join(" ")))
        };
        set_condition(&mut p, "ContainersReady", "False", reason, &msg, now);
        set_condition(&mut p, "Ready", "False", reason, &msg, now);
    }
    let status = &mut p["status"];
    status["phase"] = json!(phase);
    status["hostIP"] = json!(obs.host_ip);
    status["hostIPs"] = json!([{"ip": obs.host_ip}]);
    if let Some(ip) = &obs.pod_ip {
        status["podIP"] = json!(ip);
        status["podIPs"] = json!([{"ip": ip}]);
    }
    if status.get("startTime").is_none() {
        status["startTime"] = json!(now);
    }
    let init_waiting = "PodInitializing";
    status["containerStatuses"] = json!(obs
        .containers
        .iter()
        .map(|o| container_status(o, if obs.initialized { "ContainerCreating" } else { init_waiting }))
        .collect::<Vec<_>>());
    if !obs.init.is_empty() {
        status["initContainerStatuses"] =
            json!(obs.init.iter().map(|o| container_status(o, "PodInitializing")).collect::<Vec<_>>());
    }
    // Kubernetes orders conditions this way.
    if let Some(list) = status.get_mut("conditions").and_then(Value::as_array_mut) {
        let rank = |c: &Value| match c.get("type").and_then(Value::as_str) {
            Some("PodReadyToStartContainers") => 0,
            Some("Initialized") => 1,
            Some("Ready") => 2,
            Some("ContainersReady") => 3,
            Some("PodScheduled") => 4,
            _ => 5,
        };
        list.sort_by_key(rank);
    }
    p["status"].take()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn rt(state: ContainerState, exit: Option<i32>) -> ContainerStatus {
        ContainerStatus {
            id: "c1".into(),
            name: "app".into(),
            sandbox_id: "s".into(),
            image: "busybox".into(),
            image_id: "sha256:x".into(),
            state,
            pid: None,
            exit_code: exit,
            reason: None,
            created_at: "2026-01-01T00:00:00.000000001Z".into(),
            started_at: Some("2026-01-01T00:00:01.5Z".into()),
            finished_at: exit.map(|_| "2026-01-01T00:00:02Z".into()),
            log_path: PathBuf::new(),
        }
    }

    fn obs(containers: Vec<Observed>) -> PodObserved {
        PodObserved {
            pod_ip: Some("10.1.0.2".into()),
            host_ip: "127.0.0.1".into(),
            initialized: true,
            containers,
            ..Default::default()
        }
    }

    fn app(current: Option<ContainerStatus>) -> Observed {
        Observed {
            name: "app".into(),
            image: "busybox".into(),
            current,
            ready: true,
            started: true,
            ..Default::default()
        }
    }

    #[test]
    fn running_and_ready() {
        let s = pod_status(&json!({}), &obs(vec![app(Some(rt(ContainerState::Running, None)))]), "T");
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["podIP"], "10.1.0.2");
        assert_eq!(s["containerStatuses"][0]["state"]["running"]["startedAt"], "2026-01-01T00:00:01Z");
        assert_eq!(s["containerStatuses"][0]["ready"], true);
        let ready = s["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").unwrap();
        assert_eq!(ready["status"], "True");
    }

    #[test]
    fn crash_loop_shows_waiting_with_last_state() {
        let mut o = app(Some(rt(ContainerState::Exited, Some(1))));
        o.waiting = Some(("CrashLoopBackOff".into(), "back-off 10s".into()));
        o.will_restart = true;
        o.restart_count = 2;
        let s = pod_status(&json!({}), &obs(vec![o]), "T");
        assert_eq!(s["phase"], "Running");
        let c = &s["containerStatuses"][0];
        assert_eq!(c["state"]["waiting"]["reason"], "CrashLoopBackOff");
        assert_eq!(c["lastState"]["terminated"]["exitCode"], 1);
        assert_eq!(c["lastState"]["terminated"]["reason"], "Error");
        assert_eq!(c["restartCount"], 2);
        assert_eq!(c["ready"], false);
    }

    #[test]
    fn phases_follow_exits_and_policy() {
        let done = app(Some(rt(ContainerState::Exited, Some(0))));
        assert_eq!(phase(&obs(vec![done.clone()])), "Succeeded");
        let failed = app(Some(rt(ContainerState::Exited, Some(2))));
        assert_eq!(phase(&obs(vec![done, failed])), "Failed");
        assert_eq!(phase(&obs(vec![app(None)])), "Pending");
        let mut o = obs(vec![app(None)]);
        o.initialized = false;
        let s = pod_status(&json!({}), &o, "T");
        assert_eq!(s["phase"], "Pending");
        assert_eq!(s["containerStatuses"][0]["state"]["waiting"]["reason"], "PodInitializing");
    }

    #[test]
    fn transition_time_is_kept_while_a_condition_holds() {
        let o = obs(vec![app(Some(rt(ContainerState::Running, None)))]);
        let first = pod_status(&json!({}), &o, "T1");
        let second = pod_status(&json!({"status": first.clone()}), &o, "T2");
        assert_eq!(first["conditions"], second["conditions"]);
    }
}
