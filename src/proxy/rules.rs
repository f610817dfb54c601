//! What one node's proxy wants in the kernel, decided from Services and
//! Endpoints alone: the nftables ruleset as data (chains with their rule lines,
//! maps and sets with their elements). Nothing here runs `nft`; keeping the
//! decision pure lets the diff module compare two of them and send the kernel
//! only what changed, and lets the tests read the rules a Service yields.
//!
//! The shape follows kube-proxy's nftables mode. One table per node
//! (`ip clusterd-proxy-<node>`, several nodes may share a host):
//!
//! * base chains: `nat-prerouting` / `nat-output` (dstnat: the DNS redirect,
//!   then `services`), `nat-postrouting` (srcnat: masquerade packets marked
//!   for it), `filter-input` / `filter-forward` / `filter-output` (before
//!   dstnat: reject new connections to Services without endpoints);
//! * `services`: one verdict-map lookup for ClusterIPs (`service-ips`:
//!   address . protocol . port → the Service port's chain) and one for
//!   NodePorts on every local address (`service-nodeports`);
//! * a chain per Service port (`svc-…`, ClusterIP traffic; `ext-…`, NodePort
//!   traffic) that marks for masquerade what needs it, then DNATs to an
//!   endpoint picked at random (`dnat … to numgen random mod N map { … }`);
//! * with `sessionAffinity: ClientIP` only, a chain per endpoint (`ep-…`) and
//!   a set of its recent clients (`aff-…`): the Service port's chain sends a
//!   known client back to its endpoint, else picks one with `numgen … vmap`.
//!
//! One difference from kube-proxy, for speed: kube-proxy gives every endpoint
//! a chain (for the hairpin check). `nft` (1.0.6 here) reads every chain of
//! the table before it applies even a one-line change, which at 1,000
//! Services × 10 endpoints (12,000 chains) cost ~50 ms per transaction. Here
//! hairpin traffic (a pod reaching itself through its Service) is found in
//! `nat-postrouting` instead, by one lookup of `source . destination` in the
//! `hairpin` set of this node's endpoints (`ip . ip`), so only Services with
//! affinity need endpoint chains.
//!
//! Chain and set names are a stable hash of what they stand for (the Service
//! port, the endpoint), so an unchanged Service keeps its names across
//! rebuilds and restarts, and a diff touches only what changed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use k8s_openapi::api::core::v1::{Endpoints, Service};
use sha2::{Digest, Sha256};

/// The packet mark bit that asks `nat-postrouting` to masquerade.
pub const MASQUERADE_MARK: u32 = 0x4000;
/// Kubernetes' default ClientIP affinity timeout (3 hours).
pub const DEFAULT_AFFINITY_SECONDS: i32 = 10800;

/// The ClusterIP verdict map.
pub const SERVICE_IPS: &str = "service-ips";
/// The NodePort verdict map.
pub const SERVICE_NODEPORTS: &str = "service-nodeports";
/// ClusterIPs whose Service has no endpoint to send to (reject or drop).
pub const NO_ENDPOINT_SERVICES: &str = "no-endpoint-services";
/// NodePorts whose Service has no endpoint to send to (reject or drop).
pub const NO_ENDPOINT_NODEPORTS: &str = "no-endpoint-nodeports";
/// `ip . ip` for this node's endpoints: a connection DNATed back to its own
/// source (a pod reaching itself through its Service) is masqueraded.
pub const HAIRPIN: &str = "hairpin";

const MARK_CHAIN: &str = "mark-for-masquerade";
const REJECT_CHAIN: &str = "reject-chain";
const SERVICES_CHAIN: &str = "services";
const SERVICE_CHECK: &str = "service-endpoints-check";
const NODEPORT_CHECK: &str = "nodeport-endpoints-check";
const SERVICE_KEY_TYPE: &str = "type ipv4_addr . inet_proto . inet_service : verdict;";
const NODEPORT_KEY_TYPE: &str = "type inet_proto . inet_service : verdict;";

/// An IPv4 network `a.b.c.d/len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    /// The network address.
    pub base: Ipv4Addr,
    /// The prefix length (0–32).
    pub prefix: u8,
}

/// A network that is not `a.b.c.d/len`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("\"{0}\" is not an IPv4 network a.b.c.d/len")]
pub struct BadCidr(pub String);

impl FromStr for Cidr {
    type Err = BadCidr;

