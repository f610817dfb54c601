//! The host's resolver settings (`resolv.conf(5)`): the DNS server forwards
//! names outside the cluster to the host's nameservers, and the kubelet gives
//! pods with `dnsPolicy: Default` (or on the host network) the host's
//! settings. Only the three keywords pods and forwarding need are read;
//! `domain` counts as a one-entry `search`, as glibc treats it.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

/// Where the host's resolver settings are.
pub const HOST_RESOLV_CONF: &str = "/etc/resolv.conf";

/// Where systemd-resolved keeps the real upstream servers when
/// `/etc/resolv.conf` points at its loopback stub (`127.0.0.53`), which a pod
/// in its own network namespace cannot reach.
pub const RESOLVED_UPSTREAM_CONF: &str = "/run/systemd/resolve/resolv.conf";

/// What a `resolv.conf` says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResolvConf {
    /// `nameserver` lines, in order.
    pub nameservers: Vec<String>,
    /// The `search` list (the last `search` or `domain` line wins, as in glibc).
    pub searches: Vec<String>,
    /// `options` entries (`ndots:5`, `edns0`, …), in order.
    pub options: Vec<String>,
}

impl ResolvConf {
    /// Parse the text of a `resolv.conf`; unknown lines and comments are skipped.
    pub fn parse(text: &str) -> ResolvConf {
        let mut out = ResolvConf::default();
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or("");
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => out.nameservers.extend(words.next().map(String::from)),
                Some("search") | Some("domain") => out.searches = words.map(String::from).collect(),
                Some("options") => out.options.extend(words.map(String::from)),
                _ => {}
            }
        }
        out
    }

    /// Read a file; a missing or unreadable one says nothing (no servers).
    pub fn read(path: &Path) -> ResolvConf {
        std::fs::read_to_string(path).map(|t| ResolvConf::parse(&t)).unwrap_or_default()
    }

    /// The host's settings as pods should see them: `path`, unless it only
    /// names loopback servers and systemd-resolved's upstream file exists
    /// (then that one, as kubeadm points kubelets at it).
    pub fn for_pods(path: &Path) -> ResolvConf {
        let conf = ResolvConf::read(path);
        let loopback_only = !conf.nameservers.is_empty()
            && conf.nameservers.iter().all(|n| n.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()));
        let upstream = PathBuf::from(RESOLVED_UPSTREAM_CONF);
        if loopback_only && path == Path::new(HOST_RESOLV_CONF) && upstream.is_file() {
            return ResolvConf::read(&upstream);
        }
        conf
    }

    /// The nameservers as socket addresses (port 53); lines that are not IP
    /// addresses (an IPv6 scope, a typo) are left out.
    pub fn servers(&self) -> Vec<SocketAddr> {
        self.nameservers.iter().filter_map(|n| n.parse::<IpAddr>().ok()).map(|ip| SocketAddr::new(ip, 53)).collect()
    }

    /// The file's text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for n in &self.nameservers {
            out.push_str(&format!("nameserver {n}\n"));
        }
        if !self.searches.is_empty() {
            out.push_str(&format!("search {}\n", self.searches.join(" ")));
        }
        if !self.options.is_empty() {
            out.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_resolvers_read() {
        /// (file, nameservers, searches, options)
        type Case<'a> = (&'a str, &'a [&'a str], &'a [&'a str], &'a [&'a str]);
        let cases: &[Case] = &[
            ("nameserver 1.1.1.1\nnameserver 8.8.8.8\n", &["1.1.1.1", "8.8.8.8"], &[], &[]),
            (
                "# generated\nnameserver 10.0.0.2 # router\nsearch a.example b.example\noptions ndots:2 edns0\n",
                &["10.0.0.2"],
                &["a.example", "b.example"],
                &["ndots:2", "edns0"],
            ),
            ("domain corp.example\nsearch x.example\n", &[], &["x.example"], &[]),
            ("search x.example\ndomain corp.example\n", &[], &["corp.example"], &[]),
            ("  nameserver   ::1\nsortlist 10.0.0.0\n", &["::1"], &[], &[]),
            ("", &[], &[], &[]),
        ];
        for (text, ns, search, opts) in cases {
            let c = ResolvConf::parse(text);
            assert_eq!(
                (c.nameservers.as_slice(), c.searches.as_slice(), c.options.as_slice()),
                (
                    &ns.iter().map(|s| s.to_string()).collect::<Vec<_>>()[..],
                    &search.iter().map(|s| s.to_string()).collect::<Vec<_>>()[..],
                    &opts.iter().map(|s| s.to_string()).collect::<Vec<_>>()[..]
                ),
                "{text:?}"
            );
        }
    }

    #[test]
    fn renders_and_reads_back() {
        let c = ResolvConf {
            nameservers: vec!["10.96.0.10".into()],
            searches: vec!["ns.svc.cluster.local".into(), "svc.cluster.local".into()],
            options: vec!["ndots:5".into()],
        };
        assert_eq!(
            c.render(),
            "nameserver 10.96.0.10\nsearch ns.svc.cluster.local svc.cluster.local\noptions ndots:5\n"
        );
        assert_eq!(ResolvConf::parse(&c.render()), c);
        assert_eq!(
            ResolvConf::parse("nameserver fe80::1%eth0\nnameserver 9.9.9.9").servers(),
            vec!["9.9.9.9:53".parse().unwrap()]
        );
    }
}
