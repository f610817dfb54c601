//! Admission: what happens to an object between the API call and the proposal.
//! Parse, default, validate, and assign the server-owned metadata — all on the
//! API node, so that applying the proposal is deterministic everywhere.

use serde_json::{json, Value};

use super::kinds::Kind;
use super::validate::{self, FieldError};
use super::{defaults, meta_str};

/// Objects larger than this are refused, as etcd does.
pub const MAX_OBJECT_BYTES: usize = 1_572_864;

/// Why an object was refused. Nothing is written.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AdmissionError {
    /// Fields are invalid: every cause names its field, as Kubernetes lists them
    /// (`Pod "p" is invalid: spec.x: …`, or `… is invalid: [spec.x: …, spec.y: …]`).
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The request is malformed (not JSON, unknown kind).
    #[error("{0}")]
    BadRequest(String),
    /// The object is larger than [`MAX_OBJECT_BYTES`].
    #[error("request entity too large: the object is {0} bytes, the limit is {MAX_OBJECT_BYTES}")]
    TooLarge(usize),
}

/// An object whose fields are invalid: every cause names its field, as
/// Kubernetes lists them (`Pod "p" is invalid: spec.x: …`, or
/// `… is invalid: [spec.x: …, spec.y: …]`). Admission and the registry both
/// report it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind} \"{name}\" is invalid: {}", Causes(.causes))]
pub struct Invalid {
    /// The object's kind (`Deployment`).
    pub kind: String,
    /// The object's name ("" when it has none).
    pub name: String,
    /// Every invalid field found; never empty.
    pub causes: Vec<FieldError>,
}

/// One cause as itself, several in brackets, as Kubernetes' aggregate error prints them.
pub struct Causes<'a>(pub &'a [FieldError]);

impl std::fmt::Display for Causes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            [one] => write!(f, "{one}"),
            many => {
                f.write_str("[")?;
                for (i, cause) in many.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{cause}")?;
                }
                f.write_str("]")
            }
        }
    }
}

/// An object ready to be proposed.
#[derive(Debug, Clone)]
pub struct Admitted {
    /// Its kind.
    pub kind: &'static Kind,
    /// Its namespace ("" for cluster-scoped kinds).
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its store key.
    pub key: String,
    /// The object to store (without resourceVersion).
    pub body: Value,
}

impl Admitted {
    /// The transaction that creates the object: only if the key is free and
    /// (for a namespaced kind) its namespace exists — compare 0 and 1.
    pub fn create_txn(&self) -> Result<clusterd_raft::Txn, AdmissionError> {
        // The namespace must exist, and (checked by the caller) not be terminating.
        use clusterd_raft::{Compare, Op, Txn};
        let mut compares = vec![Compare::ModRevision(self.key.clone(), 0)];
        if self.kind.namespaced {
            compares.push(Compare::Exists(super::kinds::NAMESPACE.key("", &self.namespace)));
        }
        Ok(Txn { compares, success: vec![Op::Put { key: self.key.clone(), value: self.bytes()? }] })
    }

    /// The stored bytes, refused if too large.
    pub fn bytes(&self) -> Result<Vec<u8>, AdmissionError> {
        let bytes = serde_json::to_vec(&self.body).map_err(|e| AdmissionError::BadRequest(e.to_string()))?;
        if bytes.len() > MAX_OBJECT_BYTES {
            return Err(AdmissionError::TooLarge(bytes.len()));
        }
        Ok(bytes)
    }
}

/// What the proposer decides for a new object.
pub struct CreateContext<'a> {
    /// The uid to assign.
    pub uid: &'a str,
    /// creationTimestamp, RFC 3339.
    pub now: &'a str,
    /// A random suffix for `generateName`.
    pub suffix: &'a str,
}

