//! The Endpoints controller: every Service with a selector gets an Endpoints
//! object of its name listing the pods behind it — ready ones in `addresses`,
//! the others in `notReadyAddresses` — grouped into subsets by the ports each
//! pod serves. The node proxies and cluster DNS read these, so a pod failing
//! its readiness probe leaves the Service's traffic with one write here.
//!
//! Services without a selector are left alone (their Endpoints are written
//! by hand, or by the API server for `default/kubernetes`). When a Service
//! is deleted its Endpoints go too — once the store, not just this node's informer,
//! confirms the Service is gone: Endpoints carry no owner reference, and a
//! hand-written one must not be lost to an informer that has not listed
//! Services yet.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use super::framework::{Action, Cache, Outcome, Reconciler};
use super::service_pods::{backends, service_name, services_selecting, Backend, BackendPort};
use crate::objects::kinds::{self, Kind};
use crate::objects::typed::Object;
use crate::objects::{key_of, meta_str, resource_version};

/// The label Kubernetes puts on the Endpoints (and slices) of a headless Service.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";

/// Whether the Service at a store key is still stored (asked of the store
/// itself, not an informer; true when the store cannot say).
pub type ServiceStored = Box<dyn Fn(&str) -> bool + Send>;

/// The Endpoints reconciler.
pub struct ServiceEndpoints {
    /// Asked before the Endpoints of a Service missing from the cache are deleted.
    pub service_stored: ServiceStored,
}

impl ServiceEndpoints {
    /// The reconciler, checking Services against the node's replica.
    pub fn reading(reader: clusterd_raft::StoreReader) -> Self {
        ServiceEndpoints { service_stored: Box::new(move |key| !matches!(reader.get(key), Ok(None))) }
    }
}

/// The labels of a Service's Endpoints and EndpointSlices: the Service's
/// own, and the headless label on those of a headless Service.
pub fn labels_for(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    if svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None") {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    } else {
        labels.remove(HEADLESS_LABEL);
    }
    labels
}

/// The subsets of a Service's Endpoints from its backends (sorted, as
/// [`backends`] returns them): one subset per distinct set of resolved ports;
/// ready pods (all, with `publishNotReadyAddresses`) in `addresses`, the rest
/// in `notReadyAddresses`; terminating pods only with
/// `publishNotReadyAddresses`, as Kubernetes does.
pub fn subsets(svc: &Service, backends: &[Backend]) -> Vec<EndpointSubset> {
    let publish = svc.spec.as_ref().and_then(|s| s.publish_not_ready_addresses) == Some(true);
    let mut groups: BTreeMap<&[BackendPort], (Vec<EndpointAddress>, Vec<EndpointAddress>)> = BTreeMap::new();
    for b in backends.iter().filter(|b| publish || !b.terminating) {
        let addr = EndpointAddress {
            ip: b.ip.clone(),
            node_name: b.node_name.clone(),
            target_ref: Some(b.target_ref.clone()),
            hostname: b.hostname.clone(),
        };
        let (ready, not_ready) = groups.entry(&b.ports[..]).or_default();
        if publish || b.ready { ready } else { not_ready }.push(addr);
    }
    let some = |v: Vec<EndpointAddress>| (!v.is_empty()).then_some(v);
    groups
        .into_iter()
        .map(|(ports, (ready, not_ready))| EndpointSubset {
            addresses: some(ready),
            not_ready_addresses: some(not_ready),
            ports: (!ports.is_empty()).then(|| ports.iter().map(endpoint_port).collect()),
        })
        .collect()
}

/// A resolved port as an Endpoints port (an empty name is left out).
pub fn endpoint_port(p: &BackendPort) -> EndpointPort {
    EndpointPort {
        name: (!p.name.is_empty()).then(|| p.name.clone()),
        port: p.port,
        protocol: Some(p.protocol.clone()),
        app_protocol: p.app_protocol.clone(),
    }
}

