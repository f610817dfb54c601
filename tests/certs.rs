//! Certificate expiry and renewal on a real cluster: nodes whose certificates
//! live for seconds renew them through the cluster and keep working long
//! after the first ones expired — the API serves the renewed certificate,
//! peers accept each other's over QUIC, a restarted node comes back with its
//! renewed certificate from disk, one kept down past its expiry renews as it
//! starts — and `clusterd status` shows the expiries.

mod fixtures;

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpStream;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use clusterd_raft::pki;
use fixtures::{bin, wait_for, Cluster};
use serde_json::Value;

/// Node certificates live 30 s and are renewed with 20 s left: a renewal
/// every 10–15 s (checks every 5 s), each leaving 15 s of slack for a slow
/// machine.
const FLAGS: &[&str] = &["--cert-validity", "30s", "--cert-renew-before", "20s"];

fn node_cert(c: &Cluster, i: usize) -> String {
    std::fs::read_to_string(c.nodes[i].data_dir.join("pki/node.crt")).unwrap()
}

fn node_key(c: &Cluster, i: usize) -> String {
    std::fs::read_to_string(c.nodes[i].data_dir.join("pki/node.key")).unwrap()
}

fn ca_pem(c: &Cluster) -> String {
    std::fs::read_to_string(c.nodes[0].data_dir.join("pki/ca.crt")).unwrap()
}

/// The certificate node `i`'s API presents now (DER), after a handshake
/// that verifies it against the cluster CA at the current time: it fails
/// for an expired certificate.
fn served_cert(c: &Cluster, i: usize) -> Result<Vec<u8>, String> {
    let cfg = Arc::new(pki::client_config(&ca_pem(c), None, &[b"h2"]).unwrap());
    let name = rustls::pki_types::ServerName::try_from(pki::NODE_SERVER_NAME).unwrap();
    let mut conn = rustls::ClientConnection::new(cfg, name).unwrap();
    let mut tcp = TcpStream::connect(&c.nodes[i].api_addr).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).map_err(|e| e.to_string())?;
    }
    Ok(conn.peer_certificates().ok_or("no certificate")?[0].to_vec())
}

fn not_after_der(der: &[u8]) -> SystemTime {
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, der)
    );
    pki::not_after(&pem).unwrap()
}

/// Each member's published certificate expiry, by name (members that have
/// not published one yet are left out).
fn expiries(status: &Value) -> BTreeMap<String, String> {
    status["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| {
            let t = m["certNotAfter"].as_str().filter(|t| !t.is_empty())?;
            Some((m["name"].as_str()?.to_string(), t.to_string()))
        })
        .collect()
}

/// `status -o json`, if it answers.
fn try_status(c: &Cluster) -> Option<Value> {
    let out = c.cli(&["status", "-o", "json"]);
    out.status.success().then(|| serde_json::from_slice(&out.stdout).ok()).flatten()
}

