//! Printing objects as kubectl does: tables with kind-specific columns, `-o wide`,
//! JSON, YAML, and `describe`.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::kinds;
use crate::api::columns::{age, headers, row};
use crate::objects::{meta_str, Kind};

/// Output formats of `get` and `status`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// More columns.
    Wide,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
    /// kind/name.
    Name,
}

/// How a list of objects of one kind is printed.
#[derive(Clone, Copy, Debug, Default)]
pub struct Listing {
    /// `-o`.
    pub output: Option<Output>,
    /// A NAMESPACE column (`-A`).
    pub all_namespaces: bool,
    /// The header line (not for the lines a watch adds).
    pub header: bool,
    /// Names as `kind/name`, as kubectl prints them when several kinds are listed.
    pub with_kind: bool,
}

/// Objects of one kind as `get` prints them: a table, JSON, YAML or names.
pub fn objects(kind: &Kind, items: &[Value], how: Listing, now: DateTime<Utc>) -> String {
    let mut out = String::new();
    match how.output {
        Some(Output::Json) => {
            for i in items {
                out.push_str(&serde_json::to_string_pretty(i).unwrap_or_default());
                out.push('\n');
            }
        }
        Some(Output::Yaml) => {
            for i in items {
                out.push_str("---\n");
                out.push_str(&yaml(i));
            }
        }
        Some(Output::Name) => {
            for i in items {
                out.push_str(&format!("{}/{}\n", kinds::word(kind), meta_str(i, "name")));
            }
        }
        _ => {
            let wide = how.output == Some(Output::Wide);
            let mut headers = headers(kind, wide);
            let mut rows: Vec<Vec<String>> = items.iter().map(|i| row(kind, i, wide, now)).collect();
            if how.with_kind && headers.first().is_some_and(|h| h == "NAME") {
                for (r, i) in rows.iter_mut().zip(items) {
                    r[0] = kinds::display(kind, meta_str(i, "name"));
                }
            }
            if how.all_namespaces && kind.namespaced {
                headers.insert(0, "NAMESPACE".to_string());
                for (r, i) in rows.iter_mut().zip(items) {
                    r.insert(0, meta_str(i, "namespace").to_string());
                }
            }
            let t = table(&headers, &rows);
            let text = if how.header { t } else { t.lines().skip(1).collect::<Vec<_>>().join("\n") };
            if !text.is_empty() {
                out.push_str(&text);
                out.push('\n');
            }
        }
    }
    out
}

/// An Event's age as kubectl shows it: since it was last seen, and for a
/// repeated one how often over how long (`3s (x5 over 40s)`).
pub fn event_age(e: &Value, now: DateTime<Utc>) -> String {
    let last = age(s(e, "/lastTimestamp"), now);
    match e.get("count").and_then(Value::as_i64) {
        Some(n) if n > 1 => format!("{last} (x{n} over {})", age(s(e, "/firstTimestamp"), now)),
        _ => last,
    }
}

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

/// Lay out rows in aligned columns, three spaces apart, as kubectl does.
pub fn table<S: AsRef<str>>(headers: &[S], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.as_ref().len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.len());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(c);
            } else {
                out.push_str(&format!("{:width$}   ", c, width = widths[i]));
            }
        }
        out.trim_end().to_string()
    };
    let mut out = vec![line(headers.iter().map(AsRef::as_ref).collect())];
    for r in rows {
        out.push(line(r.iter().map(String::as_str).collect()));
    }
    out.join("\n")
}

/// A YAML rendering.
pub fn yaml(v: &Value) -> String {
    serde_yaml_ng::to_string(v).unwrap_or_default()
}

