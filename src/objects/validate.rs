//! Field validation like the Kubernetes API server's: names, labels, required
//! fields, and the schema of each kind (through `k8s-openapi`'s types).
//!
//! The checks add every invalid field they find to a list rather than stopping
//! at the first, so that a user sees all that is wrong with an object in one
//! answer, as Kubernetes shows it.

use serde_json::Value;

use super::kinds::Kind;
use super::quantity::{self, Quantity};

/// One invalid field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The field's path, `spec.containers[0].image`.
    pub field: String,
    /// What is wrong, in Kubernetes' words (`Required value`, `Invalid value: ...`).
    pub message: String,
}

impl FieldError {
    pub(crate) fn required(field: impl Into<String>) -> Self {
        FieldError { field: field.into(), message: "Required value".into() }
    }

    pub(crate) fn invalid(field: impl Into<String>, value: &str, why: &str) -> Self {
        FieldError { field: field.into(), message: format!("Invalid value: \"{value}\": {why}") }
    }

    /// An invalid integer: Kubernetes shows numbers without quotes.
    pub(crate) fn invalid_int(field: impl Into<String>, value: i64, why: &str) -> Self {
        FieldError { field: field.into(), message: format!("Invalid value: {value}: {why}") }
    }

    pub(crate) fn immutable(field: impl Into<String>) -> Self {
        FieldError { field: field.into(), message: "field is immutable".into() }
    }
}

/// `spec.replicas: Invalid value: -3: must be greater than or equal to 0`, as Kubernetes prints a cause.
impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

fn is_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// RFC 1123 label: lowercase alphanumerics and '-', starting and ending alphanumeric, ≤ 63.
pub fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| is_alnum(c) || c == '-')
        && s.starts_with(is_alnum)
        && s.ends_with(is_alnum)
}

/// RFC 1123 subdomain: dot-separated labels, ≤ 253.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

/// RFC 1035 label: a DNS-1123 label that starts with a letter (Service names).
pub fn is_dns1035_label(s: &str) -> bool {
    is_dns1123_label(s) && s.starts_with(|c: char| c.is_ascii_lowercase())
}

fn is_qualified_name_part(s: &str) -> bool {
    let ok = |c: char| c.is_ascii_alphanumeric();
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| ok(c) || c == '-' || c == '_' || c == '.')
        && s.starts_with(ok)
        && s.ends_with(ok)
}

/// A label or annotation key: `[prefix/]name`.
pub fn is_qualified_name(s: &str) -> bool {
    match s.split_once('/') {
        Some((prefix, name)) => is_dns1123_subdomain(prefix) && is_qualified_name_part(name),
        None => is_qualified_name_part(s),
    }
}

/// A label value: empty, or a qualified name part.
pub fn is_label_value(s: &str) -> bool {
    s.is_empty() || is_qualified_name_part(s)
}

/// A ConfigMap or Secret key.
pub fn is_config_key(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.chars().all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
}

/// Check the object against its kind's schema: wrong types and malformed values
/// are reported with the path of the field. Decoding stops at the first wrong
/// type, so this reports one error at most.
pub fn check_schema(kind: &Kind, obj: &Value) -> Result<(), FieldError> {
    use k8s_openapi::api::{
        apps::v1 as apps, batch::v1 as batch, coordination::v1 as coord, core::v1 as core, discovery::v1 as discovery,
    };
    fn typed<T: serde::de::DeserializeOwned>(obj: &Value) -> Result<(), FieldError> {
        let de = obj.clone();
        serde_path_to_error::deserialize::<_, T>(de).map(|_| ()).map_err(|e| {
            let path = e.path().to_string();
            FieldError { field: if path == "." { "<root>".into() } else { path }, message: e.into_inner().to_string() }
        })
    }
    match kind.kind {
        "Namespace" => typed::<core::Namespace>(obj),
        "ConfigMap" => typed::<core::ConfigMap>(obj),
        "Secret" => typed::<core::Secret>(obj),
        "ServiceAccount" => typed::<core::ServiceAccount>(obj),
        "Pod" => typed::<core::Pod>(obj),
        "Node" => typed::<core::Node>(obj),
        "Lease" => typed::<coord::Lease>(obj),
        "Event" => typed::<core::Event>(obj),
        "Service" => typed::<core::Service>(obj),
        "Endpoints" => typed::<core::Endpoints>(obj),
        "EndpointSlice" => typed::<discovery::EndpointSlice>(obj),
        "ReplicaSet" => typed::<apps::ReplicaSet>(obj),
        "Deployment" => typed::<apps::Deployment>(obj),
        "DaemonSet" => typed::<apps::DaemonSet>(obj),
        "StatefulSet" => typed::<apps::StatefulSet>(obj),
        "Job" => typed::<batch::Job>(obj),
        _ => Ok(()),
    }
}

