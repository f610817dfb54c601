//! `clusterd init`: create a cluster with this node as its first voter.

use std::time::Duration;

use serde_json::{json, Value};

use clusterd_raft::pki::Ca;
use clusterd_raft::{Command, Member, Op, Txn};

use super::config::{AdminConfig, NodeState};
use super::run::{prepare, start_raft, RunningNode};
use super::{ClusterError, NodeArgs};
use crate::api::auth::hash_token;
use crate::api::keys;
use crate::api::tokens::JoinToken;
use crate::objects::admission;
use crate::objects::network::ServiceNetwork;
use crate::objects::Kind;
use crate::util;

/// The namespaces every cluster starts with.
pub const BUILTIN_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

fn sans(args: &NodeArgs, raft: std::net::SocketAddr, api: std::net::SocketAddr) -> Vec<String> {
    vec![raft.ip().to_string(), api.ip().to_string(), args.name.clone()]
}

/// The writes that make a fresh cluster: its CA, admin token, first member,
/// built-in namespaces and the first join token.
fn bootstrap_txn(
    ca: &Ca,
    admin_token: &str,
    state: &NodeState,
    join: &JoinToken,
    expiration: &str,
    settings: &serde_json::Value,
) -> Result<Txn, ClusterError> {
    let mut ops = vec![
        Op::Put {
            key: crate::objects::conventions::CLUSTER_CONFIG_KEY.into(),
            value: settings.to_string().into_bytes(),
        },
        Op::Put {
            key: crate::controllers::serviceaccount::SIGNING_KEY.into(),
            value: hex::encode(rand::random::<[u8; 32]>()).into_bytes(),
        },
        Op::Put { key: keys::CA.into(), value: serde_json::to_vec(ca).map_err(|e| ClusterError::Config(e.to_string()))? },
        Op::Put { key: keys::ADMIN_TOKEN.into(), value: hash_token(admin_token).into_bytes() },
        Op::Put {
            key: format!("{}{}", keys::MEMBERS, state.name),
            value: json!({"name": state.name, "raftAddr": state.raft_addr, "apiAddr": state.api_addr, "controlPlane": true})
                .to_string()
                .into_bytes(),
        },
    ];
    let mut objects: Vec<_> = BUILTIN_NAMESPACES
        .iter()
        .map(|ns| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
        .collect();
    objects.push(join.secret_object(expiration));
    for obj in objects {
        let kind = Kind::of(&obj).expect("built-in kinds are registered");
        let ctx = util::create_context();
        let a = admission::for_create(kind, obj, &ctx.as_ref()).map_err(|e| ClusterError::Config(e.to_string()))?;
        let bytes = a.bytes().map_err(|e| ClusterError::Config(e.to_string()))?;
        ops.push(Op::Put { key: a.key, value: bytes });
    }
    Ok(Txn::ops(ops))
}

/// Create a new cluster in `args.data_dir` and run its first node until a signal.
pub async fn init(args: NodeArgs) -> Result<(), ClusterError> {
    crate::controllers::nodeipam::parse_cluster_cidr(&args.cluster_cidr)
        .map_err(|e| ClusterError::Config(e.to_string()))?;
    let services = ServiceNetwork::parse(&args.service_cidr, &args.service_node_port_range, &args.cluster_domain)
        .map_err(|e| ClusterError::Config(e.to_string()))?;
    let (dir, listener, api_addr, raft_addr) = prepare(&args).await?;

    let ca = Ca::generate(&args.name)?;
    let node_id = ca.issue(&format!("system:node:{}", args.name), &sans(&args, raft_addr, api_addr))?;
    let admin_id = ca.issue("admin", &[])?;
    dir.save_pki(ca.cert_pem(), &node_id)?;

    let state = NodeState {
        id: 1,
        name: args.name.clone(),
        raft_addr: raft_addr.to_string(),
        api_addr: api_addr.to_string(),
        control_plane: true,
        snapshot_every: args.snapshot_every,
        keep_logs: args.keep_logs,
        insecure_registries: args.insecure_registries.clone(),
        node_ip: args.node_ip.map(|ip| ip.to_string()),
        resolv_conf: args.resolv_conf.as_ref().map(|p| p.display().to_string()),
    };
    let node = start_raft(&dir, &state, ca.cert_pem(), &node_id).await?;
    let member =
        Member { name: state.name.clone(), raft_addr: state.raft_addr.clone(), api_addr: state.api_addr.clone() };
    node.initialize(member).await?;
    node.raft
        .wait(Some(Duration::from_secs(30)))
        .current_leader(1, "init: become leader")
        .await
        .map_err(|e| ClusterError::Config(format!("the new node did not become leader: {e}")))?;

    let admin_token = hex::encode(rand::random::<[u8; 24]>());
    let join = JoinToken::generate(&ca.fingerprint()?);
    let expiration = util::rfc3339(chrono::Utc::now() + chrono::Duration::hours(24));
    let mut settings = json!({
        "clusterCIDR": args.cluster_cidr,
        "nodeGracePeriodSeconds": args.node_grace_period,
        "podEvictionTimeoutSeconds": args.pod_eviction_timeout,
    });
    if let (Some(all), Value::Object(net)) = (settings.as_object_mut(), services.settings()) {
        all.extend(net);
    }
    let txn = bootstrap_txn(&ca, &admin_token, &state, &join, &expiration, &settings)?;
    node.propose(Command::Txn(txn), Duration::from_secs(30)).await?;

    let running = RunningNode::serve(node, listener, ca.cert_pem().to_string(), node_id, &dir, &state)?;
    let admin = AdminConfig {
        api_version: "clusterd.io/v1".into(),
        kind: "Config".into(),
        servers: vec![state.api_addr.clone()],
        certificate_authority: ca.cert_pem().to_string(),
        client_certificate: admin_id.cert_pem,
        client_key: admin_id.key_pem,
        token: admin_token,
    };
    dir.save_state(&state)?;
    // admin.conf last: its presence says the node is ready.
    admin.save(&dir.admin_conf())?;
    println!("cluster initialized: node {} (api {}, raft {})", state.name, state.api_addr, state.raft_addr);
    println!("admin config: {}", dir.admin_conf().display());
    println!("join more nodes with:");
    println!("  clusterd join {} --token {} --data-dir DIR --name NAME [--control-plane]", state.api_addr, join);
    running.run_until_signal().await
}
