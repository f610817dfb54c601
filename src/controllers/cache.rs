//! What a controller sees: informer caches of the kinds it watches, keyed by
//! kind and store key, sharing the informers' parsed objects.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::Value;

use crate::objects::owners::controller_uid;
use crate::objects::typed::Object;
use crate::objects::{key_of, meta_str, Kind};

/// The objects a controller sees: kind name → store key → object.
#[derive(Default, Debug, Clone)]
pub struct Cache {
    objects: HashMap<&'static str, BTreeMap<String, Arc<Object>>>,
}

impl Cache {
    /// Put an object (by its kind and key).
    pub fn put(&mut self, obj: Value) {
        self.put_shared(Arc::new(Object::new(obj)));
    }

    /// Put an object shared with the informer and other caches.
    pub fn put_shared(&mut self, obj: Arc<Object>) {
        if let (Some(kind), Some(key)) = (Kind::of(&obj), key_of(&obj)) {
            self.objects.entry(kind.kind).or_default().insert(key, obj);
        }
    }

    /// Remove an object.
    pub fn remove(&mut self, obj: &Value) {
        if let (Some(kind), Some(key)) = (Kind::of(obj), key_of(obj)) {
            if let Some(m) = self.objects.get_mut(kind.kind) {
                m.remove(&key);
            }
        }
    }

    /// Drop every object of a kind (before a re-list); returns them.
    pub fn clear(&mut self, kind: &Kind) -> Vec<Arc<Object>> {
        self.objects.remove(kind.kind).map(|m| m.into_values().collect()).unwrap_or_default()
    }

    /// The keys of every object of a kind.
    pub fn keys(&self, kind: &Kind) -> Vec<String> {
        self.objects.get(kind.kind).map(|m| m.keys().cloned().collect()).unwrap_or_default()
    }

    /// One object by kind and key.
    pub fn get(&self, kind: &Kind, key: &str) -> Option<&Value> {
        self.object(kind, key).map(|o| o.raw())
    }

    /// One object, with its typed form, by kind and key.
    pub fn object(&self, kind: &Kind, key: &str) -> Option<&Object> {
        self.objects.get(kind.kind)?.get(key).map(|o| &**o)
    }

    /// Every object of a kind.
    pub fn all(&self, kind: &Kind) -> impl Iterator<Item = &Value> {
        self.objects(kind).map(Object::raw)
    }

    /// Every object of a kind, with their typed forms.
    pub fn objects(&self, kind: &Kind) -> impl Iterator<Item = &Object> {
        self.objects.get(kind.kind).into_iter().flat_map(|m| m.values()).map(|o| &**o)
    }

    /// Objects of a kind in a namespace.
    pub fn in_namespace<'a>(&'a self, kind: &Kind, ns: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.all(kind).filter(move |o| meta_str(o, "namespace") == ns)
    }

    /// Objects of a kind in a namespace, with their typed forms.
    pub fn objects_in<'a, 'b>(&'a self, kind: &Kind, ns: &'b str) -> impl Iterator<Item = &'a Object> + 'b
    where
        'a: 'b,
    {
        self.objects(kind).filter(move |o| meta_str(o, "namespace") == ns)
    }

    /// Objects of a kind whose controller owner has this uid.
    pub fn owned_by<'a, 'b>(&'a self, kind: &Kind, ns: &'b str, uid: &'b str) -> impl Iterator<Item = &'a Object> + 'b
    where
        'a: 'b,
    {
        self.objects_in(kind, ns).filter(move |o| controller_uid(o).as_deref() == Some(uid))
    }
}
