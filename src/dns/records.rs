//! What the cluster DNS answers for one question, as Kubernetes' DNS
//! specification and CoreDNS's `kubernetes` plugin (`pods insecure`) do:
//!
//! * `svc.ns.svc.<domain>` — the ClusterIP; a headless Service's ready
//!   endpoint addresses; an ExternalName Service's CNAME;
//! * `host.svc.ns.svc.<domain>` — the endpoint whose hostname (or dashed
//!   address) is `host` (StatefulSet pods);
//! * `_port._proto.svc.ns.svc.<domain>` — SRV for named ports, with the
//!   targets' A records in the additional section;
//! * `a-b-c-d.ns.pod.<domain>` — that address;
//! * `d.c.b.a.in-addr.arpa` — PTR for ClusterIPs and headless endpoints;
//! * anything else in the domain (or in the service range's reverse zone):
//!   NXDOMAIN, an existing name without that type: NOERROR and no answers —
//!   both with the SOA for negative caching; everything else is forwarded.
//!
//! Pure: a [`Names`] snapshot and a question in, records out.

use std::net::Ipv4Addr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{CNAME, PTR, SOA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::names::{NamedPort, Names, ServiceNames, Target};

/// The TTL of every cluster record (CoreDNS's default for them).
pub const TTL: u32 = 5;

/// The cluster's reply to a question.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reply {
    /// NOERROR or NXDOMAIN.
    pub code: ResponseCode,
    /// The answer section.
    pub answers: Vec<Record>,
    /// The authority section (the SOA of a negative answer).
    pub authority: Vec<Record>,
    /// The additional section (addresses of SRV targets).
    pub additionals: Vec<Record>,
}

/// Who answers a question.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Not a cluster name: the host's resolvers answer it.
    Forward,
    /// The cluster's own (authoritative) answer.
    Local(Reply),
}

/// A name from its text (with or without the final dot); `None` when the
/// text is not a valid name.
fn name(text: &str) -> Option<Name> {
    let mut n = Name::from_ascii(text).ok()?;
    n.set_fqdn(true);
    Some(n)
}

fn record(owner: &str, data: RData) -> Option<Record> {
    Some(Record::from_rdata(name(owner)?, TTL, data))
}

fn a(owner: &str, ip: Ipv4Addr) -> Option<Record> {
    record(owner, RData::A(ip.into()))
}

/// The cluster zone's SOA, owned by `zone`.
fn soa(names: &Names, zone: &str) -> Vec<Record> {
    let domain = &names.network.domain;
    let (Some(mname), Some(rname)) = (name(&format!("ns.dns.{domain}")), name(&format!("hostmaster.{domain}"))) else {
        return Vec::new();
    };
    let data = SOA::new(mname, rname, names.serial, 7200, 1800, 86400, TTL);
    record(zone, RData::SOA(data)).into_iter().collect()
}

fn negative(names: &Names, zone: &str, code: ResponseCode) -> Answer {
    Answer::Local(Reply { code, authority: soa(names, zone), ..Reply::default() })
}

fn positive(answers: Vec<Record>, additionals: Vec<Record>) -> Answer {
    Answer::Local(Reply { code: ResponseCode::NoError, answers, additionals, authority: Vec::new() })
}

/// Records answering, or NOERROR without answers when there are none.
fn records_or_nodata(names: &Names, answers: Vec<Record>, additionals: Vec<Record>) -> Answer {
    if answers.is_empty() {
        negative(names, &names.network.domain, ResponseCode::NoError)
    } else {
        positive(answers, additionals)
    }
}

