//! `image load`: send an OCI image archive to every node.

use std::path::PathBuf;

use clap::Subcommand;

use super::connect::ConnectOpts;
use super::error::{all_ok, CliError};
use crate::api::pb;

/// `image` verbs.
#[derive(Subcommand, Debug)]
pub enum ImageVerb {
    /// Send an OCI image archive to every node (like `kind load image-archive`).
    Load {
        /// The archive (OCI image layout, tar).
        file: PathBuf,
    },
}

/// Run an `image` verb.
pub async fn run(opts: &ConnectOpts, verb: &ImageVerb) -> Result<(), CliError> {
    let ImageVerb::Load { file } = verb;
    let archive = std::fs::read(file).map_err(|e| CliError::Usage(format!("{}: {e}", file.display())))?;
    let mut c = opts.connect().await?;
    let r = c.load_image(pb::LoadImageRequest { archive }).await?.into_inner();
    for image in &r.images {
        println!("Image: \"{image}\" loaded on nodes: {}", r.nodes.join(", "));
    }
    for f in &r.failed {
        eprintln!("error: {f}");
    }
    all_ok(r.failed.len())
}
