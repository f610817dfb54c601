//! The OpenAPI documents kubectl reads before it writes and when it explains.
//!
//! kubectl 1.32 validates `apply`, `create`, `replace` and `edit` by default:
//! it downloads `/openapi/v3`, then the document of the object's
//! group/version, and when that document has a `patch` operation for the
//! object's kind (`x-kubernetes-group-version-kind`) taking a
//! `fieldValidation` query parameter, it leaves validation to the server
//! (`fieldValidation=Strict`); without the documents it fails ("failed to
//! download openapi"). Client-side `apply` computes its strategic merge patch
//! from the same document's schemas (patch strategies and merge keys), and
//! `kubectl explain` walks them (`$ref` and `allOf`) from the definition
//! carrying the kind's group/version/kind.
//!
//! Every document is generated here from the schema catalogue
//! ([`crate::objects::schema`], itself from `k8s-openapi`) and the kind
//! registry ([`crate::objects::kinds`]): one operation model rendered twice,
//! as OpenAPI 3.0 per group/version and as one swagger 2.0 document. They are
//! built once, on first use, and never change while the binary runs, so the
//! hash in the index is a stable cache key (identical on every node running
//! the same build).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::status::Failure;
use crate::objects::kinds::{self, Kind, KINDS};
use crate::objects::schema::{catalogue, definition_of, REF_PREFIX};

/// Where a swagger 2.0 `$ref` points.
const V2_REF_PREFIX: &str = "#/definitions/";

const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";
const SCALE: &str = "io.k8s.api.autoscaling.v1.Scale";
const EVICTION: &str = "io.k8s.api.policy.v1.Eviction";
const BINDING: &str = "io.k8s.api.core.v1.Binding";

/// The content types a patch may be sent in; kubectl looks for the strategic
/// one before it computes a strategic merge patch from the schemas.
const PATCH_CONTENT_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
];
const JSON: &[&str] = &["application/json"];
const JSON_AND_WATCH: &[&str] = &["application/json", "application/json;stream=watch"];
const TEXT: &[&str] = &["text/plain"];
const ANY: &[&str] = &["*/*"];

/// One served document: the value, its JSON, and the hash its URL carries.
pub struct Served {
    /// The document.
    pub value: Arc<Value>,
    /// The document as sent (compact JSON).
    pub json: Vec<u8>,
    /// Hex SHA-256 of `json`: the `hash` query parameter of its index entry
    /// (a strong ETag, too).
    pub hash: String,
}

impl Served {
    fn new(value: Value) -> Served {
        let json = serde_json::to_vec(&value).expect("a JSON value serialises");
        let hash = Sha256::digest(&json).iter().map(|b| format!("{b:02x}")).collect();
        Served { value: Arc::new(value), json, hash }
    }
}

/// `GET /openapi/v3`: every group/version document and where to fetch it.
pub fn v3_index() -> Value {
    (*v3_documents().index.value).clone()
}

/// `GET /openapi/v3/<group_version_path>` (`api/v1`, `apis/apps/v1`; a
/// leading or trailing `/` is ignored): the OpenAPI 3.0 document of one
/// group/version, or `None` when clusterd serves no such group/version.
pub fn v3_document(group_version_path: &str) -> Option<Arc<Value>> {
    v3_served(group_version_path).map(|s| s.value.clone())
}

/// [`v3_document`] with its serialised form and hash, to answer without
/// serialising again (`?hash=` equal to [`Served::hash`] means the client
/// asks for exactly this content: it may be cached as immutable).
pub fn v3_served(group_version_path: &str) -> Option<&'static Served> {
    v3_documents().by_path.get(group_version_path.trim_matches('/'))
}

/// `GET /openapi/v2`: one swagger 2.0 document for every group/version
/// (refs as `#/definitions/<name>`). kubectl asks for it only in protobuf
/// (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`) and only
/// when the v3 documents fail it; this JSON form is for other clients.
pub fn v2() -> Arc<Value> {
    v2_served().value.clone()
}

/// [`v2`] with its serialised form and hash.
pub fn v2_served() -> &'static Served {
    static V2: OnceLock<Served> = OnceLock::new();
    V2.get_or_init(|| Served::new(build_v2(&models())))
}

/// How a document request is answered: whether the client's copy is
/// current (304), and how long the answer may be cached.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    not_modified: bool,
    cache_control: &'static str,
}

/// The answer to a request for `served`, given the `hash` it asked for (the
/// index's URLs carry one) and its `If-None-Match`. A URL naming the current
/// hash never changes content: cacheable for good; any other request must
/// revalidate, by ETag.
fn answer(served: &Served, asked_hash: Option<&str>, if_none_match: Option<&str>) -> Answer {
    let cache_control = match asked_hash {
        Some(h) if h == served.hash => "public, immutable, max-age=31536000",
        _ => "no-cache, private",
    };
    let etag = format!("\"{}\"", served.hash);
    let not_modified = if_none_match
        .is_some_and(|v| v.split(',').any(|t| t.trim().trim_start_matches("W/") == etag || t.trim() == "*"));
    Answer { not_modified, cache_control }
}

fn respond(served: &'static Served, query: Option<&str>, headers: &HeaderMap) -> Response {
    let asked_hash = query.and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("hash=")).map(|h| h.trim()));
    let if_none_match = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok());
    let a = answer(served, asked_hash, if_none_match);
    let etag = format!("\"{}\"", served.hash);
    let common = [(header::ETAG, etag), (header::CACHE_CONTROL, a.cache_control.to_owned())];
    if a.not_modified {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    let body = Body::from(Bytes::from_static(&served.json));
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json".to_owned())], common, body).into_response()
}

/// The whole answer to `GET /openapi/v3/<path>?<query>`: the document (with
/// its ETag and caching headers), 304 when `If-None-Match` names it, 404
/// when no such group/version is served.
pub fn v3_response(group_version_path: &str, query: Option<&str>, headers: &HeaderMap) -> Response {
    match v3_served(group_version_path) {
        Some(served) => respond(served, query, headers),
        None => Failure::no_route(&format!("/openapi/v3/{group_version_path}")).into_response(),
    }
}