/// `describe`: the object's main fields, then its events.
pub fn describe(o: &Value, events: &[Value], now: DateTime<Utc>) -> String {
    let mut out = String::new();
    let mut field = |k: &str, v: String| out.push_str(&format!("{:<18}{}\n", format!("{k}:"), v));
    field("Name", meta_str(o, "name").into());
    if !meta_str(o, "namespace").is_empty() {
        field("Namespace", meta_str(o, "namespace").into());
    }
    let map_line = |ptr: &str| {
        o.pointer(ptr)
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                    .collect::<Vec<_>>()
                    .join("\n                  ")
            })
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "<none>".into())
    };
    field("Labels", map_line("/metadata/labels"));
    field("Annotations", map_line("/metadata/annotations"));
    field("UID", meta_str(o, "uid").into());
    field("ResourceVersion", meta_str(o, "resourceVersion").into());
    field(
        "Created",
        format!("{} ({} ago)", meta_str(o, "creationTimestamp"), age(meta_str(o, "creationTimestamp"), now)),
    );
    if let Some(node) = o.pointer("/spec/nodeName").and_then(Value::as_str) {
        field("Node", node.into());
    }
    if let Some(phase) = o.pointer("/status/phase").and_then(Value::as_str) {
        field("Status", phase.into());
    }
    if let Some(ip) = o.pointer("/status/podIP").and_then(Value::as_str) {
        field("IP", ip.into());
    }
    for section in ["spec", "data", "status"] {
        if let Some(v) = o.get(section) {
            out.push_str(&format!("{}:\n", capitalize(section)));
            for l in yaml(v).lines() {
                out.push_str(&format!("  {l}\n"));
            }
        }
    }
    if let Some(conds) = o.pointer("/status/conditions").and_then(Value::as_array) {
        out.push_str("Conditions:\n");
        let rows: Vec<Vec<String>> = conds
            .iter()
            .map(|c| vec![s(c, "/type").to_string(), s(c, "/status").to_string(), s(c, "/reason").to_string()])
            .collect();
        for l in table(&["Type", "Status", "Reason"], &rows).lines() {
            out.push_str(&format!("  {l}\n"));
        }
    }
    out.push_str("Events:");
    if events.is_empty() {
        out.push_str("  <none>\n");
    } else {
        out.push('\n');
        let rows: Vec<Vec<String>> = events
            .iter()
            .map(|e| {
                vec![
                    s(e, "/type").to_string(),
                    s(e, "/reason").to_string(),
                    event_age(e, now),
                    s(e, "/source/component").to_string(),
                    s(e, "/message").to_string(),
                ]
            })
            .collect();
        for l in table(&["Type", "Reason", "Age", "From", "Message"], &rows).lines() {
            out.push_str(&format!("  {l}\n"));
        }
    }
    out
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ages() {
        let now = DateTime::parse_from_rfc3339("2026-01-02T00:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(age("2026-01-01T23:59:30Z", now), "30s");
        assert_eq!(age("2026-01-01T23:00:00Z", now), "60m");
        assert_eq!(age("2025-12-30T00:00:00Z", now), "3d");
        let once =
            json!({"lastTimestamp": "2026-01-01T23:59:57Z", "firstTimestamp": "2026-01-01T23:59:57Z", "count": 1});
        assert_eq!(event_age(&once, now), "3s");
        let repeated =
            json!({"lastTimestamp": "2026-01-01T23:59:57Z", "firstTimestamp": "2026-01-01T23:59:20Z", "count": 5});
        assert_eq!(event_age(&repeated, now), "3s (x5 over 40s)");
    }

    #[test]
    fn pod_rows() {
        let kind = &crate::objects::kinds::POD;
        let pod = json!({"metadata": {"name": "web", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "a"}], "nodeName": "n1"},
            "status": {"phase": "Running", "podIP": "10.244.0.5", "containerStatuses": [{"ready": true, "restartCount": 2}]}});
        let now = DateTime::parse_from_rfc3339("2026-01-01T00:00:10Z").unwrap().with_timezone(&Utc);
        assert_eq!(
            row(kind, &pod, true, now),
            vec!["web", "1/1", "Running", "2", "10s", "10.244.0.5", "n1", "<none>", "<none>"]
        );
        let t = table(&headers(kind, false), &[row(kind, &pod, false, now)]);
        assert_eq!(t, "NAME   READY   STATUS    RESTARTS   AGE\nweb    1/1     Running   2          10s");
    }
}
