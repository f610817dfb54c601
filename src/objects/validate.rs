//! Field validation like the Kubernetes API server's: names, labels, required
//! fields, and the schema of each kind (through `k8s-openapi`'s types).

use serde_json::Value;

use super::kinds::Kind;

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

    pub(crate) fn immutable(field: impl Into<String>) -> Self {
        FieldError { field: field.into(), message: "field is immutable".into() }
    }
}

type Result<T = ()> = std::result::Result<T, FieldError>;

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
/// are reported with the path of the field.
pub fn check_schema(kind: &Kind, obj: &Value) -> Result {
    use k8s_openapi::api::{apps::v1 as apps, batch::v1 as batch, coordination::v1 as coord, core::v1 as core};
    fn typed<T: serde::de::DeserializeOwned>(obj: &Value) -> Result {
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
        "ReplicaSet" => typed::<apps::ReplicaSet>(obj),
        "Deployment" => typed::<apps::Deployment>(obj),
        "DaemonSet" => typed::<apps::DaemonSet>(obj),
        "StatefulSet" => typed::<apps::StatefulSet>(obj),
        "Job" => typed::<batch::Job>(obj),
        _ => Ok(()),
    }
}

/// Check metadata: name, namespace, labels, annotations.
pub fn check_metadata(kind: &Kind, obj: &Value) -> Result {
    let meta = obj.get("metadata").ok_or_else(|| FieldError::required("metadata"))?;
    let name = meta.get("name").and_then(Value::as_str).unwrap_or("");
    if name.is_empty() {
        return Err(FieldError::required("metadata.name"));
    }
    let (ok, rule) = match kind.kind {
        "Namespace" => (is_dns1123_label(name), "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"),
        "Service" => (is_dns1035_label(name), "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character"),
        _ => (is_dns1123_subdomain(name), "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"),
    };
    if !ok {
        return Err(FieldError::invalid("metadata.name", name, rule));
    }
    if let Some(ns) = meta.get("namespace").and_then(Value::as_str) {
        if kind.namespaced && !is_dns1123_label(ns) {
            return Err(FieldError::invalid("metadata.namespace", ns, "must be a valid RFC 1123 label"));
        }
    }
    for (field, check_value) in [("labels", true), ("annotations", false)] {
        let Some(map) = meta.get(field).and_then(Value::as_object) else {
            continue;
        };
        for (k, v) in map {
            if !is_qualified_name(k) {
                return Err(FieldError::invalid(
                    format!("metadata.{field}"),
                    k,
                    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                ));
            }
            if check_value && !is_label_value(v.as_str().unwrap_or("")) {
                return Err(FieldError::invalid(
                    format!("metadata.labels[{k}]"),
                    v.as_str().unwrap_or(""),
                    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                ));
            }
        }
    }
    Ok(())
}

