//! Multi-process cluster tests: real `clusterd` binaries on loopback.

mod fixtures;

use std::time::{Duration, Instant};

use clusterd::api::pb;
use clusterd::cluster::config::AdminConfig;
use fixtures::{wait_for, Cluster};
use futures::StreamExt;
use serde_json::{json, Value};
use tonic::Code;

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn cm(name: &str, value: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  key: \"{value}\"\n")
}

async fn api(c: &Cluster, idx: usize) -> clusterd::client::ApiClient {
    clusterd_raft::pki::install_default_provider();
    let cfg = AdminConfig::load(&c.config).unwrap();
    clusterd::client::connect(&cfg, &[c.nodes[idx].api_addr.clone()]).await.unwrap().0
}

fn three_voters(extra: &[&str]) -> Cluster {
    let mut c = Cluster::init(extra);
    c.join("n2", true);
    c.join("n3", true);
    c
}

#[test]
fn bootstrap_three_voters_and_a_learner() {
    let mut c = three_voters(&[]);
    c.join("w1", false);
    eprintln!("--- status shows 3 voters, 1 learner and a leader, all caught up");
    let st = wait_for("all members caught up", Duration::from_secs(30), || {
        let st = c.status();
        let applied: Vec<Option<u64>> =
            st["members"].as_array().unwrap().iter().map(|m| m["lastApplied"].as_u64()).collect();
        (applied.iter().all(|a| a.is_some() && *a == applied[0])).then_some(st)
    });
    let members = st["members"].as_array().unwrap();
    assert_eq!(members.len(), 4);
    let role = |n: &str| members.iter().find(|m| m["name"] == n).unwrap()["role"].as_str().unwrap().to_string();
    assert_eq!(
        (role("n1"), role("n2"), role("n3"), role("w1")),
        ("voter".into(), "voter".into(), "voter".into(), "learner".into())
    );
    assert!(["n1", "n2", "n3"].contains(&st["leader"].as_str().unwrap()));
    for m in members {
        assert!(m["raftAddr"].as_str().unwrap().starts_with("127.0.0.1:"));
        assert!(m["apiAddr"].as_str().unwrap().starts_with("127.0.0.1:"));
    }
    eprintln!("--- every node serves the API, the learner included");
    for i in 0..4 {
        let out = c.cli_at(i, &["get", "namespaces", "-o", "name"]);
        assert!(out.status.success(), "{}", stderr(&out));
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            assert!(stdout(&out).contains(&format!("namespace/{ns}")), "{}", stdout(&out));
        }
    }
    eprintln!("--- a write through the learner is forwarded to the leader");
    let path = c.dir.path().join("w.yaml");
    std::fs::write(&path, cm("via-learner", "1")).unwrap();
    let out = c.cli_at(3, &["apply", "-f", path.to_str().unwrap()]);
    assert_eq!(stdout(&out).trim(), "configmap/via-learner created", "{}", stderr(&out));
    let out = c.cli_at(1, &["get", "cm", "via-learner", "-o", "json"]);
    assert!(out.status.success());
}

