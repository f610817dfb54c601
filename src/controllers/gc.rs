//! The garbage collector: an object whose owners (by uid) are all gone is
//! deleted — the Background propagation of Kubernetes. Owners are checked
//! against the store itself before anything is deleted, so an informer that
//! trails another never condemns a fresh dependent.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use super::framework::{delete_pod, Action, Cache, Outcome, Reconciler};
use crate::objects::kinds;
use crate::objects::owners::{owners, Owner};
use crate::objects::typed::Object;
use crate::objects::{being_deleted, key_of, meta_str, resource_version, Kind};
use crate::registry::deletion::{metadata_of, with_metadata, FOREGROUND, ORPHAN};

/// Kinds that own others, and kinds that are owned.
pub const OWNER_KINDS: &[&Kind] =
    &[&kinds::DEPLOYMENT, &kinds::REPLICA_SET, &kinds::DAEMON_SET, &kinds::STATEFUL_SET, &kinds::JOB, &kinds::NODE];
/// Kinds whose objects may be collected.
pub const DEPENDENT_KINDS: &[&Kind] = &[&kinds::POD, &kinds::REPLICA_SET, &kinds::LEASE];

/// The collector.
pub struct GarbageCollector;

/// The owners an object's metadata names (a namespaced owner is in the
/// object's namespace).
fn owners_of(meta: &ObjectMeta) -> Vec<Owner> {
    let refs = meta.owner_references.iter().flatten();
    refs.map(|r| Owner {
        kind: r.kind.clone(),
        namespace: match Kind::resolve(&r.kind) {
            Some(k) if k.namespaced => meta.namespace.clone().unwrap_or_default(),
            _ => String::new(),
        },
        name: r.name.clone(),
        uid: r.uid.clone(),
    })
    .collect()
}

fn owned_by(meta: &ObjectMeta, uid: &str) -> bool {
    meta.owner_references.iter().flatten().any(|r| r.uid == uid)
}

fn uid_of(meta: &ObjectMeta) -> &str {
    meta.uid.as_deref().unwrap_or("")
}

fn owner_present(cache: &Cache, Owner { kind, namespace: ns, name, uid }: &Owner) -> bool {
    let Some(k) = Kind::resolve(kind) else { return true };
    if !OWNER_KINDS.contains(&k) {
        // An owner of a kind we do not watch is assumed present.
        return true;
    }
    cache.object(k, &k.key(ns, name)).and_then(Object::metadata).is_some_and(|m| uid_of(m) == uid)
}

fn find<'a>(cache: &'a Cache, key: &str) -> Option<&'a Object> {
    DEPENDENT_KINDS.iter().chain(OWNER_KINDS).find_map(|k| cache.object(k, key))
}

/// An owner being deleted with Orphan or Foreground propagation: which one.
fn propagation(meta: &ObjectMeta) -> Option<&'static str> {
    meta.deletion_timestamp.as_ref()?;
    let fins = meta.finalizers.as_ref()?;
    if fins.iter().any(|f| f == FOREGROUND) {
        Some(FOREGROUND)
    } else if fins.iter().any(|f| f == ORPHAN) {
        Some(ORPHAN)
    } else {
        None
    }
}

/// The objects (with their metadata) that name `uid` as an owner.
fn dependents_of<'a>(cache: &'a Cache, uid: &'a str) -> impl Iterator<Item = (&'a Object, &'a ObjectMeta)> + 'a {
    DEPENDENT_KINDS
        .iter()
        .flat_map(move |k| cache.objects(k))
        .filter_map(|d| Some((d, d.metadata()?)))
        .filter(move |(_, m)| owned_by(m, uid))
}

/// Carry out Orphan or Foreground propagation for an owner being deleted.
fn propagate(owner: &Object, how: &str, cache: &Cache, now: chrono::DateTime<chrono::Utc>) -> Outcome {
    let uid = owner.metadata().map(uid_of).unwrap_or("");
    let deps: Vec<(&Object, &ObjectMeta)> = dependents_of(cache, uid).collect();
    let mut out = Outcome { actions: vec![], requeue_after: Some(std::time::Duration::from_secs(1)) };
    if deps.is_empty() {
        // Nothing depends on it any more: the owner goes (its finalizer with it).
        out.actions.push(Action::Delete { key: key_of(owner).unwrap_or_default(), rv: resource_version(owner) });
        out.requeue_after = None;
        return out;
    }
    for (d, meta) in deps {
        if how == ORPHAN {
            let mut freed = meta.clone();
            if let Some(refs) = freed.owner_references.as_mut() {
                refs.retain(|r| r.uid != uid);
            }
            out.actions.push(Action::Replace(with_metadata(d, meta, &freed)));
        } else if meta.deletion_timestamp.is_none() {
            out.actions.push(if d.pod().is_some() {
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
        let refs = owners(obj);
        if kind.is_some_and(|k| DEPENDENT_KINDS.contains(&k)) && !refs.is_empty() {
            keys.extend(key_of(obj));
        }
        // A dependent that changes or goes may let an owner being deleted go too.
        for o in refs {
            if let Some(kind) = Kind::resolve(&o.kind) {
                let okey = kind.key(&o.namespace, &o.name);
                let owner = cache.object(kind, &okey).and_then(Object::metadata);
                if owner.is_some_and(|m| propagation(m).is_some()) {
                    keys.push(okey);
                }
            }
        }
        if kind.is_some_and(|k| OWNER_KINDS.contains(&k)) {
            // Only an owner being deleted needs its metadata parsed here.
            if being_deleted(obj) && propagation(&metadata_of(obj)).is_some() {
                keys.extend(key_of(obj));
            }
            let uid = meta_str(obj, "uid");
            keys.extend(dependents_of(cache, uid).filter_map(|(d, _)| key_of(d)));
        }
        keys
    }

    fn reconcile(&self, key: &str, cache: &Cache, now: chrono::DateTime<chrono::Utc>) -> Outcome {
        let Some((obj, meta)) = find(cache, key).and_then(|o| Some((o, o.metadata()?))) else {
            return Outcome::default();
        };
        if let Some(how) = propagation(meta) {
            return propagate(obj, how, cache, now);
        }
        let refs = owners_of(meta);
        if refs.is_empty() || meta.deletion_timestamp.is_some() {
            return Outcome::default();
        }
        if refs.iter().any(|r| owner_present(cache, r)) {
            return Outcome::default();
        }
        Outcome { actions: vec![Action::DeleteOrphan(obj.raw().clone())], requeue_after: None }
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
            "annotations": {"team": "blue"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "rs1", "controller": true}]},
            "spec": {"containers": [{"name": "c", "image": "i"}], "futureField": 1}});
        c.put(rs.clone());
        c.put(pod.clone());
        let key = "/registry/replicasets/d/web";
        let out = GarbageCollector.reconcile(key, &c, chrono::Utc::now());
        let Action::Replace(freed) = &out.actions[0] else { panic!("{:?}", out.actions) };
        assert_eq!(freed["metadata"]["ownerReferences"], json!([]));
        assert_eq!(
            (&freed["metadata"]["annotations"], &freed["spec"]),
            (&pod["metadata"]["annotations"], &pod["spec"])
        );
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
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "rs1", "controller": true}]}});
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
