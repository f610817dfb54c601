//! Controllers that run on every control-plane node and act while it leads:
//! each is a pure reconcile ([`framework::Reconciler`]) run by one actor.

pub mod apiserver_endpoints;
pub mod backoff;
pub mod cache;
pub mod daemonset;
pub mod deployment;
pub mod endpoints;
pub mod endpointslice;
pub mod framework;
pub mod gc;
pub mod job;
pub mod namespace;
#[cfg(test)]
mod namespace_tests;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod replicaset;
pub mod runner;
pub mod service_pods;
pub mod serviceaccount;
pub mod statefulset;