/// The whole answer to `GET /openapi/v3`.
pub fn v3_index_response(headers: &HeaderMap) -> Response {
    respond(&v3_documents().index, None, headers)
}

/// The whole answer to `GET /openapi/v2`: the JSON document, or 406 when the
/// client accepts only protobuf (kubectl's v2 client), which it survives:
/// it then patches and validates from its built-in types.
pub fn v2_response(headers: &HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("*/*");
    if !accepts_json(accept) {
        let message = format!("only application/json is served, not {accept}");
        return Failure::new(406, "NotAcceptable", message).into_response();
    }
    respond(v2_served(), None, headers)
}

/// Whether an `Accept` header admits JSON.
fn accepts_json(accept: &str) -> bool {
    accept
        .split(',')
        .map(|t| t.split(';').next().unwrap_or("").trim())
        .any(|t| matches!(t, "application/json" | "application/*" | "*/*" | ""))
}

struct V3Documents {
    index: Served,
    by_path: BTreeMap<String, Served>,
}

fn v3_documents() -> &'static V3Documents {
    static V3: OnceLock<V3Documents> = OnceLock::new();
    V3.get_or_init(|| {
        let mut by_path = BTreeMap::new();
        let mut paths = Map::new();
        for model in models() {
            let served = Served::new(render_v3(&model));
            let url = format!("/openapi/v3/{}?hash={}", model.gv.path(), served.hash);
            paths.insert(model.gv.path(), json!({ "serverRelativeURL": url }));
            by_path.insert(model.gv.path(), served);
        }
        V3Documents { index: Served::new(json!({ "paths": paths })), by_path }
    })
}

/// An API group and version: `("", "v1")`, `("apps", "v1")`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct GroupVersion {
    group: &'static str,
    version: &'static str,
}

impl GroupVersion {
    /// From an `apiVersion` (`v1`, `apps/v1`).
    fn of(api_version: &'static str) -> GroupVersion {
        match api_version.split_once('/') {
            Some((group, version)) => GroupVersion { group, version },
            None => GroupVersion { group: "", version: api_version },
        }
    }

    /// The document's path under `/openapi/v3/`: `api/v1`, `apis/apps/v1`.
    fn path(&self) -> String {
        match self.group {
            "" => format!("api/{}", self.version),
            g => format!("apis/{g}/{}", self.version),
        }
    }

    /// The request path prefix: `/api/v1`, `/apis/apps/v1`.
    fn url(&self) -> String {
        format!("/{}", self.path())
    }

    /// The group's first DNS label, `core` for the legacy group: the
    /// operations' tags and identifiers are made of it.
    fn short_group(&self) -> &'static str {
        match self.group {
            "" => "core",
            g => g.split('.').next().unwrap_or(g),
        }
    }

    /// `core_v1`, `apps_v1`, `coordination_v1`.
    fn tag(&self) -> String {
        format!("{}_{}", self.short_group(), self.version)
    }

    /// `CoreV1`, `AppsV1`, `CoordinationV1`.
    fn camel(&self) -> String {
        format!("{}{}", capitalise(self.short_group()), capitalise(self.version))
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
}

/// A group, version and kind, as the extension `x-kubernetes-group-version-kind` spells it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Gvk {
    gv: GroupVersion,
    kind: String,
}

impl Gvk {
    fn new(api_version: &'static str, kind: impl Into<String>) -> Gvk {
        Gvk { gv: GroupVersion::of(api_version), kind: kind.into() }
    }

    fn to_json(&self) -> Value {
        json!({ "group": self.gv.group, "version": self.gv.version, "kind": self.kind })
    }
}

/// A parameter of an operation or a path.
struct Param {
    name: &'static str,
    location: &'static str,
    ty: &'static str,
    description: &'static str,
}

macro_rules! params {
    ($($id:ident: $name:literal, $loc:literal, $ty:literal, $desc:literal;)*) => {
        $(const $id: Param = Param { name: $name, location: $loc, ty: $ty, description: $desc };)*
    };
}

