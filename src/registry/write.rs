//! Create, update, update_status, modify and patch: admission for user writes,
//! then one compare-and-swap proposal through Raft.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use clusterd_raft::{Compare, Op, Txn};

use super::allocate::Lost;
use super::{Origin, Patch, Registry, RegistryError};
use crate::objects::admission::{self, Admitted, Invalid};
use crate::objects::validate::FieldError;
use crate::objects::{encode, key_of, kinds, meta_str, resource_version, Kind};

/// How often an unconditional write (no resourceVersion given) is tried again
/// when another writer got in between.
const USER_RETRIES: usize = 5;
/// The same for the control plane's read-modify-writes.
const MODIFY_RETRIES: usize = 10;

pub(super) fn kind_of(obj: &Value) -> Result<&'static Kind, RegistryError> {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    let api = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    Kind::of(obj)
        .ok_or_else(|| RegistryError::BadRequest(format!("no kind \"{kind}\" is registered for version \"{api}\"")))
}

/// `current` with `patch` applied, and the fields it changed recorded as
/// `manager`'s (when named).
pub(super) fn patched(current: &Value, patch: &Patch, manager: &str) -> Result<Value, RegistryError> {
    let mut out = patch.apply(current).map_err(|e| RegistryError::BadRequest(e.to_string()))?;
    if !manager.is_empty() {
        super::apply::record_update(manager, current, &mut out);
    }
    Ok(out)
}

pub(super) fn stamped(mut body: Value, revision: u64) -> Value {
    body["metadata"]["resourceVersion"] = json!(revision.to_string());
    body
}

fn parse_rv(kind: &Kind, obj: &Value) -> Result<Option<u64>, RegistryError> {
    match meta_str(obj, "resourceVersion") {
        "" => Ok(None),
        rv => rv.parse().map(Some).map_err(|_| {
            RegistryError::Invalid(Invalid {
                kind: kind.kind.into(),
                name: meta_str(obj, "name").into(),
                causes: vec![FieldError::invalid("metadata.resourceVersion", rv, "must be a number")],
            })
        }),
    }
}

impl Registry {
    /// Create an object: admission (defaults, validation, uid, timestamps,
    /// generated name), then a write that succeeds only if the name is free and
    /// the namespace exists and is not terminating.
    pub async fn create(&self, obj: Value) -> Result<Value, RegistryError> {
        let kind = kind_of(&obj)?;
        let ctx = crate::util::create_context();
        let a = admission::for_create(kind, obj, &ctx.as_ref())?;
        self.create_admitted(a).await
    }

    /// Create an object that has passed admission.
    pub async fn create_admitted(&self, a: Admitted) -> Result<Value, RegistryError> {
        if self.terminating(&a.namespace) {
            return Err(RegistryError::Forbidden(format!(
                "{} \"{}\" is forbidden: unable to create new content in namespace {} because it is being terminated",
                a.kind.plural, a.name, a.namespace
            )));
        }
        if *a.kind == kinds::SERVICE {
            return self.create_service(a).await;
        }
        let resp = self.propose(a.create_txn()?).await?;
        match resp.failed_compare {
            None => Ok(stamped(a.body, resp.revision)),
            Some(0) => Err(RegistryError::already_exists(a.kind, &a.name)),
            Some(_) => Err(RegistryError::not_found(&crate::objects::kinds::NAMESPACE, &a.namespace)),
        }
    }

    /// Replace an object.
    ///
    /// A user's update passes admission: status is kept, server-owned metadata
    /// is kept, immutable fields are checked, a spec change bumps the
    /// generation; with a resourceVersion it must be current (else Conflict),
    /// without one it is retried over concurrent writes. The control plane's
    /// update writes the object as given, if its resourceVersion is current
    /// (0: only if it does not exist yet).
    pub async fn update(&self, obj: Value, origin: Origin) -> Result<Value, RegistryError> {
        match origin {
            Origin::User => self.admit_update(obj, false).await,
            Origin::ControlPlane => self.replace(obj).await,
        }
    }

    /// A user's create by a named field manager: every field it sets is
    /// recorded as its own in `managedFields`.
    pub async fn create_by(&self, mut obj: Value, manager: &str) -> Result<Value, RegistryError> {
        if !manager.is_empty() {
            super::apply::record_update(manager, &Value::Null, &mut obj);
        }
        self.create(obj).await
    }

    /// A user's update (or status update) by a named field manager: the
    /// fields it changes are recorded as its own in `managedFields`.
    pub async fn update_by(&self, mut obj: Value, status_only: bool, manager: &str) -> Result<Value, RegistryError> {
        if !manager.is_empty() {
            let kind = kind_of(&obj)?;
            let ns = kind.namespace_or_default(meta_str(&obj, "namespace")).to_string();
            if let Some(current) = self.get(kind, &ns, meta_str(&obj, "name"))? {
                super::apply::record_update(manager, &current, &mut obj);
            }
        }
        if status_only {
            self.update_status(obj).await
        } else {
            self.update(obj, Origin::User).await
        }
    }

    /// Replace only the status of an object (the status subresource): the
    /// rest of the stored object is kept.
    pub async fn update_status(&self, obj: Value) -> Result<Value, RegistryError> {
        self.admit_update(obj, true).await
    }

