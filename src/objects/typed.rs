//! Objects as the node's components hold them: the JSON as stored, and its
//! `k8s-openapi` type, parsed once (by the informer that reads it) and shared.
//!
//! Code reads the typed form (`obj.pod()`), makes its change on a copy of the
//! typed value, and turns it back into JSON with [`Object::with`]: only the
//! fields the change touched are written over the stored JSON, so fields the
//! types do not know (newer API fields, anything a client sent) survive a
//! read-modify-write. An [`Object`] dereferences to its JSON, for code that
//! still reads paths.

use std::ops::Deref;
use std::sync::OnceLock;

use k8s_openapi::api::{
    apps::v1 as apps, batch::v1 as batch, coordination::v1 as coord, core::v1 as core, discovery::v1 as discovery,
};
use serde::Serialize;
use serde_json::Value;

use super::kinds::{self, Kind};

/// The typed form of an object.
#[derive(Clone, Debug)]
#[allow(missing_docs)]
pub enum Typed {
    Namespace(core::Namespace),
    ConfigMap(core::ConfigMap),
    Secret(core::Secret),
    ServiceAccount(core::ServiceAccount),
    Pod(core::Pod),
    Node(core::Node),
    Lease(coord::Lease),
    Event(core::Event),
    Service(core::Service),
    Endpoints(core::Endpoints),
    EndpointSlice(discovery::EndpointSlice),
    ReplicaSet(apps::ReplicaSet),
    Deployment(apps::Deployment),
    DaemonSet(apps::DaemonSet),
    StatefulSet(apps::StatefulSet),
    Job(batch::Job),
    /// A kind clusterd does not serve, or a body its type refuses (only
    /// objects that passed admission are stored, so this is rare).
    Untyped,
}

fn parse<T: serde::de::DeserializeOwned>(raw: &Value, wrap: fn(T) -> Typed) -> Typed {
    T::deserialize(raw).map(wrap).unwrap_or(Typed::Untyped)
}

impl Typed {
    /// Parse `raw` into the type of its kind.
    pub fn parse(raw: &Value) -> Typed {
        let Some(kind) = Kind::of(raw) else { return Typed::Untyped };
        match *kind {
            kinds::NAMESPACE => parse(raw, Typed::Namespace),
            kinds::CONFIG_MAP => parse(raw, Typed::ConfigMap),
            kinds::SECRET => parse(raw, Typed::Secret),
            kinds::SERVICE_ACCOUNT => parse(raw, Typed::ServiceAccount),
            kinds::POD => parse(raw, Typed::Pod),
            kinds::NODE => parse(raw, Typed::Node),
            kinds::LEASE => parse(raw, Typed::Lease),
            kinds::EVENT => parse(raw, Typed::Event),
            kinds::SERVICE => parse(raw, Typed::Service),
            kinds::ENDPOINTS => parse(raw, Typed::Endpoints),
            kinds::ENDPOINT_SLICE => parse(raw, Typed::EndpointSlice),
            kinds::REPLICA_SET => parse(raw, Typed::ReplicaSet),
            kinds::DEPLOYMENT => parse(raw, Typed::Deployment),
            kinds::DAEMON_SET => parse(raw, Typed::DaemonSet),
            kinds::STATEFUL_SET => parse(raw, Typed::StatefulSet),
            kinds::JOB => parse(raw, Typed::Job),
            _ => Typed::Untyped,
        }
    }

    fn to_json(&self) -> Option<Value> {
        let v = match self {
            Typed::Namespace(o) => serde_json::to_value(o),
            Typed::ConfigMap(o) => serde_json::to_value(o),
            Typed::Secret(o) => serde_json::to_value(o),
            Typed::ServiceAccount(o) => serde_json::to_value(o),
            Typed::Pod(o) => serde_json::to_value(o),
            Typed::Node(o) => serde_json::to_value(o),
            Typed::Lease(o) => serde_json::to_value(o),
            Typed::Event(o) => serde_json::to_value(o),
            Typed::Service(o) => serde_json::to_value(o),
            Typed::Endpoints(o) => serde_json::to_value(o),
            Typed::EndpointSlice(o) => serde_json::to_value(o),
            Typed::ReplicaSet(o) => serde_json::to_value(o),
            Typed::Deployment(o) => serde_json::to_value(o),
            Typed::DaemonSet(o) => serde_json::to_value(o),
            Typed::StatefulSet(o) => serde_json::to_value(o),
            Typed::Job(o) => serde_json::to_value(o),
            Typed::Untyped => return None,
        };
        v.ok()
    }
}

