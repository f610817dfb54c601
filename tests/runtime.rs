//! The runtime on this host with real containers: a two-container pod sharing
//! localhost and a volume, exit codes, graceful stop, OOM, cgroup limits, CRI
//! logs, exec, survival of the runtime's owner, typed errors for bad input, and
//! nothing left behind.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clusterd_runtime::bundle::{Mount, Resources};
use clusterd_runtime::{ContainerConfig, ContainerState, Runtime, RuntimeConfig, RuntimeError, SandboxConfig};

fn images_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/images")
}

struct Host {
    rt: Runtime,
    dir: tempfile::TempDir,
    node: String,
}

impl Host {
    fn new() -> Host {
        let dir = tempfile::tempdir().unwrap();
        let node = format!("rt{}", std::process::id() % 100_000 + rand_u16());
        let rt = runtime(dir.path(), &node);
        let v1 = images_dir().join("busybox-v1.tar");
        assert!(v1.exists(), "run `make images` first");
        rt.images().import_archive(&v1).unwrap();
        Host { rt, dir, node }
    }
}

fn rand_u16() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() % 1000
}

fn runtime(root: &Path, node: &str) -> Runtime {
    runtime_with(root, node, 1 << 20, None)
}

fn runtime_with(root: &Path, node: &str, max_log_bytes: u64, pod_cidr: Option<String>) -> Runtime {
    Runtime::new(RuntimeConfig {
        node: node.into(),
        root: root.join("runtime"),
        shim_binary: env!("CARGO_BIN_EXE_clusterd").into(),
        max_log_bytes,
        pod_cidr,
        cluster_cidr: None,
    })
    .unwrap()
}

impl Drop for Host {
    fn drop(&mut self) {
        for s in self.rt.list_sandboxes().unwrap_or_default() {
            let _ = self.rt.remove_pod_sandbox(&s.id);
        }
        let _ = self.rt.teardown();
        let leftover: Vec<_> = std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join(format!("clusterd-{}", self.node)))
            .filter(|p| p.exists())
            .collect();
        if !std::thread::panicking() {
            assert!(leftover.is_empty(), "cgroups left behind: {leftover:?}");
        }
    }
}

fn sh(name: &str, script: &str) -> ContainerConfig {
    ContainerConfig {
        name: name.into(),
        image: "clusterd.local/busybox:v1".into(),
        command: vec!["sh".into(), "-c".into(), script.into()],
        ..Default::default()
    }
}