/// Parse Kubernetes JSON and find its kind.
pub fn parse(json: &str) -> Result<(&'static Kind, Value), AdmissionError> {
    if json.len() > MAX_OBJECT_BYTES {
        return Err(AdmissionError::TooLarge(json.len()));
    }
    let obj: Value =
        serde_json::from_str(json).map_err(|e| AdmissionError::BadRequest(format!("invalid JSON: {e}")))?;
    if !obj.is_object() {
        return Err(AdmissionError::BadRequest("the object must be a JSON object".into()));
    }
    let kind_name = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    let api = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if kind_name.is_empty() {
        return Err(AdmissionError::BadRequest("Object 'Kind' is missing".into()));
    }
    if api.is_empty() {
        return Err(AdmissionError::BadRequest("Object 'apiVersion' is missing".into()));
    }
    let kind = Kind::of(&obj).ok_or_else(|| {
        AdmissionError::BadRequest(format!("no kind \"{kind_name}\" is registered for version \"{api}\""))
    })?;
    Ok((kind, obj))
}

fn invalid(kind: &Kind, obj: &Value, causes: Vec<FieldError>) -> AdmissionError {
    AdmissionError::Invalid(Invalid { kind: kind.kind.into(), name: meta_str(obj, "name").to_string(), causes })
}

/// Every invalid field of `obj`: metadata, schema, and the kind's own rules,
/// after the `causes` found already (immutable fields of an update).
fn validate_all(kind: &Kind, obj: &Value, mut causes: Vec<FieldError>) -> Result<(), AdmissionError> {
    validate::check_metadata(kind, obj, &mut causes);
    match validate::check_schema(kind, obj) {
        // A field of the wrong type would read as absent in the kind's checks,
        // which would then report it again as missing: stop at the type error.
        Err(e) => causes.push(e),
        Ok(()) => validate::check_kind(kind, obj, &mut causes),
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(invalid(kind, obj, causes))
    }
}

fn meta_mut(obj: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"].as_object_mut().expect("metadata is an object")
}

/// Admit a new object.
pub fn for_create(kind: &'static Kind, mut obj: Value, ctx: &CreateContext) -> Result<Admitted, AdmissionError> {
    {
        let meta = meta_mut(&mut obj);
        let name_empty = meta.get("name").and_then(Value::as_str).unwrap_or("").is_empty();
        if name_empty {
            if let Some(prefix) = meta.get("generateName").and_then(Value::as_str) {
                meta.insert("name".into(), json!(format!("{prefix}{}", ctx.suffix)));
            }
        }
        if kind.namespaced {
            let ns_empty = meta.get("namespace").and_then(Value::as_str).unwrap_or("").is_empty();
            if ns_empty {
                meta.insert("namespace".into(), json!("default"));
            }
        } else {
            meta.remove("namespace");
        }
        for server_owned in ["resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"] {
            meta.remove(server_owned);
        }
        // Field ownership (server-side apply) is kept when given as a list.
        if meta.get("managedFields").and_then(Value::as_array).is_none_or(|l| l.is_empty()) {
            meta.remove("managedFields");
        }
        meta.insert("uid".into(), json!(ctx.uid));
        meta.insert("creationTimestamp".into(), json!(ctx.now));
        if kind.has_spec {
            meta.insert("generation".into(), json!(1));
        } else {
            meta.remove("generation");
        }
    }
    defaults::apply(kind, &mut obj);
    initial_status(kind, &mut obj);
    validate_all(kind, &obj, Vec::new())?;
    admitted(kind, obj)
}

fn initial_status(kind: &Kind, obj: &mut Value) {
    match kind.kind {
        "Pod" => obj["status"] = json!({"phase": "Pending"}),
        "Namespace" => obj["status"] = json!({"phase": "Active"}),
        // The kubelet registers its Node with its status.
        "Node" => {}
        _ if kind.has_status => {
            if let Some(o) = obj.as_object_mut() {
                o.remove("status");
            }
        }
        _ => {}
    }
}

fn admitted(kind: &'static Kind, body: Value) -> Result<Admitted, AdmissionError> {
    let namespace = if kind.namespaced { meta_str(&body, "namespace").to_string() } else { String::new() };
    let name = meta_str(&body, "name").to_string();
    Ok(Admitted { kind, key: kind.key(&namespace, &name), namespace, name, body })
}

