//! From a pod's spec to what the runtime runs: environment (values, secret and
//! configMap keys, pod fields), volumes (directories prepared on the node) and
//! resources. Lookups of secrets and configMaps go to the local replica.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::Value;

use clusterd_runtime::{ContainerConfig, Mount, Resources};

use crate::objects::{meta_str, quantity};

/// Why a container cannot be configured (Kubernetes: `CreateContainerConfigError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Reads a namespaced object from the local replica.
pub trait Lookup {
    /// The object, if it exists.
    fn object(&self, kind: &str, namespace: &str, name: &str) -> Option<Value>;
}

/// A key of a Secret (base64-decoded) or ConfigMap.
fn key_of_source(
    lookup: &dyn Lookup,
    kind: &str,
    ns: &str,
    name: &str,
    key: &str,
) -> Result<Option<String>, ConfigError> {
    let Some(obj) = lookup.object(kind, ns, name) else {
        return Err(ConfigError(format!("{kind} \"{name}\" not found")));
    };
    Ok(source_data(&obj, kind).remove(key).map(|b| String::from_utf8_lossy(&b).into_owned()))
}

/// Every key of a Secret (decoded) or ConfigMap (data and binaryData).
pub fn source_data(obj: &Value, kind: &str) -> BTreeMap<String, Vec<u8>> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut out = BTreeMap::new();
    let decode = |v: &Value| v.as_str().and_then(|s| b64.decode(s).ok());
    if let Some(data) = obj.get("data").and_then(Value::as_object) {
        for (k, v) in data {
            let bytes = if kind == "secret" { decode(v) } else { v.as_str().map(|s| s.as_bytes().to_vec()) };
            if let Some(b) = bytes {
                out.insert(k.clone(), b);
            }
        }
    }
    if let Some(data) = obj.get("binaryData").and_then(Value::as_object) {
        for (k, v) in data {
            if let Some(b) = decode(v) {
                out.insert(k.clone(), b);
            }
        }
    }
    out
}

/// The value of a `fieldRef` path.
pub fn field_ref(pod: &Value, path: &str, pod_ip: &str, host_ip: &str) -> Option<String> {
    let s = |p: &str| pod.pointer(p).and_then(Value::as_str).map(String::from);
    match path {
        "metadata.name" => s("/metadata/name"),
        "metadata.namespace" => s("/metadata/namespace"),
        "metadata.uid" => s("/metadata/uid"),
        "spec.nodeName" => s("/spec/nodeName"),
        "spec.serviceAccountName" => s("/spec/serviceAccountName"),
        "status.podIP" => Some(pod_ip.to_string()),
        "status.hostIP" => Some(host_ip.to_string()),
        p => {
            let rest = p.strip_prefix("metadata.labels['").or_else(|| p.strip_prefix("metadata.annotations['"))?;
            let key = rest.strip_suffix("']")?;
            let map = if p.starts_with("metadata.labels") { "labels" } else { "annotations" };
            pod.pointer(&format!("/metadata/{map}")).and_then(|m| m.get(key)).and_then(Value::as_str).map(String::from)
        }
    }
}