fn wait_state(rt: &Runtime, id: &str, want: ContainerState, timeout: Duration) -> clusterd_runtime::ContainerStatus {
    let deadline = Instant::now() + timeout;
    loop {
        let st = rt.container_status(id).unwrap();
        if st.state == want {
            return st;
        }
        assert!(
            Instant::now() < deadline,
            "container {} stayed {:?}: {}",
            st.name,
            st.state,
            rt.logs(id).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn pod(h: &Host, name: &str) -> String {
    h.rt.run_pod_sandbox(SandboxConfig {
        name: name.into(),
        namespace: "default".into(),
        uid: name.into(),
        hostname: String::new(),
    })
    .unwrap()
}

#[test]
fn two_containers_share_localhost_and_a_volume() {
    let h = Host::new();
    let vol = h.dir.path().join("shared");
    std::fs::create_dir_all(&vol).unwrap();
    let sb = pod(&h, "web");
    let mount = Mount { host_path: vol.display().to_string(), container_path: "/data".into(), read_only: false };
    let mut server = sh("server", "echo served-by-httpd > /www/page.txt; httpd -f -p 127.0.0.1:8080 -h /www");
    server.mounts = vec![mount.clone()];
    let mut client = sh(
        "client",
        "for i in $(seq 1 100); do wget -q -O /data/fetched.txt http://127.0.0.1:8080/page.txt && break; sleep 0.1; done; cat /data/fetched.txt",
    );
    client.mounts = vec![mount];
    let s = h.rt.create_container(&sb, server).unwrap();
    h.rt.start_container(&s).unwrap();
    let c = h.rt.create_container(&sb, client).unwrap();
    h.rt.start_container(&c).unwrap();
    let done = wait_state(&h.rt, &c, ContainerState::Exited, Duration::from_secs(30));
    assert_eq!(done.exit_code, Some(0), "{}", h.rt.logs(&c).unwrap());
    assert_eq!(done.reason.as_deref(), Some("Completed"));
    assert_eq!(std::fs::read_to_string(vol.join("fetched.txt")).unwrap(), "served-by-httpd\n");
    eprintln!("--- the server reads what the client wrote to the shared volume");
    let out = h.rt.exec(&s, &["cat".into(), "/data/fetched.txt".into()]).unwrap();
    assert_eq!((out.exit_code, String::from_utf8_lossy(&out.stdout).as_ref()), (0, "served-by-httpd\n"));
    eprintln!("--- exec input reaches the command's stdin, and ends");
    let upper = ["sh".into(), "-c".into(), "tr a-z A-Z; echo done".into()];
    let out = h.rt.exec_with_input(&s, &upper, Some(b"piped in\n".to_vec())).unwrap();
    assert_eq!((out.exit_code, String::from_utf8_lossy(&out.stdout).as_ref()), (0, "PIPED IN\ndone\n"));
    eprintln!("--- logs are in the CRI format");
    let logs = h.rt.logs(&c).unwrap();
    let line = logs.lines().last().unwrap();
    let parts: Vec<&str> = line.splitn(4, ' ').collect();
    assert!(chrono::DateTime::parse_from_rfc3339(parts[0]).is_ok(), "{line}");
    assert_eq!(&parts[1..], &["stdout", "F", "served-by-httpd"]);
    h.rt.remove_pod_sandbox(&sb).unwrap();
    assert!(h.rt.list_containers(None).unwrap().is_empty());
}

#[test]
fn exit_codes_and_graceful_stop() {
    let h = Host::new();
    let sb = pod(&h, "codes");
    let fail = h.rt.create_container(&sb, sh("fail", "echo oops >&2; exit 3")).unwrap();
    h.rt.start_container(&fail).unwrap();
    let st = wait_state(&h.rt, &fail, ContainerState::Exited, Duration::from_secs(20));
    assert_eq!((st.exit_code, st.reason.as_deref()), (Some(3), Some("Error")));
    assert!(h.rt.logs(&fail).unwrap().contains(" stderr F oops"));
    eprintln!("--- a container that handles SIGTERM exits within the grace period");
    let script = "trap 'echo bye; exit 0' TERM; echo ready; while true; do sleep 0.05; done";
    let polite = h.rt.create_container(&sb, sh("polite", script)).unwrap();
    h.rt.start_container(&polite).unwrap();
    // The trap is set once the script says so.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !h.rt.logs(&polite).unwrap().contains(" stdout F ready") {
        assert!(Instant::now() < deadline, "the script never got ready");
        std::thread::sleep(Duration::from_millis(10));
    }
    let t = Instant::now();
    h.rt.stop_container(&polite, Duration::from_secs(10)).unwrap();
    assert!(t.elapsed() < Duration::from_secs(5));
    let st = h.rt.container_status(&polite).unwrap();
    assert_eq!(st.exit_code, Some(0), "{}", h.rt.logs(&polite).unwrap());
    eprintln!("--- one that ignores it is killed when the grace period ends");
    let stubborn = h.rt.create_container(&sb, sh("stubborn", "trap '' TERM; while true; do sleep 0.05; done")).unwrap();
    h.rt.start_container(&stubborn).unwrap();
    wait_state(&h.rt, &stubborn, ContainerState::Running, Duration::from_secs(10));
    let t = Instant::now();
    h.rt.stop_container(&stubborn, Duration::from_secs(1)).unwrap();
    assert!(t.elapsed() >= Duration::from_secs(1));
    assert_eq!(h.rt.container_status(&stubborn).unwrap().exit_code, Some(137));
    h.rt.remove_pod_sandbox(&sb).unwrap();
}

#[test]
fn limits_reach_the_cgroup_and_oom_is_reported() {
    let h = Host::new();
    let sb = pod(&h, "limits");
    let mut calm = sh("calm", "sleep 30");
    calm.resources = Resources::from_millis(Some(250), Some(500), Some(16 << 20));
    let id = h.rt.create_container(&sb, calm).unwrap();
    h.rt.start_container(&id).unwrap();
    wait_state(&h.rt, &id, ContainerState::Running, Duration::from_secs(10));
    let cg = format!("{}/{}/{}", h.rt.cgroup_parent(), sb, id);
    // cgroup v1: the cpu controller is mounted alone or as cpu,cpuacct.
    let read = |ctrls: &[&str], file: &str| {
        let paths: Vec<String> = ctrls.iter().map(|c| format!("/sys/fs/cgroup/{c}{cg}/{file}")).collect();
        paths
            .iter()
            .find_map(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_else(|| panic!("none of {paths:?}"))
            .trim()
            .to_string()
    };
    assert_eq!(read(&["memory"], "memory.limit_in_bytes"), (16u64 << 20).to_string());
    assert_eq!(read(&["cpu", "cpu,cpuacct"], "cpu.shares"), "256");
    assert_eq!(read(&["cpu", "cpu,cpuacct"], "cpu.cfs_quota_us"), "50000");
    let stats = h.rt.stats(&id).unwrap();
    assert!(stats.memory_working_set > 0);
    h.rt.stop_container(&id, Duration::ZERO).unwrap();
    eprintln!("--- a container that outgrows its memory limit is OOMKilled");
    let mut hog = sh("hog", "x=a; while true; do x=$x$x; done");
    hog.resources = Resources::from_millis(None, None, Some(16 << 20));
    let id = h.rt.create_container(&sb, hog).unwrap();
    h.rt.start_container(&id).unwrap();
    let st = wait_state(&h.rt, &id, ContainerState::Exited, Duration::from_secs(60));
    assert_eq!(st.reason.as_deref(), Some("OOMKilled"), "exit {:?}", st.exit_code);
    assert_eq!(st.exit_code, Some(137));
    h.rt.remove_pod_sandbox(&sb).unwrap();
}

#[test]
fn bad_input_is_a_typed_error_and_leaves_nothing() {
    let h = Host::new();
    let sb = pod(&h, "bad");
    let mut missing = sh("missing", "true");
    missing.image = "clusterd.local/nothing:v9".into();
    assert!(matches!(h.rt.create_container(&sb, missing), Err(RuntimeError::ImageNotFound(_))));
    let mut invalid = sh("invalid", "true");
    invalid.image = "Not A Reference".into();
    let err = h.rt.create_container(&sb, invalid).unwrap_err();
    assert!(matches!(err, RuntimeError::InvalidImageName(_)));
    assert_eq!(err.reason(), "InvalidImageName");
    let mut unknown = sh("unknown", "");
    unknown.command = vec!["/no/such/binary".into()];
    let id = h.rt.create_container(&sb, unknown).unwrap();
    match h.rt.start_container(&id) {
        Err(e @ RuntimeError::StartContainer { .. }) => assert_eq!(e.reason(), "RunContainerError"),
        other => {
            // Some runtimes report a missing binary as an exit; it must not run.
            let st = wait_state(&h.rt, &id, ContainerState::Exited, Duration::from_secs(10));
            assert_ne!(st.exit_code, Some(0), "{other:?}");
        }
    }
    h.rt.remove_container(&id).unwrap();
    assert!(h.rt.list_containers(None).unwrap().is_empty());
    h.rt.remove_pod_sandbox(&sb).unwrap();
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(!mounts.contains(h.dir.path().to_str().unwrap()), "mounts left behind");
}

#[test]
fn containers_survive_a_restart_of_the_runtime_owner() {
    let h = Host::new();
    let sb = pod(&h, "survivor");
    let id = h.rt.create_container(&sb, sh("long", "while true; do sleep 0.1; done")).unwrap();
    h.rt.start_container(&id).unwrap();
    let before = wait_state(&h.rt, &id, ContainerState::Running, Duration::from_secs(10));
    eprintln!("--- a new Runtime over the same root finds the container running");
    let again = runtime(h.dir.path(), &h.node);
    let after = again.container_status(&id).unwrap();
    assert_eq!(after.state, ContainerState::Running);
    assert_eq!(after.pid, before.pid);
    let out = again.exec(&id, &["cat".into(), "/VERSION".into()]).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "v1\n");
    again.stop_container(&id, Duration::from_secs(1)).unwrap();
    assert!(again.stats(&id).is_ok());
    again.remove_pod_sandbox(&sb).unwrap();
}

/// Removes the node's sandboxes, bridge and nftables table even when a test fails.
struct NetGuard<'a>(&'a Runtime);

impl Drop for NetGuard<'_> {
    fn drop(&mut self) {
        for s in self.0.list_sandboxes().unwrap_or_default() {
            let _ = self.0.remove_pod_sandbox(&s.id);
        }
        let _ = self.0.teardown();
    }
}

