//! The shape every controller shares: informer caches of the kinds it watches,
//! a set of dirty primary keys, and a pure `reconcile(key, cache) -> actions`
//! that an actor runs while its node leads Raft. Actions are carried out in
//! order; what they wrote goes back into the cache at once, so the next round
//! does not act twice on an object the informer has not shown yet.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use serde_json::{json, Value};

use crate::actors::informer::{self, Change};
use crate::actors::store::{key_of, resource_version, EventType, ObjectStore, StoreError};
use crate::objects::selector::LabelSelector;
use crate::objects::{meta_str, Kind};

/// The objects a controller sees: kind name → store key → object.
#[derive(Default, Debug, Clone)]
pub struct Cache {
    objects: HashMap<&'static str, BTreeMap<String, Arc<Value>>>,
}

impl Cache {
    /// Put an object (by its kind and key).
    pub fn put(&mut self, obj: Value) {
        self.put_shared(Arc::new(obj));
    }

    /// Put an object shared with the informer and other caches.
    pub fn put_shared(&mut self, obj: Arc<Value>) {
        if let (Some(kind), Some(key)) = (Kind::of(&obj), key_of(&obj)) {
            self.objects.entry(kind.kind).or_default().insert(key, obj);
        }
    }

    /// Remove an object.
    pub fn remove(&mut self, obj: &Value) {
        if let (Some(kind), Some(key)) = (Kind::of(obj), key_of(obj)) {
            if let Some(m) = self.objects.get_mut(kind.kind) {
                m.remove(&key);
            }
        }
    }

    /// One object by kind (`"Pod"`) and key.
    pub fn get(&self, kind: &str, key: &str) -> Option<&Value> {
        self.objects.get(kind)?.get(key).map(|o| &**o)
    }

    /// Every object of a kind.
    pub fn all(&self, kind: &str) -> impl Iterator<Item = &Value> {
        self.objects.get(kind).into_iter().flat_map(|m| m.values()).map(|o| &**o)
    }

    /// Objects of a kind in a namespace.
    pub fn in_namespace<'a>(&'a self, kind: &str, ns: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.all(kind).filter(move |o| meta_str(o, "namespace") == ns)
    }

    /// Objects of a kind whose controller owner has this uid.
    pub fn owned_by<'a>(&'a self, kind: &str, ns: &'a str, uid: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.in_namespace(kind, ns).filter(move |o| controller_uid(o).as_deref() == Some(uid))
    }
}

/// The uid of an object's controller owner.
pub fn controller_uid(obj: &Value) -> Option<String> {
    crate::scheduler::algorithm::owner_uid(obj)
}

