//! What a REST path names: a kind's collection (in a namespace or across all),
//! one object, or one of its subresources. Pure, so the whole URL grammar of
//! the Kubernetes API is tested in one table.

use crate::objects::kinds::{Kind, KINDS};

/// The target of a resource request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The kind the path names.
    pub kind: &'static Kind,
    /// The namespace in the path ("" when none: cluster-scoped or all namespaces).
    pub namespace: String,
    /// The object's name ("" for the collection).
    pub name: String,
    /// The subresource (`status`, `scale`, `log`, `exec`, …), "" for none.
    pub subresource: String,
}

/// Why a path names nothing.
#[derive(Debug, PartialEq, Eq)]
pub struct NoRoute;

/// The `group/version` path prefix of a kind: `api/v1` or `apis/apps/v1`.
pub fn group_version_path(kind: &Kind) -> String {
    match kind.api_version.split_once('/') {
        Some(_) => format!("apis/{}", kind.api_version),
        None => format!("api/{}", kind.api_version),
    }
}

/// The subresources of a kind, as Kubernetes has them.
pub fn subresources(kind: &Kind) -> &'static [&'static str] {
    use crate::objects::kinds::*;
    match *kind {
        POD => &["status", "log", "exec", "eviction", "binding"],
        DEPLOYMENT | REPLICA_SET | STATEFUL_SET => &["status", "scale"],
        k if k.has_status => &["status"],
        _ => &[],
    }
}

/// Parse a resource path (`/api/v1/namespaces/default/pods/web/log`,
/// `/apis/apps/v1/deployments`, …). The legacy `/watch/` segment is not served.
pub fn parse(path: &str) -> Result<Target, NoRoute> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (api_version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => (v.to_string(), rest),
        ["apis", g, v, rest @ ..] => (format!("{g}/{v}"), rest),
        _ => return Err(NoRoute),
    };
    let in_version = |plural: &str| {
        KINDS.iter().copied().find(|k| k.api_version == api_version && k.plural == plural).ok_or(NoRoute)
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, resource, ..] if in_version(resource).is_ok() => (ns.to_string(), &rest[2..]),
        _ => (String::new(), rest),
    };
    let (kind, name, subresource) = match rest {
        [plural] => (in_version(plural)?, "", ""),
        [plural, name] => (in_version(plural)?, *name, ""),
        [plural, name, sub] => (in_version(plural)?, *name, *sub),
        _ => return Err(NoRoute),
    };
    if (!subresource.is_empty() && !subresources(kind).contains(&subresource)) || (name.is_empty() && rest.len() > 1) {
        return Err(NoRoute);
    }
    if !kind.namespaced && !namespace.is_empty() {
        return Err(NoRoute);
    }
    Ok(Target { kind, namespace, name: name.into(), subresource: subresource.into() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::kinds;

    #[test]
    fn paths_name_collections_objects_and_subresources() {
        let t = |kind: &'static Kind, ns: &str, name: &str, sub: &str| {
            Ok(Target { kind, namespace: ns.into(), name: name.into(), subresource: sub.into() })
        };
        let cases = [
            ("/api/v1/pods", t(&kinds::POD, "", "", "")),
            ("/api/v1/namespaces/default/pods", t(&kinds::POD, "default", "", "")),
            ("/api/v1/namespaces/default/pods/web", t(&kinds::POD, "default", "web", "")),
            ("/api/v1/namespaces/default/pods/web/log", t(&kinds::POD, "default", "web", "log")),
            ("/api/v1/namespaces", t(&kinds::NAMESPACE, "", "", "")),
            ("/api/v1/namespaces/kube-system", t(&kinds::NAMESPACE, "", "kube-system", "")),
            ("/api/v1/namespaces/kube-system/status", t(&kinds::NAMESPACE, "", "kube-system", "status")),
            ("/api/v1/nodes/n1/status", t(&kinds::NODE, "", "n1", "status")),
            ("/apis/apps/v1/deployments", t(&kinds::DEPLOYMENT, "", "", "")),
            ("/apis/apps/v1/namespaces/a/deployments/web/scale", t(&kinds::DEPLOYMENT, "a", "web", "scale")),
            ("/apis/discovery.k8s.io/v1/namespaces/a/endpointslices", t(&kinds::ENDPOINT_SLICE, "a", "", "")),
            ("/apis/coordination.k8s.io/v1/namespaces/a/leases/l", t(&kinds::LEASE, "a", "l", "")),
            ("/api/v1/deployments", Err(NoRoute)),
            ("/apis/apps/v1/pods", Err(NoRoute)),
            ("/apis/apps/v2/deployments", Err(NoRoute)),
            ("/api/v1/namespaces/a/nodes", Err(NoRoute)),
            ("/api/v1/namespaces/a/widgets", Err(NoRoute)),
            ("/api/v1/namespaces/a/pods/p/log/extra", Err(NoRoute)),
            ("/apis/apps/v1/namespaces/a/widgets/x", Err(NoRoute)),
            ("/version", Err(NoRoute)),
        ];
        for (path, want) in cases {
            assert_eq!(parse(path), want, "{path}");
        }
    }

    #[test]
    fn group_version_paths() {
        assert_eq!(group_version_path(&kinds::POD), "api/v1");
        assert_eq!(group_version_path(&kinds::JOB), "apis/batch/v1");
    }
}
