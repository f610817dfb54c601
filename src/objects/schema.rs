//! The OpenAPI definitions of every type clusterd serves, generated once from
//! `k8s-openapi`'s schemas and completed with the patch metadata of
//! [`super::patch_meta`]: the OpenAPI documents (kubectl's validation and
//! `explain`), strategic merge patch and server-side apply all read them here.
//!
//! Definitions are keyed by their OpenAPI name (`io.k8s.api.core.v1.PodSpec`)
//! and refer to each other as `#/components/schemas/<name>`.

use std::sync::OnceLock;

use k8s_openapi::api::{
    apps::v1 as apps, autoscaling::v1 as autoscaling, batch::v1 as batch, coordination::v1 as coord, core::v1 as core,
    discovery::v1 as discovery, policy::v1 as policy,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value};

use super::kinds::{self, Kind};
use super::patch_meta;

/// Where a `$ref` points.
pub const REF_PREFIX: &str = "#/components/schemas/";

/// The definitions, by OpenAPI name.
pub struct Catalogue {
    definitions: Map<String, Value>,
}

/// The catalogue (built on first use, ~1 MB of JSON).
pub fn catalogue() -> &'static Catalogue {
    static CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
    CATALOGUE.get_or_init(Catalogue::build)
}

/// The definition name of a kind's objects (`io.k8s.api.core.v1.Pod`).
pub fn definition_of(kind: &Kind) -> &'static str {
    match *kind {
        kinds::NAMESPACE => "io.k8s.api.core.v1.Namespace",
        kinds::CONFIG_MAP => "io.k8s.api.core.v1.ConfigMap",
        kinds::SECRET => "io.k8s.api.core.v1.Secret",
        kinds::SERVICE_ACCOUNT => "io.k8s.api.core.v1.ServiceAccount",
        kinds::POD => "io.k8s.api.core.v1.Pod",
        kinds::NODE => "io.k8s.api.core.v1.Node",
        kinds::LEASE => "io.k8s.api.coordination.v1.Lease",
        kinds::EVENT => "io.k8s.api.core.v1.Event",
        kinds::SERVICE => "io.k8s.api.core.v1.Service",
        kinds::ENDPOINTS => "io.k8s.api.core.v1.Endpoints",
        kinds::ENDPOINT_SLICE => "io.k8s.api.discovery.v1.EndpointSlice",
        kinds::REPLICA_SET => "io.k8s.api.apps.v1.ReplicaSet",
        kinds::DEPLOYMENT => "io.k8s.api.apps.v1.Deployment",
        kinds::DAEMON_SET => "io.k8s.api.apps.v1.DaemonSet",
        kinds::STATEFUL_SET => "io.k8s.api.apps.v1.StatefulSet",
        kinds::JOB => "io.k8s.api.batch.v1.Job",
        _ => "",
    }
}

impl Catalogue {
    fn build() -> Catalogue {
        let mut generator = SchemaGenerator::new(SchemaSettings::openapi3());
        macro_rules! roots {
            ($($t:ty),* $(,)?) => { $( let _ = generator.subschema_for::<$t>(); )* };
        }
        roots!(
            core::Namespace,
            core::ConfigMap,
            core::Secret,
            core::ServiceAccount,
            core::Pod,
            core::Node,
            coord::Lease,
            core::Event,
            core::Service,
            core::Endpoints,
            discovery::EndpointSlice,
            apps::ReplicaSet,
            apps::Deployment,
            apps::DaemonSet,
            apps::StatefulSet,
            batch::Job,
            autoscaling::Scale,
            policy::Eviction,
            core::Binding,
            meta::Status,
            meta::DeleteOptions,
            meta::Patch,
        );
        let mut definitions = generator.take_definitions(true);
        for f in patch_meta::FIELDS {
            let Some(prop) = definitions
                .get_mut(f.definition)
                .and_then(|d| d.get_mut("properties"))
                .and_then(|p| p.get_mut(f.field))
                .and_then(Value::as_object_mut)
            else {
                continue;
            };
            for (key, value) in [
                ("x-kubernetes-patch-strategy", f.strategy),
                ("x-kubernetes-patch-merge-key", f.merge_key),
                ("x-kubernetes-list-type", f.list_type),
            ] {
                if !value.is_empty() {
                    prop.insert(key.into(), Value::String(value.into()));
                }
            }
            if !f.map_keys.is_empty() {
                prop.insert("x-kubernetes-list-map-keys".into(), f.map_keys.iter().map(|k| Value::from(*k)).collect());
            }
        }
        Catalogue { definitions }
    }

