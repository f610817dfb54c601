//! How Kubernetes merges each list and map of its types under a strategic
//! merge patch and server-side apply: the patch strategy and merge key of a
//! field (Kubernetes keeps them as struct tags, which `k8s-openapi` does not
//! carry), and the list type and map keys apply uses. One table, read by the
//! schema catalogue (which publishes it in the OpenAPI documents, where kubectl
//! reads it) and by the patch code.

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

/// Every field with patch metadata.
pub static FIELDS: &[FieldMeta] = &[FieldMeta {
    definition: "io.k8s.api.core.v1.PodSpec",
    field: "containers",
    strategy: "merge",
    merge_key: "name",
    list_type: "map",
    map_keys: &["name"],
}];

/// The metadata of `definition.field`, if it has any.
pub fn lookup(definition: &str, field: &str) -> Option<&'static FieldMeta> {
    FIELDS.iter().find(|f| f.definition == definition && f.field == field)
}
