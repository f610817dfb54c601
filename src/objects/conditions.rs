//! Status conditions, written the way Kubernetes writes them: one per type,
//! whose lastTransitionTime moves only when its status does.

use serde_json::{json, Value};

/// Set a condition of `obj`'s status, keeping its transition time when the
/// status is unchanged.
pub fn set_condition(obj: &mut Value, kind: &str, status: &str, reason: &str, message: &str, now: &str) {
    if !obj.get("status").is_some_and(Value::is_object) {
        obj["status"] = json!({});
    }
    let conds = obj["status"].as_object_mut().expect("object").entry("conditions").or_insert_with(|| json!([]));
    if !conds.is_array() {
        *conds = json!([]);
    }
    let list = conds.as_array_mut().expect("array");
    let mut cond = json!({"type": kind, "status": status, "lastProbeTime": null, "lastTransitionTime": now});
    if !reason.is_empty() {
        cond["reason"] = json!(reason);
    }
    if !message.is_empty() {
        cond["message"] = json!(message);
    }
    match list.iter_mut().find(|c| c.get("type").and_then(Value::as_str) == Some(kind)) {
        Some(old) => {
            if old.get("status").and_then(Value::as_str) == Some(status) {
                cond["lastTransitionTime"] = old.get("lastTransitionTime").cloned().unwrap_or(json!(now));
            }
            *old = cond;
        }
        None => list.push(cond),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_moves_with_the_status_only() {
        let mut pod = json!({});
        set_condition(&mut pod, "Ready", "False", "", "", "t0");
        set_condition(&mut pod, "Ready", "False", "R", "m", "t1");
        assert_eq!(pod["status"]["conditions"][0]["lastTransitionTime"], "t0");
        assert_eq!(pod["status"]["conditions"][0]["reason"], "R");
        set_condition(&mut pod, "Ready", "True", "", "", "t2");
        set_condition(&mut pod, "PodScheduled", "True", "", "", "t3");
        let conds = pod["status"]["conditions"].as_array().unwrap();
        assert_eq!((conds.len(), conds[0]["lastTransitionTime"].as_str()), (2, Some("t2")));
    }
}
