//! Server-side apply: a manager (kubectl, a controller) sends the fields it
//! wants set, the server merges them into the live object by the schema
//! (lists of `listType=map` by their keys, sets as unions, atomic lists
//! whole) and remembers who set what in `metadata.managedFields`, so that a
//! manager that stops applying a field has it removed, and a manager that
//! would change a field another one owns is told so (409, causes
//! `FieldManagerConflict`) unless it forces.
//!
//! Field sets are kept as Kubernetes writes them (`fieldsType: FieldsV1`):
//! nested objects keyed by path elements `f:<field>`, `k:{<keys>}` (an item
//! of a list map) and `v:<value>` (an item of a set), `.` marking an inner
//! node that is itself owned. Writes that are not applies record their
//! changes as `Update` entries through [`record_update`].
//!
//! The merge and the bookkeeping are pure ([`apply_config`],
//! [`record_update`]); [`Registry::apply`] reads, merges and writes with the
//! usual compare-and-swap and admission (through `create` or `update`).

use std::collections::BTreeSet;
use std::fmt;

use serde_json::{json, Map, Value};

use super::strategic::Ty;
use super::{Origin, Registry, RegistryError};
use crate::objects::patch_meta::{self, FieldMeta};
use crate::objects::{meta_str, schema, Kind};

/// How often an apply is tried again when another write got in between.
const APPLY_RETRIES: usize = 5;

/// One path: its elements as fieldsV1 spells them (`f:spec`, `k:{"name":"a"}`).
type Path = Vec<String>;

/// The fields a manager owns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet(BTreeSet<Path>);

/// A field another manager owns and an apply would change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldConflict {
    /// The manager that owns it.
    pub manager: String,
    /// The apiVersion that manager wrote it with.
    pub api_version: String,
    /// The field, as Kubernetes prints paths (`.spec.template.spec.containers[name="a"].image`).
    pub field: String,
}

/// An apply refused because it would change fields other managers own.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Conflicts {
    /// Every conflicting field.
    pub conflicts: Vec<FieldConflict>,
}

impl FieldConflict {
    /// Who owns the field, as Kubernetes says it.
    fn owner(&self) -> String {
        format!("conflict with \"{}\" using {}", self.manager, self.api_version)
    }
}

impl fmt::Display for Conflicts {
    /// Kubernetes' words: `Apply failed with 1 conflict: conflict with "m" using apps/v1: .spec.replicas`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.conflicts.len();
        write!(f, "Apply failed with {n} conflict{}: ", if n == 1 { "" } else { "s" })?;
        for (i, c) in self.conflicts.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{}: {}", c.owner(), c.field)?;
        }
        Ok(())
    }
}

impl Conflicts {
    /// The causes of Kubernetes' 409 `Status` (reason `FieldManagerConflict`).
    pub fn causes(&self) -> Vec<Value> {
        self.conflicts
            .iter()
            .map(|c| json!({"reason": "FieldManagerConflict", "message": c.owner(), "field": c.field}))
            .collect()
    }
}

/// The value a list-map key field has when an item leaves it out (Kubernetes'
/// schema defaults of key fields: `protocol` of ports).
fn key_default(field: &str) -> Option<Value> {
    (field == "protocol").then(|| json!("TCP"))
}

/// The `k:{…}` element of `item` in a list keyed by `keys`.
fn key_element(item: &Value, keys: &[&str]) -> String {
    let mut sorted: Vec<&str> = keys.to_vec();
    sorted.sort_unstable();
    let fields: Map<String, Value> = sorted
        .into_iter()
        .filter_map(|k| Some((k.to_string(), item.get(k).cloned().or_else(|| key_default(k))?)))
        .collect();
    format!("k:{}", Value::Object(fields))
}

/// Whether `item` is the list item a `k:{…}` element names.
fn matches_key(item: &Value, keys: &Map<String, Value>) -> bool {
    keys.iter().all(|(k, v)| item.get(k).cloned().or_else(|| key_default(k)).as_ref() == Some(v))
}

fn list_type(meta: Option<&FieldMeta>) -> &'static str {
    meta.map(|m| m.list_type).unwrap_or("atomic")
}

