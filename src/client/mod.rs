//! The client side: connecting to the API, and the kubectl-shaped verbs built on it.

pub mod apply;
pub mod connect;
pub mod manifest;
pub mod print;
pub mod rollout;

pub use connect::{connect, connect_pinned, ApiClient};
