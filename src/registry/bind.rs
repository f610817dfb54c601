//! Bindings: the scheduler's decisions written many to a transaction. Each pod
//! is written only if it is still the version the scheduler decided on; one
//! pod that changed meanwhile drops out of its batch and the rest are written.

use std::collections::HashSet;

use serde_json::{json, Value};

use clusterd_raft::{Compare, Op, Txn};

use super::{Registry, RegistryError};
use crate::objects::{encode, key_of};

/// Pods written per transaction.
pub const BATCH: usize = 1000;

/// One pod write of the scheduler (a binding, or an unschedulable status).
#[derive(Clone, Debug)]
pub struct Binding {
    /// The pod's store key.
    pub key: String,
    /// The resourceVersion the decision was made on.
    pub expected: u64,
    /// The pod to write.
    pub pod: Value,
    /// The Event that tells of it, written in the same transaction.
    pub event: Value,
}

/// What became of a round of bindings.
#[derive(Debug, Default)]
pub struct Bound {
    /// Pods written, with their new resourceVersion.
    pub written: Vec<(String, Value)>,
    /// Keys of pods not written (changed meanwhile, or the store failed).
    pub failed: HashSet<String>,
}

impl Registry {
    /// Write the scheduler's pods (a control-plane write) in transactions of
    /// [`BATCH`]; a failed compare drops that pod and retries the rest.
    pub async fn bind(&self, bindings: Vec<Binding>) -> Bound {
        let mut out = Bound::default();
        for chunk in bindings.chunks(BATCH) {
            let mut batch: Vec<&Binding> = chunk.iter().collect();
            while !batch.is_empty() {
                let txn = Txn {
                    compares: batch.iter().map(|b| Compare::ModRevision(b.key.clone(), b.expected)).collect(),
                    success: batch
                        .iter()
                        .flat_map(|b| {
                            let event = key_of(&b.event).map(|key| Op::Put { key, value: encode(&b.event) });
                            std::iter::once(Op::Put { key: b.key.clone(), value: encode(&b.pod) }).chain(event)
                        })
                        .collect(),
                };
                match self.propose(txn).await {
                    Ok(r) => match r.failed_compare {
                        None => {
                            for b in &batch {
                                let mut pod = b.pod.clone();
                                pod["metadata"]["resourceVersion"] = json!(r.revision.to_string());
                                out.written.push((b.key.clone(), pod));
                            }
                            break;
                        }
                        Some(at) => {
                            out.failed.insert(batch.remove(at).key.clone());
                        }
                    },
                    Err(e) => {
                        log_failure(&e);
                        out.failed.extend(batch.iter().map(|b| b.key.clone()));
                        break;
                    }
                }
            }
        }
        out
    }
}

fn log_failure(e: &RegistryError) {
    tracing::warn!(error = %e, "scheduler: binding failed");
}
