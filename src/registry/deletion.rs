//! How a delete is carried out: at once, or by marking the object with a
//! deletionTimestamp for someone to finish — the kubelet (a pod on a node),
//! the namespace controller (a namespace), the garbage collector (Orphan and
//! Foreground propagation) or whoever owns a finalizer.

use serde_json::{json, Value};

use clusterd_raft::{Compare, Op, Txn};

use super::{Registry, RegistryError};
use crate::objects::{being_deleted, key_of, kinds, meta_str, with_resource_version, Kind};

/// The finalizer of Foreground propagation.
pub const FOREGROUND: &str = "foregroundDeletion";
/// The finalizer of Orphan propagation.
pub const ORPHAN: &str = "orphan";

/// What happens to an object's dependents when it is deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Propagation {
    /// The object goes now; the garbage collector removes its dependents after.
    #[default]
    Background,
    /// The dependents go first, then the object.
    Foreground,
    /// The dependents stay, freed of their owner.
    Orphan,
}

impl Propagation {
    /// Kubernetes' spelling (`""` is the default, Background).
    pub fn parse(policy: &str) -> Result<Self, RegistryError> {
        match policy {
            "" | "Background" => Ok(Propagation::Background),
            "Foreground" => Ok(Propagation::Foreground),
            "Orphan" => Ok(Propagation::Orphan),
            other => Err(RegistryError::BadRequest(format!(
                "propagationPolicy: Unsupported value: \"{other}\": supported values: \"Background\", \"Foreground\", \"Orphan\""
            ))),
        }
    }
}

/// How to delete.
#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    /// Seconds a pod gets to stop (None: its spec's terminationGracePeriodSeconds).
    pub grace_period_seconds: Option<i64>,
    /// What happens to dependents.
    pub propagation: Propagation,
    /// Delete only this version (a precondition); None: whatever is current.
    pub resource_version: Option<u64>,
    /// Delete only the object with this uid; None: whichever has the name.
    pub uid: Option<String>,
}

fn add_finalizer(obj: &mut Value, f: &str) {
    let meta = obj["metadata"].as_object_mut().expect("metadata");
    let list = meta.entry("finalizers").or_insert(json!([]));
    if let Some(a) = list.as_array_mut() {
        if !a.iter().any(|x| x == f) {
            a.push(json!(f));
        }
    }
}

