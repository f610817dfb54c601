//! A pod's name resolution, as the kubelet sets it up: its `/etc/resolv.conf`
//! from `dnsPolicy` and `dnsConfig`, and its `/etc/hosts` (localhost, the
//! pod's own name, `hostAliases`). Both are written into the pod's directory
//! on the node and bind-mounted read-only into every container.
//!
//! The contents are pure functions of the pod, the cluster's service network
//! and the host's resolver settings; [`write_files`] only writes them.

use std::path::Path;

use k8s_openapi::api::core::v1::Pod;

use clusterd_runtime::Mount;

use super::spec::ConfigError;
use crate::objects::network::ServiceNetwork;
use crate::util::resolv::ResolvConf;

/// Nameservers a resolver reads at most (glibc's MAXNS); Kubernetes keeps
/// the first three.
pub const MAX_NAMESERVERS: usize = 3;
/// Search domains Kubernetes keeps at most.
pub const MAX_SEARCHES: usize = 32;

fn dedup(list: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in list {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

/// The `resolv.conf` of a pod, as Kubernetes builds it:
/// * `ClusterFirst` (the default) and `ClusterFirstWithHostNet`: the cluster
///   DNS, the search list `<ns>.svc.<domain> svc.<domain> <domain>` followed by
///   the host's, `options ndots:5`; a host-network pod with `ClusterFirst`
///   gets the host's settings instead;
/// * `Default`: the host's settings;
/// * `None`: nothing but `dnsConfig`.
///
/// `dnsConfig` is then merged in: nameservers and searches appended (without
/// duplicates), options overriding those of the same name.
pub fn resolv_conf(pod: &Pod, net: &ServiceNetwork, host: &ResolvConf) -> ResolvConf {
    let spec = pod.spec.as_ref();
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    let policy = spec.and_then(|s| s.dns_policy.as_deref()).unwrap_or("ClusterFirst");
    let domain = &net.domain;
    let cluster = || ResolvConf {
        nameservers: vec![net.dns_ip().to_string()],
        searches: [format!("{ns}.svc.{domain}"), format!("svc.{domain}"), domain.clone()]
            .into_iter()
            .chain(host.searches.iter().cloned())
            .collect(),
        options: vec!["ndots:5".into()],
    };
    let mut conf = match policy {
        "None" => ResolvConf::default(),
        "Default" => host.clone(),
        "ClusterFirst" if host_network => host.clone(),
        _ => cluster(),
    };
    if let Some(extra) = spec.and_then(|s| s.dns_config.as_ref()) {
        conf.nameservers.extend(extra.nameservers.iter().flatten().cloned());
        conf.searches.extend(extra.searches.iter().flatten().cloned());
        for o in extra.options.iter().flatten() {
            let Some(name) = o.name.as_deref().filter(|n| !n.is_empty()) else { continue };
            let rendered = match &o.value {
                Some(v) => format!("{name}:{v}"),
                None => name.to_string(),
            };
            let same = |existing: &String| existing.split(':').next() == Some(name);
            match conf.options.iter_mut().find(|e| same(e)) {
                Some(e) => *e = rendered,
                None => conf.options.push(rendered),
            }
        }
    }
    conf.nameservers = dedup(conf.nameservers);
    conf.nameservers.truncate(MAX_NAMESERVERS);
    conf.searches = dedup(conf.searches);
    conf.searches.truncate(MAX_SEARCHES);
    conf.options = dedup(conf.options);
    conf
}

/// The pod's `/etc/hosts`, as the kubelet writes it: localhost entries, the
/// pod's address with its hostname (and `hostname.subdomain.ns.svc.<domain>`
/// first when the pod has a subdomain), then the `hostAliases`.
pub fn hosts_file(pod: &Pod, pod_ip: &str, net: &ServiceNetwork) -> String {
    let spec = pod.spec.as_ref();
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or("");
    let hostname = spec.and_then(|s| s.hostname.as_deref()).filter(|h| !h.is_empty()).unwrap_or(name);
    let mut out = String::from(concat!(
        "# Kubernetes-managed hosts file.\n",
        "127.0.0.1\tlocalhost\n",
        "::1\tlocalhost ip6-localhost ip6-loopback\n",
        "fe00::0\tip6-localnet\n",
        "fe00::0\tip6-mcastprefix\n",
        "fe00::1\tip6-allnodes\n",
        "fe00::2\tip6-allrouters\n",
    ));
    if !pod_ip.is_empty() {
        match spec.and_then(|s| s.subdomain.as_deref()).filter(|s| !s.is_empty()) {
            Some(sub) => out.push_str(&format!("{pod_ip}\t{hostname}.{sub}.{ns}.svc.{}\t{hostname}\n", net.domain)),
            None => out.push_str(&format!("{pod_ip}\t{hostname}\n")),
        }
    }
    let aliases = spec.and_then(|s| s.host_aliases.as_ref()).filter(|a| !a.is_empty());
    if let Some(aliases) = aliases {
        out.push_str("\n# Entries added by HostAliases.\n");
        for a in aliases {
            let names: Vec<&str> = a.hostnames.iter().flatten().map(String::as_str).collect();
            if !names.is_empty() {
                out.push_str(&format!("{}\t{}\n", a.ip, names.join("\t")));
            }
        }
    }
    out
}

/// Where the files go in the pod's directory.
pub const RESOLV_FILE: &str = "resolv.conf";
/// The pod's hosts file, in its directory.
pub const HOSTS_FILE: &str = "etc-hosts";

/// Write the pod's `resolv.conf` and hosts file into `dir` (only when they
/// changed) and return their read-only mounts.
pub fn write_files(dir: &Path, resolv: &ResolvConf, hosts: &str) -> Result<Vec<Mount>, ConfigError> {
    let io = |e: std::io::Error| ConfigError(format!("writing the pod's DNS files in {}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut mounts = Vec::new();
    for (file, text, at) in
        [(RESOLV_FILE, resolv.render(), "/etc/resolv.conf"), (HOSTS_FILE, hosts.to_string(), "/etc/hosts")]
    {
        let path = dir.join(file);
        super::spec::write_if_changed(&path, text.as_bytes(), 0o644).map_err(io)?;
        mounts.push(Mount {
            host_path: path.to_string_lossy().into_owned(),
            container_path: at.into(),
            read_only: true,
        });
    }
    Ok(mounts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "web-0", "namespace": "shop"}, "spec": spec})).unwrap()
    }

    fn host() -> ResolvConf {
        ResolvConf::parse("nameserver 192.168.1.1\nnameserver 192.168.1.2\nsearch corp.example\noptions edns0\n")
    }

    #[test]
    fn resolv_conf_follows_the_dns_policy() {
        let net = ServiceNetwork::default();
        let cluster = "nameserver 10.96.0.10\nsearch shop.svc.cluster.local svc.cluster.local cluster.local corp.example\noptions ndots:5\n";
        let host_text = "nameserver 192.168.1.1\nnameserver 192.168.1.2\nsearch corp.example\noptions edns0\n";
        let cases: Vec<(serde_json::Value, &str)> = vec![
            (json!({}), cluster),
            (json!({"dnsPolicy": "ClusterFirst"}), cluster),
            (json!({"dnsPolicy": "ClusterFirstWithHostNet", "hostNetwork": true}), cluster),
            (json!({"dnsPolicy": "ClusterFirst", "hostNetwork": true}), host_text),
            (json!({"dnsPolicy": "Default"}), host_text),
            (json!({"dnsPolicy": "None"}), ""),
            (
                json!({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.1.1.1"], "searches": ["a.example"],
                    "options": [{"name": "ndots", "value": "2"}, {"name": "rotate"}]}}),
                "nameserver 1.1.1.1\nsearch a.example\noptions ndots:2 rotate\n",
            ),
            (
                json!({"dnsConfig": {"nameservers": ["10.96.0.10", "1.1.1.1"], "searches": ["svc.cluster.local", "x.example"],
                    "options": [{"name": "ndots", "value": "1"}, {"name": "edns0"}]}}),
                "nameserver 10.96.0.10\nnameserver 1.1.1.1\nsearch shop.svc.cluster.local svc.cluster.local cluster.local corp.example x.example\noptions ndots:1 edns0\n",
            ),
            (
                json!({"dnsPolicy": "Default", "dnsConfig": {"nameservers": ["1.1.1.1", "8.8.8.8"]}}),
                "nameserver 192.168.1.1\nnameserver 192.168.1.2\nnameserver 1.1.1.1\nsearch corp.example\noptions edns0\n",
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(resolv_conf(&pod(spec.clone()), &net, &host()).render(), want, "{spec}");
        }
        let other = ServiceNetwork::parse("10.0.0.0/24", "30000-30010", "corp.test").unwrap();
        assert_eq!(
            resolv_conf(&pod(json!({})), &other, &ResolvConf::default()).render(),
            "nameserver 10.0.0.10\nsearch shop.svc.corp.test svc.corp.test corp.test\noptions ndots:5\n"
        );
    }

    #[test]
    fn hosts_file_names_the_pod_and_its_aliases() {
        let net = ServiceNetwork::default();
        let head = "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n";
        let cases: Vec<(serde_json::Value, String)> = vec![
            (json!({}), format!("{head}10.244.1.5\tweb-0\n")),
            (json!({"hostname": "db"}), format!("{head}10.244.1.5\tdb\n")),
            (
                json!({"subdomain": "web"}),
                format!("{head}10.244.1.5\tweb-0.web.shop.svc.cluster.local\tweb-0\n"),
            ),
            (
                json!({"hostAliases": [{"ip": "127.0.0.1", "hostnames": ["foo.local", "bar.local"]}, {"ip": "10.1.2.3", "hostnames": ["foo.remote"]}]}),
                format!("{head}10.244.1.5\tweb-0\n\n# Entries added by HostAliases.\n127.0.0.1\tfoo.local\tbar.local\n10.1.2.3\tfoo.remote\n"),
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(hosts_file(&pod(spec.clone()), "10.244.1.5", &net), want, "{spec}");
        }
    }

    #[test]
    fn the_files_are_written_once_and_mounted_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let resolv = ResolvConf::parse("nameserver 10.96.0.10\n");
        let mounts = write_files(dir.path(), &resolv, "127.0.0.1\tlocalhost\n").unwrap();
        let seen: Vec<(&str, bool, String)> = mounts
            .iter()
            .map(|m| (m.container_path.as_str(), m.read_only, std::fs::read_to_string(&m.host_path).unwrap()))
            .collect();
        assert_eq!(
            seen,
            vec![
                ("/etc/resolv.conf", true, "nameserver 10.96.0.10\n".to_string()),
                ("/etc/hosts", true, "127.0.0.1\tlocalhost\n".to_string())
            ]
        );
    }
}