    fn from_str(s: &str) -> Result<Self, BadCidr> {
        let bad = || BadCidr(s.to_string());
        let (addr, len) = s.split_once('/').ok_or_else(bad)?;
        let base: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = len.parse().map_err(|_| bad())?;
        if prefix > 32 {
            return Err(bad());
        }
        Ok(Cidr { base, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

/// What the rules depend on besides the objects: who this node is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeView {
    /// The node's name (matched against endpoints' `nodeName` for the
    /// `Local` traffic policies).
    pub name: String,
    /// The nftables table (`clusterd-proxy-<node>`).
    pub table: String,
    /// The pod network: traffic to a ClusterIP from outside it is masqueraded.
    pub cluster_cidr: Cidr,
    /// The cluster DNS Service address and the node-local DNS server's port:
    /// `dns_ip:53` (UDP and TCP) is redirected to that port.
    pub dns: Option<(Ipv4Addr, u16)>,
}

/// A chain: its declaration (hook and policy for base chains, a comment for
/// the others) and its rules, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chain {
    /// What goes between the braces of `add chain … { }`.
    pub decl: String,
    /// The rule lines.
    pub rules: Vec<String>,
}

/// A named set or map with its static elements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Collection {
    /// A map (elements have values) rather than a set.
    pub map: bool,
    /// What goes between the braces of `add map|set … { }`.
    pub spec: String,
    /// Element key → value (empty for sets).
    pub elements: BTreeMap<String, String>,
}

/// One node's desired nftables table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ruleset {
    /// The table's name (family `ip`).
    pub table: String,
    /// Chains by name.
    pub chains: BTreeMap<String, Chain>,
    /// Sets and maps by name.
    pub sets: BTreeMap<String, Collection>,
}

impl Ruleset {
    /// How many lines the table has when written out in full (declarations,
    /// rules, one per element).
    pub fn lines(&self) -> usize {
        let chains: usize = self.chains.values().map(|c| 1 + c.rules.len()).sum();
        let sets: usize = self.sets.values().map(|s| 1 + s.elements.len()).sum();
        1 + chains + sets
    }
}

/// `prefix-<16 hex digits of sha256(id)>`: short, stable, distinct.
fn hashed(prefix: &str, id: &str) -> String {
    format!("{prefix}-{}", hex::encode(&Sha256::digest(id.as_bytes())[..8]))
}

/// One ready endpoint of a Service port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Endpoint {
    ip: Ipv4Addr,
    port: u16,
    local: bool,
}

/// The ready endpoints of the Service port named `port_name` with `protocol`
/// (Kubernetes matches an Endpoints port to a Service port by name), sorted.
fn ready_endpoints(eps: Option<&Endpoints>, port_name: &str, protocol: &str, node: &str) -> Vec<Endpoint> {
    let mut out = BTreeSet::new();
    for subset in eps.and_then(|e| e.subsets.as_ref()).into_iter().flatten() {
        let Some(port) = subset.ports.iter().flatten().find(|p| {
            p.name.as_deref().unwrap_or("") == port_name && p.protocol.as_deref().unwrap_or("TCP") == protocol
        }) else {
            continue;
        };
        let Ok(port) = u16::try_from(port.port) else { continue };
        if port == 0 {
            continue;
        }
        for addr in subset.addresses.iter().flatten() {
            let Ok(ip) = addr.ip.parse::<Ipv4Addr>() else { continue };
            out.insert(Endpoint { ip, port, local: addr.node_name.as_deref() == Some(node) });
        }
    }
    out.into_iter().collect()
}

/// Builds the ruleset, one Service port at a time.
struct Builder<'a> {
    node: &'a NodeView,
    rs: Ruleset,
}

impl<'a> Builder<'a> {
    fn new(node: &'a NodeView) -> Self {
        Builder { node, rs: Ruleset { table: node.table.clone(), ..Ruleset::default() } }
    }

    fn chain(&mut self, name: &str, decl: String, rules: Vec<String>) {
        self.rs.chains.insert(name.to_string(), Chain { decl, rules });
    }

    fn element(&mut self, set: &str, key: String, value: String) {
        if let Some(s) = self.rs.sets.get_mut(set) {
            s.elements.insert(key, value);
        }
    }

    fn collection(&mut self, name: &str, map: bool, spec: &str) {
        self.rs.sets.insert(name.to_string(), Collection { map, spec: spec.to_string(), elements: BTreeMap::new() });
    }

