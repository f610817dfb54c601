//! `compact`: drop watch history up to a revision.

use super::connect::ConnectOpts;
use super::error::CliError;
use crate::api::pb;

/// Run `compact` (revision 0: all but the current one).
pub async fn run(opts: &ConnectOpts, revision: Option<u64>) -> Result<(), CliError> {
    let mut c = opts.connect().await?;
    let r = c.compact(pb::CompactRequest { revision: revision.unwrap_or(0) }).await?.into_inner();
    println!("compacted up to revision {}", r.compacted);
    Ok(())
}
