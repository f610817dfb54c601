//! Lists and watches of one kind as both API doors serve them: selected by
//! labels and fields, read at one revision; a watch replays the history after
//! a revision (or the current state first), then follows the live feed, with
//! bookmarks if asked.

use std::time::Duration;

use futures::{Stream, StreamExt};
use serde_json::{json, Value};

use clusterd_raft::{EventKind, WatchItem};

use super::{Registry, RegistryError};
use crate::objects::selector::{FieldSelector, LabelSelector};
use crate::objects::{with_resource_version, Kind};

/// What a watch delivers.
#[derive(Clone, Debug, PartialEq)]
pub struct WatchEvent {
    /// `ADDED`, `MODIFIED`, `DELETED` or `BOOKMARK`.
    pub kind: &'static str,
    /// The object (for a bookmark: only its kind and resourceVersion).
    pub object: Value,
    /// The revision of the change.
    pub revision: u64,
}

/// Which objects a list or watch selects.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// The namespace ("" or None: all).
    pub namespace: Option<String>,
    /// Label selector.
    pub labels: LabelSelector,
    /// Field selector.
    pub fields: FieldSelector,
}

impl Selection {
    /// The narrowest key prefix holding every selected object: one object's
    /// key when the selector names it (a `delete --wait`, an informer of one
    /// object), else the namespace's or the kind's prefix.
    fn prefix(&self, kind: &Kind) -> String {
        let ns = self
            .namespace
            .as_deref()
            .filter(|n| !n.is_empty())
            .or_else(|| self.fields.required("metadata.namespace"))
            .filter(|_| kind.namespaced);
        match (self.fields.required("metadata.name"), ns) {
            (Some(name), Some(ns)) => kind.key(ns, name),
            (Some(name), None) if !kind.namespaced => kind.key("", name),
            _ => kind.prefix(ns),
        }
    }

    /// Whether every object is selected (no label or field selector).
    pub fn everything(&self) -> bool {
        self.labels.0.is_empty() && self.fields.fields().next().is_none()
    }

    /// Whether `obj` is selected.
    pub fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(obj) && self.fields.matches(obj)
    }
}

/// A `<Kind>List` document around objects' JSON bytes (never parsed).
pub fn list_document(kind: &Kind, meta: &Value, items: &[Vec<u8>]) -> Vec<u8> {
    let head = json!({"kind": kind.list_kind(), "apiVersion": kind.api_version, "metadata": meta}).to_string();
    let mut out = Vec::with_capacity(head.len() + 12 + items.iter().map(|b| b.len() + 1).sum::<usize>());
    out.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
    out.extend_from_slice(b",\"items\":[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(item);
    }
    out.extend_from_slice(b"]}");
    out
}

/// The objects a watch's client holds as selected.
struct Held {
    keys: std::collections::HashSet<String>,
    /// Whether `keys` is every selected object the client holds (the watch
    /// began with the current state, or selects everything); else an object
    /// changed before it was seen may be held already.
    complete: bool,
}

impl Held {
    /// What a change of `key` is to the client, if anything: ADDED when it
    /// starts being selected, MODIFIED while it stays, DELETED when it is
    /// deleted or stops being selected.
    fn event(&mut self, key: &str, deleted: bool, existed: bool, selected: bool) -> Option<&'static str> {
        let held = self.keys.contains(key) || (!self.complete && existed && selected);
        match (deleted, selected, held) {
            (true, _, true) | (true, true, false) => {
                self.keys.remove(key);
                Some("DELETED")
            }
            (true, false, false) | (false, false, false) => None,
            (false, false, true) => {
                self.keys.remove(key);
                Some("DELETED")
            }
            (false, true, held) => {
                self.keys.insert(key.to_string());
                Some(if held && existed { "MODIFIED" } else { "ADDED" })
            }
        }
    }
}

/// Where a watch starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum From {
    /// The current state as ADDED events, then the changes after it.
    Current,
    /// Only changes after the current revision.
    Now,
    /// Changes after this revision.
    After(u64),
}

impl Registry {
    /// The selected objects of `kind`, at one revision, in key order, and that revision.
    pub fn list_selected(&self, kind: &Kind, sel: &Selection) -> Result<(Vec<Value>, u64), RegistryError> {
        let (kvs, revision) = self.reader().list(&sel.prefix(kind))?;
        let mut out = Vec::with_capacity(kvs.len());
        for kv in &kvs {
            let obj = with_resource_version(&kv.value, kv.mod_revision)?;
            if sel.matches(&obj) {
                out.push(obj);
            }
        }
        Ok((out, revision))
    }

    /// The selected objects of `kind` as JSON bytes (with their
    /// resourceVersion), at one revision, in key order, and that revision.
    /// Without selectors the stored bytes are not parsed at all.
    pub fn list_selected_bytes(&self, kind: &Kind, sel: &Selection) -> Result<(Vec<Vec<u8>>, u64), RegistryError> {
        let (kvs, revision) = self.reader().list(&sel.prefix(kind))?;
        let mut out = Vec::with_capacity(kvs.len());
        for kv in &kvs {
            if sel.everything() {
                out.push(crate::objects::with_resource_version_bytes(&kv.value, kv.mod_revision)?);
                continue;
            }
            let obj = with_resource_version(&kv.value, kv.mod_revision)?;
            if sel.matches(&obj) {
                out.push(serde_json::to_vec(&obj)?);
            }
        }
        Ok((out, revision))
    }

