//! The pod worker: one task per pod on this node. Each pass observes the
//! runtime, asks [`plan`](super::plan) what to do, lets the
//! [`Executor`] do it and reports the pod's status. It ends when the pod is
//! gone: after graceful termination it removes the object itself, as the
//! kubelet does. Also here: the object store as the kubelet's
//! [`ControlPlane`] — the one place that writes pod status.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;

use super::control_plane::ControlPlane;
use super::executor::{Executor, Placement};
use super::modify::{modify, typed};
use super::plan::{self, Event, EventKind, Memory, PodSpec};
use super::runtime::{HostRuntime, PodRuntime};
use super::spec::Lookup;
use super::status::{self, PodObserved};
use crate::objects::kinds::{CONFIG_MAP, POD, SECRET, SERVICE};
use crate::objects::typed::Object;
use crate::objects::{resource_version, Kind};
use crate::registry::{EventType, Registry, RegistryError};

/// What every pod worker of a node shares, on a real node.
pub type NodeEnv = Executor<HostRuntime, StoreControl>;

/// One object of the local replica in its type (`None` when it is missing).
fn read<T: serde::de::DeserializeOwned>(store: &Registry, kind: &Kind, namespace: &str, name: &str) -> Option<T> {
    typed(store.get(kind, namespace, name).ok().flatten()?)
}

impl Lookup for Registry {
    fn secret(&self, namespace: &str, name: &str) -> Option<Secret> {
        read(self, &SECRET, namespace, name)
    }

    fn config_map(&self, namespace: &str, name: &str) -> Option<ConfigMap> {
        read(self, &CONFIG_MAP, namespace, name)
    }

    fn services(&self, namespace: &str) -> Vec<Service> {
        let listed = self.list(&SERVICE, Some(namespace)).map(|(list, _)| list).unwrap_or_default();
        listed.into_iter().filter_map(typed).collect()
    }
}

/// The object store as a pod worker's control plane.
pub struct StoreControl {
    /// The object store.
    pub store: Registry,
    /// Who records events (`kubelet/<node>`).
    pub component: String,
}

impl Lookup for StoreControl {
    fn secret(&self, namespace: &str, name: &str) -> Option<Secret> {
        self.store.secret(namespace, name)
    }

    fn config_map(&self, namespace: &str, name: &str) -> Option<ConfigMap> {
        self.store.config_map(namespace, name)
    }

    fn services(&self, namespace: &str) -> Vec<Service> {
        self.store.services(namespace)
    }
}

/// A pod's namespace and name.
fn pod_name(pod: &Pod) -> (&str, &str) {
    let meta = &pod.metadata;
    (meta.namespace.as_deref().unwrap_or(""), meta.name.as_deref().unwrap_or(""))
}

impl ControlPlane for StoreControl {
    fn event(&self, pod: &Object, event: &Event) {
        let kind = match event.kind {
            EventKind::Normal => EventType::Normal,
            EventKind::Warning => EventType::Warning,
        };
        self.store.record_event(pod.raw(), kind, event.reason, event.message.clone(), &self.component);
    }

    async fn write_status(&self, pod: &Object, obs: &PodObserved) {
        let Some(seen) = pod.pod() else { return };
        let now = status::now();
        if seen.status.as_ref() == Some(&status::pod_status(seen, obs, &now)) {
            return;
        }
        let uid = seen.metadata.uid.clone();
        let (ns, name) = pod_name(seen);
        let r = modify(&self.store, &POD, ns, name, Object::pod, |cur| {
            if cur.metadata.uid != uid {
                return false;
            }
            let fresh = status::pod_status(cur, obs, &now);
            if cur.status.as_ref() == Some(&fresh) {
                return false;
            }
            cur.status = Some(fresh);
            true
        })
        .await;
        match r {
            Ok(_) | Err(RegistryError::NotFound { .. }) => {}
            Err(e) => tracing::warn!(error = %e, pod = %POD.key(ns, name), "kubelet: status update failed"),
        }
    }

