//! Service addresses: which ClusterIP and NodePorts a Service gets, and which
//! allocation records a write of it claims and releases.
//!
//! Two Services must never share an address, also when they are created at
//! the same moment on different nodes. So every address a Service holds has a
//! record in the store (`/clusterd/allocations/clusterips/<ip>`,
//! `/clusterd/allocations/nodeports/<port>`, its value the Service's key),
//! created in the Service's own Raft transaction under the compare "the record
//! does not exist yet": the loser of a race fails as a whole and picks again
//! (an automatic pick) or is refused (an address the user asked for). Picks
//! are random so that concurrent writers rarely meet, and prefer the upper part
//! of each range, leaving the lower part to addresses users ask for, as the
//! Kubernetes API server does. This file holds the decisions; `claims.rs`
//! runs them in the registry's transactions.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use rand::Rng;
use serde_json::{json, Value};

use clusterd_raft::{Compare, Op, Txn};

use crate::objects::network::ServiceNetwork;
use crate::objects::validate::FieldError;

/// Where the ClusterIP records live: `<prefix><ip>`.
pub const CLUSTER_IPS: &str = "/clusterd/allocations/clusterips/";
/// Where the NodePort records live: `<prefix><port>`.
pub const NODE_PORTS: &str = "/clusterd/allocations/nodeports/";

/// The type of Service that no load balancer provider exists for says so in
/// this condition (status False).
pub const LB_CONDITION: &str = "LoadBalancerProvisioned";
/// The reason of [`LB_CONDITION`].
pub const LB_REASON: &str = "NoLoadBalancerProvider";

/// How many random picks are tried before the range is searched in order.
const RANDOM_TRIES: usize = 32;

/// The record key of a ClusterIP.
pub fn ip_key(ip: Ipv4Addr) -> String {
    format!("{CLUSTER_IPS}{ip}")
}

/// The record key of a NodePort.
pub fn port_key(port: u16) -> String {
    format!("{NODE_PORTS}{port}")
}

/// The addresses one Service holds, as its stored spec says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Holdings {
    /// Its ClusterIP (none: headless, ExternalName).
    pub cluster_ip: Option<Ipv4Addr>,
    /// Its NodePorts (one record per port number, whatever the protocols).
    pub node_ports: BTreeSet<u16>,
}

impl Holdings {
    /// What a stored Service holds.
    pub fn of(svc: &Value) -> Self {
        let spec = &svc["spec"];
        let cluster_ip = match spec_type(svc) {
            "ExternalName" => None,
            _ => spec["clusterIP"].as_str().and_then(|s| s.parse().ok()),
        };
        let node_ports = match spec_type(svc) {
            "NodePort" | "LoadBalancer" => ports(svc)
                .iter()
                .filter_map(|p| p["nodePort"].as_u64())
                .filter_map(|n| u16::try_from(n).ok())
                .filter(|n| *n != 0)
                .collect(),
            _ => BTreeSet::new(),
        };
        Holdings { cluster_ip, node_ports }
    }

    /// The record keys of everything held.
    pub fn keys(&self) -> Vec<String> {
        self.cluster_ip.map(ip_key).into_iter().chain(self.node_ports.iter().map(|p| port_key(*p))).collect()
    }
}

fn spec_type(svc: &Value) -> &str {
    svc["spec"]["type"].as_str().unwrap_or("ClusterIP")
}

fn ports(svc: &Value) -> &[Value] {
    svc["spec"]["ports"].as_array().map(Vec::as_slice).unwrap_or_default()
}

/// One record a write creates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The record's key.
    pub key: String,
    /// The field the address is in (`spec.clusterIP`, `spec.ports[1].nodePort`).
    pub field: String,
    /// The address as Kubernetes prints it in an error (`"10.96.0.5"`, `30080`).
    pub shown: String,
    /// Whether the user asked for this address (then it is refused when
    /// taken; an automatic pick is made again).
    pub requested: bool,
}

impl Claim {
    /// The refusal when the address turned out to be taken.
    pub fn taken(&self) -> FieldError {
        let what = if self.key.starts_with(CLUSTER_IPS) {
            format!("failed to allocate IP {}: provided IP is already allocated", self.shown.trim_matches('"'))
        } else {
            "provided port is already allocated".to_string()
        };
        FieldError { field: self.field.clone(), message: format!("Invalid value: {}: {what}", self.shown) }
    }
}