    /// Watch the selected objects of `kind`. Ends with `Err(Gone)` when the
    /// history needed is compacted away.
    pub fn watch_selected(
        &self,
        kind: &'static Kind,
        sel: Selection,
        from: From,
        bookmarks: Option<Duration>,
    ) -> Result<impl Stream<Item = Result<WatchEvent, RegistryError>> + Send + 'static, RegistryError> {
        let prefix = sel.prefix(kind);
        let mut initial = Vec::new();
        let after = match from {
            From::Current => {
                let (objs, rev) = self.list_selected(kind, &sel)?;
                for object in objs {
                    let revision = crate::objects::resource_version(&object);
                    initial.push(Ok(WatchEvent { kind: "ADDED", object, revision }));
                }
                rev
            }
            From::Now => self.reader().revision(),
            From::After(rev) => rev,
        };
        let compacted = self.reader().compacted();
        if after < compacted {
            return Err(RegistryError::Gone { requested: after, compacted });
        }
        // The keys the client holds as selected: an object that stops matching
        // is DELETED for it, one that starts matching is ADDED.
        let mut held = Held {
            keys: initial
                .iter()
                .filter_map(|e| e.as_ref().ok())
                .filter_map(|e| crate::objects::key_of(&e.object))
                .collect(),
            complete: from == From::Current || sel.everything(),
        };
        let events = self.reader().watch(prefix, after, bookmarks).filter_map(move |item| {
            let out = match item {
                Err(gone) => Some(Err(RegistryError::Gone { requested: gone.requested, compacted: gone.compacted })),
                Ok(WatchItem::Progress(rev)) => Some(Ok(WatchEvent {
                    kind: "BOOKMARK",
                    object: json!({
                        "apiVersion": kind.api_version,
                        "kind": kind.kind,
                        "metadata": {"resourceVersion": rev.to_string()},
                    }),
                    revision: rev,
                })),
                Ok(WatchItem::Event(ev)) => match with_resource_version(&ev.kv.value, ev.revision) {
                    Ok(object) => {
                        let selected = sel.matches(&object);
                        held.event(&ev.kv.key, ev.kind == EventKind::Delete, ev.existed, selected)
                            .map(|kind| Ok(WatchEvent { kind, object, revision: ev.revision }))
                    }
                    Err(_) => None,
                },
            };
            futures::future::ready(out)
        });
        Ok(futures::stream::iter(initial).chain(events))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::kinds;

    #[test]
    fn objects_entering_and_leaving_a_selection_are_added_and_deleted() {
        // (deleted, existed, selected) of successive changes of one key, and what the client sees.
        type Case<'a> = (bool, &'a [(bool, bool, bool)], &'a [Option<&'a str>]);
        let cases: &[Case] = &[
            // complete: created selected, changed, unselected, selected again, deleted
            (
                true,
                &[
                    (false, false, true),
                    (false, true, true),
                    (false, true, false),
                    (false, true, true),
                    (true, true, true),
                ],
                &[Some("ADDED"), Some("MODIFIED"), Some("DELETED"), Some("ADDED"), Some("DELETED")],
            ),
            // complete: an unselected object changes and goes: nothing
            (true, &[(false, true, false), (true, true, false)], &[None, None]),
            // incomplete (a watch from a revision): a selected change of an existing object is MODIFIED
            (false, &[(false, true, true), (false, true, false)], &[Some("MODIFIED"), Some("DELETED")]),
        ];
        for (complete, changes, want) in cases {
            let mut held = Held { keys: Default::default(), complete: *complete };
            let got: Vec<Option<&str>> = changes.iter().map(|(d, e, s)| held.event("/k", *d, *e, *s)).collect();
            assert_eq!(&got, want, "{changes:?}");
        }
    }

    #[test]
    fn a_list_document_is_json_around_the_items() {
        let items = vec![br#"{"a":1}"#.to_vec(), br#"{"b":2}"#.to_vec()];
        let doc: Value =
            serde_json::from_slice(&list_document(&kinds::POD, &json!({"resourceVersion": "9"}), &items)).unwrap();
        assert_eq!(
            doc,
            json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "9"}, "items": [{"a": 1}, {"b": 2}]})
        );
        let empty: Value = serde_json::from_slice(&list_document(&kinds::POD, &json!({}), &[])).unwrap();
        assert_eq!(empty["items"], json!([]));
    }

    #[test]
    fn a_watch_reads_only_the_keys_its_selector_can_match() {
        let sel = |ns: &str, fields: &str| Selection {
            namespace: Some(ns.into()),
            fields: FieldSelector::parse(fields).unwrap(),
            ..Default::default()
        };
        for (kind, s, want) in [
            (&kinds::POD, sel("default", ""), "/registry/pods/default/"),
            (&kinds::POD, sel("", ""), "/registry/pods/"),
            (&kinds::POD, sel("default", "metadata.name=web"), "/registry/pods/default/web"),
            (&kinds::POD, sel("", "metadata.name=web,metadata.namespace=a"), "/registry/pods/a/web"),
            (&kinds::POD, sel("", "metadata.name=web"), "/registry/pods/"),
            (&kinds::POD, sel("default", "metadata.name!=web"), "/registry/pods/default/"),
            (&kinds::NODE, sel("", "metadata.name=n1"), "/registry/minions/n1"),
        ] {
            assert_eq!(s.prefix(kind), want, "{:?}", s.fields);
        }
    }
}