/// Admit a replacement of `existing`. With `status_only`, only the status changes
/// (UpdateStatus); otherwise metadata and spec change and status is kept.
pub fn for_update(
    kind: &'static Kind,
    mut obj: Value,
    existing: &Value,
    status_only: bool,
) -> Result<Admitted, AdmissionError> {
    if status_only {
        let mut next = existing.clone();
        next["status"] = obj.get("status").cloned().unwrap_or(Value::Null);
        if next["status"].is_null() {
            next.as_object_mut().map(|o| o.remove("status"));
        }
        validate_all(kind, &next, Vec::new())?;
        return admitted(kind, next);
    }
    {
        let old_meta = existing.get("metadata").cloned().unwrap_or(json!({}));
        let uid = meta_str(&obj, "uid").to_string();
        if !uid.is_empty() && uid != meta_str(existing, "uid") {
            return Err(invalid(kind, &obj, vec![FieldError::immutable("metadata.uid")]));
        }
        let meta = meta_mut(&mut obj);
        if kind.namespaced && meta.get("namespace").and_then(Value::as_str).unwrap_or("").is_empty() {
            meta.insert("namespace".into(), old_meta["namespace"].clone());
        }
        for kept in ["uid", "creationTimestamp", "generation", "deletionTimestamp", "deletionGracePeriodSeconds"] {
            match old_meta.get(kept) {
                Some(v) => meta.insert(kept.into(), v.clone()),
                None => meta.remove(kept),
            };
        }
        meta.remove("resourceVersion");
        // Field ownership (server-side apply): an update that sends none keeps
        // the stored entries, one that sends an empty list clears them.
        match meta.get("managedFields") {
            None => {
                if let Some(m) = old_meta.get("managedFields") {
                    meta.insert("managedFields".into(), m.clone());
                }
            }
            Some(Value::Array(l)) if !l.is_empty() => {}
            Some(_) => {
                meta.remove("managedFields");
            }
        }
    }
    defaults::apply(kind, &mut obj);
    if kind.kind == "Service" {
        keep_service_addresses(&mut obj, existing);
    }
    if kind.has_status {
        match existing.get("status") {
            Some(s) => obj["status"] = s.clone(),
            None => {
                obj.as_object_mut().map(|o| o.remove("status"));
            }
        }
    }
    let changed = immutable_changes(kind, &obj, existing);
    if kind.has_spec && obj.get("spec") != existing.get("spec") {
        let generation = field(existing, "metadata.generation").and_then(Value::as_i64).unwrap_or(0);
        obj["metadata"]["generation"] = json!(generation + 1);
    }
    validate_all(kind, &obj, changed)?;
    admitted(kind, obj)
}

/// What the API server does to a Service update before validating it: an
/// update that leaves `clusterIP` empty keeps the allocated one, a port without
/// a nodePort keeps the one its name had, and a type change drops what the new
/// type cannot have (the old ClusterIP for ExternalName, the old NodePorts for
/// ClusterIP) — so that re-applying a manifest or patching `type` works.
fn keep_service_addresses(obj: &mut Value, old: &Value) {
    let (Some(spec), Some(old_spec)) = (obj.get_mut("spec").and_then(Value::as_object_mut), old.get("spec")) else {
        return;
    };
    let ty = spec.get("type").and_then(Value::as_str).unwrap_or("ClusterIP").to_string();
    let old_ty = old_spec.get("type").and_then(Value::as_str).unwrap_or("ClusterIP");
    let ip_fields = ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"];
    let ip_empty = spec.get("clusterIP").and_then(Value::as_str).unwrap_or("").is_empty();
    if ty == "ExternalName" {
        if old_ty != "ExternalName" && (ip_empty || spec.get("clusterIP") == old_spec.get("clusterIP")) {
            for f in ip_fields {
                spec.remove(f);
            }
        }
    } else if ip_empty {
        for f in ip_fields {
            match old_spec.get(f) {
                Some(v) => spec.insert(f.into(), v.clone()),
                None => spec.remove(f),
            };
        }
    }
    let node_ports = |t: &str| matches!(t, "NodePort" | "LoadBalancer");
    let by_name: std::collections::BTreeMap<String, Value> = old_spec
        .get("ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some((p.get("name").and_then(Value::as_str).unwrap_or("").to_string(), p.get("nodePort")?.clone()))
        })
        .collect();
    let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) else { return };
    let requested: Vec<Value> = ports.iter().filter_map(|p| p.get("nodePort").cloned()).collect();
    for p in ports.iter_mut().filter_map(Value::as_object_mut) {
        let name = p.get("name").and_then(Value::as_str).unwrap_or("").to_string();
        let had = by_name.get(&name).filter(|_| node_ports(old_ty));
        if node_ports(&ty) {
            if let Some(np) = had.filter(|np| !p.contains_key("nodePort") && !requested.contains(np)) {
                p.insert("nodePort".into(), np.clone());
            }
        } else if had.is_some() && p.get("nodePort") == had {
            p.remove("nodePort");
        }
    }
}

