//! The shim: `clusterd shim …`, one process per container (like conmon or
//! containerd-shim). It creates and starts the container with libcontainer —
//! whose create and start `chdir` the whole process, so the multi-threaded node
//! daemon never calls them — holds the container's stdout and stderr and writes
//! them in the CRI log format, reaps it, and records its exit code and whether
//! the kernel's OOM killer ended it. Also `shim exec` (a process in a running
//! container) and `shim pause` (the pod sandbox's namespace holder, born in
//! the cgroup its sandbox record names).
//!
//! The shim detaches (fork + setsid) once the container runs, so containers
//! outlive a restart of the node daemon.
//!
//! Exec'ing the whole clusterd binary costs milliseconds per container, so the
//! runtime re-executes it once as `clusterd shim zygote`: a small
//! single-threaded process that forks a fresh shim for each request on its
//! unix socket (as Android's zygote does for apps). The zygote ends when its
//! owner does (end of file on its stdin); shims it forked live on.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use serde::{Deserialize, Serialize};

/// What the shim records about its container (`status.json`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShimStatus {
    /// The container's init process (host pid).
    pub pid: i32,
    /// The shim's own pid.
    pub shim_pid: i32,
    /// When the container started (RFC 3339, nanoseconds).
    pub started_at: String,
    /// When it exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Its exit code (128 + signal when killed by a signal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// `Completed`, `Error` or `OOMKilled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Write a status file atomically.
pub fn write_status(path: &Path, status: &ShimStatus) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(status).expect("json"))?;
    std::fs::rename(tmp, path)
}

/// Read a status file.
pub fn read_status(path: &Path) -> Option<ShimStatus> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn required(args: &[String], name: &str) -> Result<String, String> {
    arg(args, name).ok_or_else(|| format!("shim: missing {name}"))
}

/// The shim's entry point: `args` are what follows `clusterd shim`.
/// Returns the process exit code.
pub fn main(args: &[String]) -> i32 {
    let res = match args.first().map(String::as_str) {
        Some("run") => run(&args[1..]),
        Some("exec") => exec(&args[1..]),
        Some("pause") => pause(&args[1..]),
        Some("zygote") => zygote(&args[1..]),
        _ => Err("usage: clusterd shim run|exec|pause|zygote ...".into()),
    };
    match res {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

/// Fork; the parent waits for the child's first report line, prints it and
/// exits; the child becomes a session leader and carries on with `f`, which
/// reports through the writer it is given.
fn detach(f: impl FnOnce(&mut std::fs::File) -> i32) -> Result<i32, String> {
    let (r, w) = nix::unistd::pipe().map_err(|e| format!("pipe: {e}"))?;
    match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Parent { .. } => {
            drop(w);
            let mut line = String::new();
            BufReader::new(std::fs::File::from(r)).read_line(&mut line).map_err(|e| e.to_string())?;
            print!("{line}");
            let _ = std::io::stdout().flush();
            Ok(if line.starts_with("ok ") { 0 } else { 1 })
        }
        ForkResult::Child => {
            drop(r);
            let _ = nix::unistd::setsid();
            let devnull = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null").ok();
            if let Some(d) = &devnull {
                for fd in 0..=2 {
                    let _ = nix::unistd::dup2(d.as_raw_fd(), fd);
                }
            }
            let mut report = std::fs::File::from(w);
            std::process::exit(f(&mut report));
        }
    }
}

/// A CRI log writer: `<RFC3339Nano> <stream> F|P <line>`, rotated by size.
struct LogWriter {
    path: PathBuf,
    file: std::fs::File,
    written: u64,
    max_bytes: u64,
}

impl LogWriter {
    fn open(path: &Path, max_bytes: u64) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        let written = file.metadata()?.len();
        Ok(LogWriter { path: path.to_path_buf(), file, written, max_bytes })
    }

    fn line(&mut self, stream: &str, tag: char, text: &[u8]) {
        let mut buf = format!("{} {stream} {tag} ", now()).into_bytes();
        buf.extend_from_slice(text);
        buf.push(b'\n');
        if self.written + buf.len() as u64 > self.max_bytes && self.written > 0 {
            let _ = std::fs::rename(&self.path, self.path.with_extension("log.1"));
            if let Ok(f) = std::fs::OpenOptions::new().create(true).append(true).open(&self.path) {
                self.file = f;
                self.written = 0;
            }
        }
        if self.file.write_all(&buf).is_ok() {
            self.written += buf.len() as u64;
        }
    }
}

