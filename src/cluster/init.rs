//! `clusterd init`: create a cluster with this node as its first voter.

use std::time::Duration;

use serde_json::{json, Value};

use clusterd_raft::pki::{Ca, Identity};
use clusterd_raft::{Command, Member, Op, Txn};

use super::config::{write_atomic, AdminConfig, DataDir, NodeState};
use super::run::{prepare, start_raft, RunningNode};
use super::{ClusterError, NodeArgs};
use crate::api::auth::hash_token;
use crate::api::keys;
use crate::api::tokens::JoinToken;
use crate::objects::admission;
use crate::objects::network::ServiceNetwork;
use crate::objects::{kinds, Kind};
use crate::registry::allocate;
use crate::util;

/// The namespaces every cluster starts with.
pub const BUILTIN_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

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
    let ops = vec![
        Op::Put {
            key: crate::objects::conventions::CLUSTER_CONFIG_KEY.into(),
            value: settings.to_string().into_bytes(),
        },
        Op::Put {
            key: crate::controllers::serviceaccount::SIGNING_KEY.into(),
            value: hex::encode(rand::random::<[u8; 32]>()).into_bytes(),
        },
        Op::Put {
            key: keys::CA.into(),
            value: serde_json::to_vec(ca).map_err(|e| ClusterError::Config(e.to_string()))?,
        },
        Op::Put { key: keys::ADMIN_TOKEN.into(), value: hash_token(admin_token).into_bytes() },
        member_record(state),
    ];
    let mut objects: Vec<_> = BUILTIN_NAMESPACES
        .iter()
        .map(|ns| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
        .collect();
    objects.push(join.secret_object(expiration));
    let net = ServiceNetwork::from_settings(settings);
    objects.extend(builtin_services(&net));
    let mut txn = Txn::ops(ops);
    for obj in objects {
        add_object(&mut txn, obj, &net)?;
    }
    Ok(txn)
}

/// The registration of a first node (`/clusterd/members/<name>`).
pub(super) fn member_record(state: &NodeState) -> Op {
    Op::Put {
        key: format!("{}{}", keys::MEMBERS, state.name),
        value:
            json!({"name": state.name, "raftAddr": state.raft_addr, "apiAddr": state.api_addr, "controlPlane": true})
                .to_string()
                .into_bytes(),
    }
}

/// The Services every cluster has: `kubernetes` (the API servers, at the
/// first address of the service network; its Endpoints are kept by the
/// control plane) and `kube-dns` (each node's own DNS server, at `.10`).
fn builtin_services(net: &ServiceNetwork) -> [Value; 2] {
    [
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default",
                "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"type": "ClusterIP", "clusterIP": net.api_ip().to_string(),
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 443}]}}),
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": "kube-system",
                "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "clusterd-dns"}},
            "spec": {"type": "ClusterIP", "clusterIP": net.dns_ip().to_string(),
                "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                          {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}]}}),
    ]
}

/// Admit `obj` as a user's create would be and add it to the bootstrap
/// transaction — a Service with the allocation records of its addresses, by
/// the registry's own allocation.
pub(super) fn add_object(txn: &mut Txn, obj: Value, net: &ServiceNetwork) -> Result<(), ClusterError> {
    let config = |e: &dyn std::fmt::Display| ClusterError::Config(e.to_string());
    let kind = Kind::of(&obj).expect("built-in kinds are registered");
    let ctx = util::create_context();
    let mut a = admission::for_create(kind, obj, &ctx.as_ref()).map_err(|e| config(&e))?;
    let plan =
        if *kind == kinds::SERVICE {
            let mut rng = rand::thread_rng();
            let plan = allocate::plan(net, None, &mut a.body, &|_| false, &mut rng, &util::now());
            Some(plan.map_err(|causes| {
                config(&admission::Invalid { kind: kind.kind.into(), name: a.name.clone(), causes })
            })?)
        } else {
            None
        };
    txn.success.push(Op::Put { key: a.key.clone(), value: a.bytes().map_err(|e| config(&e))? });
    if let Some(plan) = plan {
        plan.add_to(txn, &a.key);
    }
    Ok(())
}

/// Create a new cluster in `args.data_dir` and run its first node until a signal.
pub async fn init(args: NodeArgs) -> Result<(), ClusterError> {
    crate::controllers::nodeipam::parse_cluster_cidr(&args.cluster_cidr)
        .map_err(|e| ClusterError::Config(e.to_string()))?;
    let services = ServiceNetwork::parse(&args.service_cidr, &args.service_node_port_range, &args.cluster_domain)
        .map_err(|e| ClusterError::Config(e.to_string()))?;
    let (dir, listener, api_addr, raft_addr) = prepare(&args).await?;

    let ca = Ca::generate(&args.name)?;
    let first = FirstNode::new(&args, dir, ca, raft_addr, api_addr)?;
    let node = start_raft(&first.dir, &first.state, first.ca.cert_pem(), &first.node_id, &[]).await?;
    let state = &first.state;
    node.initialize(first.member()).await?;
    lead(&node).await?;

    let admin_token = hex::encode(rand::random::<[u8; 24]>());
    let join = JoinToken::generate(&first.ca.fingerprint()?);
    let mut settings = json!({
        "clusterCIDR": args.cluster_cidr,
        "nodeGracePeriodSeconds": args.node_grace_period,
        "podEvictionTimeoutSeconds": args.pod_eviction_timeout,
    });
    if let (Some(all), Value::Object(net)) = (settings.as_object_mut(), services.settings()) {
        all.extend(net);
    }
    let txn = bootstrap_txn(&first.ca, &admin_token, state, &join, &join_token_expiration(), &settings)?;
    node.propose(Command::Txn(txn), Duration::from_secs(30)).await?;
    first.serve(node, listener, admin_token, &join, "cluster initialized").await
}

