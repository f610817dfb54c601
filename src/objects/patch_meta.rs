//! How Kubernetes merges each list and map of its types under a strategic
//! merge patch and server-side apply: the patch strategy and merge key of a
//! field (Kubernetes keeps them as struct tags, which `k8s-openapi` does not
//! carry), and the list type and map keys apply uses. One table, read by the
//! schema catalogue (which publishes it in the OpenAPI documents, where kubectl
//! reads it) and by the patch code.
//!
//! The entries follow the tags of the Kubernetes v1.33 types clusterd serves.
//! A list without an entry is atomic (replaced whole by both patch kinds), so
//! atomic lists are listed only where a reader would expect otherwise.

/// The patch metadata of one field of one OpenAPI definition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldMeta {
    /// `io.k8s.api.core.v1.PodSpec`.
    pub definition: &'static str,
    /// `containers`.
    pub field: &'static str,
    /// `x-kubernetes-patch-strategy`: `merge`, `retainKeys`, `merge,retainKeys`, `replace`.
    pub strategy: &'static str,
    /// `x-kubernetes-patch-merge-key` (`name`), or "" for lists of scalars.
    pub merge_key: &'static str,
    /// `x-kubernetes-list-type`: `map`, `set`, `atomic`, or "" when not a list.
    pub list_type: &'static str,
    /// `x-kubernetes-list-map-keys` of a `map` list.
    pub map_keys: &'static [&'static str],
}

impl FieldMeta {
    /// Whether a strategic merge patch merges this list (rather than replacing it).
    pub fn merges(&self) -> bool {
        self.strategy.split(',').any(|s| s == "merge")
    }

    /// Whether a strategic merge patch clears the keys of this map (or list
    /// item) that `$retainKeys` does not name.
    pub fn retains_keys(&self) -> bool {
        self.strategy.split(',').any(|s| s == "retainKeys")
    }
}

/// A list merged by `key` under both patch kinds (`listType=map`, one map key).
const fn keyed(definition: &'static str, field: &'static str, key: &'static [&'static str]) -> FieldMeta {
    FieldMeta { definition, field, strategy: "merge", merge_key: key[0], list_type: "map", map_keys: key }
}

/// A list merged by key under strategic merge patch but replaced whole by apply.
const fn keyed_atomic(definition: &'static str, field: &'static str, key: &'static str) -> FieldMeta {
    FieldMeta { definition, field, strategy: "merge", merge_key: key, list_type: "atomic", map_keys: &[] }
}

/// A list of scalars merged as a set.
const fn set(definition: &'static str, field: &'static str) -> FieldMeta {
    FieldMeta { definition, field, strategy: "merge", merge_key: "", list_type: "set", map_keys: &[] }
}

/// A set under apply that strategic merge patch replaces whole.
const fn set_only(definition: &'static str, field: &'static str) -> FieldMeta {
    FieldMeta { definition, field, strategy: "", merge_key: "", list_type: "set", map_keys: &[] }
}

/// A list replaced whole.
const fn atomic(definition: &'static str, field: &'static str) -> FieldMeta {
    FieldMeta { definition, field, strategy: "", merge_key: "", list_type: "atomic", map_keys: &[] }
}

/// A list map under apply that strategic merge patch replaces whole.
const fn map_only(definition: &'static str, field: &'static str, keys: &'static [&'static str]) -> FieldMeta {
    FieldMeta { definition, field, strategy: "", merge_key: "", list_type: "map", map_keys: keys }
}

const NAME: &[&str] = &["name"];
const TYPE: &[&str] = &["type"];
const IP: &[&str] = &["ip"];

