//! The `clusterd` command line: node life cycle verbs and kubectl-shaped client
//! verbs. `main.rs` parses with [`Cli`] and calls [`run`].

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use futures::StreamExt;
use serde_json::{json, Value};
use tonic::Code;

use crate::api::pb;
use crate::client::{self, apply, manifest, print, rollout, ApiClient};
use crate::cluster::config::AdminConfig;
use crate::cluster::{self, ClusterError, NodeArgs};
use crate::objects::{meta_str, Kind};

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

/// Placement and tuning flags shared by `init` and `join`.
#[derive(Args, Debug, Clone)]
pub struct NodeFlags {
    /// Data directory of this node.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Node name, unique in the cluster (default: the host name).
    #[arg(long)]
    pub name: Option<String>,
    /// Raft transport address (QUIC); port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:2380")]
    pub raft_addr: SocketAddr,
    /// API address (gRPC over TLS); port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub api_addr: SocketAddr,
    /// Build a Raft snapshot (and purge the log behind it) every N entries.
    #[arg(long, default_value_t = 10_000)]
    pub snapshot_every: u64,
    /// Log entries kept behind a snapshot.
    #[arg(long, default_value_t = 1_000)]
    pub keep_logs: u64,
    /// Pod network of the whole cluster (a /16), split into a /24 per node (`init` only).
    #[arg(long, default_value = crate::controllers::nodeipam::DEFAULT_CLUSTER_CIDR)]
    pub cluster_cidr: String,
    /// Seconds without a Lease renewal before a node is NotReady (`init` only).
    #[arg(long, default_value_t = 40)]
    pub node_grace_period: u64,
    /// Seconds pods tolerate an unreachable node before they are evicted,
    /// unless they say otherwise (`init` only).
    #[arg(long, default_value_t = 20)]
    pub pod_eviction_timeout: u64,
    /// Registries this node pulls from over plain HTTP (host:port, repeatable).
    #[arg(long = "insecure-registry")]
    pub insecure_registries: Vec<String>,
}

impl NodeFlags {
    fn args(&self) -> NodeArgs {
        let name = self.name.clone().unwrap_or_else(hostname);
        NodeArgs {
            data_dir: self.data_dir.clone(),
            name,
            raft_addr: self.raft_addr,
            api_addr: self.api_addr,
            snapshot_every: self.snapshot_every,
            keep_logs: self.keep_logs,
            cluster_cidr: self.cluster_cidr.clone(),
            node_grace_period: self.node_grace_period,
            pod_eviction_timeout: self.pod_eviction_timeout,
            insecure_registries: self.insecure_registries.clone(),
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_ascii_lowercase())
        .unwrap_or_else(|_| "node".into())
}

/// Output formats of `get` and `status`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// More columns.
    Wide,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
    /// kind/name.
    Name,
}

