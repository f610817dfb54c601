//! Fuzzing manifests through defaulting, validation and admission: seed
//! manifests of the kinds users write most, mutated the way a manifest goes
//! wrong (a value of another type, a field removed, a field added, an odd
//! string or number). Admission never panics; a refusal names fields; a value
//! of the wrong type is reported at its own path (or one above it); what is
//! admitted encodes within the size limit and under its own key. The
//! generators serve the API's and the registry's fuzz tests too.
//! `PROPTEST_CASES` scales the runs.

use proptest::prelude::*;
use serde_json::{json, Value};

use super::admission::{for_create, AdmissionError, CreateContext};
use super::{key_of, Kind};
use crate::objects::fuzz_config::config;

/// Valid manifests, one per kind users write most.
pub(crate) fn seeds() -> Vec<Value> {
    let labels = json!({"app": "web"});
    let pod_spec = json!({
        "containers": [{
            "name": "app", "image": "clusterd.local/busybox:v1", "command": ["sleep", "3600"],
            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
            "env": [{"name": "A", "value": "1"}],
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
        }],
        "restartPolicy": "Always", "terminationGracePeriodSeconds": 5,
    });
    let template = json!({"metadata": {"labels": labels}, "spec": pod_spec});
    vec![
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": labels}, "spec": pod_spec}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": template,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"}}}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "conf", "annotations": {"a": "b"}},
            "data": {"key": "value", "file.txt": "line\n"}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "type": "Opaque",
            "stringData": {"password": "x"}, "data": {"token": "dG9rZW4="}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}),
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once"},
            "spec": {"backoffLimit": 2, "template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "c", "image": "clusterd.local/busybox:v1"}]}}}}),
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
            "spec": {"replicas": 1, "serviceName": "db", "selector": {"matchLabels": labels}, "template": template}}),
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
            "spec": {"selector": {"matchLabels": labels}, "template": template}}),
    ]
}

/// A value to put somewhere: of every JSON type, odd strings and numbers among them.
pub(crate) fn odd_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        prop_oneof![Just(u64::MAX), Just(i64::MAX as u64 + 1)].prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,20}".prop_map(Value::from),
        "[a-z0-9.-]{0,70}".prop_map(Value::from),
        prop_oneof![Just("-1"), Just("1e400"), Just("999999999999Ei"), Just("∞"), Just("25%"), Just("")]
            .prop_map(Value::from),
        (0usize..300_000).prop_map(|n| Value::from("x".repeat(n))),
        Just(json!([])),
        Just(json!({})),
        Just(json!([1, "a", null])),
        Just(json!({"a": {"b": [1]}})),
    ]
}

/// One change to a manifest: where (choices walking down from the root) and what.
#[derive(Clone, Debug)]
pub(crate) struct Mutation {
    steps: Vec<usize>,
    action: Action,
}

#[derive(Clone, Debug)]
enum Action {
    /// Put this value where the walk ends.
    Replace(Value),
    /// Remove the field (or element) where the walk ends.
    Remove,
    /// Add a field to the object where the walk ends.
    Add(String, Value),
}

pub(crate) fn mutation() -> impl Strategy<Value = Mutation> {
    let action = prop_oneof![
        3 => odd_value().prop_map(Action::Replace),
        1 => Just(Action::Remove),
        1 => ("[a-zA-Z]{1,12}", odd_value()).prop_map(|(k, v)| Action::Add(k, v)),
    ];
    (prop::collection::vec(any::<usize>(), 1..7), action).prop_map(|(steps, action)| Mutation { steps, action })
}

/// A path as admission prints it: `spec.containers[0].image`.
fn push_path(path: &mut String, key: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(key);
}

/// Apply `m` to `obj`; the path of the field changed and, for a replacement,
/// the value that was there before.
pub(crate) fn apply(obj: &mut Value, m: &Mutation) -> (String, Option<Value>) {
    let mut path = String::new();
    let mut at = obj;
    for (depth, &choice) in m.steps.iter().enumerate() {
        let last = depth + 1 == m.steps.len();
        let next = match at {
            Value::Object(map) if !map.is_empty() => map.keys().nth(choice % map.len()).cloned().inspect(|k| {
                push_path(&mut path, k);
            }),
            Value::Array(items) if !items.is_empty() => {
                let i = choice % items.len();
                path.push_str(&format!("[{i}]"));
                Some(i.to_string())
            }
            _ => None,
        };
        let Some(next) = next else { break };
        if last {
            match (&m.action, &mut *at) {
                (Action::Remove, Value::Object(map)) => {
                    map.remove(&next);
                    return (path, None);
                }
                (Action::Remove, Value::Array(items)) => {
                    items.remove(next.parse::<usize>().expect("an index"));
                    return (path, None);
                }
                _ => {}
            }
        }
        at = match at {
            Value::Object(map) => map.get_mut(&next).expect("the key chosen"),
            Value::Array(items) => &mut items[next.parse::<usize>().expect("an index")],
            _ => unreachable!("only objects and arrays are walked into"),
        };
    }
    match &m.action {
        Action::Replace(v) => (path, Some(std::mem::replace(at, v.clone()))),
        Action::Add(k, v) => {
            if let Value::Object(map) = at {
                map.insert(k.clone(), v.clone());
                push_path(&mut path, k);
            }
            (path, None)
        }
        Action::Remove => (path, None),
    }
}