/// The write that makes `current` (None: absent) hold `subsets` and
/// `labels`; None when it already does.
pub fn write(
    current: Option<&Object>,
    ns: &str,
    name: &str,
    labels: BTreeMap<String, String>,
    subsets: Vec<EndpointSubset>,
) -> Option<Action> {
    let subsets = (!subsets.is_empty()).then_some(subsets);
    let labels = (!labels.is_empty()).then_some(labels);
    match current.map(|c| (c, c.endpoints())) {
        None => {
            let ep = Endpoints {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    namespace: Some(ns.into()),
                    labels,
                    ..Default::default()
                },
                subsets,
            };
            Some(Action::Create(serde_json::to_value(ep).expect("Endpoints serialize")))
        }
        Some((obj, Some(cur))) => {
            let same_subsets = cur.subsets.as_ref().filter(|s| !s.is_empty()) == subsets.as_ref();
            let same_labels = cur.metadata.labels.as_ref().filter(|l| !l.is_empty()) == labels.as_ref();
            if same_subsets && same_labels {
                return None;
            }
            let mut next = cur.clone();
            next.subsets = subsets;
            next.metadata.labels = labels;
            Some(Action::Replace(obj.with(&next)))
        }
        // Stored but not readable as Endpoints: replace it whole.
        Some((obj, None)) => {
            let ep = Endpoints {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    namespace: Some(ns.into()),
                    labels,
                    resource_version: Some(meta_str(obj, "resourceVersion").into()),
                    ..Default::default()
                },
                subsets,
            };
            Some(Action::Replace(serde_json::to_value(ep).expect("Endpoints serialize")))
        }
    }
}

impl Reconciler for ServiceEndpoints {
    const NAME: &'static str = "endpoints";
    const PRIMARY: &'static Kind = &kinds::SERVICE;