params! {
    NAME: "name", "path", "string", "The object's name.";
    NAMESPACE: "namespace", "path", "string", "The namespace the object lives in.";
    PRETTY: "pretty", "query", "string", "'true' to indent the response.";
    DRY_RUN: "dryRun", "query", "string",
        "'All' to validate and default the request without storing anything.";
    FIELD_MANAGER: "fieldManager", "query", "string",
        "The name of the actor making the change, as recorded in metadata.managedFields.";
    FIELD_VALIDATION: "fieldValidation", "query", "string",
        "What to do with unknown or duplicate fields in the body: Ignore them, Warn about them, or reject the request (Strict).";
    FORCE: "force", "query", "boolean",
        "Server-side apply: take over fields other managers own instead of failing with a conflict.";
    ALLOW_WATCH_BOOKMARKS: "allowWatchBookmarks", "query", "boolean",
        "Watch: the client accepts BOOKMARK events carrying only a resourceVersion.";
    CONTINUE: "continue", "query", "string",
        "The token of the previous page of a paged list.";
    FIELD_SELECTOR: "fieldSelector", "query", "string",
        "Only objects whose fields match (metadata.name=x, status.phase!=Running, ...).";
    LABEL_SELECTOR: "labelSelector", "query", "string",
        "Only objects whose labels match (app=web, tier in (a,b), !canary, ...).";
    LIMIT: "limit", "query", "integer",
        "At most this many objects; the rest is fetched with the returned continue token.";
    RESOURCE_VERSION: "resourceVersion", "query", "string",
        "List: the revision to read at. Watch: send the changes after this revision.";
    RESOURCE_VERSION_MATCH: "resourceVersionMatch", "query", "string",
        "How resourceVersion applies to a list: Exact or NotOlderThan.";
    SEND_INITIAL_EVENTS: "sendInitialEvents", "query", "boolean",
        "Watch: start with the current state as ADDED events.";
    TIMEOUT_SECONDS: "timeoutSeconds", "query", "integer",
        "End the list or watch call after this many seconds.";
    WATCH: "watch", "query", "boolean",
        "Stream the changes as watch events instead of listing.";
    GRACE_PERIOD_SECONDS: "gracePeriodSeconds", "query", "integer",
        "Seconds the object is given to terminate before it is removed; 0 removes it at once.";
    ORPHAN_DEPENDENTS: "orphanDependents", "query", "boolean",
        "Deprecated: use propagationPolicy.";
    PROPAGATION_POLICY: "propagationPolicy", "query", "string",
        "What happens to dependents: Orphan, Background or Foreground.";
    CONTAINER: "container", "query", "string",
        "The container; may be omitted when the pod has only one.";
    FOLLOW: "follow", "query", "boolean", "Keep the stream open and send new lines as they are written.";
    PREVIOUS: "previous", "query", "boolean", "The log of the previous run of a restarted container.";
    SINCE_SECONDS: "sinceSeconds", "query", "integer", "Only lines written in the last this many seconds.";
    TAIL_LINES: "tailLines", "query", "integer", "Only the last this many lines.";
    TIMESTAMPS: "timestamps", "query", "boolean", "Start each line with the time it was written (RFC 3339).";
    LIMIT_BYTES: "limitBytes", "query", "integer", "Stop after this many bytes.";
    COMMAND: "command", "query", "string", "The command and its arguments, one parameter each.";
    STDIN: "stdin", "query", "boolean", "Attach the standard input.";
    STDOUT: "stdout", "query", "boolean", "Attach the standard output.";
    STDERR: "stderr", "query", "boolean", "Attach the standard error.";
    TTY: "tty", "query", "boolean", "Allocate a terminal.";
}

const LIST_PARAMS: &[&Param] = &[
    &ALLOW_WATCH_BOOKMARKS,
    &CONTINUE,
    &FIELD_SELECTOR,
    &LABEL_SELECTOR,
    &LIMIT,
    &RESOURCE_VERSION,
    &RESOURCE_VERSION_MATCH,
    &SEND_INITIAL_EVENTS,
    &TIMEOUT_SECONDS,
    &WATCH,
];
const WRITE_PARAMS: &[&Param] = &[&DRY_RUN, &FIELD_MANAGER, &FIELD_VALIDATION];
const PATCH_PARAMS: &[&Param] = &[&DRY_RUN, &FIELD_MANAGER, &FIELD_VALIDATION, &FORCE];
const DELETE_PARAMS: &[&Param] = &[&DRY_RUN, &GRACE_PERIOD_SECONDS, &ORPHAN_DEPENDENTS, &PROPAGATION_POLICY];
const DELETE_COLLECTION_PARAMS: &[&Param] = &[
    &DRY_RUN,
    &GRACE_PERIOD_SECONDS,
    &ORPHAN_DEPENDENTS,
    &PROPAGATION_POLICY,
    &CONTINUE,
    &FIELD_SELECTOR,
    &LABEL_SELECTOR,
    &LIMIT,
    &RESOURCE_VERSION,
    &RESOURCE_VERSION_MATCH,
    &SEND_INITIAL_EVENTS,
    &TIMEOUT_SECONDS,
];
const LOG_PARAMS: &[&Param] = &[&CONTAINER, &FOLLOW, &LIMIT_BYTES, &PREVIOUS, &SINCE_SECONDS, &TAIL_LINES, &TIMESTAMPS];
const EXEC_PARAMS: &[&Param] = &[&COMMAND, &CONTAINER, &STDERR, &STDIN, &STDOUT, &TTY];

/// What an operation takes or returns.
enum Payload {
    /// An object of this definition.
    Object(String),
    /// Plain text, or a stream upgraded to another protocol.
    Text,
}

impl Payload {
    fn schema(&self, ref_prefix: &str) -> Value {
        match self {
            Payload::Object(def) => json!({ "$ref": format!("{ref_prefix}{def}") }),
            Payload::Text => json!({ "type": "string" }),
        }
    }
}

/// One operation of one path.
struct Operation {
    method: &'static str,
    /// `x-kubernetes-action`.
    action: &'static str,
    id: String,
    description: String,
    gvk: Gvk,
    query: &'static [&'static Param],
    body: Option<(Payload, &'static [&'static str])>,
    reply: (Payload, &'static [&'static str]),
    codes: &'static [u16],
}

/// One path and its operations.
struct PathEntry {
    path: String,
    params: Vec<&'static Param>,
    ops: Vec<Operation>,
}

/// One group/version: its paths and the definitions they reach, each kind's
/// carrying its group/version/kind.
struct Model {
    gv: GroupVersion,
    paths: Vec<PathEntry>,
    definitions: BTreeMap<String, Value>,
}

/// The group/versions served, the legacy group first, then in the order of
/// [`KINDS`], then those only subresources use (Scale, Eviction).
fn group_versions() -> Vec<GroupVersion> {
    let mut gvs: Vec<GroupVersion> = Vec::new();
    let extra = [GroupVersion::of("autoscaling/v1"), GroupVersion::of("policy/v1")];
    for gv in KINDS.iter().map(|k| GroupVersion::of(k.api_version)).chain(extra) {
        if !gvs.contains(&gv) {
            gvs.push(gv);
        }
    }
    gvs
}

fn list_name(kind: &Kind) -> String {
    format!("{}List", definition_of(kind))
}