/// What a write of a Service does to the allocation records.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Records created (each only if absent).
    pub claims: Vec<Claim>,
    /// Records removed (addresses the Service no longer holds).
    pub releases: Vec<String>,
}

/// What a failed compare of a planned write means.
#[derive(Debug, PartialEq, Eq)]
pub enum Lost {
    /// An address the user asked for is taken: refuse.
    Refused(FieldError),
    /// An automatic pick was taken meanwhile: pick again, avoiding this record.
    PickAgain(String),
}

impl Plan {
    /// Add the plan's compares and writes to `txn`, whose object is at
    /// `owner`; returns the index of the first of its compares.
    pub fn add_to(&self, txn: &mut Txn, owner: &str) -> usize {
        let base = txn.compares.len();
        for c in &self.claims {
            txn.compares.push(Compare::ModRevision(c.key.clone(), 0));
            txn.success.push(Op::Put { key: c.key.clone(), value: owner.as_bytes().to_vec() });
        }
        txn.success.extend(self.releases.iter().map(|key| Op::Delete { key: key.clone() }));
        base
    }

    /// What the failure of compare `failed` of a transaction built with
    /// [`Plan::add_to`] (returning `base`) means; None if it is not one of ours.
    pub fn lost(&self, failed: usize, base: usize) -> Option<Lost> {
        let claim = self.claims.get(failed.checked_sub(base)?)?;
        Some(if claim.requested { Lost::Refused(claim.taken()) } else { Lost::PickAgain(claim.key.clone()) })
    }
}

/// An offset in `0..len` for which `free` holds: random in the upper part
/// (`band..len`) first, then the first free one from a random start (upper
/// part, then lower); None when every one is taken.
pub fn pick(len: u32, band: u32, rng: &mut impl Rng, free: impl Fn(u32) -> bool) -> Option<u32> {
    let band = band.min(len);
    if band < len {
        for _ in 0..RANDOM_TRIES {
            let i = rng.gen_range(band..len);
            if free(i) {
                return Some(i);
            }
        }
    }
    scan(band, len, rng, &free).or_else(|| scan(0, band, rng, &free))
}

/// The first offset in `lo..hi` for which `free` holds, from a random start.
fn scan(lo: u32, hi: u32, rng: &mut impl Rng, free: &impl Fn(u32) -> bool) -> Option<u32> {
    if lo >= hi {
        return None;
    }
    let start = rng.gen_range(lo..hi);
    (start..hi).chain(lo..start).find(|i| free(*i))
}

/// The lower part of the ClusterIP range kept for requested addresses
/// (16–256 addresses, a sixteenth of the range).
fn ip_band(net: &ServiceNetwork) -> u32 {
    (net.size() / 16).clamp(16, 256)
}

/// The lower part of the NodePort range kept for requested ports (16–128
/// ports, a thirty-second of the range).
fn port_band(net: &ServiceNetwork) -> u32 {
    (port_count(net) / 32).clamp(16, 128)
}

fn port_count(net: &ServiceNetwork) -> u32 {
    u32::from(*net.node_ports.end()) - u32::from(*net.node_ports.start()) + 1
}

