//! The pod worker's whole pass — observe, plan, execute, report — over the
//! fake runtime and control plane: what a user would see of a pod (calls to
//! the runtime, events, the written status) without root.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;

use super::executor::{Clock, Executor};
use super::fake::{Call, FakeControl, FakeRuntime, Script};
use super::plan::{ProbeKind, ProbeOutcome};
use super::worker::Worker;
use crate::objects::typed::Object;

struct Rig {
    worker: Worker<FakeRuntime, FakeControl>,
    exec: Arc<Executor<FakeRuntime, FakeControl>>,
    dir: tempfile::TempDir,
}

fn rig(runtime: FakeRuntime) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let exec = Arc::new(Executor {
        runtime,
        control: FakeControl::default(),
        host_ip: "192.0.2.1".into(),
        pods_root: dir.path().to_path_buf(),
        clock: Clock::manual(Instant::now()),
        network: crate::objects::network::ServiceNetwork::default(),
        host_resolv_conf: dir.path().join("host-resolv.conf"),
    });
    Rig { worker: Worker::new(exec.clone()), exec, dir }
}

fn pod(spec: Value) -> Value {
    let mut spec = spec;
    spec["automountServiceAccountToken"] = json!(false);
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default", "uid": "u1"}, "spec": spec})
}

impl Rig {
    fn runtime(&self) -> &FakeRuntime {
        &self.exec.runtime
    }

    fn control(&self) -> &FakeControl {
        &self.exec.control
    }

    /// A pass at `at`; the pod carries the last written status, as the store would.
    async fn step(&mut self, pod: &mut Value, at: Instant) -> Option<Instant> {
        self.exec.clock.set(at);
        let next = self.worker.step(Some(&Object::new(pod.clone()))).await;
        let st = self.control().status();
        if !st.is_null() {
            pod["status"] = st;
        }
        next
    }
}

fn container<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["containerStatuses"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap()
}

