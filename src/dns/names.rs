//! The cluster's names as the DNS server answers them: one immutable snapshot
//! built from the node's Services and Endpoints. The server swaps in a fresh
//! snapshot after each batch of changes, so a query reads one consistent
//! state and never waits on an update.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{Endpoints, Service};

use crate::objects::network::ServiceNetwork;

/// A port of a Service or of an endpoint, as SRV records need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedPort {
    /// The port's name (lower case; SRV names only exist for named ports).
    pub name: String,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    /// The port number.
    pub port: u16,
}

/// A ready address of a Service's Endpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The address.
    pub ip: Ipv4Addr,
    /// The label it answers under: its `hostname` (StatefulSet pods), else the
    /// address with dashes (`10-244-1-5`), as CoreDNS names endpoints.
    pub label: String,
    /// The ports it serves.
    pub ports: Vec<NamedPort>,
}

/// How a Service answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A ClusterIP.
    ClusterIp(Ipv4Addr),
    /// Headless (`clusterIP: None`): the ready endpoint addresses.
    Headless,
    /// `type: ExternalName`: a CNAME to this name.
    External(String),
}

/// One Service's records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceNames {
    /// Where its name points.
    pub target: Target,
    /// The Service's own named ports.
    pub ports: Vec<NamedPort>,
    /// Its ready endpoints.
    pub endpoints: Vec<Endpoint>,
}

/// A snapshot of the cluster's names.
#[derive(Clone, Debug, Default)]
pub struct Names {
    /// The cluster's domain and service range.
    pub network: ServiceNetwork,
    /// The SOA serial: changes whenever the snapshot does.
    pub serial: u32,
    services: HashMap<(String, String), ServiceNames>,
    namespaces: HashSet<String>,
    reverse: HashMap<Ipv4Addr, Vec<String>>,
}

/// `a.b.c.d` → `a-b-c-d`.
pub fn dashed(ip: Ipv4Addr) -> String {
    ip.to_string().replace('.', "-")
}

fn port_of(name: Option<&String>, protocol: Option<&String>, port: i32) -> Option<NamedPort> {
    let name = name.filter(|n| !n.is_empty())?.to_ascii_lowercase();
    let protocol = protocol.map(|p| p.to_ascii_lowercase()).unwrap_or_else(|| "tcp".into());
    Some(NamedPort { name, protocol, port: u16::try_from(port).ok()? })
}

impl Names {
    /// No names yet (before the informers have listed).
    pub fn empty(network: ServiceNetwork) -> Names {
        Names { network, ..Names::default() }
    }

    /// Build a snapshot from the Services and their Endpoints (one Endpoints
    /// object per Service, same namespace and name).
    pub fn build<'a>(
        network: ServiceNetwork,
        serial: u32,
        services: impl IntoIterator<Item = &'a Service>,
        endpoints: impl IntoIterator<Item = &'a Endpoints>,
    ) -> Names {
        let key = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
            Some((m.namespace.clone()?.to_ascii_lowercase(), m.name.clone()?.to_ascii_lowercase()))
        };
        let mut ready: HashMap<(String, String), Vec<Endpoint>> = HashMap::new();
        for ep in endpoints {
            let Some(k) = key(&ep.metadata) else { continue };
            let list = ready.entry(k).or_default();
            for subset in ep.subsets.iter().flatten() {
                let ports: Vec<NamedPort> = subset
                    .ports
                    .iter()
                    .flatten()
                    .filter_map(|p| port_of(p.name.as_ref(), p.protocol.as_ref(), p.port))
                    .collect();
                for a in subset.addresses.iter().flatten() {
                    let Ok(ip) = a.ip.parse::<Ipv4Addr>() else { continue };
                    let label = a
                        .hostname
                        .as_deref()
                        .filter(|h| !h.is_empty())
                        .map(str::to_ascii_lowercase)
                        .unwrap_or_else(|| dashed(ip));
                    match list.iter_mut().find(|e| e.ip == ip && e.label == label) {
                        Some(e) => e.ports.extend(ports.iter().cloned()),
                        None => list.push(Endpoint { ip, label, ports: ports.clone() }),
                    }
                }
            }
        }
        let mut names = Names { network, serial, ..Names::default() };
        let domain = names.network.domain.clone();
        for svc in services {
            let Some(k) = key(&svc.metadata) else { continue };
            let spec = svc.spec.as_ref();
            let cluster_ip = spec.and_then(|s| s.cluster_ip.as_deref()).unwrap_or("");
            let target = if spec.and_then(|s| s.type_.as_deref()) == Some("ExternalName") {
                match spec.and_then(|s| s.external_name.as_deref()).filter(|n| !n.is_empty()) {
                    Some(n) => Target::External(n.trim_end_matches('.').to_ascii_lowercase()),
                    None => continue,
                }
            } else if cluster_ip == "None" {
                Target::Headless
            } else {
                // A Service not yet given an address has no name yet.
                let Ok(ip) = cluster_ip.parse::<Ipv4Addr>() else { continue };
                Target::ClusterIp(ip)
            };
            let ports = spec
                .and_then(|s| s.ports.as_ref())
                .into_iter()
                .flatten()
                .filter_map(|p| port_of(p.name.as_ref(), p.protocol.as_ref(), p.port))
                .collect();
            let endpoints = ready.remove(&k).unwrap_or_default();
            let (ns, name) = &k;
            match &target {
                Target::ClusterIp(ip) => {
                    names.reverse.entry(*ip).or_default().push(format!("{name}.{ns}.svc.{domain}"));
                }
                Target::Headless => {
                    for e in &endpoints {
                        let fqdn = format!("{}.{name}.{ns}.svc.{domain}", e.label);
                        names.reverse.entry(e.ip).or_default().push(fqdn);
                    }
                }
                Target::External(_) => {}
            }
            names.namespaces.insert(ns.clone());
            names.services.insert(k, ServiceNames { target, ports, endpoints });
        }
        for list in names.reverse.values_mut() {
            list.sort();
            list.dedup();
        }
        names
    }

    /// A Service's records, by lower-case namespace and name.
    pub fn service(&self, namespace: &str, name: &str) -> Option<&ServiceNames> {
        self.services.get(&(namespace.to_string(), name.to_string()))
    }

    /// Whether any Service lives in the namespace.
    pub fn has_namespace(&self, namespace: &str) -> bool {
        self.namespaces.contains(namespace)
    }

    /// The names an address points back to (PTR targets, without the final dot).
    pub fn reverse(&self, ip: Ipv4Addr) -> &[String] {
        self.reverse.get(&ip).map(Vec::as_slice).unwrap_or(&[])
    }

    /// How many Services have names.
    pub fn len(&self) -> usize {
        self.services.len()
    }

    /// Whether no Service has a name.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }
}