/// An ownerReference naming `owner` as controller.
pub fn controller_ref(owner: &Value) -> Value {
    json!({
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta_str(owner, "name"),
        "uid": meta_str(owner, "uid"),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// A pod of a workload from its `spec.template`: owned by it (as controller),
/// in its namespace, named `name` or generated from the workload's name, with
/// `labels` added to the template's.
pub fn pod_from_template(owner: &Value, name: Option<&str>, labels: &[(&str, &str)]) -> Value {
    let template = owner.pointer("/spec/template").cloned().unwrap_or(json!({}));
    let mut meta = template.get("metadata").cloned().unwrap_or(json!({}));
    let m = meta.as_object_mut().expect("template metadata");
    m.remove("creationTimestamp");
    match name {
        Some(n) => {
            m.insert("name".into(), json!(n));
        }
        None => {
            m.remove("name");
            m.insert("generateName".into(), json!(format!("{}-", meta_str(owner, "name"))));
        }
    }
    m.insert("namespace".into(), json!(meta_str(owner, "namespace")));
    m.insert("ownerReferences".into(), json!([controller_ref(owner)]));
    let l = m.entry("labels").or_insert(json!({}));
    if !l.is_object() {
        *l = json!({});
    }
    for (k, v) in labels {
        l[*k] = json!(v);
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": template.get("spec").cloned().unwrap_or(json!({}))})
}

/// The label selector of a workload's `spec.selector`.
pub fn selector_of(obj: &Value) -> LabelSelector {
    obj.pointer("/spec/selector").map(LabelSelector::from_object).unwrap_or_default()
}

/// Whether a pod is being deleted or has finished.
pub fn pod_inactive(pod: &Value) -> bool {
    pod.pointer("/metadata/deletionTimestamp").is_some()
        || matches!(pod.pointer("/status/phase").and_then(Value::as_str), Some("Succeeded" | "Failed"))
}

/// Whether a pod is Ready.
pub fn pod_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// Whether a pod has been Ready for `min_ready` by `now`.
pub fn pod_available(pod: &Value, min_ready: Duration, now: chrono::DateTime<chrono::Utc>) -> bool {
    if !pod_ready(pod) {
        return false;
    }
    if min_ready.is_zero() {
        return true;
    }
    let since = pod
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .and_then(|c| c.get("lastTransitionTime")?.as_str())
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
    since.is_some_and(|t| now.signed_duration_since(t).to_std().unwrap_or_default() >= min_ready)
}

/// What a reconcile asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Create an object (through admission: defaults, uid, generated name).
    Create(Value),
    /// Write an object if its resourceVersion is still current.
    Replace(Value),
    /// Delete the object at a key if its resourceVersion is still this one.
    Delete {
        /// Store key.
        key: String,
        /// Expected resourceVersion.
        rv: u64,
    },
    /// Delete an object whose owners are all gone — after checking the store
    /// for them (a pod goes gracefully).
    DeleteOrphan(Value),
    /// Delete every object under a key prefix, in one transaction (for kinds
    /// a controller does not keep in its cache, such as a namespace's events).
    DeletePrefix(String),
    /// Record an event about an object.
    Event {
        /// The object.
        object: Value,
        /// Warning or not.
        warning: bool,
        /// Reason.
        reason: String,
        /// Message.
        message: String,
    },
}

/// Delete a pod as the API does: a pod bound to a node is marked with a
/// deletionTimestamp (its kubelet stops it and removes it); others go at once.
pub fn delete_pod(pod: &Value, now: chrono::DateTime<chrono::Utc>) -> Action {
    match crate::api::pods::graceful_delete(pod, None, now) {
        Some(marked) => Action::Replace(marked),
        None => Action::Delete { key: key_of(pod).unwrap_or_default(), rv: resource_version(pod) },
    }
}

/// The outcome of one reconcile.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    /// Writes to make, in order.
    pub actions: Vec<Action>,
    /// Look again after this long even if nothing changes.
    pub requeue_after: Option<Duration>,
}

/// A controller's logic: which kinds it watches, which primary objects a change
/// concerns, and the reconcile of one primary object.
pub trait Reconciler: Unpin + 'static {
    /// Name in logs and events.
    const NAME: &'static str;
    /// The primary kind (`"ReplicaSet"`).
    const PRIMARY: &'static str;
    /// Every kind watched (the primary one included).
    fn watches(&self) -> Vec<&'static str>;
    /// The primary keys a change to `obj` concerns.
    fn affected(&self, obj: &Value, cache: &Cache) -> Vec<String>;
    /// Bring one primary object's world towards its spec.
    fn reconcile(&self, key: &str, cache: &Cache, now: chrono::DateTime<chrono::Utc>) -> Outcome;
}

/// The usual `affected`: a primary object concerns itself, a dependent of kind
/// `dependent` concerns its owners of the primary kind.
pub fn self_or_owners(obj: &Value, primary: &str, dependent: &str) -> Vec<String> {
    match obj["kind"].as_str() {
        Some(k) if k == primary => key_of(obj).into_iter().collect(),
        Some(k) if k == dependent => owner_keys(obj, primary),
        _ => vec![],
    }
}

/// The keys of the controller owners of `obj` of kind `primary`, in its namespace.
pub fn owner_keys(obj: &Value, primary: &str) -> Vec<String> {
    let Some(kind) = Kind::resolve(primary) else { return vec![] };
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|o| o["kind"] == primary)
        .filter_map(|o| Some(kind.key(meta_str(obj, "namespace"), o.get("name")?.as_str()?)))
        .collect()
}

