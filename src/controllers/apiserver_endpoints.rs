//! The endpoints of the `default/kubernetes` Service: the API addresses of
//! the control-plane members, so a pod reaches the API through the Service
//! with its service-account token. The Service has no selector; as
//! Kubernetes' API servers do, this writes its Endpoints (port `https`,
//! marked not to be mirrored) and its EndpointSlices itself.
//!
//! Members are not objects: they are records under
//! [`keys::MEMBERS`](crate::objects::conventions::keys::MEMBERS), read from
//! the node's replica at each reconcile. Nothing announces a change to them,
//! so the reconcile looks again every [`RESYNC`], and whenever a Node object
//! changes (a joining node registers its Node right after its member record).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::core::v1::{EndpointAddress, EndpointPort, EndpointSubset};
use k8s_openapi::api::discovery::v1 as discovery;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use super::endpoints::write;
use super::endpointslice::{MANAGED_BY_LABEL, SERVICE_NAME_LABEL, SKIP_MIRROR_LABEL};
use super::framework::{Action, Cache, Outcome, Reconciler};
use crate::objects::conventions::keys;
use crate::objects::kinds::{self, Kind};
use crate::objects::typed::Object;
use crate::objects::{key_of, meta_str, resource_version};

/// The Service's namespace.
pub const NAMESPACE: &str = "default";
/// The Service's name.
pub const NAME: &str = "kubernetes";
/// The name of its port.
pub const PORT_NAME: &str = "https";
/// How often the members are read again.
pub const RESYNC: Duration = Duration::from_secs(10);

/// A node's registration record (the fields read here).
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    /// The node's name.
    pub name: String,
    /// Its Raft transport address.
    #[serde(default)]
    pub raft_addr: String,
    /// Its API address.
    #[serde(default)]
    pub api_addr: String,
    /// Whether it serves the API and the control plane.
    #[serde(default)]
    pub control_plane: bool,
}

/// Reads the current members.
pub type MemberSource = Box<dyn Fn() -> Vec<Member> + Send>;

/// The reconciler of the `kubernetes` Service's endpoints.
pub struct ApiServerEndpoints {
    /// Where the member records come from.
    pub members: MemberSource,
}

impl ApiServerEndpoints {
    /// The reconciler, reading members from the node's replica.
    pub fn reading(reader: clusterd_raft::StoreReader) -> Self {
        let members = move || match reader.list(keys::MEMBERS) {
            Ok((kvs, _)) => kvs.iter().filter_map(|kv| serde_json::from_slice(&kv.value).ok()).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "reading members for the kubernetes Service's endpoints");
                Vec::new()
            }
        };
        ApiServerEndpoints { members: Box::new(members) }
    }
}

/// The API addresses of the control-plane members, by port. A member whose
/// API listens on every address (`0.0.0.0`) is reached at its Node's
/// InternalIP (`node_ip`), else at its Raft address's IP.
pub fn api_addresses(members: &[Member], node_ip: impl Fn(&str) -> Option<IpAddr>) -> BTreeMap<u16, BTreeSet<IpAddr>> {
    let mut out: BTreeMap<u16, BTreeSet<IpAddr>> = BTreeMap::new();
    for m in members.iter().filter(|m| m.control_plane) {
        let Ok(api) = m.api_addr.parse::<SocketAddr>() else { continue };
        let ip = if api.ip().is_unspecified() {
            node_ip(&m.name).or_else(|| m.raft_addr.parse::<SocketAddr>().ok().map(|a| a.ip()))
        } else {
            Some(api.ip())
        };
        if let Some(ip) = ip.filter(|ip| !ip.is_unspecified()) {
            out.entry(api.port()).or_default().insert(ip);
        }
    }
    out
}

fn https(port: u16) -> EndpointPort {
    EndpointPort { name: Some(PORT_NAME.into()), port: port.into(), protocol: Some("TCP".into()), app_protocol: None }
}