    async fn admit_update(&self, obj: Value, status_only: bool) -> Result<Value, RegistryError> {
        let kind = kind_of(&obj)?;
        let ns = kind.namespace_or_default(meta_str(&obj, "namespace")).to_string();
        let name = meta_str(&obj, "name").to_string();
        if name.is_empty() {
            return Err(RegistryError::Invalid(Invalid {
                kind: kind.kind.into(),
                name,
                causes: vec![FieldError::required("metadata.name")],
            }));
        }
        let key = kind.key(&ns, &name);
        let expected = parse_rv(kind, &obj)?;
        // Automatic Service addresses another write took meanwhile.
        let mut lost = BTreeSet::new();
        for _ in 0..USER_RETRIES {
            let existing =
                self.current_for_write(&key, expected).await?.ok_or_else(|| RegistryError::not_found(kind, &name))?;
            if expected.is_some_and(|rv| rv != existing.mod_revision) {
                return Err(RegistryError::conflict(kind, &name));
            }
            let current: Value = serde_json::from_slice(&existing.value)?;
            let mut a = admission::for_update(kind, obj.clone(), &current, status_only)?;
            let plan = if *kind == kinds::SERVICE && !status_only {
                Some(self.plan_service(Some(&current), &mut a.body, &lost)?)
            } else {
                None
            };
            if a.body == current {
                return Ok(stamped(current, existing.mod_revision));
            }
            let mut txn = Txn {
                compares: vec![Compare::ModRevision(key.clone(), existing.mod_revision)],
                success: vec![Op::Put { key: key.clone(), value: a.bytes()? }],
            };
            let base = plan.as_ref().map(|p| p.add_to(&mut txn, &key));
            let resp = self.propose(txn).await?;
            let lost_claim = resp.failed_compare.zip(plan.as_ref().zip(base)).and_then(|(i, (p, b))| p.lost(i, b));
            match (resp.failed_compare, lost_claim) {
                (None, _) => return Ok(stamped(a.body, resp.revision)),
                (_, Some(Lost::Refused(cause))) => {
                    return Err(RegistryError::Invalid(Invalid { kind: kind.kind.into(), name, causes: vec![cause] }))
                }
                (_, Some(Lost::PickAgain(record))) => {
                    lost.insert(record);
                }
                (Some(_), None) if resp.current.is_none() => return Err(RegistryError::not_found(kind, &name)),
                (Some(_), None) if expected.is_some() => return Err(RegistryError::conflict(kind, &name)),
                (Some(_), None) => {}
            }
        }
        Err(RegistryError::conflict(kind, &name))
    }

    /// The control plane's write of `obj` if its resourceVersion is still current.
    async fn replace(&self, obj: Value) -> Result<Value, RegistryError> {
        let kind = kind_of(&obj)?;
        let key = key_of(&obj).unwrap_or_default();
        let name = meta_str(&obj, "name").to_string();
        let rv = resource_version(&obj);
        let txn = Txn {
            compares: vec![Compare::ModRevision(key.clone(), rv)],
            success: vec![Op::Put { key, value: encode(&obj) }],
        };
        let resp = self.propose(txn).await?;
        match resp.failed_compare {
            None => Ok(stamped(obj, resp.revision)),
            Some(_) if resp.current.is_none() && rv != 0 => Err(RegistryError::not_found(kind, &name)),
            Some(_) if rv == 0 => Err(RegistryError::already_exists(kind, &name)),
            Some(_) => Err(RegistryError::conflict(kind, &name)),
        }
    }

    /// Read-modify-write: `change` edits the current object and says whether
    /// anything changed (nothing is written if not); a write that loses a race
    /// reads again and retries. Returns the written object, if one was written.
    pub async fn modify(
        &self,
        kind: &Kind,
        namespace: &str,
        name: &str,
        origin: Origin,
        mut change: impl FnMut(&mut Value) -> bool,
    ) -> Result<Option<Value>, RegistryError> {
        for _ in 0..MODIFY_RETRIES {
            let Some(mut obj) = self.get(kind, namespace, name)? else {
                return Err(RegistryError::not_found(kind, name));
            };
            if !change(&mut obj) {
                return Ok(None);
            }
            match self.update(obj, origin).await {
                Ok(v) => return Ok(Some(v)),
                Err(RegistryError::Conflict { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(RegistryError::conflict(kind, name))
    }

    /// Patch an object (JSON patch or merge patch), or its status: the patch
    /// is applied to the current object and the result written as a user's
    /// update of that version (retried when another write got in between).
    pub async fn patch(
        &self,
        kind: &'static Kind,
        namespace: &str,
        name: &str,
        patch: &Patch,
        status: bool,
    ) -> Result<Value, RegistryError> {
        self.patch_by(kind, namespace, name, patch, status, "").await
    }

    /// [`Registry::patch`] by a named field manager (a REST request's
    /// `fieldManager`): the fields it changes are recorded as its own in
    /// `managedFields` (operation Update), as server-side apply reads them.
    pub async fn patch_by(
        &self,
        kind: &'static Kind,
        namespace: &str,
        name: &str,
        patch: &Patch,
        status: bool,
        manager: &str,
    ) -> Result<Value, RegistryError> {
        let ns = kind.namespace_or_default(namespace);
        for _ in 0..USER_RETRIES {
            let current = self.get(kind, ns, name)?.ok_or_else(|| RegistryError::not_found(kind, name))?;
            // The patched object keeps the version it was made from (unless the
            // patch itself names one): a write in between is a conflict, retried.
            let patched = patched(&current, patch, manager)?;
            let r = if status { self.update_status(patched).await } else { self.update(patched, Origin::User).await };
            match r {
                Err(RegistryError::Conflict { .. }) => continue,
                other => return other,
            }
        }
        Err(RegistryError::conflict(kind, name))
    }
}