fn http_get(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: pod\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    body.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

#[test]
fn pods_get_an_address_on_the_node_bridge() {
    let dir = tempfile::tempdir().unwrap();
    let node = format!("net{}", rand_u16());
    // A subnet of its own per run, so a crashed earlier run cannot shadow it.
    let subnet = format!("10.251.{}", std::process::id() % 250);
    let rt = runtime_with(dir.path(), &node, 1 << 20, Some(format!("{subnet}.0/24")));
    let guard = NetGuard(&rt);
    rt.images().import_archive(&images_dir().join("busybox-v1.tar")).unwrap();
    let sb = rt.run_pod_sandbox(SandboxConfig { name: "web".into(), ..Default::default() }).unwrap();
    let ip = rt.sandbox_status(&sb).unwrap().ip.expect("an address");
    assert!(ip.starts_with(&format!("{subnet}.")), "{ip}");
    let id = rt.create_container(&sb, sh("httpd", "httpd -f -p 8080 -h /www")).unwrap();
    rt.start_container(&id).unwrap();
    eprintln!("--- the pod's server answers from the host at {ip}:8080");
    let deadline = Instant::now() + Duration::from_secs(15);
    let body = loop {
        if let Some(b) = http_get(&format!("{ip}:8080"), "/index.html") {
            break b;
        }
        assert!(Instant::now() < deadline, "no answer from {ip}: {}", rt.logs(&id).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(body, "hello from busybox v1\n");
    let out = rt.exec(&id, &["ip".into(), "route".into()]).unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("default via {subnet}.1")));
    let bridge = rt.bridge().expect("a bridge");
    rt.remove_pod_sandbox(&sb).unwrap();
    let ports = std::process::Command::new("ip").args(["-o", "link", "show", "master", &bridge]).output().unwrap();
    assert!(String::from_utf8_lossy(&ports.stdout).trim().is_empty(), "a veth was left on {bridge}");
    drop(guard);
    let links = std::process::Command::new("ip").args(["-o", "link"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&links.stdout).contains(&bridge), "the bridge was left behind");
}

/// Debian's docker-registry on a free loopback port, stopped on drop.
struct Registry {
    child: std::process::Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
        let config = dir.path().join("config.yml");
        let store = dir.path().join("store");
        std::fs::write(
            &config,
            format!("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n", store.display()),
        )
        .unwrap();
        let child = std::process::Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("docker-registry (apt-get install docker-registry)");
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "the registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Registry { child, addr, _dir: dir }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn images_pushed_to_a_registry_are_pulled_back_and_run() {
    let reg = Registry::start();
    let archive = images_dir().join("busybox-v2.tar");
    let target = format!("docker://{}/clusterd/busybox:v2", reg.addr);
    let out = std::process::Command::new("skopeo")
        .args(["copy", "--insecure-policy", "--dest-tls-verify=false"])
        .arg(format!("oci-archive:{}", archive.display()))
        .arg(&target)
        .output()
        .expect("skopeo (apt-get install skopeo)");
    assert!(out.status.success(), "skopeo: {}", String::from_utf8_lossy(&out.stderr));
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path(), &format!("pull{}", rand_u16()));
    let guard = NetGuard(&rt);
    let image = format!("{}/clusterd/busybox:v2", reg.addr);
    let tokio = tokio::runtime::Runtime::new().unwrap();
    eprintln!("--- a plain-HTTP registry is refused unless it is named insecure");
    let refused = tokio.block_on(clusterd_runtime::image::pull::pull(rt.images(), &image, &[]));
    assert!(matches!(refused, Err(RuntimeError::ImagePull { .. })), "{refused:?}");
    let insecure = vec![reg.addr.clone()];
    let pulled = tokio.block_on(clusterd_runtime::image::pull::pull(rt.images(), &image, &insecure)).unwrap();
    assert_eq!(pulled.reference, image);
    let missing = tokio.block_on(clusterd_runtime::image::pull::pull(
        rt.images(),
        &format!("{}/clusterd/none:v1", reg.addr),
        &insecure,
    ));
    assert_eq!(missing.unwrap_err().reason(), "ErrImagePull");
    eprintln!("--- and runs");
    let sb = rt.run_pod_sandbox(SandboxConfig { name: "pulled".into(), ..Default::default() }).unwrap();
    let mut c = sh("version", "cat /VERSION");
    c.image = image;
    let id = rt.create_container(&sb, c).unwrap();
    rt.start_container(&id).unwrap();
    let st = wait_state(&rt, &id, ContainerState::Exited, Duration::from_secs(20));
    assert_eq!(st.exit_code, Some(0));
    assert!(rt.logs(&id).unwrap().ends_with(" stdout F v2\n"), "{}", rt.logs(&id).unwrap());
    drop(guard);
}

#[test]
fn logs_rotate_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let node = format!("log{}", rand_u16());
    let rt = runtime_with(dir.path(), &node, 4096, None);
    let guard = NetGuard(&rt);
    rt.images().import_archive(&images_dir().join("busybox-v1.tar")).unwrap();
    let sb = rt.run_pod_sandbox(SandboxConfig { name: "chatty".into(), ..Default::default() }).unwrap();
    let id = rt.create_container(&sb, sh("chatty", "for i in $(seq 1 400); do echo line-$i; done")).unwrap();
    rt.start_container(&id).unwrap();
    let st = wait_state(&rt, &id, ContainerState::Exited, Duration::from_secs(20));
    let current = std::fs::read_to_string(&st.log_path).unwrap();
    let rotated = std::fs::read_to_string(st.log_path.with_extension("log.1")).unwrap();
    assert!(current.len() <= 4096 && rotated.len() <= 4096, "{} {}", current.len(), rotated.len());
    assert!(current.ends_with(" stdout F line-400\n"), "{current}");
    assert!(rotated.lines().all(|l| l.contains(" stdout F line-")));
    drop(guard);
}
