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

use super::backoff::Backoffs;
pub use crate::objects::owners::{controller_ref, controller_uid};
pub use crate::objects::pod::{available as pod_available, inactive as pod_inactive, ready as pod_ready};
use crate::objects::selector::LabelSelector;
use crate::objects::typed::Object;
use crate::objects::{key_of, meta_str, resource_version, Kind};
use crate::registry::deletion::{graceful_delete, DeleteOptions};
use crate::registry::informer::{self, Change};
use crate::registry::{EventType, Origin, Registry, RegistryError};

/// The objects a controller sees: kind name → store key → object.
#[derive(Default, Debug, Clone)]
pub struct Cache {
    objects: HashMap<&'static str, BTreeMap<String, Arc<Object>>>,
}

impl Cache {
    /// Put an object (by its kind and key).
    pub fn put(&mut self, obj: Value) {
        self.put_shared(Arc::new(Object::new(obj)));
    }

    /// Put an object shared with the informer and other caches.
    pub fn put_shared(&mut self, obj: Arc<Object>) {
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

    /// One object by kind and key.
    pub fn get(&self, kind: &Kind, key: &str) -> Option<&Value> {
        self.object(kind, key).map(|o| o.raw())
    }

    /// One object, with its typed form, by kind and key.
    pub fn object(&self, kind: &Kind, key: &str) -> Option<&Object> {
        self.objects.get(kind.kind)?.get(key).map(|o| &**o)
    }

    /// Every object of a kind.
    pub fn all(&self, kind: &Kind) -> impl Iterator<Item = &Value> {
        self.objects(kind).map(Object::raw)
    }

    /// Every object of a kind, with their typed forms.
    pub fn objects(&self, kind: &Kind) -> impl Iterator<Item = &Object> {
        self.objects.get(kind.kind).into_iter().flat_map(|m| m.values()).map(|o| &**o)
    }

    /// Objects of a kind in a namespace.
    pub fn in_namespace<'a>(&'a self, kind: &Kind, ns: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.all(kind).filter(move |o| meta_str(o, "namespace") == ns)
    }

    /// Objects of a kind in a namespace, with their typed forms.
    pub fn objects_in<'a>(&'a self, kind: &Kind, ns: &'a str) -> impl Iterator<Item = &'a Object> + 'a {
        self.objects(kind).filter(move |o| meta_str(o, "namespace") == ns)
    }

    /// Objects of a kind whose controller owner has this uid.
    pub fn owned_by<'a>(&'a self, kind: &Kind, ns: &'a str, uid: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.in_namespace(kind, ns).filter(move |o| controller_uid(o).as_deref() == Some(uid))
    }
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
    match graceful_delete(pod, None, now) {
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
    /// The primary kind.
    const PRIMARY: &'static Kind;
    /// Every kind watched (the primary one included).
    fn watches(&self) -> Vec<&'static Kind>;
    /// The primary keys a change to `obj` concerns.
    fn affected(&self, obj: &Value, cache: &Cache) -> Vec<String>;
    /// Bring one primary object's world towards its spec.
    fn reconcile(&self, key: &str, cache: &Cache, now: chrono::DateTime<chrono::Utc>) -> Outcome;
}

/// The usual `affected`: a primary object concerns itself, a dependent of kind
/// `dependent` concerns its owners of the primary kind.
pub fn self_or_owners(obj: &Value, primary: &Kind, dependent: &Kind) -> Vec<String> {
    match Kind::of(obj) {
        Some(k) if k == primary => key_of(obj).into_iter().collect(),
        Some(k) if k == dependent => owner_keys(obj, primary),
        _ => vec![],
    }
}

/// The keys of the controller owners of `obj` of kind `primary`, in its namespace.
pub fn owner_keys(obj: &Value, primary: &Kind) -> Vec<String> {
    let ns = meta_str(obj, "namespace");
    crate::objects::owners::owner_names(obj, primary.kind).map(|name| primary.key(ns, name)).collect()
}

/// Which write of an action failed, for its Event's reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    /// Creating an object.
    Create,
    /// Updating an object.
    Update,
    /// Deleting an object.
    Delete,
}

impl Verb {
    /// Kubernetes' Event reason and message prefix for a failure of this verb.
    pub fn failure(self) -> (&'static str, &'static str) {
        match self {
            Verb::Create => ("FailedCreate", "Error creating"),
            Verb::Update => ("FailedUpdate", "Error updating"),
            Verb::Delete => ("FailedDelete", "Error deleting"),
        }
    }
}

