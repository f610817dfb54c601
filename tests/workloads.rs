//! Workload controllers end to end on real node processes and containers:
//! the seven things users do with a Deployment, and cascading deletion.
//! Needs root and `make images`.

mod fixtures;

use std::process::Output;
use std::time::Duration;

use serde_json::Value;

use fixtures::{image, step, wait_for, Cluster};

/// A one-node cluster with both test images loaded.
fn cluster() -> Cluster {
    let c = Cluster::init(&[]);
    c.ok(&["image", "load", &image("busybox-v1.tar")]);
    c.ok(&["image", "load", &image("busybox-v2.tar")]);
    c
}

fn deployment(name: &str, replicas: u32, image: &str, extra_spec: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
{extra_spec}  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: httpd
        image: clusterd.local/busybox:{image}
        imagePullPolicy: Never
        command: ["httpd", "-f", "-p", "8080", "-h", "/"]
        readinessProbe:
          tcpSocket: {{port: 8080}}
          periodSeconds: 1
"#
    )
}

fn get(c: &Cluster, what: &[&str]) -> Value {
    let mut args = vec!["get"];
    args.extend(what);
    args.extend(["-o", "json"]);
    serde_json::from_str(&c.ok(&args)).unwrap()
}

fn items(c: &Cluster, kind: &str) -> Vec<Value> {
    get(c, &[kind])["items"].as_array().cloned().unwrap_or_default()
}

/// The /VERSION of every running, ready pod of an app.
fn versions(c: &Cluster, app: &str) -> Vec<String> {
    let mut out = Vec::new();
    for p in items(c, "pods") {
        let ready = p["status"]["conditions"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
        if p["metadata"]["labels"]["app"] != app || p["metadata"].get("deletionTimestamp").is_some() || !ready {
            continue;
        }
        let name = p["metadata"]["name"].as_str().unwrap();
        let o = c.cli(&["exec", name, "--", "cat", "/VERSION"]);
        if o.status.success() {
            out.push(String::from_utf8_lossy(&o.stdout).trim().to_string());
        }
    }
    out.sort();
    out
}

fn rollout_status(c: &Cluster, name: &str, timeout: u32) -> Output {
    c.cli(&["rollout", "status", &format!("deployment/{name}"), "--timeout", &timeout.to_string()])
}

fn assert_rolled_out(c: &Cluster, name: &str) {
    let out = rollout_status(c, name, 90);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "rollout of {name} failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains(&format!("deployment \"{name}\" successfully rolled out")), "{text}");
}

