//! Strategic merge patch (`application/strategic-merge-patch+json`), the patch
//! kubectl sends for built-in kinds: a JSON merge patch that knows, from the
//! schema catalogue, which lists merge by a key (containers by `name`) instead
//! of being replaced, and that takes directives (`$patch`, `$retainKeys`,
//! `$setElementOrder/<f>`, `$deleteFromPrimitiveList/<f>`).
//!
//! The walk follows the catalogue's types; a field the schema does not know
//! merges as a JSON merge patch (maps key by key, lists replaced).

use serde_json::{Map, Value};

use crate::objects::patch_meta::{self, FieldMeta};
use crate::objects::schema::{self, catalogue};

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER: &str = "$setElementOrder/";
const DELETE_PRIMITIVE: &str = "$deleteFromPrimitiveList/";

/// Why a strategic merge patch could not be applied: it is not of the shape
/// its directives and the schema's merge keys ask for.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct Malformed(pub String);

/// Where a value sits in the schema: the definition it is an instance of (for
/// the patch metadata of its fields) and its schema, either unknown when the
/// schema says nothing about it.
#[derive(Clone, Copy, Default)]
pub(crate) struct Ty {
    pub(crate) def: Option<&'static str>,
    pub(crate) schema: Option<&'static Value>,
}

impl Ty {
    /// The type of instances of definition `name`.
    pub(crate) fn definition(name: &str) -> Ty {
        match catalogue().definitions().get_key_value(name) {
            Some((k, v)) => Ty { def: Some(k.as_str()), schema: Some(v) },
            None => Ty::default(),
        }
    }

    fn of_schema(s: &'static Value) -> Ty {
        match schema::ref_name(s) {
            Some(name) => Ty::definition(name),
            None => Ty { def: None, schema: Some(s) },
        }
    }

    /// The type of field `key` of an object of this type, with its patch metadata.
    pub(crate) fn field(&self, key: &str) -> (Ty, Option<&'static FieldMeta>) {
        let Some(s) = self.schema else { return (Ty::default(), None) };
        if let Some(p) = s.get("properties").and_then(|p| p.get(key)) {
            return (Ty::of_schema(p), self.def.and_then(|d| patch_meta::lookup(d, key)));
        }
        match s.get("additionalProperties") {
            Some(a) if a.is_object() => (Ty::of_schema(a), None),
            _ => (Ty::default(), None),
        }
    }

    /// The type of the items of a list of this type.
    pub(crate) fn items(&self) -> Ty {
        self.schema.and_then(|s| s.get("items")).map(Ty::of_schema).unwrap_or_default()
    }
}