const MAX_LINE: usize = 16 * 1024;

/// Copy one of the container's streams into the log; says on `done` when the
/// stream closes.
fn copy_stream(src: OwnedFd, stream: &'static str, log: Arc<Mutex<LogWriter>>, done: std::sync::mpsc::Sender<()>) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(std::fs::File::from(src));
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = match (&mut reader).take(MAX_LINE as u64).read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let full = line.last() == Some(&b'\n');
            let text = if full { &line[..n - 1] } else { &line[..] };
            log.lock().expect("log lock").line(stream, if full { 'F' } else { 'P' }, text);
        }
        let _ = done.send(());
    });
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    nix::unistd::pipe().map_err(|e| format!("pipe: {e}"))
}

fn exit_code(status: WaitStatus) -> i32 {
    match status {
        WaitStatus::Exited(_, code) => code,
        WaitStatus::Signaled(_, sig, _) => 128 + sig as i32,
        _ => 255,
    }
}

fn cgroup_oom_killed(cgroups_path: &str) -> bool {
    let rel = cgroups_path.trim_start_matches('/');
    let v1 = Path::new("/sys/fs/cgroup/memory").join(rel).join("memory.oom_control");
    let v2 = Path::new("/sys/fs/cgroup").join(rel).join("memory.events");
    for p in [v1, v2] {
        if let Ok(text) = std::fs::read_to_string(&p) {
            return text
                .lines()
                .filter_map(|l| l.strip_prefix("oom_kill "))
                .any(|n| n.trim().parse::<u64>().unwrap_or(0) > 0);
        }
    }
    false
}

fn run(args: &[String]) -> Result<i32, String> {
    let id = required(args, "--id")?;
    let bundle = PathBuf::from(required(args, "--bundle")?);
    let state_root = PathBuf::from(required(args, "--state-root")?);
    let log_path = PathBuf::from(required(args, "--log")?);
    let status_path = PathBuf::from(required(args, "--status")?);
    let max_log: u64 = arg(args, "--max-log-bytes").and_then(|v| v.parse().ok()).unwrap_or(10 << 20);
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    let cgroups_path = spec["linux"]["cgroupsPath"].as_str().unwrap_or("").to_string();
    detach(move |report| {
        let log = match LogWriter::open(&log_path, max_log) {
            Ok(l) => Arc::new(Mutex::new(l)),
            Err(e) => {
                let _ = writeln!(report, "err log {}: {e}", log_path.display());
                return 1;
            }
        };
        let ((out_r, out_w), (err_r, err_w)) = match (pipe(), pipe()) {
            (Ok(a), Ok(b)) => (a, b),
            _ => {
                let _ = writeln!(report, "err pipes");
                return 1;
            }
        };
        let built = ContainerBuilder::new(id.clone(), SyscallType::default())
            .with_root_path(&state_root)
            .map(|b| b.with_stdout(out_w).with_stderr(err_w))
            .and_then(|b| b.as_init(&bundle).with_systemd(false).with_detach(true).build());
        let mut container = match built {
            Ok(c) => c,
            Err(e) => {
                let _ = writeln!(report, "err create: {e}");
                return 1;
            }
        };
        if let Err(e) = container.start() {
            let _ = container.delete(true);
            let _ = writeln!(report, "err start: {e}");
            return 1;
        }
        let Some(pid) = container.pid() else {
            let _ = writeln!(report, "err start: no pid");
            return 1;
        };
        let mut status = ShimStatus {
            pid: pid.as_raw(),
            shim_pid: std::process::id() as i32,
            started_at: now(),
            ..Default::default()
        };
        let _ = write_status(&status_path, &status);
        let (done_tx, done) = std::sync::mpsc::channel();
        copy_stream(out_r, "stdout", log.clone(), done_tx.clone());
        copy_stream(err_r, "stderr", log.clone(), done_tx);
        let _ = writeln!(report, "ok {}", pid.as_raw());
        let code = loop {
            match waitpid(pid, None) {
                Ok(s @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => break exit_code(s),
                Ok(_) => continue,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => break 255,
            }
        };
        // Let the copiers drain what the container wrote; a leftover child that
        // holds the pipes open does not keep the shim waiting.
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        for _ in 0..2 {
            if done.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())).is_err() {
                break;
            }
        }
        let oom = cgroup_oom_killed(&cgroups_path);
        status.finished_at = Some(now());
        status.exit_code = Some(code);
        status.reason = Some(
            if oom {
                "OOMKilled"
            } else if code == 0 {
                "Completed"
            } else {
                "Error"
            }
            .into(),
        );
        let _ = write_status(&status_path, &status);
        // The exit is on record; libcontainer's state and cgroup go after it
        // (`remove_container` may do the same at once; both are idempotent).
        let _ = container.delete(true);
        0
    })
}

