//! From a pod's spec to what the runtime runs: environment (values, secret and
//! configMap keys, pod fields, Service variables), volumes (directories
//! prepared on the node) and resources. Lookups of secrets, configMaps and
//! Services go to the local replica.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{ConfigMap, Container, KeyToPath, Pod, Secret, Service};

use clusterd_runtime::{ContainerConfig, Mount, Resources};

use crate::objects::quantity;

/// Why a container cannot be configured (Kubernetes: `CreateContainerConfigError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Reads the secrets, configMaps and Services a pod refers to from the local replica.
pub trait Lookup {
    /// The Secret, if it exists.
    fn secret(&self, namespace: &str, name: &str) -> Option<Secret>;
    /// The ConfigMap, if it exists.
    fn config_map(&self, namespace: &str, name: &str) -> Option<ConfigMap>;
    /// Every Service of a namespace (for the Service environment variables).
    fn services(&self, namespace: &str) -> Vec<Service>;
}

/// Where a key, an environment or a volume's files come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    Secret,
    ConfigMap,
}

impl Source {
    /// As Kubernetes names it in messages.
    fn label(self) -> &'static str {
        match self {
            Source::Secret => "secret",
            Source::ConfigMap => "configmap",
        }
    }

    /// Every key of the named source, or `None` when it does not exist.
    fn data(self, lookup: &dyn Lookup, ns: &str, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        match self {
            Source::Secret => lookup.secret(ns, name).map(|s| secret_data(&s)),
            Source::ConfigMap => lookup.config_map(ns, name).map(|c| config_map_data(&c)),
        }
    }
}

/// A key of a Secret or ConfigMap.
fn key_of_source(
    lookup: &dyn Lookup,
    source: Source,
    ns: &str,
    name: &str,
    key: &str,
) -> Result<Option<String>, ConfigError> {
    let Some(mut data) = source.data(lookup, ns, name) else {
        return Err(ConfigError(format!("{} \"{name}\" not found", source.label())));
    };
    Ok(data.remove(key).map(|b| String::from_utf8_lossy(&b).into_owned()))
}

/// Every key of a Secret (its `data`, decoded from base64 when it was read).
pub fn secret_data(secret: &Secret) -> BTreeMap<String, Vec<u8>> {
    secret.data.iter().flatten().map(|(k, v)| (k.clone(), v.0.clone())).collect()
}

/// Every key of a ConfigMap (`data` and `binaryData`).
pub fn config_map_data(cm: &ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let text = cm.data.iter().flatten().map(|(k, v)| (k.clone(), v.as_bytes().to_vec()));
    let binary = cm.binary_data.iter().flatten().map(|(k, v)| (k.clone(), v.0.clone()));
    text.chain(binary).collect()
}

