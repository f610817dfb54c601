//! `snapshot save|status|restore|build`: backups of the whole store, and a
//! Raft snapshot built now.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, Subcommand};

use clusterd_raft::KeyValue;

use super::connect::ConnectOpts;
use super::error::CliError;
use super::node::NodeFlags;
use crate::api::pb;
use crate::cluster;
use crate::cluster::snapshot_file::{self, FileError, FileSink, Header};
use crate::util;

/// `snapshot` verbs.
#[derive(Subcommand, Debug)]
pub enum SnapshotVerb {
    /// Save a backup of the whole store to FILE: every object read at one
    /// revision on the node the client talks to, with the cluster's identity
    /// and a checksum (node registrations and the Raft membership are left out).
    Save {
        /// The file to write (replaced whole once complete).
        file: PathBuf,
    },
    /// Check a backup file and print its revision, object count, size and checksum;
    /// fails if the file is truncated or corrupted.
    Status {
        /// The backup file.
        file: PathBuf,
    },
    /// Make a new one-voter cluster from a backup file and run its node in the
    /// foreground, as `init` does (later runs: `clusterd start --data-dir D`).
    /// The file is checked first: nothing is written if it is damaged. The
    /// cluster gets a new CA and admin credentials (D/admin.conf,
    /// D/kubeconfig) unless --keep-ca; other nodes join it with a token
    /// (printed, or `clusterd token create`).
    Restore(Box<RestoreArgs>),
    /// Build a Raft snapshot now on the node the client talks to (and purge the log behind it).
    Build,
}

/// `snapshot restore` arguments: the file, and the new node's flags as `init`
/// takes them (the cluster-wide ones — CIDRs, domain, grace periods — come
/// from the snapshot and are ignored here).
#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The backup file (`clusterd snapshot save`).
    pub file: PathBuf,
    /// Keep the CA (and admin token) recorded in the snapshot, so that the old
    /// cluster's client and node certificates still work; by default the
    /// restored cluster gets a new CA.
    #[arg(long)]
    pub keep_ca: bool,
    #[command(flatten)]
    pub node: NodeFlags,
}

/// Run a `snapshot` verb.
pub async fn run(opts: &ConnectOpts, verb: &SnapshotVerb) -> Result<(), CliError> {
    match verb {
        SnapshotVerb::Save { file } => save(opts, file).await,
        SnapshotVerb::Status { file } => status(file),
        SnapshotVerb::Restore(a) => Ok(cluster::restore(&a.file, a.keep_ca, a.node.args()).await?),
        SnapshotVerb::Build => {
            let mut c = opts.connect().await?;
            c.snapshot(pb::SnapshotRequest {}).await?;
            println!("snapshot built");
            Ok(())
        }
    }
}

fn file_error(file: &Path) -> impl Fn(FileError) -> CliError + '_ {
    move |e| CliError::Usage(format!("{}: {e}", file.display()))
}

fn io_error(file: &Path) -> impl Fn(std::io::Error) -> CliError + '_ {
    move |e| CliError::Usage(format!("{}: {e}", file.display()))
}

/// `snapshot save FILE`: stream the store into `FILE.part`, then rename it.
async fn save(opts: &ConnectOpts, file: &Path) -> Result<(), CliError> {
    let began = Instant::now();
    let mut c = opts.connect().await?;
    let mut stream = c.save_snapshot(pb::SaveSnapshotRequest {}).await?.into_inner();
    let first = stream
        .message()
        .await?
        .ok_or_else(|| CliError::Usage("the server ended the snapshot before it began".into()))?;
    let header = Header {
        revision: first.revision,
        keys: first.keys,
        created: util::rfc3339(chrono::Utc::now()),
        cluster: first.cluster,
        node: first.node,
    };
    let mut sink = FileSink::create(file, &header).map_err(file_error(file))?;
    while let Some(chunk) = stream.message().await? {
        for e in chunk.entries {
            let kv = KeyValue {
                key: e.key,
                value: e.value,
                create_revision: e.create_revision,
                mod_revision: e.mod_revision,
            };
            sink.entry(&kv).map_err(file_error(file))?;
        }
    }
    let (size, checksum) = sink.finish().map_err(file_error(file))?;
    println!(
        "saved revision {} ({} keys, {} bytes, sha256 {checksum}) from node {} to {} in {:.2}s",
        header.revision,
        header.keys,
        size,
        header.node,
        file.display(),
        began.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `snapshot status FILE`.
fn status(file: &Path) -> Result<(), CliError> {
    let f = std::fs::File::open(file).map_err(io_error(file))?;
    let mut objects = 0u64;
    let s = snapshot_file::verify(BufReader::new(f), |kv| objects += u64::from(kv.key.starts_with("/registry/")))
        .map_err(file_error(file))?;
    println!("revision:  {}", s.header.revision);
    println!("keys:      {} ({objects} objects)", s.header.keys);
    println!("size:      {} bytes", s.size);
    println!("created:   {}", s.header.created);
    if !s.header.cluster.is_empty() {
        println!("cluster:   {} (CA fingerprint)", s.header.cluster);
    }
    if !s.header.node.is_empty() {
        println!("node:      {}", s.header.node);
    }
    println!("checksum:  sha256:{} OK", s.checksum);
    Ok(())
}
