//! The pod worker: one task per pod on this node. Each pass observes the
//! runtime, asks [`plan`](super::plan) what to do, lets the
//! [`Executor`] do it and reports the pod's status. It ends when the pod is
//! gone: after graceful termination it removes the object itself, as the
//! kubelet does. Also here: the object store as the kubelet's
//! [`ControlPlane`] — the one place that writes pod status.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;

use super::control_plane::ControlPlane;
use super::executor::{Executor, Placement};
use super::plan::{self, Event, EventKind, Memory, PodSpec};
use super::runtime::{HostRuntime, PodRuntime};
use super::spec::Lookup;
use super::status::{self, PodObserved};
use crate::objects::kinds::POD;
use crate::objects::{key_of, meta_str, resource_version};
use crate::registry::{EventType, Origin, Registry, RegistryError};
use crate::util;

/// What every pod worker of a node shares, on a real node.
pub type NodeEnv = Executor<HostRuntime, StoreControl>;

impl Lookup for Registry {
    fn object(&self, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        self.get(crate::objects::Kind::resolve(kind)?, namespace, name).ok().flatten()
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
    fn object(&self, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        self.store.object(kind, namespace, name)
    }
}

impl ControlPlane for StoreControl {
    fn event(&self, pod: &Value, event: &Event) {
        let kind = match event.kind {
            EventKind::Normal => EventType::Normal,
            EventKind::Warning => EventType::Warning,
        };
        self.store.record_event(pod, kind, event.reason, event.message.clone(), &self.component);
    }

    async fn write_status(&self, pod: &Value, obs: &PodObserved) {
        let now = util::now();
        let new = status::pod_status(pod, obs, &now);
        if pod.get("status") == Some(&new) {
            return;
        }
        let Some(key) = key_of(pod) else { return };
        let uid = meta_str(pod, "uid").to_string();
        let (ns, name) = (meta_str(pod, "namespace"), meta_str(pod, "name"));
        let r = self
            .store
            .modify(&POD, ns, name, Origin::ControlPlane, |cur| {
                if meta_str(cur, "uid") != uid {
                    return false;
                }
                let fresh = status::pod_status(cur, obs, &now);
                if cur.get("status") == Some(&fresh) {
                    return false;
                }
                cur["status"] = fresh;
                true
            })
            .await;
        match r {
            Ok(_) | Err(RegistryError::NotFound { .. }) => {}
            Err(e) => tracing::warn!(error = %e, pod = %key, "kubelet: status update failed"),
        }
    }

    async fn remove_pod(&self, pod: &Value) {
        let uid = meta_str(pod, "uid").to_string();
        let Some(key) = key_of(pod) else { return };
        for _ in 0..20 {
            match self.store.get_key(&key) {
                Ok(Some(cur)) if meta_str(&cur, "uid") == uid => {
                    match self.store.remove(&key, resource_version(&cur)).await {
                        Ok(_) => return,
                        Err(RegistryError::Conflict { .. }) => continue,
                        Err(e) => {
                            tracing::warn!(error = %e, pod = %key, "kubelet: removing the pod object failed");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                    }
                }
                _ => return,
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
    pub async fn step(&mut self, pod: Option<&Value>) -> Option<Instant> {
        let Some(pod) = pod else {
            // Removed at once (force): everything of this pod uid goes.
            let (memory, placement) = (&mut self.memory, &mut self.placement);
            let spec = PodSpec::of(&Value::Null);
            self.exec.execute(&Value::Null, &spec, plan::gone(&self.uid), memory, placement).await;
            return None;
        };
        let spec = PodSpec::of(pod);
        self.uid = spec.uid.clone();
        if !self.seeded {
            self.memory.seed(pod);
            self.seeded = true;
        }
        let mount_error =
            if spec.deleting || spec.terminal() { None } else { self.exec.prepare_volumes(pod, &mut self.placement) };
        let seen = self.exec.observe(&spec, &mut self.placement, mount_error.clone()).await;
        let actions = plan::plan(&spec, &seen, &mut self.memory, self.exec.clock.now());
        let done = self.exec.execute(pod, &spec, actions, &mut self.memory, &mut self.placement).await;
        if spec.deleting {
            return None;
        }
        if done.report {
            let seen =
                if done.changed { self.exec.observe(&spec, &mut self.placement, mount_error).await } else { seen };
            let observed = plan::report(&spec, &seen, &self.memory, &self.exec.host_ip);
            self.exec.control.write_status(pod, &observed).await;
        }
        Some(self.memory.next_wakeup(self.exec.clock.now()))
    }
}

/// Run the worker of one pod until it is gone.
pub async fn run<R: PodRuntime, A: ControlPlane>(exec: Arc<Executor<R, A>>, mut rx: watch::Receiver<Option<Value>>) {
    let mut w = Worker::new(exec);
    loop {
        let pod = rx.borrow_and_update().clone();
        let Some(wake) = w.step(pod.as_ref()).await else { return };
        tokio::select! {
            r = rx.changed() => if r.is_err() { return },
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
}
