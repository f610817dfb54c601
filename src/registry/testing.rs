//! Registries over real Raft members in one process (RocksDB in a temporary
//! directory, QUIC on loopback), for tests of what the registry writes.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use clusterd_raft::pki::Ca;
use clusterd_raft::{Command, Member, NodeOptions, Op, RaftNode, Txn};

use super::Registry;

const WAIT: Duration = Duration::from_secs(20);

/// One cluster of `n` voters, each with its registry; removed when dropped.
pub struct TestCluster {
    /// The registries, one per member.
    pub registries: Vec<Registry>,
    nodes: Vec<Arc<RaftNode>>,
    _dir: tempfile::TempDir,
}

fn free_udp() -> std::net::SocketAddr {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

impl TestCluster {
    /// A cluster of `n` members with `settings` as its cluster settings and
    /// the `default` and `kube-system` namespaces.
    pub async fn start(n: u64, settings: serde_json::Value) -> Self {
        clusterd_raft::pki::install_default_provider();
        let ca = Ca::generate("test").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut nodes = Vec::new();
        let mut members = Vec::new();
        for id in 1..=n {
            let bind = free_udp();
            let identity =
                ca.issue(&format!("n{id}"), &["127.0.0.1".into()], clusterd_raft::pki::NODE_VALIDITY).unwrap();
            let opts = NodeOptions::new(id, bind, dir.path().join(format!("n{id}")), ca.cert_pem().into(), identity);
            nodes.push(RaftNode::start(opts).await.unwrap());
            members.push(Member { name: format!("n{id}"), raft_addr: bind.to_string(), api_addr: String::new() });
        }
        nodes[0].initialize(members[0].clone()).await.unwrap();
        let deadline = tokio::time::Instant::now() + WAIT;
        while !nodes[0].is_leader() {
            assert!(tokio::time::Instant::now() < deadline, "no leader");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let put = Op::Put {
            key: crate::objects::conventions::CLUSTER_CONFIG_KEY.into(),
            value: settings.to_string().into_bytes(),
        };
        nodes[0].propose(Command::Txn(Txn::ops(vec![put])), WAIT).await.unwrap();
        for (i, m) in members.iter().enumerate().skip(1) {
            // A membership change is refused while the first one is still being committed.
            while let Err(e) = nodes[0].add_member(i as u64 + 1, m.clone(), true, WAIT).await {
                assert!(tokio::time::Instant::now() < deadline, "adding n{}: {e}", i + 1);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let registries: Vec<Registry> = nodes.iter().map(|n| Registry::new(n.clone())).collect();
        for ns in ["default", "kube-system"] {
            let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            registries[0].create(obj).await.unwrap();
        }
        // Every member has seen the settings and namespaces before a test writes.
        for node in &nodes {
            node.read_barrier(WAIT).await.unwrap();
        }
        TestCluster { registries, nodes, _dir: dir }
    }

    /// Stop every member.
    pub async fn stop(self) {
        for node in &self.nodes {
            node.shutdown().await;
        }
    }
}
