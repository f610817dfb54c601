//! The EndpointSlice controller, for API clients that read
//! `discovery.k8s.io/v1`: the same backends as the Endpoints controller
//! (one shared reading, [`super::service_pods`]), in slices of at most
//! [`MAX_ENDPOINTS`], one group of slices per distinct set of resolved ports,
//! owned by the Service. Terminating pods stay listed, marked terminating.
//!
//! Services without a selector have their (hand-written) Endpoints mirrored
//! into slices, as Kubernetes' endpointslicemirroring controller does, unless
//! the Endpoints ask not to be (`endpointslice.kubernetes.io/skip-mirror`).
//!
//! Endpoints keep their slice from one reconcile to the next, so a change
//! rewrites only the slices it touches and an unchanged world writes nothing.
//! When a Service goes its slices go too (deleted as orphans: the store is
//! asked whether their owner is really gone).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EndpointAddress, Endpoints, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde_json::Value;

use super::endpoints::labels_for;
use super::framework::{Action, Cache, Outcome, Reconciler};
use super::service_pods::{backends, ip_order, selector, service_name, services_selecting, Backend, BackendPort};
use crate::objects::kinds::{self, Kind};
use crate::objects::owners::controller_uid;
use crate::objects::typed::Object;
use crate::objects::{key_of, meta_str, resource_version};

/// The label naming a slice's Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The label naming who manages a slice.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// Slices of Services with a selector.
pub const CONTROLLER: &str = "endpointslice-controller.k8s.io";
/// Slices mirrored from the Endpoints of Services without one.
pub const MIRRORING: &str = "endpointslicemirroring-controller.k8s.io";
/// On Endpoints: "true" when they are not to be mirrored.
pub const SKIP_MIRROR_LABEL: &str = "endpointslice.kubernetes.io/skip-mirror";
/// The most endpoints one slice holds (Kubernetes' default).
pub const MAX_ENDPOINTS: usize = 100;

/// What a Service's slices should hold: endpoints by the ports they serve.
pub type Desired = BTreeMap<Vec<BackendPort>, Vec<Endpoint>>;

/// The EndpointSlice reconciler.
pub struct ServiceEndpointSlices;

/// An endpoint's identity across reconciles, in slice order: its first
/// address and its pod.
fn identity(e: &Endpoint) -> (Option<std::net::IpAddr>, String, Option<String>) {
    let ip = e.addresses.first().cloned().unwrap_or_default();
    (ip_order(&ip).0, ip, e.target_ref.as_ref().and_then(|r| r.name.clone()))
}

/// Slices of a Service with a selector, from its backends: ready = Ready
/// (or `publishNotReadyAddresses`) and not terminating; serving = Ready (or
/// `publishNotReadyAddresses`).
pub fn from_backends(svc: &Service, backends: &[Backend]) -> Desired {
    let publish = svc.spec.as_ref().and_then(|s| s.publish_not_ready_addresses) == Some(true);
    let mut out = Desired::new();
    for b in backends {
        let serving = publish || b.ready;
        out.entry(b.ports.clone()).or_default().push(Endpoint {
            addresses: vec![b.ip.clone()],
            conditions: Some(EndpointConditions {
                ready: Some(publish || (serving && !b.terminating)),
                serving: Some(serving),
                terminating: Some(b.terminating),
            }),
            hostname: b.hostname.clone(),
            node_name: b.node_name.clone(),
            target_ref: Some(b.target_ref.clone()),
            ..Default::default()
        });
    }
    out
}

/// Slices mirroring hand-written Endpoints (IPv4 addresses; the others are
/// not mirrored): ready addresses ready and serving, not-ready ones neither.
pub fn from_endpoints(ep: &Endpoints) -> Desired {
    let mut out = Desired::new();
    for subset in ep.subsets.iter().flatten() {
        let mut ports: Vec<BackendPort> = subset
            .ports
            .iter()
            .flatten()
            .map(|p| BackendPort {
                name: p.name.clone().unwrap_or_default(),
                port: p.port,
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                app_protocol: p.app_protocol.clone(),
            })
            .collect();
        ports.sort();
        let endpoint = |a: &EndpointAddress, ready: bool| Endpoint {
            addresses: vec![a.ip.clone()],
            conditions: Some(EndpointConditions { ready: Some(ready), serving: Some(ready), terminating: Some(false) }),
            hostname: a.hostname.clone(),
            node_name: a.node_name.clone(),
            target_ref: a.target_ref.clone(),
            ..Default::default()
        };
        let ipv4 = |a: &&EndpointAddress| a.ip.parse::<std::net::Ipv4Addr>().is_ok();
        let list = out.entry(ports).or_default();
        list.extend(subset.addresses.iter().flatten().filter(ipv4).map(|a| endpoint(a, true)));
        list.extend(subset.not_ready_addresses.iter().flatten().filter(ipv4).map(|a| endpoint(a, false)));
    }
    out.retain(|_, eps| !eps.is_empty());
    out
}

