//! Label and field selectors in kubectl's syntax.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as MetaSelector;
use serde_json::Value;

use super::validate::{is_label_value, is_qualified_name};

/// One requirement of a label selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requirement {
    /// `k=v` or `k==v`.
    Equals(String, String),
    /// `k!=v`.
    NotEquals(String, String),
    /// `k in (a,b)`.
    In(String, Vec<String>),
    /// `k notin (a,b)`.
    NotIn(String, Vec<String>),
    /// `k`.
    Exists(String),
    /// `!k`.
    DoesNotExist(String),
}

/// A parsed label selector; empty selects everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector(pub Vec<Requirement>);

impl std::fmt::Display for LabelSelector {
    /// The selector in kubectl's syntax (`app=web,tier in (a,b),!canary`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|r| match r {
                Requirement::Equals(k, v) => format!("{k}={v}"),
                Requirement::NotEquals(k, v) => format!("{k}!={v}"),
                Requirement::In(k, vs) => format!("{k} in ({})", vs.join(",")),
                Requirement::NotIn(k, vs) => format!("{k} notin ({})", vs.join(",")),
                Requirement::Exists(k) => k.clone(),
                Requirement::DoesNotExist(k) => format!("!{k}"),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// A selector did not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unable to parse selector \"{selector}\": {reason}")]
pub struct SelectorError {
    /// The selector text.
    pub selector: String,
    /// What is wrong.
    pub reason: String,
}

fn split_top_level(s: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    parts.push(cur);
    parts.into_iter().map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect()
}

fn set_values(s: &str) -> Option<Vec<String>> {
    let inner = s.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some(inner.split(',').map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).collect())
}

/// What Kubernetes requires of a requirement's parts: a qualified name as the
/// key, label values, and at least one value in a set. Without this check,
/// text that is no selector (`:`, `=x`, `a),b`) parsed into requirements that
/// match nothing, or everything, instead of being refused.
fn check_requirement(req: &Requirement) -> Result<(), String> {
    let (key, values): (&str, &[String]) = match req {
        Requirement::Equals(k, v) | Requirement::NotEquals(k, v) => (k, std::slice::from_ref(v)),
        Requirement::In(k, vs) | Requirement::NotIn(k, vs) => {
            if vs.is_empty() {
                return Err(format!("values of \"{k}\": for 'in', 'notin' operators, values set can't be empty"));
            }
            (k, vs)
        }
        Requirement::Exists(k) | Requirement::DoesNotExist(k) => (k, &[]),
    };
    if !is_qualified_name(key) {
        return Err(format!("invalid label key \"{key}\": {QUALIFIED_NAME}"));
    }
    match values.iter().find(|v| !is_label_value(v)) {
        Some(v) => Err(format!("invalid label value \"{v}\" of \"{key}\": {LABEL_VALUE}")),
        None => Ok(()),
    }
}

const QUALIFIED_NAME: &str = "a valid label key is an optional DNS subdomain prefix and '/', then a name of at most 63 alphanumeric characters, '-', '_' or '.', starting and ending alphanumeric";
const LABEL_VALUE: &str =
    "a valid label value is empty or at most 63 alphanumeric characters, '-', '_' or '.', starting and ending alphanumeric";

impl LabelSelector {
    /// Parse `app=web,tier!=db,env in (a,b),release,!canary`.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let err = |reason: &str| SelectorError { selector: s.to_string(), reason: reason.to_string() };
        let mut reqs = Vec::new();
        for part in split_top_level(s) {
            let req = if let Some((k, v)) = part.split_once("!=") {
                Requirement::NotEquals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                Requirement::Equals(k.trim().into(), v.trim().into())
            } else if let Some((k, rest)) = part.split_once(" notin ") {
                Requirement::NotIn(k.trim().into(), set_values(rest).ok_or_else(|| err("expected (values)"))?)
            } else if let Some((k, rest)) = part.split_once(" in ") {
                Requirement::In(k.trim().into(), set_values(rest).ok_or_else(|| err("expected (values)"))?)
            } else if let Some(k) = part.strip_prefix('!') {
                Requirement::DoesNotExist(k.trim().into())
            } else if part.contains(char::is_whitespace) {
                return Err(err(&format!("unexpected \"{part}\"")));
            } else {
                Requirement::Exists(part)
            };
            check_requirement(&req).map_err(|reason| err(&reason))?;
            reqs.push(req);
        }
        Ok(LabelSelector(reqs))
    }

    /// A `metav1.LabelSelector` object (`matchLabels`, `matchExpressions`).
    pub fn from_object(sel: &Value) -> Self {
        let mut reqs = Vec::new();
        if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
            for (k, v) in m {
                reqs.push(Requirement::Equals(k.clone(), v.as_str().unwrap_or("").to_string()));
            }
        }
        for e in sel.get("matchExpressions").and_then(Value::as_array).into_iter().flatten() {
            let key = e.get("key").and_then(Value::as_str).unwrap_or("").to_string();
            let values: Vec<String> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|vs| vs.iter().filter_map(|v| v.as_str().map(String::from)).collect())
                .unwrap_or_default();
            reqs.push(match e.get("operator").and_then(Value::as_str).unwrap_or("") {
                "In" => Requirement::In(key, values),
                "NotIn" => Requirement::NotIn(key, values),
                "Exists" => Requirement::Exists(key),
                _ => Requirement::DoesNotExist(key),
            });
        }
        LabelSelector(reqs)
    }

    /// A typed `metav1.LabelSelector`.
    pub fn from_meta(sel: &MetaSelector) -> Self {
        let mut reqs: Vec<Requirement> =
            sel.match_labels.iter().flatten().map(|(k, v)| Requirement::Equals(k.clone(), v.clone())).collect();
        for e in sel.match_expressions.iter().flatten() {
            let (key, values) = (e.key.clone(), e.values.clone().unwrap_or_default());
            reqs.push(match e.operator.as_str() {
                "In" => Requirement::In(key, values),
                "NotIn" => Requirement::NotIn(key, values),
                "Exists" => Requirement::Exists(key),
                _ => Requirement::DoesNotExist(key),
            });
        }
        LabelSelector(reqs)
    }

    /// Whether an object's labels satisfy every requirement.
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.get("metadata").and_then(|m| m.get("labels"));
        self.satisfied_by(|k| labels.and_then(|l| l.get(k)).and_then(Value::as_str))
    }

    /// Whether a typed label map satisfies every requirement.
    pub fn matches_labels(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        self.satisfied_by(|k| labels.and_then(|l| l.get(k)).map(String::as_str))
    }

    fn satisfied_by<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::DoesNotExist(k) => get(k).is_none(),
        })
    }
}

