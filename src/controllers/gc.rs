//! The garbage collector: an object whose owners (by uid) are all gone is
//! deleted — the Background propagation of Kubernetes. Owners are checked
//! against the store itself before anything is deleted, so an informer that
//! trails another never condemns a fresh dependent.

use serde_json::Value;

use super::framework::{Action, Cache, Outcome, Reconciler};
use crate::actors::store::key_of;
use crate::objects::{meta_str, Kind};

/// Kinds that own others, and kinds that are owned.
pub const OWNER_KINDS: &[&str] = &["Deployment", "ReplicaSet", "DaemonSet", "StatefulSet", "Job", "Node"];
/// Kinds whose objects may be collected.
pub const DEPENDENT_KINDS: &[&str] = &["Pod", "ReplicaSet", "Lease"];

/// The collector.
pub struct GarbageCollector;

/// The owner references of an object as (kind, namespace, name, uid).
pub fn owners(obj: &Value) -> Vec<(String, String, String, String)> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|o| {
            let kind = o.get("kind")?.as_str()?.to_string();
            let ns = match Kind::resolve(&kind) {
                Some(k) if k.namespaced => meta_str(obj, "namespace").to_string(),
                _ => String::new(),
            };
            Some((kind, ns, o.get("name")?.as_str()?.to_string(), o.get("uid")?.as_str()?.to_string()))
        })
        .collect()
}

fn owner_present(cache: &Cache, (kind, ns, name, uid): &(String, String, String, String)) -> bool {
    let Some(k) = Kind::resolve(kind) else { return true };
    if !OWNER_KINDS.contains(&k.kind) {
        // An owner of a kind we do not watch is assumed present.
        return true;
    }
    cache.get(k.kind, &k.key(ns, name)).is_some_and(|o| meta_str(o, "uid") == uid)
}

fn find<'a>(cache: &'a Cache, key: &str) -> Option<&'a Value> {
    DEPENDENT_KINDS.iter().find_map(|k| cache.get(k, key))
}

impl Reconciler for GarbageCollector {
    const NAME: &'static str = "garbage-collector";
    const PRIMARY: &'static str = "Pod";

    fn watches(&self) -> Vec<&'static str> {
        let mut k: Vec<&'static str> = OWNER_KINDS.to_vec();
        k.extend(DEPENDENT_KINDS.iter().filter(|d| !OWNER_KINDS.contains(d)));
        k
    }

    fn affected(&self, obj: &Value, cache: &Cache) -> Vec<String> {
        let mut keys = Vec::new();
        let kind = obj["kind"].as_str().unwrap_or("");
        if DEPENDENT_KINDS.contains(&kind) && !owners(obj).is_empty() {
            keys.extend(key_of(obj));
        }
        if OWNER_KINDS.contains(&kind) {
            let uid = meta_str(obj, "uid");
            for dk in DEPENDENT_KINDS {
                keys.extend(cache.all(dk).filter(|d| owners(d).iter().any(|o| o.3 == uid)).filter_map(key_of));
            }
        }
        keys
    }

    fn reconcile(&self, key: &str, cache: &Cache, _now: chrono::DateTime<chrono::Utc>) -> Outcome {
        let Some(obj) = find(cache, key) else { return Outcome::default() };
        let refs = owners(obj);
        if refs.is_empty() || obj.pointer("/metadata/deletionTimestamp").is_some() {
            return Outcome::default();
        }
        if refs.iter().any(|r| owner_present(cache, r)) {
            return Outcome::default();
        }
        Outcome { actions: vec![Action::DeleteOrphan(obj.clone())], requeue_after: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dependents_of_a_vanished_owner_are_collected() {
        let mut c = Cache::default();
        let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web", "namespace": "d", "uid": "rs1"}});
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-x", "namespace": "d", "uid": "p1",
            "ownerReferences": [{"kind": "ReplicaSet", "name": "web", "uid": "rs1", "controller": true}]}});
        c.put(rs.clone());
        c.put(pod.clone());
        let key = "/registry/pods/d/web-x";
        assert!(GarbageCollector.reconcile(key, &c, chrono::Utc::now()).actions.is_empty());
        c.remove(&rs);
        assert_eq!(GarbageCollector.affected(&rs, &c), vec![key.to_string()]);
        assert_eq!(
            GarbageCollector.reconcile(key, &c, chrono::Utc::now()).actions,
            vec![Action::DeleteOrphan(pod.clone())]
        );
        // A new owner of the same name is not the owner.
        c.put(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web", "namespace": "d", "uid": "rs2"}}));
        assert_eq!(GarbageCollector.reconcile(key, &c, chrono::Utc::now()).actions.len(), 1);
    }
}
