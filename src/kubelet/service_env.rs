//! The Service environment variables every container gets, as the kubelet
//! sets them (and docker links did before): for each Service with a ClusterIP
//! in the pod's namespace (when `enableServiceLinks`, the default) and the
//! `kubernetes` Service of `default` always, `<SVC>_SERVICE_HOST`,
//! `<SVC>_SERVICE_PORT[_<PORT NAME>]` and the `<SVC>_PORT…` link variables.
//! The container's own variables win over them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, Service};

/// The API's Service, whose variables every pod gets.
pub const API_SERVICE: (&str, &str) = ("default", "kubernetes");

/// `my-svc` → `MY_SVC`.
fn var_name(s: &str) -> String {
    s.replace('-', "_").to_ascii_uppercase()
}

/// Whether a Service's variables go into `pod`'s containers.
fn wanted(pod: &Pod, svc: &Service) -> bool {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let links = pod.spec.as_ref().and_then(|s| s.enable_service_links).unwrap_or(true);
    let meta = &svc.metadata;
    let at = (meta.namespace.as_deref().unwrap_or(""), meta.name.as_deref().unwrap_or(""));
    at == API_SERVICE || (links && at.0 == ns)
}

/// The variables of `services` (any namespaces: those that do not apply are
/// skipped) for `pod`'s containers, sorted by Service name as the kubelet does.
pub fn service_env(pod: &Pod, services: &[Service]) -> Vec<(String, String)> {
    // One per name: the pod's namespace's own wins over `default`'s `kubernetes`.
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut chosen: BTreeMap<&str, &Service> = BTreeMap::new();
    for svc in services.iter().filter(|s| wanted(pod, s)) {
        let spec = svc.spec.as_ref();
        let ip = spec.and_then(|s| s.cluster_ip.as_deref()).unwrap_or("");
        if ip.is_empty() || ip == "None" || spec.and_then(|s| s.ports.as_ref()).is_none_or(|p| p.is_empty()) {
            continue;
        }
        let name = svc.metadata.name.as_deref().unwrap_or("");
        let own = svc.metadata.namespace.as_deref() == Some(ns);
        if own || !chosen.contains_key(name) {
            chosen.insert(name, svc);
        }
    }
    let mut out = Vec::new();
    for (name, svc) in chosen {
        let spec = svc.spec.as_ref().expect("checked above");
        let ip = spec.cluster_ip.as_deref().unwrap_or("");
        let ports = spec.ports.as_deref().unwrap_or(&[]);
        let prefix = var_name(name);
        out.push((format!("{prefix}_SERVICE_HOST"), ip.to_string()));
        out.push((format!("{prefix}_SERVICE_PORT"), ports[0].port.to_string()));
        for p in ports {
            if let Some(pn) = p.name.as_deref().filter(|n| !n.is_empty()) {
                out.push((format!("{prefix}_SERVICE_PORT_{}", var_name(pn)), p.port.to_string()));
            }
        }
        for (i, p) in ports.iter().enumerate() {
            let proto = p.protocol.as_deref().unwrap_or("TCP");
            let lower = proto.to_ascii_lowercase();
            let url = format!("{lower}://{ip}:{}", p.port);
            if i == 0 {
                out.push((format!("{prefix}_PORT"), url.clone()));
            }
            let port_prefix = format!("{prefix}_PORT_{}_{}", p.port, proto.to_ascii_uppercase());
            out.push((port_prefix.clone(), url));
            out.push((format!("{port_prefix}_PROTO"), lower));
            out.push((format!("{port_prefix}_PORT"), p.port.to_string()));
            out.push((format!("{port_prefix}_ADDR"), ip.to_string()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(ns: &str, name: &str, spec: serde_json::Value) -> Service {
        serde_json::from_value(json!({"metadata": {"namespace": ns, "name": name}, "spec": spec})).unwrap()
    }

    fn pod(ns: &str, links: Option<bool>) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p", "namespace": ns},
            "spec": {"containers": [], "enableServiceLinks": links}}))
        .unwrap()
    }

    fn services() -> Vec<Service> {
        vec![
            svc("default", "kubernetes", json!({"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443}]})),
            svc(
                "shop",
                "web-front",
                json!({"clusterIP": "10.96.0.20", "ports": [{"name": "http", "port": 80}, {"name": "dns-udp", "port": 53, "protocol": "UDP"}]}),
            ),
            svc("shop", "db", json!({"clusterIP": "None", "ports": [{"port": 5432}]})),
            svc("shop", "pending", json!({"ports": [{"port": 1}]})),
            svc("other", "elsewhere", json!({"clusterIP": "10.96.0.30", "ports": [{"port": 8080}]})),
        ]
    }

    fn names(env: &[(String, String)]) -> Vec<String> {
        env.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }

    #[test]
    fn services_of_the_namespace_and_the_api_give_variables() {
        let api = [
            "KUBERNETES_SERVICE_HOST=10.96.0.1",
            "KUBERNETES_SERVICE_PORT=443",
            "KUBERNETES_SERVICE_PORT_HTTPS=443",
            "KUBERNETES_PORT=tcp://10.96.0.1:443",
            "KUBERNETES_PORT_443_TCP=tcp://10.96.0.1:443",
            "KUBERNETES_PORT_443_TCP_PROTO=tcp",
            "KUBERNETES_PORT_443_TCP_PORT=443",
            "KUBERNETES_PORT_443_TCP_ADDR=10.96.0.1",
        ];
        let web = [
            "WEB_FRONT_SERVICE_HOST=10.96.0.20",
            "WEB_FRONT_SERVICE_PORT=80",
            "WEB_FRONT_SERVICE_PORT_HTTP=80",
            "WEB_FRONT_SERVICE_PORT_DNS_UDP=53",
            "WEB_FRONT_PORT=tcp://10.96.0.20:80",
            "WEB_FRONT_PORT_80_TCP=tcp://10.96.0.20:80",
            "WEB_FRONT_PORT_80_TCP_PROTO=tcp",
            "WEB_FRONT_PORT_80_TCP_PORT=80",
            "WEB_FRONT_PORT_80_TCP_ADDR=10.96.0.20",
            "WEB_FRONT_PORT_53_UDP=udp://10.96.0.20:53",
            "WEB_FRONT_PORT_53_UDP_PROTO=udp",
            "WEB_FRONT_PORT_53_UDP_PORT=53",
            "WEB_FRONT_PORT_53_UDP_ADDR=10.96.0.20",
        ];
        let both: Vec<String> = api.iter().chain(web.iter()).map(|s| s.to_string()).collect();
        let cases: Vec<(Pod, Vec<String>)> = vec![
            (pod("shop", None), both.clone()),
            (pod("shop", Some(true)), both),
            (pod("shop", Some(false)), api.iter().map(|s| s.to_string()).collect()),
            (pod("empty", None), api.iter().map(|s| s.to_string()).collect()),
        ];
        for (p, want) in cases {
            assert_eq!(names(&service_env(&p, &services())), want, "{:?}", p.metadata.namespace);
        }
    }

    #[test]
    fn a_service_named_kubernetes_in_the_pods_namespace_wins() {
        let mut list = services();
        list.push(svc("shop", "kubernetes", json!({"clusterIP": "10.96.9.9", "ports": [{"port": 1}]})));
        let env = service_env(&pod("shop", None), &list);
        assert!(env.contains(&("KUBERNETES_SERVICE_HOST".into(), "10.96.9.9".into())));
        assert!(!env.iter().any(|(_, v)| v == "10.96.0.1"));
    }
}
