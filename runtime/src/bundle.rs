//! OCI bundles: the `config.json` libcontainer runs, built from what the kubelet
//! asks for and what the image says.

use std::path::Path;

use serde_json::{json, Value};

use crate::error::{IoContext, RuntimeError};

/// Capabilities a container gets by default (Docker's and containerd's set).
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// A bind mount of a host directory into the container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// Host path.
    pub host_path: String,
    /// Path in the container.
    pub container_path: String,
    /// Mounted read-only.
    pub read_only: bool,
}

/// CPU and memory limits.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    /// cpu.shares (from the CPU request, 1024 per core).
    pub cpu_shares: Option<u64>,
    /// CFS quota in µs per 100 ms period (from the CPU limit).
    pub cpu_quota: Option<i64>,
    /// Memory limit in bytes.
    pub memory_limit: Option<i64>,
}

impl Resources {
    /// Kubernetes' conversion: requests in millicores → shares, limits → quota.
    pub fn from_millis(
        cpu_request_millis: Option<u64>,
        cpu_limit_millis: Option<u64>,
        memory_limit: Option<i64>,
    ) -> Self {
        Resources {
            cpu_shares: cpu_request_millis.map(|m| (m * 1024 / 1000).max(2)),
            cpu_quota: cpu_limit_millis.map(|m| (m as i64 * 100_000 / 1000).max(1000)),
            memory_limit,
        }
    }
}

/// Everything needed to write a container's `config.json`.
#[derive(Clone, Debug, Default)]
pub struct BundleSpec {
    /// The command (entrypoint + args, already resolved against the image).
    pub args: Vec<String>,
    /// Environment, `K=V`.
    pub env: Vec<String>,
    /// Working directory.
    pub cwd: String,
    /// uid and gid.
    pub user: (u32, u32),
    /// Absolute path of the root filesystem.
    pub rootfs: String,
    /// The cgroup path, `/clusterd-<node>/<pod>/<container>`.
    pub cgroups_path: String,
    /// Namespaces to join: (`network`|`ipc`|`uts`, `/proc/<pid>/ns/...`).
    pub join_namespaces: Vec<(String, String)>,
    /// Volumes.
    pub mounts: Vec<Mount>,
    /// Limits.
    pub resources: Resources,
    /// Hostname, if the container has its own UTS namespace.
    pub hostname: Option<String>,
}

fn mount(dest: &str, ty: &str, source: &str, options: &[&str]) -> Value {
    json!({"destination": dest, "type": ty, "source": source, "options": options})
}

impl BundleSpec {
    /// The OCI runtime spec.
    pub fn to_spec(&self) -> Value {
        let mut mounts = vec![
            mount("/proc", "proc", "proc", &[]),
            mount("/dev", "tmpfs", "tmpfs", &["nosuid", "strictatime", "mode=755", "size=65536k"]),
            mount("/dev/pts", "devpts", "devpts", &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]),
            mount("/dev/shm", "tmpfs", "shm", &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
            mount("/dev/mqueue", "mqueue", "mqueue", &["nosuid", "noexec", "nodev"]),
            mount("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev", "ro"]),
        ];
        for m in &self.mounts {
            let mut opts = vec!["rbind", "rprivate"];
            if m.read_only {
                opts.push("ro");
            }
            mounts.push(mount(&m.container_path, "bind", &m.host_path, &opts));
        }
        let mut namespaces = vec![json!({"type": "pid"}), json!({"type": "mount"})];
        for ty in ["network", "ipc", "uts"] {
            match self.join_namespaces.iter().find(|(t, _)| t == ty) {
                Some((_, path)) => namespaces.push(json!({"type": ty, "path": path})),
                None => namespaces.push(json!({"type": ty})),
            }
        }
        let mut resources = json!({"devices": [{"allow": false, "access": "rwm"}]});
        if let Some(limit) = self.resources.memory_limit {
            resources["memory"] = json!({"limit": limit});
        }
        let mut cpu = serde_json::Map::new();
        if let Some(s) = self.resources.cpu_shares {
            cpu.insert("shares".into(), json!(s));
        }
        if let Some(q) = self.resources.cpu_quota {
            cpu.insert("quota".into(), json!(q));
            cpu.insert("period".into(), json!(100_000));
        }
        if !cpu.is_empty() {
            resources["cpu"] = Value::Object(cpu);
        }
        let caps = DEFAULT_CAPS;
        let mut spec = json!({
            "ociVersion": "1.0.2",
            "process": {
                "terminal": false,
                "user": {"uid": self.user.0, "gid": self.user.1},
                "args": self.args,
                "env": self.env,
                "cwd": if self.cwd.is_empty() { "/" } else { self.cwd.as_str() },
                "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
                "noNewPrivileges": false,
            },
            "root": {"path": self.rootfs, "readonly": false},
            "mounts": mounts,
            "linux": {
                "cgroupsPath": self.cgroups_path,
                "resources": resources,
                "namespaces": namespaces,
                "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug", "/sys/firmware"],
                "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
            },
        });
        if let Some(h) = &self.hostname {
            spec["hostname"] = json!(h);
        }
        spec
    }

    /// Write `dir/config.json`.
    pub fn write(&self, dir: &Path) -> Result<(), RuntimeError> {
        std::fs::create_dir_all(dir).at(dir)?;
        let path = dir.join("config.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&self.to_spec()).expect("json")).at(&path)
    }
}

/// Kubernetes' rule: `command` replaces ENTRYPOINT (and drops CMD), `args`
/// replaces CMD.
pub fn resolve_command(entrypoint: &[String], cmd: &[String], command: &[String], args: &[String]) -> Vec<String> {
    match (command.is_empty(), args.is_empty()) {
        (false, false) => command.iter().chain(args).cloned().collect(),
        (false, true) => command.to_vec(),
        (true, false) => entrypoint.iter().chain(args).cloned().collect(),
        (true, true) => entrypoint.iter().chain(cmd).cloned().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn command_resolution_follows_kubernetes() {
        let (ep, cmd) = (v(&["/ep"]), v(&["a"]));
        assert_eq!(resolve_command(&ep, &cmd, &[], &[]), v(&["/ep", "a"]));
        assert_eq!(resolve_command(&ep, &cmd, &[], &v(&["b"])), v(&["/ep", "b"]));
        assert_eq!(resolve_command(&ep, &cmd, &v(&["/c"]), &[]), v(&["/c"]));
        assert_eq!(resolve_command(&ep, &cmd, &v(&["/c"]), &v(&["x"])), v(&["/c", "x"]));
    }

    #[test]
    fn limits_reach_the_spec() {
        let spec = BundleSpec {
            args: v(&["sh"]),
            rootfs: "/r".into(),
            cgroups_path: "/clusterd-n1/p/c".into(),
            resources: Resources::from_millis(Some(500), Some(250), Some(64 << 20)),
            join_namespaces: vec![("network".into(), "/proc/1/ns/net".into())],
            ..Default::default()
        }
        .to_spec();
        assert_eq!(spec["linux"]["resources"]["cpu"]["shares"], 512);
        assert_eq!(spec["linux"]["resources"]["cpu"]["quota"], 25_000);
        assert_eq!(spec["linux"]["resources"]["memory"]["limit"], 64 << 20);
        let ns = spec["linux"]["namespaces"].as_array().unwrap();
        assert!(ns.contains(&json!({"type": "network", "path": "/proc/1/ns/net"})));
        assert!(spec["process"]["capabilities"].get("inheritable").is_none());
    }
}
