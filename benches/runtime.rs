//! Container start cost on this host: sequential create+start+wait+remove of a
//! `/bin/true` container, N times (default 100), through clusterd's runtime
//! (shim), libcontainer called directly, `runc run` and `crun run` on the same
//! bundle; and a pod sandbox plus one container to running. Prints
//! min/median/p99; asserts nothing. Needs root and `make images`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use clusterd_runtime::bundle::BundleSpec;
use clusterd_runtime::{ContainerConfig, ContainerState, Runtime, RuntimeConfig, SandboxConfig};

fn summary(what: &str, mut xs: Vec<Duration>) -> String {
    xs.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let p99 = xs[((xs.len() as f64 * 0.99).ceil() as usize).saturating_sub(1)];
    format!(
        "{what:<40} n={:<4} min {:>7.2} ms   median {:>7.2} ms   p99 {:>7.2} ms",
        xs.len(),
        ms(xs[0]),
        ms(xs[xs.len() / 2]),
        ms(p99)
    )
}

fn true_bundle(dir: &Path, rootfs: &Path, cgroup: &str) -> PathBuf {
    let spec = BundleSpec {
        args: vec!["/bin/true".into()],
        env: vec!["PATH=/bin".into()],
        rootfs: rootfs.display().to_string(),
        cgroups_path: cgroup.into(),
        ..Default::default()
    };
    spec.write(dir).unwrap();
    dir.to_path_buf()
}

fn libcontainer_direct(bundle: &Path, state: &Path, n: usize) -> Vec<Duration> {
    use libcontainer::container::builder::ContainerBuilder;
    use libcontainer::syscall::syscall::SyscallType;
    let mut out = Vec::new();
    for i in 0..n {
        let t = Instant::now();
        let id = format!("direct-{i}");
        let mut c = ContainerBuilder::new(id, SyscallType::default())
            .with_root_path(state)
            .unwrap()
            .as_init(bundle)
            .with_systemd(false)
            .with_detach(true)
            .build()
            .unwrap();
        c.start().unwrap();
        let pid = c.pid().unwrap();
        let _ = nix::sys::wait::waitpid(pid, None);
        c.delete(true).unwrap();
        out.push(t.elapsed());
    }
    out
}

fn cli_runtime(bin: &str, bundle: &Path, root: &Path, n: usize) -> Result<Vec<Duration>, String> {
    let mut out = Vec::new();
    for i in 0..n {
        let id = format!("{bin}-{i}");
        let t = Instant::now();
        let r = Command::new(bin)
            .arg("--root")
            .arg(root)
            .args(["run", "--bundle"])
            .arg(bundle)
            .arg(&id)
            .output()
            .map_err(|e| e.to_string())?;
        let _ = Command::new(bin).arg("--root").arg(root).args(["delete", "-f", &id]).output();
        if !r.status.success() {
            return Err(String::from_utf8_lossy(&r.stderr).trim().to_string());
        }
        out.push(t.elapsed());
    }
    Ok(out)
}

fn main() {
    let n: usize = std::env::var("BENCH_CONTAINERS").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let images = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/images/busybox-v1.tar");
    assert!(images.exists(), "run `make images` first");
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::new(RuntimeConfig {
        node: "bench".into(),
        root: dir.path().join("rt"),
        shim_binary: env!("CARGO_BIN_EXE_clusterd").into(),
        max_log_bytes: 1 << 20,
        pod_cidr: None,
        cluster_cidr: None,
    })
    .unwrap();
    rt.images().import_archive(&images).unwrap();
    let image = rt.images().resolve("clusterd.local/busybox:v1").unwrap();
    let rootfs = rt.images().layer_dirs(&image).unwrap().remove(0);
    println!(
        "runtime bench: {n} sequential create+start+wait+remove of /bin/true, {} cores",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );

    let sb = rt.run_pod_sandbox(SandboxConfig { name: "bench".into(), ..Default::default() }).unwrap();
    let mut shim = Vec::new();
    let mut phases: [Vec<Duration>; 4] = Default::default();
    for _ in 0..n {
        let t = Instant::now();
        let cfg = ContainerConfig {
            name: "t".into(),
            image: image.reference.clone(),
            command: vec!["/bin/true".into()],
            ..Default::default()
        };
        let id = rt.create_container(&sb, cfg).unwrap();
        let created = t.elapsed();
        rt.start_container(&id).unwrap();
        let started = t.elapsed();
        while rt.container_status(&id).unwrap().state != ContainerState::Exited {
            std::thread::sleep(Duration::from_micros(200));
        }
        let exited = t.elapsed();
        rt.remove_container(&id).unwrap();
        shim.push(t.elapsed());
        phases[0].push(created);
        phases[1].push(started - created);
        phases[2].push(exited - started);
        phases[3].push(t.elapsed() - exited);
    }
    rt.remove_pod_sandbox(&sb).unwrap();
    println!("{}", summary("clusterd runtime (shim, overlay rootfs)", shim));
    let median = |mut xs: Vec<Duration>| {
        xs.sort();
        xs[xs.len() / 2].as_secs_f64() * 1e3
    };
    let [c, s, w, r] = phases;
    println!(
        "  of which (medians): create {:.2} ms, start {:.2} ms, run to exit {:.2} ms, remove {:.2} ms",
        median(c),
        median(s),
        median(w),
        median(r)
    );

    let bundle = true_bundle(&dir.path().join("bundle"), &rootfs, "/clusterd-bench/direct");
    let direct = libcontainer_direct(&bundle, &dir.path().join("lc-state"), n);
    println!("{}", summary("libcontainer direct", direct));
    for bin in ["runc", "crun"] {
        match cli_runtime(bin, &bundle, &dir.path().join(format!("{bin}-state")), n) {
            Ok(xs) => println!("{}", summary(&format!("{bin} run"), xs)),
            Err(e) => println!("{bin:<40} not measured: {e}"),
        }
    }

    let mut pods = Vec::new();
    for i in 0..(n / 2).max(10) {
        let t = Instant::now();
        let sb = rt.run_pod_sandbox(SandboxConfig { name: format!("p{i}"), ..Default::default() }).unwrap();
        let cfg = ContainerConfig {
            name: "s".into(),
            image: image.reference.clone(),
            command: vec!["sleep".into(), "30".into()],
            ..Default::default()
        };
        let id = rt.create_container(&sb, cfg).unwrap();
        rt.start_container(&id).unwrap();
        pods.push(t.elapsed());
        rt.remove_pod_sandbox(&sb).unwrap();
    }
    println!("{}", summary("pod sandbox + 1 container to running", pods));
    rt.teardown().unwrap();
}