/// Check metadata: name, namespace, labels, annotations. Every invalid field is
/// added to `errs`.
pub fn check_metadata(kind: &Kind, obj: &Value, errs: &mut Vec<FieldError>) {
    let Some(meta) = obj.get("metadata") else {
        errs.push(FieldError::required("metadata"));
        return;
    };
    let name = meta.get("name").and_then(Value::as_str).unwrap_or("");
    let (ok, rule) = match kind.kind {
        "Namespace" => (is_dns1123_label(name), "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"),
        "Service" => (is_dns1035_label(name), "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character"),
        _ => (is_dns1123_subdomain(name), "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"),
    };
    if name.is_empty() {
        errs.push(FieldError::required("metadata.name"));
    } else if !ok {
        errs.push(FieldError::invalid("metadata.name", name, rule));
    }
    if let Some(ns) = meta.get("namespace").and_then(Value::as_str) {
        if kind.namespaced && !is_dns1123_label(ns) {
            errs.push(FieldError::invalid("metadata.namespace", ns, "must be a valid RFC 1123 label"));
        }
    }
    for (field, check_value) in [("labels", true), ("annotations", false)] {
        let Some(map) = meta.get(field).and_then(Value::as_object) else {
            continue;
        };
        for (k, v) in map {
            if !is_qualified_name(k) {
                errs.push(FieldError::invalid(
                    format!("metadata.{field}"),
                    k,
                    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                ));
            }
            if check_value && !is_label_value(v.as_str().unwrap_or("")) {
                errs.push(FieldError::invalid(
                    format!("metadata.labels[{k}]"),
                    v.as_str().unwrap_or(""),
                    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                ));
            }
        }
    }
}

/// Checks of each kind beyond the schema: required fields and cross-field rules.
/// Every invalid field is added to `errs`. Expects an object that passed
/// [`check_schema`]: a field of the wrong type reads as absent here.
pub fn check_kind(kind: &Kind, obj: &Value, errs: &mut Vec<FieldError>) {
    match kind.kind {
        "Pod" => check_pod_spec(obj.get("spec"), "spec", false, errs),
        "ReplicaSet" | "Deployment" | "DaemonSet" | "StatefulSet" => check_workload(obj, false, errs),
        "Job" => check_workload(obj, true, errs),
        "Service" => check_service(obj, errs),
        "EndpointSlice" => check_endpoint_slice(obj, errs),
        "ConfigMap" | "Secret" => {
            for field in ["data", "binaryData", "stringData"] {
                let Some(map) = obj.get(field).and_then(Value::as_object) else {
                    continue;
                };
                for k in map.keys().filter(|k| !is_config_key(k)) {
                    errs.push(FieldError::invalid(
                        format!("{field}[{k}]"),
                        k,
                        "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
                    ));
                }
            }
        }
        _ => {}
    }
}

fn check_containers(list: Option<&Value>, path: &str, required: bool, errs: &mut Vec<FieldError>) {
    let containers = match list.and_then(Value::as_array) {
        Some(c) if !c.is_empty() => c,
        _ if required => return errs.push(FieldError::required(path)),
        _ => return,
    };
    let mut names = std::collections::HashSet::new();
    for (i, c) in containers.iter().enumerate() {
        let at = format!("{path}[{i}]");
        let name = c.get("name").and_then(Value::as_str).unwrap_or("");
        if name.is_empty() {
            errs.push(FieldError::required(format!("{at}.name")));
        } else if !is_dns1123_label(name) {
            errs.push(FieldError::invalid(format!("{at}.name"), name, "must be a valid RFC 1123 label"));
        } else if !names.insert(name.to_string()) {
            errs.push(FieldError { field: format!("{at}.name"), message: format!("Duplicate value: \"{name}\"") });
        }
        if c.get("image").and_then(Value::as_str).unwrap_or("").trim().is_empty() {
            errs.push(FieldError::required(format!("{at}.image")));
        }
        for (j, p) in c.get("ports").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let port = p.get("containerPort").and_then(Value::as_i64).unwrap_or(0);
            if !(1..=65535).contains(&port) {
                errs.push(FieldError::invalid_int(
                    format!("{at}.ports[{j}].containerPort"),
                    port,
                    "must be between 1 and 65535, inclusive",
                ));
            }
        }
        check_resources(c.get("resources"), &format!("{at}.resources"), errs);
    }
}