/// The answer to `qname` (any case, final dot optional) of type `qtype`.
pub fn answer(names: &Names, qname: &str, qtype: RecordType) -> Answer {
    let q = qname.trim_end_matches('.').to_ascii_lowercase();
    if let Some(ip) = reverse_v4(&q) {
        return reverse(names, &q, ip, qtype);
    }
    let domain = names.network.domain.as_str();
    let labels: Vec<&str> = if q == domain {
        Vec::new()
    } else {
        match q.strip_suffix(domain).and_then(|p| p.strip_suffix('.')) {
            Some(prefix) => prefix.split('.').collect(),
            None => return Answer::Forward,
        }
    };
    let nxdomain = || negative(names, domain, ResponseCode::NXDomain);
    let nodata = || negative(names, domain, ResponseCode::NoError);
    match labels.as_slice() {
        [] if qtype == RecordType::SOA => positive(soa(names, domain), Vec::new()),
        [] | ["svc"] | ["pod"] | [_, "pod"] => nodata(),
        [ns, "svc"] if names.has_namespace(ns) => nodata(),
        [svc, ns, "svc"] => match names.service(ns, svc) {
            Some(s) => service(names, &q, s, qtype),
            None => nxdomain(),
        },
        [host, svc, ns, "svc"] => match names.service(ns, svc) {
            // `_tcp.svc.ns.svc`: the parent of SRV names exists, without records.
            Some(_) if host.starts_with('_') => nodata(),
            Some(s) => endpoint(names, &q, s, host, qtype),
            None => nxdomain(),
        },
        [port, proto, svc, ns, "svc"] if port.starts_with('_') && proto.starts_with('_') => {
            match names.service(ns, svc) {
                Some(s) => {
                    let (port, proto) = (port.trim_start_matches('_'), proto.trim_start_matches('_'));
                    let has = |p: &NamedPort| p.name == port && p.protocol == proto;
                    let exists = s.ports.iter().any(has) || s.endpoints.iter().any(|e| e.ports.iter().any(has));
                    if !exists {
                        nxdomain()
                    } else if matches!(qtype, RecordType::SRV | RecordType::ANY) {
                        let (srv, extra) = srv_records(names, s, &q, svc, ns, Some((port, proto)));
                        records_or_nodata(names, srv, extra)
                    } else {
                        nodata()
                    }
                }
                None => nxdomain(),
            }
        }
        [ip, _ns, "pod"] => match ip.replace('-', ".").parse::<Ipv4Addr>() {
            Ok(addr) if ip.contains('-') => match qtype {
                RecordType::A | RecordType::ANY => positive(a(&q, addr).into_iter().collect(), Vec::new()),
                _ => nodata(),
            },
            _ => nxdomain(),
        },
        _ => nxdomain(),
    }
}

/// A Service's own name.
fn service(names: &Names, q: &str, s: &ServiceNames, qtype: RecordType) -> Answer {
    if let Target::External(cname) = &s.target {
        return match (qtype, name(cname)) {
            (RecordType::A | RecordType::AAAA | RecordType::CNAME | RecordType::ANY, Some(to)) => {
                positive(record(q, RData::CNAME(CNAME(to))).into_iter().collect(), Vec::new())
            }
            _ => records_or_nodata(names, Vec::new(), Vec::new()),
        };
    }
    match qtype {
        RecordType::A | RecordType::ANY => {
            let answers = match s.target {
                Target::ClusterIp(ip) => a(q, ip).into_iter().collect(),
                _ => {
                    let mut ips: Vec<Ipv4Addr> = s.endpoints.iter().map(|e| e.ip).collect();
                    ips.sort();
                    ips.dedup();
                    ips.into_iter().filter_map(|ip| a(q, ip)).collect()
                }
            };
            records_or_nodata(names, answers, Vec::new())
        }
        RecordType::SRV => {
            let (svc, ns) = split_service(q);
            let (srv, extra) = srv_records(names, s, q, svc, ns, None);
            records_or_nodata(names, srv, extra)
        }
        _ => records_or_nodata(names, Vec::new(), Vec::new()),
    }
}

/// `svc` and `ns` of `…svc.ns.svc.<domain>` (the service's own name).
fn split_service(q: &str) -> (&str, &str) {
    let mut it = q.split('.');
    (it.next().unwrap_or(""), it.next().unwrap_or(""))
}

