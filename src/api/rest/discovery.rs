//! Discovery: which groups, versions and resources the server has, as
//! kubectl and client libraries ask before anything else (`/api`, `/apis`,
//! `/api/v1`, `/apis/<group>/<version>`), and `/version` (kubectl's dispatcher
//! picks its client version from the minor reported there).

use serde_json::{json, Value};

use super::route::subresources;
use crate::objects::kinds::{Kind, KINDS};

/// The Kubernetes version whose API clusterd serves.
pub const KUBE_MINOR: &str = "32";

/// `GET /version`.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": KUBE_MINOR,
        "gitVersion": format!("v1.{KUBE_MINOR}.0-clusterd.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, arch()),
    })
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The named groups and their versions (`apps` → `v1`), in a stable order.
fn groups() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for k in KINDS {
        if let Some(gv) = k.api_version.split_once('/') {
            if !out.contains(&gv) {
                out.push(gv);
            }
        }
    }
    // (Scale and Eviction, the subresources' kinds, name their groups in
    // their entries; clusterd serves no resources of those groups, and an
    // empty group is an error to kubectl.)
    out
}

/// `GET /api`.
pub fn api_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
    })
}

fn group_json(group: &str, version: &str) -> Value {
    let gv = json!({"groupVersion": format!("{group}/{version}"), "version": version});
    json!({"name": group, "versions": [gv.clone()], "preferredVersion": gv})
}

/// `GET /apis`.
pub fn api_groups() -> Value {
    json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": groups().into_iter().map(|(g, v)| group_json(g, v)).collect::<Vec<_>>(),
    })
}

/// `GET /apis/<group>`.
pub fn api_group(group: &str) -> Option<Value> {
    let (g, v) = groups().into_iter().find(|(g, _)| *g == group)?;
    let mut out = group_json(g, v);
    out["kind"] = json!("APIGroup");
    out["apiVersion"] = json!("v1");
    Some(out)
}

fn resource_entry(kind: &Kind) -> Value {
    let mut categories: Vec<&str> = Vec::new();
    if matches!(kind.kind, "Pod" | "Service" | "Deployment" | "ReplicaSet" | "DaemonSet" | "StatefulSet" | "Job") {
        categories.push("all");
    }
    json!({
        "name": kind.plural,
        "singularName": kind.singular,
        "namespaced": kind.namespaced,
        "kind": kind.kind,
        "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
        "shortNames": kind.short,
        "categories": categories,
        "storageVersionHash": "",
    })
}

fn subresource_entry(kind: &Kind, sub: &str) -> Value {
    let (group, version, sub_kind, verbs): (&str, &str, &str, &[&str]) = match sub {
        "status" => ("", "", kind.kind, &["get", "patch", "update"]),
        "scale" => ("autoscaling", "v1", "Scale", &["get", "patch", "update"]),
        "log" => ("", "", "Pod", &["get"]),
        "exec" => ("", "", "PodExecOptions", &["create", "get"]),
        "eviction" => ("policy", "v1", "Eviction", &["create"]),
        "binding" => ("", "", "Binding", &["create"]),
        _ => ("", "", kind.kind, &["get"]),
    };
    let mut e = json!({
        "name": format!("{}/{sub}", kind.plural),
        "singularName": "",
        "namespaced": kind.namespaced,
        "kind": sub_kind,
        "verbs": verbs,
    });
    if !group.is_empty() {
        e["group"] = json!(group);
        e["version"] = json!(version);
    }
    e
}

/// `GET /api/v1` or `GET /apis/<group>/<version>`: `None` when clusterd serves no such version.
pub fn resources(group_version: &str) -> Option<Value> {
    let kinds: Vec<&Kind> = KINDS.iter().copied().filter(|k| k.api_version == group_version).collect();
    if kinds.is_empty() {
        return None;
    }
    let mut entries = Vec::new();
    for kind in kinds {
        entries.push(resource_entry(kind));
        for sub in subresources(kind) {
            entries.push(subresource_entry(kind, sub));
        }
    }
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": entries,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_discoverable_under_its_group_version() {
        for kind in KINDS {
            let list = resources(kind.api_version).unwrap();
            let entry = list["resources"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["name"] == kind.plural)
                .unwrap_or_else(|| panic!("{}", kind.plural));
            assert_eq!(entry["kind"], kind.kind);
            assert_eq!(entry["namespaced"], kind.namespaced);
            assert!(entry["verbs"].as_array().unwrap().contains(&json!("watch")));
        }
        let groups = api_groups();
        let names: Vec<&str> =
            groups["groups"].as_array().unwrap().iter().map(|g| g["name"].as_str().unwrap()).collect();
        for g in ["apps", "batch", "discovery.k8s.io", "coordination.k8s.io"] {
            assert!(names.contains(&g), "{g}");
        }
        assert!(resources("apps/v2").is_none());
    }

    #[test]
    fn scale_lives_in_autoscaling_and_pods_in_all() {
        let apps = resources("apps/v1").unwrap();
        let scale = apps["resources"].as_array().unwrap().iter().find(|r| r["name"] == "deployments/scale").unwrap();
        assert_eq!(
            (&scale["group"], &scale["version"], &scale["kind"]),
            (&json!("autoscaling"), &json!("v1"), &json!("Scale"))
        );
        let core = resources("v1").unwrap();
        let pods = core["resources"].as_array().unwrap().iter().find(|r| r["name"] == "pods").unwrap();
        assert_eq!(pods["categories"], json!(["all"]));
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert_eq!(version()["minor"], "32");
    }
}