/// The actor that runs a [`Reconciler`] on the leader.
pub struct Controller<R: Reconciler> {
    logic: R,
    store: ObjectStore,
    cache: Cache,
    leader: bool,
    dirty: BTreeSet<String>,
    busy: bool,
    timers: BTreeSet<String>,
}

impl<R: Reconciler> Controller<R> {
    /// A controller on `store`'s node.
    pub fn new(logic: R, store: ObjectStore) -> Self {
        Controller {
            logic,
            store,
            cache: Cache::default(),
            leader: false,
            dirty: BTreeSet::new(),
            busy: false,
            timers: BTreeSet::new(),
        }
    }

    fn kick(&mut self, ctx: &mut Context<Self>) {
        if !self.leader || self.busy || self.dirty.is_empty() {
            return;
        }
        self.busy = true;
        ctx.run_later(Duration::from_millis(5), |act, ctx| act.round(ctx));
    }

    fn round(&mut self, ctx: &mut Context<Self>) {
        let now = chrono::Utc::now();
        let keys = std::mem::take(&mut self.dirty);
        let mut actions = Vec::new();
        for key in keys {
            let out = self.logic.reconcile(&key, &self.cache, now);
            if let Some(after) = out.requeue_after {
                if self.timers.insert(key.clone()) {
                    ctx.run_later(after, move |act, ctx| {
                        act.timers.remove(&key);
                        act.dirty.insert(key);
                        act.kick(ctx);
                    });
                }
            }
            actions.extend(out.actions);
        }
        if actions.is_empty() {
            self.busy = false;
            self.kick(ctx);
            return;
        }
        let store = self.store.clone();
        let fut = async move {
            let mut results: Vec<(Option<Value>, Option<Value>)> = Vec::new();
            for a in actions {
                match a {
                    Action::Create(obj) => match store.create(obj).await {
                        Ok(created) => results.push((Some(created), None)),
                        Err(e) => tracing::info!(controller = R::NAME, error = %e, "create failed"),
                    },
                    Action::Replace(obj) => match store.replace(obj.clone()).await {
                        Ok(written) => results.push((Some(written), None)),
                        Err(StoreError::Conflict(_) | StoreError::NotFound(_)) => {}
                        Err(e) => tracing::info!(controller = R::NAME, error = %e, "update failed"),
                    },
                    Action::Delete { key, rv } => {
                        if let Ok(Some(cur)) = store.get_key(&key) {
                            match store.delete(&key, rv).await {
                                Ok(()) => results.push((None, Some(cur))),
                                Err(e) => tracing::debug!(controller = R::NAME, error = %e, "delete failed"),
                            }
                        }
                    }
                    Action::DeleteOrphan(obj) => {
                        let live_owner = super::gc::owners(&obj).iter().any(|(kind, ns, name, uid)| {
                            let Some(k) = Kind::resolve(kind) else { return true };
                            matches!(store.get_key(&k.key(ns, name)), Ok(Some(o)) if meta_str(&o, "uid") == uid)
                        });
                        let key = key_of(&obj).unwrap_or_default();
                        let current = store.get_key(&key).ok().flatten();
                        let Some(current) = current.filter(|c| meta_str(c, "uid") == meta_str(&obj, "uid")) else {
                            continue;
                        };
                        if live_owner {
                            continue;
                        }
                        let r = if current["kind"] == "Pod" {
                            match crate::api::pods::graceful_delete(&current, None, chrono::Utc::now()) {
                                Some(marked) => store.replace(marked).await.map(|_| ()),
                                None => store.delete(&key, resource_version(&current)).await,
                            }
                        } else {
                            store.delete(&key, resource_version(&current)).await
                        };
                        match r {
                            Ok(()) => results.push((None, Some(current))),
                            Err(e) => tracing::debug!(controller = R::NAME, error = %e, "collecting failed"),
                        }
                    }
                    Action::DeletePrefix(prefix) => {
                        if let Ok((objs, _)) = store.list(&prefix) {
                            let ops: Vec<clusterd_raft::Op> =
                                objs.iter().filter_map(key_of).map(|key| clusterd_raft::Op::Delete { key }).collect();
                            if !ops.is_empty() {
                                if let Err(e) = store.txn(clusterd_raft::Txn::ops(ops)).await {
                                    tracing::debug!(controller = R::NAME, error = %e, "delete by prefix failed");
                                }
                            }
                        }
                    }
                    Action::Event { object, warning, reason, message } => {
                        let kind = if warning { EventType::Warning } else { EventType::Normal };
                        store.record_event(&object, kind, &reason, message, &format!("{}-controller", R::NAME));
                    }
                }
            }
            results
        };
        ctx.spawn(fut.into_actor(self).map(|results, act, ctx| {
            for (put, removed) in results {
                if let Some(obj) = put {
                    let newer = act
                        .cache
                        .get(Kind::of(&obj).map(|k| k.kind).unwrap_or(""), &key_of(&obj).unwrap_or_default())
                        .is_some_and(|cur| resource_version(cur) >= resource_version(&obj));
                    if !newer {
                        act.cache.put(obj);
                    }
                }
                if let Some(obj) = removed {
                    act.cache.remove(&obj);
                }
            }
            act.busy = false;
            act.kick(ctx);
        }));
    }
}