/// An endpoint's name (`host.svc.ns.svc.<domain>`).
fn endpoint(names: &Names, q: &str, s: &ServiceNames, host: &str, qtype: RecordType) -> Answer {
    let found: Vec<Ipv4Addr> = s.endpoints.iter().filter(|e| e.label == host).map(|e| e.ip).collect();
    if found.is_empty() {
        return negative(names, &names.network.domain, ResponseCode::NXDomain);
    }
    let answers = match qtype {
        RecordType::A | RecordType::ANY => found.into_iter().filter_map(|ip| a(q, ip)).collect(),
        _ => Vec::new(),
    };
    records_or_nodata(names, answers, Vec::new())
}

/// SRV records of a Service (for one named port and protocol, or all named
/// ports), and the A records of their targets.
fn srv_records(
    names: &Names,
    s: &ServiceNames,
    q: &str,
    svc: &str,
    ns: &str,
    only: Option<(&str, &str)>,
) -> (Vec<Record>, Vec<Record>) {
    let domain = &names.network.domain;
    let wanted = |p: &NamedPort| only.is_none_or(|(n, proto)| p.name == n && p.protocol == proto);
    let service_name = format!("{svc}.{ns}.svc.{domain}");
    // (target name, address, port)
    let mut targets: Vec<(String, Ipv4Addr, u16)> = Vec::new();
    match s.target {
        Target::ClusterIp(ip) => {
            for p in s.ports.iter().filter(|p| wanted(p)) {
                targets.push((service_name.clone(), ip, p.port));
            }
        }
        Target::Headless => {
            for e in &s.endpoints {
                for p in e.ports.iter().filter(|p| wanted(p)) {
                    targets.push((format!("{}.{service_name}", e.label), e.ip, p.port));
                }
            }
        }
        Target::External(_) => {}
    }
    targets.sort();
    targets.dedup();
    let weight = u16::try_from(100 / targets.len().max(1)).unwrap_or(1).max(1);
    let mut answers = Vec::new();
    let mut additionals: Vec<Record> = Vec::new();
    for (target, ip, port) in &targets {
        let Some(t) = name(target) else { continue };
        answers.extend(record(q, RData::SRV(SRV::new(0, weight, *port, t))));
        if !additionals.iter().any(|r| r.name.to_ascii().trim_end_matches('.') == target) {
            additionals.extend(a(target, *ip));
        }
    }
    (answers, additionals)
}

/// `d.c.b.a.in-addr.arpa` → `a.b.c.d` (only whole IPv4 addresses).
fn reverse_v4(q: &str) -> Option<Ipv4Addr> {
    let rest = q.strip_suffix(".in-addr.arpa")?;
    let octets: Vec<u8> = rest.split('.').map(|o| o.parse().ok()).collect::<Option<_>>()?;
    match octets.as_slice() {
        [d, c, b, a] => Some(Ipv4Addr::new(*a, *b, *c, *d)),
        _ => None,
    }
}