/// The value of a `fieldRef` path.
pub fn field_ref(pod: &Pod, path: &str, pod_ip: &str, host_ip: &str) -> Option<String> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    match path {
        "metadata.name" => meta.name.clone(),
        "metadata.namespace" => meta.namespace.clone(),
        "metadata.uid" => meta.uid.clone(),
        "spec.nodeName" => spec?.node_name.clone(),
        "spec.serviceAccountName" => spec?.service_account_name.clone(),
        "status.podIP" => Some(pod_ip.to_string()),
        "status.hostIP" => Some(host_ip.to_string()),
        p => {
            let (map, rest) = match p.strip_prefix("metadata.labels['") {
                Some(rest) => (meta.labels.as_ref(), rest),
                None => (meta.annotations.as_ref(), p.strip_prefix("metadata.annotations['")?),
            };
            map?.get(rest.strip_suffix("']")?).cloned()
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

/// The Services whose variables a pod's containers may get: its namespace's
/// and `default`'s (where the API's `kubernetes` Service is).
fn services_for(pod: &Pod, lookup: &dyn Lookup) -> Vec<Service> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut list = lookup.services(super::service_env::API_SERVICE.0);
    if ns != super::service_env::API_SERVICE.0 {
        list.extend(lookup.services(ns));
    }
    list
}

/// The environment of a container, in order: `envFrom`, then `env`, then the
/// Service variables the container does not set itself (`$(VAR)` references
/// may name those too, as in Kubernetes).
pub fn environment(
    pod: &Pod,
    container: &Container,
    lookup: &dyn Lookup,
    pod_ip: &str,
    host_ip: &str,
) -> Result<Vec<(String, String)>, ConfigError> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("");
    let service_vars = super::service_env::service_env(pod, &services_for(pod, lookup));
    let mut vars: BTreeMap<String, String> = service_vars.iter().cloned().collect();
    let mut order: Vec<String> = Vec::new();
    let mut set = |vars: &mut BTreeMap<String, String>, k: String, v: String| {
        if !order.contains(&k) {
            order.push(k.clone());
        }
        vars.insert(k, v);
    };
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.as_deref().unwrap_or("");
        let refs = [
            from.config_map_ref.as_ref().map(|r| (Source::ConfigMap, &r.name, r.optional)),
            from.secret_ref.as_ref().map(|r| (Source::Secret, &r.name, r.optional)),
        ];
        for (source, name, optional) in refs.into_iter().flatten() {
            match source.data(lookup, ns, name) {
                Some(data) => {
                    for (k, v) in data {
                        set(&mut vars, format!("{prefix}{k}"), String::from_utf8_lossy(&v).into_owned());
                    }
                }
                None if optional.unwrap_or(false) => {}
                None => return Err(ConfigError(format!("{} \"{name}\" not found", source.label()))),
            }
        }
    }
    for e in container.env.iter().flatten() {
        let value = if let Some(v) = &e.value {
            expand(v, &vars)
        } else if let Some(from) = &e.value_from {
            let mut resolved = None;
            let refs = [
                from.secret_key_ref.as_ref().map(|r| (Source::Secret, &r.name, &r.key, r.optional)),
                from.config_map_key_ref.as_ref().map(|r| (Source::ConfigMap, &r.name, &r.key, r.optional)),
            ];
            for (source, src, key, optional) in refs.into_iter().flatten() {
                let optional = optional.unwrap_or(false);
                match key_of_source(lookup, source, ns, src, key) {
                    Ok(Some(v)) => resolved = Some(v),
                    Ok(None) if optional => {}
                    Err(_) if optional => {}
                    Ok(None) => {
                        let kind = source.label();
                        return Err(ConfigError(format!("couldn't find key {key} in {kind} {ns}/{src}")));
                    }
                    Err(e) => return Err(e),
                }
            }
            if let Some(f) = &from.field_ref {
                resolved = field_ref(pod, &f.field_path, pod_ip, host_ip);
            }
            match resolved {
                Some(v) => v,
                None => continue,
            }
        } else {
            String::new()
        };
        set(&mut vars, e.name.clone(), value);
    }
    let mut out: Vec<(String, String)> = order.iter().map(|k| (k.clone(), vars[k].clone())).collect();
    out.extend(service_vars.into_iter().filter(|(k, _)| !order.contains(k)));
    Ok(out)
}

/// The CPU/memory settings of a container's `resources`.
pub fn resources(container: &Container) -> Resources {
    let res = container.resources.as_ref();
    let limit = |name: &str| res.and_then(|r| r.limits.as_ref()?.get(name)).map(|q| q.0.as_str());
    let request = |name: &str| res.and_then(|r| r.requests.as_ref()?.get(name)).map(|q| q.0.as_str());
    let cpu_limit = limit("cpu").and_then(|s| quantity::cpu_millis(s).ok());
    let cpu_request = request("cpu").and_then(|s| quantity::cpu_millis(s).ok()).or(cpu_limit);
    let memory = limit("memory").and_then(|s| quantity::units(s).ok()).map(|b| b as i64);
    Resources::from_millis(cpu_request, cpu_limit, memory)
}

/// Where a pod's volumes live on the node.
pub fn volume_dir(pods_root: &Path, uid: &str, name: &str) -> PathBuf {
    pods_root.join(uid).join("volumes").join(name)
}

