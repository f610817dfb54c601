//! Lists: selected by labels and fields, read after a read barrier (a list
//! without resourceVersion is as fresh as a quorum read, as Kubernetes'), and
//! paged with `limit` and `continue` — every page of one list comes from the
//! same revision: the first page keeps the whole result for a while, later
//! pages read from it; an expired token is 410 Expired, as Kubernetes answers
//! a compacted one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::response::Response;
use base64::Engine;
use serde_json::{json, Value};

use super::body::{self, json};
use super::query::ListOptions;
use super::status::Failure;
use super::table;
use super::Call;
use crate::registry::watch::Selection;

/// How long the rest of a paged list is kept.
const PAGE_TTL: Duration = Duration::from_secs(120);
/// How many paged lists are kept at once (the oldest goes first).
const MAX_PAGED: usize = 16;
/// How long a list waits for its read barrier or for a resourceVersion to be applied.
const READ_WAIT: Duration = Duration::from_secs(10);

/// A list's objects, as JSON bytes.
type Items = Arc<Vec<Vec<u8>>>;

/// Lists being paged, by id.
#[derive(Default)]
pub struct Pages {
    lists: Mutex<HashMap<u64, (Instant, u64, Items)>>,
}

impl Pages {
    fn keep(&self, revision: u64, items: Items) -> u64 {
        let mut lists = self.lists.lock().expect("pages lock");
        lists.retain(|_, (at, _, _)| at.elapsed() < PAGE_TTL);
        while lists.len() >= MAX_PAGED {
            let oldest = lists.iter().min_by_key(|(_, (at, _, _))| *at).map(|(id, _)| *id);
            if let Some(id) = oldest {
                lists.remove(&id);
            }
        }
        let id = rand::random();
        lists.insert(id, (Instant::now(), revision, items));
        id
    }

    fn find(&self, id: u64) -> Option<(u64, Items)> {
        let lists = self.lists.lock().expect("pages lock");
        lists.get(&id).filter(|(at, _, _)| at.elapsed() < PAGE_TTL).map(|(_, rev, items)| (*rev, items.clone()))
    }
}

/// A continue token: which kept list, and where the next page starts.
fn token(id: u64, offset: usize, revision: u64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!({"id": id.to_string(), "start": offset, "rv": revision}).to_string())
}

fn parse_token(t: &str) -> Option<(u64, usize)> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(t).ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    Some((v.get("id")?.as_str()?.parse().ok()?, v.get("start")?.as_u64()? as usize))
}

fn expired() -> Failure {
    Failure::new(
        410,
        "Expired",
        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
    )
}

/// Wait as a list request asks: a read barrier without resourceVersion (as
/// fresh as a quorum read), the replica to reach a given one, none for "0".
async fn settle(call: &Call<'_>, opts: &ListOptions) -> Result<(), Failure> {
    let registry = call.registry();
    match opts.resource_version {
        None => {
            registry
                .node()
                .read_barrier(READ_WAIT)
                .await
                .map_err(|e| Failure::new(503, "ServiceUnavailable", e.to_string()))?;
        }
        Some(0) => {}
        Some(rv) => {
            registry.reader().wait_applied(rv, READ_WAIT).await;
        }
    }
    Ok(())
}

fn selection(call: &Call<'_>, opts: &ListOptions) -> Selection {
    Selection {
        namespace: Some(call.target.namespace.clone()),
        labels: opts.labels.clone(),
        fields: opts.fields.clone(),
    }
}

/// The selected objects of a list request and the revision they were read at.
pub async fn read(call: &Call<'_>, opts: &ListOptions) -> Result<(Vec<Value>, u64), Failure> {
    settle(call, opts).await?;
    Ok(call.registry().list_selected(call.target.kind, &selection(call, opts))?)
}

/// `GET` a collection (not a watch).
pub async fn list(call: &Call<'_>, opts: &ListOptions) -> Result<Response, Failure> {
    let (items, revision, start) = if opts.continue_token.is_empty() {
        settle(call, opts).await?;
        let (items, rev) = call.registry().list_selected_bytes(call.target.kind, &selection(call, opts))?;
        (Arc::new(items), rev, 0)
    } else {
        let (id, start) =
            parse_token(&opts.continue_token).ok_or_else(|| Failure::bad_request("continue: invalid token"))?;
        let (rev, items) = call.pages.find(id).ok_or_else(expired)?;
        (items, rev, start)
    };
    let end = match opts.limit {
        0 => items.len(),
        n => (start + n).min(items.len()),
    };
    let start = start.min(end);
    let mut meta = json!({"resourceVersion": revision.to_string()});
    if end < items.len() {
        let id = match parse_token(&opts.continue_token) {
            Some((id, _)) => id,
            None => call.pages.keep(revision, items.clone()),
        };
        meta["continue"] = json!(token(id, end, revision));
        meta["remainingItemCount"] = json!(items.len() - end);
    }
    let page = &items[start..end];
    let kind = call.target.kind;
    if body::wants_table(call.headers) {
        let include = body::include_object(&call.params)?;
        let objects: Vec<Value> = page.iter().filter_map(|b| serde_json::from_slice(b).ok()).collect();
        return Ok(json(200, &table::table(kind, &objects, include, meta)));
    }
    // The list is written around the objects' bytes, never parsed.
    Ok(body::json_bytes(200, crate::registry::watch::list_document(kind, &meta, page)))
}

/// `DELETE` a collection: each selected object is deleted as if alone.
pub async fn delete_collection(call: &Call<'_>, opts: &ListOptions, bytes: &[u8]) -> Result<Response, Failure> {
    let (items, revision) = read(call, opts).await?;
    let kind = call.target.kind;
    let mut gone = Vec::new();
    for obj in items {
        let (ns, name) = (
            crate::objects::meta_str(&obj, "namespace").to_string(),
            crate::objects::meta_str(&obj, "name").to_string(),
        );
        match super::objects::delete_one(call, kind, &ns, &name, bytes).await {
            Ok(last) => gone.push(last),
            Err(f) if f.code == 404 => {}
            Err(f) => return Err(f),
        }
    }
    Ok(json(
        200,
        &json!({"kind": kind.list_kind(), "apiVersion": kind.api_version, "metadata": {"resourceVersion": revision.to_string()}, "items": gone}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_pages_expire_oldest_first() {
        let t = token(42, 500, 9);
        assert_eq!(parse_token(&t), Some((42, 500)));
        assert_eq!(parse_token("not-a-token"), None);
        let pages = Pages::default();
        let ids: Vec<u64> = (0..MAX_PAGED + 1).map(|i| pages.keep(i as u64, Arc::new(vec![]))).collect();
        assert!(pages.find(ids[0]).is_none(), "the oldest list made room");
        assert_eq!(pages.find(ids[MAX_PAGED]).map(|(rev, _)| rev), Some(MAX_PAGED as u64));
    }
}
