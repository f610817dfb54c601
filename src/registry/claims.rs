//! The registry's transactions of Services and their allocation records:
//! a create or update claims the addresses [`allocate::plan`] chose in the
//! Service's own Raft transaction (picking again when another writer took an
//! automatic pick first), and every removal of a Service releases its records
//! in the transaction that removes it.

use std::collections::BTreeSet;

use serde_json::Value;

use clusterd_raft::{Compare, Op, Txn};

use super::allocate::{self, Holdings, Lost, Plan};
use super::write::stamped;
use super::{Registry, RegistryError};
use crate::objects::admission::{Admitted, Invalid};
use crate::objects::{kinds, meta_str};

/// How often a create or update is tried again when an automatic pick was
/// taken by a concurrent write.
const PICK_RETRIES: usize = 16;
/// How often a removal is tried again when the Service changed meanwhile.
const REMOVE_RETRIES: usize = 5;

/// Whether `key` is a Service's store key.
pub(super) fn is_service_key(key: &str) -> bool {
    key.starts_with(&kinds::SERVICE.prefix(None))
}

impl Registry {
    /// Decide the addresses of a Service being written (`old` None: created),
    /// writing them into `body`; `lost` are records an earlier attempt found
    /// taken.
    pub(super) fn plan_service(
        &self,
        old: Option<&Value>,
        body: &mut Value,
        lost: &BTreeSet<String>,
    ) -> Result<Plan, RegistryError> {
        let net = self.service_network();
        let taken = |key: &str| lost.contains(key) || self.reader().get(key).ok().flatten().is_some();
        allocate::plan(&net, old, body, &taken, &mut rand::thread_rng(), &crate::util::now()).map_err(|causes| {
            RegistryError::Invalid(Invalid {
                kind: kinds::SERVICE.kind.into(),
                name: meta_str(body, "name").into(),
                causes,
            })
        })
    }

    /// Create a Service that passed admission, with its addresses, in one
    /// transaction: compares 0 (name free) and 1 (namespace exists), then one
    /// per claimed record.
    pub(super) async fn create_service(&self, a: Admitted) -> Result<Value, RegistryError> {
        let mut lost = BTreeSet::new();
        for _ in 0..PICK_RETRIES {
            let mut a = a.clone();
            let plan = self.plan_service(None, &mut a.body, &lost)?;
            let mut txn = a.create_txn()?;
            let base = plan.add_to(&mut txn, &a.key);
            let resp = self.propose(txn).await?;
            match resp.failed_compare {
                None => return Ok(stamped(a.body, resp.revision)),
                Some(0) => return Err(RegistryError::already_exists(a.kind, &a.name)),
                Some(i) => match plan.lost(i, base) {
                    None => return Err(RegistryError::not_found(&kinds::NAMESPACE, &a.namespace)),
                    Some(Lost::Refused(cause)) => return Err(refused(&a.name, cause)),
                    Some(Lost::PickAgain(key)) => {
                        tracing::debug!(record = %key, service = %a.key, "allocation race lost: picking again");
                        lost.insert(key);
                    }
                },
            }
        }
        Err(RegistryError::conflict(a.kind, &a.name))
    }

    /// The records a removal of the Service stored as `value` at `key`
    /// releases: those it holds that are recorded as its own.
    pub(super) fn records_of(&self, key: &str, value: &[u8]) -> Vec<Op> {
        let Ok(svc) = serde_json::from_slice::<Value>(value) else { return Vec::new() };
        Holdings::of(&svc)
            .keys()
            .into_iter()
            .filter(|record| self.reader().get(record).ok().flatten().is_some_and(|kv| kv.value == key.as_bytes()))
            .map(|key| Op::Delete { key })
            .collect()
    }

    /// Remove the Service at `key` (if its resourceVersion is still `rv`; 0:
    /// any) with its allocation records, in one transaction.
    pub(super) async fn remove_service(&self, key: &str, rv: u64) -> Result<u64, RegistryError> {
        let Some(mut seen) = self.reader().get(key)? else {
            return self.remove_plain(key, rv).await;
        };
        let at_key = || (String::from("object"), key.to_string());
        for _ in 0..REMOVE_RETRIES {
            if rv != 0 && seen.mod_revision != rv {
                return Err(RegistryError::Conflict { resource: at_key().0, name: at_key().1 });
            }
            let mut success = vec![Op::Delete { key: key.to_string() }];
            success.extend(self.records_of(key, &seen.value));
            let txn = Txn { compares: vec![Compare::ModRevision(key.to_string(), seen.mod_revision)], success };
            let resp = self.propose(txn).await?;
            match (resp.failed_compare, resp.current) {
                (None, _) => return Ok(resp.revision),
                (Some(_), None) => return Err(RegistryError::NotFound { resource: at_key().0, name: at_key().1 }),
                (Some(_), Some(current)) => seen = current,
            }
        }
        Err(RegistryError::Conflict { resource: at_key().0, name: at_key().1 })
    }

    /// The allocation records held by the objects at `removed` (all under
    /// `prefix`: a namespace's Services going at once), if the prefix can
    /// cover Services at all.
    pub(super) fn records_under(&self, prefix: &str, removed: &BTreeSet<String>) -> Result<Vec<Op>, RegistryError> {
        let services = kinds::SERVICE.prefix(None);
        if !(services.starts_with(prefix) || prefix.starts_with(&services)) {
            return Ok(Vec::new());
        }
        let mut ops = Vec::new();
        for records in [allocate::CLUSTER_IPS, allocate::NODE_PORTS] {
            let (kvs, _) = self.reader().list(records)?;
            let owned = |value: &[u8]| std::str::from_utf8(value).is_ok_and(|owner| removed.contains(owner));
            ops.extend(kvs.into_iter().filter(|kv| owned(&kv.value)).map(|kv| Op::Delete { key: kv.key }));
        }
        Ok(ops)
    }
}

/// The refusal of a Service whose requested address is taken.
fn refused(name: &str, cause: crate::objects::validate::FieldError) -> RegistryError {
    RegistryError::Invalid(Invalid { kind: kinds::SERVICE.kind.into(), name: name.into(), causes: vec![cause] })
}