/// Resource names a container may ask for without a domain prefix.
fn is_standard_container_resource(name: &str) -> bool {
    matches!(name, "cpu" | "memory" | "ephemeral-storage") || name.starts_with("hugepages-")
}

/// A container's `resources` at `path`: known names, well-formed non-negative
/// quantities, and no request above its limit — Kubernetes' rules.
fn check_resources(resources: Option<&Value>, path: &str, errs: &mut Vec<FieldError>) {
    let Some(resources) = resources else { return };
    let mut parsed: [Vec<(&str, String, Quantity)>; 2] = [Vec::new(), Vec::new()];
    for (section, into) in ["limits", "requests"].into_iter().zip(parsed.iter_mut()) {
        for (name, value) in resources.get(section).and_then(Value::as_object).into_iter().flatten() {
            let field = format!("{path}.{section}[{name}]");
            let standard =
                if name.contains('/') { is_qualified_name(name) } else { is_standard_container_resource(name) };
            if !standard {
                errs.push(FieldError::invalid(field, name, "must be a standard resource for containers"));
                continue;
            }
            // Neither a string nor a number is a schema error, reported there.
            let Some(text) = quantity::from_json(value) else { continue };
            match Quantity::parse(&text) {
                Err(e) => errs.push(FieldError::invalid(field, &text, &e.to_string())),
                Ok(q) if q.is_negative() => {
                    errs.push(FieldError::invalid(field, &text, "must be greater than or equal to 0"))
                }
                Ok(q) => into.push((name.as_str(), text, q)),
            }
        }
    }
    let [limits, requests] = &parsed;
    for (name, text, request) in requests {
        if let Some((_, limit_text, limit)) = limits.iter().find(|(n, ..)| n == name) {
            if request > limit {
                errs.push(FieldError::invalid(
                    format!("{path}.requests"),
                    text,
                    &format!("must be less than or equal to {name} limit of {limit_text}"),
                ));
            }
        }
    }
}

/// Check a pod spec at `path`; `job` restricts the restart policy. Every
/// invalid field is added to `errs`.
pub fn check_pod_spec(spec: Option<&Value>, path: &str, job: bool, errs: &mut Vec<FieldError>) {
    let Some(spec) = spec else {
        return errs.push(FieldError::required(path));
    };
    check_containers(spec.get("containers"), &format!("{path}.containers"), true, errs);
    check_containers(spec.get("initContainers"), &format!("{path}.initContainers"), false, errs);
    let policy = spec.get("restartPolicy").and_then(Value::as_str);
    let allowed: &[&str] = if job { &["OnFailure", "Never"] } else { &["Always", "OnFailure", "Never"] };
    match policy {
        Some(p) if allowed.contains(&p) => {}
        None if !job => {}
        Some(p) => errs.push(FieldError {
            field: format!("{path}.restartPolicy"),
            message: format!("Unsupported value: \"{p}\": supported values: {}", quoted(allowed)),
        }),
        None => errs.push(FieldError {
            field: format!("{path}.restartPolicy"),
            message: format!("Required value: supported values: {}", quoted(allowed)),
        }),
    }
}

fn quoted(values: &[&str]) -> String {
    values.iter().map(|v| format!("\"{v}\"")).collect::<Vec<_>>().join(", ")
}

