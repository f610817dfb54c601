//! A pod's status from what the kubelet observed of its containers — a pure
//! function, so phases, conditions and container states are unit-tested.

use crate::objects::conditions::set as set_condition;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use clusterd_runtime::{ContainerState, ContainerStatus};

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

/// A runtime time stamp (RFC 3339, nanoseconds) as Kubernetes writes it:
/// whole seconds, so a status read back from the store compares equal.
fn secs(t: &str) -> Option<Time> {
    t.parse::<Timestamp>().ok().map(whole_seconds)
}

/// Now, in whole seconds (as status times are written).
pub fn now() -> Time {
    Time(Timestamp::from_second(chrono::Utc::now().timestamp()).unwrap_or(Timestamp::UNIX_EPOCH))
}

/// `t` without its fraction of a second.
pub fn whole_seconds(t: Timestamp) -> Time {
    Time(Timestamp::from_second(t.as_second()).unwrap_or(t))
}

fn terminated(c: &ContainerStatus) -> core::ContainerState {
    let code = c.exit_code.unwrap_or(0);
    let reason = c.reason.clone().unwrap_or_else(|| if code == 0 { "Completed".into() } else { "Error".into() });
    core::ContainerState {
        terminated: Some(core::ContainerStateTerminated {
            exit_code: code,
            reason: Some(reason),
            started_at: c.started_at.as_deref().and_then(secs),
            finished_at: c.finished_at.as_deref().and_then(secs),
            container_id: Some(format!("clusterd://{}", c.id)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn waiting(reason: &str, message: &str) -> core::ContainerState {
    let message = (!message.is_empty()).then(|| message.to_string());
    core::ContainerState {
        waiting: Some(core::ContainerStateWaiting { reason: Some(reason.to_string()), message }),
        ..Default::default()
    }
}

/// One entry of `containerStatuses`.
pub fn container_status(o: &Observed, default_waiting: &str) -> core::ContainerStatus {
    let (state, last) = match (&o.waiting, &o.current) {
        (Some((reason, message)), cur) => {
            let last = cur.as_ref().filter(|c| c.state == ContainerState::Exited).or(o.previous.as_ref());
            (waiting(reason, message), last.map(terminated))
        }
        (None, Some(c)) => match c.state {
            ContainerState::Running => {
                let running = core::ContainerStateRunning { started_at: c.started_at.as_deref().and_then(secs) };
                (
                    core::ContainerState { running: Some(running), ..Default::default() },
                    o.previous.as_ref().map(terminated),
                )
            }
            ContainerState::Exited => (terminated(c), o.previous.as_ref().map(terminated)),
            ContainerState::Created => (waiting(default_waiting, ""), None),
        },
        (None, None) => (waiting(default_waiting, ""), o.previous.as_ref().map(terminated)),
    };
    let running = o.current.as_ref().is_some_and(|c| c.state == ContainerState::Running) && o.waiting.is_none();
    core::ContainerStatus {
        name: o.name.clone(),
        image: o.image.clone(),
        image_id: o.current.as_ref().map(|c| c.image_id.clone()).unwrap_or_default(),
        ready: o.ready && running,
        restart_count: i32::try_from(o.restart_count).unwrap_or(i32::MAX),
        started: Some(running && o.started),
        state: Some(state),
        last_state: Some(last.unwrap_or_default()),
        container_id: o.current.as_ref().map(|c| format!("clusterd://{}", c.id)),
        ..Default::default()
    }
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
pub fn pod_status(pod: &core::Pod, obs: &PodObserved, now: &Time) -> core::PodStatus {
    let mut status = pod.status.clone().unwrap_or_default();
    let phase = phase(obs);
    let names = |list: &[Observed], f: &dyn Fn(&Observed) -> bool| {
        list.iter().filter(|o| f(o)).map(|o| o.name.clone()).collect::<Vec<_>>()
    };
    let incomplete = names(&obs.init, &|o| {
        !o.current.as_ref().is_some_and(|c| c.state == ContainerState::Exited && c.exit_code == Some(0))
    });
    let conds = status.conditions.get_or_insert_with(Vec::new);
    if obs.initialized {
        set_condition(conds, "Initialized", "True", "", "", now);
    } else {
        let msg = format!("containers with incomplete status: [{}]", incomplete.join(" "));
        set_condition(conds, "Initialized", "False", "ContainersNotInitialized", &msg, now);
    }
    let terminal = phase == "Succeeded" || phase == "Failed";
    let unready = names(&obs.containers, &|o| {
        !(o.ready && o.waiting.is_none() && o.current.as_ref().is_some_and(|c| c.state == ContainerState::Running))
    });
    if unready.is_empty() && !obs.containers.is_empty() {
        set_condition(conds, "ContainersReady", "True", "", "", now);
        set_condition(conds, "Ready", "True", "", "", now);
    } else {
        let (reason, msg) = if terminal {
            ("PodCompleted", String::new())
        } else {
            ("ContainersNotReady", format!("containers with unready status: [{}]", unready.join(" ")))
        };
        set_condition(conds, "ContainersReady", "False", reason, &msg, now);
        set_condition(conds, "Ready", "False", reason, &msg, now);
    }
    // Kubernetes orders conditions this way.
    conds.sort_by_key(|c| match c.type_.as_str() {
        "PodReadyToStartContainers" => 0,
        "Initialized" => 1,
        "Ready" => 2,
        "ContainersReady" => 3,
        "PodScheduled" => 4,
        _ => 5,
    });
    status.phase = Some(phase.to_string());
    status.host_ip = Some(obs.host_ip.clone());
    status.host_ips = Some(vec![core::HostIP { ip: obs.host_ip.clone() }]);
    if let Some(ip) = &obs.pod_ip {
        status.pod_ip = Some(ip.clone());
        status.pod_ips = Some(vec![core::PodIP { ip: ip.clone() }]);
    }
    if status.start_time.is_none() {
        status.start_time = Some(now.clone());
    }
    let app_waiting = if obs.initialized { "ContainerCreating" } else { "PodInitializing" };
    status.container_statuses = Some(obs.containers.iter().map(|o| container_status(o, app_waiting)).collect());
    if !obs.init.is_empty() {
        status.init_container_statuses =
            Some(obs.init.iter().map(|o| container_status(o, "PodInitializing")).collect());
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn at(t: &str) -> Time {
        Time(t.parse().unwrap())
    }

    /// The status written for a pod without one, as JSON.
    fn written(obs: &PodObserved) -> Value {
        serde_json::to_value(pod_status(&core::Pod::default(), obs, &at("2026-01-01T00:00:00Z"))).unwrap()
    }

    /// A runtime instance with sub-second times (the status cuts them to seconds).
    fn rt(state: ContainerState, exit: Option<i32>) -> ContainerStatus {
        ContainerStatus {
            id: "c1".into(),
            created_at: "2026-01-01T00:00:00.000000001Z".into(),
            started_at: Some("2026-01-01T00:00:01.5Z".into()),
            finished_at: exit.map(|_| "2026-01-01T00:00:02Z".into()),
            ..super::super::fake::instance("app", state, exit)
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
        let s = written(&obs(vec![app(Some(rt(ContainerState::Running, None)))]));
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
        let s = written(&obs(vec![o]));
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
        let s = written(&o);
        assert_eq!(s["phase"], "Pending");
        assert_eq!(s["containerStatuses"][0]["state"]["waiting"]["reason"], "PodInitializing");
    }

    #[test]
    fn transition_time_is_kept_while_a_condition_holds() {
        let mut restarted = app(Some(rt(ContainerState::Running, None)));
        restarted.previous = Some(rt(ContainerState::Exited, Some(1)));
        restarted.restart_count = 1;
        let mut o = obs(vec![restarted]);
        o.init = vec![Observed {
            name: "init".into(),
            current: Some(rt(ContainerState::Exited, Some(0))),
            ..Default::default()
        }];
        let first = pod_status(&core::Pod::default(), &o, &at("2026-01-01T00:00:01Z"));
        let stored = core::Pod { status: Some(first.clone()), ..Default::default() };
        let second = pod_status(&stored, &o, &at("2026-01-01T00:00:02Z"));
        assert_eq!(first.conditions, second.conditions);
        assert_eq!(first, second, "nothing to write when nothing changed");
        let was = serde_json::to_value(&first).unwrap();
        let read_back: core::PodStatus = serde_json::from_value(was).unwrap();
        assert_eq!(read_back, first, "a status read back from the store compares equal (whole seconds)");
    }
}
