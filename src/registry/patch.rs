//! Patches as Kubernetes takes them: JSON patch (RFC 6902), JSON merge
//! patch (RFC 7386) and strategic merge patch ([`super::strategic`]). Pure
//! functions over JSON; the registry applies them to the
//! current object and writes the result as an update of that version.

use serde_json::Value;

/// A patch of one object.
#[derive(Clone, Debug, PartialEq)]
pub enum Patch {
    /// `application/json-patch+json`: a list of operations.
    Json(Value),
    /// `application/merge-patch+json`: an object merged into the target.
    Merge(Value),
    /// `application/strategic-merge-patch+json`: a merge patch whose lists
    /// merge by the keys of the target kind's schema.
    Strategic(Value),
}

/// Why a patch could not be applied.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PatchError {
    /// The patch document is not of the patch type's shape.
    #[error("the patch is malformed: {0}")]
    Malformed(String),
    /// A path of a JSON patch does not lead to a value.
    #[error("the path \"{0}\" does not exist")]
    NoPath(String),
    /// A JSON patch `test` failed.
    #[error("testing value {0} failed")]
    TestFailed(String),
}

impl From<super::strategic::Malformed> for PatchError {
    fn from(e: super::strategic::Malformed) -> Self {
        PatchError::Malformed(e.0)
    }
}

impl Patch {
    /// The patched copy of `target`.
    pub fn apply(&self, target: &Value) -> Result<Value, PatchError> {
        let mut out = target.clone();
        match self {
            Patch::Merge(p) => crate::objects::merge::merge(&mut out, p),
            Patch::Strategic(p) => out = super::strategic::strategic_merge(&definition_of(target), target, p)?,
            Patch::Json(ops) => {
                let ops =
                    ops.as_array().ok_or_else(|| PatchError::Malformed("expected a list of operations".into()))?;
                for op in ops {
                    apply_op(&mut out, op)?;
                }
            }
        }
        Ok(out)
    }
}

/// The OpenAPI definition of `target` by its apiVersion and kind: a served
/// kind's, or the catalogue's name for another type (`autoscaling/v1`
/// `Scale`); a type the catalogue lacks merges as a JSON merge patch.
fn definition_of(target: &Value) -> String {
    use crate::objects::{schema, Kind};
    if let Some(kind) = Kind::of(target) {
        return schema::definition_of(kind).to_string();
    }
    let kind = target.get("kind").and_then(Value::as_str).unwrap_or("");
    let (group, version) = match target.get("apiVersion").and_then(Value::as_str).unwrap_or("").split_once('/') {
        Some((g, v)) => (g, v),
        None => ("core", target.get("apiVersion").and_then(Value::as_str).unwrap_or("")),
    };
    format!("io.k8s.api.{group}.{version}.{kind}")
}

/// The reference tokens of a JSON pointer (`/a/b~1c` → `a`, `b/c`).
fn tokens(path: &str) -> Result<Vec<String>, PatchError> {
    if path.is_empty() {
        return Ok(vec![]);
    }
    let rest = path.strip_prefix('/').ok_or_else(|| PatchError::Malformed(format!("path \"{path}\"")))?;
    Ok(rest.split('/').map(|t| t.replace("~1", "/").replace("~0", "~")).collect())
}

fn array_index(token: &str, len: usize, path: &str) -> Result<usize, PatchError> {
    match token.parse::<usize>() {
        Ok(i) if i < len && (token == "0" || !token.starts_with('0')) => Ok(i),
        _ => Err(PatchError::NoPath(path.into())),
    }
}

fn get_mut<'a>(root: &'a mut Value, toks: &[String], path: &str) -> Result<&'a mut Value, PatchError> {
    let mut cur = root;
    for t in toks {
        cur = match cur {
            Value::Object(m) => m.get_mut(t).ok_or_else(|| PatchError::NoPath(path.into()))?,
            Value::Array(a) => {
                let i = array_index(t, a.len(), path)?;
                &mut a[i]
            }
            _ => return Err(PatchError::NoPath(path.into())),
        };
    }
    Ok(cur)
}

fn add(root: &mut Value, path: &str, value: Value) -> Result<(), PatchError> {
    let toks = tokens(path)?;
    let Some((last, parent)) = toks.split_last() else {
        *root = value;
        return Ok(());
    };
    match get_mut(root, parent, path)? {
        Value::Object(m) => {
            m.insert(last.clone(), value);
        }
        Value::Array(a) if last == "-" => a.push(value),
        Value::Array(a) => {
            let i = match last.parse::<usize>() {
                Ok(i) if i <= a.len() => i,
                _ => return Err(PatchError::NoPath(path.into())),
            };
            a.insert(i, value);
        }
        _ => return Err(PatchError::NoPath(path.into())),
    }
    Ok(())
}

fn remove(root: &mut Value, path: &str) -> Result<Value, PatchError> {
    let toks = tokens(path)?;
    let (last, parent) = toks.split_last().ok_or_else(|| PatchError::Malformed("cannot remove the root".into()))?;
    match get_mut(root, parent, path)? {
        Value::Object(m) => m.remove(last).ok_or_else(|| PatchError::NoPath(path.into())),
        Value::Array(a) => {
            let i = array_index(last, a.len(), path)?;
            Ok(a.remove(i))
        }
        _ => Err(PatchError::NoPath(path.into())),
    }
}