/// Fields no manager owns: identity and server-kept metadata, and the status
/// (owned through the status subresource, which apply here does not serve).
fn ignored(path: &[String]) -> bool {
    match path {
        [first, ..] if first == "f:apiVersion" || first == "f:kind" || first == "f:status" => true,
        [meta, field, ..] if meta == "f:metadata" => matches!(
            field.as_str(),
            "f:name"
                | "f:namespace"
                | "f:uid"
                | "f:resourceVersion"
                | "f:generation"
                | "f:creationTimestamp"
                | "f:deletionTimestamp"
                | "f:deletionGracePeriodSeconds"
                | "f:managedFields"
                | "f:selfLink"
        ),
        _ => false,
    }
}

impl FieldSet {
    /// The fields `obj` (an instance of `ty`) sets.
    fn of(ty: Ty, obj: &Value) -> FieldSet {
        let mut set = FieldSet::default();
        if let Value::Object(m) = obj {
            walk(ty, m, &mut Vec::new(), &mut set.0);
        }
        set.0.retain(|p| !ignored(p));
        set
    }

    /// The set a fieldsV1 object describes.
    pub fn from_v1(v: &Value) -> FieldSet {
        fn read(node: &Map<String, Value>, path: &mut Path, out: &mut BTreeSet<Path>) {
            if (node.is_empty() || node.contains_key(".")) && !path.is_empty() {
                out.insert(path.clone());
            }
            for (k, child) in node.iter().filter(|(k, _)| *k != ".") {
                path.push(k.clone());
                match child {
                    Value::Object(m) => read(m, path, out),
                    _ => {
                        out.insert(path.clone());
                    }
                }
                path.pop();
            }
        }
        let mut set = FieldSet::default();
        if let Value::Object(m) = v {
            if !m.is_empty() {
                read(m, &mut Vec::new(), &mut set.0);
            }
        }
        set
    }

    /// The fieldsV1 object of this set.
    pub fn to_v1(&self) -> Value {
        let mut root = Map::new();
        for path in &self.0 {
            let mut node = &mut root;
            for e in path {
                node = node.entry(e.clone()).or_insert_with(|| json!({})).as_object_mut().expect("nodes are objects");
            }
        }
        // An owned node with children says so with ".".
        for path in &self.0 {
            let mut node = &mut root;
            for e in path {
                node = node.get_mut(e).and_then(Value::as_object_mut).expect("inserted above");
            }
            if !node.is_empty() && !node.contains_key(".") {
                node.insert(".".into(), json!({}));
            }
        }
        Value::Object(root)
    }

    /// Whether no field is in the set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether the set holds `path` or a field under it.
    fn covers(&self, path: &[String]) -> bool {
        self.0.iter().any(|p| p.starts_with(path))
    }
}

fn walk(ty: Ty, obj: &Map<String, Value>, path: &mut Path, out: &mut BTreeSet<Path>) {
    for (k, v) in obj {
        if v.is_null() {
            continue;
        }
        let (child, meta) = ty.field(k);
        path.push(format!("f:{k}"));
        match v {
            Value::Object(m) if !m.is_empty() && !patch_meta::atomic_value(ty.def, k, child.def) => {
                walk(child, m, path, out)
            }
            Value::Array(items) if list_type(meta) == "map" => {
                let keys = meta.map(|m| m.map_keys).unwrap_or(&[]);
                for item in items {
                    path.push(key_element(item, keys));
                    out.insert(path.clone());
                    if let Value::Object(m) = item {
                        walk(child.items(), m, path, out);
                    }
                    path.pop();
                }
            }
            Value::Array(items) if list_type(meta) == "set" => {
                for item in items {
                    path.push(format!("v:{item}"));
                    out.insert(path.clone());
                    path.pop();
                }
            }
            _ => {
                out.insert(path.clone());
            }
        }
        path.pop();
    }
}

/// The value at `path` in `obj`.
fn value_at<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = obj;
    for e in path {
        cur = step(cur, e)?;
    }
    Some(cur)
}

fn step<'a>(cur: &'a Value, e: &str) -> Option<&'a Value> {
    if let Some(f) = e.strip_prefix("f:") {
        return cur.get(f);
    }
    let list = cur.as_array()?;
    if let Some(k) = e.strip_prefix("k:") {
        let keys: Map<String, Value> = serde_json::from_str(k).ok()?;
        return list.iter().find(|i| matches_key(i, &keys));
    }
    let v: Value = serde_json::from_str(e.strip_prefix("v:")?).ok()?;
    list.iter().find(|i| **i == v)
}

