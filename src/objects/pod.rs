//! Facts about a pod that the scheduler, the controllers, the kubelet and the
//! registry all ask: has it finished, is it going, is it Ready, since when.

use std::time::Duration;

use serde_json::Value;

use super::being_deleted;

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
}
