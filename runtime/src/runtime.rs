//! The CRI-shaped runtime: pod sandboxes and their containers on this host.
//!
//! ```text
//! ROOT/images/                  the image store
//! ROOT/sandboxes/<id>.json      a sandbox: its pod, its pause process and how
//!                               far its making got (written before each step)
//! ROOT/containers/<id>/         a container: meta.json, bundle/config.json,
//!                               rootfs (overlay mount), upper/, work/,
//!                               status.json (written by its shim), <id>.log
//! ROOT/state/                   libcontainer's state
//! ```
//! Cgroups live under `/clusterd-<node>/<sandbox>/<container>` in every hierarchy;
//! a sandbox's pause process under `/clusterd-<node>/<sandbox>/pause` (see [`cgroup`]).
//!
//! Nothing is made on the host before a record on disk names it: a daemon
//! killed at any step leaves what a restarted runtime, or `clusterd reset`,
//! finds and removes (see [`recovery`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::bundle::{resolve_command, BundleSpec, Mount, Resources};
use crate::cgroup;
use crate::error::{IoContext, RuntimeError};
use crate::image::ImageStore;
use crate::network::PodNetwork;
use crate::recovery::{self, Found, Leftover, SandboxPhase};
use crate::shim::{self, ShimStatus};

/// Where and as whom the runtime works.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// The node's name: cgroups and links are named after it.
    pub node: String,
    /// The runtime's root directory (per node).
    pub root: PathBuf,
    /// The `clusterd` binary, run as `clusterd shim …`.
    pub shim_binary: PathBuf,
    /// Largest container log before it is rotated.
    pub max_log_bytes: u64,
    /// The node's pod CIDR (`a.b.c.0/24`); without one, pods get only loopback.
    pub pod_cidr: Option<String>,
    /// The cluster's pod network (`a.b.0.0/16`), not masqueraded.
    pub cluster_cidr: Option<String>,
}

/// A pod sandbox to create.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SandboxConfig {
    /// Pod name.
    pub name: String,
    /// Pod namespace.
    pub namespace: String,
    /// Pod uid.
    pub uid: String,
    /// Hostname (defaults to the pod name).
    pub hostname: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SandboxRecord {
    id: String,
    config: SandboxConfig,
    /// 0 until the pause reported its pid.
    pause_pid: i32,
    created_at: String,
    #[serde(default)]
    ip: Option<String>,
    #[serde(default)]
    phase: SandboxPhase,
    /// The cgroup the pause process is born in (None: records from before
    /// pauses were placed, or a host without a hierarchy to place them in).
    #[serde(default)]
    pause_cgroup: Option<String>,
}

/// A container to create.
#[derive(Clone, Debug, Default)]
pub struct ContainerConfig {
    /// Container name in the pod.
    pub name: String,
    /// Image reference (must be in the store).
    pub image: String,
    /// Kubernetes `command` (replaces ENTRYPOINT).
    pub command: Vec<String>,
    /// Kubernetes `args` (replaces CMD).
    pub args: Vec<String>,
    /// Extra environment.
    pub env: Vec<(String, String)>,
    /// Working directory (else the image's).
    pub working_dir: String,
    /// Volumes: host directories bound in.
    pub mounts: Vec<Mount>,
    /// Limits.
    pub resources: Resources,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContainerRecord {
    id: String,
    name: String,
    sandbox_id: String,
    image: String,
    image_id: String,
    created_at: String,
    cgroups_path: String,
}

/// Created, running or exited.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContainerState {
    /// Created, not started.
    Created,
    /// Running.
    Running,
    /// Exited (see the exit code and reason).
    Exited,
}