/// Write a file only when its content differs (so an unchanged volume is not touched).
pub(super) fn write_if_changed(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<bool> {
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

/// A secret or configMap volume: where its keys come from and how they are laid out.
struct Projected<'a> {
    source: Source,
    name: &'a str,
    optional: bool,
    mode: u32,
    items: Option<&'a [KeyToPath]>,
}

/// Write the keys of a secret or configMap volume into `dir` (rewritten when
/// the source changed; keys removed from the source disappear).
fn project(v: &Projected, volume: &str, dir: &Path, lookup: &dyn Lookup, ns: &str) -> Result<(), ConfigError> {
    let io = |e: std::io::Error| ConfigError(format!("volume \"{volume}\": {e}"));
    let data = match v.source.data(lookup, ns, v.name) {
        Some(data) => data,
        None if v.optional => BTreeMap::new(),
        None => {
            return Err(ConfigError(format!(
                "MountVolume.SetUp failed for volume \"{volume}\" : {} \"{}\" not found",
                v.source.label(),
                v.name
            )));
        }
    };
    let items: Vec<(String, String)> = match v.items {
        Some(items) => items.iter().map(|i| (i.key.clone(), i.path.clone())).collect(),
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
        write_if_changed(&target, bytes, v.mode).map_err(io)?;
        keep.insert(path.split('/').next().unwrap_or("").to_string());
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if !keep.contains(&n) {
                let _ = std::fs::remove_file(e.path()).or_else(|_| std::fs::remove_dir_all(e.path()));
            }
        }
    }
    Ok(())
}