/// Decide the addresses of a Service being created (`old` None) or updated,
/// write them into `svc` (clusterIP, clusterIPs, ipFamilies, ipFamilyPolicy,
/// ports' nodePorts, and for a LoadBalancer the status saying none exists),
/// and say which records to claim and release. `taken` says whether a record
/// exists (the local replica, plus records lost in an earlier attempt); the
/// old Service's own records count as its own. Every refused field is listed.
pub fn plan(
    net: &ServiceNetwork,
    old: Option<&Value>,
    svc: &mut Value,
    taken: &dyn Fn(&str) -> bool,
    rng: &mut impl Rng,
    now: &str,
) -> Result<Plan, Vec<FieldError>> {
    let held = old.map(Holdings::of).unwrap_or_default();
    let mut d = Decisions { net, held: &held, taken, rng, claims: Vec::new(), errs: Vec::new() };
    let ty = spec_type(svc).to_string();
    let requested_ip = svc["spec"]["clusterIP"]
        .as_str()
        .filter(|s| !s.is_empty())
        .or_else(|| svc["spec"]["clusterIPs"][0].as_str())
        .unwrap_or("")
        .to_string();
    let ip = match (ty.as_str(), requested_ip.as_str()) {
        ("ExternalName", _) | (_, "None") => None,
        (_, "") => d.automatic_ip(),
        (_, given) => d.requested_ip(given),
    };
    let needs_ports = matches!(ty.as_str(), "NodePort" | "LoadBalancer");
    let automatic =
        needs_ports && !(ty == "LoadBalancer" && svc["spec"]["allocateLoadBalancerNodePorts"] == json!(false));
    let mut ports = ports(svc).to_vec();
    if needs_ports {
        d.node_ports(&mut ports, automatic);
    }
    let Decisions { claims, errs, .. } = d;
    if !errs.is_empty() {
        return Err(errs);
    }

    // Write the decision into the Service.
    if let Some(spec) = svc["spec"].as_object_mut() {
        if ty == "ExternalName" {
            for f in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
                spec.remove(f);
            }
        } else {
            let shown = ip.map_or_else(|| "None".to_string(), |ip| ip.to_string());
            spec.insert("clusterIP".into(), json!(shown));
            spec.insert("clusterIPs".into(), json!([shown]));
            spec.insert("ipFamilies".into(), json!(["IPv4"]));
            spec.entry("ipFamilyPolicy").or_insert(json!("SingleStack"));
        }
        if !ports.is_empty() {
            spec.insert("ports".into(), Value::Array(ports));
        }
    }
    load_balancer_status(svc, now);

    let kept: BTreeSet<String> = Holdings::of(svc).keys().into_iter().collect();
    let releases = held.keys().into_iter().filter(|k| !kept.contains(k)).collect();
    Ok(Plan { claims, releases })
}

/// The choices of one [`plan`] so far: records to claim and fields refused.
struct Decisions<'a, R> {
    net: &'a ServiceNetwork,
    held: &'a Holdings,
    taken: &'a dyn Fn(&str) -> bool,
    rng: &'a mut R,
    claims: Vec<Claim>,
    errs: Vec<FieldError>,
}

impl<R: Rng> Decisions<'_, R> {
    /// A free ClusterIP, picked at random.
    fn automatic_ip(&mut self) -> Option<Ipv4Addr> {
        let (net, taken) = (self.net, self.taken);
        let free = |i: u32| net.nth(i).is_some_and(|ip| !taken(&ip_key(ip)));
        let Some(ip) = pick(net.size(), ip_band(net), self.rng, free).and_then(|i| net.nth(i)) else {
            self.errs.push(FieldError {
                field: "spec.clusterIP".into(),
                message: format!(
                    "Internal error: failed to allocate a serviceIP: range is full (the range of valid IPs is {})",
                    net.cidr()
                ),
            });
            return None;
        };
        self.claims.push(Claim {
            key: ip_key(ip),
            field: "spec.clusterIP".into(),
            shown: format!("\"{ip}\""),
            requested: false,
        });
        Some(ip)
    }

    /// The ClusterIP the user asked for, if it is in range and free (or
    /// already the Service's own).
    fn requested_ip(&mut self, given: &str) -> Option<Ipv4Addr> {
        let Ok(ip) = given.parse::<Ipv4Addr>() else {
            self.errs.push(FieldError::invalid("spec.clusterIP", given, "must be a valid IPv4 address"));
            return None;
        };
        if self.held.cluster_ip == Some(ip) {
            return Some(ip);
        }
        let claim =
            Claim { key: ip_key(ip), field: "spec.clusterIP".into(), shown: format!("\"{ip}\""), requested: true };
        if !self.net.contains(ip) {
            let why = format!(
                "failed to allocate IP {ip}: provided IP is not in the valid range. The range of valid IPs is {}",
                self.net.cidr()
            );
            self.errs.push(FieldError::invalid("spec.clusterIP", given, &why));
        } else if (self.taken)(&claim.key) {
            self.errs.push(claim.taken());
        } else {
            self.claims.push(claim);
        }
        Some(ip)
    }

    /// The NodePorts of `ports`: the requested ones checked, the others (if
    /// `automatic`) picked; one per service port number, so that TCP and UDP
    /// of one port share it.
    fn node_ports(&mut self, ports: &mut [Value], automatic: bool) {
        let (net, held, taken) = (self.net, self.held, self.taken);
        let mut by_port: BTreeMap<i64, u16> = BTreeMap::new();
        let mut used: BTreeSet<u16> = BTreeSet::new();
        for (i, p) in ports.iter().enumerate() {
            let Some(n) = p["nodePort"].as_i64().filter(|n| *n != 0) else { continue };
            let field = format!("spec.ports[{i}].nodePort");
            let Some(n) = u16::try_from(n).ok().filter(|n| net.node_ports.contains(n)) else {
                let (lo, hi) = (net.node_ports.start(), net.node_ports.end());
                let why = format!("provided port is not in the valid range. The range of valid ports is {lo}-{hi}");
                self.errs.push(FieldError::invalid_int(field, n, &why));
                continue;
            };
            by_port.entry(p["port"].as_i64().unwrap_or(0)).or_insert(n);
            if held.node_ports.contains(&n) || !used.insert(n) {
                continue;
            }
            let claim = Claim { key: port_key(n), field, shown: n.to_string(), requested: true };
            if taken(&claim.key) {
                self.errs.push(claim.taken());
            } else {
                self.claims.push(claim);
            }
        }
        if !automatic {
            return;
        }
        let base = u32::from(*net.node_ports.start());
        for (i, p) in ports.iter_mut().enumerate() {
            if p["nodePort"].as_i64().is_some_and(|n| n != 0) {
                continue;
            }
            let port = p["port"].as_i64().unwrap_or(0);
            if let Some(n) = by_port.get(&port) {
                p["nodePort"] = json!(n);
                continue;
            }
            let free = |o: u32| {
                let n = (base + o) as u16;
                !used.contains(&n) && !held.node_ports.contains(&n) && !taken(&port_key(n))
            };
            let field = format!("spec.ports[{i}].nodePort");
            let Some(n) = pick(port_count(net), port_band(net), self.rng, free).map(|o| (base + o) as u16) else {
                let message = "Internal error: failed to allocate a nodePort: range is full".into();
                self.errs.push(FieldError { field, message });
                continue;
            };
            used.insert(n);
            by_port.insert(port, n);
            self.claims.push(Claim { key: port_key(n), field, shown: n.to_string(), requested: false });
            p["nodePort"] = json!(n);
        }
    }
}

