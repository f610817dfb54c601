//! Facts about a pod that the scheduler, the controllers, the kubelet and the
//! registry all ask: has it finished, is it going, is it Ready, since when.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, PodCondition};

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pod_facts() {
        let t = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&chrono::Utc);
        let ready_since = json!({"status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
        // (pod, finished, inactive, ready)
        let cases = [
            (json!({}), false, false, false),
            (json!({"status": {"phase": "Succeeded"}}), true, true, false),
            (json!({"status": {"phase": "Failed"}}), true, true, false),
            (
                json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}, "status": {"phase": "Running"}}),
                false,
                true,
                false,
            ),
            (ready_since.clone(), false, false, true),
        ];
        for (raw, fin, inact, rdy) in cases {
            let pod: Pod = serde_json::from_value(raw.clone()).unwrap();
            assert_eq!((pod.finished(), pod.inactive(), pod.is_ready()), (fin, inact, rdy), "{raw}");
        }
        let ready: Pod = serde_json::from_value(ready_since).unwrap();
        assert!(ready.is_available(Duration::from_secs(5), t("2026-01-01T00:00:05Z")));
        assert!(!ready.is_available(Duration::from_secs(5), t("2026-01-01T00:00:04Z")));
        assert!(ready.is_available(Duration::ZERO, t("2026-01-01T00:00:00Z")));
        let bound: Pod = serde_json::from_value(json!({"spec": {"containers": [], "nodeName": "n1"}})).unwrap();
        assert_eq!((PodFacts::node_name(&bound), PodFacts::phase(&bound)), ("n1", ""));
    }
}
