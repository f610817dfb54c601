//! (being written by a helper: pods/log)

use axum::response::{IntoResponse, Response};

use super::status::Failure;
use crate::registry::Registry;

/// `GET …/pods/{pod}/log`.
pub async fn logs(_registry: &Registry, _namespace: &str, _pod: &str, _query: &str) -> Response {
    Failure::new(501, "NotImplemented", "logs are not served yet").into_response()
}