#[derive(Message)]
#[rtype(result = "()")]
enum Input {
    Change(&'static str, Change),
    Leader(bool),
}

impl<R: Reconciler> Actor for Controller<R> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        use futures::StreamExt;
        for kind in self.logic.watches() {
            let prefix = Kind::resolve(kind).expect("registered kind").prefix(None);
            ctx.add_stream(self.store.watch(prefix).map(move |c| Input::Change(kind, c)));
        }
        ctx.add_stream(informer::leadership(self.store.node()).map(Input::Leader));
    }
}

impl<R: Reconciler> StreamHandler<Input> for Controller<R> {
    fn handle(&mut self, item: Input, ctx: &mut Context<Self>) {
        match item {
            Input::Change(kind, Change::Reset(objs)) => {
                // A reset replaces one kind's objects wholesale.
                let kind = Kind::resolve(kind).map(|k| k.kind).unwrap_or(kind);
                if let Some(old) = self.cache.objects.remove(kind) {
                    for o in old.values() {
                        self.dirty.extend(self.logic.affected(o, &self.cache));
                    }
                }
                for o in objs {
                    self.dirty.extend(self.logic.affected(&o, &self.cache));
                    self.cache.put_shared(o);
                }
                // Primary objects are all looked at after a (re)list.
                let prim: Vec<String> =
                    self.cache.objects.get(R::PRIMARY).map(|m| m.keys().cloned().collect()).unwrap_or_default();
                self.dirty.extend(prim);
            }
            Input::Change(kind, Change::Put(o)) => {
                // The primary objects the old version concerned (an owner it left) and the new one.
                let old =
                    key_of(&o).and_then(|k| self.cache.get(Kind::resolve(kind).map(|k| k.kind).unwrap_or(kind), &k));
                let before = old.map(|old| self.logic.affected(old, &self.cache)).unwrap_or_default();
                self.dirty.extend(before);
                self.dirty.extend(self.logic.affected(&o, &self.cache));
                self.cache.put_shared(o);
            }
            Input::Change(_, Change::Delete(o)) => {
                self.cache.remove(&o);
                self.dirty.extend(self.logic.affected(&o, &self.cache));
            }
            Input::Leader(l) => {
                self.leader = l;
                if l {
                    let prim: Vec<String> =
                        self.cache.objects.get(R::PRIMARY).map(|m| m.keys().cloned().collect()).unwrap_or_default();
                    self.dirty.extend(prim);
                }
            }
        }
        self.kick(ctx);
    }
}
