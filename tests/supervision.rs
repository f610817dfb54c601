//! Supervision: the systemd unit `install-service` writes passes
//! `systemd-analyze verify` without a warning, and a node stopped with SIGTERM
//! exits cleanly within its grace time. (A kill -9'd node restarted from its
//! data dir finding its containers is tested in tests/cluster.rs.) Needs root
//! and systemd-analyze (`make deps` installs systemd).

mod fixtures;

use std::process::Command;
use std::time::{Duration, Instant};

use fixtures::{bin, step, Cluster};

#[test]
fn the_service_unit_verifies_and_a_node_stops_cleanly_on_sigterm() {
    let mut c = Cluster::init(&[]);
    let units = c.dir.path().join("units");
    let data_dir = c.nodes[0].data_dir.clone();

    step("install-service writes the node's unit");
    let out = Command::new(bin())
        .args(["install-service", "--data-dir"])
        .arg(&data_dir)
        .arg("--unit-dir")
        .arg(&units)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let unit = units.join("clusterd-n1.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    let data_dir = std::fs::canonicalize(&data_dir).unwrap();
    assert!(text.contains(&format!("start --data-dir {}", data_dir.display())), "{text}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("systemctl enable --now clusterd-n1.service"));

    step("systemd-analyze verify finds nothing to say");
    let verify =
        Command::new("systemd-analyze").arg("verify").arg(&unit).output().expect("systemd-analyze (make deps)");
    let said = String::from_utf8_lossy(&verify.stderr).to_string() + &String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success() && !said.contains(unit.to_str().unwrap()), "{said}");

    step("SIGTERM: the node exits cleanly within its grace time");
    let t = Instant::now();
    let status = c.nodes[0].stop();
    assert!(status.success(), "exit status {status:?}");
    eprintln!("stopped in {:?}", t.elapsed());
    assert!(t.elapsed() < Duration::from_secs(30), "TimeoutStopSec of the unit");
}
