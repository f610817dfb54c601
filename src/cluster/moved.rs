//! A node whose host's address changed: started with its new addresses, it
//! gets a certificate that names them (issued from the cluster CA its own
//! replica holds), then tells the cluster — its Raft membership entry is
//! rewritten through the leader, and its registration (what other nodes use
//! to reach it for logs and exec) is updated.
//!
//! When every node moved, no node reaches another at the addresses the
//! membership holds, so no leader is elected to rewrite them: each node is
//! started with the others' new Raft addresses (`--peer NAME=ADDR`), which the
//! Raft network uses until the membership names new ones.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use clusterd_raft::pki::Identity;
use clusterd_raft::{Command, Member, Op, RaftNode, Txn};

use super::config::{DataDir, NodeState};
use super::ClusterError;
use crate::objects::conventions::keys;

/// How long the moved node asks for its new membership entry before it says
/// so in its log (and asks again).
const ANNOUNCE_WAIT: Duration = Duration::from_secs(60);

/// The pause before asking again after a failed announcement.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// How long Raft may take to load the membership from storage.
const LOAD_WAIT: Duration = Duration::from_secs(30);

/// Another member's new Raft address, given at start (`--peer NAME=ADDR`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// The member's name.
    pub name: String,
    /// Its Raft (transport) address now.
    pub raft_addr: SocketAddr,
}

/// A `--peer` that is not `NAME=IP:PORT`.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("--peer {0:?}: expected NAME=IP:PORT (a member's name and its new Raft address)")]
pub struct BadPeer(String);

impl FromStr for Peer {
    type Err = BadPeer;

    fn from_str(s: &str) -> Result<Self, BadPeer> {
        let bad = || BadPeer(s.to_string());
        let (name, addr) = s.split_once('=').ok_or_else(bad)?;
        let raft_addr = addr.trim().parse().map_err(|_| bad())?;
        let name = name.trim();
        if name.is_empty() {
            return Err(bad());
        }
        Ok(Peer { name: name.to_string(), raft_addr })
    }
}

/// The given peers as the Raft node takes them, refused if one names this
/// node itself or a name twice.
pub fn given_addresses(own_name: &str, peers: &[Peer]) -> Result<Vec<(String, String)>, ClusterError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for p in peers {
        if p.name == own_name {
            return Err(ClusterError::Config(format!(
                "--peer {}: that is this node (its own new addresses are --raft-addr and --api-addr)",
                p.name
            )));
        }
        if out.iter().any(|(n, _)| *n == p.name) {
            return Err(ClusterError::Config(format!("--peer {} is given twice", p.name)));
        }
        out.push((p.name.clone(), p.raft_addr.to_string()));
    }
    Ok(out)
}

/// Issue this node a certificate for its new addresses from the CA in its
/// own (stopped) replica, and keep it in the data dir.
pub fn reissue_certificate(dir: &DataDir, state: &NodeState) -> Result<Identity, ClusterError> {
    let (ca_pem, _) = dir.load_pki()?;
    let reader = clusterd_raft::storage::open_caught_up(&dir.db_path())
        .map_err(|e| ClusterError::Config(format!("{}: {e}", dir.db_path().display())))?;
    let id = super::node_cert::issue_from_replica(&reader, state, None)?;
    dir.save_pki(&ca_pem, &id)?;
    Ok(id)
}

/// Tell the cluster the node's new addresses: its membership entry (through
/// the leader, reached at the addresses this replica knows or was given) and
/// its registration. Runs beside the serving node until it is done: when the
/// whole cluster moved, there is no leader until enough of the others have
/// been started too, which may take an operator a while. Nothing to do when
/// the membership already names the node's addresses (a move that was not
/// recorded before the node stopped again is finished by a plain start), nor
/// for a node that is no member.
pub async fn announce(node: Arc<RaftNode>, state: NodeState) {
    let member =
        Member { name: state.name.clone(), raft_addr: state.raft_addr.clone(), api_addr: state.api_addr.clone() };
    match node.own_member(LOAD_WAIT).await {
        Some(m) if m == member => return,
        Some(_) => {}
        // Removed from the cluster (or the membership did not load): asking
        // now would add it again.
        None => {
            tracing::warn!(name = %state.name, "this node is not in the membership: its addresses are not announced");
            return;
        }
    }
    loop {
        match announce_once(&node, &state, &member).await {
            Ok(()) => {
                println!(
                    "node {} now at raft {}, api {}: membership and registration updated",
                    state.name, state.raft_addr, state.api_addr
                );
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "the new addresses are not recorded yet; retrying");
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    }
}

async fn announce_once(node: &RaftNode, state: &NodeState, member: &Member) -> Result<(), ClusterError> {
    let peers: Vec<String> = node
        .members()
        .into_iter()
        .filter(|(id, _, _)| *id != state.id)
        .filter_map(|(id, _, _)| node.address_of(id))
        .collect();
    node.request_membership(&peers, member.clone(), state.control_plane, ANNOUNCE_WAIT).await?;
    let key = format!("{}{}", keys::MEMBERS, state.name);
    let record = json!({
        "name": state.name,
        "raftAddr": state.raft_addr,
        "apiAddr": state.api_addr,
        "controlPlane": state.control_plane,
    });
    let put = Op::Put { key, value: record.to_string().into_bytes() };
    node.propose(Command::Txn(Txn::ops(vec![put])), ANNOUNCE_WAIT).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_are_a_name_and_an_address() {
        let ok = |name: &str, addr: &str| Ok(Peer { name: name.into(), raft_addr: addr.parse().unwrap() });
        let cases: &[(&str, Result<Peer, BadPeer>)] = &[
            ("n2=127.0.0.2:7001", ok("n2", "127.0.0.2:7001")),
            (" n2 = 127.0.0.2:7001", ok("n2", "127.0.0.2:7001")),
            ("n2=[::1]:7001", ok("n2", "[::1]:7001")),
            ("n2@127.0.0.2:7001", Err(BadPeer("n2@127.0.0.2:7001".into()))),
            ("=127.0.0.2:7001", Err(BadPeer("=127.0.0.2:7001".into()))),
            ("n2=127.0.0.2", Err(BadPeer("n2=127.0.0.2".into()))),
            ("n2=host.example:7001", Err(BadPeer("n2=host.example:7001".into()))),
        ];
        for (text, want) in cases {
            assert_eq!(&text.parse::<Peer>(), want, "{text}");
        }
    }

    #[test]
    fn a_node_is_not_its_own_peer_and_a_peer_is_given_once() {
        let p = |s: &str| s.parse::<Peer>().unwrap();
        let given = given_addresses("n1", &[p("n2=127.0.0.2:1"), p("n3=127.0.0.3:1")]).unwrap();
        assert_eq!(given, [("n2".to_string(), "127.0.0.2:1".to_string()), ("n3".into(), "127.0.0.3:1".into())]);
        assert!(given_addresses("n1", &[p("n1=127.0.0.2:1")]).is_err());
        assert!(given_addresses("n1", &[p("n2=127.0.0.2:1"), p("n2=127.0.0.3:1")]).is_err());
        assert_eq!(given_addresses("n1", &[]).unwrap(), []);
    }
}