/// Remove the field at `path` from `obj` (nothing if it is not there); maps
/// the removal leaves empty go too.
fn remove_at(obj: &mut Value, path: &[String]) {
    let Some((last, parent)) = path.split_last() else { return };
    let Some(cur) = lookup_mut(obj, parent) else { return };
    if let Some(f) = last.strip_prefix("f:") {
        if let Some(m) = cur.as_object_mut() {
            m.remove(f);
        }
    } else if let Some(found) = step(cur, last).cloned() {
        if let Some(l) = cur.as_array_mut() {
            l.retain(|i| *i != found);
        }
    }
    if cur.as_object().is_some_and(Map::is_empty) && parent.last().is_some_and(|e| e.starts_with("f:")) {
        remove_at(obj, parent);
    }
}

fn lookup_mut<'a>(obj: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    let mut cur = obj;
    for e in path {
        cur = if let Some(f) = e.strip_prefix("f:") {
            cur.get_mut(f)?
        } else {
            let found = step(cur, e)?.clone();
            cur.as_array_mut()?.iter_mut().find(|i| **i == found)?
        };
    }
    Some(cur)
}

/// A path as Kubernetes prints it: `.spec.ports[port=80,protocol="TCP"].name`.
fn display(path: &[String]) -> String {
    let mut s = String::new();
    for e in path {
        if let Some(f) = e.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = e.strip_prefix("k:") {
            let keys: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
            let inner: Vec<String> = keys.iter().map(|(k, v)| format!("{k}={v}")).collect();
            s.push_str(&format!("[{}]", inner.join(",")));
        } else if let Some(v) = e.strip_prefix("v:") {
            s.push_str(&format!("[={v}]"));
        }
    }
    s
}

/// Merge the applied configuration into the live object by the schema.
fn merge_applied(ty: Ty, live: &Value, applied: &Value) -> Value {
    let (Value::Object(lm), Value::Object(am)) = (live, applied) else {
        return applied.clone();
    };
    let mut out = lm.clone();
    for (k, av) in am {
        if av.is_null() {
            continue;
        }
        let (child, meta) = ty.field(k);
        let merged = match (out.get(k), av) {
            (Some(Value::Array(ll)), Value::Array(al)) if list_type(meta) == "map" => {
                let keys = meta.map(|m| m.map_keys).unwrap_or(&[]);
                let mut list = ll.clone();
                for item in al {
                    let id = key_element(item, keys);
                    match list.iter().position(|l| key_element(l, keys) == id) {
                        Some(i) => list[i] = merge_applied(child.items(), &list[i], item),
                        None => list.push(item.clone()),
                    }
                }
                Value::Array(list)
            }
            (Some(Value::Array(ll)), Value::Array(al)) if list_type(meta) == "set" => {
                let mut list = ll.clone();
                list.extend(al.iter().filter(|i| !ll.contains(i)).cloned());
                Value::Array(list)
            }
            (Some(lv @ Value::Object(_)), Value::Object(_)) if !patch_meta::atomic_value(ty.def, k, child.def) => {
                merge_applied(child, lv, av)
            }
            _ => av.clone(),
        };
        out.insert(k.clone(), merged);
    }
    Value::Object(out)
}

/// One entry of `metadata.managedFields`.
struct Entry {
    raw: Map<String, Value>,
    fields: FieldSet,
}

impl Entry {
    fn is(&self, manager: &str, operation: &str) -> bool {
        self.raw.get("manager").and_then(Value::as_str) == Some(manager)
            && self.raw.get("operation").and_then(Value::as_str) == Some(operation)
            && self.raw.get("subresource").and_then(Value::as_str).unwrap_or("").is_empty()
    }

    fn field(&self, name: &str) -> String {
        self.raw.get(name).and_then(Value::as_str).unwrap_or("").to_string()
    }
}

fn entries(obj: &Value) -> Vec<Entry> {
    let list = obj.pointer("/metadata/managedFields").and_then(Value::as_array).cloned().unwrap_or_default();
    list.into_iter()
        .filter_map(|e| match e {
            Value::Object(raw) => {
                let fields = FieldSet::from_v1(raw.get("fieldsV1").unwrap_or(&Value::Null));
                Some(Entry { raw, fields })
            }
            _ => None,
        })
        .collect()
}

