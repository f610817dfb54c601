//! The Kubernetes REST API: kubectl and client libraries, unmodified, over the
//! same registry as the gRPC API, on the same TLS port (paths tell them apart:
//! gRPC's are `/clusterd.v1.Clusterd/…`).
//!
//! A request is authenticated ([`auth`]), its path parsed into a target
//! ([`route`]), then answered by the verb's handler; every failure is a
//! Kubernetes `Status` ([`status`]).

pub mod auth;
pub mod body;
pub mod discovery;
pub mod exec;
#[cfg(test)]
mod fuzz_bodies;
pub mod list;
pub mod logs;
pub mod objects;
pub mod openapi;
pub mod pods;
pub mod protobuf;
pub mod query;
pub mod route;
pub mod scale;
pub mod status;
pub mod table;
pub mod watch;

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

use self::auth::User;
use self::body::json;
use self::query::{ListOptions, Params};
use self::route::Target;
use self::status::Failure;
use super::service::Api;
use crate::registry::Registry;

/// The REST door of one node.
#[derive(Clone)]
pub struct Rest {
    api: Api,
    pages: Arc<list::Pages>,
}

/// One resource request, decoded.
pub struct Call<'a> {
    rest: &'a Rest,
    /// What the path names.
    pub target: Target,
    /// The query parameters.
    pub params: Params,
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// The caller.
    pub user: User,
    pages: &'a list::Pages,
}

impl Call<'_> {
    /// The node's registry.
    pub fn registry(&self) -> &Registry {
        self.rest.api.registry()
    }
}

/// The REST API's routes: everything not gRPC.
pub fn router(api: Api) -> axum::Router {
    let rest = Rest { api, pages: Arc::new(list::Pages::default()) };
    // The OpenAPI documents take a moment to generate: not on a client's first request.
    std::thread::spawn(|| drop(openapi::v3_index()));
    axum::Router::new().fallback(handle).with_state(rest)
}

async fn handle(State(rest): State<Rest>, req: Request) -> Response {
    let (mut parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or("").to_string();
    let certs = parts.extensions.get::<TlsConnectInfo<TcpConnectInfo>>().and_then(|i| i.peer_certs());
    let user = auth::authenticate(rest.api.store(), certs.as_deref().map(|c| c.as_slice()), &parts.headers);
    if user.is_none() && !auth::anonymous_path(&path) {
        return Failure::unauthorized().into_response();
    }
    let method = parts.method.clone();
    tracing::debug!(%method, %path, user = ?user.as_ref().map(|u| &u.name), "rest");
    if method == Method::GET {
        if let Some(r) = fixed(&path, parts.uri.query(), &parts.headers) {
            return r;
        }
    }
    let target = match route::parse(&path) {
        Ok(t) => t,
        Err(_) => return Failure::no_route(&path).into_response(),
    };
    let Some(user) = user else { return Failure::unauthorized().into_response() };
    // Exec upgrades the connection: it takes the request's parts, not its body.
    if target.subresource == "exec" {
        let ws = axum::extract::ws::WebSocketUpgrade::from_request_parts(&mut parts, &()).await;
        let ns = target.kind.namespace_or_default(&target.namespace).to_string();
        return exec::exec_any(rest.api.registry(), &ns, &target.name, &query, ws).await;
    }
    let bytes = match axum::body::to_bytes(body, body::MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return Failure::new(413, "RequestEntityTooLarge", e.to_string()).into_response(),
    };
    let call =
        Call { rest: &rest, target, params: Params::parse(&query), headers: &parts.headers, user, pages: &rest.pages };
    match resource(&call, &method, &query, &bytes).await {
        Ok(r) => r,
        Err(f) => f.into_response(),
    }
}

/// The paths that name no resource: version, health, discovery, OpenAPI.
fn fixed(path: &str, query: Option<&str>, headers: &HeaderMap) -> Option<Response> {
    let ok = || (axum::http::StatusCode::OK, "ok").into_response();
    let found = |v: Option<Value>| v.map(|v| json(200, &v)).unwrap_or_else(|| Failure::no_route(path).into_response());
    Some(match path.trim_end_matches('/') {
        "/version" => json(200, &discovery::version()),
        "/healthz" | "/livez" | "/readyz" => ok(),
        "/api" => json(200, &discovery::api_versions()),
        "/apis" => json(200, &discovery::api_groups()),
        "/api/v1" => found(discovery::resources("v1")),
        "/openapi/v2" => openapi::v2_response(headers),
        "/openapi/v3" => openapi::v3_index_response(headers),
        p => {
            if let Some(gv) = p.strip_prefix("/openapi/v3/") {
                return Some(openapi::v3_response(gv, query, headers));
            }
            let segs: Vec<&str> = p.trim_start_matches('/').split('/').collect();
            match segs.as_slice() {
                ["apis", group] => found(discovery::api_group(group)),
                ["apis", group, version] => found(discovery::resources(&format!("{group}/{version}"))),
                _ => return None,
            }
        }
    })
}

async fn resource(call: &Call<'_>, method: &Method, query: &str, bytes: &[u8]) -> Result<Response, Failure> {
    let t = &call.target;
    if t.kind.namespaced && t.namespace.is_empty() && !t.name.is_empty() {
        return Err(Failure::no_route(&format!("{} {} without a namespace", t.kind.plural, t.name)));
    }
    let what = if t.subresource.is_empty() {
        t.kind.plural.to_string()
    } else {
        format!("{}/{}", t.kind.plural, t.subresource)
    };
    match (t.name.is_empty(), t.subresource.as_str(), method.as_str()) {
        (true, _, "GET") => {
            let opts = ListOptions::parse(t.kind, &call.params)?;
            if opts.watch {
                watch::watch(call, &opts)
            } else {
                list::list(call, &opts).await
            }
        }
        (true, _, "POST") if t.kind.namespaced && t.namespace.is_empty() => {
            Err(Failure::method_not_allowed("POST", &format!("{} across all namespaces", t.kind.plural)))
        }
        (true, _, "POST") => objects::create(call, bytes).await,
        (true, _, "DELETE") => list::delete_collection(call, &ListOptions::parse(t.kind, &call.params)?, bytes).await,
        (false, "" | "status", "GET") => objects::get(call),
        (false, "" | "status", "PUT") => objects::update(call, bytes).await,
        (false, "" | "status", "PATCH") => objects::patch(call, bytes).await,
        (false, "", "DELETE") => objects::delete(call, bytes).await,
        (false, "scale", "GET") => scale::get(call),
        (false, "scale", "PUT") => scale::write(call, bytes, false).await,
        (false, "scale", "PATCH") => scale::write(call, bytes, true).await,
        (false, "log", "GET") => {
            let ns = t.kind.namespace_or_default(&t.namespace).to_string();
            Ok(logs::logs(call.registry(), &ns, &t.name, query).await)
        }
        (false, "eviction", "POST") => pods::evict(call, bytes).await,
        (false, "binding", "POST") => pods::bind(call, bytes).await,
        (_, _, m) => Err(Failure::method_not_allowed(m, &what)),
    }
}