/// One failed write of a round: the primary object whose reconcile asked for
/// it, what was being done, and why it failed.
struct Failure {
    key: String,
    verb: Verb,
    error: RegistryError,
}

/// What a round wrote (to put into the cache at once) and what failed.
#[derive(Default)]
struct Written {
    put: Vec<Value>,
    removed: Vec<Value>,
    failed: Vec<Failure>,
}

/// Carry out one action on the registry.
async fn execute(
    store: &Registry,
    action: Action,
    component: &str,
    out: &mut Written,
) -> Result<(), (Verb, RegistryError)> {
    match action {
        Action::Create(obj) => {
            out.put.push(store.create(obj).await.map_err(|e| (Verb::Create, e))?);
        }
        Action::Replace(obj) => {
            out.put.push(store.update(obj, Origin::ControlPlane).await.map_err(|e| (Verb::Update, e))?);
        }
        Action::Delete { key, rv } => {
            if let Ok(Some(cur)) = store.get_key(&key) {
                store.remove(&key, rv).await.map_err(|e| (Verb::Delete, e))?;
                out.removed.push(cur);
            }
        }
        Action::DeleteOrphan(obj) => {
            let live_owner = crate::objects::owners::owners(&obj).iter().any(|o| {
                let Some(k) = Kind::resolve(&o.kind) else { return true };
                matches!(store.get(k, &o.namespace, &o.name), Ok(Some(cur)) if meta_str(&cur, "uid") == o.uid)
            });
            let Some(kind) = Kind::of(&obj) else { return Ok(()) };
            let (ns, name, uid) = (meta_str(&obj, "namespace"), meta_str(&obj, "name"), meta_str(&obj, "uid"));
            if live_owner {
                return Ok(());
            }
            let opts = DeleteOptions { uid: Some(uid.to_string()), ..DeleteOptions::default() };
            match store.delete(kind, ns, name, &opts).await {
                Ok(last) if crate::objects::being_deleted(&last) => out.put.push(last),
                Ok(last) => out.removed.push(last),
                Err(RegistryError::NotFound { .. }) => {}
                Err(e) => return Err((Verb::Delete, e)),
            }
        }
        Action::DeletePrefix(prefix) => {
            store.remove_prefix(&prefix).await.map_err(|e| (Verb::Delete, e))?;
        }
        Action::Event { object, warning, reason, message } => {
            let kind = if warning { EventType::Warning } else { EventType::Normal };
            store.record_event(&object, kind, &reason, message, component);
        }
    }
    Ok(())
}

/// The actor that runs a [`Reconciler`] on the leader.
pub struct Controller<R: Reconciler> {
    logic: R,
    store: Registry,
    cache: Cache,
    leader: bool,
    dirty: BTreeSet<String>,
    busy: bool,
    timers: BTreeSet<String>,
    backoffs: Backoffs,
}

impl<R: Reconciler> Controller<R> {
    /// A controller on `store`'s node.
    pub fn new(logic: R, store: Registry) -> Self {
        Controller {
            logic,
            store,
            cache: Cache::default(),
            leader: false,
            dirty: BTreeSet::new(),
            busy: false,
            timers: BTreeSet::new(),
            backoffs: Backoffs::default(),
        }
    }

    fn kick(&mut self, ctx: &mut Context<Self>) {
        if !self.leader || self.busy || self.dirty.is_empty() {
            return;
        }
        self.busy = true;
        ctx.run_later(Duration::from_millis(5), |act, ctx| act.round(ctx));
    }

    /// Look at `key` again after `after` (one timer per key at a time).
    fn requeue(&mut self, key: String, after: Duration, ctx: &mut Context<Self>) {
        if self.timers.insert(key.clone()) {
            ctx.run_later(after, move |act, ctx| {
                act.timers.remove(&key);
                act.dirty.insert(key);
                act.kick(ctx);
            });
        }
    }