    /// The chains, maps and sets every node has, whatever the Services.
    fn skeleton(&mut self) {
        let base = |hook: &str, kind: &str, priority: i32| {
            format!("type {kind} hook {hook} priority {priority}; policy accept;")
        };
        // The DNS address goes to the node's own server. From a pod: to the
        // address of the interface it came in on (its bridge). From the host
        // itself: to the query's own source address — not 127.0.0.1, where
        // the server (bound to 0.0.0.0) would answer from another address
        // than the one conntrack waits for, and the answer would be lost.
        let (mut pre, mut out) = (Vec::new(), Vec::new());
        if let Some((ip, port)) = self.node.dns {
            for proto in ["udp", "tcp"] {
                pre.push(format!("ip daddr {ip} {proto} dport 53 redirect to :{port}"));
                out.push(format!("ip daddr {ip} {proto} dport 53 dnat to ip saddr:{port}"));
            }
        }
        for rules in [&mut pre, &mut out] {
            rules.push(format!("jump {SERVICES_CHAIN}"));
        }
        self.chain("nat-prerouting", base("prerouting", "nat", -100), pre);
        self.chain("nat-output", base("output", "nat", -100), out);
        let mark = MASQUERADE_MARK;
        self.chain(
            "nat-postrouting",
            base("postrouting", "nat", 100),
            vec![
                format!("ct status dnat ip saddr . ip daddr @{HAIRPIN} masquerade fully-random"),
                format!("meta mark & {mark:#x} == 0 return"),
                format!("meta mark set meta mark ^ {mark:#x}"),
                "masquerade fully-random".into(),
            ],
        );
        // Before dstnat (-100): a connection to a Service without endpoints is
        // refused while its destination is still the Service's.
        let check = |chain: &str| vec![format!("ct state new jump {chain}")];
        self.chain("filter-input", base("input", "filter", -110), check(NODEPORT_CHECK));
        self.chain("filter-forward", base("forward", "filter", -110), check(SERVICE_CHECK));
        self.chain("filter-output", base("output", "filter", -110), check(SERVICE_CHECK));
        let local_dst = "fib daddr type local ip daddr != 127.0.0.0/8";
        self.chain(
            SERVICES_CHAIN,
            String::new(),
            vec![
                format!("ip daddr . meta l4proto . th dport vmap @{SERVICE_IPS}"),
                format!("{local_dst} meta l4proto . th dport vmap @{SERVICE_NODEPORTS}"),
            ],
        );
        self.chain(
            SERVICE_CHECK,
            String::new(),
            vec![format!("ip daddr . meta l4proto . th dport vmap @{NO_ENDPOINT_SERVICES}")],
        );
        self.chain(
            NODEPORT_CHECK,
            String::new(),
            vec![format!("{local_dst} meta l4proto . th dport vmap @{NO_ENDPOINT_NODEPORTS}")],
        );
        self.chain(MARK_CHAIN, String::new(), vec![format!("meta mark set meta mark | {mark:#x}")]);
        self.chain(
            REJECT_CHAIN,
            String::new(),
            vec!["meta l4proto tcp reject with tcp reset".into(), "reject with icmp type host-unreachable".into()],
        );
        self.shared_maps();
    }

    /// The maps and sets every Service puts its elements in.
    fn shared_maps(&mut self) {
        self.collection(SERVICE_IPS, true, SERVICE_KEY_TYPE);
        self.collection(SERVICE_NODEPORTS, true, NODEPORT_KEY_TYPE);
        self.collection(NO_ENDPOINT_SERVICES, true, SERVICE_KEY_TYPE);
        self.collection(NO_ENDPOINT_NODEPORTS, true, NODEPORT_KEY_TYPE);
        self.collection(HAIRPIN, false, "type ipv4_addr . ipv4_addr;");
    }

    /// Whether `ip . proto . port` is the cluster DNS address the node-local
    /// server answers (the redirect owns it, not the Service).
    fn dns_owns(&self, ip: Ipv4Addr, proto: &str, port: u16) -> bool {
        self.node.dns.is_some_and(|(dns, _)| dns == ip && port == 53 && (proto == "udp" || proto == "tcp"))
    }