fn exec(args: &[String]) -> Result<i32, String> {
    let id = required(args, "--id")?;
    let state_root = PathBuf::from(required(args, "--state-root")?);
    let cmd: Vec<String> = match args.iter().position(|a| a == "--") {
        Some(i) => args[i + 1..].to_vec(),
        None => return Err("shim exec: missing -- COMMAND".into()),
    };
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let pid = ContainerBuilder::new(id, SyscallType::default())
        .with_root_path(&state_root)
        .map_err(|e| e.to_string())?
        .with_stdout(out_w)
        .with_stderr(err_w)
        .as_tenant()
        .with_container_args(cmd)
        .with_detach(true)
        .build()
        .map_err(|e| format!("exec: {e}"))?;
    let forward = |src: OwnedFd, mut dst: Box<dyn Write + Send>| {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::fs::File::from(src), &mut dst);
        })
    };
    let a = forward(out_r, Box::new(std::io::stdout()));
    let b = forward(err_r, Box::new(std::io::stderr()));
    let code = loop {
        match waitpid(pid, None) {
            Ok(s @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => break exit_code(s),
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(format!("exec: wait: {e}")),
        }
    };
    let _ = a.join();
    let _ = b.join();
    Ok(code)
}

/// `shim pause --hostname H [--cgroup REL]`: with a cgroup (which the runtime
/// made and recorded first), the shim enters it before it forks, so the pause
/// is born in it and never runs where its node cannot find it.
fn pause(args: &[String]) -> Result<i32, String> {
    let hostname = arg(args, "--hostname").unwrap_or_else(|| "pod".into());
    if let Some(cg) = arg(args, "--cgroup") {
        crate::cgroup::enter(&cg).map_err(|e| format!("err cgroup {cg}: {e}"))?;
    }
    detach(move |report| {
        use nix::sched::{unshare, CloneFlags};
        if let Err(e) = unshare(CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWUTS) {
            let _ = writeln!(report, "err unshare: {e}");
            return 1;
        }
        let _ = nix::unistd::sethostname(&hostname);
        // The new network namespace's loopback starts down.
        let up = std::process::Command::new("ip").args(["link", "set", "lo", "up"]).status();
        if !up.is_ok_and(|s| s.success()) {
            let _ = writeln!(report, "err could not bring loopback up");
            return 1;
        }
        let _ = writeln!(report, "ok {}", std::process::id());
        loop {
            nix::unistd::pause();
        }
    })
}