    /// Every definition, by name.
    pub fn definitions(&self) -> &Map<String, Value> {
        &self.definitions
    }

    /// One definition.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.definitions.get(name)
    }

    /// The schema a `$ref` leads to, or `schema` itself when it is no reference
    /// (schemars may wrap a reference in `allOf` to add a description).
    pub fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match ref_name(schema) {
            Some(name) => self.definitions.get(name).unwrap_or(schema),
            None => schema,
        }
    }

    /// The schema of property `field` of definition `definition`, resolved.
    pub fn property(&self, definition: &str, field: &str) -> Option<&Value> {
        self.get(definition)?.get("properties")?.get(field)
    }
}

impl Catalogue {
    /// The paths of the fields of `obj` that its definition does not know
    /// (`spec.replica`, `spec.template.spec.containers[0].imagePullPolcy`), as
    /// `fieldValidation=Strict` refuses them. Strategic-merge directives
    /// (`$patch`, `$setElementOrder/…`) are not fields.
    pub fn unknown_fields(&self, definition: &str, obj: &Value) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(schema) = self.get(definition) {
            self.walk(schema, obj, "", &mut out);
        }
        out
    }

    fn walk(&self, schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
        let schema = self.resolve(schema);
        if schema.get("x-kubernetes-preserve-unknown-fields").is_some_and(|v| v == true) {
            return;
        }
        match value {
            Value::Object(map) => {
                if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                    for (k, v) in map {
                        if k.starts_with('$') {
                            continue;
                        }
                        let sub = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                        match props.get(k) {
                            Some(s) => self.walk(s, v, &sub, out),
                            None => out.push(sub),
                        }
                    }
                } else if let Some(values) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                    for (k, v) in map {
                        self.walk(values, v, &format!("{path}[{k}]"), out);
                    }
                }
            }
            Value::Array(items) => {
                if let Some(item) = schema.get("items") {
                    for (i, v) in items.iter().enumerate() {
                        self.walk(item, v, &format!("{path}[{i}]"), out);
                    }
                }
            }
            _ => {}
        }
    }
}

/// The definition a schema refers to (`{"$ref": …}` or `{"allOf": [{"$ref": …}]}`).
pub fn ref_name(schema: &Value) -> Option<&str> {
    let r = schema
        .get("$ref")
        .or_else(|| schema.get("allOf").and_then(|a| a.get(0)).and_then(|s| s.get("$ref")))?
        .as_str()?;
    r.strip_prefix(REF_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_definition_with_its_group_version_kind() {
        let c = catalogue();
        for kind in kinds::KINDS {
            let def = c.get(definition_of(kind)).unwrap_or_else(|| panic!("{}", kind.kind));
            assert!(def.get("properties").and_then(|p| p.get("metadata")).is_some(), "{}", kind.kind);
        }
    }

    #[test]
    fn unknown_fields_are_named_by_their_paths() {
        let c = catalogue();
        let d = serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"a": "b"}, "colour": "red"},
            "spec": {"replica": 2, "template": {"spec": {"containers": [{"name": "c", "image": "i", "imagePullPolcy": "x"}]}}},
            "status": {},
        });
        assert_eq!(
            c.unknown_fields("io.k8s.api.apps.v1.Deployment", &d),
            ["metadata.colour", "spec.replica", "spec.template.spec.containers[0].imagePullPolcy"]
        );
        let cm = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"any": "thing"}});
        assert!(c.unknown_fields("io.k8s.api.core.v1.ConfigMap", &cm).is_empty());
    }

    #[test]
    fn references_lead_to_definitions_and_carry_patch_metadata() {
        let c = catalogue();
        let spec = c.property("io.k8s.api.core.v1.Pod", "spec").unwrap();
        assert_eq!(ref_name(spec), Some("io.k8s.api.core.v1.PodSpec"));
        let containers = c.property("io.k8s.api.core.v1.PodSpec", "containers").unwrap();
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(ref_name(&containers["items"]), Some("io.k8s.api.core.v1.Container"));
        assert!(c.get("io.k8s.api.core.v1.Container").is_some());
    }
}
