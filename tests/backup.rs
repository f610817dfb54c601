//! Backup and restore on real multi-process clusters: `snapshot save` from a
//! running three-node cluster, the cluster wiped, `snapshot restore` on one
//! node that two others join as voters; damaged files refused before anything
//! is written.
//! Needs root and `make images`.

mod fixtures;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use fixtures::{bin, image, step, wait_for, Cluster};

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn get(c: &Cluster, what: &[&str]) -> Value {
    let mut args = vec!["get"];
    args.extend(what);
    args.extend(["-o", "json"]);
    serde_json::from_str(&c.ok(&args)).unwrap()
}

fn rv(obj: &Value) -> u64 {
    obj["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap()
}

/// `clusterd snapshot status FILE` (needs no cluster).
fn status(file: &Path) -> Output {
    Command::new(bin()).args(["snapshot", "status"]).arg(file).output().unwrap()
}

/// The revision `snapshot status` prints.
fn saved_revision(file: &Path) -> u64 {
    let out = status(file);
    assert!(out.status.success(), "status of a good file: {}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("checksum:  sha256:") && text.contains(" OK"), "{text}");
    let line = text.lines().find(|l| l.starts_with("revision:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

const DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: httpd
        image: clusterd.local/busybox:v1
        imagePullPolicy: Never
        command: ["httpd", "-f", "-p", "8080", "-h", "/"]
"#;

fn cm(name: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  k: v\n")
}

/// The pods of the Deployment whose container answers `exec` (really runs), by uid.
fn running_pods(c: &Cluster) -> Vec<String> {
    let pods = get(c, &["pods", "-l", "app=web"]);
    let mut uids = Vec::new();
    for p in pods["items"].as_array().unwrap() {
        let name = p["metadata"]["name"].as_str().unwrap();
        let out = c.cli(&["exec", name, "--", "cat", "/VERSION"]);
        if out.status.success() {
            uids.push(p["metadata"]["uid"].as_str().unwrap().to_string());
        }
    }
    uids.sort();
    uids
}

#[test]
fn a_saved_cluster_is_restored_on_wiped_nodes_with_its_deployment_running() {
    let keep = tempfile::tempdir().unwrap();
    let file = keep.path().join("backup.snap");
    let mut c = Cluster::init(&[]);
    c.join("n2", true);
    c.join("n3", true);
    c.ok(&["image", "load", &image("busybox-v1.tar")]);
    assert!(c.apply(DEPLOYMENT).status.success());
    let pods = wait_for("the Deployment's two pods to run", Duration::from_secs(90), || {
        let uids = running_pods(&c);
        (uids.len() == 2).then_some(uids)
    });
    let deploy = get(&c, &["deploy", "web"]);

    step("snapshot save through n2 (a follower), then a write the snapshot does not hold");
    let out = c.cli_at(1, &["snapshot", "save", file.to_str().unwrap()]);
    assert!(out.status.success(), "snapshot save: {}", stderr(&out));
    eprintln!("{}", stdout(&out).trim());
    assert!(stdout(&out).contains("from node n2"), "{}", stdout(&out));
    let revision = saved_revision(&file);
    assert!(revision >= rv(&deploy), "the snapshot's revision {revision} is before the Deployment's");
    assert!(c.apply(&cm("after-save")).status.success());

    step("stop and wipe every node (containers, network, data directories)");
    drop(c);

    step("restore on n1 from the file, join n2 and n3");
    let mut c = Cluster::restore(&file, &[]);
    c.join("n2", true);
    c.join("n3", true);
    let restored = get(&c, &["deploy", "web"]);
    assert_eq!(restored["metadata"]["uid"], deploy["metadata"]["uid"], "the same Deployment, not a new one");
    assert!(rv(&restored) >= rv(&deploy), "the Deployment went back in time");
    let list = get(&c, &["configmaps"]);
    assert!(rv(&list) >= revision, "the restored store is before the saved revision");
    assert!(
        !list["items"].as_array().unwrap().iter().any(|m| m["metadata"]["name"] == "after-save"),
        "a write after the snapshot came back"
    );
    let st = c.status();
    let members = st["members"].as_array().unwrap();
    let mut names: Vec<&str> = members.iter().map(|m| m["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["n1", "n2", "n3"], "the restored cluster has the nodes that joined it, no others: {st}");
    assert!(members.iter().all(|m| m["role"] == "voter"), "three voters: {st}");

    step("the fresh nodes get the image again; the Deployment's pods run again");
    c.ok(&["image", "load", &image("busybox-v1.tar")]);
    let again = wait_for("the saved pods to run again", Duration::from_secs(120), || {
        let uids = running_pods(&c);
        (uids.len() == 2).then_some(uids)
    });
    assert_eq!(again, pods, "the saved pods themselves run again");

    step("the restored cluster accepts writes");
    let out = c.apply(&cm("after-restore"));
    assert!(out.status.success(), "{}", stderr(&out));
    for i in [1, 2] {
        let out = c.cli_at(i, &["get", "cm", "after-restore"]);
        assert!(out.status.success(), "read on {}: {}", c.nodes[i].name, stderr(&out));
    }
}

#[test]
fn damaged_snapshot_files_are_refused_and_nothing_is_written() {
    let keep = tempfile::tempdir().unwrap();
    let file = keep.path().join("good.snap");
    let c = Cluster::init(&[]);
    assert!(c.apply(&cm("kept")).status.success());
    let out = c.cli(&["snapshot", "save", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    drop(c);
    saved_revision(&file);

    let good = std::fs::read(&file).unwrap();
    let mut flipped = good.clone();
    let mid = good.len() / 2;
    flipped[mid] ^= 0x01;
    let damaged = [
        ("flipped", flipped, "corrupted"),
        ("truncated", good[..good.len() - 100].to_vec(), "truncated"),
        ("no checksum", good[..good.len() - 32].to_vec(), "truncated"),
    ];
    for (what, bytes, says) in damaged {
        let path = keep.path().join(format!("{what}.snap"));
        std::fs::write(&path, bytes).unwrap();
        let out = status(&path);
        assert!(!out.status.success(), "status accepted a {what} file");
        assert!(stderr(&out).contains(says), "status of a {what} file: {}", stderr(&out));

        let data_dir = keep.path().join(format!("restore-{what}"));
        let out = Command::new(bin())
            .args(["snapshot", "restore"])
            .arg(&path)
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--name", "n1", "--api-addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0"])
            .output()
            .unwrap();
        assert!(!out.status.success(), "restore accepted a {what} file");
        assert!(stderr(&out).contains(says), "restore of a {what} file: {}", stderr(&out));
        assert!(stderr(&out).contains("nothing was restored"), "{}", stderr(&out));
        assert!(!data_dir.exists(), "restore of a {what} file wrote {}", data_dir.display());
    }
}

#[test]
fn keep_ca_lets_the_old_clusters_credentials_in_and_a_new_ca_does_not() {
    let keep = tempfile::tempdir().unwrap();
    let file = keep.path().join("backup.snap");
    let old_config = keep.path().join("old-admin.conf");
    let c = Cluster::init(&[]);
    assert!(c.apply(&cm("kept")).status.success());
    let out = c.cli(&["snapshot", "save", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::copy(&c.config, &old_config).unwrap();
    drop(c);

    let with_old_config = |c: &Cluster| {
        Command::new(bin())
            .arg("--config")
            .arg(&old_config)
            .args(["--server", &c.nodes[0].api_addr, "get", "cm", "kept"])
            .output()
            .unwrap()
    };
    step("restored with a new CA: the old admin config is not trusted");
    let c = Cluster::restore(&file, &[]);
    assert!(c.cli(&["get", "cm", "kept"]).status.success(), "the new admin config works");
    assert!(!with_old_config(&c).status.success(), "the old admin config got into a cluster with a new CA");
    drop(c);

    step("restored with --keep-ca: the old admin config still works");
    let c = Cluster::restore(&file, &["--keep-ca"]);
    assert!(c.cli(&["get", "cm", "kept"]).status.success(), "the new admin config works");
    let out = with_old_config(&c);
    assert!(out.status.success(), "the old admin config: {}", stderr(&out));
}

/// The scheduled snapshots in a node's data directory, oldest first.
fn scheduled(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("snapshots"))
        .map(|d| d.filter_map(|e| e.ok()?.file_name().into_string().ok()).filter(|n| n.ends_with(".snap")).collect())
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn voters_write_scheduled_snapshots_and_keep_the_newest() {
    let mut c = Cluster::init(&["--snapshot-interval", "1", "--snapshot-retain", "2"]);
    c.join("n2", false);
    let dir = c.nodes[0].data_dir.clone();
    let mut seen = std::collections::BTreeSet::new();
    let kept = wait_for("n1 to write a third snapshot and keep two", Duration::from_secs(30), || {
        let now = scheduled(&dir);
        seen.extend(now.iter().cloned());
        (seen.len() >= 3 && now.len() == 2).then_some(now)
    });
    let newest = dir.join("snapshots").join(kept.last().unwrap());
    let revision = saved_revision(&newest);
    assert!(revision > 0 && revision <= rv(&get(&c, &["namespaces"])));
    assert!(scheduled(&c.nodes[1].data_dir).is_empty(), "a worker (not a voter) writes no snapshots");
}

/// Figures for the closing note: `cargo test --test backup figures -- --ignored --nocapture`.
#[test]
#[ignore = "a benchmark: 100,000 objects"]
fn figures_for_100k_objects() {
    use futures::StreamExt;
    const OBJECTS: usize = 100_000;
    let keep = tempfile::tempdir().unwrap();
    let file = keep.path().join("big.snap");
    let c = Cluster::init(&[]);
    let began = std::time::Instant::now();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        clusterd_raft::pki::install_default_provider();
        let cfg = clusterd::cluster::config::AdminConfig::load(&c.config).unwrap();
        let client = clusterd::client::connect(&cfg, &[c.nodes[0].api_addr.clone()]).await.unwrap().0;
        let creates = futures::stream::iter(0..OBJECTS).map(|i| {
            let mut client = client.clone();
            async move {
                let json = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": format!("cm-{i}"), "namespace": "default"},
                    "data": {"payload": "x".repeat(256)}});
                client.create(clusterd::api::pb::ObjectRequest { json: json.to_string() }).await.unwrap();
            }
        });
        creates.buffer_unordered(64).collect::<Vec<_>>().await;
    });
    eprintln!("created {OBJECTS} ConfigMaps in {:.1}s", began.elapsed().as_secs_f64());

    let began = std::time::Instant::now();
    let out = c.cli(&["snapshot", "save", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let save = began.elapsed();
    let size = std::fs::metadata(&file).unwrap().len();
    let began = std::time::Instant::now();
    let revision = saved_revision(&file);
    let check = began.elapsed();
    drop(c);

    let began = std::time::Instant::now();
    let c = Cluster::restore(&file, &[]);
    let restore = began.elapsed();
    let names = c.ok(&["get", "cm", "-o", "name"]);
    assert_eq!(names.lines().filter(|l| l.starts_with("configmap/cm-")).count(), OBJECTS);
    eprintln!(
        "FIGURES {OBJECTS} objects (256-byte payloads), revision {revision}: save {:.2}s, file {:.1} MiB, \
         status (read + verify) {:.2}s, restore to a serving node {:.2}s",
        save.as_secs_f64(),
        size as f64 / (1 << 20) as f64,
        check.as_secs_f64(),
        restore.as_secs_f64()
    );
}

/// A pod pinned to node `node` whose httpd listens on `port`: the port marks
/// the test's processes among the host's (tests run side by side), so each
/// test that counts them uses a port no other test uses.
fn pinned_pod(node: &str, port: u16) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: keep-{node}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: httpd
    image: clusterd.local/busybox:v1
    imagePullPolicy: Never
    command: ["httpd", "-f", "-p", "{port}", "-h", "/"]
"#
    )
}

/// The host's processes running the pinned pods' httpd on `port`.
fn pinned_httpds(port: u16) -> usize {
    let wanted = format!("httpd\0-f\0-p\0{port}\0-h\0/\0");
    let Ok(procs) = std::fs::read_dir("/proc") else { return 0 };
    procs
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .filter(|c| c.as_slice() == wanted.as_bytes())
        .count()
}

/// A host whose node's cluster state is gone (`node.json` and `db/` removed,
/// so `snapshot restore` and `join` accept its data directory) while its
/// containers still run: restored (with `--keep-ca` or a new CA: the host
/// resources' names come from the tag the data dir recorded) and joined under
/// the same names, the kubelets find the containers in the runtime's records
/// (`D/runtime`, kept) by pod uid and adopt them.
#[test]
fn restored_with_keep_ca_a_node_of_the_same_name_adopts_its_running_containers() {
    adopted_after_restore(true);
}

#[test]
fn restored_with_a_new_ca_a_node_of_the_same_name_adopts_its_running_containers() {
    adopted_after_restore(false);
}

fn adopted_after_restore(keep_ca: bool) {
    // The two variants run side by side: each counts only its own httpds.
    let port = if keep_ca { 18123 } else { 18124 };
    let keep = tempfile::tempdir().unwrap();
    let file = keep.path().join("backup.snap");
    let mut c = Cluster::init(&[]);
    c.join("n2", true);
    c.ok(&["image", "load", &image("busybox-v1.tar")]);
    for node in ["n1", "n2"] {
        assert!(c.apply(&pinned_pod(node, port)).status.success());
    }
    for node in ["n1", "n2"] {
        let pod = format!("keep-{node}");
        wait_for(&format!("{pod} to run"), Duration::from_secs(90), || {
            c.cli(&["exec", &pod, "--", "touch", "/adopted"]).status.success().then_some(())
        });
    }
    assert_eq!(pinned_httpds(port), 2);
    let out = c.cli(&["snapshot", "save", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));

    // The tag the nodes' host resources (cgroups, bridge) were named with.
    let ca = std::fs::read_to_string(c.nodes[0].data_dir.join("pki/ca.crt")).unwrap();
    let old_tag = clusterd::kubelet::cluster_tag(&ca);
    step("both nodes stop; their containers keep running; their cluster state is wiped (node.json, db/)");
    for n in &mut c.nodes {
        assert!(n.stop().success());
        std::fs::remove_file(n.data_dir.join("node.json")).unwrap();
        std::fs::remove_dir_all(n.data_dir.join("db")).unwrap();
    }
    assert_eq!(pinned_httpds(port), 2, "the containers outlive their nodes");

    step(&format!("restore (keep the CA: {keep_ca}) as n1 in its old data directory; n2 joins in its own"));
    let (api, raft) = (fixtures::free_tcp(), fixtures::free_udp());
    let dd = c.nodes[0].data_dir.display().to_string();
    let restore = ["snapshot", "restore", file.to_str().unwrap(), "--data-dir", &dd, "--name", "n1"];
    let mut args: Vec<&str> = restore.to_vec();
    if keep_ca {
        args.push("--keep-ca");
    }
    args.extend(["--api-addr", &api, "--raft-addr", &raft]);
    c.nodes[0].run_as(&args);
    (c.nodes[0].api_addr, c.nodes[0].raft_addr) = (api.clone(), raft);
    c.wait_serving(0);
    let out = c.cli_at(0, &["token", "create"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let token = stdout(&out).lines().last().unwrap().trim().to_string();
    let (api2, raft2) = (fixtures::free_tcp(), fixtures::free_udp());
    let dd2 = c.nodes[1].data_dir.display().to_string();
    let join = ["join", &api, "--token", &token, "--data-dir", &dd2, "--name", "n2", "--control-plane"];
    let mut args: Vec<&str> = join.to_vec();
    args.extend(["--api-addr", &api2, "--raft-addr", &raft2]);
    c.nodes[1].run_as(&args);
    (c.nodes[1].api_addr, c.nodes[1].raft_addr) = (api2, raft2);
    c.wait_serving(1);

    step("each pod runs in the container it had (the file written before is there), not a second one");
    for node in ["n1", "n2"] {
        let pod = format!("keep-{node}");
        let out = wait_for(&format!("{pod} to answer exec"), Duration::from_secs(90), || {
            let out = c.cli_at(0, &["exec", &pod, "--", "ls", "/adopted"]);
            (out.status.success() || stderr(&out).contains("No such file")).then_some(out)
        });
        assert!(out.status.success(), "{pod} runs in a new container: {}", stderr(&out));
    }
    assert_eq!(pinned_httpds(port), 2, "a pod's container was started a second time");

    step("the new kubelets manage the adopted containers: deleting the pods stops them");
    for node in ["n1", "n2"] {
        let out = c.cli_at(0, &["delete", "pod", &format!("keep-{node}")]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    wait_for("the adopted containers to stop", Duration::from_secs(60), || (pinned_httpds(port) == 0).then_some(()));

    step("reset of the restored nodes removes what their old selves made on the host");
    for n in &mut c.nodes {
        n.kill9();
        let out = Command::new(bin()).args(["reset", "--data-dir"]).arg(&n.data_dir).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let left: Vec<String> = std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .flatten()
        .flat_map(|h| std::fs::read_dir(h.path()).into_iter().flatten().flatten())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| ["n1", "n2"].iter().any(|node| *name == format!("clusterd-{node}-{old_tag}")))
        .collect();
    assert!(left.is_empty(), "cgroups of the nodes before the restore left behind: {left:?}");
}