/// The verbs.
#[derive(Subcommand, Debug)]
pub enum Verb {
    /// Create a cluster with this node as its first control-plane node (runs in the foreground).
    Init(NodeFlags),
    /// Join a cluster (runs in the foreground).
    Join {
        /// API address of a node of the cluster.
        server_addr: String,
        /// Join token (`clusterd token create`).
        #[arg(long)]
        token: String,
        /// Join as a control-plane node (Raft voter); otherwise as a worker (learner).
        #[arg(long)]
        control_plane: bool,
        #[command(flatten)]
        node: NodeFlags,
    },
    /// Run a node again from its data directory (runs in the foreground).
    Start {
        /// Data directory of the node.
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Remove what a stopped node left on this host: its pods' containers and
    /// sandboxes, its bridge, nftables table and cgroups (like `kubeadm reset`).
    Reset {
        /// Data directory of the node.
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Join tokens.
    Token {
        #[command(subcommand)]
        command: TokenVerb,
    },
    /// Leader, members, roles and applied revisions.
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
    Describe {
        /// Kind.
        kind: String,
        /// Name.
        name: String,
        /// Namespace.
        #[arg(short, long)]
        namespace: Option<String>,
    },
    /// Delete objects by name or from manifests.
    Delete {
        /// Kind (with names), unless -f is given.
        kind: Option<String>,
        /// Names.
        names: Vec<String>,
        /// Manifest file, or - for standard input.
        #[arg(short, long)]
        filename: Option<String>,
        /// Namespace.
        #[arg(short, long)]
        namespace: Option<String>,
        /// Seconds a pod gets to stop (default: its terminationGracePeriodSeconds).
        #[arg(long)]
        grace_period: Option<i64>,
        /// Remove at once, without waiting for the containers to stop (grace period 0).
        #[arg(long)]
        force: bool,
        /// Wait until the objects are gone.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        wait: bool,
        /// What happens to dependents: background, foreground or orphan.
        #[arg(long, default_value = "background")]
        cascade: String,
    },
    /// Print the logs of a container in a pod.
    Logs {
        /// Pod name.
        pod: String,
        /// Container (default: the pod's first).
        #[arg(short, long)]
        container: Option<String>,
        /// Keep streaming new lines.
        #[arg(short, long)]
        follow: bool,
        /// Lines from the end to show.
        #[arg(long)]
        tail: Option<i64>,
        /// The previous instance of the container.
        #[arg(short, long)]
        previous: bool,
        /// Namespace.
        #[arg(short, long)]
        namespace: Option<String>,
    },
    /// Run a command in a container: `clusterd exec POD [-c C] -- CMD...`.
    Exec {
        /// Pod name.
        pod: String,
        /// Container (default: the pod's first).
        #[arg(short, long)]
        container: Option<String>,
        /// Namespace.
        #[arg(short, long)]
        namespace: Option<String>,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Set the replicas of a Deployment, ReplicaSet or StatefulSet.
    Scale {
        /// KIND/NAME or KIND.
        target: String,
        /// NAME, when KIND is given alone.
        name: Option<String>,
        /// The new number of replicas.
        #[arg(long)]
        replicas: i64,
        /// Namespace.
        #[arg(short, long)]
        namespace: Option<String>,
    },
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
    /// CPU and memory use of pods or nodes (from their cgroups).
    Top {
        /// pods or nodes.
        kind: String,
        /// Namespace (pods).
        #[arg(short, long)]
        namespace: Option<String>,
        /// Every namespace (pods).
        #[arg(short = 'A', long)]
        all_namespaces: bool,
    },
    /// Drop watch history up to a revision (default: all but the current one).
    Compact {
        /// Revision.
        revision: Option<u64>,
    },
    /// Build a Raft snapshot now on the node the client talks to.
    Snapshot,
}

/// `token` verbs.
#[derive(Subcommand, Debug)]
pub enum TokenVerb {
    /// Print a new join token.
    Create {
        /// How long the token stays valid, in seconds.
        #[arg(long, default_value_t = 86_400)]
        ttl: u64,
    },
}

/// What a `rollout` verb acts on.
#[derive(Args, Debug)]
pub struct RolloutTarget {
    /// deployment/NAME (or `deployment NAME`).
    pub target: String,
    /// NAME, when the kind is given alone.
    pub name: Option<String>,
    /// Namespace.
    #[arg(short, long)]
    pub namespace: Option<String>,
}

/// `rollout` verbs.
#[derive(Subcommand, Debug)]
pub enum RolloutVerb {
    /// Wait for the rollout to finish; exits non-zero if it failed (progress deadline) or timed out.
    Status {
        #[command(flatten)]
        on: RolloutTarget,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// The revisions kept.
    History {
        #[command(flatten)]
        on: RolloutTarget,
    },
    /// Roll back to the previous revision, or to --to-revision.
    Undo {
        #[command(flatten)]
        on: RolloutTarget,
        /// The revision to go back to.
        #[arg(long)]
        to_revision: Option<i64>,
    },
    /// Stop rolling out template changes.
    Pause {
        #[command(flatten)]
        on: RolloutTarget,
    },
    /// Roll out again what changed while paused.
    Resume {
        #[command(flatten)]
        on: RolloutTarget,
    },
    /// Replace every pod with a new one, by a new rollout of the same spec.
    Restart {
        #[command(flatten)]
        on: RolloutTarget,
    },
}

/// `image` verbs.
#[derive(Subcommand, Debug)]
pub enum ImageVerb {
    /// Send an OCI image archive to every node (like `kind load image-archive`).
    Load {
        /// The archive (OCI image layout, tar).
        file: PathBuf,
    },
}

/// `member` verbs.
#[derive(Subcommand, Debug)]
pub enum MemberVerb {
    /// List members.
    List,
    /// Remove a member by name.
    Remove {
        /// Node name.
        name: String,
    },
}

/// `-f FILE`.
#[derive(Args, Debug)]
pub struct FileArgs {
    /// Manifest file, or - for standard input.
    #[arg(short, long)]
    pub filename: String,
    /// Namespace for objects that name none.
    #[arg(short, long)]
    pub namespace: Option<String>,
}

/// `get` flags.
#[derive(Args, Debug)]
pub struct GetArgs {
    /// Kind: pods, po, deployment, cm, ...
    pub kind: String,
    /// Name (default: list).
    pub name: Option<String>,
    /// Namespace.
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// All namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Label selector.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Field selector.
    #[arg(long)]
    pub field_selector: Option<String>,
    /// Output format.
    #[arg(short, long)]
    pub output: Option<Output>,
    /// After listing, watch for changes.
    #[arg(short, long)]
    pub watch: bool,
}

/// A command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The server refused the call.
    #[error("Error from server ({}): {}", reason(.0.code()), .0.message())]
    Server(#[from] tonic::Status),
    /// The server could not be reached.
    #[error(transparent)]
    Connect(#[from] client::connect::ConnectError),
    /// A manifest could not be read.
    #[error(transparent)]
    Manifest(#[from] manifest::ManifestError),
    /// A node could not be set up or run.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The command line is not usable.
    #[error("error: {0}")]
    Usage(String),
    /// Several objects failed (the rest succeeded).
    #[error("{0} object(s) failed")]
    Partial(usize),
}

fn reason(code: Code) -> &'static str {
    match code {
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::InvalidArgument => "Invalid",
        Code::Aborted => "Conflict",
        Code::Unauthenticated => "Unauthorized",
        Code::PermissionDenied => "Forbidden",
        Code::OutOfRange => "Gone",
        Code::Unavailable => "ServiceUnavailable",
        Code::ResourceExhausted => "RequestEntityTooLarge",
        _ => "InternalError",
    }
}

fn config_path(cli: &Cli) -> PathBuf {
    if let Some(p) = &cli.config {
        return p.clone();
    }
    if let Ok(p) = std::env::var("CLUSTERD_CONFIG") {
        if !p.is_empty() {
            return PathBuf::from(p);
        }
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    PathBuf::from(home).join(".clusterd").join("config")
}

fn members_cache(config: &std::path::Path) -> PathBuf {
    let mut name = config.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".members");
    config.with_file_name(name)
}

async fn connect(cli: &Cli) -> Result<ApiClient, CliError> {
    let path = config_path(cli);
    let config = AdminConfig::load(&path)?;
    let mut servers = match &cli.server {
        Some(s) => vec![s.clone()],
        None => config.servers.clone(),
    };
    // Fail over to the other members this client has seen.
    let cache = members_cache(&path);
    if let Ok(text) = std::fs::read_to_string(&cache) {
        for s in text.lines().map(str::trim).filter(|s| !s.is_empty()) {
            if !servers.iter().any(|x| x == s) {
                servers.push(s.to_string());
            }
        }
    }
    let (mut client, _) = client::connect(&config, &servers).await?;
    if let Ok(resp) = client.members(pb::MembersRequest {}).await {
        let list: Vec<String> = resp.into_inner().members.into_iter().map(|m| m.api_addr).collect();
        let _ = cluster::config::write_atomic(&cache, list.join("\n").as_bytes(), 0o600);
    }
    Ok(client)
}

/// Run a parsed command line.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    clusterd_raft::pki::install_default_provider();
    match &cli.command {
        Verb::Init(flags) => Ok(cluster::init(flags.args()).await?),
        Verb::Join { server_addr, token, control_plane, node } => {
            Ok(cluster::join(server_addr, token, *control_plane, node.args()).await?)
        }
        Verb::Start { data_dir } => Ok(cluster::start(data_dir).await?),
        Verb::Reset { data_dir } => Ok(cluster::reset(data_dir).await?),
        Verb::Token { command: TokenVerb::Create { ttl } } => {
            let mut c = connect(&cli).await?;
            let token = c.create_token(pb::CreateTokenRequest { ttl_seconds: *ttl }).await?.into_inner().token;
            println!("{token}");
            Ok(())
        }
        Verb::Status { output } => status(&cli, *output).await,
        Verb::Member { command } => member(&cli, command).await,
        Verb::Apply(f) | Verb::Create(f) => {
            let is_apply = matches!(cli.command, Verb::Apply(_));
            let objects = manifest::read(&f.filename)?;
            let mut c = connect(&cli).await?;
            let mut failed = 0;
            for obj in objects {
                let name = apply::display_name(&obj);
                let res = if is_apply {
                    apply::apply(&mut c, obj, f.namespace.as_deref()).await.map(|o| o.word())
                } else {
                    apply::create(&mut c, obj, f.namespace.as_deref()).await.map(|_| "created")
                };
                outcome(res.map(|word| format!("{name} {word}")), &mut failed);
            }
            all_ok(failed)
        }
        Verb::Get(args) => get(&cli, args).await,
        Verb::Describe { kind, name, namespace } => describe(&cli, kind, name, namespace.as_deref()).await,
        Verb::Delete { kind, names, filename, namespace, grace_period, force, wait, cascade } => {
            let grace = if *force { Some(0) } else { *grace_period };
            let policy = match cascade.as_str() {
                "background" | "true" => "Background",
                "foreground" => "Foreground",
                "orphan" | "false" => "Orphan",
                other => {
                    return Err(CliError::Usage(format!(
                        "invalid --cascade value \"{other}\": must be background, foreground or orphan"
                    )))
                }
            };
            let opts = DeleteOpts { grace, wait: *wait, policy };
            delete(&cli, kind.as_deref(), names, filename.as_deref(), namespace.as_deref(), opts).await
        }
        Verb::Logs { pod, container, follow, tail, previous, namespace } => {
            let mut c = connect(&cli).await?;
            let req = pb::LogsRequest {
                namespace: namespace.clone().unwrap_or_else(|| "default".into()),
                pod: pod.clone(),
                container: container.clone().unwrap_or_default(),
                follow: *follow,
                tail: tail.and_then(|t| u64::try_from(t).ok()),
                previous: *previous,
            };
            let mut stream = c.logs(req).await?.into_inner();
            use std::io::Write;
            while let Some(chunk) = stream.message().await? {
                let mut out = std::io::stdout().lock();
                for l in chunk.lines {
                    let _ = writeln!(out, "{l}");
                }
                let _ = out.flush();
            }
            Ok(())
        }
        Verb::Exec { pod, container, namespace, command } => {
            let mut c = connect(&cli).await?;
            let req = pb::ExecRequest {
                namespace: namespace.clone().unwrap_or_else(|| "default".into()),
                pod: pod.clone(),
                container: container.clone().unwrap_or_default(),
                command: command.clone(),
            };
            let r = c.exec(req).await?.into_inner();
            use std::io::Write;
            let _ = std::io::stdout().write_all(&r.stdout);
            let _ = std::io::stderr().write_all(&r.stderr);
            if r.exit_code != 0 {
                let _ = std::io::stdout().flush();
                eprintln!("command terminated with exit code {}", r.exit_code);
                std::process::exit(r.exit_code);
            }
            Ok(())
        }
        Verb::Scale { target, name, replicas, namespace } => {
            let (kind, name) = rollout::target(target, name.as_deref()).map_err(CliError::Usage)?;
            if !matches!(kind.kind, "Deployment" | "ReplicaSet" | "StatefulSet") {
                return Err(CliError::Usage(format!("cannot scale a {}", kind.kind)));
            }
            if *replicas < 0 {
                return Err(CliError::Usage("--replicas: Invalid value: must be greater than or equal to 0".into()));
            }
            let mut c = connect(&cli).await?;
            let ns = namespace.clone().unwrap_or_else(|| "default".into());
            let n = *replicas;
            rollout::modify(&mut c, kind, &ns, &name, |o| {
                o["spec"]["replicas"] = serde_json::json!(n);
                Ok(())
            })
            .await?;
            println!("{} scaled", rollout::display(kind, &name));
            Ok(())
        }
        Verb::Rollout { command } => rollout_verb(&cli, command).await,
        Verb::Image { command: ImageVerb::Load { file } } => {
            let archive = std::fs::read(file).map_err(|e| CliError::Usage(format!("{}: {e}", file.display())))?;
            let mut c = connect(&cli).await?;
            let r = c.load_image(pb::LoadImageRequest { archive }).await?.into_inner();
            for image in &r.images {
                println!("Image: \"{image}\" loaded on nodes: {}", r.nodes.join(", "));
            }
            for f in &r.failed {
                eprintln!("error: {f}");
            }
            all_ok(r.failed.len())
        }
        Verb::Top { kind, namespace, all_namespaces } => {
            let kind = match kind.as_str() {
                "pod" | "pods" | "po" => "pods",
                "node" | "nodes" | "no" => "nodes",
                other => return Err(CliError::Usage(format!("unknown resource for top: {other} (pods or nodes)"))),
            };
            let mut c = connect(&cli).await?;
            let req = pb::TopRequest {
                kind: kind.into(),
                namespace: namespace.clone().unwrap_or_else(|| "default".into()),
                all_namespaces: *all_namespaces,
            };
            let rows = c.top(req).await?.into_inner().rows;
            let mib = crate::objects::quantity::format_bytes_mi;
            let (headers, rows): (Vec<&str>, Vec<Vec<String>>) = if kind == "nodes" {
                (
                    vec!["NAME", "CPU(cores)", "MEMORY(bytes)"],
                    rows.iter()
                        .map(|r| vec![r.name.clone(), format!("{}m", r.cpu_millis), mib(r.memory_bytes)])
                        .collect(),
                )
            } else if *all_namespaces {
                (
                    vec!["NAMESPACE", "NAME", "CPU(cores)", "MEMORY(bytes)"],
                    rows.iter()
                        .map(|r| {
                            vec![r.namespace.clone(), r.name.clone(), format!("{}m", r.cpu_millis), mib(r.memory_bytes)]
                        })
                        .collect(),
                )
            } else {
                (
                    vec!["NAME", "CPU(cores)", "MEMORY(bytes)"],
                    rows.iter()
                        .map(|r| vec![r.name.clone(), format!("{}m", r.cpu_millis), mib(r.memory_bytes)])
                        .collect(),
                )
            };
            if rows.is_empty() {
                eprintln!("No resources found");
            } else {
                println!("{}", print::table(&headers, &rows));
            }
            Ok(())
        }
        Verb::Compact { revision } => {
            let mut c = connect(&cli).await?;
            let r = c.compact(pb::CompactRequest { revision: revision.unwrap_or(0) }).await?.into_inner();
            println!("compacted up to revision {}", r.compacted);
            Ok(())
        }
        Verb::Snapshot => {
            let mut c = connect(&cli).await?;
            c.snapshot(pb::SnapshotRequest {}).await?;
            println!("snapshot built");
            Ok(())
        }
    }
}

async fn status(cli: &Cli, output: Option<Output>) -> Result<(), CliError> {
    let mut c = connect(cli).await?;
    let st = c.status(pb::StatusRequest {}).await?.into_inner();
    let members: Vec<Value> = st
        .members
        .iter()
        .map(|m| json!({"name": m.name, "role": m.role, "raftAddr": m.raft_addr, "apiAddr": m.api_addr, "lastApplied": m.last_applied}))
        .collect();
    match output {
        Some(Output::Json) => println!(
            "{}",
            serde_json::to_string_pretty(&json!({"leader": st.leader, "members": members})).unwrap_or_default()
        ),
        Some(Output::Yaml) => print!("{}", print::yaml(&json!({"leader": st.leader, "members": members}))),
        _ => {
            let rows: Vec<Vec<String>> = st
                .members
                .iter()
                .map(|m| {
                    vec![
                        m.name.clone(),
                        if m.name == st.leader { format!("{} (leader)", m.role) } else { m.role.clone() },
                        m.raft_addr.clone(),
                        m.api_addr.clone(),
                        m.last_applied.map(|a| a.to_string()).unwrap_or_else(|| "unreachable".into()),
                    ]
                })
                .collect();
            println!("{}", print::table(&["NAME", "ROLE", "RAFT", "API", "APPLIED"], &rows));
        }
    }
    Ok(())
}

async fn member(cli: &Cli, verb: &MemberVerb) -> Result<(), CliError> {
    let mut c = connect(cli).await?;
    match verb {
        MemberVerb::List => {
            let ms = c.members(pb::MembersRequest {}).await?.into_inner().members;
            let rows: Vec<Vec<String>> =
                ms.into_iter().map(|m| vec![m.id.to_string(), m.name, m.role, m.raft_addr, m.api_addr]).collect();
            println!("{}", print::table(&["ID", "NAME", "ROLE", "RAFT", "API"], &rows));
        }
        MemberVerb::Remove { name } => {
            c.remove_member(pb::RemoveMemberRequest { name: name.clone() }).await?;
            println!("member \"{name}\" removed");
        }
    }
    Ok(())
}

fn resolve(kind: &str) -> Result<&'static Kind, CliError> {
    Kind::resolve(kind).ok_or_else(|| CliError::Usage(format!("the server doesn't have a resource type \"{kind}\"")))
}

fn kind_word(kind: &Kind) -> String {
    kind.kind.to_ascii_lowercase()
}

fn print_objects(kind: &Kind, items: &[Value], output: Option<Output>, all_ns: bool, header: bool) {
    let now = chrono::Utc::now();
    match output {
        Some(Output::Json) => {
            for i in items {
                println!("{}", serde_json::to_string_pretty(i).unwrap_or_default());
            }
        }
        Some(Output::Yaml) => {
            for i in items {
                print!("---\n{}", print::yaml(i));
            }
        }
        Some(Output::Name) => {
            for i in items {
                println!("{}/{}", kind_word(kind), meta_str(i, "name"));
            }
        }
        _ => {
            let wide = output == Some(Output::Wide);
            let mut headers = print::headers(kind, wide);
            let mut rows: Vec<Vec<String>> = items.iter().map(|i| print::row(kind, i, wide, now)).collect();
            if all_ns && kind.namespaced {
                headers.insert(0, "NAMESPACE");
                for (r, i) in rows.iter_mut().zip(items) {
                    r.insert(0, meta_str(i, "namespace").to_string());
                }
            }
            let t = print::table(&headers, &rows);
            let text = if header { t } else { t.lines().skip(1).collect::<Vec<_>>().join("\n") };
            if !text.is_empty() {
                println!("{text}");
            }
        }
    }
}

async fn get(cli: &Cli, a: &GetArgs) -> Result<(), CliError> {
    let kind = resolve(&a.kind)?;
    let mut c = connect(cli).await?;
    let ns = if a.all_namespaces { String::new() } else { a.namespace.clone().unwrap_or_else(|| "default".into()) };
    if let Some(name) = &a.name {
        let obj = c
            .get(pb::GetRequest {
                kind: kind.kind.into(),
                namespace: ns.clone(),
                name: name.clone(),
                linearizable: false,
            })
            .await?
            .into_inner();
        let obj: Value = serde_json::from_str(&obj.json).map_err(|e| CliError::Usage(e.to_string()))?;
        print_objects(kind, std::slice::from_ref(&obj), a.output, false, true);
        if a.watch {
            let sel = format!("metadata.name={name}");
            let rv = meta_str(&obj, "resourceVersion").parse().unwrap_or(0);
            watch(&mut c, kind, &ns, "", &sel, rv, a.output, false).await?;
        }
        return Ok(());
    }
    let list = c
        .list(pb::ListRequest {
            kind: kind.kind.into(),
            namespace: ns.clone(),
            label_selector: a.selector.clone().unwrap_or_default(),
            field_selector: a.field_selector.clone().unwrap_or_default(),
            linearizable: false,
        })
        .await?
        .into_inner();
    let value: Value = serde_json::from_str(&list.json).map_err(|e| CliError::Usage(e.to_string()))?;
    let items = value["items"].as_array().cloned().unwrap_or_default();
    match a.output {
        Some(Output::Json) => println!("{}", serde_json::to_string_pretty(&value).unwrap_or_default()),
        Some(Output::Yaml) => print!("{}", print::yaml(&value)),
        _ if items.is_empty() && !a.watch => {
            if kind.namespaced && !a.all_namespaces {
                eprintln!("No resources found in {ns} namespace.");
            } else {
                eprintln!("No resources found");
            }
        }
        out => print_objects(kind, &items, out, a.all_namespaces, true),
    }
    if a.watch {
        let (l, f) = (a.selector.clone().unwrap_or_default(), a.field_selector.clone().unwrap_or_default());
        watch(&mut c, kind, &ns, &l, &f, list.resource_version, a.output, a.all_namespaces).await?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn watch(
    c: &mut ApiClient,
    kind: &Kind,
    ns: &str,
    labels: &str,
    fields: &str,
    from: u64,
    output: Option<Output>,
    all_ns: bool,
) -> Result<(), CliError> {
    let mut stream = c
        .watch(pb::WatchRequest {
            kind: kind.kind.into(),
            namespace: ns.into(),
            label_selector: labels.into(),
            field_selector: fields.into(),
            resource_version: from,
            send_initial_events: false,
            allow_bookmarks: false,
        })
        .await?
        .into_inner();
    while let Some(ev) = stream.next().await {
        let ev = ev?;
        let obj: Value = serde_json::from_str(&ev.json).unwrap_or(Value::Null);
        match output {
            Some(Output::Json) => println!("{}", json!({"type": ev.r#type, "object": obj})),
            _ => print_objects(kind, std::slice::from_ref(&obj), output, all_ns, false),
        }
    }
    Ok(())
}

async fn describe(cli: &Cli, kind: &str, name: &str, ns: Option<&str>) -> Result<(), CliError> {
    let kind = resolve(kind)?;
    let mut c = connect(cli).await?;
    let ns = ns.unwrap_or("default").to_string();
    let obj = c
        .get(pb::GetRequest { kind: kind.kind.into(), namespace: ns.clone(), name: name.into(), linearizable: false })
        .await?
        .into_inner();
    let obj: Value = serde_json::from_str(&obj.json).map_err(|e| CliError::Usage(e.to_string()))?;
    let events = c
        .list(pb::ListRequest {
            kind: "Event".into(),
            namespace: if kind.namespaced { ns } else { "default".into() },
            label_selector: String::new(),
            field_selector: format!("involvedObject.name={name},involvedObject.kind={}", kind.kind),
            linearizable: false,
        })
        .await?
        .into_inner();
    let events: Value = serde_json::from_str(&events.json).unwrap_or(Value::Null);
    let events = events["items"].as_array().cloned().unwrap_or_default();
    print!("{}", print::describe(&obj, &events, chrono::Utc::now()));
    Ok(())
}

async fn rollout_verb(cli: &Cli, verb: &RolloutVerb) -> Result<(), CliError> {
    let on = match verb {
        RolloutVerb::Status { on, .. }
        | RolloutVerb::History { on }
        | RolloutVerb::Undo { on, .. }
        | RolloutVerb::Pause { on }
        | RolloutVerb::Resume { on }
        | RolloutVerb::Restart { on } => on,
    };
    let (kind, name) = rollout::target(&on.target, on.name.as_deref()).map_err(CliError::Usage)?;
    if kind.kind != "Deployment" {
        return Err(CliError::Usage(format!("rollout of a {} is not supported (deployments only)", kind.kind)));
    }
    let ns = on.namespace.clone().unwrap_or_else(|| "default".into());
    let mut c = connect(cli).await?;
    let shown = rollout::display(kind, &name);
    match verb {
        RolloutVerb::Status { timeout, .. } => {
            rollout::status(&mut c, &ns, &name, std::time::Duration::from_secs(*timeout)).await.map_err(CliError::Usage)
        }
        RolloutVerb::History { .. } => {
            print!("{}", rollout::history(&mut c, &ns, &name).await?);
            Ok(())
        }
        RolloutVerb::Undo { to_revision, .. } => {
            println!("{}", rollout::undo(&mut c, &ns, &name, *to_revision).await?);
            Ok(())
        }
        RolloutVerb::Pause { .. } | RolloutVerb::Resume { .. } => {
            let pause = matches!(verb, RolloutVerb::Pause { .. });
            rollout::modify(&mut c, kind, &ns, &name, |o| {
                o["spec"]["paused"] = serde_json::json!(pause);
                Ok(())
            })
            .await?;
            println!("{shown} {}", if pause { "paused" } else { "resumed" });
            Ok(())
        }
        RolloutVerb::Restart { .. } => {
            rollout::modify(&mut c, kind, &ns, &name, rollout::restart).await?;
            println!("{shown} restarted");
            Ok(())
        }
    }
}

/// How `delete` deletes.
struct DeleteOpts {
    grace: Option<i64>,
    wait: bool,
    policy: &'static str,
}

async fn delete(
    cli: &Cli,
    kind: Option<&str>,
    names: &[String],
    file: Option<&str>,
    ns: Option<&str>,
    opts: DeleteOpts,
) -> Result<(), CliError> {
    let mut targets: Vec<(&'static Kind, String, String)> = Vec::new();
    if let Some(f) = file {
        for obj in manifest::read(f)? {
            let k = Kind::of(&obj).ok_or_else(|| CliError::Usage(format!("unknown kind in {f}: {}", obj["kind"])))?;
            let o_ns = match meta_str(&obj, "namespace") {
                "" => ns.unwrap_or("default").to_string(),
                x => x.to_string(),
            };
            targets.push((k, o_ns, meta_str(&obj, "name").to_string()));
        }
    } else {
        let kind = kind.ok_or_else(|| CliError::Usage("you must provide a kind and names, or -f FILE".into()))?;
        let k = resolve(kind)?;
        if names.is_empty() {
            return Err(CliError::Usage("resource(s) were provided, but no name was specified".into()));
        }
        for n in names {
            targets.push((k, ns.unwrap_or("default").to_string(), n.clone()));
        }
    }
    let mut c = connect(cli).await?;
    let mut failed = 0;
    let mut pending = Vec::new();
    for (k, o_ns, name) in targets {
        let res = apply::delete(&mut c, k.kind, &o_ns, &name, opts.grace, opts.policy).await;
        if let Ok(obj) = &res {
            if obj.pointer("/metadata/deletionTimestamp").is_some() {
                pending.push((k, o_ns.clone(), name.clone(), meta_str(obj, "uid").to_string()));
            }
        }
        outcome(res.map(|_| format!("{} \"{}\" deleted", kind_word(k), name)), &mut failed);
    }
    // Like kubectl: wait until objects under graceful deletion are really gone.
    if opts.wait {
        for (k, o_ns, name, uid) in pending {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
            loop {
                let req = pb::GetRequest {
                    kind: k.kind.into(),
                    namespace: o_ns.clone(),
                    name: name.clone(),
                    linearizable: false,
                };
                match c.get(req).await {
                    Err(s) if s.code() == tonic::Code::NotFound => break,
                    Ok(o) if !o.get_ref().json.contains(&uid) => break,
                    _ if std::time::Instant::now() > deadline => {
                        eprintln!("error: timed out waiting for {} \"{name}\" to be deleted", kind_word(k));
                        failed += 1;
                        break;
                    }
                    _ => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
                }
            }
        }
    }
    all_ok(failed)
}

/// Print one object's outcome as kubectl does: success on stdout, error on stderr.
fn outcome(r: Result<String, tonic::Status>, failed: &mut usize) {
    match r {
        Ok(line) => println!("{line}"),
        Err(s) => {
            eprintln!("{}", CliError::Server(s));
            *failed += 1;
        }
    }
}

/// Fail the command if any object failed.
fn all_ok(failed: usize) -> Result<(), CliError> {
    if failed > 0 {
        return Err(CliError::Partial(failed));
    }
    Ok(())
}
