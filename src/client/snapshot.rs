//! `snapshot save|status|restore|build`: backups of the whole store, and a
//! Raft snapshot built now.

use std::io::BufReader;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, Subcommand};

use clusterd_raft::KeyValue;

use super::connect::ConnectOpts;
use super::error::CliError;
use crate::api::pb;
use crate::cluster::backups::BackupSchedule;
use crate::cluster::snapshot_file::{self, FileError, FileSink, Header};
use crate::cluster::{self, NodeArgs};
use crate::objects::network;
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

/// `snapshot restore` arguments.
#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The backup file (`clusterd snapshot save`).
    pub file: PathBuf,
    /// Data directory of the new node (must not hold a node).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Node name.
    #[arg(long)]
    pub name: String,
    /// Raft transport address (QUIC); port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:2380")]
    pub raft_addr: SocketAddr,
    /// API address (gRPC over TLS); port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub api_addr: SocketAddr,
    /// Keep the CA (and admin token) recorded in the snapshot, so that the old
    /// cluster's client and node certificates still work; by default the
    /// restored cluster gets a new CA.
    #[arg(long)]
    pub keep_ca: bool,
    /// Build a Raft snapshot (and purge the log behind it) every N entries.
    #[arg(long, default_value_t = 10_000)]
    pub snapshot_every: u64,
    /// Log entries kept behind a snapshot.
    #[arg(long, default_value_t = 1_000)]
    pub keep_logs: u64,
    /// Seconds between the snapshots this node writes into DATA_DIR/snapshots (0: none).
    #[arg(long, default_value_t = 43_200)]
    pub snapshot_interval: u64,
    /// Scheduled snapshots kept (the oldest are removed).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub snapshot_retain: u64,
    /// Registries this node pulls from over plain HTTP (host:port, repeatable).
    #[arg(long = "insecure-registry")]
    pub insecure_registries: Vec<String>,
    /// The address other hosts reach this node at (default: the Raft address's IP).
    #[arg(long)]
    pub node_ip: Option<std::net::IpAddr>,
    /// Resolver configuration of this host (default: /etc/resolv.conf).
    #[arg(long)]
    pub resolv_conf: Option<PathBuf>,
}

impl RestoreArgs {
    /// The node's arguments; the cluster's own settings come from the snapshot.
    fn node_args(&self) -> NodeArgs {
        NodeArgs {
            data_dir: self.data_dir.clone(),
            name: self.name.clone(),
            raft_addr: self.raft_addr,
            api_addr: self.api_addr,
            snapshot_every: self.snapshot_every,
            keep_logs: self.keep_logs,
            backups: BackupSchedule { interval_seconds: self.snapshot_interval, retain: self.snapshot_retain as usize },
            cluster_cidr: network::DEFAULT_CLUSTER_CIDR.into(),
            node_grace_period: 40,
            pod_eviction_timeout: 20,
            insecure_registries: self.insecure_registries.clone(),
            service_cidr: network::DEFAULT_SERVICE_CIDR.into(),
            service_node_port_range: network::DEFAULT_NODE_PORT_RANGE.into(),
            cluster_domain: network::DEFAULT_CLUSTER_DOMAIN.into(),
            node_ip: self.node_ip,
            resolv_conf: self.resolv_conf.as_ref().map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone())),
        }
    }
}

/// Run a `snapshot` verb.
pub async fn run(opts: &ConnectOpts, verb: &SnapshotVerb) -> Result<(), CliError> {
    match verb {
        SnapshotVerb::Save { file } => save(opts, file).await,
        SnapshotVerb::Status { file } => status(file),
        SnapshotVerb::Restore(a) => Ok(cluster::restore(&a.file, a.keep_ca, a.node_args()).await?),
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
