//! How a delete is carried out: at once, or by marking the object with a
//! deletionTimestamp for someone to finish — the kubelet (a pod on a node),
//! the namespace controller (a namespace), the garbage collector (Orphan and
//! Foreground propagation) or whoever owns a finalizer. The decisions read
//! typed fields (`Pod`, `Namespace`, `ObjectMeta`); the JSON the registry
//! stores is changed only where they changed it, so unknown fields survive.

use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use clusterd_raft::{Compare, Op, Txn};

use super::{Registry, RegistryError};
use crate::objects::merge::{diff, merge};
use crate::objects::pod::PodFacts;
use crate::objects::{kinds, meta_str, with_resource_version, Kind};

/// How often a delete without a precondition is tried when other writes
/// get in between.
const DELETE_RETRIES: usize = 5;

/// Whether a delete that answered `result` is tried again: one without a
/// resourceVersion precondition whose removal lost a race with another write.
/// (The failed write waited until this node applied the write that won, so
/// the next try reads it.)
fn retried(opts: &DeleteOptions, result: &Result<Value, RegistryError>) -> bool {
    opts.resource_version.is_none() && matches!(result, Err(RegistryError::Conflict { .. }))
}

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

/// `raw` with the change from `before` to `after` (typed values parsed from
/// it) written over it: only what changed is replaced, so fields the type does
/// not know survive.
fn overlay<T: Serialize>(raw: &Value, before: &T, after: &T) -> Value {
    let (Ok(b), Ok(a)) = (serde_json::to_value(before), serde_json::to_value(after)) else { return raw.clone() };
    let mut out = raw.clone();
    merge(&mut out, &diff(&b, &a));
    out
}

/// The metadata of any object, typed (default when it has none that parses).
pub fn metadata_of(obj: &Value) -> ObjectMeta {
    obj.get("metadata").and_then(|m| ObjectMeta::deserialize(m).ok()).unwrap_or_default()
}

/// `obj` with its metadata changed from `before` to `after` — for changes a
/// controller or the registry makes to objects of any kind (finalizers,
/// owner references, deletion marks); the rest of the object is kept as is.
pub fn with_metadata(obj: &Value, before: &ObjectMeta, after: &ObjectMeta) -> Value {
    let mut out = obj.clone();
    if let Some(map) = out.as_object_mut() {
        let meta = map.entry("metadata").or_insert(Value::Null);
        *meta = overlay(meta, before, after);
    }
    out
}

/// Mark `meta` as being deleted now, unless it already is.
fn mark(meta: &mut ObjectMeta, now: chrono::DateTime<chrono::Utc>) {
    if meta.deletion_timestamp.is_none() {
        meta.deletion_timestamp = Some(crate::util::time(now));
        meta.deletion_grace_period_seconds = Some(0);
    }
}

fn add_finalizer(meta: &mut ObjectMeta, f: &str) {
    let list = meta.finalizers.get_or_insert_with(Vec::new);
    if !list.iter().any(|x| x == f) {
        list.push(f.to_string());
    }
}

/// For a pod on a node: the pod marked for graceful deletion (the kubelet
/// finishes the job), or None when it should go at once. `grace` overrides
/// the pod's `terminationGracePeriodSeconds`; a grace already shorter stays.
pub fn mark_graceful(pod: &Pod, grace: Option<i64>, now: chrono::DateTime<chrono::Utc>) -> Option<Pod> {
    let spec_grace = pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds).unwrap_or(30);
    let grace = grace.unwrap_or(spec_grace).max(0);
    if PodFacts::node_name(pod).is_empty() || grace == 0 {
        return None;
    }
    // Terminal pods have nothing left to stop: a short grace lets the kubelet clean up.
    let grace = if pod.finished() { grace.min(1) } else { grace };
    let mut marked = pod.clone();
    if pod.metadata.deletion_grace_period_seconds.is_some_and(|c| c <= grace) {
        return Some(marked);
    }
    marked.metadata.deletion_timestamp = Some(crate::util::time(grace_deadline(now, grace)));
    marked.metadata.deletion_grace_period_seconds = Some(grace);
    Some(marked)
}

/// `now` plus `grace` seconds, at the latest the last time an object's
/// timestamp can hold (in the year 9999). A grace period is the user's number
/// (`gracePeriodSeconds`, `terminationGracePeriodSeconds`): one of `i64::MAX`
/// seconds panicked here, and one past the year 9999 was written as 1970.
fn grace_deadline(now: chrono::DateTime<chrono::Utc>, grace: i64) -> chrono::DateTime<chrono::Utc> {
    let last = chrono::DateTime::from_timestamp(k8s_openapi::jiff::Timestamp::MAX.as_second(), 0)
        .expect("the last timestamp is a time");
    chrono::TimeDelta::try_seconds(grace).and_then(|d| now.checked_add_signed(d)).map_or(last, |t| t.min(last))
}

