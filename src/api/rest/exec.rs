//! (being written by a helper: pods/exec over WebSocket)

use axum::extract::ws::WebSocketUpgrade;
use axum::response::{IntoResponse, Response};

use super::status::Failure;
use crate::registry::Registry;

/// `GET|POST …/pods/{pod}/exec`.
pub async fn exec(_registry: &Registry, _namespace: &str, _pod: &str, _query: &str, _ws: WebSocketUpgrade) -> Response {
    Failure::new(501, "NotImplemented", "exec is not served yet").into_response()
}