/// A ConfigMap written through node `i`'s API.
fn write_through(c: &Cluster, i: usize, name: &str) -> Result<(), String> {
    let path = c.dir.path().join(format!("{name}.yaml"));
    std::fs::write(&path, format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  k: v\n"))
        .unwrap();
    let out = c.cli_at(i, &["apply", "-f", path.to_str().unwrap()]);
    out.status.success().then_some(()).ok_or_else(|| String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn nodes_renew_their_certificates_through_the_cluster_and_keep_working() {
    let mut c = Cluster::init(FLAGS);
    c.join("n2", true);
    c.join("n3", true);
    let names = ["n1", "n2", "n3"];
    let original: Vec<(String, String)> = (0..3).map(|i| (node_cert(&c, i), node_key(&c, i))).collect();
    let first_expiry = original.iter().map(|(cert, _)| pki::not_after(cert).unwrap()).max().unwrap();
    let left = first_expiry.duration_since(SystemTime::now()).unwrap_or_default();
    assert!(left <= Duration::from_secs(31), "a node certificate lives 30s, not {left:?}");

    // The client certificate in use: the admin's, valid for a year.
    let st = c.status();
    assert_eq!(st["client"]["user"], "admin");
    let client_expiry = chrono::DateTime::parse_from_rfc3339(st["client"]["certNotAfter"].as_str().unwrap()).unwrap();
    assert!(client_expiry > chrono::Utc::now() + chrono::Duration::days(364), "{client_expiry}");

    // Every node's published expiry moves forward: two renewals or more each,
    // and the first certificates have expired.
    let mut seen: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    wait_for("every node to renew its certificate twice", Duration::from_secs(120), || {
        for (name, t) in expiries(&try_status(&c)?) {
            seen.entry(name).or_default().insert(t);
        }
        let renewed_twice = names.iter().all(|n| seen.get(*n).is_some_and(|ts| ts.len() >= 3));
        (renewed_twice && SystemTime::now() > first_expiry + Duration::from_secs(1)).then_some(())
    });
    println!("published expiries: {seen:?}");

    // Each API serves a valid (renewed) certificate; writes go through every node.
    for (i, name) in names.iter().enumerate() {
        let der = wait_for(&format!("{name}'s API to serve a valid certificate"), Duration::from_secs(10), || {
            served_cert(&c, i).ok()
        });
        assert!(not_after_der(&der) > first_expiry, "{name} serves a renewed certificate");
        write_through(&c, i, &format!("after-expiry-{i}")).unwrap_or_else(|e| panic!("write via {name}: {e}"));
    }

    // The certificate files changed on disk (same key: the renewal re-signs it).
    for (i, (cert, key)) in original.iter().enumerate() {
        assert_ne!(&node_cert(&c, i), cert, "{}'s node.crt was rewritten", names[i]);
        assert_eq!(&node_key(&c, i), key, "{} keeps its key", names[i]);
    }

    // A node restarted after its renewal (its first certificate long expired)
    // comes back with the renewed one: it serves it, and it and its peers
    // accept each other's renewed certificates on fresh QUIC connections.
    c.nodes[1].stop();
    let on_disk = pki::not_after(&node_cert(&c, 1)).unwrap();
    assert!(on_disk > pki::not_after(&original[1].0).unwrap() && on_disk > SystemTime::now());
    c.nodes[1].restart();
    c.wait_serving(1);
    let der = served_cert(&c, 1).expect("the restarted node's API handshake");
    assert!(not_after_der(&der) >= on_disk, "n2 serves the renewed certificate it saved");
    wait_for("writes through the restarted node", Duration::from_secs(30), || {
        write_through(&c, 1, "after-restart").ok()
    });
    wait_for("the restarted node to answer its peers", Duration::from_secs(30), || {
        let st = try_status(&c)?;
        let n2 = st["members"].as_array().unwrap().iter().find(|m| m["name"] == "n2").cloned()?;
        n2["lastApplied"].as_u64()
    });
    let out = c.cli_at(2, &["get", "cm", "after-restart", "-o", "name"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // A node kept down until the certificate on its disk expired renews it
    // as it starts (from the CA in its own replica) and serves again.
    c.nodes[2].stop();
    let on_disk = pki::not_after(&node_cert(&c, 2)).unwrap();
    wait_for("n3's certificate on disk to expire", Duration::from_secs(60), || {
        (SystemTime::now() > on_disk + Duration::from_secs(1)).then_some(())
    });
    c.nodes[2].restart();
    c.wait_serving(2);
    let der = wait_for("a handshake with n3, started with an expired certificate", Duration::from_secs(10), || {
        served_cert(&c, 2).ok()
    });
    assert!(not_after_der(&der) > SystemTime::now(), "n3 serves a certificate renewed at its start");
    wait_for("writes through n3", Duration::from_secs(30), || write_through(&c, 2, "after-expired-restart").ok());
}

#[test]
fn bad_certificate_flags_are_refused_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("n1");
    let cases: &[(&[&str], &str)] = &[
        (&["--cert-validity", "3x"], "--cert-validity"),
        (&["--cert-renew-before", "30"], "--cert-renew-before"),
        (&["--cert-validity", "20s"], "--cert-renew-before (30d) must be shorter than --cert-validity (20s)"),
    ];
    for (flags, named) in cases {
        let out = Command::new(bin())
            .args(["init", "--data-dir", data.to_str().unwrap(), "--name", "n1"])
            .args(["--api-addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0"])
            .args(*flags)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(named), "{flags:?}: {err}");
        assert!(!data.join("node.json").exists(), "{flags:?}: nothing was set up");
    }
}