/// When the join token a first node prints expires.
pub(super) fn join_token_expiration() -> String {
    util::rfc3339(chrono::Utc::now() + chrono::Duration::hours(24))
}

/// Wait until a new cluster's one voter leads it.
pub(super) async fn lead(node: &clusterd_raft::RaftNode) -> Result<(), ClusterError> {
    node.raft
        .wait(Some(Duration::from_secs(30)))
        .current_leader(node.id, "become leader")
        .await
        .map_err(|e| ClusterError::Config(format!("the new node did not become leader: {e}")))?;
    Ok(())
}

/// The first node of a new cluster (`init`, `snapshot restore`): node id 1,
/// its certificate from the cluster CA, saved in its data directory.
pub(super) struct FirstNode {
    pub(super) dir: DataDir,
    pub(super) state: NodeState,
    pub(super) ca: Ca,
    pub(super) node_id: Identity,
}

impl FirstNode {
    /// Issue the node's certificate and save it with the CA's in `dir`.
    pub(super) fn new(
        args: &NodeArgs,
        dir: DataDir,
        ca: Ca,
        raft_addr: std::net::SocketAddr,
        api_addr: std::net::SocketAddr,
    ) -> Result<Self, ClusterError> {
        let node_id = crate::objects::conventions::issue_node_certificate(
            &ca,
            &args.name,
            &raft_addr.to_string(),
            &api_addr.to_string(),
            args.certificates.validity(),
            None,
        )?;
        dir.save_pki(ca.cert_pem(), &node_id)?;
        let state = NodeState::of_new_node(args, 1, raft_addr, api_addr, true);
        Ok(FirstNode { dir, state, ca, node_id })
    }

    /// The node's membership record.
    pub(super) fn member(&self) -> Member {
        let s = &self.state;
        Member { name: s.name.clone(), raft_addr: s.raft_addr.clone(), api_addr: s.api_addr.clone() }
    }

    /// Serve the API, write the admin's credentials (a new client certificate,
    /// and `admin_token` unless empty) and the node state, say how to use and
    /// join the cluster, and run until a signal.
    pub(super) async fn serve(
        self,
        node: std::sync::Arc<clusterd_raft::RaftNode>,
        listener: tokio::net::TcpListener,
        admin_token: String,
        join: &JoinToken,
        done: &str,
    ) -> Result<(), ClusterError> {
        let FirstNode { dir, state, ca, .. } = self;
        let admin_id = ca.issue_client("admin", "system:masters", clusterd_raft::pki::CLIENT_VALIDITY)?;
        let running = RunningNode::serve(node, listener, ca.cert_pem().to_string(), &dir, &state)?;
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
        write_atomic(&dir.kubeconfig(), admin.kubeconfig(&admin.servers).as_bytes(), 0o600)?;
        // admin.conf last: its presence says the node is ready.
        admin.save(&dir.admin_conf())?;
        println!("{done}: node {} (api {}, raft {})", state.name, state.api_addr, state.raft_addr);
        println!("admin config: {}", dir.admin_conf().display());
        println!("kubectl: export KUBECONFIG={}", dir.kubeconfig().display());
        println!("join more nodes with:");
        println!("  clusterd join {} --token {} --data-dir DIR --name NAME [--control-plane]", state.api_addr, join);
        running.run_until_signal().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_services_hold_their_addresses_from_the_start() {
        let net = ServiceNetwork::parse("10.50.0.0/16", "30000-32767", "cluster.local").unwrap();
        let mut txn = Txn::default();
        for svc in builtin_services(&net) {
            add_object(&mut txn, svc, &net).unwrap();
        }
        let put = |key: &str| {
            txn.success.iter().find_map(|op| match op {
                Op::Put { key: k, value } if k == key => Some(value.clone()),
                _ => None,
            })
        };
        let api: Value = serde_json::from_slice(&put("/registry/services/specs/default/kubernetes").unwrap()).unwrap();
        assert_eq!(
            (&api["spec"]["clusterIP"], &api["spec"]["clusterIPs"]),
            (&json!("10.50.0.1"), &json!(["10.50.0.1"]))
        );
        assert_eq!(api["spec"]["ports"][0]["port"], 443);
        let dns: Value =
            serde_json::from_slice(&put("/registry/services/specs/kube-system/kube-dns").unwrap()).unwrap();
        assert_eq!(dns["spec"]["clusterIP"], "10.50.0.10");
        assert_eq!(
            put("/clusterd/allocations/clusterips/10.50.0.1").unwrap(),
            b"/registry/services/specs/default/kubernetes"
        );
        assert_eq!(
            put("/clusterd/allocations/clusterips/10.50.0.10").unwrap(),
            b"/registry/services/specs/kube-system/kube-dns"
        );
        assert_eq!(txn.compares.len(), 2, "each record only if absent");
    }
}