/// Prepare every volume of the pod on the node: emptyDir directories, hostPath
/// checks, and the files of secret and configMap volumes (rewritten when the
/// source changed). Returns volume name → host path.
pub fn prepare_volumes(
    pod: &Pod,
    lookup: &dyn Lookup,
    pods_root: &Path,
) -> Result<BTreeMap<String, PathBuf>, ConfigError> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("");
    let uid = pod.metadata.uid.as_deref().unwrap_or("");
    let spec = pod.spec.as_ref();
    let mut out = BTreeMap::new();
    for v in spec.and_then(|s| s.volumes.as_ref()).into_iter().flatten() {
        let name = v.name.clone();
        let io = |e: std::io::Error| ConfigError(format!("volume \"{name}\": {e}"));
        if let Some(hp) = &v.host_path {
            let path = PathBuf::from(&hp.path);
            match hp.type_.as_deref().unwrap_or("") {
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
        let mode = |m: Option<i32>| m.and_then(|m| u32::try_from(m).ok()).unwrap_or(0o644);
        let projected = if let Some(s) = &v.secret {
            Some(Projected {
                source: Source::Secret,
                name: s.secret_name.as_deref().unwrap_or(""),
                optional: s.optional.unwrap_or(false),
                mode: mode(s.default_mode),
                items: s.items.as_deref(),
            })
        } else {
            v.config_map.as_ref().map(|c| Projected {
                source: Source::ConfigMap,
                name: &c.name,
                optional: c.optional.unwrap_or(false),
                mode: mode(c.default_mode),
                items: c.items.as_deref(),
            })
        };
        if let Some(p) = projected {
            project(&p, &name, &dir, lookup, ns)?;
        }
        out.insert(name, dir);
    }
    // The service account token, unless the pod opts out.
    if spec.and_then(|s| s.automount_service_account_token) != Some(false) {
        let sa = spec.and_then(|s| s.service_account_name.as_deref()).unwrap_or("default");
        let secret_name = crate::objects::conventions::token_secret_name(sa);
        let secret = lookup.secret(ns, &secret_name).ok_or_else(|| {
            ConfigError(format!(
                "MountVolume.SetUp failed for volume \"{SA_VOLUME}\" : secret \"{secret_name}\" not found"
            ))
        })?;
        let dir = volume_dir(pods_root, uid, SA_VOLUME);
        let io = |e: std::io::Error| ConfigError(format!("volume \"{SA_VOLUME}\": {e}"));
        std::fs::create_dir_all(&dir).map_err(io)?;
        for (k, v) in secret_data(&secret) {
            write_if_changed(&dir.join(&k), &v, 0o644).map_err(io)?;
        }
        out.insert(SA_VOLUME.to_string(), dir);
    }
    Ok(out)
}

/// The volume holding the service account token.
pub const SA_VOLUME: &str = "kube-api-access";

/// The runtime's container config for `container`, with its prepared volumes,
/// resolved environment and the pod's own files (`/etc/resolv.conf`,
/// `/etc/hosts`: mounted unless the container mounts something there itself).
pub fn container_config(
    container: &Container,
    volumes: &BTreeMap<String, PathBuf>,
    env: Vec<(String, String)>,
    pod_files: &[Mount],
) -> Result<ContainerConfig, ConfigError> {
    let vars: BTreeMap<String, String> = env.iter().cloned().collect();
    let expanded = |list: &Option<Vec<String>>| list.iter().flatten().map(|s| expand(s, &vars)).collect();
    let mut mounts = Vec::new();
    for m in container.volume_mounts.iter().flatten() {
        let name = &m.name;
        let host = volumes.get(name).ok_or_else(|| ConfigError(format!("volume \"{name}\" is not defined")))?;
        let mut host = host.clone();
        if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
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
            container_path: m.mount_path.clone(),
            read_only: m.read_only.unwrap_or(false),
        });
    }
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
    for f in pod_files {
        if !mounts.iter().any(|m| m.container_path == f.container_path) {
            mounts.push(f.clone());
        }
    }
    Ok(ContainerConfig {
        name: container.name.clone(),
        image: container.image.clone().unwrap_or_default(),
        command: expanded(&container.command),
        args: expanded(&container.args),
        env,
        working_dir: container.working_dir.clone().unwrap_or_default(),
        mounts,
        resources: resources(container),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn typed<T: serde::de::DeserializeOwned>(v: Value) -> T {
        serde_json::from_value(v).expect("a valid object")
    }

    #[derive(Default)]
    struct Objects {
        secrets: Vec<Secret>,
        config_maps: Vec<ConfigMap>,
        services: Vec<Service>,
    }

    impl Objects {
        fn with(mut self, kind: &str, obj: Value) -> Self {
            match kind {
                "secret" => self.secrets.push(typed(obj)),
                "service" => self.services.push(typed(obj)),
                _ => self.config_maps.push(typed(obj)),
            }
            self
        }
    }

    impl Lookup for Objects {
        fn secret(&self, _ns: &str, name: &str) -> Option<Secret> {
            self.secrets.iter().find(|s| s.metadata.name.as_deref() == Some(name)).cloned()
        }
        fn config_map(&self, _ns: &str, name: &str) -> Option<ConfigMap> {
            self.config_maps.iter().find(|c| c.metadata.name.as_deref() == Some(name)).cloned()
        }
        fn services(&self, ns: &str) -> Vec<Service> {
            self.services.iter().filter(|s| s.metadata.namespace.as_deref() == Some(ns)).cloned().collect()
        }
    }

    fn objects() -> Objects {
        Objects::default()
            .with("secret", json!({"metadata": {"name": "db"}, "data": {"password": "czNjcjN0"}}))
            .with("configmap", json!({"metadata": {"name": "cfg"}, "data": {"mode": "fast", "level": "3"}}))
            .with(
                "secret",
                json!({"metadata": {"name": "default-token"}, "data": {"token": "dG9r", "namespace": "bnM="}}),
            )
    }

    fn container(c: Value) -> Container {
        let mut c = c;
        c["name"] = json!("c");
        typed(c)
    }

    #[test]
    fn env_from_values_secrets_configmaps_and_fields() {
        let pod = typed(
            json!({"metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web"}}, "spec": {"containers": [], "nodeName": "n1"}}),
        );
        let c = container(json!({"env": [
            {"name": "A", "value": "x"},
            {"name": "B", "value": "$(A)-y"},
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}}
        ], "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}]}));
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
    fn service_variables_come_after_the_containers_own_which_win() {
        let pod = typed(json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": {"containers": []}}));
        let lookup = Objects::default()
            .with(
                "service",
                json!({"metadata": {"namespace": "default", "name": "kubernetes"},
                "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443}]}}),
            )
            .with(
                "service",
                json!({"metadata": {"namespace": "ns", "name": "web"},
                "spec": {"clusterIP": "10.96.0.20", "ports": [{"port": 80}]}}),
            )
            .with(
                "service",
                json!({"metadata": {"namespace": "elsewhere", "name": "db"},
                "spec": {"clusterIP": "10.96.0.30", "ports": [{"port": 5432}]}}),
            );
        let c = container(json!({"env": [
            {"name": "WEB_SERVICE_PORT", "value": "8080"},
            {"name": "URL", "value": "http://$(WEB_SERVICE_HOST):$(WEB_SERVICE_PORT)/"}
        ]}));
        let env = environment(&pod, &c, &lookup, "", "").unwrap();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("WEB_SERVICE_PORT"), Some("8080"), "the container's own value wins");
        assert_eq!(get("URL"), Some("http://10.96.0.20:8080/"), "references reach Service variables");
        assert_eq!(get("WEB_SERVICE_HOST"), Some("10.96.0.20"));
        assert_eq!(get("KUBERNETES_SERVICE_HOST"), Some("10.96.0.1"));
        assert_eq!(get("DB_SERVICE_HOST"), None, "other namespaces' Services are not linked");
        assert_eq!(env.iter().filter(|(k, _)| k == "WEB_SERVICE_PORT").count(), 1);
        assert_eq!(
            &env[..2],
            &[("WEB_SERVICE_PORT".into(), "8080".into()), ("URL".into(), "http://10.96.0.20:8080/".into())]
        );
    }

    #[test]
    fn a_missing_secret_is_a_config_error_naming_it() {
        let pod = typed(json!({"metadata": {"name": "p", "namespace": "ns"}}));
        let c = container(json!({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}]}));
        let e = environment(&pod, &c, &objects(), "", "").unwrap_err();
        assert_eq!(e.0, "secret \"nope\" not found");
        let c = container(json!({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "db", "key": "k"}}}]}));
        assert_eq!(environment(&pod, &c, &objects(), "", "").unwrap_err().0, "couldn't find key k in secret ns/db");
    }

    #[test]
    fn secret_and_configmap_volumes_become_files_and_follow_changes() {
        let dir = tempfile::tempdir().unwrap();
        let pod = typed(
            json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u1"}, "spec": {"containers": [], "volumes": [
                {"name": "s", "secret": {"secretName": "db"}},
                {"name": "c", "configMap": {"name": "cfg", "items": [{"key": "mode", "path": "conf/mode"}]}},
                {"name": "scratch", "emptyDir": {}}
            ]}}),
        );
        let vols = prepare_volumes(&pod, &objects(), dir.path()).unwrap();
        assert_eq!(std::fs::read_to_string(vols["s"].join("password")).unwrap(), "s3cr3t");
        assert_eq!(std::fs::read_to_string(vols["c"].join("conf/mode")).unwrap(), "fast");
        assert!(vols["scratch"].is_dir());
        assert_eq!(std::fs::read_to_string(vols[SA_VOLUME].join("token")).unwrap(), "tok", "the service account token");
        let changed = Objects::default()
            .with("secret", json!({"metadata": {"name": "default-token"}, "data": {"token": "dG9r"}}))
            .with("secret", json!({"metadata": {"name": "db"}, "data": {"token": "dA=="}}))
            .with("configmap", json!({"metadata": {"name": "cfg"}, "data": {"mode": "slow"}}));
        let vols = prepare_volumes(&pod, &changed, dir.path()).unwrap();
        assert!(!vols["s"].join("password").exists());
        assert_eq!(std::fs::read_to_string(vols["s"].join("token")).unwrap(), "t");
        assert_eq!(std::fs::read_to_string(vols["c"].join("conf/mode")).unwrap(), "slow");
    }

    #[test]
    fn a_missing_volume_source_names_the_volume_unless_optional() {
        let dir = tempfile::tempdir().unwrap();
        let pod = |optional: bool| -> Pod {
            typed(json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u1"}, "spec": {"containers": [],
                "automountServiceAccountToken": false,
                "volumes": [{"name": "conf", "configMap": {"name": "gone", "optional": optional, "defaultMode": 0o600}}]}}))
        };
        let e = prepare_volumes(&pod(false), &objects(), dir.path()).unwrap_err();
        assert_eq!(e.0, "MountVolume.SetUp failed for volume \"conf\" : configmap \"gone\" not found");
        let vols = prepare_volumes(&pod(true), &objects(), dir.path()).unwrap();
        assert!(vols["conf"].is_dir(), "an optional source that is missing gives an empty volume");
        assert!(!vols.contains_key(SA_VOLUME), "no token for a pod that opts out");
    }

    #[test]
    fn mounts_sub_paths_and_the_token_reach_the_container_config() {
        let dir = tempfile::tempdir().unwrap();
        let volumes: BTreeMap<String, PathBuf> =
            [("data".to_string(), dir.path().join("data")), (SA_VOLUME.to_string(), dir.path().join("sa"))].into();
        let c = container(json!({"image": "busybox:1", "command": ["sh", "-c"], "args": ["echo $(GREETING)"],
            "workingDir": "/w", "volumeMounts": [{"name": "data", "mountPath": "/data", "subPath": "a/b", "readOnly": true}]}));
        let cfg = container_config(&c, &volumes, vec![("GREETING".into(), "hi".into())], &[]).unwrap();
        assert_eq!((cfg.name.as_str(), cfg.image.as_str(), cfg.working_dir.as_str()), ("c", "busybox:1", "/w"));
        assert_eq!(cfg.args, vec!["echo hi"]);
        let paths: Vec<(&str, &str, bool)> =
            cfg.mounts.iter().map(|m| (m.host_path.as_str(), m.container_path.as_str(), m.read_only)).collect();
        let sub = dir.path().join("data/a/b");
        let sa = dir.path().join("sa");
        assert_eq!(
            paths,
            vec![
                (sub.to_str().unwrap(), "/data", true),
                (sa.to_str().unwrap(), crate::objects::conventions::SERVICE_ACCOUNT_MOUNT_PATH, true)
            ]
        );
        assert!(sub.is_dir(), "the subPath is made");
        let files = [
            Mount { host_path: "/pod/resolv.conf".into(), container_path: "/etc/resolv.conf".into(), read_only: true },
            Mount { host_path: "/pod/etc-hosts".into(), container_path: "/etc/hosts".into(), read_only: true },
        ];
        let own_hosts = container(json!({"volumeMounts": [{"name": "data", "mountPath": "/etc/hosts"}]}));
        let cfg = container_config(&own_hosts, &volumes, vec![], &files).unwrap();
        let at: Vec<(&str, &str)> =
            cfg.mounts.iter().map(|m| (m.container_path.as_str(), m.host_path.as_str())).collect();
        let data = dir.path().join("data");
        assert_eq!(
            at,
            vec![
                ("/etc/hosts", data.to_str().unwrap()),
                (crate::objects::conventions::SERVICE_ACCOUNT_MOUNT_PATH, sa.to_str().unwrap()),
                ("/etc/resolv.conf", "/pod/resolv.conf")
            ],
            "the pod's files, unless the container mounts its own there"
        );
        let bad = container(json!({"volumeMounts": [{"name": "nope", "mountPath": "/x"}]}));
        assert_eq!(container_config(&bad, &volumes, vec![], &[]).unwrap_err().0, "volume \"nope\" is not defined");
    }

    #[test]
    fn limits_become_cgroup_settings() {
        let c =
            container(json!({"resources": {"requests": {"cpu": "250m"}, "limits": {"cpu": "500m", "memory": "64Mi"}}}));
        let r = resources(&c);
        assert_eq!(r.memory_limit, Some(64 << 20));
        assert_eq!(r.cpu_quota, Some(50_000));
        assert_eq!(r.cpu_shares, Some(256));
    }
}
