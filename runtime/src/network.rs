//! Pod networking on one node: a bridge and a pod CIDR per node, a veth per pod
//! with an address from host-local IPAM kept on disk, a default route via the
//! bridge, masquerade for traffic leaving the cluster's pod network (an
//! nftables table named after the node), and host-gw routes to the other
//! nodes' pod CIDRs via their addresses (pod to pod across hosts without NAT).
//! Names derive from the node name, so several nodes share one host. Uses
//! `ip`, `nsenter` and `nft`.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{IoContext, RuntimeError};

/// A node's pod network.
#[derive(Clone, Debug)]
pub struct PodNetwork {
    node: String,
    /// The pod CIDR's network address (a /24).
    base: Ipv4Addr,
    /// The whole cluster's pod network (`a.b.0.0/16`): traffic to it is not masqueraded.
    cluster_cidr: Option<String>,
    ipam_path: PathBuf,
}

/// A route to another node's pod CIDR via that node's address.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PodRoute {
    /// The other node's pod CIDR.
    pub cidr: String,
    /// The other node's address.
    pub via: Ipv4Addr,
}

#[derive(Default, Serialize, Deserialize)]
struct Ipam {
    /// host octet → sandbox id
    allocated: std::collections::BTreeMap<u8, String>,
}

fn short_hash(s: &str) -> String {
    hex::encode(&Sha256::digest(s.as_bytes())[..4])
}

fn run(cmd: &str, args: &[&str]) -> Result<String, RuntimeError> {
    run_with_input(cmd, args, None)
}