/// Write `list` as `obj`'s managedFields (entries owning nothing are dropped).
fn store(obj: &mut Value, list: Vec<Entry>) {
    let list: Vec<Value> = list
        .into_iter()
        .filter(|e| !e.fields.is_empty())
        .map(|mut e| {
            e.raw.insert("fieldsType".into(), json!("FieldsV1"));
            e.raw.insert("fieldsV1".into(), e.fields.to_v1());
            Value::Object(e.raw)
        })
        .collect();
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else { return };
    if list.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert("managedFields".into(), Value::Array(list));
    }
}

/// Set `manager`'s entry for `operation` to `fields`: its time changes only
/// when its fields do.
fn set_entry(list: &mut Vec<Entry>, obj: &Value, manager: &str, operation: &str, fields: FieldSet, now: &str) {
    let api_version = obj.get("apiVersion").cloned().unwrap_or(Value::Null);
    match list.iter_mut().find(|e| e.is(manager, operation)) {
        Some(e) => {
            if e.fields != fields {
                e.raw.insert("time".into(), json!(now));
            }
            e.raw.insert("apiVersion".into(), api_version);
            e.fields = fields;
        }
        None => {
            let raw = json!({"manager": manager, "operation": operation, "apiVersion": api_version, "time": now});
            let Value::Object(raw) = raw else { unreachable!("a literal object") };
            list.push(Entry { raw, fields });
        }
    }
}

/// Apply `applied` (an instance of definition `definition`) as `manager` to
/// the live object: the merged object with its managedFields, or the fields
/// other managers own that it would change (taken from them with `force`).
/// `now` is the RFC 3339 time written into a changed entry.
pub fn apply_config(
    definition: &str,
    live: &Value,
    applied: &Value,
    manager: &str,
    force: bool,
    now: &str,
) -> Result<Value, Conflicts> {
    let ty = Ty::definition(definition);
    let wanted = FieldSet::of(ty, applied);
    let mut list = entries(live);
    let mut conflicts = Vec::new();
    for e in list.iter_mut().filter(|e| !e.is(manager, "Apply")) {
        let clashing: Vec<Path> =
            e.fields.0.intersection(&wanted.0).filter(|p| changes(live, applied, p)).cloned().collect();
        for p in clashing {
            if force {
                e.fields.0.remove(&p);
            } else {
                conflicts.push(FieldConflict {
                    manager: e.field("manager"),
                    api_version: e.field("apiVersion"),
                    field: display(&p),
                });
            }
        }
    }
    if !conflicts.is_empty() {
        return Err(Conflicts { conflicts });
    }
    let mut merged = merge_applied(ty, live, applied);
    let before = list.iter().find(|e| e.is(manager, "Apply")).map(|e| e.fields.clone()).unwrap_or_default();
    // Fields this manager applied before and no longer applies go, unless
    // someone else owns them (or the new configuration sets under them).
    let mut dropped: Vec<&Path> = before
        .0
        .difference(&wanted.0)
        .filter(|p| !wanted.covers(p) && !list.iter().any(|e| !e.is(manager, "Apply") && e.fields.covers(p)))
        .collect();
    // An item before its fields (which then are gone with it).
    dropped.sort_by_key(|p| p.len());
    for p in dropped {
        remove_at(&mut merged, p);
    }
    set_entry(&mut list, applied, manager, "Apply", wanted, now);
    store(&mut merged, list);
    Ok(merged)
}

/// Whether writing the applied value at `path` changes the live object: a
/// field's value differs, or a list item is not there yet.
fn changes(live: &Value, applied: &Value, path: &[String]) -> bool {
    let is_item = path.last().is_some_and(|e| !e.starts_with("f:"));
    match (value_at(live, path), value_at(applied, path)) {
        (Some(_), Some(_)) if is_item => false,
        (l, a) => l != a,
    }
}

/// Record a write that is not an apply (create, update, patch) by `manager`
/// in `after`'s managedFields, before it is written: the fields it changed
/// from `before` (`Value::Null` for a create) become its `Update` entry's and
/// leave other managers; removed fields leave every manager.
pub fn record_update(manager: &str, before: &Value, after: &mut Value) {
    record_update_at(manager, before, after, &now());
}

