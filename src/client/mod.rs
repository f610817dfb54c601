//! The client side: connecting to the API, and the kubectl-shaped verbs built
//! on it, one verb per file (the clap types of a verb beside it); `cli`
//! only parses and dispatches.

pub mod apply;
pub mod compact;
pub mod connect;
pub mod create;
pub mod delete;
pub mod describe;
pub mod error;
pub mod exec;
pub mod get;
pub mod image;
pub mod install_service;
pub mod kinds;
pub mod kubeconfig;
pub mod logs;
pub mod manifest;
pub mod member;
pub mod node;
pub mod print;
pub mod rollout;
pub mod scale;
pub mod snapshot;
pub mod status;
pub mod token;
pub mod top;
pub mod watch;
pub mod yaml;

pub use connect::{connect, connect_pinned, ApiClient, ConnectOpts};
pub use error::CliError;