    async fn remove_pod(&self, pod: &Object) {
        let Some(seen) = pod.pod() else { return };
        let uid = seen.metadata.uid.clone();
        let (ns, name) = pod_name(seen);
        let key = POD.key(ns, name);
        for _ in 0..20 {
            let cur = match self.store.get_key(&key) {
                Ok(Some(cur)) => Object::new(cur),
                _ => return,
            };
            if cur.pod().map(|p| &p.metadata.uid) != Some(&uid) {
                return;
            }
            match self.store.remove(&key, resource_version(cur.raw())).await {
                Ok(_) => return,
                Err(RegistryError::Conflict { .. }) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, pod = %key, "kubelet: removing the pod object failed");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }
}

/// One pod's worker: what it remembers and where its containers go.
pub struct Worker<R, A> {
    exec: Arc<Executor<R, A>>,
    memory: Memory,
    placement: Placement,
    seeded: bool,
    uid: String,
}

impl<R: PodRuntime, A: ControlPlane> Worker<R, A> {
    /// A worker for a pod not seen yet.
    pub fn new(exec: Arc<Executor<R, A>>) -> Self {
        Worker { exec, memory: Memory::default(), placement: Placement::default(), seeded: false, uid: String::new() }
    }

    /// What the worker remembers (for tests and diagnostics).
    pub fn memory(&self) -> &Memory {
        &self.memory
    }

    /// One pass over the pod as it is now (`None`: removed from the store at
    /// once). Returns when to look again, or `None` once the pod is gone.
    pub async fn step(&mut self, pod: Option<&Object>) -> Option<Instant> {
        let Some(obj) = pod else {
            // Removed at once (force): everything of this pod uid goes.
            let (memory, placement) = (&mut self.memory, &mut self.placement);
            let spec = PodSpec::of(&Pod::default());
            self.exec.execute(&Object::new(Value::Null), &spec, plan::gone(&self.uid), memory, placement).await;
            return None;
        };
        let Some(pod) = obj.pod() else {
            // Stored pods passed admission's schema check, so this is not expected.
            tracing::warn!("kubelet: a pod object that does not read as a Pod; waiting for it to change");
            return Some(self.exec.clock.now() + Duration::from_secs(60));
        };
        let spec = PodSpec::of(pod);
        self.uid = spec.uid.clone();
        if !self.seeded {
            self.memory.seed(pod);
            self.seeded = true;
        }
        let started = std::time::Instant::now();
        let mount_error =
            if spec.deleting || spec.terminal() { None } else { self.exec.prepare_volumes(pod, &mut self.placement) };
        let seen = self.exec.observe(&spec, &mut self.placement, mount_error.clone()).await;
        let observed_in = started.elapsed();
        let actions = plan::plan(&spec, &seen, &mut self.memory, self.exec.clock.now());
        let planned = actions.len();
        let done = self.exec.execute(obj, &spec, actions, &mut self.memory, &mut self.placement).await;
        let executed_in = started.elapsed();
        if spec.deleting {
            return None;
        }
        if done.report {
            let seen =
                if done.changed { self.exec.observe(&spec, &mut self.placement, mount_error).await } else { seen };
            let observed = plan::report(&spec, &seen, &self.memory, &self.exec.host_ip);
            self.exec.control.write_status(obj, &observed).await;
        }
        tracing::debug!(
            pod = %spec.name, actions = planned, observe = ?observed_in, execute = ?executed_in - observed_in,
            total = ?started.elapsed(), "kubelet: pod pass"
        );
        Some(self.memory.next_wakeup(self.exec.clock.now()))
    }
}

/// Run the worker of one pod until it is gone.
pub async fn run<R: PodRuntime, A: ControlPlane>(
    exec: Arc<Executor<R, A>>,
    mut rx: watch::Receiver<Option<Arc<Object>>>,
) {
    let mut w = Worker::new(exec);
    loop {
        let pod = rx.borrow_and_update().clone();
        let Some(wake) = w.step(pod.as_deref()).await else { return };
        tokio::select! {
            r = rx.changed() => if r.is_err() { return },
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
}
