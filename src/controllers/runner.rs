//! The actor that runs a [`Reconciler`] on the leader: it keeps the cache fed
//! by the informers, reconciles the dirty primary objects in rounds, carries
//! out their actions in order on the registry, and puts what was written back
//! into the cache at once, so the next round does not act twice on an object
//! the informer has not shown yet. A failed write is retried per object with
//! back-off and told as an Event on the object.

use std::collections::BTreeSet;
use std::time::Duration;

use actix::prelude::*;
use serde_json::Value;

use super::backoff::Backoffs;
use super::cache::Cache;
use super::framework::{Action, Reconciler};
use crate::objects::{key_of, meta_str, resource_version, Kind};
use crate::registry::deletion::DeleteOptions;
use crate::registry::informer::{self, Change};
use crate::registry::{EventType, Origin, Registry, RegistryError};

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
                for o in self.cache.clear(kind) {
                    self.dirty.extend(self.logic.affected(&o, &self.cache));
                }
                for o in objs {
                    self.dirty.extend(self.logic.affected(&o, &self.cache));
                    self.cache.put_shared(o);
                }
                // Primary objects are all looked at after a (re)list.
                let prim = self.cache.keys(R::PRIMARY);
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
                    let prim = self.cache.keys(R::PRIMARY);
                    self.dirty.extend(prim);
                }
            }
        }
        self.kick(ctx);
    }
}