/// Run a command, feeding `input` (when given) on its stdin.
fn run_with_input(cmd: &str, args: &[&str], input: Option<&str>) -> Result<String, RuntimeError> {
    use std::io::Write;
    use std::process::Stdio;
    let what = || format!("{cmd} {}", args.join(" "));
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| RuntimeError::Host { command: what(), reason: e.to_string() })?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(text.as_bytes()).map_err(|e| RuntimeError::Host { command: what(), reason: e.to_string() })?;
    }
    let out = child.wait_with_output().map_err(|e| RuntimeError::Host { command: what(), reason: e.to_string() })?;
    if !out.status.success() {
        let detail = match input {
            Some(text) => {
                format!("{} ({})", String::from_utf8_lossy(&out.stderr).trim(), text.trim().replace('\n', "; "))
            }
            None => String::from_utf8_lossy(&out.stderr).trim().to_string(),
        };
        return Err(RuntimeError::Host { command: what(), reason: detail });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl PodNetwork {
    /// The network of `node` with pod CIDR `cidr` (`a.b.c.0/24`), IPAM state under `root`.
    pub fn new(node: &str, cidr: &str, root: &Path) -> Result<PodNetwork, RuntimeError> {
        Self::in_cluster(node, cidr, None, root)
    }

    /// The same, in a cluster whose pod network is `cluster_cidr`: pod-to-pod
    /// traffic across nodes keeps its addresses (no masquerade).
    pub fn in_cluster(
        node: &str,
        cidr: &str,
        cluster_cidr: Option<&str>,
        root: &Path,
    ) -> Result<PodNetwork, RuntimeError> {
        let bad = || RuntimeError::Host {
            command: "pod CIDR".into(),
            reason: format!("\"{cidr}\" is not an a.b.c.0/24 network"),
        };
        let (addr, len) = cidr.split_once('/').ok_or_else(bad)?;
        let base: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        if len != "24" || base.octets()[3] != 0 {
            return Err(bad());
        }
        std::fs::create_dir_all(root).at(root)?;
        if let Some(c) = cluster_cidr {
            let ok = c.split_once('/').is_some_and(|(a, l)| a.parse::<Ipv4Addr>().is_ok() && l.parse::<u8>().is_ok());
            if !ok {
                return Err(RuntimeError::Host {
                    command: "cluster CIDR".into(),
                    reason: format!("\"{c}\" is not an a.b.c.d/len network"),
                });
            }
        }
        Ok(PodNetwork {
            node: node.to_string(),
            base,
            cluster_cidr: cluster_cidr.map(String::from),
            ipam_path: root.join("ipam.json"),
        })
    }

    /// `cdbr-<hash of node>` (interface names have at most 15 characters).
    pub fn bridge(&self) -> String {
        format!("cdbr-{}", short_hash(&self.node))
    }

    /// The nftables table of this node.
    pub fn table(&self) -> String {
        format!("clusterd-{}", self.node)
    }

    fn gateway(&self) -> Ipv4Addr {
        let o = self.base.octets();
        Ipv4Addr::new(o[0], o[1], o[2], 1)
    }

    fn cidr(&self) -> String {
        format!("{}/24", self.base)
    }

    /// Create the bridge, its gateway address and the masquerade rule (idempotent).
    pub fn ensure(&self) -> Result<(), RuntimeError> {
        let br = self.bridge();
        if run("ip", &["link", "show", &br]).is_err() {
            run("ip", &["link", "add", &br, "type", "bridge"])?;
        }
        let gw = format!("{}/24", self.gateway());
        if !run("ip", &["-4", "addr", "show", "dev", &br])?.contains(&gw) {
            run("ip", &["addr", "add", &gw, "dev", &br])?;
        }
        run("ip", &["link", "set", &br, "up"])?;
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").at("/proc/sys/net/ipv4/ip_forward")?;
        // Bridged replies between two pods of this node must pass conntrack,
        // or a Service's DNAT to a pod on the same bridge is never undone.
        let _ = std::fs::write("/proc/sys/net/bridge/bridge-nf-call-iptables", "1");
        let table = self.table();
        let keep = match &self.cluster_cidr {
            Some(c) => format!("ip daddr != {c} "),
            None => String::new(),
        };
        let rules = format!(
            "table ip {table} {{\n chain postrouting {{\n  type nat hook postrouting priority 100; policy accept;\n  ip saddr {} {keep}oifname != \"{br}\" masquerade\n }}\n}}\n",
            self.cidr()
        );
        let _ = run("nft", &["delete", "table", "ip", &table]);
        let file = self.ipam_path.with_file_name("nft.rules");
        std::fs::write(&file, rules).at(&file)?;
        run("nft", &["-f", file.to_str().unwrap_or_default()])?;
        Ok(())
    }

    fn load(&self) -> Ipam {
        std::fs::read(&self.ipam_path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
    }

    fn save(&self, ipam: &Ipam) -> Result<(), RuntimeError> {
        let tmp = self.ipam_path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(ipam).expect("json")).at(&tmp)?;
        std::fs::rename(&tmp, &self.ipam_path).at(&self.ipam_path)
    }

    fn veth(sandbox_id: &str) -> String {
        format!("vcd{}", &short_hash(sandbox_id)[..8])
    }

    /// Give the sandbox whose pause process is `pid` an address: a veth into its
    /// namespace as `eth0`, default route via the bridge. Returns the address.
    pub fn attach(&self, sandbox_id: &str, pid: i32) -> Result<Ipv4Addr, RuntimeError> {
        let mut ipam = self.load();
        let host = (2..=254u8).find(|h| !ipam.allocated.contains_key(h)).ok_or_else(|| RuntimeError::Host {
            command: "ipam".into(),
            reason: format!("no free address in {}", self.cidr()),
        })?;
        ipam.allocated.insert(host, sandbox_id.to_string());
        self.save(&ipam)?;
        let o = self.base.octets();
        let ip = Ipv4Addr::new(o[0], o[1], o[2], host);
        let (veth, peer, pid_s) =
            (Self::veth(sandbox_id), format!("p{}", &short_hash(sandbox_id)[..8]), pid.to_string());
        // Two `ip -batch` runs (host side, then inside the sandbox's network
        // namespace) instead of a process per step.
        let setup = || -> Result<(), RuntimeError> {
            let host = format!(
                "link add {veth} type veth peer name {peer}\nlink set {peer} netns {pid_s}\nlink set {veth} master {} up\n",
                self.bridge()
            );
            run_with_input("ip", &["-batch", "-"], Some(&host))?;
            let inside = format!(
                "link set {peer} name eth0\naddr add {ip}/24 dev eth0\nlink set eth0 up\nroute add default via {}\n",
                self.gateway()
            );
            run_with_input("nsenter", &["-t", &pid_s, "-n", "ip", "-batch", "-"], Some(&inside))?;
            Ok(())
        };
        if let Err(e) = setup() {
            let _ = self.detach(sandbox_id);
            return Err(e);
        }
        Ok(ip)
    }

    /// Remove the sandbox's link and free its address.
    pub fn detach(&self, sandbox_id: &str) -> Result<(), RuntimeError> {
        let _ = run("ip", &["link", "del", &Self::veth(sandbox_id)]);
        let mut ipam = self.load();
        ipam.allocated.retain(|_, s| s != sandbox_id);
        self.save(&ipam)
    }

    fn routes_path(&self) -> PathBuf {
        self.ipam_path.with_file_name("routes.json")
    }

    fn installed_routes(&self) -> Vec<PodRoute> {
        std::fs::read(self.routes_path()).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
    }

    /// Make the host's routes to other nodes' pod CIDRs exactly `routes`: the
    /// ones this node installed before and no longer wants go, the others are
    /// added or replaced (one `ip -batch`). The set installed is kept on disk,
    /// so a restarted node removes what it no longer wants.
    pub fn sync_routes(&self, routes: &[PodRoute]) -> Result<(), RuntimeError> {
        let before = self.installed_routes();
        // Recorded before they are added: a node killed in between still
        // knows every route it may have installed (and `reset` removes them).
        let mut may_exist = before.clone();
        may_exist.extend(routes.iter().filter(|r| !before.contains(r)).cloned());
        if may_exist != before {
            self.save_routes(&may_exist)?;
        }
        let gone: String = before
            .iter()
            .filter(|r| !routes.iter().any(|n| n.cidr == r.cidr))
            .map(|r| format!("route del {} via {}\n", r.cidr, r.via))
            .collect();
        if !gone.is_empty() {
            // A route already gone (its link removed) is no reason to stop.
            let _ = run_with_input("ip", &["-force", "-batch", "-"], Some(&gone));
        }
        let wanted: String = routes.iter().map(|r| format!("route replace {} via {}\n", r.cidr, r.via)).collect();
        if !wanted.is_empty() {
            run_with_input("ip", &["-batch", "-"], Some(&wanted))?;
        }
        self.save_routes(routes)
    }

    fn save_routes(&self, routes: &[PodRoute]) -> Result<(), RuntimeError> {
        use std::io::Write;
        let path = self.routes_path();
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp).at(&tmp)?;
        f.write_all(&serde_json::to_vec(routes).expect("json")).at(&tmp)?;
        f.sync_all().at(&tmp)?;
        std::fs::rename(&tmp, &path).at(&path)
    }

    /// Remove the bridge, the routes to other nodes and the node's nftables table.
    pub fn teardown(&self) -> Result<(), RuntimeError> {
        let _ = self.sync_routes(&[]);
        let _ = run("ip", &["link", "del", &self.bridge()]);
        let _ = run("nft", &["delete", "table", "ip", &self.table()]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_interfaces_and_differ_by_node() {
        let dir = tempfile::tempdir().unwrap();
        let a = PodNetwork::new("node-with-a-very-long-name", "10.244.1.0/24", dir.path()).unwrap();
        let b = PodNetwork::new("other", "10.244.2.0/24", dir.path()).unwrap();
        assert!(a.bridge().len() <= 15);
        assert_ne!(a.bridge(), b.bridge());
        assert!(PodNetwork::veth("0123456789abcdef").len() <= 15);
        assert!(PodNetwork::new("n", "10.244.1.5/24", dir.path()).is_err());
        assert!(PodNetwork::new("n", "10.244.0.0/16", dir.path()).is_err());
    }
}
