//! The Python `kubernetes` client (installed from PyPI into a venv under
//! `target/`) against a real cluster: list, create, strategic merge patch,
//! watch with a timeout, logs, exec through its stream helper, delete.
//! Needs root, `make images`, python3 with venv.

mod fixtures;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use fixtures::{image, step, wait_for, Cluster};

/// The venv with the client, made once (under a lock: test binaries run in parallel).
fn python() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let venv = root.join("target/kube-python");
    let py = venv.join("bin/python");
    let lock = root.join("target/kube-python.lock");
    let status = Command::new("flock")
        .arg(&lock)
        .arg("sh")
        .arg("-c")
        .arg(format!(
            "{py} -c 'import kubernetes' 2>/dev/null || (python3 -m venv {venv} && {venv}/bin/pip install -q 'kubernetes>=31')",
            py = py.display(),
            venv = venv.display()
        ))
        .status()
        .expect("run flock");
    assert!(status.success(), "installing the kubernetes Python client failed");
    py
}

#[test]
fn the_python_client_works() {
    let py = python();
    let c = Cluster::init(&[]);
    c.ok(&["image", "load", &image("busybox-v1.tar")]);
    wait_for("a Ready node", Duration::from_secs(30), || {
        let out = c.cli(&["get", "nodes", "-o", "json"]);
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        v["items"][0]["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
            .then_some(())
    });

    step("the script lists, creates, patches, watches, reads logs, execs and deletes");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/kube_client.py");
    let out = Command::new(&py).arg(&script).arg(c.dir.path().join("n1/kubeconfig")).output().unwrap();
    assert!(
        out.status.success(),
        "the script failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(out.stdout.trim_ascii()).unwrap();
    assert!(!r["created_uid"].as_str().unwrap_or("").is_empty(), "{r}");
    assert!(r["list_resource_version"].as_str().is_some_and(|v| v.parse::<u64>().is_ok()), "{r}");
    assert_eq!(r["containers_after_patch"], serde_json::json!(["main", "side"]), "merged by name: {r}");
    assert_eq!(r["env_after_patch"], serde_json::json!(["hello from python"]), "{r}");
    assert!(r["watched_running_pod"].as_str().is_some_and(|p| p.starts_with("py-")), "{r}");
    assert!(r["logs"].as_str().unwrap_or("").contains("hello from python"), "{r}");
    assert_eq!(r["exec"], "v1\n", "{r}");
    assert_eq!(r["deleted"], true, "{r}");
}