/// Apply the strategic merge patch `patch` to `target`, an instance of the
/// OpenAPI definition `definition` (`io.k8s.api.apps.v1.Deployment`).
pub fn strategic_merge(definition: &str, target: &Value, patch: &Value) -> Result<Value, Malformed> {
    let patch = patch.as_object().ok_or_else(|| malformed("a strategic merge patch must be an object"))?;
    let original = match target {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    // A patch that deletes the whole object leaves an empty one.
    Ok(Value::Object(merge_map(original, patch, Ty::definition(definition))?.unwrap_or_default()))
}

fn malformed(m: impl Into<String>) -> Malformed {
    Malformed(m.into())
}

/// Merge `patch` into the map `original`; `None` when the patch deletes the map.
fn merge_map(
    mut original: Map<String, Value>,
    patch: &Map<String, Value>,
    ty: Ty,
) -> Result<Option<Map<String, Value>>, Malformed> {
    match patch.get(PATCH) {
        None => {}
        Some(Value::String(d)) if d == "merge" => {}
        Some(Value::String(d)) if d == "replace" => return Ok(Some(without_directives(patch))),
        Some(Value::String(d)) if d == "delete" => return Ok(None),
        Some(other) => return Err(malformed(format!("unknown patch directive {other}"))),
    }
    if let Some(retain) = patch.get(RETAIN_KEYS) {
        let keys: Vec<&str> = retain
            .as_array()
            .and_then(|a| a.iter().map(Value::as_str).collect())
            .ok_or_else(|| malformed("$retainKeys must be a list of strings"))?;
        for k in patch.keys().filter(|k| !k.starts_with('$')) {
            if !patch[k].is_null() && !keys.contains(&k.as_str()) {
                return Err(malformed(format!("$retainKeys does not name {k}, which the patch sets")));
            }
        }
        original.retain(|k, _| keys.contains(&k.as_str()));
    }
    for (k, v) in patch {
        if let Some(field) = k.strip_prefix(DELETE_PRIMITIVE) {
            let drop = v.as_array().ok_or_else(|| malformed(format!("{k} must be a list")))?;
            if let Some(Value::Array(list)) = original.get_mut(field) {
                list.retain(|item| !drop.contains(item));
            }
        } else if k.starts_with('$') && !k.starts_with(SET_ORDER) && k != PATCH && k != RETAIN_KEYS {
            return Err(malformed(format!("unknown directive {k}")));
        }
    }
    for (k, v) in patch.iter().filter(|(k, _)| !k.starts_with('$')) {
        if v.is_null() {
            original.remove(k);
            continue;
        }
        let (child, meta) = ty.field(k);
        let order = patch.get(&format!("{SET_ORDER}{k}"));
        if let Some(merged) = merge_value(original.remove(k), v, child, meta, order)? {
            original.insert(k.clone(), merged);
        }
    }
    // An order for a list the patch does not otherwise touch.
    for (k, order) in patch.iter().filter_map(|(k, v)| Some((k.strip_prefix(SET_ORDER)?, v))) {
        if !patch.contains_key(k) {
            if let Some(Value::Array(list)) = original.get_mut(k) {
                let key = ty.field(k).1.map(|m| m.merge_key).unwrap_or("");
                let order = order_list(order, key)?;
                let server = list.clone();
                *list = normalize(std::mem::take(list), order, &server, key);
            }
        }
    }
    Ok(Some(original))
}

/// The patch's map with its directives taken out (and `null`s, which delete nothing there).
fn without_directives(patch: &Map<String, Value>) -> Map<String, Value> {
    patch.iter().filter(|(k, v)| !k.starts_with('$') && !v.is_null()).map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Merge the patch value `p` of one field into its current value `o`; `None`
/// when the field is to be removed.
fn merge_value(
    o: Option<Value>,
    p: &Value,
    ty: Ty,
    meta: Option<&FieldMeta>,
    order: Option<&Value>,
) -> Result<Option<Value>, Malformed> {
    match p {
        Value::Object(pm) => {
            let om = match o {
                Some(Value::Object(om)) => om,
                _ => Map::new(),
            };
            Ok(merge_map(om, pm, ty)?.map(Value::Object))
        }
        Value::Array(pl) if meta.is_some_and(FieldMeta::merges) => {
            let ol = match o {
                Some(Value::Array(ol)) => ol,
                _ => Vec::new(),
            };
            let key = meta.map(|m| m.merge_key).unwrap_or("");
            let server = ol.clone();
            let mut merged = merge_list(ol, pl, ty.items(), key)?;
            if let Some(order) = order {
                let order = order_list(order, key)?;
                check_order(pl, order, key)?;
                merged = normalize(merged, order, &server, key);
            }
            Ok(Some(Value::Array(merged)))
        }
        other => Ok(Some(other.clone())),
    }
}

/// The directive of a list item (`{"$patch": "delete", "name": "x"}`).
fn directive(item: &Value) -> Option<&str> {
    item.get(PATCH).and_then(Value::as_str)
}

/// Merge the patch list `patch` into the list `original` of a field with the
/// merge strategy: maps by their merge key, scalars as a set. The items the
/// patch names come in the patch's order, the others where they stood.
fn merge_list(mut original: Vec<Value>, patch: &[Value], items: Ty, key: &str) -> Result<Vec<Value>, Malformed> {
    if patch.iter().any(|i| directive(i) == Some("replace")) {
        return Ok(patch
            .iter()
            .filter(|i| directive(i).is_none())
            .map(|i| match i {
                Value::Object(m) => Value::Object(without_directives(m)),
                v => v.clone(),
            })
            .collect());
    }
    let server = original.clone();
    let mut named = Vec::new();
    for item in patch {
        let Value::Object(pm) = item else {
            if !key.is_empty() {
                return Err(malformed(format!("a list merged by \"{key}\" holds {item}, which is not an object")));
            }
            if !original.contains(item) {
                original.push(item.clone());
            }
            named.push(item.clone());
            continue;
        };
        if key.is_empty() {
            return Err(malformed("a list of objects without a merge key cannot be merged"));
        }
        let id = pm.get(key).ok_or_else(|| malformed(format!("{item} does not contain the merge key \"{key}\"")))?;
        match directive(item) {
            Some("delete") => {
                original.retain(|o| o.get(key) != Some(id));
                continue;
            }
            None => {}
            Some(other) => return Err(malformed(format!("unsupported patch directive \"{other}\" in a list item"))),
        }
        named.push(item.clone());
        let at = original.iter().position(|o| o.get(key) == Some(id));
        let base = match at.map(|i| &original[i]) {
            Some(Value::Object(om)) => om.clone(),
            _ => Map::new(),
        };
        let merged = merge_map(base, pm, items)?.map(Value::Object);
        match (at, merged) {
            (Some(i), Some(m)) => original[i] = m,
            (None, Some(m)) => original.push(m),
            (Some(i), None) => {
                original.remove(i);
            }
            (None, None) => {}
        }
    }
    Ok(normalize(original, &named, &server, key))
}

/// A `$setElementOrder` list (of merge-key maps, or of scalars).
fn order_list<'a>(order: &'a Value, key: &str) -> Result<&'a [Value], Malformed> {
    let list = order.as_array().ok_or_else(|| malformed("$setElementOrder must be a list"))?;
    if !key.is_empty() && list.iter().any(|o| o.get(key).is_none()) {
        return Err(malformed(format!("every item of $setElementOrder needs the merge key \"{key}\"")));
    }
    Ok(list)
}

