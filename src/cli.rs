//! The `clusterd` command line: node life-cycle verbs and kubectl-shaped client
//! verbs. `main.rs` parses with [`Cli`] and calls [`run`]; each verb's flags
//! and code live in its own file under [`crate::client`].

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::client::apply::FileArgs;
use crate::client::delete::DeleteArgs;
use crate::client::describe::DescribeArgs;
use crate::client::exec::ExecArgs;
use crate::client::get::GetArgs;
use crate::client::image::ImageVerb;
use crate::client::logs::LogsArgs;
use crate::client::member::MemberVerb;
use crate::client::node::{DataDirArgs, JoinArgs, NodeFlags, RecoverArgs, StartArgs};
use crate::client::print::Output;
use crate::client::rollout::RolloutVerb;
use crate::client::scale::ScaleArgs;
use crate::client::snapshot::SnapshotVerb;
use crate::client::token::TokenVerb;
use crate::client::top::TopArgs;
use crate::client::{self, ConnectOpts};

pub use crate::client::CliError;

/// clusterd: a container orchestrator, one binary per node with its own Raft.
#[derive(Parser, Debug)]
#[command(name = "clusterd", version, about)]
pub struct Cli {
    /// Client config (else $CLUSTERD_CONFIG, else ~/.clusterd/config).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// API server host:port, overriding the config's.
    #[arg(long, global = true)]
    pub server: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Verb,
}

/// The verbs.
#[derive(Subcommand, Debug)]
pub enum Verb {
    /// Create a cluster with this node as its first control-plane node (runs in the foreground).
    Init(NodeFlags),
    /// Join a cluster (runs in the foreground).
    Join(JoinArgs),
    /// Run a node again from its data directory (runs in the foreground).
    Start(StartArgs),
    /// Make a stopped surviving voter the only voter after the others are gone
    /// for good, and run it (refused while a quorum of the old members answers).
    Recover(RecoverArgs),
    /// Remove what a stopped node left on this host: its pods' containers and
    /// sandboxes, its bridge, nftables table and cgroups (like `kubeadm reset`).
    Reset(DataDirArgs),
    /// Join tokens.
    Token {
        #[command(subcommand)]
        command: TokenVerb,
    },
    /// Leader, members, roles, applied revisions and certificate expiries.
    Status {
        /// Output format.
        #[arg(short, long)]
        output: Option<Output>,
    },
    /// Cluster membership.
    Member {
        #[command(subcommand)]
        command: MemberVerb,
    },
    /// Create or update objects from manifests.
    Apply(FileArgs),
    /// Create objects from manifests.
    Create(FileArgs),
    /// List or show objects.
    Get(GetArgs),
    /// Show an object in detail, with its events.
    Describe(DescribeArgs),
    /// Delete objects by name or from manifests.
    Delete(DeleteArgs),
    /// Print the logs of a container in a pod.
    Logs(LogsArgs),
    /// Run a command in a container: `clusterd exec POD [-c C] -- CMD...`.
    Exec(ExecArgs),
    /// Set the replicas of a Deployment, ReplicaSet or StatefulSet.
    Scale(ScaleArgs),
    /// Manage the rollout of a Deployment.
    Rollout {
        #[command(subcommand)]
        command: RolloutVerb,
    },
    /// Images on the nodes.
    Image {
        #[command(subcommand)]
        command: ImageVerb,
    },
    /// CPU and memory use of pods (from their cgroups) or nodes (the whole host).
    Top(TopArgs),
    /// Drop watch history up to a revision (default: all but the current one).
    Compact {
        /// Revision.
        revision: Option<u64>,
    },
    /// Backups of the whole store (save, status, restore) and Raft snapshots (build).
    #[command(arg_required_else_help = true)]
    Snapshot {
        #[command(subcommand)]
        command: SnapshotVerb,
    },
    /// Write the systemd unit that keeps this host's node running (Restart=always,
    /// KillMode=process so containers outlive a restart, Delegate=yes).
    InstallService(client::install_service::InstallServiceArgs),
    /// Print a kubeconfig for kubectl with this client's credentials and every API server.
    Kubeconfig,
}

/// Run a parsed command line.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    clusterd_raft::pki::install_default_provider();
    let opts = ConnectOpts { config: cli.config, server: cli.server };
    match &cli.command {
        Verb::Init(flags) => client::node::init(flags).await,
        Verb::Join(a) => client::node::join(a).await,
        Verb::Start(a) => client::node::start(a).await,
        Verb::Recover(a) => client::node::recover(a).await,
        Verb::Reset(a) => client::node::reset(a).await,
        Verb::Token { command } => client::token::run(&opts, command).await,
        Verb::Status { output } => client::status::run(&opts, *output).await,
        Verb::Member { command } => client::member::run(&opts, command).await,
        Verb::Apply(f) => client::apply::run(&opts, f, false).await,
        Verb::Create(f) => client::create::run(&opts, f).await,
        Verb::Get(a) => client::get::run(&opts, a).await,
        Verb::Describe(a) => client::describe::run(&opts, a).await,
        Verb::Delete(a) => client::delete::run(&opts, a).await,
        Verb::Logs(a) => client::logs::run(&opts, a).await,
        Verb::Exec(a) => client::exec::run(&opts, a).await,
        Verb::Scale(a) => client::scale::run(&opts, a).await,
        Verb::Rollout { command } => client::rollout::run(&opts, command).await,
        Verb::Image { command } => client::image::run(&opts, command).await,
        Verb::Top(a) => client::top::run(&opts, a).await,
        Verb::Compact { revision } => client::compact::run(&opts, *revision).await,
        Verb::Snapshot { command } => client::snapshot::run(&opts, command).await,
        Verb::Kubeconfig => client::kubeconfig::run(&opts).await,
        Verb::InstallService(a) => client::install_service::run(a).await,
    }
}