/// A PTR question: cluster addresses answer; the service range is ours
/// (NXDOMAIN when unknown); other addresses go to the host's resolvers.
fn reverse(names: &Names, q: &str, ip: Ipv4Addr, qtype: RecordType) -> Answer {
    let targets = names.reverse(ip);
    if targets.is_empty() {
        return if names.network.contains(ip) {
            negative(names, "in-addr.arpa", ResponseCode::NXDomain)
        } else {
            Answer::Forward
        };
    }
    if !matches!(qtype, RecordType::PTR | RecordType::ANY) {
        return negative(names, "in-addr.arpa", ResponseCode::NoError);
    }
    let answers = targets.iter().filter_map(|t| record(q, RData::PTR(PTR(name(t)?)))).collect();
    positive(answers, Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::network::ServiceNetwork;
    use serde_json::json;

    fn names() -> Names {
        let svc = |ns: &str, name: &str, spec: serde_json::Value| -> k8s_openapi::api::core::v1::Service {
            serde_json::from_value(json!({"metadata": {"namespace": ns, "name": name}, "spec": spec})).unwrap()
        };
        let services = vec![
            svc(
                "default",
                "web",
                json!({"clusterIP": "10.96.0.20", "ports": [{"name": "http", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}]}),
            ),
            svc("default", "db", json!({"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]})),
            svc("default", "pending", json!({"ports": [{"port": 1}]})),
            svc("tools", "search", json!({"type": "ExternalName", "externalName": "search.example.com."})),
            svc("default", "empty", json!({"clusterIP": "None"})),
        ];
        let endpoints: Vec<k8s_openapi::api::core::v1::Endpoints> = vec![
            serde_json::from_value(json!({"metadata": {"namespace": "default", "name": "db"}, "subsets": [{
                "addresses": [{"ip": "10.244.1.5", "hostname": "db-0"}, {"ip": "10.244.2.7"}],
                "notReadyAddresses": [{"ip": "10.244.3.9", "hostname": "db-2"}],
                "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]}]}))
            .unwrap(),
            serde_json::from_value(json!({"metadata": {"namespace": "default", "name": "web"}, "subsets": [{
                "addresses": [{"ip": "10.244.1.6"}], "ports": [{"name": "http", "port": 8080}]}]}))
            .unwrap(),
        ];
        Names::build(ServiceNetwork::default(), 7, &services, &endpoints)
    }

    /// The reply as text: code; answers; authority; additionals (records as `owner ttl IN type data`).
    fn text(answer: Answer) -> String {
        match answer {
            Answer::Forward => "forward".into(),
            Answer::Local(r) => {
                let list = |rs: &[Record]| rs.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(" | ");
                let code = format!("{:?}", r.code);
                format!("{code}; {}; {}; {}", list(&r.answers), list(&r.authority), list(&r.additionals))
            }
        }
    }

    const SOA_TEXT: &str =
        "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 7 7200 1800 86400 5";

    #[test]
    fn answers_follow_the_kubernetes_dns_spec() {
        let n = names();
        let nodata = format!("NoError; ; {SOA_TEXT}; ");
        let nxdomain = format!("NXDomain; ; {SOA_TEXT}; ");
        let cases: Vec<(&str, RecordType, String)> = vec![
            ("web.default.svc.cluster.local.", RecordType::A, "NoError; web.default.svc.cluster.local. 5 IN A 10.96.0.20; ; ".into()),
            ("Web.Default.SVC.cluster.local", RecordType::A, "NoError; web.default.svc.cluster.local. 5 IN A 10.96.0.20; ; ".into()),
            ("web.default.svc.cluster.local.", RecordType::AAAA, nodata.clone()),
            ("web.default.svc.cluster.local.", RecordType::MX, nodata.clone()),
            ("db.default.svc.cluster.local.", RecordType::A,
                "NoError; db.default.svc.cluster.local. 5 IN A 10.244.1.5 | db.default.svc.cluster.local. 5 IN A 10.244.2.7; ; ".into()),
            ("empty.default.svc.cluster.local.", RecordType::A, nodata.clone()),
            ("db-0.db.default.svc.cluster.local.", RecordType::A, "NoError; db-0.db.default.svc.cluster.local. 5 IN A 10.244.1.5; ; ".into()),
            ("10-244-2-7.db.default.svc.cluster.local.", RecordType::A,
                "NoError; 10-244-2-7.db.default.svc.cluster.local. 5 IN A 10.244.2.7; ; ".into()),
            ("db-2.db.default.svc.cluster.local.", RecordType::A, nxdomain.clone()),
            ("db-0.db.default.svc.cluster.local.", RecordType::AAAA, nodata.clone()),
            ("_http._tcp.web.default.svc.cluster.local.", RecordType::SRV,
                "NoError; _http._tcp.web.default.svc.cluster.local. 5 IN SRV 0 100 80 web.default.svc.cluster.local.; ; web.default.svc.cluster.local. 5 IN A 10.96.0.20".into()),
            ("_dns._udp.web.default.svc.cluster.local.", RecordType::SRV,
                "NoError; _dns._udp.web.default.svc.cluster.local. 5 IN SRV 0 100 53 web.default.svc.cluster.local.; ; web.default.svc.cluster.local. 5 IN A 10.96.0.20".into()),
            ("_dns._tcp.web.default.svc.cluster.local.", RecordType::SRV, nxdomain.clone()),
            ("_pg._tcp.db.default.svc.cluster.local.", RecordType::SRV,
                "NoError; _pg._tcp.db.default.svc.cluster.local. 5 IN SRV 0 50 5432 10-244-2-7.db.default.svc.cluster.local. | _pg._tcp.db.default.svc.cluster.local. 5 IN SRV 0 50 5432 db-0.db.default.svc.cluster.local.; ; 10-244-2-7.db.default.svc.cluster.local. 5 IN A 10.244.2.7 | db-0.db.default.svc.cluster.local. 5 IN A 10.244.1.5".into()),
            ("_pg._tcp.db.default.svc.cluster.local.", RecordType::A, nodata.clone()),
            ("_tcp.db.default.svc.cluster.local.", RecordType::SRV, nodata.clone()),
            ("search.tools.svc.cluster.local.", RecordType::A,
                "NoError; search.tools.svc.cluster.local. 5 IN CNAME search.example.com.; ; ".into()),
            ("pending.default.svc.cluster.local.", RecordType::A, nxdomain.clone()),
            ("nope.default.svc.cluster.local.", RecordType::A, nxdomain.clone()),
            ("default.svc.cluster.local.", RecordType::A, nodata.clone()),
            ("nowhere.svc.cluster.local.", RecordType::A, nxdomain.clone()),
            ("svc.cluster.local.", RecordType::A, nodata.clone()),
            ("cluster.local.", RecordType::A, nodata.clone()),
            ("cluster.local.", RecordType::SOA, format!("NoError; {SOA_TEXT}; ; ")),
            ("a.b.c.d.e.svc.cluster.local.", RecordType::A, nxdomain.clone()),
            ("10-244-9-9.anyns.pod.cluster.local.", RecordType::A,
                "NoError; 10-244-9-9.anyns.pod.cluster.local. 5 IN A 10.244.9.9; ; ".into()),
            ("10-244-9-9.anyns.pod.cluster.local.", RecordType::AAAA, nodata.clone()),
            ("10-244-9.anyns.pod.cluster.local.", RecordType::A, nxdomain.clone()),
            ("20.0.96.10.in-addr.arpa.", RecordType::PTR,
                "NoError; 20.0.96.10.in-addr.arpa. 5 IN PTR web.default.svc.cluster.local.; ; ".into()),
            ("5.1.244.10.in-addr.arpa.", RecordType::PTR,
                "NoError; 5.1.244.10.in-addr.arpa. 5 IN PTR db-0.db.default.svc.cluster.local.; ; ".into()),
            ("99.0.96.10.in-addr.arpa.", RecordType::PTR,
                "NXDomain; ; in-addr.arpa. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 7 7200 1800 86400 5; ".into()),
            ("6.1.244.10.in-addr.arpa.", RecordType::PTR, "forward".into()),
            ("1.1.168.192.in-addr.arpa.", RecordType::PTR, "forward".into()),
            ("96.10.in-addr.arpa.", RecordType::PTR, "forward".into()),
            ("example.com.", RecordType::A, "forward".into()),
            ("local.", RecordType::A, "forward".into()),
            ("xcluster.local.", RecordType::A, "forward".into()),
        ];
        for (q, t, want) in cases {
            assert_eq!(text(answer(&n, q, t)), want, "{q} {t}");
        }
    }

    #[test]
    fn another_domain_is_served_instead() {
        let network = ServiceNetwork::parse("10.0.0.0/24", "30000-30010", "corp.test").unwrap();
        let svc: k8s_openapi::api::core::v1::Service = serde_json::from_value(
            json!({"metadata": {"namespace": "a", "name": "b"}, "spec": {"clusterIP": "10.0.0.9"}}),
        )
        .unwrap();
        let n = Names::build(network, 1, [&svc], []);
        assert_eq!(
            text(answer(&n, "b.a.svc.corp.test", RecordType::A)),
            "NoError; b.a.svc.corp.test. 5 IN A 10.0.0.9; ; "
        );
        assert_eq!(text(answer(&n, "b.a.svc.cluster.local", RecordType::A)), "forward");
    }
}