/// A stored object: its JSON and its typed form, parsed the first time a
/// reader asks for it (objects a node only holds never pay for a typed copy)
/// and then shared. The typed form is boxed: inline, the largest of the
/// `k8s-openapi` types would make every object about 2.6 KiB bigger, typed
/// or not (an informer holding 100,000 objects paid 250 MiB for nothing).
#[derive(Clone, Debug)]
pub struct Object {
    raw: Value,
    typed: OnceLock<Box<Typed>>,
}

impl Deref for Object {
    type Target = Value;

    fn deref(&self) -> &Value {
        &self.raw
    }
}

impl From<Value> for Object {
    fn from(raw: Value) -> Self {
        Object::new(raw)
    }
}

impl PartialEq for Object {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

macro_rules! accessor {
    ($name:ident, $variant:ident, $ty:ty) => {
        #[doc = concat!("The object as a `", stringify!($variant), "`, if it is one.")]
        pub fn $name(&self) -> Option<&$ty> {
            match self.typed() {
                Typed::$variant(o) => Some(o),
                _ => None,
            }
        }
    };
}

impl Object {
    /// The object of `raw`; its typed form is parsed on first use, once.
    pub fn new(raw: Value) -> Self {
        Object { raw, typed: OnceLock::new() }
    }

    /// The JSON as stored (with its resourceVersion).
    pub fn raw(&self) -> &Value {
        &self.raw
    }

    /// The JSON, owned.
    pub fn into_raw(self) -> Value {
        self.raw
    }

    /// The typed form.
    pub fn typed(&self) -> &Typed {
        self.typed.get_or_init(|| Box::new(Typed::parse(&self.raw)))
    }

    accessor!(pod, Pod, core::Pod);
    accessor!(node, Node, core::Node);
    accessor!(namespace, Namespace, core::Namespace);
    accessor!(replica_set, ReplicaSet, apps::ReplicaSet);
    accessor!(deployment, Deployment, apps::Deployment);
    accessor!(daemon_set, DaemonSet, apps::DaemonSet);
    accessor!(stateful_set, StatefulSet, apps::StatefulSet);
    accessor!(job, Job, batch::Job);
    accessor!(lease, Lease, coord::Lease);
    accessor!(config_map, ConfigMap, core::ConfigMap);
    accessor!(secret, Secret, core::Secret);
    accessor!(service_account, ServiceAccount, core::ServiceAccount);
    accessor!(event, Event, core::Event);
    accessor!(service, Service, core::Service);
    accessor!(endpoints, Endpoints, core::Endpoints);
    accessor!(endpoint_slice, EndpointSlice, discovery::EndpointSlice);

    /// The pod template of a workload (ReplicaSet, Deployment, DaemonSet,
    /// StatefulSet, Job).
    pub fn pod_template(&self) -> Option<&core::PodTemplateSpec> {
        match self.typed() {
            Typed::ReplicaSet(o) => o.spec.as_ref()?.template.as_ref(),
            Typed::Deployment(o) => Some(&o.spec.as_ref()?.template),
            Typed::DaemonSet(o) => Some(&o.spec.as_ref()?.template),
            Typed::StatefulSet(o) => Some(&o.spec.as_ref()?.template),
            Typed::Job(o) => Some(&o.spec.as_ref()?.template),
            _ => None,
        }
    }

    /// The stored JSON with the workload's pod template replaced by
    /// `template` (only what differs is written); None if this is no workload.
    pub fn with_pod_template(&self, template: core::PodTemplateSpec) -> Option<Value> {
        // The workload with its template replaced: `$wrap` makes the field's value.
        macro_rules! replaced {
            ($o:expr, $wrap:expr) => {{
                let mut o = $o.clone();
                o.spec.get_or_insert_with(Default::default).template = $wrap(template);
                self.with(&o)
            }};
        }
        Some(match self.typed() {
            Typed::ReplicaSet(o) => replaced!(o, Some),
            Typed::Deployment(o) => replaced!(o, std::convert::identity),
            Typed::DaemonSet(o) => replaced!(o, std::convert::identity),
            Typed::StatefulSet(o) => replaced!(o, std::convert::identity),
            Typed::Job(o) => replaced!(o, std::convert::identity),
            _ => return None,
        })
    }

    /// The label selector of a workload.
    pub fn selector(&self) -> Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector> {
        match self.typed() {
            Typed::ReplicaSet(o) => Some(&o.spec.as_ref()?.selector),
            Typed::Deployment(o) => Some(&o.spec.as_ref()?.selector),
            Typed::DaemonSet(o) => Some(&o.spec.as_ref()?.selector),
            Typed::StatefulSet(o) => Some(&o.spec.as_ref()?.selector),
            Typed::Job(o) => o.spec.as_ref()?.selector.as_ref(),
            _ => None,
        }
    }

