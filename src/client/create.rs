//! `create -f`: create the objects of a manifest; each must not exist yet.

use super::apply::{self, FileArgs};
use super::connect::ConnectOpts;
use super::error::CliError;

/// Run `create`.
pub async fn run(opts: &ConnectOpts, f: &FileArgs) -> Result<(), CliError> {
    apply::run(opts, f, true).await
}