/// A kind's list type (`k8s-openapi` has no schema for `List<T>`).
fn list_definition(kind: &Kind) -> Value {
    json!({
        "description": format!("A list of {} objects.", kind.kind),
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {
                "description": "The versioned schema of this representation of the list.",
                "type": "string",
            },
            "items": {
                "description": format!("The {}.", kind.plural),
                "type": "array",
                "items": { "$ref": format!("{REF_PREFIX}{}", definition_of(kind)) },
            },
            "kind": {
                "description": "The REST resource this list represents.",
                "type": "string",
            },
            "metadata": {
                "description": "The list's metadata: its revision and continue token.",
                "allOf": [{ "$ref": format!("{REF_PREFIX}{LIST_META}") }],
            },
        },
    })
}

/// The operations of every served kind's paths, per group/version.
fn models() -> Vec<Model> {
    let gvs = group_versions();
    // DeleteOptions is every group's: real clients look it up by any of them.
    let delete_options_gvks: Vec<Gvk> = gvs.iter().map(|gv| Gvk { gv: *gv, kind: "DeleteOptions".into() }).collect();
    gvs.iter()
        .map(|gv| {
            let mut paths = Vec::new();
            let mut roots: BTreeMap<String, Vec<Gvk>> = BTreeMap::new();
            let mut own: BTreeMap<String, Value> = BTreeMap::new();
            for kind in KINDS.iter().copied().filter(|k| GroupVersion::of(k.api_version) == *gv) {
                paths.extend(kind_paths(kind));
                roots.entry(definition_of(kind).into()).or_default().push(Gvk::new(kind.api_version, kind.kind));
                roots
                    .entry(list_name(kind))
                    .or_default()
                    .push(Gvk::new(kind.api_version, format!("{}List", kind.kind)));
                own.insert(list_name(kind), list_definition(kind));
                if has_scale(kind) {
                    roots.entry(SCALE.into()).or_default().push(Gvk::new("autoscaling/v1", "Scale"));
                }
                if *kind == kinds::POD {
                    roots.entry(EVICTION.into()).or_default().push(Gvk::new("policy/v1", "Eviction"));
                    roots.entry(BINDING.into()).or_default().push(Gvk::new("v1", "Binding"));
                }
            }
            match gv.path().as_str() {
                "apis/autoscaling/v1" => {
                    roots.entry(SCALE.into()).or_default().push(Gvk::new("autoscaling/v1", "Scale"))
                }
                "apis/policy/v1" => roots.entry(EVICTION.into()).or_default().push(Gvk::new("policy/v1", "Eviction")),
                _ => {}
            }
            roots.entry(STATUS.into()).or_default().push(Gvk::new("v1", "Status"));
            roots.entry(DELETE_OPTIONS.into()).or_default().extend(delete_options_gvks.iter().cloned());
            roots.entry(PATCH.into()).or_default();
            Model { gv: *gv, paths, definitions: reachable(&roots, &own) }
        })
        .collect()
}

/// The definitions reachable from `roots` (from the catalogue, or `own`),
/// each root carrying its group/version/kinds.
fn reachable(roots: &BTreeMap<String, Vec<Gvk>>, own: &BTreeMap<String, Value>) -> BTreeMap<String, Value> {
    let catalogue = catalogue();
    let mut found: BTreeMap<String, Value> = BTreeMap::new();
    let mut todo: Vec<String> = roots.keys().cloned().collect();
    while let Some(name) = todo.pop() {
        if found.contains_key(&name) {
            continue;
        }
        // An unknown name stays unresolved: the tests catch it.
        let Some(def) = own.get(&name).or_else(|| catalogue.get(&name)) else { continue };
        let mut def = def.clone();
        refs(&def, &mut |r| todo.push(r.to_owned()));
        if let (Some(gvks), Some(obj)) = (roots.get(&name), def.as_object_mut()) {
            let mut gvks = gvks.clone();
            gvks.sort();
            gvks.dedup();
            if !gvks.is_empty() {
                let list = gvks.iter().map(Gvk::to_json).collect();
                obj.insert("x-kubernetes-group-version-kind".into(), Value::Array(list));
            }
        }
        found.insert(name, def);
    }
    found
}

/// Calls `f` with the definition name of every `$ref` in `v`.
fn refs(v: &Value, f: &mut impl FnMut(&str)) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x.as_str().and_then(|s| s.strip_prefix(REF_PREFIX))) {
                    ("$ref", Some(name)) => f(name),
                    _ => refs(x, f),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, f)),
        _ => {}
    }
}

fn has_scale(kind: &Kind) -> bool {
    [kinds::DEPLOYMENT, kinds::REPLICA_SET, kinds::STATEFUL_SET].contains(kind)
}