fn condition(status: &Value, kind: &str) -> String {
    let c = status["conditions"].as_array().unwrap().iter().find(|c| c["type"] == kind).unwrap();
    c["status"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_pod_runs_its_init_container_then_its_app_and_becomes_ready() {
    let rt = FakeRuntime::with_images(&["busybox:1"]);
    rt.script("prepare", &[Script::Exit(0)]);
    let mut r = rig(rt);
    let mut p = pod(json!({
        "volumes": [{"name": "work", "emptyDir": {}}],
        "initContainers": [{"name": "prepare", "image": "busybox:1", "volumeMounts": [{"name": "work", "mountPath": "/work"}]}],
        "containers": [{"name": "web", "image": "busybox:1",
            "readinessProbe": {"httpGet": {"port": 8080}, "periodSeconds": 1}}],
    }));
    let t0 = Instant::now();
    r.step(&mut p, t0).await;
    let st = r.control().status();
    assert_eq!(st["phase"], "Pending");
    assert_eq!(st["initContainerStatuses"][0]["state"]["terminated"]["reason"], "Completed");
    assert_eq!(st["podIP"], "10.1.0.2");
    assert!(r.dir.path().join("u1").is_dir(), "the pod's volumes are prepared");

    r.step(&mut p, t0 + Duration::from_millis(100)).await;
    let st = r.control().status();
    assert_eq!(st["phase"], "Running");
    assert_eq!(condition(&st, "Ready"), "False", "not ready before its readiness probe passed");

    r.step(&mut p, t0 + Duration::from_millis(200)).await;
    let st = r.control().status();
    assert_eq!(condition(&st, "Ready"), "True");
    assert_eq!(container(&st, "web")["ready"], true);
    assert_eq!(
        r.runtime().take_calls(),
        vec![
            Call::RunSandbox("web".into()),
            Call::Create("prepare".into()),
            Call::Start("prepare".into()),
            Call::Create("web".into()),
            Call::Start("web".into()),
            Call::Probe("web".into(), ProbeKind::Readiness),
        ]
    );
    assert_eq!(
        r.control().take_events(),
        vec![
            "Created: Created container prepare",
            "Started: Started container prepare",
            "Created: Created container web",
            "Started: Started container web",
        ]
    );
}

#[tokio::test]
async fn a_crashing_container_loops_with_back_off_and_keeps_its_last_instance() {
    let rt = FakeRuntime::with_images(&["busybox:1"]);
    rt.script("crash", &[Script::Exit(3); 5]);
    let mut r = rig(rt);
    let mut p = pod(json!({"containers": [{"name": "crash", "image": "busybox:1"}]}));
    let t0 = Instant::now();
    // second of each pass → how many starts so far
    let mut starts_at = Vec::new();
    for s in 0..35 {
        r.step(&mut p, t0 + Duration::from_secs(s)).await;
        let started = r.runtime().take_calls().iter().filter(|c| matches!(c, Call::Start(_))).count();
        if started > 0 {
            starts_at.push(s);
        }
    }
    // First start; each crash is seen on the next pass: the first restart at
    // once, then after 10 s and 20 s of back-off.
    assert_eq!(starts_at, vec![0, 1, 12, 33]);
    let st = r.control().status();
    let c = container(&st, "crash");
    assert_eq!(c["state"]["waiting"]["reason"], "CrashLoopBackOff", "{c}");
    assert_eq!(c["lastState"]["terminated"]["exitCode"], 3);
    assert_eq!(c["restartCount"], 3);
    assert_eq!(st["phase"], "Running");
    // The newest instance and the one before it (`logs --previous`) stay; older ones are removed.
    assert_eq!(r.runtime().instances("crash").len(), 2);
    let backoffs = r.control().take_events().iter().filter(|e| e.starts_with("BackOff:")).count();
    assert_eq!(backoffs, 3, "one BackOff event per back-off (after the starts at 1, 12 and 33)");
}

#[tokio::test]
async fn a_failing_liveness_probe_restarts_the_container() {
    let rt = FakeRuntime::with_images(&["busybox:1"]);
    rt.script("web", &[Script::IgnoreTerm]);
    let failed = ProbeOutcome::Failure("exit 1".into());
    rt.probe_answers("web", ProbeKind::Liveness, &[failed.clone(), failed]);
    let mut r = rig(rt);
    let mut p = pod(json!({"terminationGracePeriodSeconds": 2, "containers": [{"name": "web", "image": "busybox:1",
        "livenessProbe": {"exec": {"command": ["test", "-f", "/tmp/alive"]}, "periodSeconds": 1, "failureThreshold": 2}}]}));
    let t0 = Instant::now();
    for s in 0..4 {
        r.step(&mut p, t0 + Duration::from_secs(s)).await;
    }
    let st = r.control().status();
    let c = container(&st, "web");
    assert_eq!(c["restartCount"], 1);
    assert!(c["state"]["running"].is_object(), "{c}");
    assert_eq!(c["lastState"]["terminated"]["exitCode"], 137, "SIGKILL after the grace");
    let calls = r.runtime().take_calls();
    assert!(calls.contains(&Call::Stop("web".into(), Duration::from_secs(2))), "{calls:?}");
    let events = r.control().take_events();
    assert!(events.contains(&"Unhealthy: Liveness probe failed: exit 1".to_string()), "{events:?}");
    assert!(
        events.contains(&"Killing: Container web failed liveness probe, will be restarted".to_string()),
        "{events:?}"
    );
}

#[tokio::test]
async fn deletion_stops_with_the_grace_then_removes_everything() {
    let rt = FakeRuntime::with_images(&["busybox:1"]);
    rt.script("stubborn", &[Script::IgnoreTerm]);
    let mut r = rig(rt);
    let mut p = pod(json!({"volumes": [{"name": "v", "emptyDir": {}}],
        "containers": [{"name": "stubborn", "image": "busybox:1"}, {"name": "polite", "image": "busybox:1"}]}));
    let t0 = Instant::now();
    r.step(&mut p, t0).await;
    assert_eq!(r.control().status()["phase"], "Running");
    assert!(r.dir.path().join("u1").exists());
    r.runtime().take_calls();
    r.control().take_events();

    p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:05Z");
    p["metadata"]["deletionGracePeriodSeconds"] = json!(5);
    let next = r.step(&mut p, t0 + Duration::from_secs(1)).await;
    assert!(next.is_none(), "the worker ends with its pod");
    let grace = Duration::from_secs(5);
    let mut calls = r.runtime().take_calls();
    calls.sort_by_key(|c| format!("{c:?}"));
    assert_eq!(
        calls,
        vec![
            Call::RemoveSandbox,
            Call::Stop("polite".into(), grace),
            Call::Stop("stubborn".into(), grace),
            Call::StopSandbox(grace),
        ]
    );
    assert_eq!(r.runtime().instances("stubborn"), vec![], "removed with the sandbox");
    assert_eq!(r.runtime().sandbox_count(), 0);
    assert!(r.control().removed(), "the pod object is removed after its containers");
    assert!(!r.dir.path().join("u1").exists(), "volumes removed");
    assert_eq!(
        r.control().take_events(),
        vec!["Killing: Stopping container stubborn", "Killing: Stopping container polite"]
    );
}

#[tokio::test]
async fn a_pod_removed_at_once_leaves_nothing() {
    let mut r = rig(FakeRuntime::with_images(&["busybox:1"]));
    let mut p = pod(json!({"containers": [{"name": "app", "image": "busybox:1"}]}));
    r.step(&mut p, Instant::now()).await;
    r.runtime().take_calls();
    assert!(r.worker.step(None).await.is_none());
    assert_eq!(
        r.runtime().take_calls(),
        vec![Call::StopSandbox(Duration::ZERO), Call::Stop("app".into(), Duration::ZERO), Call::RemoveSandbox]
    );
    assert_eq!(r.runtime().sandbox_count(), 0);
    assert!(!r.control().removed(), "the object is already gone");
}

#[tokio::test]
async fn a_sandbox_that_cannot_be_made_is_told_and_made_on_the_next_pass() {
    let rt = FakeRuntime::with_images(&["busybox:1"]);
    rt.fail_sandboxes(1);
    let mut r = rig(rt);
    let mut p = pod(json!({"containers": [{"name": "app", "image": "busybox:1"}]}));
    let t0 = Instant::now();
    r.step(&mut p, t0).await;
    assert_eq!(r.runtime().take_calls(), vec![Call::RunSandbox("web".into())]);
    let events = r.control().take_events();
    assert_eq!(events, vec!["FailedCreatePodSandBox: Failed to create pod sandbox: pod sandbox : no address left"]);
    let st = r.control().status();
    assert_eq!(st["phase"], "Pending");
    assert!(st.get("podIP").is_none());
    r.step(&mut p, t0 + Duration::from_secs(1)).await;
    assert_eq!(r.control().status()["phase"], "Running");
}

#[tokio::test]
async fn an_image_missing_everywhere_backs_off_then_runs_once_pushed() {
    let rt = FakeRuntime::with_images(&[]);
    let mut r = rig(rt);
    let mut p = pod(json!({"containers": [{"name": "app", "image": "registry.local/app:1"}]}));
    let t0 = Instant::now();
    r.step(&mut p, t0).await;
    let c = container(&r.control().status(), "app").clone();
    assert_eq!(c["state"]["waiting"]["reason"], "ErrImagePull");
    r.step(&mut p, t0 + Duration::from_millis(500)).await;
    let c = container(&r.control().status(), "app").clone();
    assert_eq!(c["state"]["waiting"]["reason"], "ImagePullBackOff");
    r.runtime().registry(&["registry.local/app:1"]);
    r.step(&mut p, t0 + Duration::from_secs(1)).await;
    assert_eq!(r.control().status()["phase"], "Running");
    let events = r.control().take_events();
    assert_eq!(events.iter().filter(|e| e.starts_with("Pulling:")).count(), 2, "{events:?}");
    assert!(events.iter().any(|e| e.starts_with("Pulled: Successfully pulled image \"registry.local/app:1\"")));
}

#[tokio::test]
async fn a_lost_sandbox_is_made_again_with_its_containers() {
    let mut r = rig(FakeRuntime::with_images(&["busybox:1"]));
    let mut p = pod(json!({"containers": [{"name": "app", "image": "busybox:1"}]}));
    let t0 = Instant::now();
    r.step(&mut p, t0).await;
    r.runtime().take_calls();
    r.runtime().lose_sandboxes();
    r.step(&mut p, t0 + Duration::from_secs(1)).await;
    assert_eq!(
        r.runtime().take_calls(),
        vec![
            Call::RemoveSandbox,
            Call::RunSandbox("web".into()),
            Call::Create("app".into()),
            Call::Start("app".into())
        ]
    );
    assert_eq!(r.runtime().sandbox_count(), 1);
    assert_eq!(r.control().status()["phase"], "Running");
    assert!(r
        .control()
        .take_events()
        .contains(&"SandboxChanged: Pod sandbox changed, it will be killed and re-created.".to_string()));
}

#[tokio::test]
async fn a_container_that_does_not_start_is_removed_and_retried() {
    let rt = FakeRuntime::with_images(&["busybox:1"]);
    rt.script("app", &[Script::FailStart]);
    let mut r = rig(rt);
    let mut p = pod(json!({"containers": [{"name": "app", "image": "busybox:1"}]}));
    let t0 = Instant::now();
    r.step(&mut p, t0).await;
    let c = container(&r.control().status(), "app").clone();
    assert_eq!(c["state"]["waiting"]["reason"], "RunContainerError", "{c}");
    assert_eq!(r.runtime().instances("app"), vec![], "not left half made");
    let events = r.control().take_events();
    assert!(events.iter().any(|e| e.starts_with("Failed: Error: starting container")), "{events:?}");
    r.step(&mut p, t0 + Duration::from_millis(500)).await;
    assert_eq!(r.runtime().instances("app"), vec![], "retried after a second, not before");
    r.step(&mut p, t0 + Duration::from_secs(1)).await;
    assert_eq!(r.control().status()["phase"], "Running");
    assert_eq!(container(&r.control().status(), "app")["restartCount"], 0);
}

#[tokio::test]
async fn a_pod_that_never_restarts_fails_when_its_container_does() {
    let mut r = rig(FakeRuntime::with_images(&["busybox:1"]));
    let mut p = pod(json!({"restartPolicy": "Never", "containers": [{"name": "app", "image": "busybox:1"}]}));
    let t0 = Instant::now();
    r.step(&mut p, t0).await;
    assert_eq!(r.control().status()["phase"], "Running");
    r.runtime().exit("app", 4);
    r.step(&mut p, t0 + Duration::from_secs(1)).await;
    let st = r.control().status();
    assert_eq!(st["phase"], "Failed");
    assert_eq!(container(&st, "app")["state"]["terminated"]["exitCode"], 4);
    // Finished: nothing starts again, the status stays.
    r.runtime().take_calls();
    r.step(&mut p, t0 + Duration::from_secs(60)).await;
    assert_eq!(r.runtime().take_calls(), vec![]);
    assert_eq!(r.control().status()["phase"], "Failed");
}

#[tokio::test]
async fn volumes_wait_for_their_sources_then_hold_the_keys_and_the_token() {
    let mut r = rig(FakeRuntime::with_images(&["busybox:1"]));
    let token = crate::objects::conventions::token_secret_name("default");
    let control = r.control();
    control
        .put(json!({"kind": "Secret", "metadata": {"name": token, "namespace": "default"}, "data": {"token": "dG9r"}}));
    control.put(
        json!({"kind": "Secret", "metadata": {"name": "db", "namespace": "default"}, "data": {"password": "czNjcjN0"}}),
    );
    let mut p = pod(json!({
        "volumes": [{"name": "creds", "secret": {"secretName": "db"}}, {"name": "conf", "configMap": {"name": "cfg"}}],
        "containers": [{"name": "app", "image": "busybox:1",
            "volumeMounts": [{"name": "creds", "mountPath": "/creds"}, {"name": "conf", "mountPath": "/conf"}]}],
    }));
    p["spec"].as_object_mut().unwrap().remove("automountServiceAccountToken");
    let t0 = Instant::now();
    r.step(&mut p, t0).await;
    let st = r.control().status();
    assert_eq!(st["phase"], "Pending");
    assert_eq!(container(&st, "app")["state"]["waiting"]["reason"], "ContainerCreating");
    assert_eq!(
        r.control().take_events(),
        vec!["FailedMount: MountVolume.SetUp failed for volume \"conf\" : configmap \"cfg\" not found"]
    );
    let calls = r.runtime().take_calls();
    assert_eq!(calls, vec![Call::RunSandbox("web".into())], "no container starts before its volumes are in place");

    r.control().put(
        json!({"kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "default"}, "data": {"mode": "fast"}}),
    );
    r.step(&mut p, t0 + Duration::from_secs(1)).await;
    assert_eq!(r.control().status()["phase"], "Running");
    let volumes = r.dir.path().join("u1").join("volumes");
    let read = |p: &str| std::fs::read_to_string(volumes.join(p)).unwrap();
    assert_eq!(read("creds/password"), "s3cr3t", "secret data decoded");
    assert_eq!(read("conf/mode"), "fast");
    assert_eq!(read("kube-api-access/token"), "tok", "the service account token");
}

#[tokio::test]
async fn containers_get_the_pods_dns_files_and_service_variables() {
    let mut r = rig(FakeRuntime::with_images(&["busybox:1"]));
    std::fs::write(r.dir.path().join("host-resolv.conf"), "nameserver 192.0.2.53\nsearch corp.example\n").unwrap();
    r.control().put(json!({"kind": "Service", "metadata": {"namespace": "default", "name": "kubernetes"},
        "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443}]}}));
    let mut p = pod(json!({
        "hostname": "web-0", "subdomain": "web",
        "hostAliases": [{"ip": "10.9.9.9", "hostnames": ["legacy.example"]}],
        "containers": [{"name": "app", "image": "busybox:1"}],
    }));
    r.step(&mut p, Instant::now()).await;
    let cfg = r.runtime().config("app").expect("the container was created");
    let file = |at: &str| {
        let m = cfg.mounts.iter().find(|m| m.container_path == at).unwrap_or_else(|| panic!("{at} is mounted"));
        assert!(m.read_only, "{at} is read-only");
        assert!(
            m.host_path.starts_with(r.dir.path().join("u1").to_str().unwrap()),
            "{at} lives in the pod's directory"
        );
        std::fs::read_to_string(&m.host_path).unwrap()
    };
    assert_eq!(
        file("/etc/resolv.conf"),
        "nameserver 10.96.0.10\nsearch default.svc.cluster.local svc.cluster.local cluster.local corp.example\noptions ndots:5\n"
    );
    let hosts = file("/etc/hosts");
    assert!(hosts.contains("10.1.0.2\tweb-0.web.default.svc.cluster.local\tweb-0\n"), "{hosts}");
    assert!(hosts.ends_with("# Entries added by HostAliases.\n10.9.9.9\tlegacy.example\n"), "{hosts}");
    assert!(cfg.env.contains(&("KUBERNETES_SERVICE_HOST".into(), "10.96.0.1".into())));
    assert!(cfg.env.contains(&("KUBERNETES_PORT".into(), "tcp://10.96.0.1:443".into())));
}