/// [`record_update`] at the RFC 3339 time `now`.
pub fn record_update_at(manager: &str, before: &Value, after: &mut Value, now: &str) {
    let Some(kind) = Kind::of(after) else { return };
    let ty = Ty::definition(schema::definition_of(kind));
    let old = FieldSet::of(ty, before);
    let new = FieldSet::of(ty, after);
    let changed: BTreeSet<Path> = new.0.iter().filter(|p| changes(before, after, p)).cloned().collect();
    let removed: Vec<&Path> = old.0.difference(&new.0).collect();
    // The request's managedFields when it sent some, else the stored ones.
    let mut list = if after.pointer("/metadata/managedFields").is_some() { entries(after) } else { entries(before) };
    let mut mine = list.iter().find(|e| e.is(manager, "Update")).map(|e| e.fields.clone()).unwrap_or_default();
    for e in list.iter_mut() {
        e.fields.0.retain(|p| !changed.contains(p) && !removed.iter().any(|r| p.starts_with(r)));
    }
    mine.0.retain(|p| !removed.iter().any(|r| p.starts_with(r)));
    mine.0.extend(changed);
    if !mine.is_empty() || list.iter().any(|e| e.is(manager, "Update")) {
        set_entry(&mut list, after, manager, "Update", mine, now);
    }
    store(after, list);
}

/// The current time as managedFields write it.
fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// An applied configuration made ready to merge: of the request's kind, with
/// the name and namespace of the request (filled in when left out), without
/// managedFields (those are the server's).
pub(super) fn applied_config(
    kind: &'static Kind,
    ns: &str,
    name: &str,
    mut body: Value,
    manager: &str,
) -> Result<Value, RegistryError> {
    if manager.is_empty() {
        return Err(RegistryError::BadRequest("fieldManager is required for apply patches".into()));
    }
    if Kind::of(&body) != Some(kind) {
        return Err(RegistryError::BadRequest(format!(
            "the applied object must be of apiVersion {} and kind {}",
            kind.api_version, kind.kind
        )));
    }
    if !body.get("metadata").is_some_and(Value::is_object) {
        body["metadata"] = json!({});
    }
    match meta_str(&body, "name") {
        "" => body["metadata"]["name"] = json!(name),
        n if n != name => {
            return Err(RegistryError::BadRequest(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )))
        }
        _ => {}
    }
    if kind.namespaced {
        match meta_str(&body, "namespace") {
            "" => body["metadata"]["namespace"] = json!(ns),
            n if n != ns => {
                return Err(RegistryError::BadRequest(format!(
                    "the namespace of the object ({n}) does not match the namespace on the request ({ns})"
                )))
            }
            _ => {}
        }
    }
    if let Some(m) = body["metadata"].as_object_mut() {
        m.remove("managedFields");
    }
    Ok(body)
}

/// What an apply of `body` stores: merged into `live`, or (no live object)
/// the applied configuration itself with its manager's managedFields.
pub(super) fn applied(
    definition: &str,
    live: Option<&Value>,
    body: &Value,
    manager: &str,
    force: bool,
    now: &str,
) -> Result<Value, RegistryError> {
    match live {
        Some(live) => {
            apply_config(definition, live, body, manager, force, now).map_err(RegistryError::FieldManagerConflict)
        }
        None => {
            let owned = apply_config(definition, &json!({"metadata": {}}), body, manager, force, now)
                .map_err(RegistryError::FieldManagerConflict)?;
            let mut obj = body.clone();
            obj["metadata"]["managedFields"] = owned["metadata"]["managedFields"].clone();
            Ok(obj)
        }
    }
}

