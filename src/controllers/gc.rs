//! The garbage collector: an object whose owners (by uid) are all gone is
//! deleted — the Background propagation of Kubernetes. Owners are checked
//! against the store itself before anything is deleted, so an informer that
//! trails another never condemns a fresh dependent.

use serde_json::Value;

use super::framework::{delete_pod, Action, Cache, Outcome, Reconciler};
use crate::objects::kinds;
use crate::objects::owners::{owners, remove_owner, Owner};
use crate::objects::{being_deleted, key_of, meta_str, resource_version, Kind};
use crate::registry::deletion::{FOREGROUND, ORPHAN};

/// Kinds that own others, and kinds that are owned.
pub const OWNER_KINDS: &[&Kind] =
    &[&kinds::DEPLOYMENT, &kinds::REPLICA_SET, &kinds::DAEMON_SET, &kinds::STATEFUL_SET, &kinds::JOB, &kinds::NODE];
/// Kinds whose objects may be collected.
pub const DEPENDENT_KINDS: &[&Kind] = &[&kinds::POD, &kinds::REPLICA_SET, &kinds::LEASE];

/// The collector.
pub struct GarbageCollector;

fn owner_present(cache: &Cache, Owner { kind, namespace: ns, name, uid }: &Owner) -> bool {
    let Some(k) = Kind::resolve(kind) else { return true };
    if !OWNER_KINDS.contains(&k) {
        // An owner of a kind we do not watch is assumed present.
        return true;
    }
    cache.get(k, &k.key(ns, name)).is_some_and(|o| meta_str(o, "uid") == uid)
}

fn find<'a>(cache: &'a Cache, key: &str) -> Option<&'a Value> {
    DEPENDENT_KINDS.iter().chain(OWNER_KINDS).find_map(|k| cache.get(k, key))
}

/// An owner being deleted with Orphan or Foreground propagation: which one.
fn propagation(obj: &Value) -> Option<&'static str> {
    if !being_deleted(obj) {
        return None;
    }
    let fins = obj.pointer("/metadata/finalizers")?.as_array()?;
    if fins.iter().any(|f| f == FOREGROUND) {
        Some(FOREGROUND)
    } else if fins.iter().any(|f| f == ORPHAN) {
        Some(ORPHAN)
    } else {
        None
    }
}

fn dependents_of<'a>(cache: &'a Cache, uid: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    DEPENDENT_KINDS.iter().flat_map(move |k| cache.all(k)).filter(move |d| owners(d).iter().any(|o| o.uid == uid))
}

/// Carry out Orphan or Foreground propagation for an owner being deleted.
fn propagate(owner: &Value, how: &str, cache: &Cache, now: chrono::DateTime<chrono::Utc>) -> Outcome {
    let uid = meta_str(owner, "uid");
    let deps: Vec<&Value> = dependents_of(cache, uid).collect();
    let mut out = Outcome { actions: vec![], requeue_after: Some(std::time::Duration::from_secs(1)) };
    if deps.is_empty() {
        // Nothing depends on it any more: the owner goes (its finalizer with it).
        out.actions.push(Action::Delete { key: key_of(owner).unwrap_or_default(), rv: resource_version(owner) });
        out.requeue_after = None;
        return out;
    }
    for d in deps {
        if how == ORPHAN {
            let mut freed = d.clone();
            remove_owner(&mut freed, uid);
            out.actions.push(Action::Replace(freed));
        } else if !being_deleted(d) {
            out.actions.push(if d["kind"] == "Pod" {
                delete_pod(d, now)
            } else {
                Action::Delete { key: key_of(d).unwrap_or_default(), rv: resource_version(d) }
            });
        }
    }
    out
}

impl Reconciler for GarbageCollector {
    const NAME: &'static str = "garbage-collector";
    const PRIMARY: &'static Kind = &kinds::POD;

    fn watches(&self) -> Vec<&'static Kind> {
        let mut k: Vec<&'static Kind> = OWNER_KINDS.to_vec();
        k.extend(DEPENDENT_KINDS.iter().filter(|d| !OWNER_KINDS.contains(d)));
        k
    }

    fn affected(&self, obj: &Value, cache: &Cache) -> Vec<String> {
        let mut keys = Vec::new();
        let kind = Kind::of(obj);
        if kind.is_some_and(|k| DEPENDENT_KINDS.contains(&k)) && !owners(obj).is_empty() {
            keys.extend(key_of(obj));
        }
        // A dependent that changes or goes may let an owner being deleted go too.
        for o in owners(obj) {
            if let Some(kind) = Kind::resolve(&o.kind) {
                let okey = kind.key(&o.namespace, &o.name);
                if cache.get(kind, &okey).is_some_and(|o| propagation(o).is_some()) {
                    keys.push(okey);
                }
            }
        }
        if kind.is_some_and(|k| OWNER_KINDS.contains(&k)) {
            if propagation(obj).is_some() {
                keys.extend(key_of(obj));
            }
            let uid = meta_str(obj, "uid");
            for dk in DEPENDENT_KINDS {
                keys.extend(cache.all(dk).filter(|d| owners(d).iter().any(|o| o.uid == uid)).filter_map(key_of));
            }
        }
        keys
    }

    fn reconcile(&self, key: &str, cache: &Cache, now: chrono::DateTime<chrono::Utc>) -> Outcome {
        let Some(obj) = find(cache, key) else { return Outcome::default() };
        if let Some(how) = propagation(obj) {
            return propagate(obj, how, cache, now);
        }
        let refs = owners(obj);
        if refs.is_empty() || being_deleted(obj) {
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
    fn orphan_and_foreground_propagation() {
        let mut c = Cache::default();
        let mut rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web", "namespace": "d", "uid": "rs1",
            "deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["orphan"], "resourceVersion": "9"}});
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-x", "namespace": "d", "uid": "p1", "resourceVersion": "4",
            "ownerReferences": [{"kind": "ReplicaSet", "name": "web", "uid": "rs1", "controller": true}]}});
        c.put(rs.clone());
        c.put(pod.clone());
        let key = "/registry/replicasets/d/web";
        let out = GarbageCollector.reconcile(key, &c, chrono::Utc::now());
        let Action::Replace(freed) = &out.actions[0] else { panic!("{:?}", out.actions) };
        assert_eq!(freed["metadata"]["ownerReferences"], json!([]));
        rs["metadata"]["finalizers"] = json!(["foregroundDeletion"]);
        c.put(rs.clone());
        let out = GarbageCollector.reconcile(key, &c, chrono::Utc::now());
        assert!(
            matches!(&out.actions[0], Action::Delete { key, .. } if key == "/registry/pods/d/web-x"),
            "{:?}",
            out.actions
        );
        c.remove(&pod);
        let out = GarbageCollector.reconcile(key, &c, chrono::Utc::now());
        assert!(matches!(&out.actions[0], Action::Delete { key: k, .. } if k == key), "the owner goes last");
    }

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