    fn service(&mut self, svc: &Service, eps: Option<&Endpoints>) {
        let (Some(ns), Some(name)) = (svc.metadata.namespace.as_deref(), svc.metadata.name.as_deref()) else {
            return;
        };
        let Some(spec) = svc.spec.as_ref() else { return };
        if spec.type_.as_deref() == Some("ExternalName") {
            return;
        }
        // IPv4 ClusterIPs only; "None" (headless) parses as none.
        let mut ips: Vec<Ipv4Addr> =
            spec.cluster_ips.iter().flatten().chain(spec.cluster_ip.iter()).filter_map(|ip| ip.parse().ok()).collect();
        ips.sort();
        ips.dedup();
        if ips.is_empty() {
            return;
        }
        let affinity = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
            spec.session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .filter(|t| *t > 0)
                .unwrap_or(DEFAULT_AFFINITY_SECONDS)
        });
        let policy = Policy {
            internal_local: spec.internal_traffic_policy.as_deref() == Some("Local"),
            external_local: spec.external_traffic_policy.as_deref() == Some("Local"),
            affinity,
        };
        for sp in spec.ports.iter().flatten() {
            let protocol = sp.protocol.as_deref().unwrap_or("TCP");
            let proto = match protocol {
                "TCP" => "tcp",
                "UDP" => "udp",
                "SCTP" => "sctp",
                _ => continue,
            };
            let Ok(port) = u16::try_from(sp.port) else { continue };
            let port_name = sp.name.as_deref().unwrap_or("");
            let label = if port_name.is_empty() { port.to_string() } else { port_name.to_string() };
            let port_ref = PortRef {
                id: format!("{ns}/{name}/{proto}/{label}"),
                proto,
                port,
                node_port: sp.node_port.and_then(|p| u16::try_from(p).ok()).filter(|p| *p != 0),
            };
            let all = ready_endpoints(eps, port_name, protocol, &self.node.name);
            self.service_port(&ips, &port_ref, &policy, &all);
        }
    }

    fn service_port(&mut self, ips: &[Ipv4Addr], sp: &PortRef, policy: &Policy, all: &[Endpoint]) {
        let local: Vec<Endpoint> = all.iter().filter(|e| e.local).cloned().collect();
        let internal = if policy.internal_local { &local[..] } else { all };
        let external = if policy.external_local { &local[..] } else { all };
        let svc_chain = hashed("svc", &sp.id);
        let (proto, port) = (sp.proto, sp.port);
        // No endpoint at all: refuse (the client learns at once); endpoints,
        // but none this traffic policy allows: drop, as kube-proxy does.
        let nothing = |eps: &[Endpoint]| {
            if all.is_empty() {
                format!("goto {REJECT_CHAIN}")
            } else {
                debug_assert!(eps.is_empty());
                "drop".to_string()
            }
        };
        for &ip in ips {
            if self.dns_owns(ip, proto, port) {
                continue;
            }
            let key = format!("{ip} . {proto} . {port}");
            if internal.is_empty() {
                self.element(NO_ENDPOINT_SERVICES, key, nothing(internal));
            } else {
                self.element(SERVICE_IPS, key, format!("goto {svc_chain}"));
            }
        }
        if !internal.is_empty() {
            let cidr = self.node.cluster_cidr;
            let mut rules = vec![format!("ip saddr != {cidr} jump {MARK_CHAIN}")];
            rules.extend(self.pick(sp, policy, internal));
            self.chain(&svc_chain, format!("comment \"{}\";", sp.id), rules);
        }
        if let Some(node_port) = sp.node_port {
            let key = format!("{proto} . {node_port}");
            if external.is_empty() {
                self.element(NO_ENDPOINT_NODEPORTS, key, nothing(external));
            } else {
                let ext_chain = hashed("ext", &sp.id);
                self.element(SERVICE_NODEPORTS, key, format!("goto {ext_chain}"));
                let rules = if policy.external_local {
                    // The client's address is kept: the endpoint is on this
                    // node. Only the node's own connections need masquerade.
                    let mut r = vec![format!("fib saddr type local jump {MARK_CHAIN}")];
                    r.extend(self.pick(sp, policy, external));
                    r
                } else if !policy.internal_local {
                    vec![format!("jump {MARK_CHAIN}"), format!("goto {svc_chain}")]
                } else {
                    let mut r = vec![format!("jump {MARK_CHAIN}")];
                    r.extend(self.pick(sp, policy, external));
                    r
                };
                self.chain(&ext_chain, format!("comment \"{} nodePort {node_port}\";", sp.id), rules);
            }
        }
    }

    /// The rules that send a packet to one of `eps` (a non-empty set): the
    /// endpoint its client is bound to (ClientIP affinity), else one at random.
    /// Creates the endpoints' chains.
    fn pick(&mut self, sp: &PortRef, policy: &Policy, eps: &[Endpoint]) -> Vec<String> {
        for e in eps.iter().filter(|e| e.local) {
            self.element(HAIRPIN, format!("{0} . {0}", e.ip), String::new());
        }
        let Some(timeout) = policy.affinity else {
            // No per-endpoint state: DNAT straight from the Service port's chain.
            return vec![match eps {
                [only] => format!("meta l4proto {} dnat to {}:{}", sp.proto, only.ip, only.port),
                _ => {
                    let arms: Vec<String> =
                        eps.iter().enumerate().map(|(i, e)| format!("{i} : {} . {}", e.ip, e.port)).collect();
                    format!(
                        "meta l4proto {} dnat ip addr . port to numgen random mod {} map {{ {} }}",
                        sp.proto,
                        eps.len(),
                        arms.join(", ")
                    )
                }
            }];
        };
        // ClientIP affinity: a chain per endpoint records the client in the
        // endpoint's set; a client found in one goes back to that endpoint.
        let mut rules = Vec::new();
        let mut targets = Vec::new();
        for e in eps {
            let id = format!("{}/{}:{}", sp.id, e.ip, e.port);
            let chain = hashed("ep", &id);
            // The timeout is part of the set's name: a set's declaration
            // never changes under one name (a diff can then replace it).
            let set = hashed("aff", &format!("{id}/{timeout}"));
            if !self.rs.sets.contains_key(&set) {
                let spec = format!("type ipv4_addr; flags dynamic,timeout; timeout {timeout}s;");
                self.collection(&set, false, &spec);
            }
            rules.push(format!("ip saddr @{set} goto {chain}"));
            let ep_rules = vec![
                format!("update @{set} {{ ip saddr }}"),
                format!("meta l4proto {} dnat to {}:{}", sp.proto, e.ip, e.port),
            ];
            self.chain(&chain, format!("comment \"{id}\";"), ep_rules);
            targets.push(chain);
        }
        if let [only] = &targets[..] {
            rules.push(format!("goto {only}"));
        } else {
            let arms: Vec<String> = targets.iter().enumerate().map(|(i, c)| format!("{i} : goto {c}")).collect();
            rules.push(format!("numgen random mod {} vmap {{ {} }}", targets.len(), arms.join(", ")));
        }
        rules
    }
}