/// The paths of one kind: its collection(s), its objects, their subresources.
fn kind_paths(kind: &'static Kind) -> Vec<PathEntry> {
    let gv = GroupVersion::of(kind.api_version);
    let gvk = Gvk::new(kind.api_version, kind.kind);
    let def = definition_of(kind);
    let (k, plural) = (kind.kind, kind.plural);
    let (collection, object, scope, mut scope_params) = if kind.namespaced {
        (
            format!("{}/namespaces/{{namespace}}/{plural}", gv.url()),
            format!("{}/namespaces/{{namespace}}/{plural}/{{name}}", gv.url()),
            "Namespaced",
            vec![&NAMESPACE],
        )
    } else {
        (format!("{}/{plural}", gv.url()), format!("{}/{plural}/{{name}}", gv.url()), "", vec![])
    };
    scope_params.push(&PRETTY);
    let id = |verb: &str, suffix: &str| format!("{verb}{}{scope}{k}{suffix}", gv.camel());
    let op = |method, action, id: String, description: String, query, body, reply, codes| Operation {
        method,
        action,
        id,
        description,
        gvk: gvk.clone(),
        query,
        body,
        reply,
        codes,
    };
    let object_of = |d: &str| Payload::Object(d.to_owned());

    let mut paths = vec![PathEntry {
        path: collection,
        params: scope_params.clone(),
        ops: vec![
            op(
                "get",
                "list",
                id("list", ""),
                format!("List or watch {plural}."),
                LIST_PARAMS,
                None,
                (object_of(&list_name(kind)), JSON_AND_WATCH),
                &[200],
            ),
            op(
                "post",
                "post",
                id("create", ""),
                format!("Create a {k}."),
                WRITE_PARAMS,
                Some((object_of(def), JSON)),
                (object_of(def), JSON),
                &[200, 201, 202],
            ),
            op(
                "delete",
                "deletecollection",
                id("deleteCollection", ""),
                format!("Delete every {k} the selectors match."),
                DELETE_COLLECTION_PARAMS,
                Some((object_of(DELETE_OPTIONS), JSON)),
                (object_of(STATUS), JSON),
                &[200],
            ),
        ],
    }];
    let mut object_params = vec![&NAME];
    object_params.extend(scope_params.iter().copied());
    // Read, replace and patch: of the object, and of its subresources alike.
    let read_replace_patch = |suffix: &str, what: &str, def: &str| {
        vec![
            op("get", "get", id("read", suffix), format!("Read {what}."), &[], None, (object_of(def), JSON), &[200]),
            op(
                "put",
                "put",
                id("replace", suffix),
                format!("Replace {what}."),
                WRITE_PARAMS,
                Some((object_of(def), JSON)),
                (object_of(def), JSON),
                &[200, 201],
            ),
            op(
                "patch",
                "patch",
                id("patch", suffix),
                format!("Patch {what}."),
                PATCH_PARAMS,
                Some((object_of(PATCH), PATCH_CONTENT_TYPES)),
                (object_of(def), JSON),
                &[200, 201],
            ),
        ]
    };
    let mut object_ops = read_replace_patch("", &format!("a {k}"), def);
    object_ops.push(op(
        "delete",
        "delete",
        id("delete", ""),
        format!("Delete a {k}."),
        DELETE_PARAMS,
        Some((object_of(DELETE_OPTIONS), JSON)),
        (object_of(STATUS), JSON),
        &[200, 202],
    ));
    paths.push(PathEntry { path: object.clone(), params: object_params.clone(), ops: object_ops });
    if kind.namespaced {
        paths.push(PathEntry {
            path: format!("{}/{plural}", gv.url()),
            params: vec![&PRETTY],
            ops: vec![op(
                "get",
                "list",
                format!("list{}{k}ForAllNamespaces", gv.camel()),
                format!("List or watch {plural} in every namespace."),
                LIST_PARAMS,
                None,
                (object_of(&list_name(kind)), JSON_AND_WATCH),
                &[200],
            )],
        });
    }
    let mut rw = |sub: &str, sub_def: &str, sub_gvk: Gvk| {
        let ops = read_replace_patch(&capitalise(sub), &format!("the {sub} of a {k}"), sub_def)
            .into_iter()
            .map(|o| Operation { gvk: sub_gvk.clone(), ..o })
            .collect();
        paths.push(PathEntry { path: format!("{object}/{sub}"), params: object_params.clone(), ops });
    };
    if kind.has_status {
        rw("status", def, gvk.clone());
    }
    if has_scale(kind) {
        rw("scale", SCALE, Gvk::new("autoscaling/v1", "Scale"));
    }
    if *kind == kinds::POD {
        let create = |sub: &str, sub_def: &str, sub_gvk: Gvk| PathEntry {
            path: format!("{object}/{sub}"),
            params: object_params.clone(),
            ops: vec![Operation {
                gvk: sub_gvk,
                ..op(
                    "post",
                    "post",
                    id("create", &capitalise(sub)),
                    format!("Create the {sub} of a {k}."),
                    WRITE_PARAMS,
                    Some((object_of(sub_def), JSON)),
                    (object_of(sub_def), JSON),
                    &[200, 201, 202],
                )
            }],
        };
        paths.push(create("eviction", EVICTION, Gvk::new("policy/v1", "Eviction")));
        paths.push(create("binding", BINDING, Gvk::new("v1", "Binding")));
        paths.push(PathEntry {
            path: format!("{object}/log"),
            params: object_params.clone(),
            ops: vec![op(
                "get",
                "get",
                id("read", "Log"),
                format!("Read the log of a {k}'s container."),
                LOG_PARAMS,
                None,
                (Payload::Text, TEXT),
                &[200],
            )],
        });
        let exec_gvk = Gvk::new("v1", "PodExecOptions");
        let exec = |method: &'static str, verb: &str| Operation {
            gvk: exec_gvk.clone(),
            ..op(
                method,
                "connect",
                id(verb, "Exec"),
                format!("Run a command in a {k}'s container (a stream upgraded to WebSocket or SPDY)."),
                EXEC_PARAMS,
                None,
                (Payload::Text, ANY),
                &[200],
            )
        };
        paths.push(PathEntry {
            path: format!("{object}/exec"),
            params: object_params.clone(),
            ops: vec![exec("get", "connectGet"), exec("post", "connectPost")],
        });
    }
    paths
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        _ => "",
    }
}

fn v3_param(p: &Param) -> Value {
    let mut v = json!({
        "name": p.name,
        "in": p.location,
        "description": p.description,
        "schema": { "type": p.ty, "uniqueItems": true },
    });
    if p.location == "path" {
        v["required"] = true.into();
    }
    v
}

fn v2_param(p: &Param) -> Value {
    let mut v = json!({
        "name": p.name,
        "in": p.location,
        "description": p.description,
        "type": p.ty,
        "uniqueItems": true,
    });
    if p.location == "path" {
        v["required"] = true.into();
    }
    v
}

fn common(op: &Operation, gv: GroupVersion) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("tags".into(), json!([gv.tag()]));
    m.insert("description".into(), op.description.clone().into());
    m.insert("operationId".into(), op.id.clone().into());
    m.insert("x-kubernetes-action".into(), op.action.into());
    m.insert("x-kubernetes-group-version-kind".into(), op.gvk.to_json());
    m
}

fn content(schema: &Value, types: &[&str]) -> Value {
    types.iter().map(|t| ((*t).to_owned(), json!({ "schema": schema }))).collect::<Map<_, _>>().into()
}

