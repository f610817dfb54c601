//! The cluster's networks, as `init` recorded them in the cluster settings:
//! the pod network (`--cluster-cidr`, split per node by node IPAM) and the
//! service network: the ClusterIP range (`--service-cidr`), the NodePort range
//! (`--service-node-port-range`) and the DNS domain (`--cluster-domain`).
//! The registry allocates from it, the proxy and DNS serve it, the kubelet
//! writes pods' resolv.conf from it. Clusters made before these settings
//! existed get Kubernetes' defaults.

use std::net::Ipv4Addr;
use std::ops::RangeInclusive;

use serde_json::{json, Value};

/// The cluster's pod network when none was configured (a /24 of it per node).
pub const DEFAULT_CLUSTER_CIDR: &str = "10.244.0.0/16";
/// The ClusterIP range when none was configured.
pub const DEFAULT_SERVICE_CIDR: &str = "10.96.0.0/16";
/// The NodePort range when none was configured.
pub const DEFAULT_NODE_PORT_RANGE: &str = "30000-32767";
/// The cluster's DNS domain when none was configured.
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";

/// A service network setting that cannot be used; the message names the flag.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{flag}: Invalid value: \"{value}\": {reason}")]
pub struct BadServiceNetwork {
    /// The flag (or settings field).
    pub flag: &'static str,
    /// What was given.
    pub value: String,
    /// Why it is refused.
    pub reason: &'static str,
}

/// The service network of a cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceNetwork {
    /// The network address of the ClusterIP range.
    pub base: Ipv4Addr,
    /// Its prefix length (12–28).
    pub prefix: u8,
    /// NodePorts.
    pub node_ports: RangeInclusive<u16>,
    /// The DNS domain (`cluster.local`).
    pub domain: String,
}

impl Default for ServiceNetwork {
    fn default() -> Self {
        ServiceNetwork::parse(DEFAULT_SERVICE_CIDR, DEFAULT_NODE_PORT_RANGE, DEFAULT_CLUSTER_DOMAIN)
            .expect("the defaults parse")
    }
}

impl ServiceNetwork {
    /// Parse the three settings (`a.b.c.d/len`, `lo-hi`, a DNS domain).
    pub fn parse(cidr: &str, node_ports: &str, domain: &str) -> Result<Self, BadServiceNetwork> {
        let bad_cidr = |reason| BadServiceNetwork { flag: "--service-cidr", value: cidr.into(), reason };
        let (addr, len) = cidr.split_once('/').ok_or_else(|| bad_cidr("must be an IPv4 network a.b.c.d/len"))?;
        let base: Ipv4Addr = addr.parse().map_err(|_| bad_cidr("must be an IPv4 network a.b.c.d/len"))?;
        let prefix: u8 = len.parse().map_err(|_| bad_cidr("must be an IPv4 network a.b.c.d/len"))?;
        if !(12..=28).contains(&prefix) {
            return Err(bad_cidr("the prefix length must be between 12 and 28"));
        }
        if u32::from(base) & !mask(prefix) != 0 {
            return Err(bad_cidr("must be a network address (host bits zero)"));
        }
        let bad_ports =
            |reason| BadServiceNetwork { flag: "--service-node-port-range", value: node_ports.into(), reason };
        let (lo, hi) = node_ports.split_once('-').ok_or_else(|| bad_ports("must be a port range lo-hi"))?;
        let lo: u16 = lo.trim().parse().map_err(|_| bad_ports("must be a port range lo-hi"))?;
        let hi: u16 = hi.trim().parse().map_err(|_| bad_ports("must be a port range lo-hi"))?;
        if lo == 0 || lo > hi {
            return Err(bad_ports("must be a non-empty range of ports 1-65535"));
        }
        let domain = domain.trim_end_matches('.');
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if domain.is_empty() || !domain.split('.').all(label_ok) {
            return Err(BadServiceNetwork {
                flag: "--cluster-domain",
                value: domain.into(),
                reason: "must be a DNS domain of lower-case labels",
            });
        }
        Ok(ServiceNetwork { base, prefix, node_ports: lo..=hi, domain: domain.into() })
    }