/// A seed with up to a few mutations.
pub(crate) fn manifest() -> impl Strategy<Value = Value> {
    (0..seeds().len(), prop::collection::vec(mutation(), 0..4)).prop_map(|(i, ms)| {
        let mut obj = seeds().swap_remove(i);
        for m in &ms {
            apply(&mut obj, m);
        }
        obj
    })
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Whether a cause at `field` is about the change at `path`: the same field,
/// one above it, or one inside it.
pub(crate) fn names(field: &str, path: &str) -> bool {
    let under = |a: &str, b: &str| a == b || a.starts_with(&format!("{b}.")) || a.starts_with(&format!("{b}["));
    under(path, field) || under(field, path) || field == "<root>"
}

const CTX: CreateContext =
    CreateContext { uid: "0b7a4c9e-1111-4f1e-9a53-000000000001", now: "2026-01-01T00:00:00Z", suffix: "x2b4z" };

/// Admit `obj` as a create does, checking what holds for every answer.
pub(crate) fn admit_checked(obj: Value) -> Result<(), TestCaseError> {
    let Some(kind) = Kind::of(&obj) else { return Ok(()) };
    match for_create(kind, obj, &CTX) {
        Ok(a) => {
            prop_assert_eq!(key_of(&a.body), Some(a.key.clone()));
            if let Ok(bytes) = a.bytes() {
                let back: Value = serde_json::from_slice(&bytes).unwrap();
                prop_assert_eq!(back, a.body);
            }
            Ok(())
        }
        Err(AdmissionError::Invalid(inv)) => {
            prop_assert!(!inv.causes.is_empty());
            for c in &inv.causes {
                prop_assert!(!c.field.is_empty(), "a cause without a field: {c}");
            }
            Ok(())
        }
        Err(other) => Err(TestCaseError::fail(format!("admission of a manifest of a kind it serves: {other}"))),
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn fuzz_mutated_manifests_are_admitted_or_refused_by_field(obj in manifest()) {
        admit_checked(obj)?;
    }

    #[test]
    fn fuzz_a_value_of_the_wrong_type_is_refused_at_its_path(seed in 0..seeds().len(), m in mutation()) {
        let mut obj = seeds().swap_remove(seed);
        let (path, before) = apply(&mut obj, &m);
        let (Some(before), Action::Replace(after)) = (before, &m.action) else { return Ok(()) };
        // Only a scalar of the schema's type replaced by another type: null
        // means "unset", and containers may have been emptied.
        let scalar = |v: &Value| matches!(v, Value::Bool(_) | Value::Number(_) | Value::String(_));
        if !scalar(&before) || !scalar(after) || json_type(&before) == json_type(after) {
            return Ok(());
        }
        // What admission sets itself, and what it reads to know the kind.
        if ["kind", "apiVersion", "status", "metadata.namespace"].iter().any(|p| names(p, &path)) {
            return Ok(());
        }
        // Fields of two types: int-or-string (`targetPort: ""` is defaulted to
        // the port, as Kubernetes does) and quantities (`cpu: 1` or `"1"`).
        if [".targetPort", ".maxSurge", ".maxUnavailable", ".resources."].iter().any(|f| path.contains(f)) {
            return Ok(());
        }
        let kind = Kind::of(&obj).expect("the kind is untouched");
        let causes = match for_create(kind, obj, &CTX) {
            Err(AdmissionError::Invalid(inv)) => inv.causes,
            Ok(_) => Vec::new(),
            Err(e) => return Err(TestCaseError::fail(format!("{path}: {e}"))),
        };
        prop_assert!(
            causes.iter().any(|c| names(&c.field, &path)),
            "{} {} -> {}: admitted, or refused for {:?}", path, before, after, causes
        );
    }
}

#[test]
fn the_seeds_are_admitted() {
    for seed in seeds() {
        let kind = Kind::of(&seed).unwrap();
        if let Err(e) = for_create(kind, seed.clone(), &CTX) {
            panic!("{}: {e}", kind.kind);
        }
    }
}

/// Found by fuzzing: a Secret whose `stringData` held a value that is no
/// string was admitted, the value stored as "".
#[test]
fn a_secret_with_a_non_string_in_string_data_is_refused_at_its_path() {
    let secret =
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"password": false}});
    match for_create(Kind::of(&secret).unwrap(), secret, &CTX) {
        Err(AdmissionError::Invalid(inv)) => {
            assert_eq!(inv.causes.iter().map(|c| c.field.as_str()).collect::<Vec<_>>(), ["stringData.password"])
        }
        other => panic!("{other:?}"),
    }
}

/// Found by fuzzing: a float with 17 significant digits was stored one unit
/// in the last place off the one answered (serde_json's fast float parsing),
/// so an object read back differed from the object created.
#[test]
fn a_float_is_stored_as_it_was_written() {
    for x in [-3.840144243765258e-155, -4.9061072383403995e+233] {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "annotations": {}},
            "spec": {"containers": [{"name": "c", "image": "i"}], "x": x}});
        let a = for_create(Kind::of(&pod).unwrap(), pod, &CTX).unwrap();
        let stored: Value = serde_json::from_slice(&a.bytes().unwrap()).unwrap();
        assert_eq!(stored["spec"]["x"].as_f64(), Some(x));
        assert_eq!(stored, a.body);
    }
}