fn check_workload(obj: &Value, job: bool, errs: &mut Vec<FieldError>) {
    let Some(spec) = obj.get("spec") else {
        return errs.push(FieldError::required("spec"));
    };
    if let Some(r) = spec.get("replicas").and_then(Value::as_i64) {
        if r < 0 {
            errs.push(FieldError::invalid_int("spec.replicas", r, "must be greater than or equal to 0"));
        }
    }
    let template = spec.get("template");
    match template {
        Some(t) => check_pod_spec(t.get("spec"), "spec.template.spec", job, errs),
        None => errs.push(FieldError::required("spec.template")),
    }
    let Some(selector) = spec.get("selector") else {
        if !job {
            errs.push(FieldError::required("spec.selector"));
        }
        return;
    };
    let match_labels = selector.get("matchLabels").and_then(Value::as_object);
    let exprs = selector.get("matchExpressions").and_then(Value::as_array);
    if match_labels.is_none_or(|m| m.is_empty()) && exprs.is_none_or(|e| e.is_empty()) {
        return errs.push(FieldError {
            field: "spec.selector".into(),
            message: "Invalid value: empty selector is invalid for a workload".into(),
        });
    }
    // Without a template (reported above) there are no labels to compare.
    let Some(template) = template else { return };
    let labels = template.pointer("/metadata/labels").and_then(Value::as_object);
    if match_labels.into_iter().flatten().any(|(k, v)| labels.and_then(|l| l.get(k)) != Some(v)) {
        errs.push(FieldError {
            field: "spec.template.metadata.labels".into(),
            message: "Invalid value: `selector` does not match template `labels`".into(),
        });
    }
}

fn check_service(obj: &Value, errs: &mut Vec<FieldError>) {
    let Some(spec) = obj.get("spec") else {
        return errs.push(FieldError::required("spec"));
    };
    let ty = spec.get("type").and_then(Value::as_str).unwrap_or("ClusterIP");
    let allowed = ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"];
    if !allowed.contains(&ty) {
        errs.push(FieldError {
            field: "spec.type".into(),
            message: format!("Unsupported value: \"{ty}\": supported values: {}", quoted(&allowed)),
        });
    }
    let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
    let ports = spec.get("ports").and_then(Value::as_array);
    if ports.is_none_or(|p| p.is_empty()) && !headless && ty != "ExternalName" {
        errs.push(FieldError::required("spec.ports"));
    }
    let ip = spec.get("clusterIP").and_then(Value::as_str).unwrap_or("");
    match (ty, ip) {
        (_, "") => {}
        ("ExternalName", _) => errs.push(FieldError {
            field: "spec.clusterIP".into(),
            message: "Forbidden: may not be set for ExternalName services".into(),
        }),
        ("NodePort" | "LoadBalancer", "None") => {
            errs.push(FieldError::invalid("spec.clusterIP", ip, &format!("may not be set to 'None' for {ty} services")))
        }
        (_, "None") => {}
        (_, ip) if ip.parse::<std::net::Ipv4Addr>().is_err() => {
            errs.push(FieldError::invalid("spec.clusterIP", ip, "must be a valid IPv4 address, (e.g. 10.9.8.7)"))
        }
        _ => {}
    }
    if ty == "ExternalName" && spec.get("externalName").and_then(Value::as_str).unwrap_or("").is_empty() {
        errs.push(FieldError::required("spec.externalName"));
    }
    let mut node_ports = Vec::new();
    let (mut names, mut numbers) = (Vec::new(), Vec::new());
    let several = ports.is_some_and(|p| p.len() > 1);
    for (i, p) in ports.into_iter().flatten().enumerate() {
        let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
        // Several ports are told apart by name (Endpoints, SRV records) and by port and protocol.
        let name = p.get("name").and_then(Value::as_str).unwrap_or("");
        if name.is_empty() && several {
            errs.push(FieldError::required(format!("spec.ports[{i}].name")));
        } else if !name.is_empty() && names.contains(&name) {
            errs.push(FieldError {
                field: format!("spec.ports[{i}].name"),
                message: format!("Duplicate value: \"{name}\""),
            });
        }
        names.push(name);
        let protocol = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
        if numbers.contains(&(port, protocol)) {
            errs.push(FieldError {
                field: format!("spec.ports[{i}]"),
                message: format!("Duplicate value: \"{port}/{protocol}\""),
            });
        }
        numbers.push((port, protocol));
        if !(1..=65535).contains(&port) {
            errs.push(FieldError::invalid_int(
                format!("spec.ports[{i}].port"),
                port,
                "must be between 1 and 65535, inclusive",
            ));
        }
        let node_port = p.get("nodePort").and_then(Value::as_i64).unwrap_or(0);
        if node_port == 0 {
            continue;
        }
        let field = format!("spec.ports[{i}].nodePort");
        if matches!(ty, "ClusterIP" | "ExternalName") {
            errs.push(FieldError { field, message: format!("Forbidden: may not be used when `type` is '{ty}'") });
        } else if !(1..=65535).contains(&node_port) {
            errs.push(FieldError::invalid_int(field, node_port, "must be between 1 and 65535, inclusive"));
        } else {
            // One node port serves TCP and UDP of a port, but not twice one protocol.
            let protocol = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
            if node_ports.contains(&(node_port, protocol)) {
                errs.push(FieldError { field, message: format!("Duplicate value: {node_port}") });
            }
            node_ports.push((node_port, protocol));
        }
    }
}

