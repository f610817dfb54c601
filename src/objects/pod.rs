//! Facts about a pod that the scheduler, the controllers, the kubelet and the
//! registry all ask: has it finished, is it going, is it Ready, since when.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, PodCondition};
use serde_json::Value;

use super::being_deleted;

/// The same facts on a typed [`Pod`]: `use PodFacts` and ask `pod.is_ready()`.
pub trait PodFacts {
    /// `status.phase` ("" when it has none yet).
    fn phase(&self) -> &str;
    /// Succeeded or Failed, never to run again.
    fn finished(&self) -> bool;
    /// Being deleted or finished.
    fn inactive(&self) -> bool;
    /// The node it is bound to ("" while unscheduled).
    fn node_name(&self) -> &str;
    /// One of its conditions, by type.
    fn condition(&self, kind: &str) -> Option<&PodCondition>;
    /// Whether it is Ready.
    fn is_ready(&self) -> bool;
    /// Whether it has been Ready for `min_ready` by `now`.
    fn is_available(&self, min_ready: Duration, now: chrono::DateTime<chrono::Utc>) -> bool;
}

impl PodFacts for Pod {
    fn phase(&self) -> &str {
        self.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
    }

    fn finished(&self) -> bool {
        matches!(PodFacts::phase(self), "Succeeded" | "Failed")
    }

    fn inactive(&self) -> bool {
        self.metadata.deletion_timestamp.is_some() || PodFacts::finished(self)
    }

    fn node_name(&self) -> &str {
        self.spec.as_ref().and_then(|s| s.node_name.as_deref()).unwrap_or("")
    }

    fn condition(&self, kind: &str) -> Option<&PodCondition> {
        self.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == kind)
    }

    fn is_ready(&self) -> bool {
        PodFacts::condition(self, "Ready").is_some_and(|c| c.status == "True")
    }

    fn is_available(&self, min_ready: Duration, now: chrono::DateTime<chrono::Utc>) -> bool {
        if !self.is_ready() {
            return false;
        }
        if min_ready.is_zero() {
            return true;
        }
        let since = PodFacts::condition(self, "Ready").and_then(|c| c.last_transition_time.as_ref());
        since.is_some_and(|t| now.timestamp() - t.0.as_second() >= min_ready.as_secs() as i64)
    }
}

/// A pod's `status.phase` ("" when it has none yet).
pub fn phase(pod: &Value) -> &str {
    pod.get("status").and_then(|s| s.get("phase")).and_then(Value::as_str).unwrap_or("")
}

/// Whether a pod has finished: Succeeded or Failed, never to run again.
pub fn finished(pod: &Value) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

/// Whether a pod is being deleted or has finished.
pub fn inactive(pod: &Value) -> bool {
    being_deleted(pod) || finished(pod)
}

/// The node a pod is bound to ("" while unscheduled).
pub fn node_name(pod: &Value) -> &str {
    pod.get("spec").and_then(|s| s.get("nodeName")).and_then(Value::as_str).unwrap_or("")
}

/// One condition of an object's `status.conditions`, by type.
pub fn condition<'a>(obj: &'a Value, kind: &str) -> Option<&'a Value> {
    obj.get("status")?
        .get("conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
}

/// Whether a pod is Ready.
pub fn ready(pod: &Value) -> bool {
    condition(pod, "Ready").is_some_and(|c| c.get("status").and_then(Value::as_str) == Some("True"))
}

/// Whether a pod has been Ready for `min_ready` by `now`.
pub fn available(pod: &Value, min_ready: Duration, now: chrono::DateTime<chrono::Utc>) -> bool {
    if !ready(pod) {
        return false;
    }
    if min_ready.is_zero() {
        return true;
    }
    let since = condition(pod, "Ready")
        .and_then(|c| c.get("lastTransitionTime")?.as_str())
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
    since.is_some_and(|t| now.signed_duration_since(t).to_std().unwrap_or_default() >= min_ready)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pod_facts() {
        let t = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&chrono::Utc);
        let ready_since = json!({"status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
        let cases = [
            (json!({}), false, false, false),
            (json!({"status": {"phase": "Succeeded"}}), true, true, false),
            (json!({"status": {"phase": "Failed"}}), true, true, false),
            (json!({"metadata": {"deletionTimestamp": "x"}, "status": {"phase": "Running"}}), false, true, false),
            (ready_since.clone(), false, false, true),
        ];
        for (pod, fin, inact, rdy) in cases {
            assert_eq!((finished(&pod), inactive(&pod), ready(&pod)), (fin, inact, rdy), "{pod}");
        }
        assert!(available(&ready_since, Duration::from_secs(5), t("2026-01-01T00:00:05Z")));
        assert!(!available(&ready_since, Duration::from_secs(5), t("2026-01-01T00:00:04Z")));
        assert_eq!(node_name(&json!({"spec": {"nodeName": "n1"}})), "n1");
    }

    #[test]
    fn typed_pod_facts_agree_with_the_json_ones() {
        let t = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&chrono::Utc);
        let cases = [
            json!({}),
            json!({"status": {"phase": "Succeeded"}}),
            json!({"status": {"phase": "Failed"}, "spec": {"containers": [], "nodeName": "n1"}}),
            json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}, "status": {"phase": "Running"}}),
            json!({"status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}),
        ];
        for raw in cases {
            let pod: Pod = serde_json::from_value(raw.clone()).unwrap();
            assert_eq!(
                (pod.finished(), pod.inactive(), pod.is_ready(), PodFacts::node_name(&pod)),
                (finished(&raw), inactive(&raw), ready(&raw), node_name(&raw)),
                "{raw}"
            );
            for at in ["2026-01-01T00:00:04Z", "2026-01-01T00:00:05Z"] {
                let five = Duration::from_secs(5);
                assert_eq!(pod.is_available(five, t(at)), available(&raw, five, t(at)), "{raw} at {at}");
            }
        }
    }
}
