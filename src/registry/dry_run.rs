//! Writes checked but not stored (`dryRun=All`, what `kubectl diff` and
//! `--dry-run=server` ask for): the same admission and patching as the real
//! write, answered with the object that would be stored.

use serde_json::Value;

use super::{Patch, Registry, RegistryError};
use crate::objects::admission;
use crate::objects::{meta_str, Kind};

impl Registry {
    /// The object a create would store.
    pub fn dry_run_create(&self, obj: Value) -> Result<Value, RegistryError> {
        let kind = super::write::kind_of(&obj)?;
        let ctx = crate::util::create_context();
        let a = admission::for_create(kind, obj, &ctx.as_ref())?;
        if self.get(a.kind, &a.namespace, &a.name)?.is_some() {
            return Err(RegistryError::already_exists(a.kind, &a.name));
        }
        Ok(a.body)
    }

    /// The object a user's update (or status update) would store.
    pub fn dry_run_update(&self, obj: Value, status_only: bool) -> Result<Value, RegistryError> {
        let kind = super::write::kind_of(&obj)?;
        let name = meta_str(&obj, "name").to_string();
        let ns = kind.namespace_or_default(meta_str(&obj, "namespace")).to_string();
        let current = self.get(kind, &ns, &name)?.ok_or_else(|| RegistryError::not_found(kind, &name))?;
        let rv = meta_str(&obj, "resourceVersion");
        if !rv.is_empty() && rv != meta_str(&current, "resourceVersion") {
            return Err(RegistryError::conflict(kind, &name));
        }
        let mut a = admission::for_update(kind, obj, &current, status_only)?;
        a.body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
        Ok(a.body)
    }

    /// The object a server-side apply would store.
    pub fn dry_run_apply(
        &self,
        kind: &'static Kind,
        namespace: &str,
        name: &str,
        body: Value,
        manager: &str,
        force: bool,
    ) -> Result<Value, RegistryError> {
        let ns = kind.namespace_or_default(namespace);
        let body = super::apply::applied_config(kind, ns, name, body, manager)?;
        let definition = crate::objects::schema::definition_of(kind);
        match self.get(kind, ns, name)? {
            None => self.dry_run_create(super::apply::applied(
                definition,
                None,
                &body,
                manager,
                force,
                &crate::util::now(),
            )?),
            Some(live) => {
                let merged =
                    super::apply::applied(definition, Some(&live), &body, manager, force, &crate::util::now())?;
                self.dry_run_update(merged, false)
            }
        }
    }

    /// The object a patch would store.
    pub fn dry_run_patch(
        &self,
        kind: &'static Kind,
        namespace: &str,
        name: &str,
        patch: &Patch,
        status: bool,
    ) -> Result<Value, RegistryError> {
        let current = self
            .get(kind, kind.namespace_or_default(namespace), name)?
            .ok_or_else(|| RegistryError::not_found(kind, name))?;
        self.dry_run_update(super::write::patched(&current, patch, "")?, status)
    }
}
