//! `snapshot`: build a Raft snapshot now on the node the client talks to.

use super::connect::ConnectOpts;
use super::error::CliError;
use crate::api::pb;

/// Run `snapshot`.
pub async fn run(opts: &ConnectOpts) -> Result<(), CliError> {
    let mut c = opts.connect().await?;
    c.snapshot(pb::SnapshotRequest {}).await?;
    println!("snapshot built");
    Ok(())
}
