//! Pods end to end on real multi-process clusters: the scheduler binds, the
//! kubelet runs real containers, and status flows back through Raft. Needs root
//! and `make images`.

mod fixtures;

use std::time::Duration;

use serde_json::Value;

use fixtures::{http_get, image, step, wait_for, Cluster};

fn pod(c: &Cluster, name: &str) -> Option<Value> {
    let out = c.cli(&["get", "pod", name, "-o", "json"]);
    out.status.success().then(|| serde_json::from_slice(&out.stdout).unwrap())
}

fn condition(p: &Value, kind: &str) -> Option<Value> {
    p.pointer("/status/conditions")?.as_array()?.iter().find(|c| c["type"] == kind).cloned()
}

/// Wait until the pod satisfies `f`; on a timeout, say what its status was.
fn wait_pod(c: &Cluster, name: &str, what: &str, timeout: u64, f: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(timeout);
    let mut last = None;
    loop {
        if let Some(p) = pod(c, name) {
            if f(&p) {
                return p;
            }
            last = Some(p);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {timeout}s waiting for pod {name}: {what}; its status was {}",
            last.map(|p| p["status"].to_string()).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn running(p: &Value) -> bool {
    p["status"]["phase"] == "Running" && condition(p, "Ready").is_some_and(|c| c["status"] == "True")
}

fn exec(c: &Cluster, idx: usize, pod: &str, container: Option<&str>, cmd: &[&str]) -> (bool, String) {
    let mut args = vec!["exec", pod];
    if let Some(ct) = container {
        args.extend(["-c", ct]);
    }
    args.push("--");
    args.extend(cmd);
    let out = c.cli_at(idx, &args);
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

fn pod_yaml(name: &str, body: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 1\n{body}")
}

const HTTPD: &str = r#"  containers:
  - name: httpd
    image: clusterd.local/busybox:v1
    command: ["sh", "-c", "mkdir -p /www && echo hello from $(hostname) > /www/index.html && exec httpd -f -p 8080 -h /www"]
    ports:
    - containerPort: 8080
    readinessProbe:
      tcpSocket: {port: 8080}
      periodSeconds: 1
"#;

#[test]
fn pods_run_on_three_control_plane_nodes_and_a_worker() {
    let mut c = Cluster::init(&[]);
    c.join("n2", true);
    c.join("n3", true);
    c.join("w1", false);

    step("the test image is loaded on every node through the API");
    let out = c.ok(&["image", "load", &image("busybox-v1.tar")]);
    assert!(out.contains("clusterd.local/busybox:v1"), "{out}");
    for n in ["n1", "n2", "n3", "w1"] {
        assert!(out.contains(n), "{n} missing in: {out}");
    }
    wait_for("4 Ready nodes with pod CIDRs", Duration::from_secs(30), || {
        let nodes: Value = serde_json::from_str(&c.ok(&["get", "nodes", "-o", "json"])).unwrap();
        let items = nodes["items"].as_array().cloned().unwrap_or_default();
        (items.len() == 4 && items.iter().all(|n| n.pointer("/spec/podCIDR").is_some())).then_some(())
    });

    step("a pod applied by the CLI runs with an IP and its HTTP server answers from the host");
    assert!(c.apply(&pod_yaml("web", HTTPD)).status.success());
    let web = wait_pod(&c, "web", "Running and Ready", 60, running);
    let ip = web["status"]["podIP"].as_str().unwrap().to_string();
    let body = wait_for("the pod's HTTP server", Duration::from_secs(10), || http_get(&format!("{ip}:8080"), "/"));
    assert_eq!(body, "hello from web\n");
    let wide = c.ok(&["get", "pods", "-o", "wide"]);
    let node = web["spec"]["nodeName"].as_str().unwrap();
    assert!(wide.contains("NODE") && wide.contains(&ip) && wide.contains(node), "{wide}");
    let described = c.ok(&["describe", "pod", "web"]);
    for want in ["Scheduled", "Started", "Ready", "Running"] {
        assert!(described.contains(want), "describe lacks {want}:\n{described}");
    }

    step("two containers of a pod share localhost and an emptyDir");
    let pair = r#"  volumes:
  - name: shared
    emptyDir: {}
  containers:
  - name: server
    image: clusterd.local/busybox:v1
    command: ["httpd", "-f", "-p", "8081", "-h", "/www"]
    volumeMounts:
    - name: shared
      mountPath: /www
  - name: writer
    image: clusterd.local/busybox:v1
    command: ["sh", "-c", "echo written by the writer > /data/index.html && exec sleep 3600"]
    volumeMounts:
    - name: shared
      mountPath: /data
"#;
    assert!(c.apply(&pod_yaml("pair", pair)).status.success());
    wait_pod(&c, "pair", "Running", 60, running);
    let got = wait_for("the writer to reach the server on localhost", Duration::from_secs(10), || {
        let (ok, out) = exec(&c, 0, "pair", Some("writer"), &["wget", "-qO-", "http://127.0.0.1:8081/"]);
        ok.then_some(out)
    });
    assert_eq!(got, "written by the writer\n");

    step("a secret and a configMap appear as files and environment, and volume files follow changes");
    let config = r#"apiVersion: v1
kind: Secret
metadata:
  name: db
stringData:
  password: s3cr3t
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  mode: fast
"#;
    assert!(c.apply(config).status.success());
    let shared = c.dir.path().join("host-share");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::write(shared.join("greeting"), "from the host").unwrap();
    let consumer = r#"  volumes:
  - name: host
    hostPath:
      path: HOSTDIR
      type: Directory
  - name: secret
    secret:
      secretName: db
  - name: settings
    configMap:
      name: settings
  containers:
  - name: app
    image: clusterd.local/busybox:v1
    command: ["sleep", "3600"]
    env:
    - name: PASSWORD
      valueFrom:
        secretKeyRef: {name: db, key: password}
    - name: MODE
      valueFrom:
        configMapKeyRef: {name: settings, key: mode}
    - name: MY_NODE
      valueFrom:
        fieldRef: {fieldPath: spec.nodeName}
    volumeMounts:
    - {name: secret, mountPath: /etc/secret, readOnly: true}
    - {name: settings, mountPath: /etc/settings}
    - {name: host, mountPath: /host}
"#
    .replace("HOSTDIR", shared.to_str().unwrap());
    assert!(c.apply(&pod_yaml("consumer", &consumer)).status.success());
    let p = wait_pod(&c, "consumer", "Running", 60, running);
    let node = p["spec"]["nodeName"].as_str().unwrap().to_string();
    let (_, env) = exec(&c, 0, "consumer", None, &["sh", "-c", "echo $PASSWORD $MODE $MY_NODE"]);
    assert_eq!(env.trim(), format!("s3cr3t fast {node}"));
    let (_, files) = exec(&c, 0, "consumer", None, &["cat", "/etc/secret/password", "/etc/settings/mode"]);
    assert_eq!(files, "s3cr3tfast");
    assert_eq!(exec(&c, 0, "consumer", None, &["cat", "/host/greeting"]).1, "from the host");
    let changed = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: slow\n";
    assert!(c.apply(changed).status.success());
    wait_for("the configMap volume to follow the change", Duration::from_secs(20), || {
        let (_, f) = exec(&c, 0, "consumer", None, &["cat", "/etc/settings/mode"]);
        (f == "slow").then_some(())
    });

    step("logs and exec work through every node's API, wherever the pod runs");
    let talker = r#"  containers:
  - name: talker
    image: clusterd.local/busybox:v1
    command: ["sh", "-c", "for i in 1 2 3; do echo line $i; done; exec sleep 3600"]
"#;
    assert!(c.apply(&pod_yaml("talker", talker)).status.success());
    wait_pod(&c, "talker", "Running", 60, running);
    for idx in 0..4 {
        let logs = wait_for("the talker's logs", Duration::from_secs(10), || {
            let out = c.cli_at(idx, &["logs", "talker"]);
            let s = String::from_utf8_lossy(&out.stdout).into_owned();
            s.contains("line 3").then_some(s)
        });
        assert_eq!(logs, "line 1\nline 2\nline 3\n");
        let (ok, v) = exec(&c, idx, "talker", None, &["cat", "/VERSION"]);
        assert!(ok);
        assert_eq!(v.trim(), "v1");
    }
    let tail = c.ok(&["logs", "talker", "--tail", "1"]);
    assert_eq!(tail, "line 3\n");
    let failed = c.cli(&["exec", "talker", "--", "sh", "-c", "exit 7"]);
    assert_eq!(failed.status.code(), Some(7));

    step("an unschedulable pod reports the reason");
    let huge = r#"  containers:
  - name: big
    image: clusterd.local/busybox:v1
    command: ["sleep", "3600"]
    resources:
      requests:
        memory: 100Ti
"#;
    assert!(c.apply(&pod_yaml("huge", huge)).status.success());
    let p = wait_pod(&c, "huge", "PodScheduled=False", 30, |p| {
        condition(p, "PodScheduled").is_some_and(|c| c["status"] == "False")
    });
    let cond = condition(&p, "PodScheduled").unwrap();
    assert_eq!(cond["reason"], "Unschedulable");
    assert_eq!(cond["message"], "0/4 nodes are available: 4 Insufficient memory.");
    assert_eq!(p["status"]["phase"], "Pending");
    let described = c.ok(&["describe", "pod", "huge"]);
    assert!(described.contains("FailedScheduling"), "{described}");

    step("deleting a pod stops its containers and leaves nothing behind");
    let web_uid = web["metadata"]["uid"].as_str().unwrap().to_string();
    let out = c.ok(&["delete", "pod", "web"]);
    assert!(out.contains("pod \"web\" deleted"), "{out}");
    assert!(pod(&c, "web").is_none(), "delete waits until the pod is gone");
    assert!(http_get(&format!("{ip}:8080"), "/").is_none(), "the pod's server still answers");
    for n in &c.nodes {
        let dir = n.data_dir.join("runtime/sandboxes");
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            assert!(!text.contains(&web_uid), "a sandbox of the deleted pod remains on {}", n.name);
        }
    }
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    assert!(!mounts.contains(&web_uid), "a mount of the deleted pod remains");

    step("kill -9 the leader: the scheduler on the new leader binds new pods within seconds");
    let leader = c.status()["leader"].as_str().unwrap().to_string();
    let idx = c.nodes.iter().position(|n| n.name == leader).unwrap();
    c.nodes[idx].kill9();
    let t0 = std::time::Instant::now();
    let pinned = "  nodeSelector:\n    kubernetes.io/hostname: w1\n".to_string() + HTTPD;
    wait_for("the API to accept writes again", Duration::from_secs(30), || {
        c.apply(&pod_yaml("after-failover", &pinned)).status.success().then_some(())
    });
    let p = wait_pod(&c, "after-failover", "Running on w1", 60, running);
    assert_eq!(p["spec"]["nodeName"], "w1");
    eprintln!("pod Running {:.1} s after the leader was killed", t0.elapsed().as_secs_f64());
}

#[test]
fn probes_restart_policies_init_containers_and_crash_loops() {
    let c = Cluster::init(&[]);
    c.ok(&["image", "load", &image("busybox-v1.tar")]);

    step("init containers run to completion before the app container");
    let init = r#"  volumes:
  - name: work
    emptyDir: {}
  initContainers:
  - name: prepare
    image: clusterd.local/busybox:v1
    command: ["sh", "-c", "echo prepared > /work/state"]
    volumeMounts: [{name: work, mountPath: /work}]
  containers:
  - name: app
    image: clusterd.local/busybox:v1
    command: ["sleep", "3600"]
    volumeMounts: [{name: work, mountPath: /work}]
"#;
    assert!(c.apply(&pod_yaml("init", init)).status.success());
    let p = wait_pod(&c, "init", "Running", 60, running);
    assert_eq!(p["status"]["initContainerStatuses"][0]["state"]["terminated"]["reason"], "Completed");
    assert_eq!(exec(&c, 0, "init", None, &["cat", "/work/state"]).1, "prepared\n");

    step("readiness flips Ready; a failing liveness probe restarts the container");
    let probed = r#"  containers:
  - name: web
    image: clusterd.local/busybox:v1
    command: ["sh", "-c", "touch /tmp/alive && mkdir -p /www && touch /www/ready && exec httpd -f -p 8080 -h /www"]
    readinessProbe:
      httpGet: {path: /ready, port: 8080}
      periodSeconds: 1
      failureThreshold: 1
    livenessProbe:
      exec:
        command: ["test", "-f", "/tmp/alive"]
      periodSeconds: 1
      failureThreshold: 2
"#;
    assert!(c.apply(&pod_yaml("probed", probed)).status.success());
    wait_pod(&c, "probed", "Ready", 60, running);
    exec(&c, 0, "probed", None, &["rm", "/www/ready"]);
    let p = wait_pod(&c, "probed", "not Ready", 20, |p| condition(p, "Ready").is_some_and(|c| c["status"] == "False"));
    assert_eq!(p["status"]["containerStatuses"][0]["restartCount"], 0);
    assert_eq!(p["status"]["phase"], "Running");
    exec(&c, 0, "probed", None, &["touch", "/www/ready"]);
    wait_pod(&c, "probed", "Ready again", 20, running);
    exec(&c, 0, "probed", None, &["rm", "/tmp/alive"]);
    let p = wait_pod(&c, "probed", "restarted by liveness", 30, |p| {
        p["status"]["containerStatuses"][0]["restartCount"].as_u64() >= Some(1) && running(p)
    });
    assert_eq!(p["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"], 137);
    let described = c.ok(&["describe", "pod", "probed"]);
    assert!(described.contains("Unhealthy") && described.contains("failed liveness probe"), "{described}");

    step("a crashing container goes to CrashLoopBackOff");
    let crash = r#"  containers:
  - name: crash
    image: clusterd.local/busybox:v1
    command: ["sh", "-c", "echo boom; exit 3"]
"#;
    assert!(c.apply(&pod_yaml("crash", crash)).status.success());
    let p = wait_pod(&c, "crash", "CrashLoopBackOff", 60, |p| {
        p.pointer("/status/containerStatuses/0/state/waiting/reason") == Some(&Value::from("CrashLoopBackOff"))
    });
    let s = &p["status"]["containerStatuses"][0];
    assert!(s["restartCount"].as_u64() >= Some(1), "{s}");
    assert_eq!(s["lastState"]["terminated"]["exitCode"], 3);
    let table = c.ok(&["get", "pods"]);
    assert!(table.lines().any(|l| l.starts_with("crash") && l.contains("CrashLoopBackOff")), "{table}");
    assert_eq!(c.ok(&["logs", "crash"]), "boom\n");

    step("restartPolicy Never and OnFailure end in Succeeded or Failed");
    for (name, policy, code, phase) in [("ok-once", "Never", 0, "Succeeded"), ("bad-once", "Never", 4, "Failed")] {
        let body = format!(
            "  restartPolicy: {policy}\n  containers:\n  - name: c\n    image: clusterd.local/busybox:v1\n    command: [\"sh\", \"-c\", \"exit {code}\"]\n"
        );
        assert!(c.apply(&pod_yaml(name, &body)).status.success());
        let p = wait_pod(&c, name, phase, 60, |p| p["status"]["phase"] == phase);
        assert_eq!(p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"], code);
        assert_eq!(p["status"]["containerStatuses"][0]["restartCount"], 0);
    }
}

#[test]
fn a_restarted_node_keeps_its_running_containers_and_their_status() {
    let mut c = Cluster::init(&[]);
    c.ok(&["image", "load", &image("busybox-v1.tar")]);
    assert!(c.apply(&pod_yaml("keeper", HTTPD)).status.success());
    let before = wait_pod(&c, "keeper", "Running", 60, running);
    let ip = before["status"]["podIP"].as_str().unwrap().to_string();
    let id = before["status"]["containerStatuses"][0]["containerID"].clone();

    step("stop the node process (SIGTERM): its kubelet and actors stop first, the container keeps serving");
    assert!(c.nodes[0].stop().success());
    let log = c.nodes[0].log();
    let (kubelet_stopped, raft_stopped) =
        (log.find("kubelet: stopping its pod workers"), log.find("node: the API and Raft are stopped"));
    assert!(kubelet_stopped.is_some(), "the kubelet did not stop on SIGTERM");
    assert!(raft_stopped.is_some() && kubelet_stopped < raft_stopped, "the kubelet stopped after Raft:\n{log}");
    let body = wait_for("the pod to answer while its node is down", Duration::from_secs(10), || {
        http_get(&format!("{ip}:8080"), "/")
    });
    assert_eq!(body, "hello from keeper\n");

    step("start the node again: the same container, no restart, status intact");
    c.nodes[0].restart();
    c.wait_serving(0);
    let after = wait_pod(&c, "keeper", "Running after the restart", 30, running);
    assert_eq!(after["status"]["containerStatuses"][0]["containerID"], id);
    assert_eq!(after["status"]["containerStatuses"][0]["restartCount"], 0);
    assert_eq!(after["status"]["podIP"], before["status"]["podIP"]);
    assert!(http_get(&format!("{ip}:8080"), "/").is_some());
}
