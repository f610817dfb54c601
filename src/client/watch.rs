//! `get -w`: after the listing, print each change as it happens (a table line,
//! or with `-o json` the event with its type).

use futures::StreamExt;
use serde_json::{json, Value};

use super::connect::ApiClient;
use super::error::CliError;
use super::print::{self, Listing, Output};
use crate::api::pb;
use crate::objects::Kind;

/// Follow changes to objects of `kind` from revision `from` until the stream ends.
pub async fn follow(
    c: &mut ApiClient,
    kind: &Kind,
    ns: &str,
    labels: &str,
    fields: &str,
    from: u64,
    how: Listing,
) -> Result<(), CliError> {
    let mut stream = c
        .watch(pb::WatchRequest {
            kind: kind.kind.into(),
            namespace: ns.into(),
            label_selector: labels.into(),
            field_selector: fields.into(),
            resource_version: from,
            send_initial_events: false,
            allow_bookmarks: false,
        })
        .await?
        .into_inner();
    while let Some(ev) = stream.next().await {
        let ev = ev?;
        let obj: Value = serde_json::from_str(&ev.json).unwrap_or(Value::Null);
        match how.output {
            Some(Output::Json) => println!("{}", json!({"type": ev.r#type, "object": obj})),
            _ => print!("{}", print::objects(kind, std::slice::from_ref(&obj), how, chrono::Utc::now())),
        }
    }
    Ok(())
}
