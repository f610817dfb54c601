//! kubectl, unmodified, against a real cluster: the Kubernetes REST API served
//! on the API port with the kubeconfig `init` writes. Needs root, `make images`
//! and kubectl (preinstalled on these machines; its dispatcher picks 1.32 from
//! the server's `/version`).

mod fixtures;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use fixtures::{image, step, wait_for, Cluster};

fn kubeconfig(c: &Cluster) -> PathBuf {
    c.dir.path().join("n1").join("kubeconfig")
}

fn kubectl_with(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new("kubectl")
        .env("KUBECONFIG", config)
        .env("HOME", config.parent().unwrap())
        .envs(env.iter().copied())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run kubectl")
}

fn kubectl(c: &Cluster, args: &[&str]) -> Output {
    kubectl_with(&kubeconfig(c), args, &[])
}

/// Run kubectl, expect success, return stdout.
fn ok(c: &Cluster, args: &[&str]) -> String {
    let out = kubectl(c, args);
    assert!(
        out.status.success(),
        "kubectl {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Run kubectl, expect failure, return stderr.
fn fails(c: &Cluster, args: &[&str]) -> String {
    let out = kubectl(c, args);
    assert!(!out.status.success(), "kubectl {args:?} succeeded:\n{}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8(out.stderr).unwrap()
}

fn json_of(c: &Cluster, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    serde_json::from_str(&ok(c, &a)).unwrap()
}

/// A kubectl that keeps printing (`-w`, `logs -f`), its output collected in a file.
struct Streaming {
    child: std::process::Child,
    copier: std::thread::JoinHandle<()>,
    out: PathBuf,
}

impl Streaming {
    fn start(c: &Cluster, args: &[&str], file: &str) -> Streaming {
        let mut child = Command::new("kubectl")
            .env("KUBECONFIG", kubeconfig(c))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = c.dir.path().join(file);
        let mut reader = child.stdout.take().unwrap();
        let mut f = std::fs::File::create(&out).unwrap();
        let copier = std::thread::spawn(move || {
            let _ = std::io::copy(&mut reader, &mut f);
        });
        Streaming { child, copier, out }
    }

    /// What it printed so far.
    fn text(&self) -> Option<String> {
        std::fs::read_to_string(&self.out).ok()
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = self.copier.join();
    }
}

const APP: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: clusterd.local/busybox:v1
        command: ["sh", "-c", "i=0; while true; do echo line $i; i=$((i+1)); sleep 1; done"]
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 8080
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
data:
  greeting: hello
"#;

fn write(c: &Cluster, name: &str, text: &str) -> String {
    let p = c.dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn cluster() -> Cluster {
    let c = Cluster::init(&[]);
    c.ok(&["image", "load", &image("busybox-v1.tar")]);
    wait_for("the node Ready", Duration::from_secs(30), || {
        let out = c.cli(&["get", "nodes", "-o", "json"]);
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        let ready = v["items"].as_array()?.iter().any(|n| {
            n["status"]["conditions"]
                .as_array()
                .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
        });
        ready.then_some(())
    });
    c
}

#[test]
fn kubectl_manages_an_application() {
    let c = cluster();

    step("version and discovery");
    let v = ok(&c, &["version"]);
    assert!(v.contains("Server Version: v1.32"), "{v}");
    let res = ok(&c, &["api-resources"]);
    for line in ["deployments", "deploy", "apps/v1", "pods", "po", "endpointslices", "discovery.k8s.io/v1"] {
        assert!(res.contains(line), "{line} missing in:\n{res}");
    }

    step("apply creates, then leaves alone, then configures what changed");
    let file = write(&c, "app.yaml", APP);
    let out = ok(&c, &["apply", "-f", &file]);
    for what in ["deployment.apps/web created", "service/web created", "configmap/web-config created"] {
        assert!(out.contains(what), "{out}");
    }
    let out = ok(&c, &["apply", "-f", &file]);
    for what in ["deployment.apps/web unchanged", "service/web unchanged", "configmap/web-config unchanged"] {
        assert!(out.contains(what), "{out}");
    }
    write(&c, "app.yaml", &APP.replace("greeting: hello", "greeting: bonjour").replace("replicas: 2", "replicas: 3"));
    let out = ok(&c, &["apply", "-f", &file]);
    assert!(out.contains("configmap/web-config configured") && out.contains("deployment.apps/web configured"), "{out}");
    assert!(out.contains("service/web unchanged"), "{out}");
    assert_eq!(json_of(&c, &["get", "cm", "web-config"])["data"]["greeting"], "bonjour");
    assert_eq!(json_of(&c, &["get", "deploy", "web"])["spec"]["replicas"], 3);

    step("the pods run; a watch sees a new one");
    ok(&c, &["rollout", "status", "deployment/web", "--timeout=90s"]);
    let watch = Streaming::start(&c, &["get", "pods", "-w", "--request-timeout=60s"], "watch.out");
    ok(&c, &["scale", "deployment", "web", "--replicas=4"]);
    wait_for("the watch to print a fourth pod", Duration::from_secs(30), || {
        let text = watch.text()?;
        let names: std::collections::BTreeSet<&str> =
            text.lines().filter(|l| l.starts_with("web-")).filter_map(|l| l.split_whitespace().next()).collect();
        (names.len() >= 4).then_some(())
    });
    watch.stop();

    step("label, annotate, scale");
    ok(&c, &["label", "deployment", "web", "tier=front"]);
    ok(&c, &["annotate", "deployment", "web", "note=hello"]);
    ok(&c, &["scale", "deployment", "web", "--replicas=2"]);
    let d = json_of(&c, &["get", "deployment", "web"]);
    assert_eq!(
        (&d["metadata"]["labels"]["tier"], &d["metadata"]["annotations"]["note"]),
        (&"front".into(), &"hello".into())
    );
    assert_eq!(d["spec"]["replicas"], 2);
    ok(&c, &["label", "deployment", "web", "tier-"]);
    assert!(json_of(&c, &["get", "deployment", "web"])["metadata"]["labels"].get("tier").is_none());

    step("rollout restart, history, undo");
    ok(&c, &["rollout", "restart", "deployment/web"]);
    ok(&c, &["rollout", "status", "deployment/web", "--timeout=90s"]);
    let history = ok(&c, &["rollout", "history", "deployment/web"]);
    assert!(history.contains('1') && history.contains('2'), "{history}");
    let out = ok(&c, &["rollout", "undo", "deployment/web"]);
    assert!(out.contains("rolled back"), "{out}");
    ok(&c, &["rollout", "status", "deployment/web", "--timeout=90s"]);
    let d = json_of(&c, &["get", "deployment", "web"]);
    assert!(
        d["spec"]["template"]["metadata"]["annotations"].get("kubectl.kubernetes.io/restartedAt").is_none(),
        "undo goes back to the template before the restart: {}",
        d["spec"]["template"]
    );

    step("logs -f follows a container; exec runs a command in it");
    let pods = json_of(&c, &["get", "pods", "-l", "app=web", "--field-selector=status.phase=Running"]);
    let pod = pods["items"][0]["metadata"]["name"].as_str().unwrap().to_string();
    let follow = Streaming::start(&c, &["logs", "-f", &pod], "logs.out");
    let first = wait_for("a first line", Duration::from_secs(20), || follow.text()?.lines().next().map(str::to_string));
    wait_for("lines written after the follow began", Duration::from_secs(20), || {
        let text = follow.text()?;
        (text.lines().count() >= 3 && text.lines().last() != Some(first.as_str())).then_some(())
    });
    follow.stop();
    assert_eq!(ok(&c, &["exec", &pod, "--", "cat", "/VERSION"]), "v1\n");
    let out = kubectl(&c, &["exec", &pod, "--", "sh", "-c", "echo out; echo err >&2; exit 7"]);
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");

    step("explain reads the served OpenAPI");
    let explained = ok(&c, &["explain", "pod.spec.containers"]);
    assert!(explained.contains("FIELDS:") && explained.contains("image"), "{explained}");

    step("diff shows what apply would change, on the server (dry run)");
    let diff_file = write(&c, "diff.yaml", &APP.replace("greeting: hello", "greeting: servus"));
    let out = kubectl(&c, &["diff", "-f", &diff_file]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("+  greeting: servus"), "{shown}");
    assert_eq!(json_of(&c, &["get", "cm", "web-config"])["data"]["greeting"], "bonjour", "a diff writes nothing");

    step("server-side apply: created, changed, conflicts with another manager unless forced");
    let ssa = write(&c, "ssa.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  owner: first\n");
    let out = ok(&c, &["apply", "--server-side", "-f", &ssa]);
    assert!(out.contains("configmap/ssa serverside-applied"), "{out}");
    write(
        &c,
        "ssa.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  owner: first\n  extra: x\n",
    );
    ok(&c, &["apply", "--server-side", "-f", &ssa]);
    assert_eq!(json_of(&c, &["get", "cm", "ssa"])["data"]["extra"], "x");
    let other =
        write(&c, "other.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  owner: second\n");
    let err = fails(&c, &["apply", "--server-side", "--field-manager=other", "-f", &other]);
    assert!(err.contains("conflict") && err.contains("owner"), "{err}");
    ok(&c, &["apply", "--server-side", "--field-manager=other", "--force-conflicts", "-f", &other]);
    assert_eq!(json_of(&c, &["get", "cm", "ssa"])["data"]["owner"], "second");
    // A field a plain write changed is that writer's: applying another value conflicts.
    ok(&c, &["patch", "cm", "ssa", "--type=merge", "-p", r#"{"data":{"extra":"y"}}"#, "--field-manager=patcher"]);
    let err = fails(&c, &["apply", "--server-side", "-f", &ssa]);
    assert!(err.contains("conflict") && err.contains("patcher") && err.contains("extra"), "{err}");

    step("edit with a non-interactive editor");
    let editor = write(&c, "editor.sh", "#!/bin/sh\nsed -i 's/greeting: bonjour/greeting: hallo/' \"$1\"\n");
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = kubectl_with(&kubeconfig(&c), &["edit", "configmap", "web-config"], &[("KUBE_EDITOR", &editor)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(json_of(&c, &["get", "cm", "web-config"])["data"]["greeting"], "hallo");

    step("describe shows events");
    let described = ok(&c, &["describe", "deployment", "web"]);
    assert!(described.contains("ScalingReplicaSet"), "{described}");
    let pods = json_of(&c, &["get", "pods", "-l", "app=web"]);
    let pod = pods["items"][0]["metadata"]["name"].as_str().unwrap().to_string();
    let described = ok(&c, &["describe", "pod", &pod]);
    assert!(described.contains("Scheduled") || described.contains("Started"), "{described}");

    step("get all -A lists workloads and services of every namespace");
    let all = ok(&c, &["get", "all", "-A"]);
    for what in ["deployment.apps/web", "service/web", "service/kubernetes", "replicaset.apps/web-"] {
        assert!(all.contains(what), "{what} missing in:\n{all}");
    }

    step("delete -f waits until the objects are gone");
    let out = ok(&c, &["delete", "-f", &file, "--timeout=60s"]);
    assert!(out.contains("deployment.apps \"web\" deleted"), "{out}");
    let err = fails(&c, &["get", "deployment", "web"]);
    assert!(err.contains("NotFound") || err.contains("not found"), "{err}");
}

#[test]
fn bad_requests_are_refused_and_nothing_is_written() {
    let c = cluster();

    step("an invalid object: 422 naming the field");
    let bad = write(&c, "bad.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Not_A_Name\ndata:\n  a: b\n");
    let err = fails(&c, &["create", "-f", &bad]);
    assert!(err.contains("is invalid") && err.contains("metadata.name"), "{err}");
    let err = fails(&c, &["get", "cm", "Not_A_Name"]);
    assert!(err.contains("not found"), "{err}");

    step("a stale resourceVersion on replace: 409");
    let cm = write(&c, "cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: one\ndata:\n  a: '1'\n");
    ok(&c, &["create", "-f", &cm]);
    let mut obj = json_of(&c, &["get", "cm", "one"]);
    ok(&c, &["patch", "cm", "one", "--type=merge", "-p", r#"{"data":{"a":"2"}}"#]);
    obj["data"]["a"] = "3".into();
    let stale = write(&c, "stale.json", &obj.to_string());
    let err = fails(&c, &["replace", "-f", &stale]);
    assert!(err.contains("the object has been modified"), "{err}");
    assert_eq!(json_of(&c, &["get", "cm", "one"])["data"]["a"], "2");

    step("a malformed patch: refused");
    let err = fails(&c, &["patch", "cm", "one", "--type=json", "-p", r#"[{"op":"frobnicate","path":"/data/a"}]"#]);
    assert!(err.contains("frobnicate"), "{err}");
    let err = fails(&c, &["patch", "cm", "one", "--type=merge", "-p", "{not json"]);
    assert!(!err.is_empty());
    assert_eq!(json_of(&c, &["get", "cm", "one"])["data"]["a"], "2");

    step("no valid credentials: 401");
    let text = std::fs::read_to_string(kubeconfig(&c)).unwrap();
    let mut cfg: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    cfg["users"][0]["user"] = serde_yaml_ng::from_str("{token: not-a-token}").unwrap();
    let anon = c.dir.path().join("anonymous.kubeconfig");
    std::fs::write(&anon, serde_yaml_ng::to_string(&cfg).unwrap()).unwrap();
    let out = kubectl_with(&anon, &["get", "pods"], &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("must be logged in to the server") && err.contains("provide credentials"), "{err}");
    let out = kubectl_with(&anon, &["version"], &[]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("Server Version: v1.32"), "version is anonymous");
}

#[test]
fn lists_page_select_and_expire_and_service_accounts_authenticate() {
    let c = cluster();

    step("get nodes -o wide prints Kubernetes' columns");
    let wide = ok(&c, &["get", "nodes", "-o", "wide"]);
    for col in ["NAME", "STATUS", "ROLES", "VERSION", "INTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"]
    {
        assert!(wide.lines().next().unwrap_or("").contains(col), "{col} missing in:\n{wide}");
    }
    assert!(wide.contains("n1") && wide.contains("Ready") && wide.contains("control-plane"), "{wide}");

    step("kubectl's protobuf generators: create namespace, configmap, secret");
    ok(&c, &["create", "namespace", "team-a"]);
    ok(&c, &["create", "configmap", "settings", "-n", "team-a", "--from-literal=colour=blue"]);
    ok(&c, &["create", "secret", "generic", "creds", "-n", "team-a", "--from-literal=pw=hunter2"]);
    assert_eq!(json_of(&c, &["get", "cm", "settings", "-n", "team-a"])["data"]["colour"], "blue");
    assert_eq!(json_of(&c, &["get", "secret", "creds", "-n", "team-a"])["data"]["pw"], "aHVudGVyMg==");
    let err = fails(&c, &["create", "deployment", "d", "--image=clusterd.local/busybox:v1"]);
    assert!(err.contains("not accepted as protobuf") && err.contains("application/json"), "{err}");

    step("a list paged two at a time shows every object once");
    for i in 0..5 {
        let f = write(&c, &format!("cm{i}.yaml"), &format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: page-{i}\n  labels: {{set: paged, num: \"{i}\"}}\n"));
        ok(&c, &["create", "-f", &f]);
    }
    let out = ok(&c, &["get", "cm", "-l", "set=paged", "--chunk-size=2", "-o", "name"]);
    let names: Vec<&str> = out.lines().collect();
    assert_eq!(names, (0..5).map(|i| format!("configmap/page-{i}")).collect::<Vec<_>>(), "{out}");
    let first: Value = serde_json::from_str(&ok(
        &c,
        &["get", "--raw", "/api/v1/namespaces/default/configmaps?limit=2&labelSelector=set%3Dpaged"],
    ))
    .unwrap();
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    assert_eq!(first["metadata"]["remainingItemCount"], 3);
    let token = first["metadata"]["continue"].as_str().unwrap().to_string();
    ok(&c, &["delete", "cm", "page-4"]);
    let rest: Value = serde_json::from_str(&ok(
        &c,
        &[
            "get",
            "--raw",
            &format!("/api/v1/namespaces/default/configmaps?limit=10&labelSelector=set%3Dpaged&continue={token}"),
        ],
    ))
    .unwrap();
    assert_eq!(rest["items"].as_array().unwrap().len(), 3, "later pages come from the first page's revision: {rest}");
    assert_eq!(rest["metadata"]["resourceVersion"], first["metadata"]["resourceVersion"]);

    step("label and field selectors in their full grammar");
    let out = ok(&c, &["get", "cm", "-l", "set=paged,num in (1,3),num notin (3)", "-o", "name"]);
    assert_eq!(out.trim(), "configmap/page-1");
    let out =
        ok(&c, &["get", "cm", "-l", "set=paged,!nothing", "--field-selector", "metadata.name!=page-0", "-o", "name"]);
    assert_eq!(out.lines().count(), 3, "{out}");
    let err = fails(&c, &["get", "deployments", "--field-selector", "spec.nodeName=n1"]);
    assert!(err.contains("field label not supported"), "{err}");

    step("a watch from a compacted revision is 410 Expired");
    let rv: u64 = first["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
    c.ok(&["compact"]);
    let err = fails(&c, &["get", "--raw", &format!("/api/v1/configmaps?watch=true&resourceVersion={}", rv - 1)]);
    assert!(err.contains("Expired") || err.contains("too old"), "{err}");

    step("a service account's token authenticates as the account");
    let secret = json_of(&c, &["get", "secret", "default-token"]);
    let token = secret["data"]["token"].as_str().unwrap();
    use base64::Engine;
    let token = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(token).unwrap()).unwrap();
    let text = std::fs::read_to_string(kubeconfig(&c)).unwrap();
    let mut cfg: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    cfg["users"][0]["user"] = serde_yaml_ng::from_str(&format!("{{token: {token}}}")).unwrap();
    let sa = c.dir.path().join("sa.kubeconfig");
    std::fs::write(&sa, serde_yaml_ng::to_string(&cfg).unwrap()).unwrap();
    let out = kubectl_with(&sa, &["get", "cm", "page-0", "-o", "name"], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // A new account of the same name (a new uid) gets a new token; the old one stops working.
    ok(&c, &["delete", "serviceaccount", "default"]);
    wait_for("the deleted account's token to stop working", Duration::from_secs(20), || {
        let out = kubectl_with(&sa, &["get", "cm", "page-0", "-o", "name"], &[]);
        (!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("Unauthorized")).then_some(())
    });
}
