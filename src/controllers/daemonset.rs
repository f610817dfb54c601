//! The DaemonSet controller: one pod per eligible node (nodeSelector, required
//! node affinity, taints — with the tolerations Kubernetes gives daemon pods),
//! nodes that join later included, pods on nodes no longer eligible removed,
//! and a rolling update of at most `maxUnavailable` nodes at a time.

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{Node, Pod, PodTemplateSpec, Toleration};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use super::deployment::template_hash;
use super::framework::{delete_pod, pod_from_template, Action, Cache, Outcome, Reconciler};
use crate::objects::key_of;
use crate::objects::kinds::{self, Kind};
use crate::objects::pod::PodFacts;
use crate::objects::typed::Object;
use crate::scheduler::algorithm::{misfit, Misfit, NodeInfo, PodInfo};

/// The label carrying the template revision of a daemon or stateful pod.
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// The revision of a pod template: the value of [`REVISION_LABEL`] on the
/// pods made from it, changing whenever the template does.
pub fn template_revision(template: Option<&PodTemplateSpec>) -> String {
    template.map_or_else(|| template_hash(&PodTemplateSpec::default()), template_hash)
}

/// The template revision a pod was made from (its [`REVISION_LABEL`]).
pub fn pod_revision(pod: &Pod) -> Option<&str> {
    pod.metadata.labels.as_ref()?.get(REVISION_LABEL).map(String::as_str)
}

/// The pods in `ns` whose controller has `uid`, with their typed forms.
pub(super) fn owned_pods<'a>(
    cache: &'a Cache,
    ns: &'a str,
    uid: &'a str,
) -> impl Iterator<Item = (&'a Object, &'a Pod)> {
    cache.owned_by(&kinds::POD, ns, uid).filter_map(|p| Some((p, p.pod()?)))
}

/// The DaemonSet reconciler.
pub struct DaemonSets;

