//! What a pod worker asks of the control plane, as a trait: read secrets and
//! configMaps, record events, write the pod's status, remove the pod object at
//! the end of a graceful deletion. The object store implements it on the node
//! (in `worker`, the one place that writes pod status); a recorder
//! implements it in tests.

use std::future::Future;

use crate::objects::typed::Object;

use super::plan::Event;
use super::spec::Lookup;
use super::status::PodObserved;

/// The control plane as a pod worker sees it.
pub trait ControlPlane: Lookup + Send + Sync + 'static {
    /// Record an event on the pod (fire and forget).
    fn event(&self, pod: &Object, event: &Event);
    /// Write the status computed from `observed`, unless it is unchanged.
    fn write_status(&self, pod: &Object, observed: &PodObserved) -> impl Future<Output = ()> + Send;
    /// Remove the pod object (its containers are gone).
    fn remove_pod(&self, pod: &Object) -> impl Future<Output = ()> + Send;
}