/// Kubernetes' limits on an EndpointSlice: a known address type, at most
/// 1000 endpoints each with 1 to 100 addresses, at most 100 ports.
fn check_endpoint_slice(obj: &Value, errs: &mut Vec<FieldError>) {
    let types = ["IPv4", "IPv6", "FQDN"];
    match obj.get("addressType").and_then(Value::as_str) {
        None | Some("") => errs.push(FieldError::required("addressType")),
        Some(t) if !types.contains(&t) => errs.push(FieldError {
            field: "addressType".into(),
            message: format!("Unsupported value: \"{t}\": supported values: {}", quoted(&types)),
        }),
        Some(_) => {}
    }
    let endpoints = obj.get("endpoints").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    if endpoints.len() > 1000 {
        errs.push(FieldError::invalid_int("endpoints", endpoints.len() as i64, "must have at most 1000 items"));
    }
    for (i, ep) in endpoints.iter().enumerate() {
        let n = ep.get("addresses").and_then(Value::as_array).map_or(0, Vec::len);
        if n == 0 {
            errs.push(FieldError::required(format!("endpoints[{i}].addresses")));
        } else if n > 100 {
            errs.push(FieldError::invalid_int(
                format!("endpoints[{i}].addresses"),
                n as i64,
                "must have at most 100 items",
            ));
        }
    }
    let ports = obj.get("ports").and_then(Value::as_array).map_or(0, Vec::len);
    if ports > 100 {
        errs.push(FieldError::invalid_int("ports", ports as i64, "must have at most 100 items"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec})
    }

    /// The fields `check_kind` reports, in order.
    fn kind_fields(kind: &str, obj: &Value) -> Vec<String> {
        let mut errs = Vec::new();
        check_kind(Kind::resolve(kind).unwrap(), obj, &mut errs);
        errs.into_iter().map(|e| e.field).collect()
    }

    fn kind_errors(kind: &str, obj: &Value) -> Vec<String> {
        let mut errs = Vec::new();
        check_kind(Kind::resolve(kind).unwrap(), obj, &mut errs);
        errs.iter().map(FieldError::to_string).collect()
    }

    fn meta_fields(obj: &Value) -> Vec<String> {
        let mut errs = Vec::new();
        check_metadata(&crate::objects::kinds::CONFIG_MAP, obj, &mut errs);
        errs.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn names() {
        assert!(is_dns1123_subdomain("web-1.example"));
        assert!(!is_dns1123_subdomain("Web"));
        assert!(!is_dns1123_subdomain("-web"));
        assert!(!is_dns1123_label("a.b"));
        assert!(is_dns1035_label("web"));
        assert!(!is_dns1035_label("1web"));
        assert!(is_qualified_name("app.kubernetes.io/name"));
        assert!(!is_qualified_name("bad key"));
    }

    #[test]
    fn pod_needs_image_and_names_the_field() {
        assert_eq!(kind_fields("pod", &pod(json!({"containers": [{"name": "a"}]}))), ["spec.containers[0].image"]);
        assert_eq!(kind_fields("pod", &pod(json!({"containers": []}))), ["spec.containers"]);
        assert!(kind_fields("pod", &pod(json!({"containers": [{"name": "a", "image": "busybox"}]}))).is_empty());
    }

    #[test]
    fn endpoint_slices_need_an_address_type_and_addresses() {
        let slice = |body: Value| {
            let mut o =
                json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "s"}});
            o.as_object_mut().unwrap().extend(body.as_object().unwrap().clone());
            o
        };
        let ok =
            slice(json!({"addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"]}], "ports": [{"port": 80}]}));
        assert!(kind_fields("endpointslice", &ok).is_empty());
        let bad = slice(json!({"addressType": "IPv5", "endpoints": [{"addresses": []}]}));
        assert_eq!(kind_fields("endpointslice", &bad), ["addressType", "endpoints[0].addresses"]);
        assert_eq!(kind_fields("endpointslice", &slice(json!({}))), ["addressType"]);
    }

    #[test]
    fn schema_errors_carry_the_path() {
        let kind = &crate::objects::kinds::DEPLOYMENT;
        let obj = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicas": "three"}});
        let err = check_schema(kind, &obj).unwrap_err();
        assert_eq!(err.field, "spec.replicas");
    }

    #[test]
    fn selector_must_match_template() {
        let obj = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "r"},
            "spec": {"selector": {"matchLabels": {"app": "a"}},
                     "template": {"metadata": {"labels": {"app": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        assert_eq!(kind_fields("rs", &obj), ["spec.template.metadata.labels"]);
    }

    #[test]
    fn every_invalid_field_of_a_deployment_is_reported() {
        let obj = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": -3, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "other"}},
                                  "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 0}]}]}}}});
        assert_eq!(
            kind_errors("deploy", &obj),
            [
                "spec.replicas: Invalid value: -3: must be greater than or equal to 0",
                "spec.template.spec.containers[0].ports[0].containerPort: Invalid value: 0: must be between 1 and 65535, inclusive",
                "spec.template.metadata.labels: Invalid value: `selector` does not match template `labels`",
            ]
        );
    }

    #[test]
    fn every_invalid_container_and_service_field_is_reported() {
        let obj = pod(json!({"restartPolicy": "Sometimes",
            "containers": [{"name": "Bad"}, {"name": "ok", "image": "i"}, {"name": "ok", "image": "i"}]}));
        assert_eq!(
            kind_fields("pod", &obj),
            ["spec.containers[0].name", "spec.containers[0].image", "spec.containers[2].name", "spec.restartPolicy"]
        );
        let svc = json!({"metadata": {"name": "s"}, "spec": {"type": "Weird", "ports": [{"name": "a", "port": 0}, {"name": "b", "port": 70000}]}});
        assert_eq!(kind_fields("svc", &svc), ["spec.type", "spec.ports[0].port", "spec.ports[1].port"]);
        let cm = json!({"metadata": {"name": "c"}, "data": {"a b": "1", "ok": "2", "c/d": "3"}});
        assert_eq!(kind_fields("cm", &cm), ["data[a b]", "data[c/d]"]);
    }

    #[test]
    fn service_addresses_are_refused_as_kubernetes_refuses_them() {
        let svc = |spec: Value| json!({"metadata": {"name": "s"}, "spec": spec});
        let cases = [
            (
                json!({"type": "ClusterIP", "ports": [{"port": 80, "nodePort": 30080}]}),
                vec!["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"],
            ),
            (
                json!({"type": "NodePort", "ports": [{"name": "a", "port": 80, "nodePort": 30080}, {"name": "b", "port": 81, "nodePort": 30080}]}),
                vec!["spec.ports[1].nodePort: Duplicate value: 30080"],
            ),
            (
                json!({"type": "NodePort", "ports": [
                {"name": "u", "port": 53, "protocol": "UDP", "nodePort": 30053}, {"name": "t", "port": 53, "protocol": "TCP", "nodePort": 30053}]}),
                vec![],
            ),
            (
                json!({"type": "NodePort", "clusterIP": "None", "ports": [{"port": 80}]}),
                vec!["spec.clusterIP: Invalid value: \"None\": may not be set to 'None' for NodePort services"],
            ),
            (
                json!({"clusterIP": "10.96.0.300", "ports": [{"port": 80}]}),
                vec!["spec.clusterIP: Invalid value: \"10.96.0.300\": must be a valid IPv4 address, (e.g. 10.9.8.7)"],
            ),
            (json!({"clusterIP": "None", "ports": [{"port": 80}]}), vec![]),
            (
                json!({"type": "ExternalName", "clusterIP": "10.96.0.5"}),
                vec![
                    "spec.clusterIP: Forbidden: may not be set for ExternalName services",
                    "spec.externalName: Required value",
                ],
            ),
            (json!({"type": "ExternalName", "externalName": "example.com"}), vec![]),
            (
                json!({"ports": [{"port": 80}, {"name": "a", "port": 81}, {"name": "a", "port": 81}]}),
                vec![
                    "spec.ports[0].name: Required value",
                    "spec.ports[2].name: Duplicate value: \"a\"",
                    "spec.ports[2]: Duplicate value: \"81/TCP\"",
                ],
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(kind_errors("svc", &svc(spec.clone())), want, "{spec}");
        }
    }

    #[test]
    fn bad_names_and_labels_are_all_reported() {
        assert_eq!(meta_fields(&json!({"metadata": {"name": "Bad_Name"}})), ["metadata.name"]);
        assert_eq!(
            meta_fields(&json!({"metadata": {"name": "ok", "labels": {"app": "bad value"}}})),
            ["metadata.labels[app]"]
        );
        assert_eq!(
            meta_fields(&json!({"metadata": {"labels": {"bad key": "v", "app": "bad value"}}})),
            ["metadata.name", "metadata.labels[app]", "metadata.labels"]
        );
        assert_eq!(meta_fields(&json!({})), ["metadata"]);
    }

    /// A pod's (or a template's) resources: each malformed or refused quantity
    /// is reported under its exact field path with Kubernetes' message.
    #[test]
    fn resources() {
        const REGEX: &str =
            "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
        let with = |resources: Value| pod(json!({"containers": [{"name": "a", "image": "i", "resources": resources}]}));
        let cases: Vec<(Value, Vec<String>)> = vec![
            (json!({"limits": {"memory": "64Mi", "cpu": "500m"}, "requests": {"memory": "32Mi", "cpu": 0.25}}), vec![]),
            (json!({"limits": {"cpu": "1"}, "requests": {"cpu": "1000m"}}), vec![]),
            (json!({"limits": {"example.com/gpu": 1, "hugepages-2Mi": "4Mi", "ephemeral-storage": "1Gi"}}), vec![]),
            (
                json!({"limits": {"memory": "12 potatoes"}}),
                vec![format!("spec.containers[0].resources.limits[memory]: Invalid value: \"12 potatoes\": {REGEX}")],
            ),
            (
                json!({"requests": {"cpu": "1kk"}}),
                vec!["spec.containers[0].resources.requests[cpu]: Invalid value: \"1kk\": unable to parse quantity's suffix".into()],
            ),
            (
                json!({"requests": {"memory": "-1Gi"}}),
                vec!["spec.containers[0].resources.requests[memory]: Invalid value: \"-1Gi\": must be greater than or equal to 0".into()],
            ),
            (
                json!({"limits": {"cpu": "1"}, "requests": {"cpu": "2"}}),
                vec!["spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1".into()],
            ),
            (
                json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1001m", "memory": "1025Mi"}}),
                vec![
                    "spec.containers[0].resources.requests: Invalid value: \"1001m\": must be less than or equal to cpu limit of 1".into(),
                    "spec.containers[0].resources.requests: Invalid value: \"1025Mi\": must be less than or equal to memory limit of 1Gi".into(),
                ],
            ),
            (
                json!({"limits": {"potato": "1", "memory": "1KiB"}}),
                vec![
                    format!("spec.containers[0].resources.limits[memory]: Invalid value: \"1KiB\": {REGEX}"),
                    "spec.containers[0].resources.limits[potato]: Invalid value: \"potato\": must be a standard resource for containers".into(),
                ],
            ),
        ];
        for (resources, want) in cases {
            assert_eq!(kind_errors("pod", &with(resources.clone())), want, "{resources}");
        }
    }

    #[test]
    fn template_and_init_container_quantities_name_their_path() {
        let deploy = json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": {
                "initContainers": [{"name": "init", "image": "i", "resources": {"requests": {"cpu": "x"}}}],
                "containers": [{"name": "c", "image": "i", "resources": {"limits": {"memory": "12 potatoes"}}}]}}}});
        assert_eq!(
            kind_fields("deploy", &deploy),
            [
                "spec.template.spec.containers[0].resources.limits[memory]",
                "spec.template.spec.initContainers[0].resources.requests[cpu]"
            ]
        );
    }

    #[test]
    fn job_restart_policy() {
        let mut errs = Vec::new();
        check_pod_spec(
            Some(&json!({"containers": [{"name": "a", "image": "i"}]})),
            "spec.template.spec",
            true,
            &mut errs,
        );
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "spec.template.spec.restartPolicy");
        errs.clear();
        check_pod_spec(
            Some(&json!({"restartPolicy": "Never", "containers": [{"name": "a", "image": "i"}]})),
            "s",
            true,
            &mut errs,
        );
        assert!(errs.is_empty());
    }
}