/// What the runtime knows about a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerStatus {
    /// Container id.
    pub id: String,
    /// Container name.
    pub name: String,
    /// Its sandbox.
    pub sandbox_id: String,
    /// Image reference and id.
    pub image: String,
    /// The image's manifest digest.
    pub image_id: String,
    /// State.
    pub state: ContainerState,
    /// Host pid of its init while running.
    pub pid: Option<i32>,
    /// Exit code once exited.
    pub exit_code: Option<i32>,
    /// `Completed`, `Error`, `OOMKilled`.
    pub reason: Option<String>,
    /// Created, started and finished times (RFC 3339).
    pub created_at: String,
    /// Start time.
    pub started_at: Option<String>,
    /// Finish time.
    pub finished_at: Option<String>,
    /// The CRI log file.
    pub log_path: PathBuf,
}

/// A sandbox's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxStatus {
    /// Sandbox id.
    pub id: String,
    /// The pod it is for.
    pub config: SandboxConfig,
    /// Whether its pause process lives.
    pub ready: bool,
    /// The pause process.
    pub pid: i32,
    /// The pod's address on the node's bridge.
    pub ip: Option<String>,
}

/// The output of an exec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecResult {
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
    /// Exit code.
    pub exit_code: i32,
}

/// Resource usage from the cgroup files.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// CPU time used, nanoseconds.
    pub cpu_usage_ns: u64,
    /// Memory working set (usage less inactive file cache), bytes.
    pub memory_working_set: u64,
}

/// The runtime of one node.
pub struct Runtime {
    cfg: RuntimeConfig,
    images: ImageStore,
    network: Option<PodNetwork>,
    zygote: std::sync::Mutex<Option<Zygote>>,
}

/// The runtime's `clusterd shim zygote`, which forks shims on request (see
/// [`shim`]); it ends when this handle (its stdin) is dropped.
struct Zygote {
    child: std::process::Child,
    socket: PathBuf,
}