/// The Endpoints' subsets: one per API port.
pub fn subsets(addrs: &BTreeMap<u16, BTreeSet<IpAddr>>) -> Vec<EndpointSubset> {
    addrs
        .iter()
        .map(|(port, ips)| EndpointSubset {
            addresses: Some(
                ips.iter().map(|ip| EndpointAddress { ip: ip.to_string(), ..Default::default() }).collect(),
            ),
            not_ready_addresses: None,
            ports: Some(vec![https(*port)]),
        })
        .collect()
}

/// The slices: one per API port and address family, the first named
/// `kubernetes`, the others after their port and family.
pub fn slices(addrs: &BTreeMap<u16, BTreeSet<IpAddr>>) -> Vec<discovery::EndpointSlice> {
    let mut out = Vec::new();
    for (port, ips) in addrs {
        for (family, v6) in [("IPv4", false), ("IPv6", true)] {
            let endpoints: Vec<discovery::Endpoint> = ips
                .iter()
                .filter(|ip| ip.is_ipv6() == v6)
                .map(|ip| discovery::Endpoint {
                    addresses: vec![ip.to_string()],
                    conditions: Some(discovery::EndpointConditions { ready: Some(true), ..Default::default() }),
                    ..Default::default()
                })
                .collect();
            if endpoints.is_empty() {
                continue;
            }
            let name = match (out.is_empty(), v6) {
                (true, _) => NAME.to_string(),
                (false, false) => format!("{NAME}-{port}"),
                (false, true) => format!("{NAME}-{port}-ipv6"),
            };
            out.push(discovery::EndpointSlice {
                metadata: ObjectMeta {
                    name: Some(name),
                    namespace: Some(NAMESPACE.into()),
                    labels: Some(BTreeMap::from([(SERVICE_NAME_LABEL.to_string(), NAME.to_string())])),
                    ..Default::default()
                },
                address_type: family.into(),
                endpoints,
                ports: Some(vec![discovery::EndpointPort {
                    name: Some(PORT_NAME.into()),
                    port: Some((*port).into()),
                    protocol: Some("TCP".into()),
                    app_protocol: None,
                }]),
            });
        }
    }
    out
}

/// The writes that make the existing slices (this reconciler's) the wanted ones.
fn slice_writes(wanted: Vec<discovery::EndpointSlice>, existing: Vec<&Object>) -> Vec<Action> {
    let mut by_name: BTreeMap<&str, &Object> = existing.into_iter().map(|o| (meta_str(o, "name"), o)).collect();
    let mut actions = Vec::new();
    for slice in wanted {
        let name = slice.metadata.name.clone().unwrap_or_default();
        match by_name.remove(name.as_str()) {
            None => actions.push(Action::Create(serde_json::to_value(slice).expect("EndpointSlices serialize"))),
            Some(obj) => match obj.endpoint_slice() {
                Some(cur)
                    if cur.endpoints == slice.endpoints
                        && cur.ports == slice.ports
                        && cur.address_type == slice.address_type
                        && cur.metadata.labels == slice.metadata.labels => {}
                Some(cur) => {
                    let mut next = cur.clone();
                    next.endpoints = slice.endpoints;
                    next.ports = slice.ports;
                    next.address_type = slice.address_type;
                    next.metadata.labels = slice.metadata.labels;
                    actions.push(Action::Replace(obj.with(&next)));
                }
                None => {
                    let mut slice = slice;
                    slice.metadata.resource_version = Some(meta_str(obj, "resourceVersion").into());
                    actions.push(Action::Replace(serde_json::to_value(slice).expect("EndpointSlices serialize")));
                }
            },
        }
    }
    actions.extend(
        by_name.into_values().map(|o| Action::Delete { key: key_of(o).unwrap_or_default(), rv: resource_version(o) }),
    );
    actions
}