fn render_v3_op(op: &Operation, gv: GroupVersion) -> Value {
    let mut m = common(op, gv);
    if !op.query.is_empty() {
        m.insert("parameters".into(), op.query.iter().map(|p| v3_param(p)).collect());
    }
    if let Some((body, types)) = &op.body {
        m.insert(
            "requestBody".into(),
            json!({ "content": content(&body.schema(REF_PREFIX), types), "required": true }),
        );
    }
    let reply = content(&op.reply.0.schema(REF_PREFIX), op.reply.1);
    let mut responses: Map<String, Value> =
        op.codes.iter().map(|c| (c.to_string(), json!({ "description": reason(*c), "content": reply }))).collect();
    responses.insert("401".into(), json!({ "description": "Unauthorized" }));
    m.insert("responses".into(), responses.into());
    m.into()
}

fn render_v3(model: &Model) -> Value {
    let paths: Map<String, Value> = model
        .paths
        .iter()
        .map(|p| {
            let mut item = Map::new();
            item.insert("parameters".into(), p.params.iter().map(|x| v3_param(x)).collect());
            for op in &p.ops {
                item.insert(op.method.into(), render_v3_op(op, model.gv));
            }
            (p.path.clone(), Value::Object(item))
        })
        .collect();
    let schemas: Map<String, Value> = model.definitions.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": format!("clusterd {}", env!("CARGO_PKG_VERSION")) },
        "paths": paths,
        "components": { "schemas": schemas },
    })
}

fn render_v2_op(op: &Operation, gv: GroupVersion) -> Value {
    let mut m = common(op, gv);
    let mut params: Vec<Value> = op.query.iter().map(|p| v2_param(p)).collect();
    let consumes: &[&str] = match &op.body {
        Some((body, types)) => {
            let schema = body.schema(V2_REF_PREFIX);
            params.push(json!({ "name": "body", "in": "body", "required": true, "schema": schema }));
            types
        }
        None => ANY,
    };
    if !params.is_empty() {
        m.insert("parameters".into(), params.into());
    }
    m.insert("consumes".into(), json!(consumes));
    m.insert("produces".into(), json!(op.reply.1));
    m.insert("schemes".into(), json!(["https"]));
    let schema = op.reply.0.schema(V2_REF_PREFIX);
    let mut responses: Map<String, Value> =
        op.codes.iter().map(|c| (c.to_string(), json!({ "description": reason(*c), "schema": schema }))).collect();
    responses.insert("401".into(), json!({ "description": "Unauthorized" }));
    m.insert("responses".into(), responses.into());
    m.into()
}

/// Every `#/components/schemas/` reference in `v` turned into `#/definitions/`.
fn to_v2_refs(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                match x {
                    Value::String(s) if k == "$ref" => {
                        if let Some(name) = s.strip_prefix(REF_PREFIX) {
                            *s = format!("{V2_REF_PREFIX}{name}");
                        }
                    }
                    _ => to_v2_refs(x),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(to_v2_refs),
        _ => {}
    }
}

fn build_v2(models: &[Model]) -> Value {
    let mut paths = Map::new();
    let mut definitions: BTreeMap<String, Value> = BTreeMap::new();
    for model in models {
        for p in &model.paths {
            let mut item = Map::new();
            item.insert("parameters".into(), p.params.iter().map(|x| v2_param(x)).collect());
            for op in &p.ops {
                item.insert(op.method.into(), render_v2_op(op, model.gv));
            }
            paths.insert(p.path.clone(), item.into());
        }
        for (name, def) in &model.definitions {
            merge_definition(&mut definitions, name, def);
        }
    }
    let mut definitions = Value::Object(definitions.into_iter().collect());
    to_v2_refs(&mut definitions);
    json!({
        "swagger": "2.0",
        "info": { "title": "Kubernetes", "version": format!("clusterd {}", env!("CARGO_PKG_VERSION")) },
        "paths": paths,
        "definitions": definitions,
    })
}