impl Registry {
    /// Server-side apply of `body` (a full or partial object of `kind`) by
    /// `manager`: creates the object (through admission) if it does not
    /// exist, else merges `body` into it by the schema and writes it as a
    /// user's update. Conflicts with fields other managers own fail with
    /// [`RegistryError::FieldManagerConflict`] unless `force`. Applying the
    /// same configuration again writes nothing.
    pub async fn apply(
        &self,
        kind: &'static Kind,
        namespace: &str,
        name: &str,
        body: Value,
        manager: &str,
        force: bool,
    ) -> Result<Value, RegistryError> {
        let ns = kind.namespace_or_default(namespace);
        let body = applied_config(kind, ns, name, body, manager)?;
        let definition = schema::definition_of(kind);
        for _ in 0..APPLY_RETRIES {
            let Some(live) = self.get(kind, ns, name)? else {
                match self.create(applied(definition, None, &body, manager, force, &now())?).await {
                    Err(RegistryError::AlreadyExists { .. }) => continue,
                    other => return other,
                }
            };
            let merged = applied(definition, Some(&live), &body, manager, force, &now())?;
            if merged == live {
                return Ok(live);
            }
            // Another write (or a delete) got in between: merge into what is there now.
            match self.update(merged, Origin::User).await {
                Err(RegistryError::Conflict { .. } | RegistryError::NotFound { .. })
                    if body.pointer("/metadata/resourceVersion").is_none() =>
                {
                    continue
                }
                other => return other,
            }
        }
        Err(RegistryError::conflict(kind, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEPLOYMENT: &str = "io.k8s.api.apps.v1.Deployment";
    const POD: &str = "io.k8s.api.core.v1.Pod";
    const NOW: &str = "2026-01-01T00:00:00Z";
    const LATER: &str = "2026-01-01T00:01:00Z";

    fn deployment(replicas: u32, containers: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": containers}}}})
    }

    fn managed(obj: &Value) -> Vec<(String, String, Value)> {
        obj["metadata"]["managedFields"]
            .as_array()
            .map(|l| {
                l.iter()
                    .map(|e| {
                        (
                            e["manager"].as_str().unwrap().into(),
                            e["operation"].as_str().unwrap().into(),
                            e["fieldsV1"].clone(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn field_sets_are_written_as_kubernetes_writes_them() {
        let obj = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "1"}, "finalizers": ["x"]},
            "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80}]}], "tolerations": [{"key": "k"}]},
            "status": {"phase": "Running"}});
        let set = FieldSet::of(Ty::definition("io.k8s.api.core.v1.Pod"), &obj);
        let want = json!({
            "f:metadata": {"f:labels": {"f:a": {}}, "f:finalizers": {"v:\"x\"": {}}},
            "f:spec": {
                "f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:name": {}, "f:image": {},
                    "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}}},
                "f:tolerations": {}
            }
        });
        assert_eq!(set.to_v1(), want);
        assert_eq!(FieldSet::from_v1(&want), set, "fieldsV1 reads back");
    }

    #[test]
    fn apply_merges_owns_removes_and_conflicts() {
        let live = deployment(1, json!([{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]));
        // A first apply by "kubectl" of replicas and container a's image.
        let mine = deployment(3, json!([{"name": "a", "image": "a:2"}]));
        let one = apply_config(DEPLOYMENT, &live, &mine, "kubectl", false, NOW).unwrap();
        assert_eq!(one["spec"]["replicas"], 3);
        assert_eq!(
            one["spec"]["template"]["spec"]["containers"],
            json!([{"name": "a", "image": "a:2"}, {"name": "b", "image": "b:1"}])
        );
        assert_eq!(managed(&one).len(), 1);
        // The same apply again changes nothing, not even the entry's time.
        assert_eq!(apply_config(DEPLOYMENT, &one, &mine, "kubectl", false, LATER).unwrap(), one);
        // Another manager setting replicas to another value conflicts...
        let theirs = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 5}});
        let e = apply_config(DEPLOYMENT, &one, &theirs, "hpa", false, LATER).unwrap_err();
        let want =
            FieldConflict { manager: "kubectl".into(), api_version: "apps/v1".into(), field: ".spec.replicas".into() };
        assert_eq!(e.conflicts, vec![want]);
        assert_eq!(
            e.to_string(),
            "Apply failed with 1 conflict: conflict with \"kubectl\" using apps/v1: .spec.replicas"
        );
        assert_eq!(e.causes()[0]["reason"], "FieldManagerConflict");
        // ...to the same value shares it...
        let same = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 3}});
        let shared = apply_config(DEPLOYMENT, &one, &same, "hpa", false, LATER).unwrap();
        assert_eq!(managed(&shared).len(), 2);
        // ...and forced takes it over.
        let forced = apply_config(DEPLOYMENT, &one, &theirs, "hpa", true, LATER).unwrap();
        assert_eq!(forced["spec"]["replicas"], 5);
        let owners = managed(&forced);
        assert!(owners[0].2["f:spec"].get("f:replicas").is_none(), "kubectl lost replicas: {owners:?}");
        assert!(owners[1].2["f:spec"].get("f:replicas").is_some());
        // kubectl stops applying its labels and replicas: the labels go (nobody
        // else owns them), replicas stays (hpa owns it now).
        let mut less = deployment(3, json!([{"name": "a", "image": "a:2"}]));
        less["metadata"].as_object_mut().unwrap().remove("labels");
        less["spec"].as_object_mut().unwrap().remove("replicas");
        let after = apply_config(DEPLOYMENT, &forced, &less, "kubectl", false, LATER).unwrap();
        assert_eq!(after["metadata"].get("labels"), None, "{after}");
        assert_eq!(after["spec"]["replicas"], 5);
        // Container a leaves the applied list: it goes, b (nobody's) stays.
        let none = deployment(3, json!([]));
        let after = apply_config(DEPLOYMENT, &one, &none, "kubectl", false, LATER).unwrap();
        assert_eq!(after["spec"]["template"]["spec"]["containers"], json!([{"name": "b", "image": "b:1"}]));
    }

    #[test]
    fn updates_take_the_fields_they_change() {
        let mut live = deployment(1, json!([{"name": "a", "image": "a:1"}]));
        live["metadata"]["labels"]["tier"] = json!("front");
        let applied = apply_config(DEPLOYMENT, &live, &live, "kubectl", false, NOW).unwrap();
        let mut edited = applied.clone();
        edited["spec"]["replicas"] = json!(4);
        edited["metadata"]["labels"].as_object_mut().unwrap().remove("app");
        record_update_at("kubectl-edit", &applied, &mut edited, LATER);
        let owners = managed(&edited);
        assert_eq!(owners[1].0, "kubectl-edit");
        assert_eq!(owners[1].1, "Update");
        assert_eq!(owners[1].2, json!({"f:spec": {"f:replicas": {}}}));
        assert!(owners[0].2["f:spec"].get("f:replicas").is_none());
        assert_eq!(owners[0].2["f:metadata"], json!({"f:labels": {"f:tier": {}}}), "removed fields leave their owner");
        // kubectl applying replicas again now conflicts with the editor.
        let e = apply_config(DEPLOYMENT, &edited, &live, "kubectl", false, LATER).unwrap_err();
        assert_eq!(e.conflicts[0].manager, "kubectl-edit");
    }

    #[test]
    fn selectors_and_node_selectors_are_owned_and_replaced_whole() {
        let live = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"a": "1"}}, "template": {"spec": {"nodeSelector": {"zone": "x"}}}}});
        let applied = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"b": "2"}}, "template": {"spec": {"nodeSelector": {"disk": "ssd"}}}}});
        let got = apply_config(DEPLOYMENT, &live, &applied, "kubectl", false, NOW).unwrap();
        assert_eq!(got["spec"]["selector"], json!({"matchLabels": {"b": "2"}}));
        assert_eq!(got["spec"]["template"]["spec"]["nodeSelector"], json!({"disk": "ssd"}));
        let fields = &got["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"];
        assert_eq!(fields["f:selector"], json!({}));
        assert_eq!(fields["f:template"]["f:spec"]["f:nodeSelector"], json!({}));
    }

    #[test]
    fn a_create_is_recorded_and_sets_merge_as_unions() {
        let mut created = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "finalizers": ["a"]},
            "spec": {"containers": [{"name": "c", "image": "i"}]}});
        record_update_at("kubectl-create", &Value::Null, &mut created, NOW);
        assert_eq!(
            created["metadata"]["managedFields"][0]["fieldsV1"]["f:metadata"],
            json!({"f:finalizers": {"v:\"a\"": {}}})
        );
        // An applier adding finalizer b keeps a (the creator's), and drops
        // only its own b when it stops applying it.
        let with_b = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "finalizers": ["b"]}});
        let one = apply_config(POD, &created, &with_b, "ctl", false, NOW).unwrap();
        assert_eq!(one["metadata"]["finalizers"], json!(["a", "b"]));
        let without = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}});
        let two = apply_config(POD, &one, &without, "ctl", false, NOW).unwrap();
        assert_eq!(two["metadata"]["finalizers"], json!(["a"]));
        assert_eq!(managed(&two).len(), 1, "an entry owning nothing is dropped");
    }

    #[test]
    fn paths_print_as_kubernetes_prints_them() {
        let p: Path =
            vec!["f:spec".into(), "f:ports".into(), "k:{\"port\":80,\"protocol\":\"TCP\"}".into(), "f:name".into()];
        assert_eq!(display(&p), ".spec.ports[port=80,protocol=\"TCP\"].name");
    }
}
