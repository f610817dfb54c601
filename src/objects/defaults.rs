//! Defaulting like the Kubernetes API server's, applied before validation so the
//! stored object is what Kubernetes would store.

use serde_json::{json, Map, Value};

use super::kinds::Kind;

fn set_default(obj: &mut Map<String, Value>, key: &str, value: Value) {
    obj.entry(key.to_string()).or_insert(value);
}

fn object(v: &mut Value) -> Option<&mut Map<String, Value>> {
    v.as_object_mut()
}

/// Fill in defaults for an object of `kind`.
pub fn apply(kind: &Kind, obj: &mut Value) {
    match kind.kind {
        "Pod" => {
            if let Some(spec) = obj.get_mut("spec") {
                pod_spec(spec);
            }
        }
        "Deployment" => workload(obj, |spec| {
            set_default(spec, "replicas", json!(1));
            set_default(spec, "revisionHistoryLimit", json!(10));
            set_default(spec, "progressDeadlineSeconds", json!(600));
            set_default(
                spec,
                "strategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
            );
        }),
        "ReplicaSet" => workload(obj, |spec| set_default(spec, "replicas", json!(1))),
        "StatefulSet" => workload(obj, |spec| {
            set_default(spec, "replicas", json!(1));
            set_default(spec, "podManagementPolicy", json!("OrderedReady"));
            set_default(spec, "revisionHistoryLimit", json!(10));
            set_default(spec, "updateStrategy", json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}));
        }),
        "DaemonSet" => workload(obj, |spec| {
            set_default(spec, "revisionHistoryLimit", json!(10));
            set_default(
                spec,
                "updateStrategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
            );
        }),
        "Job" => workload(obj, |spec| {
            set_default(spec, "parallelism", json!(1));
            set_default(spec, "completions", json!(1));
            set_default(spec, "backoffLimit", json!(6));
            set_default(spec, "completionMode", json!("NonIndexed"));
            set_default(spec, "suspend", json!(false));
        }),
        "Service" => {
            if let Some(spec) = obj.get_mut("spec").and_then(object) {
                set_default(spec, "type", json!("ClusterIP"));
                set_default(spec, "sessionAffinity", json!("None"));
                let ty = spec.get("type").and_then(Value::as_str).unwrap_or("").to_string();
                if ty != "ExternalName" {
                    set_default(spec, "internalTrafficPolicy", json!("Cluster"));
                }
                if ty == "NodePort" || ty == "LoadBalancer" {
                    set_default(spec, "externalTrafficPolicy", json!("Cluster"));
                }
                if ty == "LoadBalancer" {
                    set_default(spec, "allocateLoadBalancerNodePorts", json!(true));
                }
                if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                    for p in ports.iter_mut().filter_map(object) {
                        set_default(p, "protocol", json!("TCP"));
                        if let Some(port) = p.get("port").cloned() {
                            set_default(p, "targetPort", port);
                        }
                    }
                }
            }
        }
        "Secret" => {
            if let Some(o) = object(obj) {
                set_default(o, "type", json!("Opaque"));
                // stringData is write-only: merged into data, base64-encoded, as
                // Kubernetes does — when it is a map of strings. Anything else
                // stays for validation to refuse at its path (a value that is no
                // string was stored as "" and a stringData that is no map vanished).
                let strings = |v: &Value| v.as_object().is_some_and(|m| m.values().all(Value::is_string));
                if o.get("stringData").is_some_and(Value::is_null) {
                    o.remove("stringData");
                }
                let plain = if o.get("stringData").is_some_and(strings) { o.remove("stringData") } else { None };
                if let Some(Value::Object(plain)) = plain {
                    use base64::Engine;
                    let data = o.entry("data").or_insert_with(|| json!({}));
                    if let Some(data) = data.as_object_mut() {
                        for (k, v) in plain {
                            let text = v.as_str().unwrap_or_default().to_string();
                            data.insert(k, json!(base64::engine::general_purpose::STANDARD.encode(text)));
                        }
                    }
                }
            }
        }
        _ => {}
    }
}