/// Whether a node carries the unreachable taint, and its Ready condition's status.
fn node_state(c: &Cluster, name: &str) -> (bool, String) {
    let n = get(c, &["node", name]);
    let tainted =
        n["spec"]["taints"].as_array().is_some_and(|t| t.iter().any(|t| t["key"] == "node.kubernetes.io/unreachable"));
    let ready = n["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .and_then(|c| c["status"].as_str())
        .unwrap_or("")
        .to_string();
    (tainted, ready)
}

fn replicasets(c: &Cluster) -> Vec<Value> {
    items(c, "rs")
}

fn no_sandboxes_left(c: &Cluster) {
    for n in &c.nodes {
        let dir = n.data_dir.join("runtime/sandboxes");
        wait_for("the node to remove every sandbox", Duration::from_secs(30), || {
            let left = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
            (left == 0).then_some(())
        });
    }
}

#[test]
fn create_rolls_out_and_reports_success() {
    let c = cluster();
    assert!(c.apply(&deployment("web", 3, "v1", "")).status.success());
    assert_rolled_out(&c, "web");
    let d = get(&c, &["deploy", "web"]);
    assert_eq!(d["status"]["availableReplicas"], 3);
    assert_eq!(d["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "1");
    let sets = replicasets(&c);
    assert_eq!(sets.len(), 1);
    let hash = sets[0]["metadata"]["labels"]["pod-template-hash"].as_str().unwrap().to_string();
    assert_eq!(sets[0]["metadata"]["ownerReferences"][0]["name"], "web");
    assert_eq!(versions(&c, "web"), vec!["v1", "v1", "v1"]);
    for p in items(&c, "pods") {
        assert_eq!(p["metadata"]["labels"]["pod-template-hash"], hash.as_str());
    }
    let available =
        d["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Available").unwrap().clone();
    assert_eq!(available["status"], "True");

    step("restart replaces every pod by a new rollout");
    let before: Vec<String> =
        items(&c, "pods").iter().map(|p| p["metadata"]["name"].as_str().unwrap().to_string()).collect();
    c.ok(&["rollout", "restart", "deployment/web"]);
    assert_rolled_out(&c, "web");
    wait_for("the old pods to go", Duration::from_secs(30), || {
        let now: Vec<String> =
            items(&c, "pods").iter().map(|p| p["metadata"]["name"].as_str().unwrap().to_string()).collect();
        (now.len() == 3 && now.iter().all(|n| !before.contains(n))).then_some(())
    });

    step("deleting the Deployment deletes its ReplicaSets and pods");
    c.ok(&["delete", "deployment", "web"]);
    wait_for("ReplicaSets and pods to be collected", Duration::from_secs(30), || {
        (replicasets(&c).is_empty() && items(&c, "pods").is_empty()).then_some(())
    });
    no_sandboxes_left(&c);
}

#[test]
fn a_rolling_update_keeps_availability_within_max_surge() {
    let c = cluster();
    let strategy = "  strategy:\n    type: RollingUpdate\n    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}\n";
    assert!(c.apply(&deployment("web", 3, "v1", strategy)).status.success());
    assert_rolled_out(&c, "web");

    step("v1 → v2: ready pods never drop below replicas - maxUnavailable (3)");
    assert!(c.apply(&deployment("web", 3, "v2", strategy)).status.success());
    let mut lowest = usize::MAX;
    let mut highest = 0;
    wait_for("the rollout to v2", Duration::from_secs(90), || {
        let pods = items(&c, "pods");
        let ready = pods
            .iter()
            .filter(|p| p["metadata"].get("deletionTimestamp").is_none())
            .filter(|p| {
                p["status"]["conditions"]
                    .as_array()
                    .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
            })
            .count();
        lowest = lowest.min(ready);
        highest = highest.max(pods.iter().filter(|p| p["metadata"].get("deletionTimestamp").is_none()).count());
        let d = get(&c, &["deploy", "web"]);
        (d["status"]["updatedReplicas"] == 3 && d["status"]["availableReplicas"] == 3 && d["status"]["replicas"] == 3)
            .then_some(())
    });
    eprintln!("ready pods during the rollout: at least {lowest}; pods at most {highest}");
    assert!(lowest >= 3, "availability dropped to {lowest}");
    assert!(highest <= 4, "surge exceeded: {highest} pods");
    assert_rolled_out(&c, "web");
    assert_eq!(versions(&c, "web"), vec!["v2", "v2", "v2"]);
    let history = c.ok(&["rollout", "history", "deployment/web"]);
    assert!(history.contains("\n1 ") && history.contains("\n2 "), "{history}");
}

#[test]
fn undo_brings_the_previous_revision_back() {
    let c = cluster();
    assert!(c.apply(&deployment("web", 3, "v1", "")).status.success());
    assert_rolled_out(&c, "web");
    assert!(c.apply(&deployment("web", 3, "v2", "")).status.success());
    assert_rolled_out(&c, "web");
    wait_for("only v2 pods", Duration::from_secs(60), || (versions(&c, "web") == vec!["v2", "v2", "v2"]).then_some(()));
    step("undo brings v1 pods back as revision 3");
    let out = c.ok(&["rollout", "undo", "deployment/web"]);
    assert!(out.contains("rolled back"), "{out}");
    assert_rolled_out(&c, "web");
    wait_for("only v1 pods", Duration::from_secs(60), || (versions(&c, "web") == vec!["v1", "v1", "v1"]).then_some(()));
    let d = get(&c, &["deploy", "web"]);
    assert_eq!(d["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "3");

    step("undo --to-revision 1 (it became revision 3) fails; --to-revision 2 brings v2 back");
    let bad = c.cli(&["rollout", "undo", "deployment/web", "--to-revision", "1"]);
    assert!(!bad.status.success(), "revision 1 became 3");
    c.ok(&["rollout", "undo", "deployment/web", "--to-revision", "2"]);
    assert_rolled_out(&c, "web");
    wait_for("only v2 pods", Duration::from_secs(60), || (versions(&c, "web") == vec!["v2", "v2", "v2"]).then_some(()));
}

#[test]
fn recreate_stops_every_old_pod_before_starting_new_ones() {
    let c = cluster();
    let strategy = "  strategy:\n    type: Recreate\n";
    assert!(c.apply(&deployment("web", 2, "v1", strategy)).status.success());
    assert_rolled_out(&c, "web");
    assert!(c.apply(&deployment("web", 2, "v2", strategy)).status.success());
    let mut mixed = false;
    wait_for("the rollout to v2", Duration::from_secs(90), || {
        let v = versions(&c, "web");
        mixed |= v.contains(&"v1".to_string()) && v.contains(&"v2".to_string());
        (v == vec!["v2", "v2"]).then_some(())
    });
    assert!(!mixed, "v1 and v2 pods ran together");
    assert_rolled_out(&c, "web");
}

#[test]
fn scale_up_and_down() {
    let c = cluster();
    assert!(c.apply(&deployment("web", 1, "v1", "")).status.success());
    assert_rolled_out(&c, "web");
    let out = c.ok(&["scale", "deployment/web", "--replicas", "4"]);
    assert_eq!(out.trim(), "deployment.apps/web scaled");
    assert_rolled_out(&c, "web");
    assert_eq!(versions(&c, "web").len(), 4);
    c.ok(&["scale", "deployment", "web", "--replicas", "2"]);
    wait_for("two pods", Duration::from_secs(30), || {
        let live = items(&c, "pods").into_iter().filter(|p| p["metadata"].get("deletionTimestamp").is_none()).count();
        (live == 2).then_some(())
    });
    let d = get(&c, &["deploy", "web"]);
    assert_eq!(d["spec"]["replicas"], 2);
    let bad = c.cli(&["scale", "deployment/web", "--replicas", "-1"]);
    assert!(!bad.status.success());
}

#[test]
fn pause_holds_template_changes_until_resume() {
    let c = cluster();
    assert!(c.apply(&deployment("web", 2, "v1", "")).status.success());
    assert_rolled_out(&c, "web");
    c.ok(&["rollout", "pause", "deployment/web"]);
    assert!(c.apply(&deployment("web", 2, "v2", "  paused: true\n")).status.success());
    // While paused nothing new starts: give the controller a few rounds to prove it.
    let stayed = (0..10).all(|_| {
        std::thread::sleep(Duration::from_millis(300));
        replicasets(&c).len() == 1
    });
    assert!(stayed, "a paused deployment started a rollout");
    let d = get(&c, &["deploy", "web"]);
    let p = d["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Progressing").unwrap().clone();
    assert_eq!(p["reason"], "DeploymentPaused");
    assert_eq!(versions(&c, "web"), vec!["v1", "v1"]);
    c.ok(&["rollout", "resume", "deployment/web"]);
    assert_rolled_out(&c, "web");
    wait_for("v2 pods after resume", Duration::from_secs(60), || {
        (versions(&c, "web") == vec!["v2", "v2"]).then_some(())
    });
}

#[test]
fn a_stuck_rollout_exceeds_its_progress_deadline() {
    let c = cluster();
    let spec = "  progressDeadlineSeconds: 3\n  strategy:\n    type: RollingUpdate\n    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}\n";
    assert!(c.apply(&deployment("web", 2, "v1", spec)).status.success());
    assert_rolled_out(&c, "web");
    let broken = deployment("web", 2, "nope", spec);
    assert!(c.apply(&broken).status.success());
    let out = rollout_status(&c, "web", 60);
    assert!(!out.status.success(), "rollout status must fail");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("deployment \"web\" exceeded its progress deadline"), "{err}");
    let d = get(&c, &["deploy", "web"]);
    let p = d["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Progressing").unwrap().clone();
    assert_eq!((p["status"].as_str(), p["reason"].as_str()), (Some("False"), Some("ProgressDeadlineExceeded")));
    assert_eq!(versions(&c, "web"), vec!["v1", "v1"], "the old pods keep serving");
    let waiting: Vec<String> = items(&c, "pods")
        .iter()
        .filter_map(|p| {
            p.pointer("/status/containerStatuses/0/state/waiting/reason").and_then(Value::as_str).map(String::from)
        })
        .collect();
    assert!(waiting.iter().any(|r| r == "ErrImageNeverPull"), "{waiting:?}");
}

#[test]
fn old_replicasets_beyond_the_history_limit_are_cleaned_up() {
    let c = cluster();
    let spec = "  revisionHistoryLimit: 1\n";
    for (i, v) in ["v1", "v2", "v1", "v2"].iter().enumerate() {
        // The template changes each time (an annotation), so each apply is a new revision.
        let d = deployment("web", 1, v, spec).replace(
            "    metadata:\n      labels: {app: web}\n",
            &format!("    metadata:\n      labels: {{app: web}}\n      annotations: {{round: \"{i}\"}}\n"),
        );
        assert!(c.apply(&d).status.success());
        assert_rolled_out(&c, "web");
    }
    wait_for("one old ReplicaSet kept", Duration::from_secs(30), || (replicasets(&c).len() == 2).then_some(()));
    let history = c.ok(&["rollout", "history", "deployment/web"]);
    assert!(history.contains("\n3 ") && history.contains("\n4 ") && !history.contains("\n1 "), "{history}");
}

#[test]
fn pods_of_a_killed_worker_run_elsewhere() {
    // Short grace and toleration keep the test quick; the defaults (40 s + 20 s) are in the bench.
    let mut c = Cluster::init(&["--node-grace-period", "6", "--pod-eviction-timeout", "3"]);
    c.join("n2", true);
    c.join("n3", true);
    let w = c.join("w1", false);
    c.ok(&["image", "load", &image("busybox-v1.tar")]);
    assert!(c.apply(&deployment("web", 4, "v1", "")).status.success());
    assert_rolled_out(&c, "web");
    let on_w1 = |c: &Cluster| {
        items(c, "pods")
            .iter()
            .filter(|p| p["spec"]["nodeName"] == "w1" && p["metadata"].get("deletionTimestamp").is_none())
            .count()
    };
    assert!(on_w1(&c) > 0, "the spread put nothing on w1");

    step("kill -9 the worker");
    c.nodes[w].kill9();
    let t0 = std::time::Instant::now();
    wait_for("w1 to be NotReady and tainted", Duration::from_secs(30), || {
        (node_state(&c, "w1") == (true, "Unknown".to_string())).then_some(())
    });
    let not_ready_after = t0.elapsed();
    wait_for("4 ready pods on the other nodes", Duration::from_secs(60), || {
        let ready_elsewhere = items(&c, "pods")
            .iter()
            .filter(|p| p["spec"]["nodeName"] != "w1")
            .filter(|p| {
                p["status"]["conditions"]
                    .as_array()
                    .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
            })
            .count();
        (ready_elsewhere == 4 && on_w1(&c) == 0).then_some(())
    });
    eprintln!(
        "w1 NotReady after {:.1} s; its pods running elsewhere after {:.1} s (grace 6 s, toleration 3 s)",
        not_ready_after.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );

    step("w1 comes back: untainted, Ready, and nothing of the evicted pods runs there");
    c.nodes[w].restart();
    wait_for("w1 Ready and untainted", Duration::from_secs(30), || {
        (node_state(&c, "w1") == (false, "True".to_string())).then_some(())
    });
    let dir = c.nodes[w].data_dir.join("runtime/sandboxes");
    wait_for("w1 to remove the sandboxes of evicted pods", Duration::from_secs(30), || {
        let live: Vec<String> = items(&c, "pods")
            .iter()
            .filter(|p| p["spec"]["nodeName"] == "w1")
            .map(|p| p["metadata"]["uid"].as_str().unwrap().to_string())
            .collect();
        let stale = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| {
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                !live.iter().any(|u| text.contains(u))
            })
            .count();
        (stale == 0).then_some(())
    });
}

#[test]
fn a_daemonset_runs_on_every_node_including_one_that_joins_later() {
    let mut c = cluster();
    let ds = r#"apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  selector:
    matchLabels: {app: agent}
  template:
    metadata:
      labels: {app: agent}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: agent
        image: clusterd.local/busybox:v1
        imagePullPolicy: IfNotPresent
        command: ["sleep", "3600"]
"#;
    assert!(c.apply(ds).status.success());
    let on = |c: &Cluster| {
        let mut nodes: Vec<String> = items(c, "pods")
            .iter()
            .filter(|p| p["metadata"]["labels"]["app"] == "agent" && p["status"]["phase"] == "Running")
            .map(|p| p["spec"]["nodeName"].as_str().unwrap().to_string())
            .collect();
        nodes.sort();
        nodes
    };
    wait_for("the agent on n1", Duration::from_secs(60), || (on(&c) == vec!["n1"]).then_some(()));
    step("a node joins: it gets its agent");
    c.join("w1", false);
    c.ok(&["image", "load", &image("busybox-v1.tar")]);
    c.ok(&["image", "load", &image("busybox-v2.tar")]);
    wait_for("an agent on n1 and w1", Duration::from_secs(60), || (on(&c) == vec!["n1", "w1"]).then_some(()));
    let d = get(&c, &["ds", "agent"]);
    assert_eq!(d["status"]["desiredNumberScheduled"], 2);
    step("a template change rolls every node's pod over");
    assert!(c.apply(&ds.replace("busybox:v1", "busybox:v2")).status.success());
    wait_for("v2 agents everywhere", Duration::from_secs(90), || {
        let d = get(&c, &["ds", "agent"]);
        (d["status"]["updatedNumberScheduled"] == 2 && d["status"]["numberReady"] == 2 && on(&c).len() == 2)
            .then_some(())
    });
}

#[test]
fn a_statefulset_starts_in_order_and_scales_down_from_the_top() {
    let c = cluster();
    let sts = r#"apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  serviceName: db
  replicas: 3
  selector:
    matchLabels: {app: db}
  template:
    metadata:
      labels: {app: db}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: db
        image: clusterd.local/busybox:v1
        imagePullPolicy: Never
        command: ["sh", "-c", "sleep 1; touch /tmp/up; exec sleep 3600"]
        readinessProbe:
          exec: {command: ["test", "-f", "/tmp/up"]}
          periodSeconds: 1
"#;
    assert!(c.apply(sts).status.success());
    wait_for("db-0, db-1, db-2 ready", Duration::from_secs(90), || {
        (get(&c, &["sts", "db"])["status"]["readyReplicas"] == 3).then_some(())
    });
    let started = |name: &str| {
        let p = get(&c, &["pod", name]);
        p["status"]["containerStatuses"][0]["state"]["running"]["startedAt"].as_str().unwrap().to_string()
    };
    let ready_at = |name: &str| {
        let p = get(&c, &["pod", name]);
        p["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").unwrap()
            ["lastTransitionTime"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(ready_at("db-0") <= started("db-1"), "db-1 started before db-0 was ready");
    assert!(ready_at("db-1") <= started("db-2"), "db-2 started before db-1 was ready");
    let host = c.cli(&["exec", "db-1", "--", "hostname"]);
    assert_eq!(String::from_utf8_lossy(&host.stdout).trim(), "db-1");

    step("a template change rolls pods over from the highest ordinal down");
    let uid = |name: &str| get(&c, &["pod", name])["metadata"]["uid"].as_str().unwrap().to_string();
    let before: Vec<String> = ["db-0", "db-1", "db-2"].iter().map(|n| uid(n)).collect();
    assert!(c.apply(&sts.replace("busybox:v1", "busybox:v2")).status.success());
    let mut order: Vec<String> = Vec::new();
    wait_for("every pod replaced", Duration::from_secs(120), || {
        for (i, n) in ["db-0", "db-1", "db-2"].iter().enumerate() {
            let now = c.cli(&["get", "pod", n, "-o", "json"]);
            let replaced = now.status.success()
                && serde_json::from_slice::<Value>(&now.stdout).unwrap()["metadata"]["uid"].as_str()
                    != Some(before[i].as_str());
            if replaced && !order.contains(&n.to_string()) {
                order.push(n.to_string());
            }
        }
        let st = get(&c, &["sts", "db"])["status"].clone();
        (order.len() == 3 && st["updatedReplicas"] == 3 && st["readyReplicas"] == 3).then_some(())
    });
    assert_eq!(order, vec!["db-2", "db-1", "db-0"]);
    assert_eq!(c.ok(&["exec", "db-0", "--", "cat", "/VERSION"]).trim(), "v2");
    step("scale to 1: db-2 goes before db-1");
    c.ok(&["scale", "statefulset/db", "--replicas", "1"]);
    wait_for("only db-0", Duration::from_secs(60), || {
        let names: Vec<String> =
            items(&c, "pods").iter().map(|p| p["metadata"]["name"].as_str().unwrap().to_string()).collect();
        let has = |n: &str| names.iter().any(|x| x == n);
        assert!(!has("db-2") || has("db-1"), "db-1 went before db-2");
        (names == vec!["db-0"]).then_some(())
    });
}

#[test]
fn jobs_complete_or_fail() {
    let c = cluster();
    let job = |name: &str, script: &str, completions: u32, backoff: u32| {
        format!(
            r#"apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
spec:
  completions: {completions}
  parallelism: 2
  backoffLimit: {backoff}
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: work
        image: clusterd.local/busybox:v1
        imagePullPolicy: Never
        command: ["sh", "-c", "{script}"]
"#
        )
    };
    assert!(c.apply(&job("ok", "echo done", 3, 2)).status.success());
    assert!(c.apply(&job("bad", "echo oops; exit 1", 1, 0)).status.success());
    let cond = |name: &str, kind: &str| {
        let j = get(&c, &["job", name]);
        j["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == kind && c["status"] == "True").cloned())
    };
    wait_for("job ok to complete", Duration::from_secs(90), || cond("ok", "Complete"));
    let j = get(&c, &["job", "ok"]);
    assert_eq!(j["status"]["succeeded"], 3);
    let f = wait_for("job bad to fail", Duration::from_secs(90), || cond("bad", "Failed"));
    assert_eq!(f["reason"], "BackoffLimitExceeded");
    step("finished pods are kept for their logs");
    let pods: Vec<Value> =
        items(&c, "pods").into_iter().filter(|p| p["metadata"]["labels"]["job-name"] == "ok").collect();
    assert_eq!(pods.len(), 3);
    let name = pods[0]["metadata"]["name"].as_str().unwrap();
    assert_eq!(c.ok(&["logs", name]), "done\n");
}

#[test]
fn cascading_deletes_and_namespace_deletion_leave_nothing_behind() {
    let c = cluster();
    let rs_count = |c: &Cluster| replicasets(c).len();
    let live_pods =
        |c: &Cluster| items(c, "pods").into_iter().filter(|p| p["metadata"].get("deletionTimestamp").is_none()).count();

    step("orphan: the Deployment goes, its ReplicaSet and pods stay, without owner");
    assert!(c.apply(&deployment("keep", 2, "v1", "")).status.success());
    assert_rolled_out(&c, "keep");
    c.ok(&["delete", "deployment", "keep", "--cascade", "orphan"]);
    let sets = replicasets(&c);
    assert_eq!(sets.len(), 1);
    assert!(sets[0]["metadata"].get("ownerReferences").is_none_or(|r| r.as_array().unwrap().is_empty()), "{}", sets[0]);
    assert_eq!(live_pods(&c), 2);
    let rs_name = sets[0]["metadata"]["name"].as_str().unwrap().to_string();
    c.ok(&["delete", "rs", &rs_name]);
    wait_for("the orphaned set's pods to be collected", Duration::from_secs(30), || {
        (items(&c, "pods").is_empty()).then_some(())
    });

    step("foreground: the Deployment waits until its ReplicaSet is gone");
    assert!(c.apply(&deployment("fg", 2, "v1", "")).status.success());
    assert_rolled_out(&c, "fg");
    c.ok(&["delete", "deployment", "fg", "--cascade", "foreground"]);
    assert_eq!(rs_count(&c), 0, "delete --cascade foreground returns once dependents are gone");
    wait_for("pods collected", Duration::from_secs(30), || (items(&c, "pods").is_empty()).then_some(()));

    step("deleting a namespace deletes everything in it, then the namespace");
    let ns = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team\n";
    assert!(c.apply(ns).status.success());
    let in_team = deployment("web", 2, "v1", "")
        .replace("metadata:\n  name: web\n", "metadata:\n  name: web\n  namespace: team\n");
    assert!(c.apply(&in_team).status.success());
    assert!(c
        .apply("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n  namespace: team\ndata: {a: b}\n")
        .status
        .success());
    wait_for("team pods running", Duration::from_secs(60), || {
        let d: Value = serde_json::from_str(&c.ok(&["get", "deploy", "web", "-n", "team", "-o", "json"])).unwrap();
        (d["status"]["availableReplicas"] == 2).then_some(())
    });
    step("the namespace has a default ServiceAccount whose token is mounted into its pods");
    let sa: Value = serde_json::from_str(&c.ok(&["get", "sa", "default", "-n", "team", "-o", "json"])).unwrap();
    assert_eq!(sa["metadata"]["name"], "default");
    let pod_name = {
        let list: Value = serde_json::from_str(&c.ok(&["get", "pods", "-n", "team", "-o", "json"])).unwrap();
        list["items"][0]["metadata"]["name"].as_str().unwrap().to_string()
    };
    let dir = "/var/run/secrets/kubernetes.io/serviceaccount";
    let ns_file = c.ok(&["exec", &pod_name, "-n", "team", "--", "cat", &format!("{dir}/namespace")]);
    assert_eq!(ns_file, "team");
    let token = c.ok(&["exec", &pod_name, "-n", "team", "--", "cat", &format!("{dir}/token")]);
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    let ca = c.ok(&["exec", &pod_name, "-n", "team", "--", "cat", &format!("{dir}/ca.crt")]);
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");

    let out = c.ok(&["delete", "namespace", "team"]);
    assert!(out.contains("namespace \"team\" deleted"), "{out}");
    let gone = c.cli(&["get", "namespace", "team"]);
    assert!(!gone.status.success(), "delete waits until the namespace is gone");
    for kind in ["pods", "rs", "deploy", "cm"] {
        let left = c.ok(&["get", kind, "-n", "team", "-o", "name"]);
        assert!(left.trim().is_empty(), "{kind} left in team: {left}");
    }
    no_sandboxes_left(&c);
}

#[test]
fn a_write_the_registry_refuses_is_retried_with_back_off_and_told_on_the_owner() {
    let c = Cluster::init(&[]);
    // A StatefulSet's name may be 252 characters; its pod "<name>-0" may not.
    let label = |ch: char, n: usize| std::iter::once('s').chain(std::iter::repeat_n(ch, n - 1)).collect::<String>();
    let name = [label('a', 62), label('b', 62), label('c', 62), label('d', 63)].join(".");
    assert_eq!(name.len(), 252);
    step("a StatefulSet whose first pod admission refuses");
    let manifest = format!(
        r#"apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: {name}
spec:
  serviceName: long
  replicas: 1
  selector:
    matchLabels: {{app: long}}
  template:
    metadata:
      labels: {{app: long}}
    spec:
      containers:
      - name: c
        image: clusterd.local/busybox:v1
        imagePullPolicy: Never
"#
    );
    let out = c.apply(&manifest);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    step("its controller tells why on the StatefulSet, as describe shows");
    let failed_create = || {
        let events = get(&c, &["events"])["items"].as_array().cloned().unwrap_or_default();
        events.into_iter().find(|e| e["reason"] == "FailedCreate" && e["involvedObject"]["name"] == name.as_str())
    };
    let first = wait_for("a FailedCreate event", Duration::from_secs(30), failed_create);
    let message = first["message"].as_str().unwrap_or("");
    assert!(message.starts_with("Error creating: Pod") && message.contains("metadata.name"), "{message}");
    assert_eq!(first["type"], "Warning");
    let described = c.ok(&["describe", "statefulset", &name]);
    assert!(described.contains("FailedCreate") && described.contains("Error creating"), "{described}");
    step("it keeps trying without any change, ever more slowly");
    let count = |e: &Value| e["count"].as_i64().unwrap_or(0);
    let retried =
        wait_for("the create to be retried", Duration::from_secs(30), || failed_create().filter(|e| count(e) >= 4));
    // 5 ms doubling: the 12th try comes ~10 s after the first; a retry loop
    // without back-off would have made thousands by now.
    std::thread::sleep(Duration::from_secs(3));
    let later = failed_create().expect("the event stays");
    assert!(count(&later) >= count(&retried), "{later}");
    assert!(count(&later) <= 14, "retried {} times in a few seconds: no back-off", count(&later));
    assert!(items(&c, "pods").is_empty(), "nothing was created");
}