/// Adds a group/version's definition to the union, joining the
/// group/version/kinds when another group/version has it too.
fn merge_definition(into: &mut BTreeMap<String, Value>, name: &str, def: &Value) {
    const EXT: &str = "x-kubernetes-group-version-kind";
    let Some(existing) = into.get_mut(name) else {
        into.insert(name.to_owned(), def.clone());
        return;
    };
    let Some(more) = def.get(EXT).and_then(Value::as_array) else { return };
    let mut all: BTreeSet<String> = BTreeSet::new();
    let mut joined = Vec::new();
    for g in existing.get(EXT).and_then(Value::as_array).into_iter().flatten().chain(more) {
        if all.insert(g.to_string()) {
            joined.push(g.clone());
        }
    }
    existing[EXT] = Value::Array(joined);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gvk_of(kind: &Kind) -> Value {
        Gvk::new(kind.api_version, kind.kind).to_json()
    }

    fn index_paths() -> Map<String, Value> {
        v3_index()["paths"].as_object().cloned().unwrap()
    }

    /// Every document the index lists, with its path.
    fn documents() -> Vec<(String, Arc<Value>)> {
        index_paths().keys().map(|p| (p.clone(), v3_document(p).unwrap())).collect()
    }

    #[test]
    fn the_index_lists_every_group_version_with_the_hash_of_its_document() {
        let paths = index_paths();
        let mut wanted: Vec<String> = KINDS.iter().map(|k| GroupVersion::of(k.api_version).path()).collect();
        wanted.extend(["apis/autoscaling/v1".into(), "apis/policy/v1".into()]);
        for gv in &wanted {
            let url = paths.get(gv).and_then(|e| e["serverRelativeURL"].as_str()).unwrap_or_else(|| panic!("{gv}"));
            let served = v3_served(gv).unwrap();
            assert_eq!(url, format!("/openapi/v3/{gv}?hash={}", served.hash));
            assert_eq!(served.hash.len(), 64);
            assert_eq!(serde_json::from_slice::<Value>(&served.json).unwrap(), *served.value);
        }
        assert_eq!(paths.len(), wanted.iter().collect::<BTreeSet<_>>().len());
        assert!(v3_document("/apis/apps/v1/").is_some(), "slashes are ignored");
        assert!(v3_document("apis/nonsense/v1").is_none());
    }

    #[test]
    fn every_kind_and_its_list_carry_their_group_version_kind_in_their_document() {
        for kind in KINDS {
            let doc = v3_document(&GroupVersion::of(kind.api_version).path()).unwrap();
            let schemas = &doc["components"]["schemas"];
            let def = &schemas[definition_of(kind)];
            assert!(def["properties"]["metadata"].is_object(), "{}", kind.kind);
            assert_eq!(def["x-kubernetes-group-version-kind"], json!([gvk_of(kind)]), "{}", kind.kind);
            let list = &schemas[list_name(kind)];
            let list_gvk = Gvk::new(kind.api_version, format!("{}List", kind.kind)).to_json();
            assert_eq!(list["x-kubernetes-group-version-kind"], json!([list_gvk]), "{}", kind.kind);
        }
    }

    #[test]
    fn every_reference_resolves_inside_its_document() {
        fn check(doc: &Value, prefix: &str, defs: &Value, what: &str) {
            let mut count = 0;
            let mut all = Vec::new();
            collect(doc, &mut all);
            for r in all {
                let name = r.strip_prefix(prefix).unwrap_or_else(|| panic!("{what}: foreign ref {r}"));
                assert!(defs.get(name).is_some(), "{what}: {r} does not resolve");
                count += 1;
            }
            assert!(count > 0, "{what}");
        }
        fn collect(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(m) => m.iter().for_each(|(k, x)| match (k.as_str(), x) {
                    ("$ref", Value::String(s)) => out.push(s.clone()),
                    _ => collect(x, out),
                }),
                Value::Array(a) => a.iter().for_each(|x| collect(x, out)),
                _ => {}
            }
        }
        for (path, doc) in documents() {
            check(&doc, REF_PREFIX, &doc["components"]["schemas"], &path);
        }
        let v2 = v2();
        check(&v2, V2_REF_PREFIX, &v2["definitions"], "v2");
    }

    /// What kubectl 1.32 does before it leaves validation to the server: the
    /// first patch operation carrying the kind must take `fieldValidation`
    /// in the query, and accept a strategic merge patch.
    #[test]
    fn every_kind_has_a_patch_operation_taking_field_validation() {
        for kind in KINDS {
            let doc = v3_document(&GroupVersion::of(kind.api_version).path()).unwrap();
            let patches: Vec<&Value> = doc["paths"]
                .as_object()
                .unwrap()
                .values()
                .filter_map(|p| p.get("patch"))
                .filter(|op| op["x-kubernetes-group-version-kind"] == gvk_of(kind))
                .collect();
            assert!(!patches.is_empty(), "{}", kind.kind);
            for op in patches {
                let params = op["parameters"].as_array().unwrap();
                for name in ["fieldValidation", "dryRun", "fieldManager", "force"] {
                    assert!(
                        params.iter().any(|p| p["name"] == name && p["in"] == "query"),
                        "{} patch lacks {name}",
                        kind.kind
                    );
                }
                let content = op["requestBody"]["content"].as_object().unwrap();
                for t in PATCH_CONTENT_TYPES {
                    assert!(content.contains_key(*t), "{} patch lacks {t}", kind.kind);
                }
            }
        }
    }

    #[test]
    fn scale_subresources_name_the_autoscaling_scale_defined_in_the_same_document() {
        let doc = v3_document("apis/apps/v1").unwrap();
        let op = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]["patch"];
        let scale = json!({"group": "autoscaling", "version": "v1", "kind": "Scale"});
        assert_eq!(op["x-kubernetes-group-version-kind"], scale);
        let def = &doc["components"]["schemas"][SCALE];
        assert_eq!(def["x-kubernetes-group-version-kind"], json!([scale]));
        assert!(def["properties"]["spec"].is_object());
        let eviction = &v3_document("api/v1").unwrap()["paths"]["/api/v1/namespaces/{namespace}/pods/{name}/eviction"];
        assert_eq!(eviction["post"]["x-kubernetes-group-version-kind"]["group"], "policy");
    }

    /// `kubectl explain` (1.32's template, replayed): the group/version/kind
    /// comes from the first operation found on the resource's paths, the
    /// schema is the definition listing it, and fields are followed through
    /// `$ref`, `allOf`, `items` and `additionalProperties`.
    fn explain(group: &str, version: &str, resource: &str, fields: &[&str]) -> Option<&'static Value> {
        let (prefix, doc_path) = match group {
            "" => ("/api".to_owned(), format!("api/{version}")),
            g => (format!("/apis/{g}"), format!("apis/{g}/{version}")),
        };
        let doc: &'static Value = &v3_served(&doc_path)?.value;
        let searches = [
            format!("{prefix}/{version}/{resource}"),
            format!("{prefix}/{version}/{resource}/{{name}}"),
            format!("{prefix}/{version}/namespaces/{{namespace}}/{resource}"),
            format!("{prefix}/{version}/namespaces/{{namespace}}/{resource}/{{name}}"),
        ];
        let gvk = searches.iter().find_map(|p| {
            let item = doc["paths"].get(p)?;
            ["get", "post", "put", "patch", "delete"]
                .iter()
                .find_map(|m| item.get(*m)?.get("x-kubernetes-group-version-kind"))
        })?;
        let schemas = &doc["components"]["schemas"];
        let resolve = |s: &'static Value| -> Option<&'static Value> {
            match s.get("$ref").and_then(Value::as_str) {
                Some(r) => schemas.get(r.strip_prefix("#/components/schemas/")?),
                None => Some(s),
            }
        };
        let mut schema = schemas.as_object()?.values().find(|s| {
            s.get("x-kubernetes-group-version-kind").and_then(Value::as_array).is_some_and(|l| l.contains(gvk))
        })?;
        // Follow one field: directly, else through items, else allOf's first.
        for field in fields {
            let mut s = resolve(schema)?;
            schema = loop {
                if let Some(next) = s.get("properties").and_then(|p| p.get(*field)) {
                    break next;
                }
                s = resolve(s.get("items").or_else(|| s.get("allOf")?.get(0))?)?;
            };
        }
        let mut s = resolve(schema)?;
        while s.get("properties").is_none() {
            s = resolve(s.get("items").or_else(|| s.get("allOf")?.get(0))?)?;
        }
        Some(s)
    }

    #[test]
    fn explain_finds_the_fields_of_pod_spec_containers_and_deployment_spec_template() {
        let containers = explain("", "v1", "pods", &["spec", "containers"]).expect("pod.spec.containers");
        assert!(containers["properties"]["image"].is_object());
        assert!(containers["required"].as_array().unwrap().contains(&json!("name")));
        let template = explain("apps", "v1", "deployments", &["spec", "template", "spec"]).expect("deployment");
        assert!(template["properties"]["containers"].is_object());
        let node = explain("", "v1", "nodes", &["status", "addresses"]).expect("node.status.addresses");
        assert!(node["properties"]["address"].is_object());
        assert!(explain("", "v1", "pods", &["spec", "nonsense"]).is_none());
    }

    #[test]
    fn v2_has_every_path_and_kind_with_definitions_refs() {
        let v2 = v2();
        assert_eq!(v2["swagger"], "2.0");
        assert!(!v2.to_string().contains("#/components/"));
        for kind in KINDS {
            let def = &v2["definitions"][definition_of(kind)];
            assert_eq!(def["x-kubernetes-group-version-kind"], json!([gvk_of(kind)]), "{}", kind.kind);
        }
        let patch = &v2["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert!(patch["parameters"].as_array().unwrap().iter().any(|p| p["name"] == "fieldValidation"));
        assert!(patch["consumes"].as_array().unwrap().contains(&json!("application/strategic-merge-patch+json")));
        let options = v2["definitions"][DELETE_OPTIONS]["x-kubernetes-group-version-kind"].as_array().unwrap();
        assert_eq!(options.len(), group_versions().len());
    }

    #[test]
    fn answers_cache_by_hash_and_revalidate_by_etag() {
        let served = v3_served("api/v1").unwrap();
        let h = served.hash.as_str();
        let etag = format!("\"{h}\"");
        let forever = "public, immutable, max-age=31536000";
        let revalidate = "no-cache, private";
        let table: &[(Option<&str>, Option<&str>, bool, &str)] = &[
            (Some(h), None, false, forever),
            (Some("stale"), None, false, revalidate),
            (None, None, false, revalidate),
            (None, Some(&etag), true, revalidate),
            (Some(h), Some("\"other\", W/\"x\""), false, forever),
            (None, Some("*"), true, revalidate),
        ];
        for (asked, inm, not_modified, cache) in table {
            let a = answer(served, *asked, *inm);
            assert_eq!((a.not_modified, a.cache_control), (*not_modified, *cache), "{asked:?} {inm:?}");
        }
    }

    #[test]
    fn responses_carry_etags_and_refuse_what_they_cannot_serve() {
        let none = HeaderMap::new();
        let r = v3_response("apis/apps/v1", Some("hash=nope&timeout=32s"), &none);
        assert_eq!(r.status(), StatusCode::OK);
        let etag = r.headers()[header::ETAG].clone();
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        let mut again = HeaderMap::new();
        again.insert(header::IF_NONE_MATCH, etag);
        assert_eq!(v3_response("apis/apps/v1", None, &again).status(), StatusCode::NOT_MODIFIED);
        assert_eq!(v3_response("apis/nope/v1", None, &none).status(), StatusCode::NOT_FOUND);
        assert_eq!(v3_index_response(&none).status(), StatusCode::OK);

        let mut protobuf = HeaderMap::new();
        protobuf.insert(header::ACCEPT, "application/com.github.proto-openapi.spec.v2@v1.0+protobuf".parse().unwrap());
        assert_eq!(v2_response(&protobuf).status(), StatusCode::NOT_ACCEPTABLE);
        let mut json_too = HeaderMap::new();
        json_too.insert(header::ACCEPT, "application/json, */*".parse().unwrap());
        assert_eq!(v2_response(&json_too).status(), StatusCode::OK);
        assert_eq!(v2_response(&none).status(), StatusCode::OK);
    }

    /// What OpenAPI requires of any document: every `{parameter}` of a path
    /// template declared as a path parameter, operation ids unique.
    #[test]
    fn path_templates_are_declared_and_operation_ids_unique() {
        let v2 = v2();
        let mut docs: Vec<(String, Arc<Value>)> = documents();
        docs.push(("v2".into(), v2));
        for (what, doc) in docs {
            let mut ids = BTreeSet::new();
            for (path, item) in doc["paths"].as_object().unwrap() {
                let declared: BTreeSet<&str> = item["parameters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|p| p["in"] == "path" && p["required"] == true)
                    .filter_map(|p| p["name"].as_str())
                    .collect();
                let templated: BTreeSet<&str> =
                    path.split('/').filter_map(|s| s.strip_prefix('{')?.strip_suffix('}')).collect();
                assert_eq!(declared, templated, "{what} {path}");
                for (method, op) in item.as_object().unwrap().iter().filter(|(k, _)| *k != "parameters") {
                    let id = op["operationId"].as_str().unwrap();
                    assert!(ids.insert(id.to_owned()), "{what}: {method} {path}: {id} twice");
                }
            }
            if what == "api/v1" || what == "v2" {
                assert!(ids.len() > 50, "{what}");
            }
        }
    }
}
