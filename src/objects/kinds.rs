//! The kinds clusterd serves and how kubectl-style names resolve to them.

use serde_json::Value;

/// What clusterd knows about one kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kind {
    /// `Pod`.
    pub kind: &'static str,
    /// `v1`, `apps/v1`, ...
    pub api_version: &'static str,
    /// `pods` — the resource name, also the key segment unless `key_segment` says otherwise.
    pub plural: &'static str,
    /// `pod`.
    pub singular: &'static str,
    /// kubectl's short names: `po`.
    pub short: &'static [&'static str],
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Kubernetes' own etcd key segment (`minions` for nodes, `services/specs`).
    pub key_segment: &'static str,
    /// Whether the kind has a status subresource (status is kept on update).
    pub has_status: bool,
    /// Whether spec changes bump metadata.generation.
    pub has_spec: bool,
}

macro_rules! kind {
    ($kind:literal, $api:literal, $plural:literal, $singular:literal, [$($short:literal),*], $ns:expr, $seg:literal, $status:expr, $spec:expr) => {
        Kind {
            kind: $kind,
            api_version: $api,
            plural: $plural,
            singular: $singular,
            short: &[$($short),*],
            namespaced: $ns,
            key_segment: $seg,
            has_status: $status,
            has_spec: $spec,
        }
    };
}

/// `Namespace`.
pub const NAMESPACE: Kind =
    kind!("Namespace", "v1", "namespaces", "namespace", ["ns"], false, "namespaces", true, true);
/// `ConfigMap`.
pub const CONFIG_MAP: Kind =
    kind!("ConfigMap", "v1", "configmaps", "configmap", ["cm"], true, "configmaps", false, false);
/// `Secret`.
pub const SECRET: Kind = kind!("Secret", "v1", "secrets", "secret", [], true, "secrets", false, false);
/// `ServiceAccount`.
pub const SERVICE_ACCOUNT: Kind =
    kind!("ServiceAccount", "v1", "serviceaccounts", "serviceaccount", ["sa"], true, "serviceaccounts", false, false);
/// `Pod`.
pub const POD: Kind = kind!("Pod", "v1", "pods", "pod", ["po"], true, "pods", true, true);
/// `Node`.
pub const NODE: Kind = kind!("Node", "v1", "nodes", "node", ["no"], false, "minions", true, true);
/// `Lease`.
pub const LEASE: Kind = kind!("Lease", "coordination.k8s.io/v1", "leases", "lease", [], true, "leases", false, true);
/// `Event`.
pub const EVENT: Kind = kind!("Event", "v1", "events", "event", ["ev"], true, "events", false, false);
/// `Service`.
pub const SERVICE: Kind = kind!("Service", "v1", "services", "service", ["svc"], true, "services/specs", true, true);
/// `Endpoints`.
pub const ENDPOINTS: Kind =
    kind!("Endpoints", "v1", "endpoints", "endpoints", ["ep"], true, "services/endpoints", false, false);
/// `EndpointSlice`.
pub const ENDPOINT_SLICE: Kind = kind!(
    "EndpointSlice",
    "discovery.k8s.io/v1",
    "endpointslices",
    "endpointslice",
    [],
    true,
    "endpointslices",
    false,
    false
);
/// `ReplicaSet`.
pub const REPLICA_SET: Kind =
    kind!("ReplicaSet", "apps/v1", "replicasets", "replicaset", ["rs"], true, "replicasets", true, true);
/// `Deployment`.
pub const DEPLOYMENT: Kind =
    kind!("Deployment", "apps/v1", "deployments", "deployment", ["deploy"], true, "deployments", true, true);
/// `DaemonSet`.
pub const DAEMON_SET: Kind =
    kind!("DaemonSet", "apps/v1", "daemonsets", "daemonset", ["ds"], true, "daemonsets", true, true);
/// `StatefulSet`.
pub const STATEFUL_SET: Kind =
    kind!("StatefulSet", "apps/v1", "statefulsets", "statefulset", ["sts"], true, "statefulsets", true, true);
/// `Job`.
pub const JOB: Kind = kind!("Job", "batch/v1", "jobs", "job", [], true, "jobs", true, true);

/// Every kind clusterd serves.
pub static KINDS: &[&Kind] = &[
    &NAMESPACE,
    &CONFIG_MAP,
    &SECRET,
    &SERVICE_ACCOUNT,
    &POD,
    &NODE,
    &LEASE,
    &EVENT,
    &SERVICE,
    &ENDPOINTS,
    &ENDPOINT_SLICE,
    &REPLICA_SET,
    &DEPLOYMENT,
    &DAEMON_SET,
    &STATEFUL_SET,
    &JOB,
];

impl Kind {
    /// Resolve a user's name for a kind: `Pod`, `pod`, `pods`, `po`,
    /// `deployments.apps`, `Deployment`.
    pub fn resolve(name: &str) -> Option<&'static Kind> {
        let lower = name.to_ascii_lowercase();
        let base = lower.split('.').next().unwrap_or(&lower);
        KINDS.iter().copied().find(|k| {
            k.kind.eq_ignore_ascii_case(base) || k.plural == base || k.singular == base || k.short.contains(&base)
        })
    }

    /// The kind of a JSON object from its `kind` and `apiVersion`.
    pub fn of(obj: &Value) -> Option<&'static Kind> {
        let kind = obj.get("kind")?.as_str()?;
        let api = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        KINDS.iter().copied().find(|k| k.kind == kind && k.api_version == api)
    }

    /// The namespace a request for this kind means: "" when cluster-scoped,
    /// `default` when not said.
    pub fn namespace_or_default<'a>(&self, ns: &'a str) -> &'a str {
        match (self.namespaced, ns) {
            (false, _) => "",
            (true, "") => "default",
            (true, ns) => ns,
        }
    }

    /// The key prefix for all objects of this kind (in a namespace, if given).
    pub fn prefix(&self, namespace: Option<&str>) -> String {
        match (self.namespaced, namespace) {
            (true, Some(ns)) if !ns.is_empty() => format!("/registry/{}/{}/", self.key_segment, ns),
            _ => format!("/registry/{}/", self.key_segment),
        }
    }

    /// The key of one object.
    pub fn key(&self, namespace: &str, name: &str) -> String {
        if self.namespaced {
            format!("/registry/{}/{}/{}", self.key_segment, namespace, name)
        } else {
            format!("/registry/{}/{}", self.key_segment, name)
        }
    }

    /// `PodList`.
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_names_resolve() {
        for (name, kind) in [
            ("po", "Pod"),
            ("pods", "Pod"),
            ("Pod", "Pod"),
            ("cm", "ConfigMap"),
            ("deploy", "Deployment"),
            ("deployments.apps", "Deployment"),
            ("svc", "Service"),
            ("ns", "Namespace"),
            ("ep", "Endpoints"),
            ("endpointslices", "EndpointSlice"),
            ("endpointslices.discovery.k8s.io", "EndpointSlice"),
            ("sts", "StatefulSet"),
        ] {
            assert_eq!(Kind::resolve(name).map(|k| k.kind), Some(kind), "{name}");
        }
        assert!(Kind::resolve("widgets").is_none());
    }

    #[test]
    fn keys_follow_kubernetes_layout() {
        let pod = &POD;
        assert_eq!(pod.key("default", "web"), "/registry/pods/default/web");
        let node = &NODE;
        assert_eq!(node.key("", "n1"), "/registry/minions/n1");
        assert_eq!(pod.prefix(None), "/registry/pods/");
        assert_eq!(ENDPOINT_SLICE.key("d", "web-x1"), "/registry/endpointslices/d/web-x1");
    }
}
