//! A node whose address changed: stopped, started with new addresses
//! (127.0.0.2 instead of 127.0.0.1), it rejoins the cluster there — its
//! membership entry and registration follow, it catches up, serves the API at
//! its new address with a certificate that names it, and takes writes. And a
//! whole cluster whose addresses all changed: every node started with its new
//! addresses and the other members' (`--peer`), a leader is elected, the
//! membership names the new addresses, and every node serves there.

mod fixtures;

use std::time::Duration;

use serde_json::Value;

use fixtures::{step, wait_for, Cluster};

/// A free TCP and UDP port on loopback address `ip` (an API and a Raft address).
fn free_on(ip: &str) -> (String, String) {
    let tcp = std::net::TcpListener::bind(format!("{ip}:0")).unwrap().local_addr().unwrap();
    let udp = std::net::UdpSocket::bind(format!("{ip}:0")).unwrap().local_addr().unwrap();
    (tcp.to_string(), udp.to_string())
}

/// A ConfigMap manifest.
fn cm(name: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  a: b\n")
}

/// `kubectl get cm NAME -o json` at API `api` with the cluster's kubeconfig.
fn kubectl_get_cm(c: &Cluster, api: &str, name: &str) -> Value {
    let kc = c.dir.path().join("kubeconfig");
    if !kc.exists() {
        std::fs::write(&kc, c.cli_at(0, &["kubeconfig"]).stdout).unwrap();
    }
    let out = std::process::Command::new("kubectl")
        .env("KUBECONFIG", &kc)
        .args(["--server", &format!("https://{api}"), "get", "cm", name, "-o", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "kubectl at {api}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_node_restarted_at_a_new_address_rejoins_and_serves() {
    let mut c = Cluster::init(&[]);
    c.join("n2", true);
    c.join("n3", true);
    assert!(c.apply(&cm("before-move")).status.success());

    step("n2 stops; a write lands while it is away");
    c.nodes[1].stop();
    assert!(c.apply(&cm("while-away")).status.success());

    step("n2 starts at 127.0.0.2 with new ports");
    let (api, raft) = free_on("127.0.0.2");
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
    let obj = kubectl_get_cm(&c, &api, "after-move");
    assert_eq!(obj["metadata"]["name"], "after-move");
}

#[test]
fn a_cluster_whose_addresses_all_changed_restarts_with_the_new_ones() {
    let mut c = Cluster::init(&[]);
    c.join("n2", true);
    c.join("n3", true);
    assert!(c.apply(&cm("before-move")).status.success());

    step("all three stop (SIGTERM)");
    for n in &mut c.nodes {
        assert!(n.stop().success(), "{} exited uncleanly", n.name);
    }
    let old: Vec<String> = c.nodes.iter().map(|n| n.raft_addr.clone()).collect();

    let new: Vec<(String, String)> = (0..3).map(|_| free_on("127.0.0.3")).collect();
    let start_args = |i: usize, peers: &[String]| -> Vec<String> {
        let data_dir = c.nodes[i].data_dir.display().to_string();
        let (api, raft) = &new[i];
        let mut args: Vec<String> = ["start", "--data-dir", &data_dir, "--raft-addr", raft, "--api-addr", api]
            .iter()
            .map(|s| s.to_string())
            .collect();
        for p in peers {
            args.extend(["--peer".to_string(), p.clone()]);
        }
        args
    };
    let others = |i: usize| -> Vec<String> {
        (0..3).filter(|j| *j != i).map(|j| format!("{}={}", c.nodes[j].name, new[j].1)).collect()
    };
    let args: Vec<Vec<String>> = (0..3).map(|i| start_args(i, &others(i))).collect();
    let typo = start_args(2, &["n9=127.0.0.3:1".to_string()]);

    step("n1 and n2 start at 127.0.0.3 with new ports, each given the others' new Raft addresses");
    for ((n, a), addrs) in c.nodes.iter_mut().zip(&args).zip(&new).take(2) {
        n.run_as(&a.iter().map(String::as_str).collect::<Vec<_>>());
        (n.api_addr, n.raft_addr) = addrs.clone();
    }
    step("two of three are a quorum: a leader records their new addresses while n3 is still away");
    wait_for("n1's and n2's new addresses in the membership", Duration::from_secs(60), || {
        let st: Value = serde_json::from_slice(&c.cli_at(0, &["status", "-o", "json"]).stdout).ok()?;
        let members = st["members"].as_array()?;
        let at = |name: &str, i: usize| members.iter().any(|m| m["name"] == name && m["raftAddr"] == new[i].1.as_str());
        (at("n1", 0) && at("n2", 1)).then_some(())
    });

    step("n3 given a peer that is no member is refused");
    let out = std::process::Command::new(fixtures::bin()).args(&typo).output().unwrap();
    assert!(!out.status.success(), "a start with an unknown peer ran");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no member is named n9"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    step("n3 starts with the right peers (its move, saved by the refused start, is finished now)");
    let a: Vec<&str> = args[2].iter().map(String::as_str).collect();
    c.nodes[2].run_as(&a);
    (c.nodes[2].api_addr, c.nodes[2].raft_addr) = new[2].clone();
    for i in 0..3 {
        c.wait_serving(i);
    }

    step("a leader; the membership names every node's new addresses; three voters");
    wait_for("the new addresses of all three in the membership", Duration::from_secs(60), || {
        let out = c.cli_at(0, &["status", "-o", "json"]);
        let st: Value = serde_json::from_slice(&out.stdout).ok()?;
        let members = st["members"].as_array()?;
        let moved = c.nodes.iter().zip(&new).all(|(n, (api, raft))| {
            members
                .iter()
                .any(|m| m["name"] == n.name.as_str() && m["raftAddr"] == raft.as_str() && m["apiAddr"] == api.as_str())
        });
        let voters = members.iter().filter(|m| m["role"] == "voter").count();
        let leader = st["leader"].as_str().is_some_and(|l| !l.is_empty());
        (moved && voters == 3 && members.len() == 3 && leader).then_some(())
    });
    let st: Value = serde_json::from_slice(&c.cli_at(1, &["status", "-o", "json"]).stdout).unwrap();
    for m in st["members"].as_array().unwrap() {
        assert!(!old.contains(&m["raftAddr"].as_str().unwrap().to_string()), "an old address is left: {st}");
        assert!(m["lastApplied"].is_u64(), "the leader reaches every member at its new address: {st}");
    }

    step("the old write is on every node; new writes through each node, read on the others");
    for (i, n) in c.nodes.iter().enumerate() {
        wait_for(&format!("before-move on {}", n.name), Duration::from_secs(30), || {
            c.cli_at(i, &["get", "cm", "before-move"]).status.success().then_some(())
        });
        let name = format!("after-move-{}", n.name);
        let path = c.dir.path().join(format!("{name}.yaml"));
        std::fs::write(&path, cm(&name)).unwrap();
        let out = c.cli_at(i, &["apply", "-f", path.to_str().unwrap()]);
        assert!(out.status.success(), "write through {}: {}", n.name, String::from_utf8_lossy(&out.stderr));
    }
    for (i, n) in c.nodes.iter().enumerate() {
        for writer in &c.nodes {
            let name = format!("after-move-{}", writer.name);
            let out = c.cli_at(i, &["get", "cm", &name]);
            assert!(out.status.success(), "{name} on {}: {}", n.name, String::from_utf8_lossy(&out.stderr));
        }
    }

    step("kubectl reaches every node at its new API address");
    for (api, _) in &new {
        let obj = kubectl_get_cm(&c, api, "before-move");
        assert_eq!(obj["metadata"]["name"], "before-move");
    }
}