/// `clusterd shim zygote --socket PATH`: say `ok <pid>` once listening, then
/// fork one shim per connection — the connection carries the shim's arguments
/// (one JSON line) in and its report out — until stdin ends.
fn zygote(args: &[String]) -> Result<i32, String> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    use std::os::unix::fs::PermissionsExt;
    let path = PathBuf::from(required(args, "--socket")?);
    let _ = std::fs::remove_file(&path);
    let listener = std::os::unix::net::UnixListener::bind(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(|e| e.to_string())?;
    // Shims orphaned when the shim that forked them has reported become the
    // zygote's children, and it reaps them when they end (PID 1 may not).
    let _ = nix::sys::prctl::set_child_subreaper(true);
    println!("ok {}", std::process::id());
    let _ = std::io::stdout().flush();
    let stdin = std::io::stdin();
    loop {
        // Reap shims that have reported (their detached children live on).
        while let Ok(status) = waitpid(None, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
            if status == WaitStatus::StillAlive {
                break;
            }
        }
        let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN), PollFd::new(stdin.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(1000u16)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(format!("poll: {e}")),
        }
        let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
        if ready(&fds[1]) {
            // The owner is gone (or wrote to stdin, which it never does).
            return Ok(0);
        }
        if !ready(&fds[0]) {
            continue;
        }
        let Ok((conn, _)) = listener.accept() else { continue };
        match unsafe { fork() } {
            Ok(ForkResult::Child) => {
                drop(listener);
                let mut line = String::new();
                let read = BufReader::new(&conn).read_line(&mut line);
                let args: Vec<String> = match read.ok().and_then(|_| serde_json::from_str(&line).ok()) {
                    Some(a) => a,
                    None => {
                        let _ = writeln!(&conn, "err zygote: unreadable request");
                        std::process::exit(1);
                    }
                };
                set_title(&format!("clusterd shim {}", args.join(" ")));
                for fd in [1, 2] {
                    let _ = nix::unistd::dup2(conn.as_raw_fd(), fd);
                }
                drop(conn);
                let code = main(&args);
                let _ = std::io::stdout().flush();
                std::process::exit(code);
            }
            Ok(ForkResult::Parent { .. }) => drop(conn),
            Err(e) => {
                let _ = writeln!(&conn, "err zygote: fork: {e}");
            }
        }
    }
}

/// The fields of `/proc/<pid>/stat` after the command name (which may hold
/// spaces and parentheses): index 0 is field 3 (the state), index 11 field 14
/// (utime). Empty when the process is gone.
pub fn proc_stat(pid: &str) -> Vec<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().map(String::from).collect()).unwrap_or_default()
}

/// Show a forked shim as what it does (`ps` would otherwise show every shim as
/// the zygote): its command line is rewritten in place, within the zygote's.
fn set_title(title: &str) {
    use std::io::{Seek, SeekFrom};
    let _ = nix::sys::prctl::set_name(&std::ffi::CString::new("clusterd-shim").expect("no NUL"));
    // arg_start and arg_end are fields 48 and 49.
    let fields = proc_stat("self");
    let (Some(Ok(start)), Some(Ok(end))) =
        (fields.get(45).map(|f| f.parse::<u64>()), fields.get(46).map(|f| f.parse::<u64>()))
    else {
        return;
    };
    let room = end.saturating_sub(start) as usize;
    if room < 2 {
        return;
    }
    let mut bytes = vec![0u8; room];
    let n = title.len().min(room - 1);
    bytes[..n].copy_from_slice(&title.as_bytes()[..n]);
    if let Ok(mut mem) = std::fs::OpenOptions::new().write(true).open("/proc/self/mem") {
        if mem.seek(SeekFrom::Start(start)).is_ok() {
            let _ = mem.write_all(&bytes);
        }
    }
}

/// The pid the shim reported (`ok <pid>`), or its error.
pub fn parse_report(out: &str) -> Result<Pid, String> {
    let line = out.lines().next().unwrap_or("").trim();
    match line.strip_prefix("ok ") {
        Some(p) => p.parse::<i32>().map(Pid::from_raw).map_err(|e| e.to_string()),
        None => Err(line
            .strip_prefix("err ")
            .unwrap_or(if line.is_empty() { "the shim reported nothing" } else { line })
            .to_string()),
    }
}
