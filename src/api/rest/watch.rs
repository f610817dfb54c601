//! Watches: one compact JSON `{"type","object"}` per line, flushed per event.
//! No resourceVersion (or 0) means the current state as ADDED events, then the
//! changes; a resourceVersion means the changes after it; one older than the
//! kept history is 410 Expired — answered as an ERROR event once the stream
//! has begun. Bookmarks if asked; the stream ends after `timeoutSeconds`.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{json, Value};

use super::body;
use super::query::ListOptions;
use super::status::Failure;
use super::table;
use super::Call;
use crate::registry::watch::{From, Selection};

/// How often a bookmark is sent when asked for and nothing else happens.
const BOOKMARK_EVERY: Duration = Duration::from_secs(60);
/// The longest a watch lasts without `timeoutSeconds` (clients reconnect).
const MAX_WATCH: Duration = Duration::from_secs(30 * 60);

fn line(event: &Value) -> Result<Bytes, Infallible> {
    let mut s = event.to_string();
    s.push('\n');
    Ok(Bytes::from(s))
}

/// `GET` a collection with `watch=true` (or a single object's watch via `fieldSelector=metadata.name=…`).
pub fn watch(call: &Call<'_>, opts: &ListOptions) -> Result<Response, Failure> {
    let kind = call.target.kind;
    let sel = Selection {
        namespace: Some(call.target.namespace.clone()),
        labels: opts.labels.clone(),
        fields: opts.fields.clone(),
    };
    // Unset or 0: the current state as ADDED events first, as Kubernetes does.
    let from = match opts.resource_version {
        None | Some(0) => From::Current,
        Some(rv) => From::After(rv),
    };
    let bookmarks = opts.bookmarks.then_some(BOOKMARK_EVERY);
    let events = call.registry().watch_selected(kind, sel, from, bookmarks)?;
    let tables = body::wants_table(call.headers);
    let include = body::include_object(&call.params)?;
    let mut first_table = true;
    let stream = events.map(move |item| {
        let event = match item {
            Ok(ev) => {
                let object = if tables && ev.kind != "BOOKMARK" {
                    let t = if first_table {
                        table::object_table(kind, &ev.object, include)
                    } else {
                        table::table_row_event(kind, &ev.object, include)
                    };
                    first_table = false;
                    t
                } else {
                    ev.object
                };
                json!({"type": ev.kind, "object": object})
            }
            Err(e) => json!({"type": "ERROR", "object": Failure::from(e).to_status()}),
        };
        line(&event)
    });
    let limit = opts.timeout.unwrap_or(MAX_WATCH).min(MAX_WATCH);
    let stream = stream.take_until(tokio::time::sleep(limit));
    let mut r = Body::from_stream(stream).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, "application/json".parse().expect("valid header"));
    Ok(r)
}