    fn round(&mut self, ctx: &mut Context<Self>) {
        let now = chrono::Utc::now();
        let keys = std::mem::take(&mut self.dirty);
        let mut actions = Vec::new();
        for key in keys {
            let out = self.logic.reconcile(&key, &self.cache, now);
            if let Some(after) = out.requeue_after {
                self.requeue(key.clone(), after, ctx);
            }
            if out.actions.is_empty() {
                self.backoffs.succeeded(&key);
            }
            actions.extend(out.actions.into_iter().map(|a| (key.clone(), a)));
        }
        if actions.is_empty() {
            self.busy = false;
            self.kick(ctx);
            return;
        }
        let store = self.store.clone();
        let component = format!("{}-controller", R::NAME);
        let fut = async move {
            let mut out = Written::default();
            let mut failed_keys = BTreeSet::new();
            let mut done_keys = BTreeSet::new();
            for (key, action) in actions {
                // After one failed write, the rest of that object's actions wait for its retry.
                if failed_keys.contains(&key) {
                    continue;
                }
                match execute(&store, action, &component, &mut out).await {
                    Ok(()) => {
                        done_keys.insert(key);
                    }
                    Err((verb, error)) => {
                        failed_keys.insert(key.clone());
                        out.failed.push(Failure { key, verb, error });
                    }
                }
            }
            (out, done_keys.difference(&failed_keys).cloned().collect::<Vec<_>>())
        };
        ctx.spawn(fut.into_actor(self).map(|(written, succeeded), act, ctx| {
            for obj in written.put {
                let newer = Kind::of(&obj)
                    .and_then(|k| act.cache.get(k, &key_of(&obj)?))
                    .is_some_and(|cur| resource_version(cur) >= resource_version(&obj));
                if !newer {
                    act.cache.put(obj);
                }
            }
            for obj in written.removed {
                act.cache.remove(&obj);
            }
            for key in succeeded {
                act.backoffs.succeeded(&key);
            }
            for f in written.failed {
                act.failed(f, ctx);
            }
            act.busy = false;
            act.kick(ctx);
        }));
    }

    /// A write failed: look at its object again after a growing delay, and
    /// tell of it with an Event on the object (races with other writers are
    /// only retried: the next look sees the newer state).
    fn failed(&mut self, f: Failure, ctx: &mut Context<Self>) {
        let delay = self.backoffs.failed(&f.key);
        let (reason, doing) = f.verb.failure();
        let race = matches!(f.error, RegistryError::Conflict { .. } | RegistryError::NotFound { .. });
        if race {
            tracing::debug!(controller = R::NAME, key = %f.key, error = %f.error, ?delay, "write lost a race; retrying");
        } else {
            tracing::info!(controller = R::NAME, key = %f.key, error = %f.error, ?delay, "{reason}; retrying");
            if let Some(obj) = self.cache.get(R::PRIMARY, &f.key) {
                let component = format!("{}-controller", R::NAME);
                let message = format!("{doing}: {}", f.error);
                self.store.record_repeated_event(obj, EventType::Warning, reason, message, &component);
            }
        }
        self.requeue(f.key, delay, ctx);
    }
}

#[derive(Message)]
#[rtype(result = "()")]
enum Input {
    Change(&'static Kind, Change),
    Leader(bool),
}

impl<R: Reconciler> Actor for Controller<R> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        use futures::StreamExt;
        for kind in self.logic.watches() {
            ctx.add_stream(self.store.watch(kind).map(move |c| Input::Change(kind, c)));
        }
        ctx.add_stream(informer::leadership(self.store.node()).map(Input::Leader));
    }
}

impl<R: Reconciler> StreamHandler<Input> for Controller<R> {
    fn handle(&mut self, item: Input, ctx: &mut Context<Self>) {
        match item {
            Input::Change(kind, Change::Reset(objs)) => {
                // A reset replaces one kind's objects wholesale.
                if let Some(old) = self.cache.objects.remove(kind.kind) {
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
                    self.cache.objects.get(R::PRIMARY.kind).map(|m| m.keys().cloned().collect()).unwrap_or_default();
                self.dirty.extend(prim);
            }
            Input::Change(kind, Change::Put(o)) => {
                // The primary objects the old version concerned (an owner it left) and the new one.
                let old = key_of(&o).and_then(|k| self.cache.get(kind, &k));
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
                    let prim: Vec<String> = self
                        .cache
                        .objects
                        .get(R::PRIMARY.kind)
                        .map(|m| m.keys().cloned().collect())
                        .unwrap_or_default();
                    self.dirty.extend(prim);
                }
            }
        }
        self.kick(ctx);
    }
}
