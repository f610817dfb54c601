//! A node whose address changed: stopped, started with new addresses
//! (127.0.0.2 instead of 127.0.0.1), it rejoins the cluster there — its
//! membership entry and registration follow, it catches up, serves the API at
//! its new address with a certificate that names it, and takes writes.

mod fixtures;

use std::time::Duration;

use serde_json::Value;

use fixtures::{step, wait_for, Cluster};

/// A free TCP and UDP port on 127.0.0.2.
fn free_on_second_loopback() -> (String, String) {
    let tcp = std::net::TcpListener::bind("127.0.0.2:0").unwrap().local_addr().unwrap();
    let udp = std::net::UdpSocket::bind("127.0.0.2:0").unwrap().local_addr().unwrap();
    (tcp.to_string(), udp.to_string())
}

#[test]
fn a_node_restarted_at_a_new_address_rejoins_and_serves() {
    let mut c = Cluster::init(&[]);
    c.join("n2", true);
    c.join("n3", true);
    let cm = |name: &str| format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  a: b\n");
    assert!(c.apply(&cm("before-move")).status.success());

    step("n2 stops; a write lands while it is away");
    c.nodes[1].stop();
    assert!(c.apply(&cm("while-away")).status.success());

    step("n2 starts at 127.0.0.2 with new ports");
    let (api, raft) = free_on_second_loopback();
    let data_dir = c.nodes[1].data_dir.display().to_string();
    c.nodes[1].run_as(&["start", "--data-dir", &data_dir, "--raft-addr", &raft, "--api-addr", &api]);
    c.nodes[1].api_addr = api.clone();
    c.nodes[1].raft_addr = raft.clone();
    c.wait_serving(1);

    step("the membership names the new addresses; three voters");
    wait_for("n2's new addresses in the membership", Duration::from_secs(30), || {
        let st = c.status();
        let members = st["members"].as_array()?.clone();
        let n2 = members.iter().find(|m| m["name"] == "n2")?;
        (n2["raftAddr"] == raft.as_str()
            && n2["apiAddr"] == api.as_str()
            && members.iter().filter(|m| m["role"] == "voter").count() == 3)
            .then_some(())
    });

    step("n2 caught up and takes writes at its new address");
    wait_for("the write made while n2 was away, read on n2", Duration::from_secs(30), || {
        c.cli_at(1, &["get", "cm", "while-away"]).status.success().then_some(())
    });
    let path = c.dir.path().join("after.yaml");
    std::fs::write(&path, cm("after-move")).unwrap();
    let out = c.cli_at(1, &["apply", "-f", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(c.cli_at(0, &["get", "cm", "after-move"]).status.success());

    step("kubectl reaches n2 at its new address: the certificate names it");
    let kubeconfig = c.ok(&["kubeconfig"]);
    assert!(kubeconfig.contains(&format!("https://{api}")), "{kubeconfig}");
    let kc = c.dir.path().join("kubeconfig");
    std::fs::write(&kc, &kubeconfig).unwrap();
    let out = std::process::Command::new("kubectl")
        .env("KUBECONFIG", &kc)
        .args(["--server", &format!("https://{api}"), "get", "cm", "after-move", "-o", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let obj: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(obj["metadata"]["name"], "after-move");
}