/// A resolved port as a slice port (the name always given, as Kubernetes writes it).
fn slice_port(p: &BackendPort) -> EndpointPort {
    EndpointPort {
        name: Some(p.name.clone()),
        port: Some(p.port),
        protocol: Some(p.protocol.clone()),
        app_protocol: p.app_protocol.clone(),
    }
}

/// A slice's ports as resolved ports, sorted.
fn ports_of(slice: &EndpointSlice) -> Vec<BackendPort> {
    let mut ports: Vec<BackendPort> = slice
        .ports
        .iter()
        .flatten()
        .map(|p| BackendPort {
            name: p.name.clone().unwrap_or_default(),
            port: p.port.unwrap_or(0),
            protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
            app_protocol: p.app_protocol.clone(),
        })
        .collect();
    ports.sort();
    ports
}

/// Who a Service's slices are written for: the labels and owner they carry.
pub struct SliceOwner {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name (also the slices' `generateName` prefix).
    pub name: String,
    /// The labels every slice carries.
    pub labels: BTreeMap<String, String>,
    /// The owner reference to the Service.
    pub owner: OwnerReference,
}

impl SliceOwner {
    /// For `svc`'s slices written by `managed_by`, with `labels` besides the
    /// service-name and managed-by ones.
    pub fn new(svc: &Service, managed_by: &str, mut labels: BTreeMap<String, String>) -> Self {
        let name = svc.metadata.name.clone().unwrap_or_default();
        labels.insert(SERVICE_NAME_LABEL.into(), name.clone());
        labels.insert(MANAGED_BY_LABEL.into(), managed_by.into());
        SliceOwner {
            namespace: svc.metadata.namespace.clone().unwrap_or_default(),
            name: name.clone(),
            labels,
            owner: OwnerReference {
                api_version: "v1".into(),
                kind: "Service".into(),
                name,
                uid: svc.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            },
        }
    }
}

fn delete(obj: &Object) -> Action {
    Action::Delete { key: key_of(obj).unwrap_or_default(), rv: resource_version(obj) }
}

/// The writes that bring a Service's `existing` slices to `desired`: slices
/// of another owner, address type or port set are deleted; endpoints stay in
/// the slice that holds them (updated), new ones fill slices with room, then
/// new slices; emptied slices are deleted; a slice is written only if it
/// changed.
pub fn plan(owner: &SliceOwner, desired: Desired, existing: &[&Object]) -> Vec<Action> {
    let mut actions = Vec::new();
    let mut by_ports: BTreeMap<Vec<BackendPort>, Vec<(&Object, &EndpointSlice)>> = BTreeMap::new();
    let mut sorted: Vec<&Object> = existing.to_vec();
    sorted.sort_by_key(|o| meta_str(o, "name"));
    for obj in sorted {
        let Some(slice) = obj.endpoint_slice() else {
            actions.push(delete(obj));
            continue;
        };
        let ports = ports_of(slice);
        let mine = controller_uid(obj).as_deref() == Some(owner.owner.uid.as_str());
        if !mine || slice.address_type != "IPv4" || !desired.contains_key(&ports) {
            actions.push(delete(obj));
            continue;
        }
        by_ports.entry(ports).or_default().push((obj, slice));
    }
    for (ports, wanted) in desired {
        let slices = by_ports.remove(&ports).unwrap_or_default();
        let mut left: BTreeMap<_, Endpoint> = wanted.into_iter().map(|e| (identity(&e), e)).collect();
        // Endpoints stay where they are, as they are now.
        let mut kept: Vec<Vec<Endpoint>> = slices
            .iter()
            .map(|(_, s)| s.endpoints.iter().filter_map(|e| left.remove(&identity(e))).collect())
            .collect();
        let mut rest = left.into_values();
        for eps in kept.iter_mut() {
            eps.extend(rest.by_ref().take(MAX_ENDPOINTS.saturating_sub(eps.len())));
        }
        let ports_field: Vec<EndpointPort> = ports.iter().map(slice_port).collect();
        for ((obj, slice), mut eps) in slices.into_iter().zip(kept) {
            eps.sort_by_key(identity);
            if eps.is_empty() {
                actions.push(delete(obj));
                continue;
            }
            let same = slice.endpoints == eps
                && slice.ports.as_deref().unwrap_or_default() == ports_field
                && slice.metadata.labels.as_ref() == Some(&owner.labels);
            if !same {
                let mut next = slice.clone();
                next.endpoints = eps;
                next.ports = Some(ports_field.clone());
                next.metadata.labels = Some(owner.labels.clone());
                actions.push(Action::Replace(obj.with(&next)));
            }
        }
        let rest: Vec<Endpoint> = rest.collect();
        for chunk in rest.chunks(MAX_ENDPOINTS) {
            let slice = EndpointSlice {
                metadata: ObjectMeta {
                    generate_name: Some(format!("{}-", owner.name)),
                    namespace: Some(owner.namespace.clone()),
                    labels: Some(owner.labels.clone()),
                    owner_references: Some(vec![owner.owner.clone()]),
                    ..Default::default()
                },
                address_type: "IPv4".into(),
                endpoints: chunk.to_vec(),
                ports: Some(ports_field.clone()),
            };
            actions.push(Action::Create(serde_json::to_value(slice).expect("EndpointSlices serialize")));
        }
    }
    actions
}

/// The slices of a Service (in namespace `ns`, named `name`) this controller
/// writes, mirrored ones included.
fn slices_of<'a>(cache: &'a Cache, ns: &'a str, name: &'a str) -> impl Iterator<Item = &'a Object> + 'a {
    cache.objects_in(&kinds::ENDPOINT_SLICE, ns).filter(move |o| {
        let labels = &o["metadata"]["labels"];
        labels[SERVICE_NAME_LABEL] == name && [CONTROLLER, MIRRORING].iter().any(|m| labels[MANAGED_BY_LABEL] == *m)
    })
}