impl Zygote {
    fn spawn(binary: &Path, socket: &Path) -> Result<Zygote, String> {
        use std::io::BufRead;
        use std::process::Stdio;
        let mut child = Command::new(binary)
            .args(["shim", "zygote", "--socket"])
            .arg(socket)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{}: {e}", binary.display()))?;
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped stdout");
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let zygote = Zygote { child, socket: socket.to_path_buf() };
        shim::parse_report(&line).map(|_| zygote)
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Zygote {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

fn new_id() -> String {
    hex::encode(rand::random::<[u8; 8]>())
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Whether a process runs: it exists and is not a zombie (a killed pause or
/// shim whose parent — the zygote, or PID 1 once the zygote is gone — has not
/// reaped it yet is gone for our purposes).
fn alive(pid: i32) -> bool {
    if pid <= 0 || kill(Pid::from_raw(pid), None).is_err() {
        return false;
    }
    !matches!(shim::proc_stat(&pid.to_string()).first().map(String::as_str), Some("Z" | "X"))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, RuntimeError> {
    let bytes = std::fs::read(path).at(path)?;
    serde_json::from_slice(&bytes).map_err(|e| RuntimeError::Io { path: path.into(), source: std::io::Error::other(e) })
}

/// Write `v` to `path` atomically and durably: a record written here is on
/// disk before the step it announces makes anything on the host.
fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<(), RuntimeError> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).at(&tmp)?;
    f.write_all(&serde_json::to_vec_pretty(v).expect("json")).at(&tmp)?;
    f.sync_all().at(&tmp)?;
    std::fs::rename(&tmp, path).at(path)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

impl Runtime {
    /// Open the runtime at `cfg.root`: find containers left by an earlier run of
    /// the daemon (their shims kept them running) and clean up what died with it.
    pub fn new(cfg: RuntimeConfig) -> Result<Runtime, RuntimeError> {
        for d in ["sandboxes", "containers", "state", "images"] {
            std::fs::create_dir_all(cfg.root.join(d)).at(cfg.root.join(d))?;
        }
        let images = ImageStore::open(&cfg.root.join("images"))?;
        let network = match &cfg.pod_cidr {
            Some(cidr) => {
                let net =
                    PodNetwork::in_cluster(&cfg.node, cidr, cfg.cluster_cidr.as_deref(), &cfg.root.join("network"))?;
                net.ensure()?;
                Some(net)
            }
            None => None,
        };
        let rt = Runtime { cfg, images, network, zygote: std::sync::Mutex::new(None) };
        rt.recover()?;
        Ok(rt)
    }

    /// Remove what the runtime made on the host for its node — the bridge, the
    /// nftables table and the cgroup parent, with any process still in it —
    /// when the node leaves it.
    pub fn teardown(&self) -> Result<(), RuntimeError> {
        cgroup::kill_tree(&self.cgroup_parent());
        cgroup::remove(&self.cgroup_parent());
        match &self.network {
            Some(net) => net.teardown(),
            None => Ok(()),
        }
    }

    /// Route the other nodes' pod CIDRs via their addresses (host-gw); see
    /// [`PodNetwork::sync_routes`]. Without a pod network there is nothing to route.
    pub fn sync_routes(&self, routes: &[crate::network::PodRoute]) -> Result<(), RuntimeError> {
        match &self.network {
            Some(net) => net.sync_routes(routes),
            None => Ok(()),
        }
    }

    /// The node's bridge, when the runtime has a pod network.
    pub fn bridge(&self) -> Option<String> {
        self.network.as_ref().map(PodNetwork::bridge)
    }

    /// The image store.
    pub fn images(&self) -> &ImageStore {
        &self.images
    }

    /// `/clusterd-<node>`: the cgroup parent of every pod of this node.
    pub fn cgroup_parent(&self) -> String {
        format!("/clusterd-{}", self.cfg.node)
    }

    fn sandbox_path(&self, id: &str) -> PathBuf {
        self.cfg.root.join("sandboxes").join(format!("{id}.json"))
    }

    fn container_dir(&self, id: &str) -> PathBuf {
        self.cfg.root.join("containers").join(id)
    }

    fn state_root(&self) -> PathBuf {
        self.cfg.root.join("state")
    }

    /// `/clusterd-<node>/<sandbox>/pause`: the cgroup a sandbox's pause is born in.
    fn pause_cgroup(&self, id: &str) -> String {
        format!("{}/{id}/pause", self.cgroup_parent())
    }

    fn sandbox_ids(&self) -> Result<Vec<String>, RuntimeError> {
        let dir = self.cfg.root.join("sandboxes");
        let mut ids = Vec::new();
        for e in std::fs::read_dir(&dir).at(&dir)? {
            let name = e.at(&dir)?.file_name().to_string_lossy().into_owned();
            if let Some(id) = name.strip_suffix(".json") {
                ids.push(id.to_string());
            }
        }
        ids.sort();
        Ok(ids)
    }

    fn recover(&self) -> Result<(), RuntimeError> {
        // What an earlier run began and did not finish goes first (see [`recovery`]).
        for id in self.sandbox_ids()? {
            let phase = read_json::<SandboxRecord>(&self.sandbox_path(&id)).ok().map(|r| r.phase);
            if recovery::leftover(Found::Sandbox(phase)) == Leftover::Remove {
                tracing::info!(sandbox = %id, ?phase, "runtime: removing a sandbox an earlier run did not finish");
                // Its record stays if this fails: the next start, or `reset`, tries again.
                if let Err(e) = self.remove_pod_sandbox(&id) {
                    tracing::warn!(sandbox = %id, error = %e, "runtime: removing an unfinished sandbox failed");
                }
            }
        }
        let dir = self.cfg.root.join("containers");
        for e in std::fs::read_dir(&dir).at(&dir)? {
            let id = e.at(&dir)?.file_name().to_string_lossy().into_owned();
            let rec = self.record(&id).ok();
            let found = Found::Container {
                recorded: rec.is_some(),
                sandbox_known: rec.as_ref().is_some_and(|r| self.sandbox_path(&r.sandbox_id).exists()),
            };
            if recovery::leftover(found) == Leftover::Remove {
                tracing::info!(container = %id, ?found, "runtime: removing a container an earlier run did not finish");
                let removed = match rec {
                    Some(_) => self.remove_container(&id),
                    None => self.remove_container_dir(&id, None),
                };
                if let Err(e) = removed {
                    tracing::warn!(container = %id, error = %e, "runtime: removing an unfinished container failed");
                }
            }
        }
        for id in self.container_ids()? {
            let dir = self.container_dir(&id);
            let status = shim::read_status(&dir.join("status.json"));
            if let Some(mut st) = status {
                if st.exit_code.is_none() && !alive(st.shim_pid) {
                    // The shim died with the container: record it and clean libcontainer's state.
                    if !alive(st.pid) {
                        st.exit_code = Some(255);
                        st.reason = Some("Unknown".into());
                        st.finished_at = Some(now());
                        let _ = shim::write_status(&dir.join("status.json"), &st);
                    }
                    if let Ok(mut c) = libcontainer::container::Container::load(self.state_root().join(&id)) {
                        let _ = c.delete(true);
                    }
                }
            }
        }
        Ok(())
    }

    /// Remove everything the runtime made for its node, whatever state it is
    /// in: every sandbox and container, whatever is left in the node's
    /// cgroups, its network. Returns how many sandboxes there were.
    pub fn reset(&self) -> Result<usize, RuntimeError> {
        let sandboxes = self.sandbox_ids()?;
        for id in &sandboxes {
            self.remove_pod_sandbox(id)?;
        }
        for id in self.container_ids()? {
            self.remove_container(&id)?;
        }
        self.teardown()?;
        Ok(sandboxes.len())
    }

    fn container_ids(&self) -> Result<Vec<String>, RuntimeError> {
        let dir = self.cfg.root.join("containers");
        let mut ids = Vec::new();
        for e in std::fs::read_dir(&dir).at(&dir)? {
            let e = e.at(&dir)?;
            if e.path().join("meta.json").exists() {
                ids.push(e.file_name().to_string_lossy().into_owned());
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Run `clusterd shim ARGS`: forked by the zygote, or exec'd when there is none.
    fn run_shim(&self, args: &[&str]) -> Result<Pid, String> {
        match self.via_zygote(args) {
            Some(report) => shim::parse_report(&report),
            None => self.exec_shim(args),
        }
    }

    /// The shim's report through the zygote; None when the zygote cannot be
    /// reached (nothing was asked of it then, so exec'ing instead is safe).
    fn via_zygote(&self, args: &[&str]) -> Option<String> {
        use std::io::{Read, Write};
        let socket = {
            let mut z = self.zygote.lock().expect("zygote lock");
            if !z.as_mut().is_some_and(Zygote::alive) {
                *z = None;
                match Zygote::spawn(&self.cfg.shim_binary, &self.cfg.root.join("shim.sock")) {
                    Ok(new) => *z = Some(new),
                    Err(e) => tracing::warn!(error = %e, "shim zygote unavailable; exec'ing shims"),
                }
            }
            z.as_ref()?.socket.clone()
        };
        let mut conn = std::os::unix::net::UnixStream::connect(socket).ok()?;
        let request = serde_json::to_string(args).expect("strings serialize");
        if writeln!(conn, "{request}").is_err() {
            return Some("err zygote: request not sent".into());
        }
        // An `ok` report is one line: return on it rather than waiting for the
        // forked shim to exit. Anything else is read to the end (its error).
        let mut reader = std::io::BufReader::new(conn);
        let mut report = String::new();
        let _ = std::io::BufRead::read_line(&mut reader, &mut report);
        if !report.starts_with("ok ") {
            let _ = reader.read_to_string(&mut report);
        }
        Some(report)
    }

    fn exec_shim(&self, args: &[&str]) -> Result<Pid, String> {
        let out = Command::new(&self.cfg.shim_binary)
            .arg("shim")
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| format!("run shim {}: {e}", self.cfg.shim_binary.display()))?;
        let text = String::from_utf8_lossy(&out.stdout);
        shim::parse_report(&text).map_err(|e| {
            let err = String::from_utf8_lossy(&out.stderr);
            if err.trim().is_empty() {
                e
            } else {
                format!("{e} ({})", err.trim())
            }
        })
    }

    /// Create a pod sandbox: a pause process holding new network, IPC and UTS
    /// namespaces (loopback up) that the pod's containers join.
    ///
    /// Each step is recorded before it is taken (see [`recovery`]): the
    /// sandbox's id, which names its cgroup, veth and address; then the pid of
    /// its pause, which is born in that cgroup; then its address.
    pub fn run_pod_sandbox(&self, config: SandboxConfig) -> Result<String, RuntimeError> {
        let id = new_id();
        let hostname = if config.hostname.is_empty() { config.name.clone() } else { config.hostname.clone() };
        let placed = cgroup::identity_root().is_some().then(|| self.pause_cgroup(&id));
        let mut rec = SandboxRecord {
            id: id.clone(),
            config,
            pause_pid: 0,
            created_at: now(),
            ip: None,
            phase: SandboxPhase::Intent,
            pause_cgroup: placed.clone(),
        };
        write_json(&self.sandbox_path(&id), &rec)?;
        let failed = |reason: String| {
            let _ = self.remove_pod_sandbox(&id);
            RuntimeError::Sandbox { id: id.clone(), reason }
        };
        let mut args = vec!["pause", "--hostname", &hostname];
        if let Some(cg) = &placed {
            cgroup::create(cg).map_err(|e| failed(format!("cgroup {cg}: {e}")))?;
            args.extend(["--cgroup", cg]);
        }
        let pid = self.run_shim(&args).map_err(failed)?;
        crate::failpoint::crash_point("pause-started");
        rec.pause_pid = pid.as_raw();
        rec.phase = SandboxPhase::Started;
        if let Err(e) = write_json(&self.sandbox_path(&id), &rec) {
            return Err(failed(e.to_string()));
        }
        if let Some(net) = &self.network {
            let ip = net.attach(&id, pid.as_raw()).map_err(|e| failed(e.to_string()))?;
            rec.ip = Some(ip.to_string());
        }
        rec.phase = SandboxPhase::Ready;
        if let Err(e) = write_json(&self.sandbox_path(&id), &rec) {
            return Err(failed(e.to_string()));
        }
        Ok(id)
    }

    /// Whether a sandbox's pause process runs: in its cgroup when it was
    /// placed in one (a pid alone may have been reused since).
    fn pause_alive(rec: &SandboxRecord) -> bool {
        match &rec.pause_cgroup {
            Some(cg) => rec.pause_pid > 0 && alive(rec.pause_pid) && cgroup::procs(cg).contains(&rec.pause_pid),
            None => alive(rec.pause_pid),
        }
    }

    fn sandbox(&self, id: &str) -> Result<SandboxRecord, RuntimeError> {
        let path = self.sandbox_path(id);
        if !path.exists() {
            return Err(RuntimeError::SandboxNotFound(id.to_string()));
        }
        read_json(&path)
    }

    /// A sandbox's state.
    pub fn sandbox_status(&self, id: &str) -> Result<SandboxStatus, RuntimeError> {
        let rec = self.sandbox(id)?;
        let ready = rec.phase == SandboxPhase::Ready && Self::pause_alive(&rec);
        Ok(SandboxStatus { id: rec.id, config: rec.config, ready, pid: rec.pause_pid, ip: rec.ip })
    }

    /// Every sandbox.
    pub fn list_sandboxes(&self) -> Result<Vec<SandboxStatus>, RuntimeError> {
        let mut out = Vec::new();
        for id in self.sandbox_ids()? {
            // A sandbox removed while we list is simply not there.
            if let Ok(st) = self.sandbox_status(&id) {
                out.push(st);
            }
        }
        Ok(out)
    }

    /// Stop every container of the sandbox (with `grace`) and its pause process.
    pub fn stop_pod_sandbox(&self, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        let rec = self.sandbox(id)?;
        for c in self.list_containers(Some(id))? {
            self.stop_container(&c.id, grace)?;
        }
        self.kill_pause(id, Some(&rec))
    }

    /// Kill the sandbox's pause: everything in its cgroup (the pid need not be
    /// known), or, for a sandbox recorded before pauses were placed, its pid.
    fn kill_pause(&self, id: &str, rec: Option<&SandboxRecord>) -> Result<(), RuntimeError> {
        let cg = rec.and_then(|r| r.pause_cgroup.clone()).unwrap_or_else(|| self.pause_cgroup(id));
        if !cgroup::kill_all(&cg) {
            return Err(RuntimeError::Host {
                command: format!("kill cgroup {cg}"),
                reason: "its processes did not exit".into(),
            });
        }
        let Some(rec) = rec.filter(|r| r.pause_cgroup.is_none() && alive(r.pause_pid)) else { return Ok(()) };
        let _ = kill(Pid::from_raw(rec.pause_pid), Signal::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(rec.pause_pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    /// Remove a sandbox in any state — its containers, its pause, its
    /// cgroups, its veth and address, its record — even one whose record
    /// does not parse (its file name is its id, which names the rest).
    pub fn remove_pod_sandbox(&self, id: &str) -> Result<(), RuntimeError> {
        let path = self.sandbox_path(id);
        if !path.exists() {
            return Err(RuntimeError::SandboxNotFound(id.to_string()));
        }
        let rec = read_json::<SandboxRecord>(&path).ok();
        for c in self.list_containers(Some(id))? {
            self.remove_container(&c.id)?;
        }
        self.kill_pause(id, rec.as_ref())?;
        cgroup::remove(&format!("{}/{}", self.cgroup_parent(), id));
        if let Some(net) = &self.network {
            net.detach(id)?;
        }
        std::fs::remove_file(&path).at(&path)
    }

    /// Create a container in a sandbox: its rootfs (overlay of the image's
    /// layers and its own upper directory) and its bundle. Its directory,
    /// named by its id, is made before anything is mounted in it and gets its
    /// `meta.json` last: one without it is a creation cut short, which the
    /// next opening of the runtime unmounts and removes (see [`recovery`]).
    pub fn create_container(&self, sandbox_id: &str, config: ContainerConfig) -> Result<String, RuntimeError> {
        let sandbox = self.sandbox(sandbox_id)?;
        let image = self.images.resolve(&config.image)?;
        let id = new_id();
        let fail = |reason: String| RuntimeError::CreateContainer { id: id.clone(), reason };
        if sandbox.phase != SandboxPhase::Ready {
            return Err(fail(format!("sandbox {sandbox_id} is not ready")));
        }
        let args = resolve_command(&image.config.entrypoint, &image.config.cmd, &config.command, &config.args);
        if args.is_empty() {
            return Err(fail("no command: the image has no entrypoint or cmd and the container gives none".into()));
        }
        let dir = self.container_dir(&id);
        let rootfs = dir.join("rootfs");
        for d in [&rootfs, &dir.join("upper"), &dir.join("work")] {
            std::fs::create_dir_all(d).at(d)?;
        }
        let layers = self.images.layer_dirs(&image)?;
        let lower: Vec<String> = layers.iter().rev().map(|p| p.display().to_string()).collect();
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.join(":"),
            dir.join("upper").display(),
            dir.join("work").display()
        );
        if let Err(e) = nix::mount::mount(
            Some("overlay"),
            &rootfs,
            Some("overlay"),
            nix::mount::MsFlags::empty(),
            Some(opts.as_str()),
        ) {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(fail(format!("overlay mount: {e}")));
        }
        crate::failpoint::crash_point("container-mounted");
        let mut env = image.config.env.clone();
        for (k, v) in &config.env {
            env.retain(|e| !e.starts_with(&format!("{k}=")));
            env.push(format!("{k}={v}"));
        }
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.push("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
        }
        let user = parse_user(&image.config.user);
        let cgroups_path = format!("{}/{}/{}", self.cgroup_parent(), sandbox_id, id);
        let ns = |t: &str, f: &str| (t.to_string(), format!("/proc/{}/ns/{f}", sandbox.pause_pid));
        let spec = BundleSpec {
            args,
            env,
            cwd: if config.working_dir.is_empty() {
                image.config.working_dir.clone()
            } else {
                config.working_dir.clone()
            },
            user,
            rootfs: rootfs.display().to_string(),
            cgroups_path: cgroups_path.clone(),
            join_namespaces: vec![ns("network", "net"), ns("ipc", "ipc"), ns("uts", "uts")],
            mounts: config.mounts.clone(),
            resources: config.resources.clone(),
            hostname: None,
        };
        spec.write(&dir.join("bundle"))?;
        let rec = ContainerRecord {
            id: id.clone(),
            name: config.name,
            sandbox_id: sandbox_id.to_string(),
            image: image.reference,
            image_id: image.manifest_digest,
            created_at: now(),
            cgroups_path,
        };
        write_json(&dir.join("meta.json"), &rec)?;
        Ok(id)
    }

    fn record(&self, id: &str) -> Result<ContainerRecord, RuntimeError> {
        let path = self.container_dir(id).join("meta.json");
        if !path.exists() {
            return Err(RuntimeError::ContainerNotFound(id.to_string()));
        }
        read_json(&path)
    }

    /// Start a created container through its shim.
    pub fn start_container(&self, id: &str) -> Result<(), RuntimeError> {
        self.record(id)?;
        let dir = self.container_dir(id);
        let max = self.cfg.max_log_bytes.to_string();
        let (bundle, state, log, status) = (
            dir.join("bundle").display().to_string(),
            self.state_root().display().to_string(),
            dir.join(format!("{id}.log")).display().to_string(),
            dir.join("status.json").display().to_string(),
        );
        let args = [
            "run",
            "--id",
            id,
            "--bundle",
            &bundle,
            "--state-root",
            &state,
            "--log",
            &log,
            "--status",
            &status,
            "--max-log-bytes",
            &max,
        ];
        self.run_shim(&args).map(|_| ()).map_err(|reason| RuntimeError::StartContainer { id: id.to_string(), reason })
    }

    /// A container's state.
    pub fn container_status(&self, id: &str) -> Result<ContainerStatus, RuntimeError> {
        let rec = self.record(id)?;
        let dir = self.container_dir(id);
        let st: Option<ShimStatus> = shim::read_status(&dir.join("status.json"));
        let state = match &st {
            None => ContainerState::Created,
            Some(s) if s.exit_code.is_some() => ContainerState::Exited,
            Some(_) => ContainerState::Running,
        };
        Ok(ContainerStatus {
            id: rec.id,
            name: rec.name,
            sandbox_id: rec.sandbox_id,
            image: rec.image,
            image_id: rec.image_id,
            state,
            pid: st.as_ref().filter(|_| state == ContainerState::Running).map(|s| s.pid),
            exit_code: st.as_ref().and_then(|s| s.exit_code),
            reason: st.as_ref().and_then(|s| s.reason.clone()),
            created_at: rec.created_at,
            started_at: st.as_ref().map(|s| s.started_at.clone()),
            finished_at: st.as_ref().and_then(|s| s.finished_at.clone()),
            log_path: dir.join(format!("{id}.log")),
        })
    }

    /// Every container, or those of one sandbox.
    pub fn list_containers(&self, sandbox: Option<&str>) -> Result<Vec<ContainerStatus>, RuntimeError> {
        let mut out = Vec::new();
        for id in self.container_ids()? {
            // A container removed while we list is simply not there.
            let Ok(st) = self.container_status(&id) else { continue };
            if sandbox.is_none_or(|s| s == st.sandbox_id) {
                out.push(st);
            }
        }
        Ok(out)
    }

    /// Stop a container: SIGTERM, up to `grace` to exit, then SIGKILL.
    pub fn stop_container(&self, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        let st = self.container_status(id)?;
        let Some(pid) = st.pid else { return Ok(()) };
        let exited = |rt: &Runtime| rt.container_status(id).map(|s| s.state == ContainerState::Exited).unwrap_or(true);
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if exited(self) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !exited(self) {
            if Instant::now() > deadline {
                return Err(RuntimeError::Host {
                    command: format!("kill {pid}"),
                    reason: "the container did not exit".into(),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Remove a container (stopping it first): its rootfs, directories and cgroup.
    pub fn remove_container(&self, id: &str) -> Result<(), RuntimeError> {
        let rec = self.record(id)?;
        self.stop_container(id, Duration::ZERO)?;
        self.remove_container_dir(id, Some(&rec))
    }

    /// Remove a stopped container's rootfs mount, directory, libcontainer
    /// state and cgroup; without its record (one whose creation was cut
    /// short), what its directory holds.
    fn remove_container_dir(&self, id: &str, rec: Option<&ContainerRecord>) -> Result<(), RuntimeError> {
        let dir = self.container_dir(id);
        let _ = nix::mount::umount2(&dir.join("rootfs"), nix::mount::MntFlags::MNT_DETACH);
        // The shim deletes libcontainer's state once the container has exited;
        // this is for a shim that died first.
        let state = self.state_root().join(id);
        if state.join("state.json").exists() {
            if let Ok(mut c) = libcontainer::container::Container::load(state) {
                let _ = c.delete(true);
            }
        }
        if let Some(rec) = rec {
            cgroup::remove(&rec.cgroups_path);
        }
        std::fs::remove_dir_all(&dir).at(&dir)
    }

    /// The container's log in the CRI format.
    pub fn logs(&self, id: &str) -> Result<String, RuntimeError> {
        let st = self.container_status(id)?;
        Ok(std::fs::read_to_string(&st.log_path).unwrap_or_default())
    }

    /// Run a command in a running container.
    pub fn exec(&self, id: &str, cmd: &[String]) -> Result<ExecResult, RuntimeError> {
        self.exec_with_input(id, cmd, None)
    }

    /// Run a command in a running container with `input` as its standard
    /// input (the shim's, which the command inherits; none: `/dev/null`).
    pub fn exec_with_input(
        &self,
        id: &str,
        cmd: &[String],
        input: Option<Vec<u8>>,
    ) -> Result<ExecResult, RuntimeError> {
        let st = self.container_status(id)?;
        if st.state != ContainerState::Running {
            return Err(RuntimeError::Host {
                command: "exec".into(),
                reason: format!("container {id} is not running"),
            });
        }
        let stdin = if input.is_some() { std::process::Stdio::piped() } else { std::process::Stdio::null() };
        let mut child = Command::new(&self.cfg.shim_binary)
            .args(["shim", "exec", "--id", id, "--state-root"])
            .arg(self.state_root())
            .arg("--")
            .args(cmd)
            .stdin(stdin)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .at(&self.cfg.shim_binary)?;
        // Fed from a thread: a command that writes before it has read all its
        // input would otherwise block against us.
        let feeder = child.stdin.take().zip(input).map(|(mut pipe, data)| {
            std::thread::spawn(move || {
                // A command that stops reading early is not an error.
                let _ = std::io::Write::write_all(&mut pipe, &data);
            })
        });
        let out = child.wait_with_output().at(&self.cfg.shim_binary)?;
        if let Some(f) = feeder {
            let _ = f.join();
        }
        Ok(ExecResult { stdout: out.stdout, stderr: out.stderr, exit_code: out.status.code().unwrap_or(255) })
    }

    /// CPU and memory use, from the container's cgroup.
    pub fn stats(&self, id: &str) -> Result<Stats, RuntimeError> {
        let rec = self.record(id)?;
        Ok(cgroup::stats(&rec.cgroups_path))
    }

    /// CPU and memory use of every pod of this node together (its cgroup parent).
    pub fn node_stats(&self) -> Stats {
        cgroup::stats(&self.cgroup_parent())
    }
}

fn parse_user(user: &str) -> (u32, u32) {
    let (u, g) = user.split_once(':').unwrap_or((user, ""));
    let uid = u.parse().unwrap_or(0);
    (uid, g.parse().unwrap_or(uid))
}