/// A field at `path` (dotted) of a JSON object.
fn field<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(obj, |v, k| v.get(k))
}

/// Every immutable field an update changes (all of them, not the first).
fn immutable_changes(kind: &Kind, new: &Value, old: &Value) -> Vec<FieldError> {
    let mut causes = Vec::new();
    for f in ["name", "namespace"] {
        if meta_str(new, f) != meta_str(old, f) {
            causes.push(FieldError::immutable(format!("metadata.{f}")));
        }
    }
    let fixed: &[&str] = match kind.kind {
        "Deployment" | "ReplicaSet" | "DaemonSet" => &["spec.selector"],
        "StatefulSet" => &["spec.selector", "spec.serviceName"],
        "Job" => &["spec.selector", "spec.template", "spec.completions"],
        _ => &[],
    };
    for f in fixed {
        if field(new, f) != field(old, f) {
            causes.push(FieldError::immutable(*f));
        }
    }
    if let Err(e) = kind_immutables(kind, new, old) {
        causes.push(e);
    }
    causes
}

/// The immutability rules of one kind that are more than "this field stays".
fn kind_immutables(kind: &Kind, new: &Value, old: &Value) -> Result<(), FieldError> {
    let same = |path: &str| field(new, path) == field(old, path);
    match kind.kind {
        "Service" => {
            let old_ip = field(old, "spec.clusterIP").and_then(Value::as_str).unwrap_or("");
            let new_ip = field(new, "spec.clusterIP").and_then(Value::as_str).unwrap_or("");
            if !old_ip.is_empty() && !new_ip.is_empty() && old_ip != new_ip {
                return Err(FieldError::immutable("spec.clusterIP"));
            }
            Ok(())
        }
        "ConfigMap" | "Secret" if old.get("immutable") == Some(&json!(true)) => {
            for f in ["data", "binaryData", "stringData"] {
                if !same(f) {
                    return Err(FieldError {
                        field: f.into(),
                        message: "Forbidden: field is immutable when `immutable` is set".into(),
                    });
                }
            }
            Ok(())
        }
        "Pod" => {
            // Only images, activeDeadlineSeconds and tolerations may change, and nodeName may be set once.
            let strip = |v: &Value| {
                let mut spec = v.get("spec").cloned().unwrap_or(Value::Null);
                for list in ["containers", "initContainers"] {
                    if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
                        for c in cs.iter_mut() {
                            c["image"] = Value::Null;
                        }
                    }
                }
                if let Some(o) = spec.as_object_mut() {
                    o.remove("activeDeadlineSeconds");
                    o.remove("tolerations");
                    o.remove("nodeName");
                }
                spec
            };
            if strip(new) != strip(old) {
                return Err(FieldError {
                    field: "spec".into(),
                    message: "Forbidden: pod updates may not change fields other than `spec.containers[*].image`, `spec.initContainers[*].image`, `spec.activeDeadlineSeconds` or `spec.tolerations` (only additions to existing tolerations)".into(),
                });
            }
            let old_node = field(old, "spec.nodeName").and_then(Value::as_str).unwrap_or("");
            if !old_node.is_empty() && field(new, "spec.nodeName").and_then(Value::as_str) != Some(old_node) {
                return Err(FieldError::immutable("spec.nodeName"));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> CreateContext<'static> {
        CreateContext { uid: "u-1", now: "2026-01-01T00:00:00Z", suffix: "abcde" }
    }

    fn cm(name: &str) -> String {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "1"}}).to_string()
    }

    #[test]
    fn create_sets_server_metadata() {
        let (kind, obj) = parse(&cm("conf")).unwrap();
        let a = for_create(kind, obj, &ctx()).unwrap();
        assert_eq!(a.key, "/registry/configmaps/default/conf");
        assert_eq!(a.body["metadata"]["uid"], "u-1");
        assert_eq!(a.body["metadata"]["namespace"], "default");
        assert!(a.body["metadata"].get("generation").is_none());
    }

    #[test]
    fn invalid_object_names_the_field() {
        let (kind, obj) = parse(&cm("Not_Valid")).unwrap();
        let err = for_create(kind, obj, &ctx()).unwrap_err();
        assert!(
            err.to_string().starts_with("ConfigMap \"Not_Valid\" is invalid: metadata.name: Invalid value"),
            "{err}"
        );
    }

    #[test]
    fn a_deployment_with_two_invalid_fields_shows_both() {
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": -3, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        let err = for_create(Kind::of(&d).unwrap(), d, &ctx()).unwrap_err();
        let AdmissionError::Invalid(Invalid { causes, .. }) = &err else { panic!("{err:?}") };
        assert_eq!(causes.len(), 2, "{err}");
        assert_eq!(
            err.to_string(),
            "Deployment \"web\" is invalid: [spec.replicas: Invalid value: -3: must be greater than or equal to 0, \
             spec.template.metadata.labels: Invalid value: `selector` does not match template `labels`]"
        );
    }

    #[test]
    fn an_update_names_every_immutable_field_it_changes_and_every_invalid_one() {
        let sts = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": "d"},
            "spec": {"replicas": 1, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                     "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        let created = for_create(Kind::of(&sts).unwrap(), sts.clone(), &ctx()).unwrap().body;
        let mut changed = created.clone();
        changed["spec"]["serviceName"] = json!("other");
        changed["spec"]["selector"] = json!({"matchLabels": {"app": "db", "tier": "x"}});
        changed["spec"]["replicas"] = json!(-1);
        let err = for_update(Kind::of(&sts).unwrap(), changed, &created, false).unwrap_err();
        let AdmissionError::Invalid(Invalid { causes, .. }) = &err else { panic!("{err:?}") };
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        for f in ["spec.selector", "spec.serviceName", "spec.replicas"] {
            assert!(fields.contains(&f), "{f} missing from {err}");
        }
    }

    #[test]
    fn one_cause_is_shown_without_brackets() {
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": -3, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        let err = for_create(Kind::of(&d).unwrap(), d, &ctx()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Deployment \"web\" is invalid: spec.replicas: Invalid value: -3: must be greater than or equal to 0"
        );
    }

    #[test]
    fn metadata_and_schema_errors_are_reported_together() {
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "Web"}, "spec": {"replicas": "three"}});
        let err = for_create(Kind::of(&d).unwrap(), d, &ctx()).unwrap_err();
        let AdmissionError::Invalid(Invalid { causes, .. }) = &err else { panic!("{err:?}") };
        let fields: Vec<_> = causes.iter().map(|c| c.field.as_str()).collect();
        // The type error stops the Deployment's own checks: no "spec.template: Required value" noise.
        assert_eq!(fields, ["metadata.name", "spec.replicas"], "{err}");
    }

    #[test]
    fn a_malformed_quantity_is_refused_naming_the_field() {
        let p = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "i", "resources": {"limits": {"memory": "12 potatoes"}}}]}});
        let err = for_create(Kind::of(&p).unwrap(), p, &ctx()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Pod \"p\" is invalid: spec.containers[0].resources.limits[memory]: Invalid value: \"12 potatoes\": \
             quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
        );
        let p = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "i", "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "2"}}}]}});
        let err = for_create(Kind::of(&p).unwrap(), p, &ctx()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Pod \"p\" is invalid: spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1"
        );
    }

    #[test]
    fn unknown_kind_is_refused() {
        let err = parse(r#"{"apiVersion":"v1","kind":"Widget","metadata":{"name":"w"}}"#).unwrap_err();
        assert_eq!(err.to_string(), "no kind \"Widget\" is registered for version \"v1\"");
    }

    #[test]
    fn generate_name() {
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "web-"}});
        let a = for_create(Kind::of(&obj).unwrap(), obj, &ctx()).unwrap();
        assert_eq!(a.name, "web-abcde");
    }

    #[test]
    fn update_keeps_status_and_bumps_generation() {
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i:1"}]}}}});
        let kind = Kind::of(&d).unwrap();
        let mut created = for_create(kind, d.clone(), &ctx()).unwrap().body;
        created["status"] = json!({"replicas": 1});
        let mut changed = d.clone();
        changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("i:2");
        let up = for_update(kind, changed, &created, false).unwrap();
        assert_eq!(up.body["metadata"]["generation"], 2);
        assert_eq!(up.body["status"]["replicas"], 1);
        assert_eq!(up.body["metadata"]["uid"], "u-1");
        let mut moved = d;
        moved["spec"]["selector"]["matchLabels"]["a"] = json!("c");
        moved["spec"]["template"]["metadata"]["labels"]["a"] = json!("c");
        let err = for_update(kind, moved, &created, false).unwrap_err();
        assert!(err.to_string().contains("spec.selector: field is immutable"), "{err}");
    }

    #[test]
    fn too_large() {
        let big = "x".repeat(MAX_OBJECT_BYTES);
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"}, "data": {"a": big}});
        let a = for_create(Kind::of(&obj).unwrap(), obj, &ctx()).unwrap();
        assert!(matches!(a.bytes(), Err(AdmissionError::TooLarge(_))));
    }

    #[test]
    fn a_service_update_keeps_its_addresses_unless_its_type_drops_them() {
        let svc =
            |spec: Value| json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": spec});
        let old = svc(json!({"type": "NodePort", "clusterIP": "10.96.0.7", "clusterIPs": ["10.96.0.7"],
            "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
            "ports": [{"name": "a", "port": 80, "nodePort": 30080}, {"name": "b", "port": 81, "nodePort": 30081}]}));
        // (new spec, clusterIP after, nodePorts after)
        let cases = [
            // Re-applying the manifest without addresses keeps them.
            (
                json!({"type": "NodePort", "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 81}]}),
                json!("10.96.0.7"),
                vec![json!(30080), json!(30081)],
            ),
            // A port asking for another's node port: that one is not patched in twice.
            (
                json!({"type": "NodePort", "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 81, "nodePort": 30080}]}),
                json!("10.96.0.7"),
                vec![Value::Null, json!(30080)],
            ),
            // Becoming ClusterIP drops the node ports it had.
            (
                json!({"type": "ClusterIP", "clusterIP": "10.96.0.7", "ports": [{"name": "a", "port": 80, "nodePort": 30080}]}),
                json!("10.96.0.7"),
                vec![Value::Null],
            ),
            // ... but not a new one (refused by validation).
            (
                json!({"type": "ClusterIP", "ports": [{"name": "a", "port": 80, "nodePort": 30099}]}),
                json!("10.96.0.7"),
                vec![json!(30099)],
            ),
            // Becoming ExternalName drops the ClusterIP.
            (
                json!({"type": "ExternalName", "externalName": "example.com", "clusterIP": "10.96.0.7"}),
                Value::Null,
                vec![],
            ),
        ];
        for (spec, ip, node_ports) in cases {
            let mut new = svc(spec.clone());
            keep_service_addresses(&mut new, &old);
            assert_eq!(new["spec"]["clusterIP"], ip, "{spec}");
            let got: Vec<Value> =
                new["spec"]["ports"].as_array().into_iter().flatten().map(|p| p["nodePort"].clone()).collect();
            assert_eq!(got, node_ports, "{spec}");
        }
        let mut changed =
            svc(json!({"type": "NodePort", "clusterIP": "10.96.0.8", "ports": [{"name": "a", "port": 80}]}));
        changed["metadata"]["uid"] = json!("u-1");
        let mut created = for_create(&super::super::kinds::SERVICE, old.clone(), &ctx()).unwrap().body;
        created["metadata"]["uid"] = json!("u-1");
        let err = for_update(&super::super::kinds::SERVICE, changed, &created, false).unwrap_err();
        assert_eq!(err.to_string(), "Service \"web\" is invalid: spec.clusterIP: field is immutable");
    }
}
