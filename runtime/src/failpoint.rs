//! Crash points for tests: a node that must be killed at one exact step (say,
//! between forking a pod's pause process and recording it) is started with
//! `CLUSTERD_FAILPOINT=<name>`, and [`crash_point`] with that name kills the
//! process with SIGKILL, as `kill -9` would, so no destructor or error path
//! runs. Without the variable every crash point does nothing.
//!
//! Names in use:
//! * `pause-started` — a pod's pause process runs and reported its pid; the
//!   sandbox record does not have it yet (see `Runtime::run_pod_sandbox`).
//! * `container-mounted` — a container's rootfs is mounted; its `meta.json`
//!   is not written yet (see `Runtime::create_container`).
//!
//! The raft store reads the same variable for a mode, not a crash point:
//! `power-loss` (see `clusterd_raft::storage::failpoint`).

/// The environment variable naming the crash point to die at.
pub const ENV: &str = "CLUSTERD_FAILPOINT";

/// Die here (SIGKILL to this process) when `CLUSTERD_FAILPOINT` is `name`.
pub fn crash_point(name: &str) {
    if std::env::var_os(ENV).is_some_and(|v| v == name) {
        tracing::error!(failpoint = name, "{ENV}: killing this process");
        let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::Signal::SIGKILL);
        // SIGKILL cannot be caught; this is not reached.
        std::process::abort();
    }
}
