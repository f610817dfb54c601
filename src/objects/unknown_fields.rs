//! Fields an object's schema does not declare, and what `fieldValidation`
//! makes of them.
//!
//! kubectl 1.32 leaves validation to the server once the OpenAPI documents
//! say the server takes `fieldValidation` (it sends `Strict` on apply,
//! create, replace and edit): a misspelt field must then fail the request,
//! as `kubectl apply --validate=false` is the way to store it anyway. Objects
//! are kept as JSON (unknown fields survive), so the check walks the object
//! against the schema catalogue: properties, `items`, `additionalProperties`,
//! through `$ref` and `allOf`; a schema declaring none of them (free-form
//! objects such as `FieldsV1`) accepts anything.

use serde_json::Value;

use super::kinds::Kind;
use super::schema::{catalogue, definition_of, ref_name};

/// The fields of `obj` its kind's schema does not declare, named as
/// Kubernetes names them (`spec.template.spec.containers[0].imagee`), in the
/// object's key order. Empty for a kind without a definition.
pub fn unknown_fields(kind: &Kind, obj: &Value) -> Vec<String> {
    unknown_fields_of(definition_of(kind), obj)
}

/// [`unknown_fields`] against a definition by name
/// (`io.k8s.api.autoscaling.v1.Scale` for a scale subresource).
pub fn unknown_fields_of(definition: &str, obj: &Value) -> Vec<String> {
    let mut found = Vec::new();
    if let Some(schema) = catalogue().get(definition) {
        walk(schema, obj, "", &mut found);
    }
    found
}

/// The schema a reference (or an `allOf` of one) leads to.
fn resolve(schema: &Value) -> &Value {
    let c = catalogue();
    let mut s = schema;
    // A chain of references is at most a few long; bounded against cycles.
    for _ in 0..8 {
        match ref_name(s).and_then(|n| c.get(n)) {
            Some(next) => s = next,
            None => break,
        }
    }
    s
}

fn walk(schema: &Value, value: &Value, path: &str, found: &mut Vec<String>) {
    let schema = resolve(schema);
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
        return;
    }
    match value {
        Value::Object(fields) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            if properties.is_none() && additional.is_none() {
                return;
            }
            for (key, v) in fields {
                let sub = match properties.and_then(|p| p.get(key)) {
                    Some(s) => s,
                    None => match additional {
                        Some(s) => s,
                        None => {
                            found.push(join(path, key));
                            continue;
                        }
                    },
                };
                walk(sub, v, &join(path, key), found);
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    walk(item_schema, v, &format!("{path}[{i}]"), found);
                }
            }
        }
        _ => {}
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// The `fieldValidation` query parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldValidation {
    /// Drop unknown fields silently (kept, in clusterd: objects are JSON).
    Ignore,
    /// Succeed with one `Warning` header per unknown field (the default).
    Warn,
    /// Fail with 400 BadRequest naming every unknown field.
    Strict,
}

/// A `fieldValidation` value Kubernetes does not define.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("fieldValidation must be one of Ignore, Warn or Strict, not {0:?}")]
pub struct BadFieldValidation(pub String);

impl FieldValidation {
    /// From the query parameter's value (`None` or empty: the default, Warn).
    pub fn parse(value: Option<&str>) -> Result<FieldValidation, BadFieldValidation> {
        match value.unwrap_or("") {
            "" | "Warn" => Ok(FieldValidation::Warn),
            "Ignore" => Ok(FieldValidation::Ignore),
            "Strict" => Ok(FieldValidation::Strict),
            other => Err(BadFieldValidation(other.to_owned())),
        }
    }
}

/// What the request becomes under `mode` with these unknown fields.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Go on, adding these `Warning` header values (`299 - "unknown field \"spec.x\""`).
    Proceed(Vec<String>),
    /// Fail with 400 BadRequest and this message.
    Reject(String),
}

/// The verdict on a request whose body has `unknown` fields.
pub fn verdict(mode: FieldValidation, unknown: &[String]) -> Verdict {
    match mode {
        FieldValidation::Strict if !unknown.is_empty() => {
            let named: Vec<String> = unknown.iter().map(|f| format!("unknown field {f:?}")).collect();
            Verdict::Reject(format!("strict decoding error: {}", named.join(", ")))
        }
        FieldValidation::Warn => {
            Verdict::Proceed(unknown.iter().map(|f| format!("299 - {:?}", format!("unknown field {f:?}"))).collect())
        }
        _ => Verdict::Proceed(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::objects::kinds::{CONFIG_MAP, DEPLOYMENT, POD};

    #[test]
    fn unknown_fields_are_named_by_their_path() {
        let deployment = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}, "annotationz": {},
                "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {"f:replicas": {}}}}]},
            "spec": {
                "replicas": 2, "replicaz": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}, "creationTimestamp": null},
                    "spec": {"containers": [
                        {"name": "a", "image": "busybox", "ports": [{"containerPort": 80, "protocl": "TCP"}]},
                        {"name": "b", "imagee": "busybox", "resources": {"limits": {"cpu": "1"}}},
                    ]},
                },
            },
            "status": {"replicas": 1},
        });
        assert_eq!(
            unknown_fields(&DEPLOYMENT, &deployment),
            [
                "metadata.annotationz",
                "spec.replicaz",
                "spec.template.spec.containers[0].ports[0].protocl",
                "spec.template.spec.containers[1].imagee",
            ]
        );
    }

    #[test]
    fn declared_and_free_form_fields_pass() {
        let table = [
            (
                &CONFIG_MAP,
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}}),
            ),
            (
                &POD,
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "annotations": {"a": "b"}},
                    "spec": {"containers": [{"name": "c", "image": "i", "env": [{"name": "X", "value": "1"}],
                        "resources": {"requests": {"memory": "1Gi"}}}],
                        "nodeSelector": {"disk": "ssd"}}}),
            ),
        ];
        for (kind, obj) in table {
            assert_eq!(unknown_fields(kind, &obj), Vec::<String>::new(), "{}", kind.kind);
        }
        let scale = json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "spec": {"replicas": 2, "replica": 1}});
        assert_eq!(unknown_fields_of("io.k8s.api.autoscaling.v1.Scale", &scale), ["spec.replica"]);
    }

    #[test]
    fn field_validation_modes_decide_the_request() {
        assert_eq!(FieldValidation::parse(None), Ok(FieldValidation::Warn));
        assert_eq!(FieldValidation::parse(Some("Strict")), Ok(FieldValidation::Strict));
        assert_eq!(FieldValidation::parse(Some("Ignore")), Ok(FieldValidation::Ignore));
        assert!(FieldValidation::parse(Some("strict")).is_err());
        let unknown = vec!["spec.replicaz".to_owned(), "spec.foo".to_owned()];
        let table = [
            (
                FieldValidation::Strict,
                &unknown[..],
                Verdict::Reject(
                    r#"strict decoding error: unknown field "spec.replicaz", unknown field "spec.foo""#.into(),
                ),
            ),
            (FieldValidation::Strict, &[][..], Verdict::Proceed(vec![])),
            (
                FieldValidation::Warn,
                &unknown[..1],
                Verdict::Proceed(vec![r#"299 - "unknown field \"spec.replicaz\"""#.into()]),
            ),
            (FieldValidation::Ignore, &unknown[..], Verdict::Proceed(vec![])),
        ];
        for (mode, fields, expected) in table {
            assert_eq!(verdict(mode, fields), expected, "{mode:?}");
        }
    }
}