/// A field selector: `metadata.name=x,spec.nodeName=n1,status.phase!=Running`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parse a field selector; only `=`, `==` and `!=` exist for fields.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut out = Vec::new();
        // No sets here: a comma always separates terms, parentheses in a value included.
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (path, eq, value) = if let Some((k, v)) = part.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (k, true, v)
            } else {
                return Err(SelectorError { selector: s.into(), reason: format!("invalid field selector \"{part}\"") });
            };
            out.push((path.trim().to_string(), eq, value.trim().to_string()));
        }
        Ok(FieldSelector(out))
    }

    /// The value the selector requires `field` to equal, if it does.
    pub fn required(&self, field: &str) -> Option<&str> {
        self.0.iter().find(|(f, eq, _)| f == field && *eq).map(|(_, _, v)| v.as_str())
    }

    /// The field paths the selector names.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(f, _, _)| f.as_str())
    }

    /// Whether the object's fields satisfy the selector.
    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(path, eq, want)| {
            let ptr = format!("/{}", path.replace('.', "/"));
            let got = match obj.pointer(&ptr) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(v) => v.to_string(),
            };
            (got == *want) == *eq
        })
    }
}

/// Whether Kubernetes lets lists of `kind` be selected by `field` (it refuses
/// the others with "field label not supported").
pub fn field_supported(kind: &crate::objects::Kind, field: &str) -> bool {
    if matches!(field, "metadata.name" | "metadata.namespace") {
        return true;
    }
    let extra: &[&str] = match kind.kind {
        "Pod" => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        "Event" => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        "Secret" => &["type"],
        "Node" => &["spec.unschedulable"],
        "Namespace" => &["status.phase"],
        "ReplicaSet" | "ReplicationController" => &["status.replicas"],
        "Job" => &["status.successful"],
        _ => &[],
    };
    extra.contains(&field)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors() {
        let obj = json!({"metadata": {"labels": {"app": "web", "tier": "front"}}});
        for (sel, want) in [
            ("app=web", true),
            ("app==web,tier=front", true),
            ("app!=web", false),
            ("tier in (front, back)", true),
            ("tier notin (front)", false),
            ("app", true),
            ("!canary", true),
            ("!app", false),
            ("", true),
        ] {
            assert_eq!(LabelSelector::parse(sel).unwrap().matches(&obj), want, "{sel}");
        }
        assert!(LabelSelector::parse("app web").is_err());
    }

    /// Found by fuzzing: text that is no selector parsed into requirements
    /// on keys no label can have (and so matched nothing, or everything).
    #[test]
    fn label_selectors_with_invalid_keys_or_values_are_refused() {
        for text in [":", "=x", "==", "!=", "!", "a),b", "(a", "a=b c", "a in ()", "a notin (,)", "a=-b", "a/=b", "-a"]
        {
            let err = LabelSelector::parse(text).expect_err(text);
            assert!(err.to_string().contains(text), "{err}");
        }
        for text in ["a=", "example.com/app=web", "a in (b, c-d)", "!x_y", "a.b!=C"] {
            assert!(LabelSelector::parse(text).is_ok(), "{text}");
        }
    }

    /// Found by fuzzing: a parenthesis in a field selector's value swallowed
    /// the next term (parentheses mean sets in label selectors only).
    #[test]
    fn a_parenthesis_in_a_field_selector_value_ends_at_the_comma() {
        let sel = FieldSelector::parse("a!=(,a!=").unwrap();
        assert_eq!(sel.fields().count(), 2);
        let sel = FieldSelector::parse("metadata.name=x(,spec.nodeName=n1").unwrap();
        assert_eq!(sel.required("spec.nodeName"), Some("n1"));
        assert_eq!(sel.required("metadata.name"), Some("x("));
    }

    #[test]
    fn selector_objects() {
        let sel = json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front"]}]});
        let obj = json!({"metadata": {"labels": {"app": "web", "tier": "front"}}});
        assert!(LabelSelector::from_object(&sel).matches(&obj));
        let typed: MetaSelector = serde_json::from_value(sel).unwrap();
        assert_eq!(LabelSelector::from_meta(&typed), LabelSelector::from_object(&json!(typed)));
        let labels: BTreeMap<String, String> = [("app".into(), "web".into())].into();
        assert!(!LabelSelector::from_meta(&typed).matches_labels(Some(&labels)), "tier is missing");
    }

    #[test]
    fn field_selectors() {
        let obj = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        assert!(FieldSelector::parse("spec.nodeName=n1,status.phase!=Pending").unwrap().matches(&obj));
        assert!(!FieldSelector::parse("metadata.name=q").unwrap().matches(&obj));
        assert!(FieldSelector::parse("spec.nodeName=").unwrap().matches(&json!({})));
    }
}
