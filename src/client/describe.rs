//! `describe`: an object in detail, then its events in the order they
//! happened.

use chrono::{DateTime, Utc};
use clap::Args;
use serde_json::Value;

use super::connect::ConnectOpts;
use super::error::CliError;
use super::{kinds, print};
use crate::api::pb;
use crate::objects::meta_str;

/// `describe` arguments.
#[derive(Args, Debug)]
pub struct DescribeArgs {
    /// Kind.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Namespace.
    #[arg(short, long)]
    pub namespace: Option<String>,
}

/// Run `describe`.
pub async fn run(opts: &ConnectOpts, a: &DescribeArgs) -> Result<(), CliError> {
    let kind = kinds::resolve(&a.kind)?;
    let mut c = opts.connect().await?;
    let ns = a.namespace.clone().unwrap_or_else(|| "default".into());
    let req =
        pb::GetRequest { kind: kind.kind.into(), namespace: ns.clone(), name: a.name.clone(), linearizable: false };
    let obj = c.get(req).await?.into_inner();
    let obj: Value = serde_json::from_str(&obj.json).map_err(|e| CliError::Usage(e.to_string()))?;
    let events = c
        .list(pb::ListRequest {
            kind: "Event".into(),
            namespace: if kind.namespaced { ns } else { "default".into() },
            label_selector: String::new(),
            field_selector: format!("involvedObject.name={},involvedObject.kind={}", a.name, kind.kind),
            linearizable: false,
        })
        .await?
        .into_inner();
    let events: Value = serde_json::from_str(&events.json).unwrap_or(Value::Null);
    let mut events = events["items"].as_array().cloned().unwrap_or_default();
    in_time_order(&mut events);
    print!("{}", print::describe(&obj, &events, chrono::Utc::now()));
    Ok(())
}

/// When an event last happened: `lastTimestamp`, else `eventTime`, else
/// `firstTimestamp`, else when it was created.
fn when(event: &Value) -> Option<DateTime<Utc>> {
    ["lastTimestamp", "eventTime", "firstTimestamp"]
        .iter()
        .filter_map(|f| event.get(*f).and_then(Value::as_str))
        .chain(std::iter::once(meta_str(event, "creationTimestamp")))
        .find_map(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// Sort events as kubectl's describe does, oldest first by time; events of
/// the same second (time stamps have whole seconds) by their
/// resourceVersion, which grows with every write.
pub fn in_time_order(events: &mut [Value]) {
    let rv = |e: &Value| meta_str(e, "resourceVersion").parse::<u64>().unwrap_or(0);
    events.sort_by(|a, b| when(a).cmp(&when(b)).then_with(|| rv(a).cmp(&rv(b))));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(reason: &str, last: Option<&str>, rv: u64) -> Value {
        let mut e = json!({"reason": reason, "metadata": {"resourceVersion": rv.to_string(),
            "creationTimestamp": "2026-01-01T00:00:00Z"}});
        if let Some(t) = last {
            e["lastTimestamp"] = json!(t);
        }
        e
    }

    #[test]
    fn events_come_in_the_order_they_happened() {
        type Case = (&'static str, Vec<Value>, Vec<&'static str>);
        let cases: Vec<Case> = vec![
            (
                "same second: by resourceVersion",
                vec![
                    ev("Started", Some("2026-01-01T00:00:05Z"), 40),
                    ev("Created", Some("2026-01-01T00:00:05Z"), 39),
                    ev("Scheduled", Some("2026-01-01T00:00:05Z"), 31),
                    ev("Pulled", Some("2026-01-01T00:00:05Z"), 38),
                ],
                vec!["Scheduled", "Pulled", "Created", "Started"],
            ),
            (
                "time first, whatever the resourceVersion",
                vec![ev("Killing", Some("2026-01-01T00:01:00Z"), 5), ev("Scheduled", Some("2026-01-01T00:00:01Z"), 9)],
                vec!["Scheduled", "Killing"],
            ),
            (
                "a repeated event counts at its last time",
                vec![ev("BackOff", Some("2026-01-01T00:09:00Z"), 3), ev("Started", Some("2026-01-01T00:02:00Z"), 7)],
                vec!["Started", "BackOff"],
            ),
            (
                "eventTime and creation time when lastTimestamp is missing",
                vec![
                    {
                        let mut e = ev("Late", None, 1);
                        e["eventTime"] = json!("2026-01-01T00:00:09.500000Z");
                        e
                    },
                    ev("Early", None, 2),
                ],
                vec!["Early", "Late"],
            ),
            (
                "offsets compare as instants",
                vec![ev("B", Some("2026-01-01T01:00:30+01:00"), 1), ev("A", Some("2026-01-01T00:00:10Z"), 2)],
                vec!["A", "B"],
            ),
        ];
        for (name, mut events, want) in cases {
            in_time_order(&mut events);
            let got: Vec<&str> = events.iter().map(|e| e["reason"].as_str().unwrap()).collect();
            assert_eq!(got, want, "{name}");
        }
    }
}
