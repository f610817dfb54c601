//! Which pods back a Service, and on which port each one serves every
//! Service port. The Endpoints and the EndpointSlice controllers must agree
//! on this to the letter (the proxy and DNS read one, API clients the other),
//! so both read it here: a named `targetPort` is looked up in each pod's own
//! containers, so two pods of one Service may serve it on different numbers.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ObjectReference, Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use serde_json::Value;

use super::cache::Cache;
use crate::objects::kinds;
use crate::objects::pod::PodFacts;
use crate::objects::{key_of, meta_str};

/// One Service port as a pod serves it: the Service port's name, protocol and
/// application protocol with the pod's own port number. Ordered, so that port
/// sets compare and sort.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct BackendPort {
    /// The Service port's name ("" when it has none).
    pub name: String,
    /// The pod's port number.
    pub port: i32,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
    /// The Service port's `appProtocol`.
    pub app_protocol: Option<String>,
}

/// A pod that backs a Service.
#[derive(Clone, Debug, PartialEq)]
pub struct Backend {
    /// The pod's IP.
    pub ip: String,
    /// The node it runs on.
    pub node_name: Option<String>,
    /// The pod.
    pub target_ref: ObjectReference,
    /// The pod's hostname when its subdomain is the Service (StatefulSet pods).
    pub hostname: Option<String>,
    /// Its Ready condition is True.
    pub ready: bool,
    /// It is being deleted.
    pub terminating: bool,
    /// The Service ports it serves, resolved, sorted.
    pub ports: Vec<BackendPort>,
}

/// The Service's label selector, when it has a non-empty one (an empty or
/// missing selector means the Service's endpoints are managed by hand).
pub fn selector(svc: &Service) -> Option<&BTreeMap<String, String>> {
    svc.spec.as_ref()?.selector.as_ref().filter(|s| !s.is_empty())
}

/// The port a pod serves a Service port on: a number as it is, a name looked
/// up among the pod's container ports of the same protocol, none given the
/// Service port itself. None when the pod has no container port of that name.
pub fn target_port(port: &ServicePort, pod: &Pod) -> Option<i32> {
    let protocol = port.protocol.as_deref().unwrap_or("TCP");
    match &port.target_port {
        None => Some(port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => pod
            .spec
            .as_ref()?
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(name) && p.protocol.as_deref().unwrap_or("TCP") == protocol)
            .map(|p| p.container_port),
    }
}

/// The Service ports a pod serves, resolved for it (ports it cannot serve are
/// left out), sorted.
pub fn backend_ports(svc: &Service, pod: &Pod) -> Vec<BackendPort> {
    let mut ports: Vec<BackendPort> = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some(BackendPort {
                name: p.name.clone().unwrap_or_default(),
                port: target_port(p, pod)?,
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                app_protocol: p.app_protocol.clone(),
            })
        })
        .collect();
    ports.sort();
    ports
}

/// The pod as a backend of `svc`, if it can be one: it has an IP, has not
/// finished, and serves at least one of the Service's ports (a Service
/// without ports takes every such pod). Terminating pods are included, marked.
pub fn backend(svc: &Service, pod: &Pod) -> Option<Backend> {
    let ip = pod.status.as_ref()?.pod_ip.clone().filter(|ip| !ip.is_empty())?;
    if pod.finished() {
        return None;
    }
    let ports = backend_ports(svc, pod);
    let has_ports = svc.spec.as_ref().and_then(|s| s.ports.as_ref()).is_some_and(|p| !p.is_empty());
    if has_ports && ports.is_empty() {
        return None;
    }
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let hostname = spec
        .filter(|s| s.subdomain.is_some() && s.subdomain == svc.metadata.name)
        .and_then(|s| s.hostname.clone())
        .filter(|h| !h.is_empty());
    let node = pod.node_name();
    Some(Backend {
        ip,
        node_name: (!node.is_empty()).then(|| node.to_string()),
        target_ref: ObjectReference {
            kind: Some("Pod".into()),
            name: meta.name.clone(),
            namespace: meta.namespace.clone(),
            uid: meta.uid.clone(),
            ..Default::default()
        },
        hostname,
        ready: pod.is_ready(),
        terminating: meta.deletion_timestamp.is_some(),
        ports,
    })
}

/// The backends of a Service among `pods`: those in its namespace its
/// selector matches, sorted by IP then pod name. None for a Service without
/// a selector.
pub fn backends<'a>(svc: &Service, pods: impl Iterator<Item = &'a Pod>) -> Option<Vec<Backend>> {
    let selector = selector(svc)?;
    let ns = svc.metadata.namespace.as_deref();
    let mut out: Vec<Backend> = pods
        .filter(|p| p.metadata.namespace.as_deref() == ns)
        .filter(|p| {
            let labels = p.metadata.labels.as_ref();
            selector.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        })
        .filter_map(|p| backend(svc, p))
        .collect();
    out.sort_by(|a, b| (ip_order(&a.ip), &a.target_ref.name).cmp(&(ip_order(&b.ip), &b.target_ref.name)));
    Some(out)
}

/// The order of addresses: by number (10.0.0.9 before 10.0.0.10), then text.
pub fn ip_order(ip: &str) -> (Option<std::net::IpAddr>, &str) {
    (ip.parse().ok(), ip)
}

/// Whether a Service's selector matches a pod's labels (false without a selector).
pub fn selects(svc: &Service, pod_labels: Option<&BTreeMap<String, String>>) -> bool {
    selector(svc).is_some_and(|sel| sel.iter().all(|(k, v)| pod_labels.and_then(|l| l.get(k)) == Some(v)))
}

