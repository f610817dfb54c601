//! How a delete is carried out: at once, or by marking the object with a
//! deletionTimestamp for someone to finish — the kubelet (a pod on a node),
//! the namespace controller (a namespace), the garbage collector (Orphan and
//! Foreground propagation) or whoever owns a finalizer.

use serde_json::{json, Value};

use super::pods::graceful_delete;
use crate::objects::Kind;

/// The finalizer of Foreground propagation.
pub const FOREGROUND: &str = "foregroundDeletion";
/// The finalizer of Orphan propagation.
pub const ORPHAN: &str = "orphan";

fn add_finalizer(obj: &mut Value, f: &str) {
    let meta = obj["metadata"].as_object_mut().expect("metadata");
    let list = meta.entry("finalizers").or_insert(json!([]));
    if let Some(a) = list.as_array_mut() {
        if !a.iter().any(|x| x == f) {
            a.push(json!(f));
        }
    }
}

/// The object to write instead of removing it, or None to remove it now.
pub fn plan(
    kind: &Kind,
    obj: &Value,
    grace: Option<i64>,
    policy: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<Value>, String> {
    if !matches!(policy, "" | "Background" | "Foreground" | "Orphan") {
        return Err(format!(
            "propagationPolicy: Unsupported value: \"{policy}\": supported values: \"Background\", \"Foreground\", \"Orphan\""
        ));
    }
    let stamp = crate::util::rfc3339(now);
    let already = obj.pointer("/metadata/deletionTimestamp").is_some();
    let mut marked = obj.clone();
    let mark = |m: &mut Value| {
        if !already {
            m["metadata"]["deletionTimestamp"] = json!(stamp);
            m["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        }
    };
    if kind.kind == "Namespace" {
        mark(&mut marked);
        marked["spec"]["finalizers"] = json!(["kubernetes"]);
        marked["status"]["phase"] = json!("Terminating");
        return Ok(Some(marked));
    }
    if kind.kind == "Pod" && policy != "Orphan" && policy != "Foreground" {
        return Ok(graceful_delete(obj, grace, now));
    }
    match policy {
        "Orphan" => {
            mark(&mut marked);
            add_finalizer(&mut marked, ORPHAN);
            return Ok(Some(marked));
        }
        "Foreground" => {
            mark(&mut marked);
            add_finalizer(&mut marked, FOREGROUND);
            return Ok(Some(marked));
        }
        _ => {}
    }
    let has_finalizers = obj.pointer("/metadata/finalizers").and_then(Value::as_array).is_some_and(|f| !f.is_empty());
    if has_finalizers {
        mark(&mut marked);
        return Ok(Some(marked));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans() {
        let now = chrono::Utc::now();
        let ns = Kind::resolve("ns").unwrap();
        let n =
            plan(ns, &json!({"metadata": {"name": "x"}, "spec": {}, "status": {}}), None, "", now).unwrap().unwrap();
        assert_eq!(n["status"]["phase"], "Terminating");
        let d = Kind::resolve("deploy").unwrap();
        let obj = json!({"metadata": {"name": "web"}});
        assert!(plan(d, &obj, None, "Background", now).unwrap().is_none());
        assert_eq!(plan(d, &obj, None, "Orphan", now).unwrap().unwrap()["metadata"]["finalizers"], json!(["orphan"]));
        assert_eq!(
            plan(d, &obj, None, "Foreground", now).unwrap().unwrap()["metadata"]["finalizers"],
            json!(["foregroundDeletion"])
        );
        assert!(plan(d, &obj, None, "Sideways", now).is_err());
    }
}