    fn watches(&self) -> Vec<&'static Kind> {
        vec![&kinds::SERVICE, &kinds::POD, &kinds::ENDPOINTS]
    }

    fn affected(&self, obj: &Value, cache: &Cache) -> Vec<String> {
        match Kind::of(obj) {
            Some(k) if *k == kinds::SERVICE => key_of(obj).into_iter().collect(),
            // Endpoints of a Service (an edit is undone); Endpoints written
            // before their Service are not leftovers (only a Service's
            // deletion takes its Endpoints), as in Kubernetes.
            Some(k) if *k == kinds::ENDPOINTS => {
                let key = kinds::SERVICE.key(meta_str(obj, "namespace"), meta_str(obj, "name"));
                cache.get(&kinds::SERVICE, &key).map(|_| key).into_iter().collect()
            }
            Some(k) if *k == kinds::POD => services_selecting(obj, cache),
            _ => vec![],
        }
    }

    fn reconcile(&self, key: &str, cache: &Cache, _now: chrono::DateTime<chrono::Utc>) -> Outcome {
        let Some((ns, name)) = service_name(key) else { return Outcome::default() };
        let ep_key = kinds::ENDPOINTS.key(ns, name);
        let current = cache.object(&kinds::ENDPOINTS, &ep_key);
        let Some(svc) = cache.object(&kinds::SERVICE, key).and_then(Object::service) else {
            // The Service is gone: so are its Endpoints, once the store agrees.
            return match current {
                Some(cur) if !(self.service_stored)(key) => Outcome {
                    actions: vec![Action::Delete { key: ep_key, rv: resource_version(cur) }],
                    ..Default::default()
                },
                _ => Outcome::default(),
            };
        };
        let pods = cache.objects_in(&kinds::POD, ns).filter_map(Object::pod);
        let Some(backends) = backends(svc, pods) else { return Outcome::default() };
        let action = write(current, ns, name, labels_for(svc), subsets(svc, &backends));
        Outcome { actions: action.into_iter().collect(), ..Default::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::super::service_pods::tests::{pod, service};
    use super::*;
    use serde_json::json;

    const KEY: &str = "/registry/services/specs/d/web";

    fn now() -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::parse_from_rfc3339("2026-01-01T01:00:00Z").unwrap().with_timezone(&chrono::Utc)
    }

    fn stored(yes: bool) -> ServiceEndpoints {
        ServiceEndpoints { service_stored: Box::new(move |_| yes) }
    }

    /// A subset as (ports by name, ready IPs, not-ready IPs).
    type Shape = (Vec<(String, i32)>, Vec<String>, Vec<String>);

    fn shape(subsets: &[EndpointSubset]) -> Vec<Shape> {
        let ips = |a: &Option<Vec<EndpointAddress>>| a.iter().flatten().map(|a| a.ip.clone()).collect::<Vec<_>>();
        subsets
            .iter()
            .map(|s| {
                let ports =
                    s.ports.iter().flatten().map(|p| (p.name.clone().unwrap_or_default(), p.port)).collect::<Vec<_>>();
                (ports, ips(&s.addresses), ips(&s.not_ready_addresses))
            })
            .collect()
    }

    fn subsets_of(svc: Value, pods: Vec<Value>) -> Vec<EndpointSubset> {
        let svc: Service = serde_json::from_value(svc).unwrap();
        let pods: Vec<k8s_openapi::api::core::v1::Pod> =
            pods.into_iter().map(|p| serde_json::from_value(p).unwrap()).collect();
        subsets(&svc, &backends(&svc, pods.iter()).unwrap())
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn subsets_by_readiness_and_resolved_port() {
        let named = json!([{"name": "http", "port": 80, "targetPort": "web"}]);
        let web = |n: i32| json!([{"name": "web", "containerPort": n}]);
        let mut publish = service(named.clone());
        publish["spec"]["publishNotReadyAddresses"] = json!(true);
        let mut going = pod("going", "10.0.0.9", true, web(8080));
        going["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        let http = |n: i32| vec![("http".to_string(), n)];
        // (case, service, pods, expected subsets)
        let cases = [
            (
                "ready and not ready",
                service(named.clone()),
                vec![pod("a", "10.0.0.1", true, web(8080)), pod("b", "10.0.0.2", false, web(8080))],
                vec![(http(8080), s(&["10.0.0.1"]), s(&["10.0.0.2"]))],
            ),
            (
                "publishNotReadyAddresses lists all as ready, terminating too",
                publish,
                vec![pod("a", "10.0.0.1", true, web(8080)), pod("b", "10.0.0.2", false, web(8080)), going.clone()],
                vec![(http(8080), s(&["10.0.0.1", "10.0.0.2", "10.0.0.9"]), s(&[]))],
            ),
            (
                "a named port resolved differently per pod: two subsets",
                service(named.clone()),
                vec![
                    pod("a", "10.0.0.1", true, web(8080)),
                    pod("b", "10.0.0.2", true, web(9090)),
                    pod("c", "10.0.0.3", false, web(8080)),
                ],
                vec![(http(8080), s(&["10.0.0.1"]), s(&["10.0.0.3"])), (http(9090), s(&["10.0.0.2"]), s(&[]))],
            ),
            (
                "a pod lacking the named port is left out for that port",
                service(
                    json!([{"name": "http", "port": 80, "targetPort": "web"}, {"name": "raw", "port": 81, "targetPort": 81}]),
                ),
                vec![pod("a", "10.0.0.1", true, web(8080)), pod("b", "10.0.0.2", true, json!([]))],
                vec![
                    (vec![("http".into(), 8080), ("raw".into(), 81)], s(&["10.0.0.1"]), s(&[])),
                    (vec![("raw".into(), 81)], s(&["10.0.0.2"]), s(&[])),
                ],
            ),
            (
                "terminating pods are left out",
                service(named.clone()),
                vec![going, pod("a", "10.0.0.1", false, web(8080))],
                vec![(http(8080), s(&[]), s(&["10.0.0.1"]))],
            ),
            ("no pods, no subsets", service(named.clone()), vec![], vec![]),
        ];
        for (case, svc, pods, want) in cases {
            assert_eq!(shape(&subsets_of(svc, pods)), want, "{case}");
        }
    }

    #[test]
    fn addresses_name_their_pod_and_statefulset_hostnames() {
        let mut sts = pod("web-0", "10.0.0.1", true, json!([]));
        sts["spec"]["hostname"] = json!("web-0");
        sts["spec"]["subdomain"] = json!("web");
        let got = subsets_of(service(json!([{"name": "", "port": 80}])), vec![sts]);
        assert_eq!(
            serde_json::to_value(&got).unwrap(),
            json!([{"addresses": [{"ip": "10.0.0.1", "hostname": "web-0", "nodeName": "n1",
                                   "targetRef": {"kind": "Pod", "name": "web-0", "namespace": "d", "uid": "u-web-0"}}],
                    "ports": [{"port": 80, "protocol": "TCP"}]}])
        );
    }

    fn world() -> Cache {
        let mut c = Cache::default();
        c.put(service(json!([{"name": "http", "port": 80, "targetPort": "web"}])));
        c.put(pod("a", "10.0.0.1", true, json!([{"name": "web", "containerPort": 8080}])));
        c.put(pod("b", "10.0.0.2", true, json!([{"name": "web", "containerPort": 8080}])));
        c
    }

    /// Carry out a reconcile's creates and replaces on the cache (as the runner does).
    fn apply(c: &mut Cache, out: &Outcome) {
        for a in &out.actions {
            match a {
                Action::Create(o) | Action::Replace(o) => {
                    let mut o = o.clone();
                    o["metadata"]["resourceVersion"] = json!("9");
                    c.put(o);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn creates_then_writes_nothing_for_an_unchanged_world() {
        let mut c = world();
        let out = stored(true).reconcile(KEY, &c, now());
        let [Action::Create(ep)] = &out.actions[..] else { panic!("{out:?}") };
        assert_eq!(
            (&ep["kind"], &ep["metadata"]["name"], &ep["metadata"]["namespace"]),
            (&json!("Endpoints"), &json!("web"), &json!("d"))
        );
        assert_eq!(ep["metadata"]["labels"], json!({"team": "blue"}), "the Service's labels are copied");
        apply(&mut c, &out);
        assert_eq!(stored(true).reconcile(KEY, &c, now()), Outcome::default());
    }

    #[test]
    fn a_pod_going_not_ready_moves_in_one_reconcile() {
        let mut c = world();
        let first = stored(true).reconcile(KEY, &c, now());
        apply(&mut c, &first);
        c.put(pod("b", "10.0.0.2", false, json!([{"name": "web", "containerPort": 8080}])));
        let out = stored(true).reconcile(KEY, &c, now());
        let [Action::Replace(ep)] = &out.actions[..] else { panic!("{out:?}") };
        let ep: Endpoints = serde_json::from_value(ep.clone()).unwrap();
        assert_eq!(
            shape(ep.subsets.as_deref().unwrap()),
            [(vec![("http".into(), 8080)], s(&["10.0.0.1"]), s(&["10.0.0.2"]))]
        );
        // Affected: the pod change concerns the Service.
        assert_eq!(stored(true).affected(c.get(&kinds::POD, "/registry/pods/d/b").unwrap(), &c), [KEY]);
    }

    #[test]
    fn selectorless_services_keep_hand_written_endpoints() {
        let mut c = Cache::default();
        let mut svc = service(json!([{"port": 80}]));
        svc["spec"].as_object_mut().unwrap().remove("selector");
        c.put(svc);
        c.put(pod("a", "10.0.0.1", true, json!([])));
        c.put(json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web", "namespace": "d", "resourceVersion": "4"},
                     "subsets": [{"addresses": [{"ip": "192.0.2.1"}], "ports": [{"port": 80}]}]}));
        assert_eq!(stored(true).reconcile(KEY, &c, now()), Outcome::default());
    }

    #[test]
    fn a_deleted_service_takes_its_endpoints_once_the_store_agrees() {
        let mut c = world();
        let first = stored(true).reconcile(KEY, &c, now());
        apply(&mut c, &first);
        c.remove(&service(json!([])));
        // The informer has not shown the Service (yet), but the store has it: keep.
        assert_eq!(stored(true).reconcile(KEY, &c, now()), Outcome::default());
        let out = stored(false).reconcile(KEY, &c, now());
        assert_eq!(out.actions, [Action::Delete { key: "/registry/services/endpoints/d/web".into(), rv: 9 }]);
        // Endpoints alone (written before their Service) concern no reconcile.
        let ep = c.get(&kinds::ENDPOINTS, "/registry/services/endpoints/d/web").unwrap().clone();
        assert!(stored(false).affected(&ep, &c).is_empty());
    }
}