fn workload(obj: &mut Value, f: impl FnOnce(&mut Map<String, Value>)) {
    let Some(spec) = obj.get_mut("spec").and_then(object) else {
        return;
    };
    f(spec);
    if let Some(pod) = spec.get_mut("template").and_then(|t| t.get_mut("spec")) {
        pod_spec(pod);
    }
}

/// Defaults of a pod spec (also inside templates).
pub fn pod_spec(spec: &mut Value) {
    let Some(s) = object(spec) else { return };
    set_default(s, "restartPolicy", json!("Always"));
    set_default(s, "dnsPolicy", json!("ClusterFirst"));
    set_default(s, "schedulerName", json!("default-scheduler"));
    set_default(s, "terminationGracePeriodSeconds", json!(30));
    set_default(s, "securityContext", json!({}));
    // The ServiceAccount admission of Kubernetes: every pod runs as one.
    set_default(s, "serviceAccountName", json!("default"));
    if let Some(sa) = s.get("serviceAccountName").cloned() {
        set_default(s, "serviceAccount", sa);
    }
    for list in ["containers", "initContainers"] {
        if let Some(cs) = s.get_mut(list).and_then(Value::as_array_mut) {
            for c in cs.iter_mut().filter_map(object) {
                let image = c.get("image").and_then(Value::as_str).unwrap_or("").to_string();
                set_default(c, "imagePullPolicy", json!(pull_policy(&image)));
                set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
                set_default(c, "terminationMessagePolicy", json!("File"));
                if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
                    for p in ports.iter_mut().filter_map(object) {
                        set_default(p, "protocol", json!("TCP"));
                    }
                }
            }
        }
    }
}

/// `Always` for `:latest` or untagged images, else `IfNotPresent` (Kubernetes' rule).
pub fn pull_policy(image: &str) -> &'static str {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    match last.split_once(':') {
        Some((_, "latest")) | None if !image.contains('@') => "Always",
        _ => "IfNotPresent",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy_follows_the_tag() {
        assert_eq!(pull_policy("busybox"), "Always");
        assert_eq!(pull_policy("busybox:latest"), "Always");
        assert_eq!(pull_policy("clusterd.local/busybox:v1"), "IfNotPresent");
        assert_eq!(pull_policy("localhost:5000/busybox"), "Always");
        assert_eq!(pull_policy("busybox@sha256:abc"), "IfNotPresent");
    }

    #[test]
    fn secret_string_data_becomes_data() {
        let kind = &crate::objects::kinds::SECRET;
        let mut s = json!({"stringData": {"user": "admin"}, "data": {"x": "eQ=="}});
        apply(kind, &mut s);
        assert_eq!(s["data"]["user"], "YWRtaW4=");
        assert_eq!(s["data"]["x"], "eQ==");
        assert!(s.get("stringData").is_none());
        assert_eq!(s["type"], "Opaque");
    }

    /// Found by fuzzing: `stringData: {password: false}` was admitted and
    /// stored as an empty password, and a stringData that is no map vanished.
    #[test]
    fn string_data_that_is_not_a_map_of_strings_is_left_for_validation() {
        let kind = &crate::objects::kinds::SECRET;
        for bad in [json!({"password": false}), json!({"a": "x", "n": 1}), json!("text"), json!([1])] {
            let mut s = json!({"stringData": bad.clone()});
            apply(kind, &mut s);
            assert_eq!(s["stringData"], bad);
            assert!(s.get("data").is_none(), "{s}");
        }
        let mut s = json!({"stringData": null});
        apply(kind, &mut s);
        assert!(s.get("stringData").is_none());
    }

    #[test]
    fn deployment_defaults() {
        let kind = &crate::objects::kinds::DEPLOYMENT;
        let mut d = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i:v1"}]}}}});
        apply(kind, &mut d);
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        assert_eq!(d["spec"]["template"]["spec"]["restartPolicy"], "Always");
        assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"], "IfNotPresent");
    }
}