/// A LoadBalancer Service's status says that no load balancer exists and to
/// use the NodePorts; any other type has no such condition.
fn load_balancer_status(svc: &mut Value, now: &str) {
    let lb = spec_type(svc) == "LoadBalancer";
    let node_ports: Vec<String> = ports(svc)
        .iter()
        .filter_map(|p| {
            let proto = p["protocol"].as_str().unwrap_or("TCP");
            p["nodePort"].as_u64().map(|n| format!("{n}/{proto}"))
        })
        .collect();
    let mut conditions: Vec<Value> = svc["status"]["conditions"].as_array().cloned().unwrap_or_default();
    let at = conditions.iter().position(|c| c["type"] == LB_CONDITION);
    if !lb {
        let Some(at) = at else { return };
        conditions.remove(at);
        if conditions.is_empty() {
            if let Some(s) = svc["status"].as_object_mut() {
                s.remove("conditions");
            }
        } else {
            svc["status"]["conditions"] = Value::Array(conditions);
        }
        return;
    }
    let message = if node_ports.is_empty() {
        "clusterd has no load balancer provider, and this Service has no NodePorts: reach it through its ClusterIP"
            .to_string()
    } else {
        format!(
            "clusterd has no load balancer provider: reach this Service through its NodePorts ({}) on any node's address",
            node_ports.join(", ")
        )
    };
    let since = at.and_then(|i| conditions[i]["lastTransitionTime"].as_str()).unwrap_or(now).to_string();
    let condition = json!({
        "type": LB_CONDITION,
        "status": "False",
        "reason": LB_REASON,
        "message": message,
        "lastTransitionTime": since,
    });
    match at {
        Some(i) => conditions[i] = condition,
        None => conditions.push(condition),
    }
    if !svc["status"].is_object() {
        svc["status"] = json!({});
    }
    svc["status"]["conditions"] = Value::Array(conditions);
    if !svc["status"]["loadBalancer"].is_object() {
        svc["status"]["loadBalancer"] = json!({});
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn svc(spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"}, "spec": spec})
    }

    fn rng() -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(7)
    }

    fn small() -> ServiceNetwork {
        ServiceNetwork::parse("10.0.0.0/24", "30000-30099", "cluster.local").unwrap()
    }

    const NOW: &str = "2026-01-01T00:00:00Z";

    fn fields(errs: Vec<FieldError>) -> Vec<String> {
        errs.into_iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn pick_prefers_the_upper_part_and_finds_the_last_free_one() {
        let mut r = rng();
        for _ in 0..200 {
            let i = pick(100, 16, &mut r, |_| true).unwrap();
            assert!((16..100).contains(&i), "{i}");
        }
        // Only one free, in the lower part: found by the search.
        assert_eq!(pick(100, 16, &mut r, |i| i == 3), Some(3));
        assert_eq!(pick(100, 16, &mut r, |i| i == 99), Some(99));
        assert_eq!(pick(100, 16, &mut r, |_| false), None);
        // A range smaller than the band is all "lower part".
        assert_eq!(pick(10, 16, &mut r, |i| i == 9), Some(9));
        assert_eq!(pick(0, 16, &mut r, |_| true), None);
    }

    #[test]
    fn a_cluster_ip_service_gets_an_address_of_the_upper_range() {
        let net = ServiceNetwork::default();
        let mut s = svc(json!({"type": "ClusterIP", "ports": [{"port": 80, "protocol": "TCP"}]}));
        let plan = plan(&net, None, &mut s, &|_| false, &mut rng(), NOW).unwrap();
        let ip: Ipv4Addr = s["spec"]["clusterIP"].as_str().unwrap().parse().unwrap();
        assert!(net.contains(ip) && u32::from(ip) - u32::from(net.base) > 256, "{ip}");
        assert_eq!(s["spec"]["clusterIPs"], json!([ip.to_string()]));
        assert_eq!((&s["spec"]["ipFamilies"], &s["spec"]["ipFamilyPolicy"]), (&json!(["IPv4"]), &json!("SingleStack")));
        assert!(s["spec"]["ports"][0].get("nodePort").is_none());
        assert_eq!(plan.claims.len(), 1);
        assert_eq!((plan.claims[0].key.clone(), plan.claims[0].requested), (ip_key(ip), false));
        assert!(plan.releases.is_empty());
        assert!(s.get("status").is_none());
    }

    #[test]
    fn requests_are_checked_and_every_refusal_names_its_field() {
        let net = ServiceNetwork::default();
        let taken = |k: &str| k == ip_key(Ipv4Addr::new(10, 96, 0, 10)) || k == port_key(30080);
        let np = |ip: &str, ports: Value| svc(json!({"type": "NodePort", "clusterIP": ip, "ports": ports}));
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (
                np("10.96.0.10", json!([{"port": 80, "nodePort": 30081}])),
                vec!["spec.clusterIP: Invalid value: \"10.96.0.10\": failed to allocate IP 10.96.0.10: provided IP is already allocated"],
            ),
            (
                np("10.0.0.1", json!([{"port": 80}])),
                vec!["spec.clusterIP: Invalid value: \"10.0.0.1\": failed to allocate IP 10.0.0.1: provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/16"],
            ),
            (
                np("", json!([{"port": 80, "nodePort": 30080}])),
                vec!["spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"],
            ),
            (
                np("10.96.0.10", json!([{"port": 80, "nodePort": 30081}, {"port": 81, "nodePort": 80}])),
                vec![
                    "spec.clusterIP: Invalid value: \"10.96.0.10\": failed to allocate IP 10.96.0.10: provided IP is already allocated",
                    "spec.ports[1].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767",
                ],
            ),
        ];
        for (mut s, want) in cases {
            let before = s.clone();
            let errs = plan(&net, None, &mut s, &taken, &mut rng(), NOW).unwrap_err();
            assert_eq!(fields(errs), want, "{before}");
        }
    }

    #[test]
    fn requested_free_addresses_are_claimed_as_requested() {
        let net = ServiceNetwork::default();
        let mut s = svc(json!({"type": "NodePort", "clusterIP": "10.96.0.50",
            "ports": [{"port": 80, "nodePort": 30080}, {"port": 443}]}));
        let p = plan(&net, None, &mut s, &|_| false, &mut rng(), NOW).unwrap();
        let claimed: Vec<(&str, bool)> = p.claims.iter().map(|c| (c.key.as_str(), c.requested)).collect();
        let auto = s["spec"]["ports"][1]["nodePort"].as_u64().unwrap() as u16;
        assert!(auto >= 30000 + 86 && auto != 30080, "{auto}: the automatic pick avoids the lower part");
        assert_eq!(
            claimed,
            vec![
                ("/clusterd/allocations/clusterips/10.96.0.50", true),
                ("/clusterd/allocations/nodeports/30080", true),
                (port_key(auto).as_str(), false)
            ]
        );
        assert_eq!(s["spec"]["ports"][0]["nodePort"], 30080);
    }

    #[test]
    fn tcp_and_udp_of_one_port_share_a_node_port() {
        let net = small();
        let mut s = svc(json!({"type": "NodePort", "ports": [
            {"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
            {"name": "web", "port": 80, "protocol": "TCP"}]}));
        let p = plan(&net, None, &mut s, &|_| false, &mut rng(), NOW).unwrap();
        let ports: Vec<u64> = (0..3).map(|i| s["spec"]["ports"][i]["nodePort"].as_u64().unwrap()).collect();
        assert_eq!(ports[0], ports[1]);
        assert_ne!(ports[0], ports[2]);
        assert_eq!(p.claims.len(), 3, "one ClusterIP and two port records: {:?}", p.claims);
    }

    #[test]
    fn automatic_picks_skip_taken_records() {
        let net = small();
        // Every address but .200 and every port but 30042 is taken.
        let taken = |k: &str| k != ip_key(Ipv4Addr::new(10, 0, 0, 200)) && k != port_key(30042);
        let mut s = svc(json!({"type": "NodePort", "ports": [{"port": 80}]}));
        plan(&net, None, &mut s, &taken, &mut rng(), NOW).unwrap();
        assert_eq!(
            (&s["spec"]["clusterIP"], &s["spec"]["ports"][0]["nodePort"]),
            (&json!("10.0.0.200"), &json!(30042))
        );
        let mut full = svc(json!({"type": "NodePort", "ports": [{"port": 80}, {"port": 81}]}));
        let errs = plan(&net, None, &mut full, &taken, &mut rng(), NOW).unwrap_err();
        assert_eq!(errs.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(), vec!["spec.ports[1].nodePort"]);
    }

    #[test]
    fn headless_and_external_name_services_hold_nothing() {
        let net = ServiceNetwork::default();
        let mut headless = svc(json!({"clusterIP": "None", "ports": [{"port": 80}]}));
        let p = plan(&net, None, &mut headless, &|_| false, &mut rng(), NOW).unwrap();
        assert_eq!(p, Plan::default());
        assert_eq!(
            (&headless["spec"]["clusterIP"], &headless["spec"]["clusterIPs"]),
            (&json!("None"), &json!(["None"]))
        );
        let mut ext = svc(json!({"type": "ExternalName", "externalName": "example.com"}));
        assert_eq!(plan(&net, None, &mut ext, &|_| false, &mut rng(), NOW).unwrap(), Plan::default());
        assert!(ext["spec"].get("clusterIP").is_none());
    }

    #[test]
    fn a_load_balancer_keeps_node_ports_and_says_no_balancer_exists() {
        let net = ServiceNetwork::default();
        let mut lb =
            svc(json!({"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}]}));
        plan(&net, None, &mut lb, &|_| false, &mut rng(), NOW).unwrap();
        let c = &lb["status"]["conditions"][0];
        assert_eq!(
            (&c["type"], &c["status"], &c["reason"]),
            (&json!(LB_CONDITION), &json!("False"), &json!(LB_REASON))
        );
        assert!(c["message"].as_str().unwrap().contains("NodePorts (30080/TCP)"), "{c}");
        assert_eq!(lb["status"]["loadBalancer"], json!({}));
        // Without automatic NodePorts it holds none.
        let mut bare =
            svc(json!({"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false, "ports": [{"port": 80}]}));
        let p = plan(&net, None, &mut bare, &|_| false, &mut rng(), NOW).unwrap();
        assert_eq!(p.claims.len(), 1);
        assert!(bare["spec"]["ports"][0].get("nodePort").is_none());
        // Becoming a ClusterIP Service drops the condition and releases the port.
        let mut back = lb.clone();
        back["spec"]["type"] = json!("ClusterIP");
        back["spec"]["ports"][0].as_object_mut().unwrap().remove("nodePort");
        let p = plan(&net, Some(&lb), &mut back, &|_| true, &mut rng(), NOW).unwrap();
        assert_eq!(p, Plan { claims: vec![], releases: vec![port_key(30080)] });
        assert!(back["status"].get("conditions").is_none(), "{}", back["status"]);
    }

    #[test]
    fn updates_claim_what_is_new_and_release_what_went() {
        let net = ServiceNetwork::default();
        let old = svc(json!({"type": "NodePort", "clusterIP": "10.96.0.50",
            "ports": [{"name": "a", "port": 80, "nodePort": 30080}, {"name": "b", "port": 81, "nodePort": 30081}]}));
        // Everything the old Service holds is "taken" (by itself): kept, not claimed.
        let taken = |k: &str| Holdings::of(&old).keys().iter().any(|h| h == k);
        let cases: Vec<(Value, Vec<&str>, Vec<String>)> = vec![
            (old["spec"].clone(), vec![], vec![]),
            (
                json!({"type": "NodePort", "clusterIP": "10.96.0.50",
                    "ports": [{"name": "a", "port": 80, "nodePort": 30090}, {"name": "b", "port": 81, "nodePort": 30081}]}),
                vec!["/clusterd/allocations/nodeports/30090"],
                vec![port_key(30080)],
            ),
            (
                json!({"type": "NodePort", "clusterIP": "10.96.0.50", "ports": [{"name": "b", "port": 81, "nodePort": 30081}]}),
                vec![],
                vec![port_key(30080)],
            ),
            (
                json!({"type": "ClusterIP", "clusterIP": "10.96.0.50", "ports": [{"name": "a", "port": 80}]}),
                vec![],
                vec![port_key(30080), port_key(30081)],
            ),
        ];
        for (spec, claims, releases) in cases {
            let mut new = svc(spec.clone());
            let p = plan(&net, Some(&old), &mut new, &taken, &mut rng(), NOW).unwrap();
            assert_eq!(p.claims.iter().map(|c| c.key.as_str()).collect::<Vec<_>>(), claims, "{spec}");
            assert_eq!(p.releases, releases, "{spec}");
        }
        // ClusterIP -> NodePort claims automatic ports.
        let cip = svc(json!({"type": "ClusterIP", "clusterIP": "10.96.0.50", "ports": [{"port": 80}]}));
        let mut np = cip.clone();
        np["spec"]["type"] = json!("NodePort");
        let p =
            plan(&net, Some(&cip), &mut np, &|k| k == ip_key(Ipv4Addr::new(10, 96, 0, 50)), &mut rng(), NOW).unwrap();
        assert_eq!(p.claims.len(), 1);
        assert_eq!(p.claims[0].key, port_key(np["spec"]["ports"][0]["nodePort"].as_u64().unwrap() as u16));
    }

    #[test]
    fn a_lost_compare_refuses_a_request_and_picks_an_automatic_one_again() {
        let p = Plan {
            claims: vec![
                Claim {
                    key: ip_key(Ipv4Addr::new(10, 96, 0, 7)),
                    field: "spec.clusterIP".into(),
                    shown: "\"10.96.0.7\"".into(),
                    requested: false,
                },
                Claim {
                    key: port_key(30080),
                    field: "spec.ports[0].nodePort".into(),
                    shown: "30080".into(),
                    requested: true,
                },
            ],
            releases: vec![port_key(30001)],
        };
        let mut txn = Txn {
            compares: vec![Compare::ModRevision("/registry/services/specs/default/web".into(), 0)],
            success: vec![],
        };
        let base = p.add_to(&mut txn, "/registry/services/specs/default/web");
        assert_eq!(base, 1);
        assert_eq!(txn.compares[2], Compare::ModRevision(port_key(30080), 0));
        assert_eq!(txn.success.last(), Some(&Op::Delete { key: port_key(30001) }));
        assert_eq!(
            txn.success[0],
            Op::Put {
                key: ip_key(Ipv4Addr::new(10, 96, 0, 7)),
                value: b"/registry/services/specs/default/web".to_vec()
            }
        );
        assert_eq!(p.lost(0, base), None);
        assert_eq!(p.lost(1, base), Some(Lost::PickAgain(ip_key(Ipv4Addr::new(10, 96, 0, 7)))));
        let Some(Lost::Refused(e)) = p.lost(2, base) else { panic!("a request is refused") };
        assert_eq!(e.to_string(), "spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated");
    }
}