/// Every field with patch metadata.
pub static FIELDS: &[FieldMeta] = &[
    // meta/v1
    set("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "finalizers"),
    keyed("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "ownerReferences", &["uid"]),
    atomic("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "managedFields"),
    atomic("io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector", "matchExpressions"),
    atomic("io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelectorRequirement", "values"),
    // core/v1 Pod
    FieldMeta {
        definition: "io.k8s.api.core.v1.PodSpec",
        field: "volumes",
        strategy: "merge,retainKeys",
        merge_key: "name",
        list_type: "map",
        map_keys: NAME,
    },
    keyed("io.k8s.api.core.v1.PodSpec", "initContainers", NAME),
    keyed("io.k8s.api.core.v1.PodSpec", "containers", NAME),
    keyed("io.k8s.api.core.v1.PodSpec", "ephemeralContainers", NAME),
    keyed("io.k8s.api.core.v1.PodSpec", "imagePullSecrets", NAME),
    keyed("io.k8s.api.core.v1.PodSpec", "hostAliases", IP),
    keyed("io.k8s.api.core.v1.PodSpec", "topologySpreadConstraints", &["topologyKey", "whenUnsatisfiable"]),
    keyed("io.k8s.api.core.v1.PodSpec", "schedulingGates", NAME),
    FieldMeta {
        definition: "io.k8s.api.core.v1.PodSpec",
        field: "resourceClaims",
        strategy: "merge,retainKeys",
        merge_key: "name",
        list_type: "map",
        map_keys: NAME,
    },
    atomic("io.k8s.api.core.v1.PodSpec", "tolerations"),
    atomic("io.k8s.api.core.v1.PodSpec", "readinessGates"),
    atomic("io.k8s.api.core.v1.PodSecurityContext", "supplementalGroups"),
    atomic("io.k8s.api.core.v1.PodSecurityContext", "sysctls"),
    atomic("io.k8s.api.core.v1.PodDNSConfig", "nameservers"),
    atomic("io.k8s.api.core.v1.PodDNSConfig", "searches"),
    atomic("io.k8s.api.core.v1.PodDNSConfig", "options"),
    atomic("io.k8s.api.core.v1.HostAlias", "hostnames"),
    keyed("io.k8s.api.core.v1.PodStatus", "conditions", TYPE),
    keyed("io.k8s.api.core.v1.PodStatus", "podIPs", IP),
    keyed_atomic("io.k8s.api.core.v1.PodStatus", "hostIPs", "ip"),
    atomic("io.k8s.api.core.v1.PodStatus", "containerStatuses"),
    keyed("io.k8s.api.core.v1.ContainerStatus", "volumeMounts", &["mountPath"]),
    keyed("io.k8s.api.core.v1.ContainerStatus", "allocatedResourcesStatus", NAME),
    map_only("io.k8s.api.core.v1.ResourceStatus", "resources", &["resourceID"]),
    atomic("io.k8s.api.core.v1.PodStatus", "initContainerStatuses"),
    atomic("io.k8s.api.core.v1.PodStatus", "ephemeralContainerStatuses"),
    FieldMeta {
        definition: "io.k8s.api.core.v1.PodStatus",
        field: "resourceClaimStatuses",
        strategy: "merge,retainKeys",
        merge_key: "name",
        list_type: "map",
        map_keys: NAME,
    },
    // core/v1 Container (and its ephemeral twin)
    FieldMeta {
        definition: "io.k8s.api.core.v1.Container",
        field: "ports",
        strategy: "merge",
        merge_key: "containerPort",
        list_type: "map",
        map_keys: &["containerPort", "protocol"],
    },
    keyed("io.k8s.api.core.v1.Container", "env", NAME),
    keyed("io.k8s.api.core.v1.Container", "volumeMounts", &["mountPath"]),
    keyed("io.k8s.api.core.v1.Container", "volumeDevices", &["devicePath"]),
    atomic("io.k8s.api.core.v1.Container", "command"),
    atomic("io.k8s.api.core.v1.Container", "args"),
    atomic("io.k8s.api.core.v1.Container", "envFrom"),
    atomic("io.k8s.api.core.v1.Container", "resizePolicy"),
    FieldMeta {
        definition: "io.k8s.api.core.v1.EphemeralContainer",
        field: "ports",
        strategy: "merge",
        merge_key: "containerPort",
        list_type: "map",
        map_keys: &["containerPort", "protocol"],
    },
    keyed("io.k8s.api.core.v1.EphemeralContainer", "env", NAME),
    keyed("io.k8s.api.core.v1.EphemeralContainer", "volumeMounts", &["mountPath"]),
    keyed("io.k8s.api.core.v1.EphemeralContainer", "volumeDevices", &["devicePath"]),
    map_only("io.k8s.api.core.v1.ResourceRequirements", "claims", NAME),
    atomic("io.k8s.api.core.v1.Capabilities", "add"),
    atomic("io.k8s.api.core.v1.Capabilities", "drop"),
    atomic("io.k8s.api.core.v1.ExecAction", "command"),
    atomic("io.k8s.api.core.v1.HTTPGetAction", "httpHeaders"),
    // core/v1 scheduling
    atomic("io.k8s.api.core.v1.NodeSelector", "nodeSelectorTerms"),
    atomic("io.k8s.api.core.v1.NodeSelectorTerm", "matchExpressions"),
    atomic("io.k8s.api.core.v1.NodeSelectorTerm", "matchFields"),
    atomic("io.k8s.api.core.v1.NodeSelectorRequirement", "values"),
    atomic("io.k8s.api.core.v1.NodeAffinity", "preferredDuringSchedulingIgnoredDuringExecution"),
    atomic("io.k8s.api.core.v1.PodAffinity", "requiredDuringSchedulingIgnoredDuringExecution"),
    atomic("io.k8s.api.core.v1.PodAffinity", "preferredDuringSchedulingIgnoredDuringExecution"),
    atomic("io.k8s.api.core.v1.PodAntiAffinity", "requiredDuringSchedulingIgnoredDuringExecution"),
    atomic("io.k8s.api.core.v1.PodAntiAffinity", "preferredDuringSchedulingIgnoredDuringExecution"),
    atomic("io.k8s.api.core.v1.PodAffinityTerm", "namespaces"),
    atomic("io.k8s.api.core.v1.PodAffinityTerm", "matchLabelKeys"),
    atomic("io.k8s.api.core.v1.PodAffinityTerm", "mismatchLabelKeys"),
    atomic("io.k8s.api.core.v1.TopologySpreadConstraint", "matchLabelKeys"),
    // core/v1 volumes
    atomic("io.k8s.api.core.v1.ConfigMapVolumeSource", "items"),
    atomic("io.k8s.api.core.v1.SecretVolumeSource", "items"),
    atomic("io.k8s.api.core.v1.ProjectedVolumeSource", "sources"),
    atomic("io.k8s.api.core.v1.DownwardAPIVolumeSource", "items"),
    atomic("io.k8s.api.core.v1.PersistentVolumeClaimSpec", "accessModes"),
    keyed("io.k8s.api.core.v1.PersistentVolumeClaimStatus", "conditions", TYPE),
    // core/v1 Service, Endpoints
    FieldMeta {
        definition: "io.k8s.api.core.v1.ServiceSpec",
        field: "ports",
        strategy: "merge",
        merge_key: "port",
        list_type: "map",
        map_keys: &["port", "protocol"],
    },
    atomic("io.k8s.api.core.v1.ServiceSpec", "clusterIPs"),
    atomic("io.k8s.api.core.v1.ServiceSpec", "externalIPs"),
    atomic("io.k8s.api.core.v1.ServiceSpec", "loadBalancerSourceRanges"),
    atomic("io.k8s.api.core.v1.ServiceSpec", "ipFamilies"),
    keyed("io.k8s.api.core.v1.ServiceStatus", "conditions", TYPE),
    atomic("io.k8s.api.core.v1.LoadBalancerStatus", "ingress"),
    atomic("io.k8s.api.core.v1.LoadBalancerIngress", "ports"),
    atomic("io.k8s.api.core.v1.Endpoints", "subsets"),
    atomic("io.k8s.api.core.v1.EndpointSubset", "addresses"),
    atomic("io.k8s.api.core.v1.EndpointSubset", "notReadyAddresses"),
    atomic("io.k8s.api.core.v1.EndpointSubset", "ports"),
    // core/v1 Node, Namespace, ServiceAccount
    set("io.k8s.api.core.v1.NodeSpec", "podCIDRs"),
    atomic("io.k8s.api.core.v1.NodeSpec", "taints"),
    keyed("io.k8s.api.core.v1.NodeStatus", "conditions", TYPE),
    keyed("io.k8s.api.core.v1.NodeStatus", "addresses", TYPE),
    atomic("io.k8s.api.core.v1.NodeStatus", "images"),
    atomic("io.k8s.api.core.v1.NodeStatus", "volumesInUse"),
    atomic("io.k8s.api.core.v1.NodeStatus", "volumesAttached"),
    atomic("io.k8s.api.core.v1.ContainerImage", "names"),
    atomic("io.k8s.api.core.v1.NamespaceSpec", "finalizers"),
    keyed("io.k8s.api.core.v1.NamespaceStatus", "conditions", TYPE),
    keyed("io.k8s.api.core.v1.ServiceAccount", "secrets", NAME),
    atomic("io.k8s.api.core.v1.ServiceAccount", "imagePullSecrets"),
    // apps/v1
    FieldMeta {
        definition: "io.k8s.api.apps.v1.DeploymentSpec",
        field: "strategy",
        strategy: "retainKeys",
        merge_key: "",
        list_type: "",
        map_keys: &[],
    },
    keyed("io.k8s.api.apps.v1.DeploymentStatus", "conditions", TYPE),
    keyed("io.k8s.api.apps.v1.ReplicaSetStatus", "conditions", TYPE),
    keyed("io.k8s.api.apps.v1.DaemonSetStatus", "conditions", TYPE),
    atomic("io.k8s.api.apps.v1.StatefulSetSpec", "volumeClaimTemplates"),
    keyed("io.k8s.api.apps.v1.StatefulSetStatus", "conditions", TYPE),
    // batch/v1
    keyed_atomic("io.k8s.api.batch.v1.JobStatus", "conditions", "type"),
    atomic("io.k8s.api.batch.v1.PodFailurePolicy", "rules"),
    atomic("io.k8s.api.batch.v1.PodFailurePolicyRule", "onPodConditions"),
    set_only("io.k8s.api.batch.v1.PodFailurePolicyOnExitCodesRequirement", "values"),
    atomic("io.k8s.api.batch.v1.SuccessPolicy", "rules"),
    set_only("io.k8s.api.batch.v1.UncountedTerminatedPods", "succeeded"),
    set_only("io.k8s.api.batch.v1.UncountedTerminatedPods", "failed"),
    // discovery/v1
    atomic("io.k8s.api.discovery.v1.EndpointSlice", "endpoints"),
    atomic("io.k8s.api.discovery.v1.EndpointSlice", "ports"),
    set_only("io.k8s.api.discovery.v1.Endpoint", "addresses"),
    atomic("io.k8s.api.discovery.v1.EndpointHints", "forZones"),
];

/// Definitions whose instances server-side apply owns and replaces as one
/// value (Kubernetes' `+structType=atomic`): selectors and references.
pub static ATOMIC_TYPES: &[&str] = &[
    "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector",
    "io.k8s.api.core.v1.NodeSelector",
    "io.k8s.api.core.v1.NodeSelectorTerm",
    "io.k8s.api.core.v1.ObjectFieldSelector",
    "io.k8s.api.core.v1.ResourceFieldSelector",
    "io.k8s.api.core.v1.ConfigMapKeySelector",
    "io.k8s.api.core.v1.SecretKeySelector",
    "io.k8s.api.core.v1.ObjectReference",
    "io.k8s.api.core.v1.LocalObjectReference",
    "io.k8s.api.core.v1.TypedLocalObjectReference",
    "io.k8s.api.core.v1.EndpointAddress",
    "io.k8s.api.core.v1.EndpointPort",
    "io.k8s.api.discovery.v1.EndpointPort",
];

/// Map fields server-side apply replaces as one value (`+mapType=atomic`).
pub static ATOMIC_MAPS: &[(&str, &str)] =
    &[("io.k8s.api.core.v1.PodSpec", "nodeSelector"), ("io.k8s.api.core.v1.ServiceSpec", "selector")];

/// Whether apply treats field `field` of `definition`, an instance of
/// `field_type` when it is a definition, as one value.
pub fn atomic_value(definition: Option<&str>, field: &str, field_type: Option<&str>) -> bool {
    field_type.is_some_and(|t| ATOMIC_TYPES.contains(&t))
        || definition.is_some_and(|d| ATOMIC_MAPS.contains(&(d, field)))
}

/// The metadata of `definition.field`, if it has any.
pub fn lookup(definition: &str, field: &str) -> Option<&'static FieldMeta> {
    FIELDS.iter().find(|f| f.definition == definition && f.field == field)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::schema::catalogue;

    #[test]
    fn every_entry_names_a_list_or_object_field_of_the_catalogue() {
        let c = catalogue();
        for f in FIELDS {
            let prop = c
                .property(f.definition, f.field)
                .unwrap_or_else(|| panic!("{}.{} is not in the catalogue", f.definition, f.field));
            let is_list = prop.get("type").and_then(|t| t.as_str()) == Some("array");
            assert_eq!(
                is_list,
                !f.list_type.is_empty(),
                "{}.{}: list type on a non-list, or none on a list",
                f.definition,
                f.field
            );
            if f.list_type == "map" {
                let item = c.resolve(&prop["items"]);
                for k in f.map_keys {
                    assert!(item["properties"].get(*k).is_some(), "{}.{}: no key field {k}", f.definition, f.field);
                }
                assert!(f.map_keys.contains(&f.merge_key) || f.merge_key.is_empty(), "{}.{}", f.definition, f.field);
            }
            if !f.merge_key.is_empty() {
                assert!(
                    c.resolve(&prop["items"])["properties"].get(f.merge_key).is_some(),
                    "{}.{}",
                    f.definition,
                    f.field
                );
            }
        }
    }

    #[test]
    fn atomic_types_and_maps_are_in_the_catalogue() {
        let c = catalogue();
        for t in ATOMIC_TYPES {
            assert!(c.get(t).is_some_and(|d| d.get("properties").is_some()), "{t}");
        }
        for (d, f) in ATOMIC_MAPS {
            assert!(c.property(d, f).is_some_and(|p| p.get("additionalProperties").is_some()), "{d}.{f}");
        }
    }

    #[test]
    fn no_field_is_listed_twice() {
        let mut seen = std::collections::BTreeSet::new();
        for f in FIELDS {
            assert!(seen.insert((f.definition, f.field)), "{}.{} twice", f.definition, f.field);
        }
    }

    #[test]
    fn lookups_find_strategies_and_keys() {
        assert_eq!(lookup("io.k8s.api.core.v1.Container", "ports").unwrap().map_keys, ["containerPort", "protocol"]);
        assert!(lookup("io.k8s.api.core.v1.PodSpec", "volumes").unwrap().retains_keys());
        assert!(lookup("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "finalizers").unwrap().merges());
        assert!(!lookup("io.k8s.api.core.v1.PodSpec", "tolerations").unwrap().merges());
        assert_eq!(lookup("io.k8s.api.core.v1.PodSpec", "nodeName"), None);
    }
}