/// The keys of the Services in a pod's namespace that select it: the
/// Services a change to the pod concerns.
pub fn services_selecting(pod: &Value, cache: &Cache) -> Vec<String> {
    let labels = pod
        .get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(|l| serde_json::from_value::<BTreeMap<String, String>>(l.clone()).ok());
    cache
        .objects_in(&kinds::SERVICE, meta_str(pod, "namespace"))
        .filter(|s| s.service().is_some_and(|svc| selects(svc, labels.as_ref())))
        .filter_map(|s| key_of(s))
        .collect()
}

/// The namespace and name of a Service from its store key.
pub fn service_name(key: &str) -> Option<(&str, &str)> {
    key.strip_prefix(&kinds::SERVICE.prefix(None))?.split_once('/')
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// A Service `web` in `d` selecting `app=web`, with `ports` (JSON).
    pub(crate) fn service(ports: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "web", "namespace": "d", "uid": "svc1", "resourceVersion": "2", "labels": {"team": "blue"}},
               "spec": {"selector": {"app": "web"}, "ports": ports}})
    }

    /// A pod of `web` with an IP, readiness and container ports (JSON).
    pub(crate) fn pod(name: &str, ip: &str, ready: bool, ports: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": "d", "uid": format!("u-{name}"), "labels": {"app": "web"}, "resourceVersion": "3"},
               "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i", "ports": ports}]},
               "status": {"phase": "Running", "podIP": ip,
                          "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}})
    }

    fn typed<T: serde::de::DeserializeOwned>(v: Value) -> T {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn target_ports_resolve_per_pod() {
        let svc: Service = typed(service(json!([
            {"name": "http", "port": 80, "targetPort": "web"},
            {"name": "metrics", "port": 9000, "targetPort": 9100},
            {"name": "plain", "port": 81},
            {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": "dns"},
        ])));
        let ports = &svc.spec.as_ref().unwrap().ports.as_ref().unwrap()[..];
        let a: Pod = typed(pod("a", "10.0.0.1", true, json!([{"name": "web", "containerPort": 8080}])));
        let b: Pod = typed(pod("b", "10.0.0.2", true, json!([{"name": "web", "containerPort": 9090}])));
        let c: Pod = typed(pod("c", "10.0.0.3", true, json!([{"name": "other", "containerPort": 1}])));
        let d: Pod =
            typed(pod("d", "10.0.0.4", true, json!([{"name": "dns", "containerPort": 5353, "protocol": "TCP"}])));
        // (pod, service port, expected)
        let cases = [
            (&a, 0, Some(8080)),
            (&b, 0, Some(9090)),
            (&c, 0, None),
            (&a, 1, Some(9100)),
            (&a, 2, Some(81)),
            (&d, 3, None), // the name exists, for another protocol
        ];
        for (pod, i, want) in cases {
            assert_eq!(target_port(&ports[i], pod), want, "{:?} port {i}", pod.metadata.name);
        }
        let names = |p: &Pod| backend_ports(&svc, p).into_iter().map(|p| (p.name, p.port)).collect::<Vec<_>>();
        assert_eq!(names(&c), [("metrics".into(), 9100), ("plain".into(), 81)]);
    }

    #[test]
    fn who_backs_a_service() {
        let svc: Service = typed(service(json!([{"name": "http", "port": 80, "targetPort": "web"}])));
        let web = json!([{"name": "web", "containerPort": 8080}]);
        let mut no_ip = pod("no-ip", "", true, web.clone());
        no_ip["status"].as_object_mut().unwrap().remove("podIP");
        let mut done = pod("done", "10.0.0.9", false, web.clone());
        done["status"]["phase"] = json!("Succeeded");
        let mut going = pod("going", "10.0.0.8", true, web.clone());
        going["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        let mut other_ns = pod("other-ns", "10.0.0.7", true, web.clone());
        other_ns["metadata"]["namespace"] = json!("e");
        let mut other_app = pod("other-app", "10.0.0.6", true, web.clone());
        other_app["metadata"]["labels"]["app"] = json!("db");
        let mut sts = pod("web-0", "10.0.0.5", false, web.clone());
        sts["spec"]["hostname"] = json!("web-0");
        sts["spec"]["subdomain"] = json!("web");
        let mut elsewhere = pod("x-0", "10.0.0.4", true, web.clone());
        elsewhere["spec"]["hostname"] = json!("x-0");
        elsewhere["spec"]["subdomain"] = json!("other");
        let no_port = pod("no-port", "10.0.0.3", true, json!([]));
        let pods: Vec<Pod> = [no_ip, done, going, other_ns, other_app, sts, elsewhere, no_port].map(typed).into();
        let got: Vec<(String, bool, bool, Option<String>)> = backends(&svc, pods.iter())
            .unwrap()
            .into_iter()
            .map(|b| (b.ip, b.ready, b.terminating, b.hostname))
            .collect();
        assert_eq!(
            got,
            [
                ("10.0.0.4".into(), true, false, None),
                ("10.0.0.5".into(), false, false, Some("web-0".into())),
                ("10.0.0.8".into(), true, true, None),
            ]
        );
        let mut manual = svc.clone();
        manual.spec.as_mut().unwrap().selector = Some(BTreeMap::new());
        assert_eq!(backends(&manual, pods.iter()), None, "an empty selector selects nothing");
    }
}