impl Reconciler for ServiceEndpointSlices {
    const NAME: &'static str = "endpointslice";
    const PRIMARY: &'static Kind = &kinds::SERVICE;

    fn watches(&self) -> Vec<&'static Kind> {
        vec![&kinds::SERVICE, &kinds::POD, &kinds::ENDPOINTS, &kinds::ENDPOINT_SLICE]
    }

    fn affected(&self, obj: &Value, cache: &Cache) -> Vec<String> {
        let ns = meta_str(obj, "namespace");
        match Kind::of(obj) {
            Some(k) if *k == kinds::SERVICE => key_of(obj).into_iter().collect(),
            Some(k) if *k == kinds::ENDPOINTS => vec![kinds::SERVICE.key(ns, meta_str(obj, "name"))],
            Some(k) if *k == kinds::ENDPOINT_SLICE => {
                let svc = obj["metadata"]["labels"][SERVICE_NAME_LABEL].as_str();
                svc.map(|name| kinds::SERVICE.key(ns, name)).into_iter().collect()
            }
            Some(k) if *k == kinds::POD => services_selecting(obj, cache),
            _ => vec![],
        }
    }

    fn reconcile(&self, key: &str, cache: &Cache, _now: chrono::DateTime<chrono::Utc>) -> Outcome {
        let Some((ns, name)) = service_name(key) else { return Outcome::default() };
        let existing: Vec<&Object> = slices_of(cache, ns, name).collect();
        let Some(svc) = cache.object(&kinds::SERVICE, key).and_then(Object::service) else {
            // Orphans once their Service is gone from the store too.
            let actions = existing.iter().map(|o| Action::DeleteOrphan(o.raw().clone())).collect();
            return Outcome { actions, ..Default::default() };
        };
        let external = svc.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("ExternalName");
        let (desired, managed_by, labels) = if external {
            (Desired::new(), CONTROLLER, BTreeMap::new())
        } else if selector(svc).is_some() {
            let pods = cache.objects_in(&kinds::POD, ns).filter_map(Object::pod);
            let backends = backends(svc, pods).unwrap_or_default();
            (from_backends(svc, &backends), CONTROLLER, labels_for(svc))
        } else {
            let ep = cache.object(&kinds::ENDPOINTS, &kinds::ENDPOINTS.key(ns, name)).and_then(Object::endpoints);
            let labels = ep.and_then(|e| e.metadata.labels.clone()).unwrap_or_default();
            match ep.filter(|_| labels.get(SKIP_MIRROR_LABEL).map(String::as_str) != Some("true")) {
                Some(ep) => (from_endpoints(ep), MIRRORING, labels),
                None => (Desired::new(), MIRRORING, labels),
            }
        };
        let owner = SliceOwner::new(svc, managed_by, labels);
        // Slices of the other manager (the Service gained or lost its selector) go.
        let (mine, other): (Vec<&Object>, Vec<&Object>) =
            existing.into_iter().partition(|o| o["metadata"]["labels"][MANAGED_BY_LABEL] == managed_by);
        let mut actions: Vec<Action> = other.into_iter().map(delete).collect();
        actions.extend(plan(&owner, desired, &mine));
        Outcome { actions, ..Default::default() }
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

    fn web(n: i32) -> Value {
        json!([{"name": "web", "containerPort": n}])
    }

    /// `n` ready pods of `web` serving on 8080, at 10.0.<i/250>.<i%250+1>.
    fn world(n: usize) -> Cache {
        let mut c = Cache::default();
        c.put(service(json!([{"name": "http", "port": 80, "targetPort": "web"}])));
        for i in 0..n {
            c.put(pod(&format!("p{i:03}"), &format!("10.0.{}.{}", i / 250, i % 250 + 1), true, web(8080)));
        }
        c
    }

    /// Carry out a reconcile's writes on the cache as the runner would,
    /// naming created slices `web-<i>`; returns how many writes there were.
    fn apply(c: &mut Cache, out: &Outcome) -> usize {
        let mut next = c.keys(&kinds::ENDPOINT_SLICE).len();
        for a in &out.actions {
            match a {
                Action::Create(o) | Action::Replace(o) => {
                    let mut o = o.clone();
                    if o["metadata"]["name"].is_null() {
                        o["metadata"]["name"] = json!(format!("web-{next}"));
                        o["metadata"]["uid"] = json!(format!("s{next}"));
                        next += 1;
                    }
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
        out.actions.len()
    }

    fn slices(c: &Cache) -> Vec<EndpointSlice> {
        c.objects(&kinds::ENDPOINT_SLICE).filter_map(Object::endpoint_slice).cloned().collect()
    }

    #[test]
    fn slices_split_at_100_carry_labels_and_owner_and_stay_put() {
        let mut c = world(250);
        let out = ServiceEndpointSlices.reconcile(KEY, &c, now());
        let created: Vec<&Value> =
            out.actions.iter().filter_map(|a| if let Action::Create(s) = a { Some(s) } else { None }).collect();
        assert_eq!(
            created.iter().map(|s| s["endpoints"].as_array().unwrap().len()).collect::<Vec<_>>(),
            [100, 100, 50]
        );
        let s = created[0];
        assert_eq!(
            (&s["addressType"], &s["metadata"]["generateName"], &s["ports"]),
            (&json!("IPv4"), &json!("web-"), &json!([{"name": "http", "port": 8080, "protocol": "TCP"}]))
        );
        assert_eq!(
            s["metadata"]["labels"],
            json!({"team": "blue", SERVICE_NAME_LABEL: "web", MANAGED_BY_LABEL: CONTROLLER})
        );
        assert_eq!(
            s["metadata"]["ownerReferences"],
            json!([{"apiVersion": "v1", "kind": "Service", "name": "web", "uid": "svc1", "controller": true, "blockOwnerDeletion": true}])
        );
        assert_eq!(
            s["endpoints"][0],
            json!({"addresses": ["10.0.0.1"], "conditions": {"ready": true, "serving": true, "terminating": false},
                   "nodeName": "n1", "targetRef": {"kind": "Pod", "name": "p000", "namespace": "d", "uid": "u-p000"}})
        );
        apply(&mut c, &out);
        assert_eq!(
            ServiceEndpointSlices.reconcile(KEY, &c, now()),
            Outcome::default(),
            "an unchanged world writes nothing"
        );
        // One pod goes not ready: only its slice is written.
        let slice_of = |c: &Cache, ip: &str| {
            slices(c).into_iter().find(|s| s.endpoints.iter().any(|e| e.addresses[0] == ip)).unwrap().metadata.name
        };
        let before = slice_of(&c, "10.0.0.130");
        c.put(pod("p129", "10.0.0.130", false, web(8080)));
        let out = ServiceEndpointSlices.reconcile(KEY, &c, now());
        let [Action::Replace(s)] = &out.actions[..] else { panic!("{out:?}") };
        assert_eq!(s["metadata"]["name"].as_str(), before.as_deref());
        apply(&mut c, &out);
        // A new pod fills the slice with room; deleting pods empties and removes slices.
        c.put(pod("p250", "10.0.1.1", true, web(8080)));
        let out = ServiceEndpointSlices.reconcile(KEY, &c, now());
        assert_eq!(out.actions.len(), 1);
        apply(&mut c, &out);
        assert_eq!(slices(&c).iter().map(|s| s.endpoints.len()).sum::<usize>(), 251);
        for i in 0..100 {
            c.remove(&pod(&format!("p{i:03}"), "", true, json!([])));
        }
        let out = ServiceEndpointSlices.reconcile(KEY, &c, now());
        assert!(matches!(out.actions[..], [Action::Delete { .. }]), "{:?}", out.actions);
    }

    #[test]
    fn conditions_ports_and_hostnames_per_pod() {
        let mut c = world(0);
        c.put(pod("a", "10.0.0.1", true, web(8080)));
        c.put(pod("b", "10.0.0.2", true, web(9090)));
        c.put(pod("c", "10.0.0.3", false, web(8080)));
        let mut going = pod("d", "10.0.0.4", true, web(8080));
        going["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        c.put(going);
        let mut sts = pod("web-0", "10.0.0.5", true, web(8080));
        sts["spec"]["hostname"] = json!("web-0");
        sts["spec"]["subdomain"] = json!("web");
        c.put(sts);
        c.put(pod("none", "10.0.0.6", true, json!([])));
        let out = ServiceEndpointSlices.reconcile(KEY, &c, now());
        apply(&mut c, &out);
        /// (port, address, (ready, serving, terminating), hostname)
        type Seen = (i32, String, (bool, bool, bool), Option<String>);
        let mut got: Vec<Seen> = slices(&c)
            .iter()
            .flat_map(|s| {
                let port = s.ports.as_ref().unwrap()[0].port.unwrap();
                s.endpoints.iter().map(move |e| {
                    let cond = e.conditions.clone().unwrap();
                    let flags = (cond.ready.unwrap(), cond.serving.unwrap(), cond.terminating.unwrap());
                    (port, e.addresses[0].clone(), flags, e.hostname.clone())
                })
            })
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                (8080, "10.0.0.1".into(), (true, true, false), None),
                (8080, "10.0.0.3".into(), (false, false, false), None),
                (8080, "10.0.0.4".into(), (false, true, true), None),
                (8080, "10.0.0.5".into(), (true, true, false), Some("web-0".into())),
                (9090, "10.0.0.2".into(), (true, true, false), None),
            ]
        );
    }

    #[test]
    fn hand_written_endpoints_are_mirrored_unless_told_not_to() {
        let mut c = Cache::default();
        let mut svc = service(json!([{"name": "db", "port": 5432}]));
        svc["spec"].as_object_mut().unwrap().remove("selector");
        c.put(svc);
        let ep = json!({"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "web", "namespace": "d", "resourceVersion": "4", "labels": {"env": "prod"}},
            "subsets": [{"addresses": [{"ip": "192.0.2.1"}, {"ip": "2001:db8::1"}], "notReadyAddresses": [{"ip": "192.0.2.2"}],
                         "ports": [{"name": "db", "port": 5432}]}]});
        c.put(ep.clone());
        let out = ServiceEndpointSlices.reconcile(KEY, &c, now());
        let [Action::Create(s)] = &out.actions[..] else { panic!("{out:?}") };
        assert_eq!(
            s["metadata"]["labels"],
            json!({"env": "prod", SERVICE_NAME_LABEL: "web", MANAGED_BY_LABEL: MIRRORING})
        );
        let ips: Vec<(&str, bool)> = s["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["addresses"][0].as_str().unwrap(), e["conditions"]["ready"].as_bool().unwrap()))
            .collect();
        assert_eq!(ips, [("192.0.2.1", true), ("192.0.2.2", false)]);
        apply(&mut c, &out);
        assert_eq!(ServiceEndpointSlices.reconcile(KEY, &c, now()), Outcome::default());
        // Told not to mirror: the mirrored slice goes.
        let mut skip = ep;
        skip["metadata"]["labels"][SKIP_MIRROR_LABEL] = json!("true");
        c.put(skip);
        let out = ServiceEndpointSlices.reconcile(KEY, &c, now());
        assert!(matches!(out.actions[..], [Action::Delete { .. }]), "{:?}", out.actions);
    }

    #[test]
    fn a_deleted_service_leaves_its_slices_to_the_orphan_check() {
        let mut c = world(3);
        let first = ServiceEndpointSlices.reconcile(KEY, &c, now());
        apply(&mut c, &first);
        c.remove(&service(json!([])));
        let out = ServiceEndpointSlices.reconcile(KEY, &c, now());
        assert!(matches!(&out.actions[..], [Action::DeleteOrphan(s)] if s["metadata"]["name"] == "web-0"), "{out:?}");
        // A slice change concerns its Service.
        let slice = c.get(&kinds::ENDPOINT_SLICE, "/registry/endpointslices/d/web-0").unwrap();
        assert_eq!(ServiceEndpointSlices.affected(slice, &c), [KEY]);
    }
}