fn apply_op(doc: &mut Value, op: &Value) -> Result<(), PatchError> {
    let field = |name: &str| {
        op.get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| PatchError::Malformed(format!("operation without \"{name}\"")))
    };
    let value = || op.get("value").cloned().ok_or_else(|| PatchError::Malformed("operation without \"value\"".into()));
    let path = field("path")?;
    match field("op")? {
        "add" => add(doc, path, value()?),
        "remove" => remove(doc, path).map(|_| ()),
        "replace" => {
            *get_mut(doc, &tokens(path)?, path)? = value()?;
            Ok(())
        }
        "move" => {
            let from = field("from")?;
            let v = remove(doc, from)?;
            add(doc, path, v)
        }
        "copy" => {
            let from = field("from")?;
            let v = get_mut(doc, &tokens(from)?, from)?.clone();
            add(doc, path, v)
        }
        "test" => {
            let expected = value()?;
            if *get_mut(doc, &tokens(path)?, path)? == expected {
                Ok(())
            } else {
                Err(PatchError::TestFailed(expected.to_string()))
            }
        }
        other => Err(PatchError::Malformed(format!("unsupported operation \"{other}\""))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_merge_patch_merges() {
        let got = Patch::Merge(json!({"metadata": {"labels": {"a": null, "b": "2"}}}))
            .apply(&json!({"metadata": {"name": "x", "labels": {"a": "1"}}}))
            .unwrap();
        assert_eq!(got, json!({"metadata": {"name": "x", "labels": {"b": "2"}}}));
    }

    #[test]
    fn a_strategic_patch_merges_by_the_target_kinds_schema() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]}});
        let patch = json!({"spec": {"containers": [{"name": "a", "image": "a:2"}]}});
        let got = Patch::Strategic(patch.clone()).apply(&pod).unwrap();
        assert_eq!(got["spec"]["containers"], json!([{"name": "a", "image": "a:2"}, {"name": "b", "image": "b:1"}]));
        // A type that is not a served kind is found in the catalogue too.
        let scale = json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "spec": {"replicas": 1}});
        let got = Patch::Strategic(json!({"spec": {"replicas": 3}})).apply(&scale).unwrap();
        assert_eq!(got["spec"]["replicas"], 3);
        assert_eq!(definition_of(&scale), "io.k8s.api.autoscaling.v1.Scale");
        assert_eq!(definition_of(&pod), "io.k8s.api.core.v1.Pod");
        // A merge patch replaces the list instead.
        let got = Patch::Merge(patch).apply(&pod).unwrap();
        assert_eq!(got["spec"]["containers"], json!([{"name": "a", "image": "a:2"}]));
    }

    #[test]
    fn json_patches_follow_rfc_6902() {
        let doc = json!({"metadata": {"labels": {"a/b": "1"}}, "spec": {"list": [1, 2, 3]}});
        let cases = [
            (json!([{"op": "add", "path": "/spec/x", "value": 1}]), Ok(json!(1)), "/spec/x"),
            (json!([{"op": "add", "path": "/spec/list/-", "value": 4}]), Ok(json!(4)), "/spec/list/3"),
            (json!([{"op": "add", "path": "/spec/list/0", "value": 0}]), Ok(json!(0)), "/spec/list/0"),
            (json!([{"op": "remove", "path": "/metadata/labels/a~1b"}]), Ok(json!({})), "/metadata/labels"),
            (json!([{"op": "replace", "path": "/spec/list/1", "value": 9}]), Ok(json!(9)), "/spec/list/1"),
            (json!([{"op": "copy", "from": "/spec/list/0", "path": "/spec/y"}]), Ok(json!(1)), "/spec/y"),
            (json!([{"op": "move", "from": "/spec/list", "path": "/spec/z"}]), Ok(json!([1, 2, 3])), "/spec/z"),
            (json!([{"op": "test", "path": "/spec/list/0", "value": 1}]), Ok(json!(1)), "/spec/list/0"),
            (json!([{"op": "test", "path": "/spec/list/0", "value": 2}]), Err(PatchError::TestFailed("2".into())), ""),
            (
                json!([{"op": "replace", "path": "/spec/nope", "value": 1}]),
                Err(PatchError::NoPath("/spec/nope".into())),
                "",
            ),
            (json!([{"op": "remove", "path": "/spec/list/7"}]), Err(PatchError::NoPath("/spec/list/7".into())), ""),
            (json!({"op": "add"}), Err(PatchError::Malformed("expected a list of operations".into())), ""),
        ];
        for (patch, want, at) in cases {
            let got = Patch::Json(patch.clone()).apply(&doc);
            match want {
                Ok(v) => assert_eq!(got.unwrap().pointer(at), Some(&v), "{patch}"),
                Err(e) => assert_eq!(got.unwrap_err(), e, "{patch}"),
            }
        }
    }
}