/// Tolerations Kubernetes adds to daemon pods.
fn daemon_tolerations() -> Vec<Toleration> {
    let toleration = |key: &str, effect: &str| Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        ..Default::default()
    };
    vec![
        toleration("node.kubernetes.io/not-ready", "NoExecute"),
        toleration("node.kubernetes.io/unreachable", "NoExecute"),
        toleration("node.kubernetes.io/unschedulable", "NoSchedule"),
        toleration("node.kubernetes.io/disk-pressure", "NoSchedule"),
        toleration("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ]
}

/// Bind a daemon pod to `node`, tolerating what daemon pods tolerate.
fn place(pod: &mut Pod, node: &str) {
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.node_name = Some(node.into());
    spec.tolerations.get_or_insert_with(Vec::new).extend(daemon_tolerations());
}

/// The daemon pod of `ds` for `node`.
pub fn daemon_pod(ds: &Object, node: &str, hash: &str) -> Value {
    let pod = Object::new(pod_from_template(ds, None, &[(REVISION_LABEL, hash)]));
    let Some(mut typed) = pod.pod().cloned() else { return pod.into_raw() };
    place(&mut typed, node);
    pod.with(&typed)
}

/// What the scheduler's filters see of a DaemonSet's pods (no resources:
/// they do not decide where a daemon pod belongs).
fn daemon_pod_info(ds: &Object) -> Option<PodInfo> {
    let template = ds.pod_template()?;
    let mut pod = Pod {
        metadata: template.metadata.clone().unwrap_or_default(),
        spec: Some(template.spec.clone()?),
        status: None,
    };
    place(&mut pod, "");
    Some(PodInfo { requests: Default::default(), ..PodInfo::from_pod(String::new(), &pod) })
}

/// Whether a daemon pod belongs on `node` (selector, affinity and taints; not resources).
pub fn eligible(pod: &PodInfo, node: &Node) -> bool {
    let mut n = NodeInfo::from_node(node);
    n.unschedulable = false;
    n.allocatable.pods = u64::MAX;
    !matches!(misfit(pod, &n), Some(Misfit::Selector | Misfit::Taint(..)))
}

/// `maxUnavailable` of a rolling update.
fn max_unavailable(ds: &DaemonSet) -> Option<&IntOrString> {
    ds.spec.as_ref()?.update_strategy.as_ref()?.rolling_update.as_ref()?.max_unavailable.as_ref()
}

impl Reconciler for DaemonSets {
    const NAME: &'static str = "daemonset";
    const PRIMARY: &'static Kind = &kinds::DAEMON_SET;

    fn watches(&self) -> Vec<&'static Kind> {
        vec![&kinds::DAEMON_SET, &kinds::POD, &kinds::NODE]
    }

    fn affected(&self, obj: &Value, cache: &Cache) -> Vec<String> {
        match Kind::of(obj) {
            // Any node may change where daemon pods belong.
            Some(k) if k == &kinds::NODE => cache.objects(&kinds::DAEMON_SET).filter_map(|d| key_of(d)).collect(),
            _ => super::framework::self_or_owners(obj, Self::PRIMARY, &kinds::POD),
        }
    }

    fn reconcile(&self, key: &str, cache: &Cache, now: chrono::DateTime<chrono::Utc>) -> Outcome {
        let Some(obj) = cache.object(&kinds::DAEMON_SET, key) else { return Outcome::default() };
        let Some(ds) = obj.daemon_set() else { return Outcome::default() };
        if ds.metadata.deletion_timestamp.is_some() {
            return Outcome::default();
        }
        let ns = ds.metadata.namespace.as_deref().unwrap_or("");
        let uid = ds.metadata.uid.as_deref().unwrap_or("");
        let hash = template_revision(obj.pod_template());
        let pods: Vec<(&Object, &Pod)> =
            owned_pods(cache, ns, uid).filter(|(_, p)| p.metadata.deletion_timestamp.is_none()).collect();
        let mut out = Outcome::default();
        let max_unavailable = super::deployment::resolve(
            max_unavailable(ds),
            cache.objects(&kinds::NODE).count() as i64,
            false,
            1,
        )
        .max(1) as usize;
        let strategy = ds.spec.as_ref().and_then(|s| s.update_strategy.as_ref());
        let rolling = strategy.and_then(|s| s.type_.as_deref()) != Some("OnDelete");
        let daemon = daemon_pod_info(obj);
        let (mut desired, mut scheduled, mut ready, mut updated, mut available, mut misscheduled) = (0, 0, 0, 0, 0, 0);
        let mut unavailable_now = 0;
        let mut outdated_ready: Vec<&Object> = Vec::new();
        for node in cache.objects(&kinds::NODE) {
            let Some(n) = node.node() else { continue };
            let name = n.metadata.name.as_deref().unwrap_or("");
            let here: Vec<(&Object, &Pod)> = pods.iter().copied().filter(|(_, p)| p.node_name() == name).collect();
            let (live, done): (Vec<_>, Vec<_>) = here.into_iter().partition(|(_, p)| !p.finished());
            // Finished daemon pods are replaced.
            for (p, _) in &done {
                out.actions.push(delete_pod(p, now));
            }
            if daemon.as_ref().is_some_and(|d| eligible(d, n)) {
                desired += 1;
                match live.len() {
                    0 => {
                        out.actions.push(Action::Create(daemon_pod(obj, name, &hash)));
                        unavailable_now += 1;
                    }
                    count => {
                        scheduled += 1;
                        // Extra pods on one node go, newest first.
                        let mut extra = live.clone();
                        extra.sort_by_key(|(_, p)| {
                            std::cmp::Reverse(p.metadata.creation_timestamp.as_ref().map(|t| t.0))
                        });
                        for (p, _) in extra.iter().take(count - 1) {
                            out.actions.push(delete_pod(p, now));
                        }
                        let (o, p) = extra[count - 1];
                        if p.is_ready() {
                            ready += 1;
                        }
                        if p.is_available(std::time::Duration::ZERO, now) {
                            available += 1;
                        } else {
                            unavailable_now += 1;
                        }
                        if pod_revision(p) == Some(hash.as_str()) {
                            updated += 1;
                        } else if p.is_ready() {
                            outdated_ready.push(o);
                        }
                    }
                }
            } else {
                misscheduled += live.len();
                for (p, _) in &live {
                    out.actions.push(delete_pod(p, now));
                }
            }
        }
        // Rolling update: replace outdated pods while few enough are unavailable.
        if rolling {
            for p in outdated_ready.into_iter().take(max_unavailable.saturating_sub(unavailable_now)) {
                out.actions.push(delete_pod(p, now));
            }
        }
        let status = DaemonSetStatus {
            desired_number_scheduled: desired,
            current_number_scheduled: scheduled,
            number_ready: ready,
            updated_number_scheduled: Some(updated),
            number_available: Some(available),
            number_unavailable: Some(desired - available),
            number_misscheduled: misscheduled as i32,
            observed_generation: Some(ds.metadata.generation.unwrap_or(1)),
            collision_count: None,
            conditions: None,
        };
        if ds.status.as_ref() != Some(&status) {
            let mut next = ds.clone();
            next.status = Some(status);
            out.actions.push(Action::Replace(obj.with(&next)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ds() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": "d", "uid": "ds1"},
               "spec": {"selector": {"matchLabels": {"app": "agent"}},
                        "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {"nodeSelector": {"role": "worker"}, "containers": [{"name": "c", "image": "i"}]}}}})
    }

    fn node(name: &str, role: &str, taint: Option<&str>) -> Value {
        let mut n = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {"role": role}}, "spec": {}});
        if let Some(t) = taint {
            n["spec"]["taints"] = json!([{"key": t, "effect": "NoSchedule"}]);
        }
        n
    }

    #[test]
    fn one_pod_per_eligible_node() {
        let mut c = Cache::default();
        c.put(ds());
        c.put(node("a", "worker", None));
        c.put(node("b", "db", None));
        c.put(node("c", "worker", Some("dedicated")));
        c.put(node("d", "worker", Some("node.kubernetes.io/unschedulable")));
        let out = DaemonSets.reconcile("/registry/daemonsets/d/agent", &c, chrono::Utc::now());
        let mut nodes: Vec<String> = out
            .actions
            .iter()
            .filter_map(
                |a| if let Action::Create(p) = a { p["spec"]["nodeName"].as_str().map(String::from) } else { None },
            )
            .collect();
        nodes.sort();
        assert_eq!(nodes, vec!["a", "d"], "selector and taints decide; daemon pods tolerate unschedulable");
    }
}
