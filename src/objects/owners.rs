//! Owner references: who owns an object, and the reference a controller puts
//! on what it creates.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde_json::Value;

use super::{meta_str, Kind};

/// One owner of an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// Its kind (`ReplicaSet`).
    pub kind: String,
    /// Its namespace ("" for cluster-scoped kinds, or kinds clusterd does not know).
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its uid.
    pub uid: String,
}

/// The owner references of an object.
pub fn owners(obj: &Value) -> Vec<Owner> {
    refs(obj)
        .filter_map(|o| {
            let kind = o.get("kind")?.as_str()?.to_string();
            let namespace = match Kind::resolve(&kind) {
                Some(k) if k.namespaced => meta_str(obj, "namespace").to_string(),
                _ => String::new(),
            };
            Some(Owner {
                kind,
                namespace,
                name: o.get("name")?.as_str()?.to_string(),
                uid: o.get("uid")?.as_str()?.to_string(),
            })
        })
        .collect()
}

fn refs(obj: &Value) -> impl Iterator<Item = &Value> {
    obj.get("metadata").and_then(|m| m.get("ownerReferences")).and_then(Value::as_array).into_iter().flatten()
}

/// The uid of an object's controller owner.
pub fn controller_uid(obj: &Value) -> Option<String> {
    refs(obj)
        .find(|o| o.get("controller").and_then(Value::as_bool) == Some(true))
        .and_then(|o| o.get("uid")?.as_str().map(String::from))
}

/// The names of `obj`'s owners of kind `kind`.
pub fn owner_names<'a>(obj: &'a Value, kind: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    refs(obj)
        .filter(move |o| o.get("kind").and_then(Value::as_str) == Some(kind))
        .filter_map(|o| o.get("name")?.as_str())
}

/// An ownerReference naming the typed `owner` as controller.
pub fn controller_ref_to<K>(owner: &K) -> OwnerReference
where
    K: k8s_openapi::Resource + k8s_openapi::Metadata<Ty = ObjectMeta>,
{
    let meta = owner.metadata();
    OwnerReference {
        api_version: K::API_VERSION.into(),
        kind: K::KIND.into(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn owner_references() {
        let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web", "uid": "u1"}});
        let typed: k8s_openapi::api::apps::v1::ReplicaSet = serde_json::from_value(rs).unwrap();
        let reference = json!(controller_ref_to(&typed));
        assert_eq!(
            reference,
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "u1",
                   "controller": true, "blockOwnerDeletion": true})
        );
        let pod = json!({"metadata": {"namespace": "d", "ownerReferences": [
            reference,
            {"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "u2"},
        ]}});
        assert_eq!(controller_uid(&pod).as_deref(), Some("u1"));
        let o = owners(&pod);
        assert_eq!((o[0].namespace.as_str(), o[1].namespace.as_str()), ("d", ""));
        assert_eq!(owner_names(&pod, "ReplicaSet").collect::<Vec<_>>(), ["web"]);
    }
}