/// Checks of each kind beyond the schema: required fields and cross-field rules.
pub fn check_kind(kind: &Kind, obj: &Value) -> Result {
    match kind.kind {
        "Pod" => check_pod_spec(obj.get("spec"), "spec", false),
        "ReplicaSet" | "Deployment" | "DaemonSet" | "StatefulSet" => check_workload(obj, false),
        "Job" => check_workload(obj, true),
        "Service" => check_service(obj),
        "ConfigMap" | "Secret" => {
            for field in ["data", "binaryData", "stringData"] {
                if let Some(map) = obj.get(field).and_then(Value::as_object) {
                    if let Some(k) = map.keys().find(|k| !is_config_key(k)) {
                        return Err(FieldError::invalid(
                            format!("{field}[{k}]"),
                            k,
                            "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
                        ));
                    }
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn check_containers(list: Option<&Value>, path: &str, required: bool) -> Result {
    let containers = match list.and_then(Value::as_array) {
        Some(c) if !c.is_empty() => c,
        _ if required => return Err(FieldError::required(path)),
        _ => return Ok(()),
    };
    let mut names = std::collections::HashSet::new();
    for (i, c) in containers.iter().enumerate() {
        let at = format!("{path}[{i}]");
        let name = c.get("name").and_then(Value::as_str).unwrap_or("");
        if name.is_empty() {
            return Err(FieldError::required(format!("{at}.name")));
        }
        if !is_dns1123_label(name) {
            return Err(FieldError::invalid(format!("{at}.name"), name, "must be a valid RFC 1123 label"));
        }
        if !names.insert(name.to_string()) {
            return Err(FieldError { field: format!("{at}.name"), message: format!("Duplicate value: \"{name}\"") });
        }
        if c.get("image").and_then(Value::as_str).unwrap_or("").trim().is_empty() {
            return Err(FieldError::required(format!("{at}.image")));
        }
        if let Some(ports) = c.get("ports").and_then(Value::as_array) {
            for (j, p) in ports.iter().enumerate() {
                let port = p.get("containerPort").and_then(Value::as_i64).unwrap_or(0);
                if !(1..=65535).contains(&port) {
                    return Err(FieldError::invalid(
                        format!("{at}.ports[{j}].containerPort"),
                        &port.to_string(),
                        "must be between 1 and 65535, inclusive",
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Check a pod spec at `path`; `job` restricts the restart policy.
pub fn check_pod_spec(spec: Option<&Value>, path: &str, job: bool) -> Result {
    let spec = spec.ok_or_else(|| FieldError::required(path))?;
    check_containers(spec.get("containers"), &format!("{path}.containers"), true)?;
    check_containers(spec.get("initContainers"), &format!("{path}.initContainers"), false)?;
    let policy = spec.get("restartPolicy").and_then(Value::as_str);
    let allowed: &[&str] = if job { &["OnFailure", "Never"] } else { &["Always", "OnFailure", "Never"] };
    match policy {
        Some(p) if allowed.contains(&p) => Ok(()),
        None if !job => Ok(()),
        Some(p) => Err(FieldError {
            field: format!("{path}.restartPolicy"),
            message: format!("Unsupported value: \"{p}\": supported values: {}", quoted(allowed)),
        }),
        None => Err(FieldError {
            field: format!("{path}.restartPolicy"),
            message: format!("Required value: supported values: {}", quoted(allowed)),
        }),
    }
}

fn quoted(values: &[&str]) -> String {
    values.iter().map(|v| format!("\"{v}\"")).collect::<Vec<_>>().join(", ")
}

fn check_workload(obj: &Value, job: bool) -> Result {
    let spec = obj.get("spec").ok_or_else(|| FieldError::required("spec"))?;
    if let Some(r) = spec.get("replicas").and_then(Value::as_i64) {
        if r < 0 {
            return Err(FieldError::invalid("spec.replicas", &r.to_string(), "must be greater than or equal to 0"));
        }
    }
    let template = spec.get("template").ok_or_else(|| FieldError::required("spec.template"))?;
    check_pod_spec(template.get("spec"), "spec.template.spec", job)?;
    let labels = template.pointer("/metadata/labels").and_then(Value::as_object);
    let selector = spec.get("selector");
    if selector.is_none() {
        if job {
            return Ok(());
        }
        return Err(FieldError::required("spec.selector"));
    }
    let match_labels = selector.and_then(|s| s.get("matchLabels")).and_then(Value::as_object);
    let exprs = selector.and_then(|s| s.get("matchExpressions")).and_then(Value::as_array);
    if match_labels.is_none_or(|m| m.is_empty()) && exprs.is_none_or(|e| e.is_empty()) {
        return Err(FieldError {
            field: "spec.selector".into(),
            message: "Invalid value: empty selector is invalid for a workload".into(),
        });
    }
    if let Some(m) = match_labels {
        for (k, v) in m {
            if labels.and_then(|l| l.get(k)) != Some(v) {
                return Err(FieldError {
                    field: "spec.template.metadata.labels".into(),
                    message: "Invalid value: `selector` does not match template `labels`".into(),
                });
            }
        }
    }
    Ok(())
}

fn check_service(obj: &Value) -> Result {
    let spec = obj.get("spec").ok_or_else(|| FieldError::required("spec"))?;
    let ty = spec.get("type").and_then(Value::as_str).unwrap_or("ClusterIP");
    let allowed = ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"];
    if !allowed.contains(&ty) {
        return Err(FieldError {
            field: "spec.type".into(),
            message: format!("Unsupported value: \"{ty}\": supported values: {}", quoted(&allowed)),
        });
    }
    let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
    let ports = spec.get("ports").and_then(Value::as_array);
    if ports.is_none_or(|p| p.is_empty()) && !headless && ty != "ExternalName" {
        return Err(FieldError::required("spec.ports"));
    }
    for (i, p) in ports.into_iter().flatten().enumerate() {
        let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
        if !(1..=65535).contains(&port) {
            return Err(FieldError::invalid(
                format!("spec.ports[{i}].port"),
                &port.to_string(),
                "must be between 1 and 65535, inclusive",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec})
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
        let kind = &crate::objects::kinds::POD;
        let err = check_kind(kind, &pod(json!({"containers": [{"name": "a"}]}))).unwrap_err();
        assert_eq!(err.field, "spec.containers[0].image");
        let err = check_kind(kind, &pod(json!({"containers": []}))).unwrap_err();
        assert_eq!(err.field, "spec.containers");
        let ok = pod(json!({"containers": [{"name": "a", "image": "busybox"}]}));
        assert!(check_kind(kind, &ok).is_ok());
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
        let kind = &crate::objects::kinds::REPLICA_SET;
        let obj = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "r"},
            "spec": {"selector": {"matchLabels": {"app": "a"}},
                     "template": {"metadata": {"labels": {"app": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        assert_eq!(check_kind(kind, &obj).unwrap_err().field, "spec.template.metadata.labels");
    }

    #[test]
    fn bad_names_and_labels() {
        let kind = &crate::objects::kinds::CONFIG_MAP;
        let obj = json!({"metadata": {"name": "Bad_Name"}});
        assert_eq!(check_metadata(kind, &obj).unwrap_err().field, "metadata.name");
        let obj = json!({"metadata": {"name": "ok", "labels": {"app": "bad value"}}});
        assert_eq!(check_metadata(kind, &obj).unwrap_err().field, "metadata.labels[app]");
    }

    #[test]
    fn job_restart_policy() {
        assert!(check_pod_spec(
            Some(&json!({"containers": [{"name": "a", "image": "i"}]})),
            "spec.template.spec",
            true
        )
        .is_err());
        assert!(check_pod_spec(
            Some(&json!({"restartPolicy": "Never", "containers": [{"name": "a", "image": "i"}]})),
            "s",
            true
        )
        .is_ok());
    }
}