/// One Service port as the rules name and match it.
struct PortRef {
    /// `ns/name/proto/port-name-or-number`: what chain names hash.
    id: String,
    proto: &'static str,
    port: u16,
    node_port: Option<u16>,
}

/// A Service's traffic policies.
struct Policy {
    internal_local: bool,
    external_local: bool,
    /// ClientIP affinity timeout in seconds.
    affinity: Option<i32>,
}

/// What every node has whatever the Services: the base chains and the
/// shared maps and sets, empty.
pub fn base(node: &NodeView) -> Ruleset {
    let mut b = Builder::new(node);
    b.skeleton();
    b.rs
}

/// One Service's part of the ruleset: its chains and affinity sets, and its
/// elements of the shared maps (listed whether or not it has elements there;
/// [`base`] declares them). Headless and ExternalName Services have none.
pub fn service_rules(node: &NodeView, svc: &Service, endpoints: Option<&Endpoints>) -> Ruleset {
    let mut b = Builder::new(node);
    b.shared_maps();
    b.service(svc, endpoints);
    b.rs
}

/// A Service part with nothing in it (before a Service's first rules, after its last).
pub fn empty_part(node: &NodeView) -> Ruleset {
    let mut b = Builder::new(node);
    b.shared_maps();
    b.rs
}

/// Add `part`'s chains, sets and elements to `into`.
pub fn merge(into: &mut Ruleset, part: &Ruleset) {
    for (name, chain) in &part.chains {
        into.chains.insert(name.clone(), chain.clone());
    }
    for (name, set) in &part.sets {
        match into.sets.get_mut(name) {
            Some(have) => have.elements.extend(set.elements.iter().map(|(k, v)| (k.clone(), v.clone()))),
            None => {
                into.sets.insert(name.clone(), set.clone());
            }
        }
    }
}