    /// The service network recorded in the cluster settings (defaults for
    /// what is missing or unusable).
    pub fn from_settings(settings: &Value) -> Self {
        let get = |field: &str, default: &'static str| -> String {
            settings.get(field).and_then(Value::as_str).unwrap_or(default).to_string()
        };
        ServiceNetwork::parse(
            &get("serviceCIDR", DEFAULT_SERVICE_CIDR),
            &get("serviceNodePortRange", DEFAULT_NODE_PORT_RANGE),
            &get("clusterDomain", DEFAULT_CLUSTER_DOMAIN),
        )
        .unwrap_or_default()
    }

    /// The fields `init` writes into the cluster settings.
    pub fn settings(&self) -> Value {
        json!({
            "serviceCIDR": self.cidr(),
            "serviceNodePortRange": format!("{}-{}", self.node_ports.start(), self.node_ports.end()),
            "clusterDomain": self.domain,
        })
    }

    /// `a.b.c.d/len`.
    pub fn cidr(&self) -> String {
        format!("{}/{}", self.base, self.prefix)
    }

    /// How many addresses can be given to Services (network and broadcast
    /// addresses excluded).
    pub fn size(&self) -> u32 {
        (1u32 << (32 - self.prefix)) - 2
    }

    /// The `i`-th assignable address (0 is the first usable one), if in range.
    pub fn nth(&self, i: u32) -> Option<Ipv4Addr> {
        (i < self.size()).then(|| Ipv4Addr::from(u32::from(self.base) + 1 + i))
    }

    /// Whether `ip` is an assignable address of the range.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let (ip, base) = (u32::from(ip), u32::from(self.base));
        ip & mask(self.prefix) == base && ip != base && ip != base | !mask(self.prefix)
    }

    /// The `kubernetes` Service's address: the first usable one.
    pub fn api_ip(&self) -> Ipv4Addr {
        self.nth(0).expect("a /28 has room")
    }

    /// The cluster DNS Service's address: `.10` of the range.
    pub fn dns_ip(&self) -> Ipv4Addr {
        self.nth(9).expect("a /28 has room")
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_kubernetes_ones() {
        let n = ServiceNetwork::default();
        assert_eq!(n.api_ip(), Ipv4Addr::new(10, 96, 0, 1));
        assert_eq!(n.dns_ip(), Ipv4Addr::new(10, 96, 0, 10));
        assert_eq!(n.node_ports, 30000..=32767);
        assert_eq!(n.domain, "cluster.local");
        assert_eq!(n.size(), 65534);
        assert_eq!(n.nth(65533), Some(Ipv4Addr::new(10, 96, 255, 254)));
        assert_eq!(n.nth(65534), None);
        assert_eq!(ServiceNetwork::from_settings(&json!({})), n);
        assert_eq!(ServiceNetwork::from_settings(&n.settings()), n);
    }

    #[test]
    fn contains_excludes_network_and_broadcast() {
        let n = ServiceNetwork::parse("10.0.0.0/24", "30000-30010", "example.test").unwrap();
        assert!(n.contains(Ipv4Addr::new(10, 0, 0, 1)));
        assert!(n.contains(Ipv4Addr::new(10, 0, 0, 254)));
        assert!(!n.contains(Ipv4Addr::new(10, 0, 0, 0)));
        assert!(!n.contains(Ipv4Addr::new(10, 0, 0, 255)));
        assert!(!n.contains(Ipv4Addr::new(10, 0, 1, 1)));
    }

    #[test]
    fn bad_settings_name_their_flag() {
        let cases = [
            ("10.96.0.0", "30000-32767", "cluster.local", "--service-cidr"),
            ("10.96.0.1/16", "30000-32767", "cluster.local", "--service-cidr"),
            ("10.96.0.0/30", "30000-32767", "cluster.local", "--service-cidr"),
            ("10.96.0.0/16", "32767-30000", "cluster.local", "--service-node-port-range"),
            ("10.96.0.0/16", "30000", "cluster.local", "--service-node-port-range"),
            ("10.96.0.0/16", "30000-32767", "Cluster_Local", "--cluster-domain"),
        ];
        for (cidr, ports, domain, flag) in cases {
            let err = ServiceNetwork::parse(cidr, ports, domain).unwrap_err();
            assert_eq!(err.flag, flag, "{cidr} {ports} {domain}");
            assert!(err.to_string().starts_with(flag));
        }
    }
}