/// For a pod on a node: the object marked for graceful deletion (the kubelet
/// finishes the job), or None when it should go at once.
pub fn graceful_delete(obj: &Value, grace: Option<i64>, now: chrono::DateTime<chrono::Utc>) -> Option<Value> {
    let bound = !crate::objects::pod::node_name(obj).is_empty();
    let terminal = crate::objects::pod::finished(obj);
    let spec_grace = obj.pointer("/spec/terminationGracePeriodSeconds").and_then(Value::as_i64).unwrap_or(30);
    let grace = grace.unwrap_or(spec_grace).max(0);
    if !bound || grace == 0 {
        return None;
    }
    let mut obj = obj.clone();
    let current = obj.pointer("/metadata/deletionGracePeriodSeconds").and_then(Value::as_i64);
    // Terminal pods have nothing left to stop: a short grace lets the kubelet clean up.
    let grace = if terminal { grace.min(1) } else { grace };
    if current.is_some_and(|c| c <= grace) {
        return Some(obj);
    }
    obj["metadata"]["deletionTimestamp"] = json!(crate::util::rfc3339(now + chrono::Duration::seconds(grace)));
    obj["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
    Some(obj)
}

/// The object to write instead of removing it, or None to remove it now.
pub fn plan(
    kind: &Kind,
    obj: &Value,
    grace: Option<i64>,
    policy: Propagation,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Value> {
    let stamp = crate::util::rfc3339(now);
    let already = being_deleted(obj);
    let mut marked = obj.clone();
    let mark = |m: &mut Value| {
        if !already {
            m["metadata"]["deletionTimestamp"] = json!(stamp);
            m["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        }
    };
    if *kind == kinds::NAMESPACE {
        mark(&mut marked);
        marked["spec"]["finalizers"] = json!(["kubernetes"]);
        marked["status"]["phase"] = json!("Terminating");
        return Some(marked);
    }
    if *kind == kinds::POD && policy == Propagation::Background {
        return graceful_delete(obj, grace, now);
    }
    let finalizer = match policy {
        Propagation::Orphan => Some(ORPHAN),
        Propagation::Foreground => Some(FOREGROUND),
        Propagation::Background => None,
    };
    if let Some(f) = finalizer {
        mark(&mut marked);
        add_finalizer(&mut marked, f);
        return Some(marked);
    }
    let has_finalizers = obj.pointer("/metadata/finalizers").and_then(Value::as_array).is_some_and(|f| !f.is_empty());
    if has_finalizers {
        mark(&mut marked);
        return Some(marked);
    }
    None
}

impl Registry {
    /// Delete an object as the API does: a pod on a node, a namespace, an
    /// object with finalizers or a non-Background propagation is marked with a
    /// deletionTimestamp for its finisher; anything else goes now. Returns the
    /// object's last state (marked, or as it was removed).
    pub async fn delete(
        &self,
        kind: &'static Kind,
        namespace: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Value, RegistryError> {
        let key = kind.key(kind.namespace_or_default(namespace), name);
        let existing = self.reader().get(&key)?.ok_or_else(|| RegistryError::not_found(kind, name))?;
        if opts.resource_version.is_some_and(|rv| rv != existing.mod_revision) {
            return Err(RegistryError::conflict(kind, name));
        }
        let current: Value = serde_json::from_slice(&existing.value)?;
        if opts.uid.as_deref().is_some_and(|uid| uid != meta_str(&current, "uid")) {
            return Err(RegistryError::not_found(kind, name));
        }
        match plan(kind, &current, opts.grace_period_seconds, opts.propagation, chrono::Utc::now()) {
            Some(marked) if marked == current => Ok(with_resource_version(&existing.value, existing.mod_revision)?),
            Some(marked) => {
                let txn = Txn {
                    compares: vec![Compare::ModRevision(key.clone(), existing.mod_revision)],
                    success: vec![Op::Put { key, value: serde_json::to_vec(&marked)? }],
                };
                let resp = self.propose(txn).await?;
                if resp.failed_compare.is_some() {
                    return Err(RegistryError::conflict(kind, name));
                }
                let mut body = marked;
                body["metadata"]["resourceVersion"] = json!(resp.revision.to_string());
                Ok(body)
            }
            None => {
                let revision = self.remove(&key, existing.mod_revision).await?;
                Ok(with_resource_version(&existing.value, revision)?)
            }
        }
    }

    /// The control plane's final removal of the object at `key` if its
    /// resourceVersion is still `rv` (0: any) — a finisher's last step after
    /// graceful deletion, finalizers or propagation are done. Returns the
    /// revision of the removal.
    pub async fn remove(&self, key: &str, rv: u64) -> Result<u64, RegistryError> {
        let compares = if rv == 0 { vec![] } else { vec![Compare::ModRevision(key.to_string(), rv)] };
        let resp = self.propose(Txn { compares, success: vec![Op::Delete { key: key.to_string() }] }).await?;
        let at_key = || ("object".to_string(), key.to_string());
        match (resp.failed_compare, resp.current) {
            (None, _) => Ok(resp.revision),
            (Some(_), None) => Err(RegistryError::NotFound { resource: at_key().0, name: at_key().1 }),
            (Some(_), Some(_)) => Err(RegistryError::Conflict { resource: at_key().0, name: at_key().1 }),
        }
    }

    /// The control plane's removal of every object under a key prefix in one
    /// transaction (a terminating namespace's events). Returns how many went.
    pub async fn remove_prefix(&self, prefix: &str) -> Result<usize, RegistryError> {
        let (objs, _) = self.list_prefix(prefix)?;
        let ops: Vec<Op> = objs.iter().filter_map(key_of).map(|key| Op::Delete { key }).collect();
        let n = ops.len();
        if n > 0 {
            self.propose(Txn::ops(ops)).await?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans() {
        let now = chrono::Utc::now();
        let ns = &crate::objects::kinds::NAMESPACE;
        let n =
            plan(ns, &json!({"metadata": {"name": "x"}, "spec": {}, "status": {}}), None, Propagation::Background, now)
                .unwrap();
        assert_eq!(n["status"]["phase"], "Terminating");
        let d = &crate::objects::kinds::DEPLOYMENT;
        let obj = json!({"metadata": {"name": "web"}});
        assert!(plan(d, &obj, None, Propagation::Background, now).is_none());
        assert_eq!(plan(d, &obj, None, Propagation::Orphan, now).unwrap()["metadata"]["finalizers"], json!(["orphan"]));
        assert_eq!(
            plan(d, &obj, None, Propagation::Foreground, now).unwrap()["metadata"]["finalizers"],
            json!(["foregroundDeletion"])
        );
        assert!(Propagation::parse("Sideways").is_err());
    }

    #[test]
    fn bound_pods_are_marked_and_unbound_ones_go() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().with_timezone(&chrono::Utc);
        let unbound = json!({"metadata": {"name": "p"}, "spec": {}});
        assert!(graceful_delete(&unbound, None, now).is_none());
        let bound = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 5}});
        let marked = graceful_delete(&bound, None, now).unwrap();
        assert_eq!(marked["metadata"]["deletionTimestamp"], "2026-01-01T00:00:05Z");
        assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], 5);
        assert!(graceful_delete(&bound, Some(0), now).is_none());
        let shorter = graceful_delete(&marked, Some(2), now).unwrap();
        assert_eq!(shorter["metadata"]["deletionGracePeriodSeconds"], 2);
    }
}