/// The ruleset `node` wants for `services` and their `endpoints` (matched by
/// namespace and name): [`base`] with every Service's part merged in.
pub fn build(node: &NodeView, services: &[&Service], endpoints: &[&Endpoints]) -> Ruleset {
    let by_name: HashMap<(&str, &str), &Endpoints> = endpoints
        .iter()
        .filter_map(|e| Some(((e.metadata.namespace.as_deref()?, e.metadata.name.as_deref()?), *e)))
        .collect();
    let mut rs = base(node);
    for svc in services {
        let key = (svc.metadata.namespace.as_deref().unwrap_or(""), svc.metadata.name.as_deref().unwrap_or(""));
        merge(&mut rs, &service_rules(node, svc, by_name.get(&key).copied()));
    }
    rs
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn node() -> NodeView {
        NodeView {
            name: "n1".into(),
            table: "clusterd-proxy-n1".into(),
            cluster_cidr: "10.244.0.0/16".parse().unwrap(),
            dns: None,
        }
    }

    /// A Service from the JSON of its spec.
    pub(crate) fn service(name: &str, spec: serde_json::Value) -> Service {
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default"}, "spec": spec})).unwrap()
    }

    /// Endpoints with one subset: `(ip, node, ready)` addresses on `ports` (`(name, port, protocol)`).
    pub(crate) fn endpoints(name: &str, addrs: &[(&str, &str, bool)], ports: &[(&str, u16, &str)]) -> Endpoints {
        let addr = |(ip, node, _): &(&str, &str, bool)| json!({"ip": ip, "nodeName": node});
        let ready: Vec<_> = addrs.iter().filter(|a| a.2).map(addr).collect();
        let not_ready: Vec<_> = addrs.iter().filter(|a| !a.2).map(addr).collect();
        let ports: Vec<_> =
            ports.iter().map(|(n, p, proto)| json!({"name": n, "port": p, "protocol": proto})).collect();
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default"},
            "subsets": [{"addresses": ready, "notReadyAddresses": not_ready, "ports": ports}]
        }))
        .unwrap()
    }

    /// `n` NodePort Services of `per` endpoints each (one more for the
    /// Service numbered `grown`): the scale the benchmarks speak of.
    pub(crate) fn many(n: u32, per: u32, grown: Option<u32>) -> (Vec<Service>, Vec<Endpoints>) {
        let mut svcs = Vec::new();
        let mut eps = Vec::new();
        for i in 0..n {
            let name = format!("svc-{i}");
            let ip = format!("10.96.{}.{}", 1 + i / 250, 1 + i % 250);
            let spec = json!({"clusterIP": ip, "type": "NodePort",
                "ports": [{"name": "http", "port": 80, "nodePort": 30000 + i}]});
            svcs.push(service(&name, spec));
            let count = if grown == Some(i) { per + 1 } else { per };
            let ips: Vec<String> =
                (0..count).map(|k| format!("10.244.{}.{}", i % 250, 2 + k + (i / 250) * 20)).collect();
            let addrs: Vec<(&str, &str, bool)> = ips.iter().map(|ip| (ip.as_str(), "n1", true)).collect();
            eps.push(endpoints(&name, &addrs, &[("http", 8080, "TCP")]));
        }
        (svcs, eps)
    }

    fn web(extra: serde_json::Value) -> Service {
        let mut spec = json!({"clusterIP": "10.96.0.20", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]});
        for (k, v) in extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        service("web", spec)
    }

    fn web_eps(addrs: &[(&str, &str, bool)]) -> Endpoints {
        endpoints("web", addrs, &[("http", 8080, "TCP")])
    }

    fn element<'a>(rs: &'a Ruleset, set: &str, key: &str) -> Option<&'a str> {
        rs.sets[set].elements.get(key).map(String::as_str)
    }

    /// The chain a verdict (`goto x`) names.
    fn target<'a>(rs: &'a Ruleset, verdict: &str) -> &'a Chain {
        &rs.chains[verdict.strip_prefix("goto ").expect("a goto")]
    }

    fn service_chain(rs: &Ruleset) -> &Chain {
        target(rs, element(rs, SERVICE_IPS, "10.96.0.20 . tcp . 80").expect("the ClusterIP is mapped"))
    }

    /// The endpoint chains a chain's affinity pick (or single goto) leads to.
    fn picked<'a>(rs: &'a Ruleset, chain: &Chain) -> Vec<&'a Chain> {
        let last = chain.rules.last().unwrap();
        last.split("goto ").skip(1).map(|s| &rs.chains[s.split([',', ' ']).next().unwrap()]).collect()
    }

    /// Where a chain's last rule DNATs to (`ip:port`), following endpoint chains.
    fn dnat_targets(rs: &Ruleset, chain: &Chain) -> Vec<String> {
        let last = chain.rules.last().unwrap();
        if let Some((_, arms)) = last.split_once(" map { ") {
            let arms = arms.trim_end_matches(" }");
            return arms.split(", ").map(|a| a.split_once(" : ").unwrap().1.replace(" . ", ":")).collect();
        }
        if let Some((_, to)) = last.split_once(" dnat to ") {
            return vec![to.to_string()];
        }
        picked(rs, chain).iter().flat_map(|c| dnat_targets(rs, c)).collect()
    }

    fn hairpin(rs: &Ruleset) -> Vec<&str> {
        rs.sets[HAIRPIN].elements.keys().map(String::as_str).collect()
    }

    #[test]
    fn cluster_ip_picks_among_ready_endpoints() {
        let svc = web(json!({}));
        let eps = web_eps(&[("10.244.1.5", "n1", true), ("10.244.2.7", "n2", true), ("10.244.2.8", "n2", false)]);
        let rs = build(&node(), &[&svc], &[&eps]);
        let chain = service_chain(&rs);
        assert_eq!(
            chain.rules,
            [
                "ip saddr != 10.244.0.0/16 jump mark-for-masquerade",
                "meta l4proto tcp dnat ip addr . port to numgen random mod 2 map \
                 { 0 : 10.244.1.5 . 8080, 1 : 10.244.2.7 . 8080 }"
            ]
        );
        assert_eq!(hairpin(&rs), ["10.244.1.5 . 10.244.1.5"], "this node's endpoint may reach itself");
        assert!(rs.sets[NO_ENDPOINT_SERVICES].elements.is_empty());
        assert!(!rs.chains.keys().any(|c| c.starts_with("ep-")), "no affinity, no endpoint chains");
    }

    #[test]
    fn what_gets_no_rules_and_what_gets_refused() {
        /// (case, service, endpoints, service-ips verdict, no-endpoint-services verdict)
        type Case<'a> = (&'a str, Service, Option<Endpoints>, Option<&'a str>, Option<&'a str>);
        let cases: Vec<Case> = vec![
            // (case, service, endpoints, service-ips verdict, no-endpoint-services verdict)
            ("no endpoints: reject", web(json!({})), None, None, Some("goto reject-chain")),
            (
                "only not-ready endpoints: reject",
                web(json!({})),
                Some(web_eps(&[("10.244.1.5", "n1", false)])),
                None,
                Some("goto reject-chain"),
            ),
            (
                "internal policy Local, endpoints elsewhere: drop",
                web(json!({"internalTrafficPolicy": "Local"})),
                Some(web_eps(&[("10.244.2.7", "n2", true)])),
                None,
                Some("drop"),
            ),
            ("headless", web(json!({"clusterIP": "None"})), Some(web_eps(&[("10.244.1.5", "n1", true)])), None, None),
            (
                "ExternalName",
                service("web", json!({"type": "ExternalName", "externalName": "example.com"})),
                None,
                None,
                None,
            ),
            (
                "port name not in the endpoints",
                web(json!({"ports": [{"name": "metrics", "port": 80}]})),
                Some(web_eps(&[("10.244.1.5", "n1", true)])),
                None,
                Some("goto reject-chain"),
            ),
        ];
        for (case, svc, eps, mapped, refused) in cases {
            let eps: Vec<&Endpoints> = eps.iter().collect();
            let rs = build(&node(), &[&svc], &eps);
            let key = "10.96.0.20 . tcp . 80";
            assert_eq!(element(&rs, SERVICE_IPS, key).map(|v| &v[..8]), mapped, "{case}");
            assert_eq!(element(&rs, NO_ENDPOINT_SERVICES, key), refused, "{case}");
            if refused.is_some() || mapped.is_none() {
                assert!(!rs.chains.keys().any(|c| c.starts_with("svc-") || c.starts_with("ep-")), "{case}");
            }
        }
    }

    #[test]
    fn internal_traffic_policy_local_uses_only_this_nodes_endpoints() {
        let svc = web(json!({"internalTrafficPolicy": "Local"}));
        let eps = web_eps(&[("10.244.1.5", "n1", true), ("10.244.2.7", "n2", true)]);
        let rs = build(&node(), &[&svc], &[&eps]);
        let chain = service_chain(&rs);
        assert_eq!(chain.rules[1], "meta l4proto tcp dnat to 10.244.1.5:8080");
    }

    #[test]
    fn node_ports_by_external_traffic_policy() {
        let eps = web_eps(&[("10.244.1.5", "n1", true), ("10.244.2.7", "n2", true)]);
        let np = |policy: &str| {
            web(json!({"type": "NodePort", "externalTrafficPolicy": policy,
                "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}))
        };
        // Cluster: masquerade, then the ClusterIP chain (every endpoint).
        let svc = np("Cluster");
        let rs = build(&node(), &[&svc], &[&eps]);
        let ext = target(&rs, element(&rs, SERVICE_NODEPORTS, "tcp . 30080").unwrap());
        let svc_chain = element(&rs, SERVICE_IPS, "10.96.0.20 . tcp . 80").unwrap();
        assert_eq!(ext.rules, ["jump mark-for-masquerade".to_string(), svc_chain.to_string()]);
        // Local: this node's endpoints, the client's address kept.
        let svc = np("Local");
        let rs = build(&node(), &[&svc], &[&eps]);
        let ext = target(&rs, element(&rs, SERVICE_NODEPORTS, "tcp . 30080").unwrap());
        assert_eq!(ext.rules[0], "fib saddr type local jump mark-for-masquerade");
        assert_eq!(dnat_targets(&rs, ext), ["10.244.1.5:8080"]);
        assert_eq!(dnat_targets(&rs, service_chain(&rs)).len(), 2, "ClusterIP traffic still goes everywhere");
        // Local with no endpoint here: dropped on this node.
        let far = web_eps(&[("10.244.2.7", "n2", true)]);
        let rs = build(&node(), &[&svc], &[&far]);
        assert_eq!(element(&rs, SERVICE_NODEPORTS, "tcp . 30080"), None);
        assert_eq!(element(&rs, NO_ENDPOINT_NODEPORTS, "tcp . 30080"), Some("drop"));
        // No endpoints at all: refused.
        let rs = build(&node(), &[&svc], &[]);
        assert_eq!(element(&rs, NO_ENDPOINT_NODEPORTS, "tcp . 30080"), Some("goto reject-chain"));
    }

    #[test]
    fn client_ip_affinity_checks_each_endpoints_set_before_the_random_pick() {
        let svc = web(json!({"sessionAffinity": "ClientIP",
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}}));
        let eps = web_eps(&[("10.244.1.5", "n1", true), ("10.244.2.7", "n2", true)]);
        let rs = build(&node(), &[&svc], &[&eps]);
        let chain = service_chain(&rs);
        assert_eq!(chain.rules.len(), 4, "{:?}", chain.rules);
        assert!(chain.rules[3].starts_with("numgen random mod 2 vmap { 0 : goto ep-"), "{:?}", chain.rules);
        assert_eq!(dnat_targets(&rs, chain), ["10.244.1.5:8080", "10.244.2.7:8080"]);
        for (rule, ep) in chain.rules[1..3].iter().zip(picked(&rs, chain)) {
            let set = rule.strip_prefix("ip saddr @").unwrap().split(' ').next().unwrap();
            assert_eq!(rs.sets[set].spec, "type ipv4_addr; flags dynamic,timeout; timeout 60s;");
            assert!(rule.ends_with(&format!("goto {}", &rs.chains.iter().find(|(_, c)| *c == ep).unwrap().0)));
            assert_eq!(ep.rules[0], format!("update @{set} {{ ip saddr }}"), "the endpoint records its client");
        }
        let default = web(json!({"sessionAffinity": "ClientIP"}));
        let rs = build(&node(), &[&default], &[&eps]);
        assert!(rs.sets.values().any(|s| s.spec.contains("timeout 10800s")));
    }

    #[test]
    fn dns_address_is_redirected_to_the_node_local_server() {
        let mut n = node();
        n.dns = Some(("10.96.0.10".parse().unwrap(), 40053));
        let dns = service(
            "kube-dns",
            json!({"clusterIP": "10.96.0.10", "ports": [{"name": "dns", "port": 53, "protocol": "UDP"},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP"}, {"name": "metrics", "port": 9153}]}),
        );
        let rs = build(&n, &[&dns], &[]);
        let cases = [("nat-prerouting", "redirect to :40053"), ("nat-output", "dnat to ip saddr:40053")];
        for (chain, target) in cases {
            assert_eq!(
                rs.chains[chain].rules,
                [
                    format!("ip daddr 10.96.0.10 udp dport 53 {target}"),
                    format!("ip daddr 10.96.0.10 tcp dport 53 {target}"),
                    "jump services".into()
                ]
            );
        }
        let refused: Vec<&String> = rs.sets[NO_ENDPOINT_SERVICES].elements.keys().collect();
        assert_eq!(refused, ["10.96.0.10 . tcp . 9153"], "port 53 is the redirect's, not refused");
    }

    #[test]
    fn names_are_stable_and_distinct() {
        let svc = web(json!({"sessionAffinity": "ClientIP",
            "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}]}));
        let eps = endpoints(
            "web",
            &[("10.244.1.5", "n1", true), ("10.244.2.7", "n2", true)],
            &[("http", 8080, "TCP"), ("https", 8443, "TCP")],
        );
        let a = build(&node(), &[&svc], &[&eps]);
        let b = build(&node(), &[&svc], &[&eps]);
        assert_eq!(a, b);
        let named: Vec<&String> = a.chains.keys().filter(|c| c.starts_with("svc-") || c.starts_with("ep-")).collect();
        assert_eq!(named.len(), 2 + 4, "{named:?}");
        assert!(named.iter().all(|c| c.len() <= 20));
    }

    #[test]
    fn bad_cidrs_are_refused() {
        assert_eq!("10.244.0.0/16".parse::<Cidr>().unwrap().to_string(), "10.244.0.0/16");
        for bad in ["10.244.0.0", "10.244.0.0/33", "x/16", "10.244.0/16"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }
}