/// [`mark_graceful`] on a pod's JSON: the object to write, or None when it
/// should go at once (also when it is not a pod at all).
pub fn graceful_delete(obj: &Value, grace: Option<i64>, now: chrono::DateTime<chrono::Utc>) -> Option<Value> {
    let pod = match Pod::deserialize(obj) {
        Ok(pod) => pod,
        Err(e) => {
            tracing::warn!(error = %e, name = meta_str(obj, "name"), "not a pod: deleting it at once");
            return None;
        }
    };
    let marked = mark_graceful(&pod, grace, now)?;
    Some(overlay(obj, &pod, &marked))
}

/// The object to write instead of removing it, or None to remove it now.
pub fn plan(
    kind: &Kind,
    obj: &Value,
    grace: Option<i64>,
    policy: Propagation,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Value> {
    if *kind == kinds::POD && policy == Propagation::Background {
        return graceful_delete(obj, grace, now);
    }
    if *kind == kinds::NAMESPACE {
        if let Ok(ns) = Namespace::deserialize(obj) {
            let mut marked = ns.clone();
            mark(&mut marked.metadata, now);
            marked.spec.get_or_insert_with(Default::default).finalizers = Some(vec!["kubernetes".into()]);
            marked.status.get_or_insert_with(Default::default).phase = Some("Terminating".into());
            return Some(overlay(obj, &ns, &marked));
        }
    }
    // Every other kind is decided on its metadata alone.
    let meta = metadata_of(obj);
    let mut marked = meta.clone();
    let finalizer = match policy {
        Propagation::Orphan => Some(ORPHAN),
        Propagation::Foreground => Some(FOREGROUND),
        Propagation::Background => None,
    };
    if let Some(f) = finalizer {
        add_finalizer(&mut marked, f);
    } else if meta.finalizers.as_ref().is_none_or(Vec::is_empty) {
        return None;
    }
    mark(&mut marked, now);
    Some(with_metadata(obj, &meta, &marked))
}

impl Registry {
    /// Delete an object as the API does: a pod on a node, a namespace, an
    /// object with finalizers or a non-Background propagation is marked with a
    /// deletionTimestamp for its finisher; anything else goes now. Returns the
    /// object's last state (marked, or as it was removed).
    ///
    /// A delete without a resourceVersion precondition that loses a race with
    /// another write (the object changed between its read and its removal) is
    /// tried again, as Kubernetes does: only a precondition the caller gave
    /// can fail with Conflict.
    pub async fn delete(
        &self,
        kind: &'static Kind,
        namespace: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Value, RegistryError> {
        let mut result = Err(RegistryError::conflict(kind, name));
        for _ in 0..DELETE_RETRIES {
            result = self.delete_once(kind, namespace, name, opts).await;
            if !retried(opts, &result) {
                break;
            }
        }
        result
    }

    async fn delete_once(
        &self,
        kind: &'static Kind,
        namespace: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Value, RegistryError> {
        let key = kind.key(kind.namespace_or_default(namespace), name);
        let existing = self
            .current_for_write(&key, opts.resource_version)
            .await?
            .ok_or_else(|| RegistryError::not_found(kind, name))?;
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
        if super::claims::is_service_key(key) {
            return self.remove_service(key, rv).await;
        }
        self.remove_plain(key, rv).await
    }

    /// [`Registry::remove`] of an object that holds no allocation records.
    pub(super) async fn remove_plain(&self, key: &str, rv: u64) -> Result<u64, RegistryError> {
        let compares = if rv == 0 { vec![] } else { vec![Compare::ModRevision(key.to_string(), rv)] };
        let resp = self.propose(Txn { compares, success: vec![Op::Delete { key: key.to_string() }] }).await?;
        let at_key = || ("object".to_string(), key.to_string());
        match (resp.failed_compare, resp.current) {
            (None, _) => Ok(resp.revision),
            (Some(_), None) => Err(RegistryError::NotFound { resource: at_key().0, name: at_key().1 }),
            (Some(_), Some(_)) => Err(RegistryError::Conflict { resource: at_key().0, name: at_key().1 }),
        }
    }

    /// The control plane's removal of every object under a key prefix (a
    /// terminating namespace's ConfigMaps, Secrets, Services, events...), with
    /// the allocation records of the Services among them, in transactions of
    /// at most [`REMOVE_BATCH`] objects: a namespace of 100,000 objects goes in
    /// Raft entries of bounded size. Returns how many objects went.
    pub async fn remove_prefix(&self, prefix: &str) -> Result<usize, RegistryError> {
        // Only the keys are needed: the values are not parsed.
        let keys: Vec<String> = self.reader().list(prefix)?.0.into_iter().map(|kv| kv.key).collect();
        for batch in keys.chunks(REMOVE_BATCH) {
            let batch: std::collections::BTreeSet<String> = batch.iter().cloned().collect();
            let mut ops: Vec<Op> = batch.iter().map(|key| Op::Delete { key: key.clone() }).collect();
            ops.extend(self.records_under(prefix, &batch)?);
            self.propose(Txn::ops(ops)).await?;
        }
        Ok(keys.len())
    }
}

/// The most objects [`Registry::remove_prefix`] removes in one transaction.
pub const REMOVE_BATCH: usize = 500;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_delete_without_precondition_is_tried_again_after_a_conflict() {
        let conflict = || Err(RegistryError::conflict(&kinds::CONFIG_MAP, "c"));
        let any = DeleteOptions::default();
        let at_7 = DeleteOptions { resource_version: Some(7), ..DeleteOptions::default() };
        let cases = [
            (&any, conflict(), true),
            (&any, Err(RegistryError::not_found(&kinds::CONFIG_MAP, "c")), false),
            (
                &any,
                Err(RegistryError::Unavailable(clusterd_raft::NodeError::NoLeader(std::time::Duration::from_secs(1)))),
                false,
            ),
            (&any, Ok(json!({})), false),
            (&at_7, conflict(), false),
            (&at_7, Ok(json!({})), false),
        ];
        for (opts, result, want) in cases {
            assert_eq!(retried(opts, &result), want, "{opts:?} {result:?}");
        }
    }

    /// A delete without precondition while other clients keep updating the
    /// object: it removes the object (or finds it gone), never answers
    /// Conflict. (Found by the fault runs, `tests/chaos.rs`: one such delete
    /// in ten answered ABORTED.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_delete_without_precondition_racing_updates_is_no_conflict() {
        use super::super::testing::TestCluster;
        use super::super::Origin;
        let c = TestCluster::start(1, json!({})).await;
        let r = c.registries[0].clone();
        let cm = |name: &str, v: usize| {
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": name, "namespace": "default"}, "data": {"v": v.to_string()}})
        };
        for round in 0..40 {
            let name = format!("race-{round}");
            r.create(cm(&name, 0)).await.unwrap();
            let updates: Vec<_> = (1..=3)
                .map(|i| {
                    let (r, obj) = (r.clone(), cm(&name, i));
                    tokio::spawn(async move {
                        for _ in 0..5 {
                            let _ = r.update(obj.clone(), Origin::User).await;
                        }
                    })
                })
                .collect();
            tokio::task::yield_now().await;
            let deleted = r.delete(&kinds::CONFIG_MAP, "default", &name, &DeleteOptions::default()).await;
            assert!(
                !matches!(deleted, Err(RegistryError::Conflict { .. })),
                "round {round}: an unconditional delete answered {deleted:?}"
            );
            for u in updates {
                u.await.unwrap();
            }
        }
        c.stop().await;
    }

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
        let held = json!({"metadata": {"name": "web", "finalizers": ["example.com/hold"]}, "spec": {"replicas": 2}});
        let marked = plan(d, &held, None, Propagation::Background, now).unwrap();
        assert_eq!(
            (marked["metadata"]["deletionGracePeriodSeconds"].as_i64(), &marked["spec"]),
            (Some(0), &held["spec"])
        );
        assert_eq!(plan(d, &marked, None, Propagation::Background, now).as_ref(), Some(&marked), "marked once");
        assert!(Propagation::parse("Sideways").is_err());
    }

    #[test]
    fn bound_pods_are_marked_and_unbound_ones_go() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().with_timezone(&chrono::Utc);
        let unbound = json!({"metadata": {"name": "p"}, "spec": {"containers": []}});
        assert!(graceful_delete(&unbound, None, now).is_none());
        let bound = json!({"metadata": {"name": "p", "annotations": {"team": "blue"}},
            "spec": {"containers": [], "nodeName": "n1", "terminationGracePeriodSeconds": 5, "futureField": 1}});
        let marked = graceful_delete(&bound, None, now).unwrap();
        assert_eq!(marked["metadata"]["deletionTimestamp"], "2026-01-01T00:00:05Z");
        assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], 5);
        assert_eq!(
            (&marked["metadata"]["annotations"]["team"], &marked["spec"]["futureField"]),
            (&json!("blue"), &json!(1))
        );
        assert_eq!(graceful_delete(&marked, None, now).as_ref(), Some(&marked), "marked once");
        assert!(graceful_delete(&bound, Some(0), now).is_none());
        let shorter = graceful_delete(&marked, Some(2), now).unwrap();
        assert_eq!(shorter["metadata"]["deletionGracePeriodSeconds"], 2);
    }

    /// Found by fuzzing: a grace period of `i64::MAX` seconds (the delete's
    /// `gracePeriodSeconds` or the pod's `terminationGracePeriodSeconds`)
    /// panicked, and one past the year 9999 was written as 1970 (the pod was
    /// killed at once instead of never).
    #[test]
    fn a_grace_period_beyond_any_time_ends_at_the_last_time() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().with_timezone(&chrono::Utc);
        let pod = |grace: i64| {
            json!({"metadata": {"name": "p"},
                "spec": {"containers": [], "nodeName": "n1", "terminationGracePeriodSeconds": grace}})
        };
        let last = k8s_openapi::jiff::Timestamp::MAX.as_second();
        for grace in [i64::MAX, 1 << 40, last] {
            for (obj, option) in [(pod(30), Some(grace)), (pod(grace), None)] {
                let marked = graceful_delete(&obj, option, now).unwrap();
                let at = marked["metadata"]["deletionTimestamp"].as_str().unwrap();
                let at = chrono::DateTime::parse_from_rfc3339(at).unwrap();
                assert_eq!(at.timestamp(), last, "{grace}");
                assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], grace);
            }
        }
    }
}