/// `$(VAR)` references expanded from earlier variables, as Kubernetes does.
fn expand(s: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("$(") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find(')') {
            Some(j) if vars.contains_key(&after[..j]) => {
                out.push_str(&vars[&after[..j]]);
                rest = &after[j + 1..];
            }
            _ => {
                out.push_str("$(");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The environment of a container, in order: `envFrom`, then `env`.
pub fn environment(
    pod: &Value,
    container: &Value,
    lookup: &dyn Lookup,
    pod_ip: &str,
    host_ip: &str,
) -> Result<Vec<(String, String)>, ConfigError> {
    let ns = meta_str(pod, "namespace");
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut set = |vars: &mut BTreeMap<String, String>, k: String, v: String| {
        if !vars.contains_key(&k) {
            order.push(k.clone());
        }
        vars.insert(k, v);
    };
    for from in container.get("envFrom").and_then(Value::as_array).into_iter().flatten() {
        let prefix = from.get("prefix").and_then(Value::as_str).unwrap_or("");
        for (field, kind) in [("configMapRef", "configmap"), ("secretRef", "secret")] {
            let Some(r) = from.get(field) else { continue };
            let name = r.get("name").and_then(Value::as_str).unwrap_or("");
            let optional = r.get("optional").and_then(Value::as_bool).unwrap_or(false);
            match lookup.object(kind, ns, name) {
                Some(obj) => {
                    for (k, v) in source_data(&obj, kind) {
                        set(&mut vars, format!("{prefix}{k}"), String::from_utf8_lossy(&v).into_owned());
                    }
                }
                None if optional => {}
                None => return Err(ConfigError(format!("{kind} \"{name}\" not found"))),
            }
        }
    }
    for e in container.get("env").and_then(Value::as_array).into_iter().flatten() {
        let name = e.get("name").and_then(Value::as_str).unwrap_or("").to_string();
        let value = if let Some(v) = e.get("value").and_then(Value::as_str) {
            expand(v, &vars)
        } else if let Some(from) = e.get("valueFrom") {
            let mut resolved = None;
            for (field, kind) in [("secretKeyRef", "secret"), ("configMapKeyRef", "configmap")] {
                let Some(r) = from.get(field) else { continue };
                let src = r.get("name").and_then(Value::as_str).unwrap_or("");
                let key = r.get("key").and_then(Value::as_str).unwrap_or("");
                let optional = r.get("optional").and_then(Value::as_bool).unwrap_or(false);
                match key_of_source(lookup, kind, ns, src, key) {
                    Ok(Some(v)) => resolved = Some(v),
                    Ok(None) if optional => {}
                    Err(_) if optional => {}
                    Ok(None) => {
                        return Err(ConfigError(format!("couldn't find key {key} in {kind} {ns}/{src}")));
                    }
                    Err(e) => return Err(e),
                }
            }
            if let Some(path) = from.pointer("/fieldRef/fieldPath").and_then(Value::as_str) {
                resolved = field_ref(pod, path, pod_ip, host_ip);
            }
            match resolved {
                Some(v) => v,
                None => continue,
            }
        } else {
            String::new()
        };
        set(&mut vars, name, value);
    }
    Ok(order.into_iter().map(|k| (k.clone(), vars[&k].clone())).collect())
}

/// The CPU/memory settings of a container's `resources`.
pub fn resources(container: &Value) -> Resources {
    let res = container.get("resources");
    let q = |section: &str, name: &str| {
        res.and_then(|r| r.get(section)).and_then(|r| r.get(name)).and_then(quantity::from_json)
    };
    let cpu_limit = q("limits", "cpu").and_then(|s| quantity::cpu_millis(&s).ok());
    let cpu_request = q("requests", "cpu").and_then(|s| quantity::cpu_millis(&s).ok()).or(cpu_limit);
    let memory = q("limits", "memory").and_then(|s| quantity::units(&s).ok()).map(|b| b as i64);
    Resources::from_millis(cpu_request, cpu_limit, memory)
}

/// Where a pod's volumes live on the node.
pub fn volume_dir(pods_root: &Path, uid: &str, name: &str) -> PathBuf {
    pods_root.join(uid).join("volumes").join(name)
}

/// Write a file only when its content differs (so an unchanged volume is not touched).
fn write_if_changed(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<bool> {
    use std::os::unix::fs::PermissionsExt;
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(false);
    }
    let tmp = path.with_extension("clusterd-tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
    std::fs::rename(&tmp, path)?;
    Ok(true)
}

/// Prepare every volume of the pod on the node: emptyDir directories, hostPath
/// checks, and the files of secret and configMap volumes (rewritten when the
/// source changed). Returns volume name → host path.
pub fn prepare_volumes(
    pod: &Value,
    lookup: &dyn Lookup,
    pods_root: &Path,
) -> Result<BTreeMap<String, PathBuf>, ConfigError> {
    let ns = meta_str(pod, "namespace");
    let uid = meta_str(pod, "uid");
    let mut out = BTreeMap::new();
    for v in pod.pointer("/spec/volumes").and_then(Value::as_array).into_iter().flatten() {
        let name = v.get("name").and_then(Value::as_str).unwrap_or("").to_string();
        let io = |e: std::io::Error| ConfigError(format!("volume \"{name}\": {e}"));
        if let Some(hp) = v.get("hostPath") {
            let path = PathBuf::from(hp.get("path").and_then(Value::as_str).unwrap_or(""));
            match hp.get("type").and_then(Value::as_str).unwrap_or("") {
                "DirectoryOrCreate" => std::fs::create_dir_all(&path).map_err(io)?,
                "Directory" if !path.is_dir() => {
                    return Err(ConfigError(format!(
                        "hostPath type check failed: {} is not a directory",
                        path.display()
                    )))
                }
                "File" if !path.is_file() => {
                    return Err(ConfigError(format!("hostPath type check failed: {} is not a file", path.display())))
                }
                _ => {}
            }
            out.insert(name, path);
            continue;
        }
        let dir = volume_dir(pods_root, uid, &name);
        std::fs::create_dir_all(&dir).map_err(io)?;
        let source = if let Some(s) = v.get("secret") {
            Some(("secret", s.get("secretName").and_then(Value::as_str).unwrap_or(""), s))
        } else {
            v.get("configMap").map(|c| ("configmap", c.get("name").and_then(Value::as_str).unwrap_or(""), c))
        };
        if let Some((kind, src, spec)) = source {
            let optional = spec.get("optional").and_then(Value::as_bool).unwrap_or(false);
            let mode = spec.get("defaultMode").and_then(Value::as_u64).unwrap_or(0o644) as u32;
            let data = match lookup.object(kind, ns, src) {
                Some(obj) => source_data(&obj, kind),
                None if optional => BTreeMap::new(),
                None => {
                    let what = if kind == "secret" { "secret" } else { "configmap" };
                    return Err(ConfigError(format!(
                        "MountVolume.SetUp failed for volume \"{name}\" : {what} \"{src}\" not found"
                    )));
                }
            };
            let items: Vec<(String, String)> = match spec.get("items").and_then(Value::as_array) {
                Some(items) => items
                    .iter()
                    .filter_map(|i| Some((i.get("key")?.as_str()?.to_string(), i.get("path")?.as_str()?.to_string())))
                    .collect(),
                None => data.keys().map(|k| (k.clone(), k.clone())).collect(),
            };
            let mut keep = std::collections::BTreeSet::new();
            for (key, path) in items {
                let Some(bytes) = data.get(&key) else { continue };
                if path.contains("..") || path.starts_with('/') {
                    continue;
                }
                let target = dir.join(&path);
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent).map_err(io)?;
                }
                write_if_changed(&target, bytes, mode).map_err(io)?;
                keep.insert(path.split('/').next().unwrap_or("").to_string());
            }
            // Keys removed from the source disappear from the volume.
            if let Ok(rd) = std::fs::read_dir(&dir) {
                for e in rd.flatten() {
                    let n = e.file_name().to_string_lossy().into_owned();
                    if !keep.contains(&n) {
                        let _ = std::fs::remove_file(e.path()).or_else(|_| std::fs::remove_dir_all(e.path()));
                    }
                }
            }
        }
        out.insert(name, dir);
    }
    // The service account token, unless the pod opts out.
    if pod.pointer("/spec/automountServiceAccountToken").and_then(Value::as_bool) != Some(false) {
        let sa = pod.pointer("/spec/serviceAccountName").and_then(Value::as_str).unwrap_or("default");
        let secret_name = crate::objects::conventions::token_secret_name(sa);
        let secret = lookup.object("secret", ns, &secret_name).ok_or_else(|| {
            ConfigError(format!(
                "MountVolume.SetUp failed for volume \"{SA_VOLUME}\" : secret \"{secret_name}\" not found"
            ))
        })?;
        let dir = volume_dir(pods_root, uid, SA_VOLUME);
        let io = |e: std::io::Error| ConfigError(format!("volume \"{SA_VOLUME}\": {e}"));
        std::fs::create_dir_all(&dir).map_err(io)?;
        for (k, v) in source_data(&secret, "secret") {
            write_if_changed(&dir.join(&k), &v, 0o644).map_err(io)?;
        }
        out.insert(SA_VOLUME.to_string(), dir);
    }
    Ok(out)
}

/// The volume holding the service account token.
pub const SA_VOLUME: &str = "kube-api-access";

/// The runtime's container config for `container` of `pod`.
pub fn container_config(
    pod: &Value,
    container: &Value,
    volumes: &BTreeMap<String, PathBuf>,
    env: Vec<(String, String)>,
) -> Result<ContainerConfig, ConfigError> {
    let strings = |f: &str| -> Vec<String> {
        container
            .get(f)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
            .unwrap_or_default()
    };
    let vars: BTreeMap<String, String> = env.iter().cloned().collect();
    let mut mounts = Vec::new();
    for m in container.get("volumeMounts").and_then(Value::as_array).into_iter().flatten() {
        let name = m.get("name").and_then(Value::as_str).unwrap_or("");
        let host = volumes.get(name).ok_or_else(|| ConfigError(format!("volume \"{name}\" is not defined")))?;
        let mut host = host.clone();
        if let Some(sub) = m.get("subPath").and_then(Value::as_str).filter(|s| !s.is_empty()) {
            if sub.contains("..") || sub.starts_with('/') {
                return Err(ConfigError(format!("subPath \"{sub}\" must be a relative path without '..'")));
            }
            host = host.join(sub);
            if !host.exists() {
                std::fs::create_dir_all(&host).map_err(|e| ConfigError(e.to_string()))?;
            }
        }
        mounts.push(Mount {
            host_path: host.to_string_lossy().into_owned(),
            container_path: m.get("mountPath").and_then(Value::as_str).unwrap_or("").to_string(),
            read_only: m.get("readOnly").and_then(Value::as_bool).unwrap_or(false),
        });
    }
    let _ = pod;
    let token_path = crate::objects::conventions::SERVICE_ACCOUNT_MOUNT_PATH;
    if let Some(dir) = volumes.get(SA_VOLUME) {
        if !mounts.iter().any(|m| m.container_path == token_path) {
            mounts.push(Mount {
                host_path: dir.to_string_lossy().into_owned(),
                container_path: token_path.into(),
                read_only: true,
            });
        }
    }
    Ok(ContainerConfig {
        name: container.get("name").and_then(Value::as_str).unwrap_or("").to_string(),
        image: container.get("image").and_then(Value::as_str).unwrap_or("").to_string(),
        command: strings("command").iter().map(|s| expand(s, &vars)).collect(),
        args: strings("args").iter().map(|s| expand(s, &vars)).collect(),
        env,
        working_dir: container.get("workingDir").and_then(Value::as_str).unwrap_or("").to_string(),
        mounts,
        resources: resources(container),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Objects(Vec<(String, Value)>);
    impl Lookup for Objects {
        fn object(&self, kind: &str, _ns: &str, name: &str) -> Option<Value> {
            self.0.iter().find(|(k, o)| k == kind && meta_str(o, "name") == name).map(|(_, o)| o.clone())
        }
    }

    fn objects() -> Objects {
        Objects(vec![
            ("secret".into(), json!({"metadata": {"name": "db"}, "data": {"password": "czNjcjN0"}})),
            ("configmap".into(), json!({"metadata": {"name": "cfg"}, "data": {"mode": "fast", "level": "3"}})),
            (
                "secret".into(),
                json!({"metadata": {"name": "default-token"}, "data": {"token": "dG9r", "namespace": "bnM="}}),
            ),
        ])
    }

    #[test]
    fn env_from_values_secrets_configmaps_and_fields() {
        let pod =
            json!({"metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web"}}, "spec": {"nodeName": "n1"}});
        let c = json!({"env": [
            {"name": "A", "value": "x"},
            {"name": "B", "value": "$(A)-y"},
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}}
        ], "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}]});
        let env = environment(&pod, &c, &objects(), "10.0.0.5", "127.0.0.1").unwrap();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("B"), Some("x-y"));
        assert_eq!(get("PW"), Some("s3cr3t"));
        assert_eq!(get("MODE"), Some("fast"));
        assert_eq!(get("CFG_level"), Some("3"));
        assert_eq!(get("POD"), Some("p"));
        assert_eq!(get("IP"), Some("10.0.0.5"));
        assert_eq!(get("NODE"), Some("n1"));
        assert_eq!(get("APP"), Some("web"));
    }

    #[test]
    fn a_missing_secret_is_a_config_error_naming_it() {
        let pod = json!({"metadata": {"name": "p", "namespace": "ns"}});
        let c = json!({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}]});
        let e = environment(&pod, &c, &objects(), "", "").unwrap_err();
        assert_eq!(e.0, "secret \"nope\" not found");
        let c = json!({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "db", "key": "k"}}}]});
        assert_eq!(environment(&pod, &c, &objects(), "", "").unwrap_err().0, "couldn't find key k in secret ns/db");
    }

    #[test]
    fn secret_and_configmap_volumes_become_files_and_follow_changes() {
        let dir = tempfile::tempdir().unwrap();
        let pod = json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u1"}, "spec": {"volumes": [
            {"name": "s", "secret": {"secretName": "db"}},
            {"name": "c", "configMap": {"name": "cfg", "items": [{"key": "mode", "path": "conf/mode"}]}},
            {"name": "scratch", "emptyDir": {}}
        ]}});
        let vols = prepare_volumes(&pod, &objects(), dir.path()).unwrap();
        assert_eq!(std::fs::read_to_string(vols["s"].join("password")).unwrap(), "s3cr3t");
        assert_eq!(std::fs::read_to_string(vols["c"].join("conf/mode")).unwrap(), "fast");
        assert!(vols["scratch"].is_dir());
        assert_eq!(std::fs::read_to_string(vols[SA_VOLUME].join("token")).unwrap(), "tok", "the service account token");
        let changed = Objects(vec![
            ("secret".into(), json!({"metadata": {"name": "default-token"}, "data": {"token": "dG9r"}})),
            ("secret".into(), json!({"metadata": {"name": "db"}, "data": {"token": "dA=="}})),
            ("configmap".into(), json!({"metadata": {"name": "cfg"}, "data": {"mode": "slow"}})),
        ]);
        let vols = prepare_volumes(&pod, &changed, dir.path()).unwrap();
        assert!(!vols["s"].join("password").exists());
        assert_eq!(std::fs::read_to_string(vols["s"].join("token")).unwrap(), "t");
        assert_eq!(std::fs::read_to_string(vols["c"].join("conf/mode")).unwrap(), "slow");
    }

    #[test]
    fn limits_become_cgroup_settings() {
        let c = json!({"resources": {"requests": {"cpu": "250m"}, "limits": {"cpu": "500m", "memory": "64Mi"}}});
        let r = resources(&c);
        assert_eq!(r.memory_limit, Some(64 << 20));
        assert_eq!(r.cpu_quota, Some(50_000));
        assert_eq!(r.cpu_shares, Some(256));
    }
}