/// What identifies a list item: its merge key's value, or itself.
fn identity(v: &Value, key: &str) -> Option<Value> {
    if key.is_empty() {
        Some(v.clone())
    } else {
        v.get(key).cloned()
    }
}

fn position(list: &[Value], v: &Value, key: &str) -> Option<usize> {
    let id = identity(v, key)?;
    list.iter().position(|o| identity(o, key).as_ref() == Some(&id))
}

/// The patch's items must come in the relative order of its `$setElementOrder`.
fn check_order(patch: &[Value], order: &[Value], key: &str) -> Result<(), Malformed> {
    let mut rest = order.iter();
    for item in patch.iter().filter(|i| directive(i).is_none()) {
        let id = identity(item, key);
        if !rest.any(|o| identity(o, key) == id) {
            return Err(malformed("the order of the patch list does not match its $setElementOrder"));
        }
    }
    Ok(())
}

/// Kubernetes' order of a merged list: the items `order` names, in that
/// order, with the others (the server's own) in their order in `server`,
/// each placed before the first named item it preceded there.
fn normalize(merged: Vec<Value>, order: &[Value], server: &[Value], key: &str) -> Vec<Value> {
    let (mut named, mut others): (Vec<Value>, Vec<Value>) =
        merged.into_iter().partition(|v| position(order, v, key).is_some());
    named.sort_by_key(|v| position(order, v, key));
    others.sort_by_key(|v| position(server, v, key).unwrap_or(usize::MAX));
    let mut out = Vec::with_capacity(named.len() + others.len());
    let (mut left, mut right) = (others.into_iter().peekable(), named.into_iter().peekable());
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (Some(l), Some(r)) => {
                matches!((position(server, l, key), position(server, r, key)), (Some(a), Some(b)) if a < b)
            }
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        out.extend(if take_left { left.next() } else { right.next() });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const POD: &str = "io.k8s.api.core.v1.Pod";
    const DEPLOYMENT: &str = "io.k8s.api.apps.v1.Deployment";

    fn pod_spec(spec: Value) -> Value {
        json!({"spec": spec})
    }

    #[test]
    fn strategic_merge_follows_kubernetes_semantics() {
        // (what, definition, target, patch, expected)
        let cases: Vec<(&str, &str, Value, Value, Value)> = vec![
            (
                "maps merge key by key, null deletes",
                POD,
                json!({"metadata": {"labels": {"a": "1", "b": "2"}}}),
                json!({"metadata": {"labels": {"a": null, "c": "3"}}}),
                json!({"metadata": {"labels": {"b": "2", "c": "3"}}}),
            ),
            (
                "containers merge by name: one image changes, the other container stays",
                POD,
                pod_spec(json!({"containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]})),
                pod_spec(json!({"containers": [{"name": "b", "image": "b:2"}]})),
                pod_spec(json!({"containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:2"}]})),
            ),
            (
                "a new container without an order comes first (the patch's items lead)",
                POD,
                pod_spec(json!({"containers": [{"name": "a", "image": "a:1"}]})),
                pod_spec(json!({"containers": [{"name": "c", "image": "c:1"}]})),
                pod_spec(json!({"containers": [{"name": "c", "image": "c:1"}, {"name": "a", "image": "a:1"}]})),
            ),
            (
                "the patch's items take the patch's order; another item goes before the first one it preceded",
                POD,
                pod_spec(json!({"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]})),
                pod_spec(json!({"containers": [{"name": "c", "image": "c"}, {"name": "a", "image": "a"}]})),
                pod_spec(
                    json!({"containers": [{"name": "b"}, {"name": "c", "image": "c"}, {"name": "a", "image": "a"}]}),
                ),
            ),
            (
                "$setElementOrder places a new item; a server-only item keeps its place after the one it followed",
                POD,
                pod_spec(json!({"containers": [{"name": "a", "image": "x"}, {"name": "sidecar"}]})),
                pod_spec(json!({"$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
                    "containers": [{"name": "b", "image": "b"}]})),
                pod_spec(
                    json!({"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "b"}, {"name": "sidecar"}]}),
                ),
            ),
            (
                "$patch: delete removes an item by its key",
                POD,
                pod_spec(json!({"containers": [{"name": "a"}, {"name": "b"}]})),
                pod_spec(json!({"containers": [{"name": "a", "$patch": "delete"}]})),
                pod_spec(json!({"containers": [{"name": "b"}]})),
            ),
            (
                "$patch: replace in a list replaces the list",
                POD,
                pod_spec(json!({"containers": [{"name": "a"}, {"name": "b"}]})),
                pod_spec(json!({"containers": [{"name": "z", "image": "z"}, {"$patch": "replace"}]})),
                pod_spec(json!({"containers": [{"name": "z", "image": "z"}]})),
            ),
            (
                "nested lists merge by their own keys (env by name, ports by containerPort)",
                POD,
                pod_spec(json!({"containers": [{"name": "a",
                    "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}],
                    "ports": [{"containerPort": 80}, {"containerPort": 443}]}]})),
                pod_spec(json!({"containers": [{"name": "a",
                    "env": [{"name": "Y", "value": "3"}, {"name": "X", "$patch": "delete"}],
                    "ports": [{"containerPort": 8080, "name": "alt"}]}]})),
                pod_spec(json!({"containers": [{"name": "a",
                    "env": [{"name": "Y", "value": "3"}],
                    "ports": [{"containerPort": 8080, "name": "alt"}, {"containerPort": 80}, {"containerPort": 443}]}]})),
            ),
            (
                "lists without a merge strategy are replaced whole (tolerations, command)",
                POD,
                pod_spec(json!({"tolerations": [{"key": "a"}], "containers": [{"name": "a", "command": ["x", "y"]}]})),
                pod_spec(json!({"tolerations": [{"key": "b"}], "containers": [{"name": "a", "command": ["z"]}]})),
                pod_spec(json!({"tolerations": [{"key": "b"}], "containers": [{"name": "a", "command": ["z"]}]})),
            ),
            (
                "finalizers (a merged list of scalars) take the union",
                POD,
                json!({"metadata": {"finalizers": ["a", "b"]}}),
                json!({"metadata": {"finalizers": ["b", "c"]}}),
                json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
            ),
            (
                "$deleteFromPrimitiveList removes values from a list of scalars",
                POD,
                json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
                json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}}),
                json!({"metadata": {"finalizers": ["a", "c"]}}),
            ),
            (
                "$setElementOrder orders the merged list; the server's own items follow",
                POD,
                pod_spec(json!({"containers": [{"name": "a"}, {"name": "b"}, {"name": "sidecar"}]})),
                pod_spec(json!({"$setElementOrder/containers": [{"name": "c"}, {"name": "b"}, {"name": "a"}],
                    "containers": [{"name": "c"}]})),
                pod_spec(json!({"containers": [{"name": "c"}, {"name": "b"}, {"name": "a"}, {"name": "sidecar"}]})),
            ),
            (
                "$setElementOrder alone reorders",
                POD,
                json!({"metadata": {"finalizers": ["a", "b"]}}),
                json!({"metadata": {"$setElementOrder/finalizers": ["b", "a"]}}),
                json!({"metadata": {"finalizers": ["b", "a"]}}),
            ),
            (
                "$retainKeys clears the keys it does not name (Recreate drops rollingUpdate)",
                DEPLOYMENT,
                json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}),
                json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
                json!({"spec": {"strategy": {"type": "Recreate"}}}),
            ),
            (
                "$retainKeys in a volume item switches its source",
                POD,
                pod_spec(json!({"volumes": [{"name": "v", "emptyDir": {}}, {"name": "w", "emptyDir": {}}]})),
                pod_spec(
                    json!({"volumes": [{"name": "v", "$retainKeys": ["name", "hostPath"], "hostPath": {"path": "/x"}}]}),
                ),
                pod_spec(
                    json!({"volumes": [{"name": "v", "hostPath": {"path": "/x"}}, {"name": "w", "emptyDir": {}}]}),
                ),
            ),
            (
                "$patch: replace on a map replaces it",
                DEPLOYMENT,
                json!({"spec": {"selector": {"matchLabels": {"a": "1", "b": "2"}}}}),
                json!({"spec": {"selector": {"matchLabels": {"$patch": "replace", "c": "3"}}}}),
                json!({"spec": {"selector": {"matchLabels": {"c": "3"}}}}),
            ),
            (
                "$patch: delete on a map removes it",
                DEPLOYMENT,
                json!({"spec": {"replicas": 2, "strategy": {"type": "Recreate"}}}),
                json!({"spec": {"strategy": {"$patch": "delete"}}}),
                json!({"spec": {"replicas": 2}}),
            ),
            (
                "fields the schema does not know merge as a JSON merge patch",
                POD,
                json!({"spec": {"x-unknown": {"a": [1, 2], "b": 1}}}),
                json!({"spec": {"x-unknown": {"a": [3], "b": null}}}),
                json!({"spec": {"x-unknown": {"a": [3]}}}),
            ),
            (
                "conditions merge by type",
                "io.k8s.api.apps.v1.Deployment",
                json!({"status": {"conditions": [{"type": "Available", "status": "False"}, {"type": "Progressing", "status": "True"}]}}),
                json!({"status": {"conditions": [{"type": "Available", "status": "True"}]}}),
                json!({"status": {"conditions": [{"type": "Available", "status": "True"}, {"type": "Progressing", "status": "True"}]}}),
            ),
            (
                "a deployment template's containers merge by name (kubectl set image)",
                DEPLOYMENT,
                json!({"spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]}}}}),
                json!({"spec": {"template": {"metadata": {"annotations": {"restartedAt": "now"}},
                    "spec": {"containers": [{"name": "a", "image": "a:2"}]}}}}),
                json!({"spec": {"replicas": 1, "template": {"metadata": {"annotations": {"restartedAt": "now"}},
                    "spec": {"containers": [{"name": "a", "image": "a:2"}, {"name": "b", "image": "b:1"}]}}}}),
            ),
            (
                "kubectl apply's three-way patch: orders, a deleted env var, a new image, an annotation",
                DEPLOYMENT,
                json!({"metadata": {"annotations": {"keep": "1"}}, "spec": {"template": {"spec": {"containers": [
                    {"name": "web", "image": "web:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                    {"name": "injected", "image": "proxy"}]}}}}),
                json!({"metadata": {"annotations": {"last-applied": "{}"}}, "spec": {"template": {"spec": {
                    "$setElementOrder/containers": [{"name": "web"}],
                    "containers": [{"name": "web", "image": "web:2",
                        "$setElementOrder/env": [{"name": "A"}], "env": [{"name": "B", "$patch": "delete"}]}]}}}}),
                json!({"metadata": {"annotations": {"keep": "1", "last-applied": "{}"}}, "spec": {"template": {"spec": {
                    "containers": [{"name": "web", "image": "web:2", "env": [{"name": "A", "value": "1"}]},
                        {"name": "injected", "image": "proxy"}]}}}}),
            ),
            (
                "ownerReferences merge by uid",
                POD,
                json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "x"}]}}),
                json!({"metadata": {"ownerReferences": [{"uid": "2", "name": "y"}]}}),
                json!({"metadata": {"ownerReferences": [{"uid": "2", "name": "y"}, {"uid": "1", "name": "x"}]}}),
            ),
            (
                "service ports merge by port",
                "io.k8s.api.core.v1.Service",
                json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}}),
                json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}),
                json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}, {"port": 443}]}}),
            ),
        ];
        for (what, def, target, patch, want) in cases {
            assert_eq!(strategic_merge(def, &target, &patch).unwrap(), want, "{what}");
        }
    }

    #[test]
    fn malformed_patches_are_refused() {
        let target = pod_spec(json!({"containers": [{"name": "a"}]}));
        let cases = [
            json!([1]),
            pod_spec(json!({"containers": [{"image": "no-name"}]})),
            pod_spec(json!({"containers": ["a"]})),
            // The patch list's order contradicts its $setElementOrder.
            pod_spec(json!({"$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
                "containers": [{"name": "b"}, {"name": "a"}]})),
            pod_spec(json!({"$setElementOrder/containers": [{"image": "x"}]})),
            json!({"$patch": "explode"}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}}),
            json!({"metadata": {"$retainKeys": "labels"}}),
            json!({"metadata": {"$retainKeys": ["name"], "labels": {"a": "b"}}}),
            json!({"$unknown": 1}),
        ];
        for patch in cases {
            assert!(matches!(strategic_merge(POD, &target, &patch), Err(Malformed(_))), "{patch} is accepted");
        }
    }
}