    /// The object's metadata, whatever its kind.
    pub fn metadata(&self) -> Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta> {
        Some(match self.typed() {
            Typed::Namespace(o) => &o.metadata,
            Typed::ConfigMap(o) => &o.metadata,
            Typed::Secret(o) => &o.metadata,
            Typed::ServiceAccount(o) => &o.metadata,
            Typed::Pod(o) => &o.metadata,
            Typed::Node(o) => &o.metadata,
            Typed::Lease(o) => &o.metadata,
            Typed::Event(o) => &o.metadata,
            Typed::Service(o) => &o.metadata,
            Typed::Endpoints(o) => &o.metadata,
            Typed::EndpointSlice(o) => &o.metadata,
            Typed::ReplicaSet(o) => &o.metadata,
            Typed::Deployment(o) => &o.metadata,
            Typed::DaemonSet(o) => &o.metadata,
            Typed::StatefulSet(o) => &o.metadata,
            Typed::Job(o) => &o.metadata,
            Typed::Untyped => return None,
        })
    }

    /// The stored JSON with `changed` (a changed copy of the typed form)
    /// written over it: only the fields whose typed value changed are
    /// replaced or removed, so fields the type does not know are kept.
    pub fn with<T: Serialize>(&self, changed: &T) -> Value {
        let after = serde_json::to_value(changed).unwrap_or(Value::Null);
        let Some(before) = self.typed().to_json() else { return after };
        let mut out = self.raw.clone();
        super::merge::merge(&mut out, &super::merge::diff(&before, &after));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_and_annotations_survive_a_typed_change() {
        let raw = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "d", "resourceVersion": "7",
                "annotations": {"team": "blue"}, "labels": {"app": "web", "old": "x"}},
            "spec": {"containers": [{"name": "c", "image": "i"}], "frobnicate": {"level": 11}},
            "status": {"phase": "Pending", "futureField": true},
        });
        let obj = Object::new(raw);
        let mut pod = obj.pod().expect("a pod").clone();
        let labels = pod.metadata.labels.get_or_insert_with(Default::default);
        labels.insert("tier".into(), "front".into());
        labels.remove("old");
        pod.status.get_or_insert_with(Default::default).phase = Some("Running".into());
        pod.spec.as_mut().unwrap().node_name = Some("n1".into());
        let written = obj.with(&pod);
        assert_eq!(written["spec"]["frobnicate"], json!({"level": 11}), "unknown spec field kept");
        assert_eq!(written["status"]["futureField"], json!(true), "unknown status field kept");
        assert_eq!(written["metadata"]["annotations"], json!({"team": "blue"}));
        assert_eq!(written["metadata"]["labels"], json!({"app": "web", "tier": "front"}));
        assert_eq!(written["metadata"]["resourceVersion"], "7");
        assert_eq!(
            (written["status"]["phase"].as_str(), written["spec"]["nodeName"].as_str()),
            (Some("Running"), Some("n1"))
        );
        assert_eq!(written["spec"]["containers"], json!([{"name": "c", "image": "i"}]));
    }

    #[test]
    fn a_new_pod_template_keeps_what_the_types_do_not_know() {
        let raw = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "futureField": 1,
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "v1"}]}}}});
        let obj = Object::new(raw);
        let mut t = obj.pod_template().unwrap().clone();
        t.spec.as_mut().unwrap().containers[0].image = Some("v2".into());
        let written = obj.with_pod_template(t).unwrap();
        assert_eq!(written["spec"]["template"]["spec"]["containers"][0]["image"], "v2");
        assert_eq!(written["spec"]["futureField"], 1);
        assert!(Object::new(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}))
            .with_pod_template(Default::default())
            .is_none());
    }

    #[test]
    fn an_object_not_yet_typed_costs_little_more_than_its_json() {
        // Informers hold every object of their kinds; most are never typed.
        assert!(
            std::mem::size_of::<Object>() <= std::mem::size_of::<Value>() + 16,
            "{}",
            std::mem::size_of::<Object>()
        );
        let obj = Object::new(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}));
        assert_eq!(obj.pod().and_then(|p| p.metadata.name.as_deref()), Some("p"), "typed on first use");
    }

    #[test]
    fn every_served_kind_parses_to_its_type() {
        for kind in kinds::KINDS {
            let raw = json!({"apiVersion": kind.api_version, "kind": kind.kind, "metadata": {"name": "x"}});
            assert!(!matches!(Typed::parse(&raw), Typed::Untyped), "{}", kind.kind);
        }
        assert!(matches!(Typed::parse(&json!({"apiVersion": "v1", "kind": "Widget"})), Typed::Untyped));
    }
}