#[test]
fn crud_round_trip_through_the_cli() {
    let c = Cluster::init(&[]);
    let out = c.apply(&cm("web-config", "a"));
    assert_eq!(stdout(&out).trim(), "configmap/web-config created", "{}", stderr(&out));
    let out = c.apply(&cm("web-config", "a"));
    assert_eq!(stdout(&out).trim(), "configmap/web-config unchanged");
    let out = c.apply(&cm("web-config", "b"));
    assert_eq!(stdout(&out).trim(), "configmap/web-config configured");
    let obj: Value = serde_json::from_str(&c.ok(&["get", "configmap", "web-config", "-o", "json"])).unwrap();
    assert_eq!(obj["data"]["key"], "b");
    assert!(!obj["metadata"]["uid"].as_str().unwrap().is_empty());
    assert!(obj["metadata"]["resourceVersion"].as_str().unwrap().parse::<u64>().unwrap() > 0);
    let list: Value = serde_json::from_str(&c.ok(&["get", "cm", "-o", "json"])).unwrap();
    assert_eq!(list["kind"], "ConfigMapList");
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let table = c.ok(&["get", "cm"]);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(table.contains("web-config"));
    eprintln!("--- objects in another namespace, listed with -A");
    let out = c.apply("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team\n");
    assert_eq!(stdout(&out).trim(), "namespace/team created");
    let path = c.dir.path().join("other.yaml");
    std::fs::write(&path, cm("other", "x")).unwrap();
    c.ok(&["apply", "-f", path.to_str().unwrap(), "-n", "team"]);
    let all = c.ok(&["get", "cm", "-A"]);
    assert!(all.starts_with("NAMESPACE"), "{all}");
    assert!(all.contains("team") && all.contains("other") && all.contains("web-config"), "{all}");
    assert!(!c.ok(&["get", "cm"]).contains("other"));
    eprintln!("--- get -w prints changes as they happen");
    let mut watcher = std::process::Command::new(fixtures::bin())
        .args(["get", "cm", "-w", "--config", c.config.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let watch_out = watcher.stdout.take().unwrap();
    let lines = std::thread::spawn(move || {
        use std::io::BufRead;
        std::io::BufReader::new(watch_out).lines().map_while(Result::ok).find(|l| l.starts_with("watched"))
    });
    let out = c.apply(&cm("watched", "w"));
    assert!(out.status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !lines.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = watcher.kill();
    let _ = watcher.wait();
    assert!(lines.join().unwrap().is_some(), "the watch printed the new object");
    eprintln!("--- delete by name and with -f (flags after the verb work too)");
    let out = c.ok(&["delete", "cm", "web-config"]);
    assert_eq!(out.trim(), "configmap \"web-config\" deleted");
    let path = c.dir.path().join("watched.yaml");
    std::fs::write(&path, cm("watched", "w")).unwrap();
    let out = std::process::Command::new(fixtures::bin())
        .args(["delete", "-f", path.to_str().unwrap(), "--config", c.config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(stdout(&out).trim(), "configmap \"watched\" deleted", "{}", stderr(&out));
    let out = c.cli(&["get", "cm", "web-config"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("NotFound"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_resource_version_is_a_conflict() {
    let c = Cluster::init(&[]);
    let mut api = api(&c, 0).await;
    let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cas"}, "data": {"v": "1"}});
    let created: Value =
        serde_json::from_str(&api.create(pb::ObjectRequest { json: obj.to_string() }).await.unwrap().into_inner().json)
            .unwrap();
    let again = api.create(pb::ObjectRequest { json: obj.to_string() }).await.unwrap_err();
    assert_eq!(again.code(), Code::AlreadyExists);
    let mut v2 = created.clone();
    v2["data"]["v"] = json!("2");
    let updated: Value =
        serde_json::from_str(&api.update(pb::ObjectRequest { json: v2.to_string() }).await.unwrap().into_inner().json)
            .unwrap();
    assert_ne!(updated["metadata"]["resourceVersion"], created["metadata"]["resourceVersion"]);
    eprintln!("--- an update carrying the first resourceVersion is refused and changes nothing");
    let mut stale = created.clone();
    stale["data"]["v"] = json!("3");
    let err = api.update(pb::ObjectRequest { json: stale.to_string() }).await.unwrap_err();
    assert_eq!(err.code(), Code::Aborted);
    assert!(err.message().contains("the object has been modified"), "{}", err.message());
    let out = c.cli(&["get", "cm", "cas", "-o", "json"]);
    let now: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(now["data"]["v"], "2");
    eprintln!("--- a stale delete is refused too");
    let created_rv: u64 = created["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
    let err = api
        .delete(pb::DeleteRequest {
            kind: "cm".into(),
            namespace: "default".into(),
            name: "cas".into(),
            resource_version: created_rv,
            grace_period_seconds: None,
            propagation_policy: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Aborted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumes_from_a_revision_and_compacted_history_is_gone() {
    let c = three_voters(&[]);
    let mut api0 = api(&c, 0).await;
    let mut rvs = Vec::new();
    for i in 0..5 {
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("w{i}"), "labels": {"set": "a"}}});
        let r: Value = serde_json::from_str(
            &api0.create(pb::ObjectRequest { json: obj.to_string() }).await.unwrap().into_inner().json,
        )
        .unwrap();
        rvs.push(r["metadata"]["resourceVersion"].as_str().unwrap().parse::<u64>().unwrap());
    }
    api0.delete(pb::DeleteRequest {
        kind: "configmap".into(),
        namespace: "default".into(),
        name: "w0".into(),
        resource_version: 0,
        grace_period_seconds: None,
        propagation_policy: String::new(),
    })
    .await
    .unwrap();
    eprintln!("--- watch on another node from the second object's revision replays the rest");
    let mut api2 = api(&c, 2).await;
    let req = pb::WatchRequest {
        kind: "configmaps".into(),
        namespace: "default".into(),
        label_selector: "set=a".into(),
        resource_version: rvs[1],
        ..Default::default()
    };
    let mut stream = api2.watch(req.clone()).await.unwrap().into_inner();
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let ev = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("event in time")
            .unwrap()
            .unwrap();
        let obj: Value = serde_json::from_str(&ev.json).unwrap();
        seen.push(format!("{} {}", ev.r#type, obj["metadata"]["name"].as_str().unwrap()));
    }
    assert_eq!(seen, vec!["ADDED w2", "ADDED w3", "ADDED w4", "DELETED w0"]);
    eprintln!("--- then follows live changes");
    let mut w3: Value = serde_json::from_str(
        &api0
            .get(pb::GetRequest {
                kind: "cm".into(),
                namespace: "default".into(),
                name: "w3".into(),
                linearizable: false,
            })
            .await
            .unwrap()
            .into_inner()
            .json,
    )
    .unwrap();
    w3["data"] = json!({"k": "v"});
    api0.update(pb::ObjectRequest { json: w3.to_string() }).await.unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(10), stream.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(ev.r#type, "MODIFIED");
    eprintln!("--- a watch that allows bookmarks gets one with the current revision");
    let mut b = api2
        .watch(pb::WatchRequest { kind: "cm".into(), allow_bookmarks: true, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let ev = tokio::time::timeout(Duration::from_secs(10), b.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(ev.r#type, "BOOKMARK");
    assert!(ev.resource_version >= rvs[4], "{} < {}", ev.resource_version, rvs[4]);
    eprintln!("--- after compaction, a watch from before it is Gone");
    let out = c.ok(&["compact"]);
    assert!(out.starts_with("compacted up to revision"), "{out}");
    let err = wait_for("compaction to reach node 3", Duration::from_secs(10), || {
        let rt = tokio::runtime::Handle::current();
        let res = tokio::task::block_in_place(|| {
            rt.block_on(async {
                let mut s = api2.watch(req.clone()).await?.into_inner();
                match s.next().await {
                    Some(Err(e)) => Err(e),
                    _ => Ok(()),
                }
            })
        });
        res.err()
    });
    assert_eq!(err.code(), Code::OutOfRange);
    assert!(err.message().contains("Gone"), "{}", err.message());
}

#[test]
fn invalid_objects_are_refused_with_the_field_and_nothing_is_written() {
    let c = Cluster::init(&[]);
    let bad = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: nopod\nspec:\n  containers:\n  - name: app\n";
    let out = c.apply(bad);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("Pod \"nopod\" is invalid: spec.containers[0].image: Required value"), "{err}");
    let out = c.apply("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\n");
    assert!(stderr(&out).contains("metadata.name: Invalid value: \"Bad_Name\""), "{}", stderr(&out));
    let out = c.apply("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\nspec:\n  replicas: many\n");
    assert!(stderr(&out).contains("spec.replicas"), "{}", stderr(&out));
    let out = c.apply("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: lost\n  namespace: nowhere\n");
    assert!(stderr(&out).contains("namespaces \"nowhere\" not found"), "{}", stderr(&out));
    let big =
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\ndata:\n  a: \"{}\"\n", "x".repeat(1_600_000));
    let out = c.apply(&big);
    assert!(stderr(&out).contains("too large"), "{}", stderr(&out));
    eprintln!("--- none of them was written");
    for (kind, name) in [("pod", "nopod"), ("cm", "lost"), ("cm", "big"), ("deploy", "d")] {
        let out = c.cli(&["get", kind, name]);
        assert!(!out.status.success(), "{kind}/{name} exists");
    }
    assert!(stderr(&c.cli(&["get", "pods"])).contains("No resources found"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_clients_and_forged_tokens_are_refused() {
    let c = Cluster::init(&[]);
    let cfg = AdminConfig::load(&c.config).unwrap();
    let server = vec![c.nodes[0].api_addr.clone()];
    eprintln!("--- no client certificate, no token");
    let mut anon = cfg.clone();
    anon.client_certificate.clear();
    anon.client_key.clear();
    anon.token.clear();
    let (mut client, _) = clusterd::client::connect(&anon, &server).await.unwrap();
    let err = client.list(pb::ListRequest { kind: "ns".into(), ..Default::default() }).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    eprintln!("--- a wrong bearer token");
    anon.token = "not-the-token".into();
    let (mut client, _) = clusterd::client::connect(&anon, &server).await.unwrap();
    assert_eq!(
        client.list(pb::ListRequest { kind: "ns".into(), ..Default::default() }).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    eprintln!("--- the right bearer token");
    anon.token = cfg.token.clone();
    let (mut client, _) = clusterd::client::connect(&anon, &server).await.unwrap();
    assert!(client.list(pb::ListRequest { kind: "ns".into(), ..Default::default() }).await.is_ok());
    eprintln!("--- a client certificate from another CA fails the handshake");
    let other = clusterd_raft::pki::Ca::generate("other").unwrap();
    let stranger = other.issue("admin", &[], clusterd_raft::pki::NODE_VALIDITY).unwrap();
    let mut forged = cfg.clone();
    forged.client_certificate = stranger.cert_pem;
    forged.client_key = stranger.key_pem;
    forged.token.clear();
    let refused = match clusterd::client::connect(&forged, &server).await {
        Err(_) => true,
        Ok((mut client, _)) => client.list(pb::ListRequest { kind: "ns".into(), ..Default::default() }).await.is_err(),
    };
    assert!(refused, "a certificate from another CA must not be accepted");
    eprintln!("--- joins with a forged token, a token for another CA, and an expired token");
    let real = c.token();
    let forged_secret = format!("{}.{}", &real[..real.len() - 17], "0123456789abcdef");
    let other_ca = format!("K10{}::abcdef.0123456789abcdef", other.fingerprint().unwrap());
    let expired = {
        let t = c.ok(&["token", "create", "--ttl", "1"]).trim().to_string();
        std::thread::sleep(Duration::from_millis(2100));
        t
    };
    for (what, token) in [("forged", forged_secret), ("other CA", other_ca), ("expired", expired)] {
        let dd = c.dir.path().join(format!("joiner-{}", what.replace(' ', "-")));
        let out = std::process::Command::new(fixtures::bin())
            .args([
                "join",
                &c.nodes[0].api_addr,
                "--token",
                &token,
                "--data-dir",
                dd.to_str().unwrap(),
                "--name",
                "intruder",
            ])
            .args(["--api-addr", &fixtures::free_tcp(), "--raft-addr", &fixtures::free_udp()])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{what} token was accepted");
        assert!(!dd.join("node.json").exists());
        eprintln!("{what}: {}", stderr(&out).trim());
    }
    let members = c.ok(&["member", "list"]);
    assert!(!members.contains("intruder"), "{members}");
}

#[test]
fn leader_kill9_loses_no_acknowledged_write() {
    let mut c = three_voters(&[]);
    let leader = c.status()["leader"].as_str().unwrap().to_string();
    let li = c.nodes.iter().position(|n| n.name == leader).unwrap();
    let other = (li + 1) % 3;
    let mut acked = Vec::new();
    for i in 0..20 {
        let path = c.dir.path().join(format!("a{i}.yaml"));
        std::fs::write(&path, cm(&format!("before-{i}"), "v")).unwrap();
        let out = c.cli_at(other, &["apply", "-f", path.to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
        acked.push(format!("before-{i}"));
    }
    eprintln!("--- kill -9 the leader {leader}");
    c.nodes[li].kill9();
    let killed_at = Instant::now();
    let path = c.dir.path().join("after.yaml");
    std::fs::write(&path, cm("after-kill", "v")).unwrap();
    wait_for("a write accepted by the survivors", Duration::from_secs(30), || {
        c.cli_at(other, &["apply", "-f", path.to_str().unwrap()]).status.success().then_some(())
    });
    eprintln!("first write accepted {:?} after the leader was killed", killed_at.elapsed());
    acked.push("after-kill".into());
    let st: Value = serde_json::from_slice(&c.cli_at(other, &["status", "-o", "json"]).stdout).unwrap();
    assert_ne!(st["leader"], leader);
    eprintln!("--- the killed node restarts from its data dir with every acknowledged write");
    c.nodes[li].restart();
    c.wait_serving(li);
    for name in &acked {
        let out = c.cli_at(other, &["get", "cm", name]);
        assert!(out.status.success(), "acknowledged {name} lost");
    }
    let restarted = &c.nodes[li].api_addr.clone();
    wait_for("the restarted node to have every write", Duration::from_secs(30), || {
        let out = std::process::Command::new(fixtures::bin())
            .args(["--config", c.config.to_str().unwrap(), "--server", restarted, "get", "cm", "-o", "name"])
            .output()
            .unwrap();
        let text = stdout(&out);
        acked.iter().all(|n| text.contains(&format!("configmap/{n}\n"))).then_some(())
    });
}

#[test]
fn restarted_node_catches_up_through_a_snapshot_after_log_purge() {
    let mut c = three_voters(&["--snapshot-every", "20", "--keep-logs", "5"]);
    eprintln!("--- stop n3 cleanly");
    let st = c.nodes[2].stop();
    assert!(st.success(), "SIGTERM is a clean stop");
    for i in 0..60 {
        let path = c.dir.path().join(format!("s{i}.yaml"));
        std::fs::write(&path, cm(&format!("snap-{i}"), "v")).unwrap();
        let out = c.cli_at(0, &["apply", "-f", path.to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    eprintln!("--- restart n3: the leader's log no longer reaches back, so it installs a snapshot");
    c.nodes[2].restart();
    c.wait_serving(2);
    wait_for("n3 to catch up", Duration::from_secs(60), || {
        let st = c.status();
        let applied: Vec<Option<u64>> =
            st["members"].as_array().unwrap().iter().map(|m| m["lastApplied"].as_u64()).collect();
        (applied.iter().all(|a| a.is_some() && *a == applied[0])).then_some(())
    });
    let out = c.cli_at(2, &["get", "cm", "-o", "name"]);
    let names = stdout(&out);
    for i in 0..60 {
        assert!(names.contains(&format!("configmap/snap-{i}\n")), "n3 lacks snap-{i}");
    }
    eprintln!("--- n3's history starts at the snapshot: a watch from revision 1 is Gone there, not on n1");
    let watch_from_1 = |idx: usize| {
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            let mut client = api(&c, idx).await;
            let req = pb::WatchRequest { kind: "cm".into(), resource_version: 1, ..Default::default() };
            match client.watch(req).await {
                Err(e) => Some(e.code()),
                Ok(s) => match tokio::time::timeout(Duration::from_secs(2), s.into_inner().next()).await {
                    Ok(Some(Err(e))) => Some(e.code()),
                    _ => None,
                },
            }
        })
    };
    assert_eq!(watch_from_1(2), Some(Code::OutOfRange));
    assert_eq!(watch_from_1(0), None);
}

#[test]
fn client_fails_over_when_its_configured_server_is_down() {
    let mut c = three_voters(&[]);
    // A first call teaches the client the other members.
    c.ok(&["get", "namespaces"]);
    eprintln!("--- kill -9 n1, the server admin.conf names");
    c.nodes[0].kill9();
    let out = wait_for("a call through another member", Duration::from_secs(30), || {
        let out = c.cli(&["get", "namespaces", "-o", "name"]);
        out.status.success().then_some(out)
    });
    assert!(stdout(&out).contains("namespace/default"));
    let out = c.apply(&cm("after-failover", "1"));
    assert_eq!(stdout(&out).trim(), "configmap/after-failover created", "{}", stderr(&out));
}

#[test]
fn manifests_and_listings_read_as_kubectl_reads_them() {
    let c = Cluster::init(&[]);
    eprintln!("--- defaultMode: 0755 in YAML is octal, as kubectl reads it");
    let deploy = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: vols\nspec:\n  replicas: 0\n  selector:\n    matchLabels: {app: vols}\n  template:\n    metadata:\n      labels: {app: vols}\n    spec:\n      containers:\n      - name: a\n        image: busybox\n      volumes:\n      - name: s\n        secret:\n          secretName: s\n          defaultMode: 0755\n      - name: c\n        configMap:\n          name: c\n          defaultMode: 0644\n";
    let out = c.apply(deploy);
    assert_eq!(stdout(&out).trim(), "deployment.apps/vols created", "{}", stderr(&out));
    let d: Value = serde_json::from_str(&c.ok(&["get", "deploy", "vols", "-o", "json"])).unwrap();
    let volumes = &d["spec"]["template"]["spec"]["volumes"];
    assert_eq!(volumes[0]["secret"]["defaultMode"], 493);
    assert_eq!(volumes[1]["configMap"]["defaultMode"], 420);

    eprintln!("--- an unknown kind is refused by name; the other objects are applied");
    let out =
        c.apply(&format!("apiVersion: v1\nkind: Frobnicator\nmetadata:\n  name: x\n---\n{}", cm("after-frob", "1")));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(
            "resource mapping not found for name: \"x\" namespace: \"\" from \"" // the file name follows
        ) && stderr(&out).contains("no matches for kind \"Frobnicator\" in version \"v1\""),
        "{}",
        stderr(&out)
    );
    assert_eq!(stdout(&out).trim(), "configmap/after-frob created");

    eprintln!("--- get cm,deploy: a table per kind, names with their kind");
    let out = c.ok(&["get", "cm,deploy"]);
    let tables: Vec<&str> = out.split("\n\n").collect();
    assert_eq!(tables.len(), 2, "{out}");
    assert!(tables[0].starts_with("NAME") && tables[0].contains("configmap/after-frob"), "{out}");
    assert!(tables[1].starts_with("NAME") && tables[1].contains("deployment.apps/vols"), "{out}");
    let names = c.ok(&["get", "cm,deploy", "-o", "name"]);
    assert_eq!(names.lines().collect::<Vec<_>>(), ["configmap/after-frob", "deployment/vols"]);
    let list: Value = serde_json::from_str(&c.ok(&["get", "cm,deploy", "-o", "json"])).unwrap();
    assert_eq!(list["kind"], "List");
    let kinds: Vec<&str> = list["items"].as_array().unwrap().iter().map(|i| i["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["ConfigMap", "Deployment"]);
    eprintln!("--- kinds without objects print nothing; nothing at all says so");
    let out = c.ok(&["get", "pods,cm"]);
    assert!(out.starts_with("NAME") && out.contains("configmap/after-frob") && !out.contains("\n\n"), "{out}");
    let out = c.cli(&["get", "pods,jobs"]);
    assert!(stderr(&out).contains("No resources found in default namespace."), "{}", stderr(&out));
    let out = c.cli(&["get", "cm,frobs"]);
    assert!(stderr(&out).contains("the server doesn't have a resource type \"frobs\""), "{}", stderr(&out));

    eprintln!("--- top nodes shows the host's own use, not the sum of its (no) pods");
    let line = wait_for("top nodes", Duration::from_secs(30), || {
        let out = c.cli(&["top", "nodes"]);
        stdout(&out).lines().find(|l| l.starts_with("n1 ")).map(str::to_string)
    });
    let cols: Vec<&str> = line.split_whitespace().collect();
    let mib: u64 = cols[2].trim_end_matches("Mi").parse().unwrap();
    assert!(mib > 0, "the host uses memory: {line}");
}