/// Whether a slice is one of the `kubernetes` Service's written here (the
/// slice controllers' carry a managed-by label).
fn ours(obj: &Value) -> bool {
    let labels = &obj["metadata"]["labels"];
    meta_str(obj, "namespace") == NAMESPACE && labels[SERVICE_NAME_LABEL] == NAME && labels[MANAGED_BY_LABEL].is_null()
}

fn node_internal_ip(cache: &Cache, name: &str) -> Option<IpAddr> {
    let node = cache.object(&kinds::NODE, &kinds::NODE.key("", name))?.node()?;
    let addrs = node.status.as_ref()?.addresses.as_ref()?;
    addrs.iter().find(|a| a.type_ == "InternalIP")?.address.parse().ok()
}

impl Reconciler for ApiServerEndpoints {
    const NAME: &'static str = "apiserver-endpoints";
    const PRIMARY: &'static Kind = &kinds::SERVICE;

    fn watches(&self) -> Vec<&'static Kind> {
        vec![&kinds::SERVICE, &kinds::ENDPOINTS, &kinds::ENDPOINT_SLICE, &kinds::NODE]
    }

    fn affected(&self, obj: &Value, _cache: &Cache) -> Vec<String> {
        let me = || vec![kinds::SERVICE.key(NAMESPACE, NAME)];
        let named = meta_str(obj, "namespace") == NAMESPACE && meta_str(obj, "name") == NAME;
        match Kind::of(obj) {
            Some(k) if (*k == kinds::SERVICE || *k == kinds::ENDPOINTS) && named => me(),
            Some(k) if *k == kinds::ENDPOINT_SLICE && ours(obj) => me(),
            Some(k) if *k == kinds::NODE => me(),
            _ => vec![],
        }
    }

    fn reconcile(&self, key: &str, cache: &Cache, _now: chrono::DateTime<chrono::Utc>) -> Outcome {
        if key != kinds::SERVICE.key(NAMESPACE, NAME) {
            return Outcome::default();
        }
        let mut out = Outcome { requeue_after: Some(RESYNC), ..Default::default() };
        // Until the Service exists its endpoints would be deleted as leftovers.
        if cache.object(&kinds::SERVICE, key).is_none() {
            return out;
        }
        let addrs = api_addresses(&(self.members)(), |name| node_internal_ip(cache, name));
        if addrs.is_empty() {
            return out;
        }
        let current = cache.object(&kinds::ENDPOINTS, &kinds::ENDPOINTS.key(NAMESPACE, NAME));
        let labels = BTreeMap::from([(SKIP_MIRROR_LABEL.to_string(), "true".to_string())]);
        out.actions.extend(write(current, NAMESPACE, NAME, labels, subsets(&addrs)));
        let existing = cache.objects_in(&kinds::ENDPOINT_SLICE, NAMESPACE).filter(|o| ours(o)).collect();
        out.actions.extend(slice_writes(slices(&addrs), existing));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KEY: &str = "/registry/services/specs/default/kubernetes";

    fn member(name: &str, api: &str, cp: bool) -> Member {
        Member { name: name.into(), raft_addr: "192.0.2.9:7000".into(), api_addr: api.into(), control_plane: cp }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn control_plane_api_addresses_by_port() {
        let members = [
            member("a", "10.1.0.1:6443", true),
            member("b", "10.1.0.2:6443", true),
            member("c", "10.1.0.3:7443", true),
            member("worker", "10.1.0.4:6443", false),
            member("any", "0.0.0.0:6443", true),
            member("lost", "0.0.0.0:6443", true),
            member("bad", "nowhere", true),
        ];
        let node_ip = |name: &str| (name == "any").then(|| ip("10.1.0.5"));
        let mut fallback = members[5].clone();
        fallback.raft_addr = "0.0.0.0:7000".into();
        let got = api_addresses(&members[..5], node_ip);
        let want = BTreeMap::from([
            (6443, BTreeSet::from([ip("10.1.0.1"), ip("10.1.0.2"), ip("10.1.0.5")])),
            (7443, BTreeSet::from([ip("10.1.0.3")])),
        ]);
        assert_eq!(got, want);
        // No node address: the Raft address's IP; none at all: left out.
        assert_eq!(api_addresses(&members[5..6], node_ip), BTreeMap::from([(6443, BTreeSet::from([ip("192.0.2.9")]))]));
        assert!(api_addresses(&[fallback, members[6].clone()], node_ip).is_empty());
    }

    fn cache_with_service() -> Cache {
        let mut c = Cache::default();
        c.put(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kubernetes", "namespace": "default", "uid": "k"},
                     "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443, "targetPort": 6443}]}}));
        c
    }

    fn reconciler(members: Vec<Member>) -> ApiServerEndpoints {
        ApiServerEndpoints { members: Box::new(move || members.clone()) }
    }

    fn apply(c: &mut Cache, out: &Outcome) {
        for a in &out.actions {
            match a {
                Action::Create(o) | Action::Replace(o) => {
                    let mut o = o.clone();
                    o["metadata"]["resourceVersion"] = json!("9");
                    c.put(o);
                }
                Action::Delete { key, .. } => {
                    let o = c.get(&kinds::ENDPOINT_SLICE, key).unwrap().clone();
                    c.remove(&o);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn endpoints_and_slices_follow_the_members() {
        let mut c = cache_with_service();
        let two = reconciler(vec![member("a", "10.1.0.1:6443", true), member("c", "10.1.0.3:7443", true)]);
        assert_eq!(
            reconciler(vec![]).reconcile("/registry/services/specs/default/other", &c, chrono::Utc::now()),
            Outcome::default()
        );
        let out = two.reconcile(KEY, &c, chrono::Utc::now());
        assert_eq!(out.requeue_after, Some(RESYNC));
        let written: Vec<&Value> =
            out.actions.iter().filter_map(|a| if let Action::Create(o) = a { Some(o) } else { None }).collect();
        assert_eq!(written.len(), 3, "{out:?}");
        assert_eq!(
            (&written[0]["metadata"]["labels"], &written[0]["subsets"]),
            (
                &json!({SKIP_MIRROR_LABEL: "true"}),
                &json!([{"addresses": [{"ip": "10.1.0.1"}], "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]},
                        {"addresses": [{"ip": "10.1.0.3"}], "ports": [{"name": "https", "port": 7443, "protocol": "TCP"}]}])
            )
        );
        let names: Vec<&Value> = written[1..].iter().map(|s| &s["metadata"]["name"]).collect();
        assert_eq!(names, [&json!("kubernetes"), &json!("kubernetes-7443")]);
        assert_eq!(written[1]["endpoints"], json!([{"addresses": ["10.1.0.1"], "conditions": {"ready": true}}]));
        assert_eq!(written[1]["metadata"]["labels"], json!({SERVICE_NAME_LABEL: "kubernetes"}));
        apply(&mut c, &out);
        assert!(two.reconcile(KEY, &c, chrono::Utc::now()).actions.is_empty(), "unchanged members write nothing");
        // Member c leaves: its subset and slice go.
        let one = reconciler(vec![member("a", "10.1.0.1:6443", true)]);
        let out = one.reconcile(KEY, &c, chrono::Utc::now());
        assert!(
            matches!(&out.actions[..], [Action::Replace(_), Action::Delete { key, .. }] if key.ends_with("kubernetes-7443")),
            "{out:?}"
        );
    }

    #[test]
    fn nothing_is_written_before_the_service_exists() {
        let out =
            reconciler(vec![member("a", "10.1.0.1:6443", true)]).reconcile(KEY, &Cache::default(), chrono::Utc::now());
        assert_eq!(out, Outcome { actions: vec![], requeue_after: Some(RESYNC) });
    }
}
