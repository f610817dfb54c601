//! Quorum loss: two of three voters are gone for good; the stopped survivor's
//! store is rewritten to make it the only voter, and it starts again as a
//! one-voter cluster with everything it had. Real members over QUIC on loopback.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clusterd_raft::pki::{Ca, Identity};
use clusterd_raft::recover::{probe, quorum_reachable, RecoverError, StoppedStore};
use clusterd_raft::{Command, Member, NodeOptions, Op, RaftNode, Txn};

const WAIT: Duration = Duration::from_secs(20);

struct Harness {
    ca: Ca,
    dir: tempfile::TempDir,
}

impl Harness {
    fn new() -> Self {
        clusterd_raft::pki::install_default_provider();
        Harness { ca: Ca::generate("test").unwrap(), dir: tempfile::tempdir().unwrap() }
    }

    fn identity(&self, id: u64) -> Identity {
        self.ca.issue(&format!("n{id}"), &["127.0.0.1".into()], clusterd_raft::pki::NODE_VALIDITY).unwrap()
    }

    async fn node(&self, id: u64, bind: std::net::SocketAddr) -> Arc<RaftNode> {
        let opts = NodeOptions::new(id, bind, self.db(id), self.ca.cert_pem().into(), self.identity(id));
        RaftNode::start(opts).await.unwrap()
    }

    /// Start node `id` on a free port: another test may take a port between
    /// [`free_udp`] finding it and the node binding it, then another is tried.
    async fn fresh(&self, id: u64) -> (Arc<RaftNode>, std::net::SocketAddr) {
        for _ in 0..20 {
            let bind = free_udp();
            let opts = NodeOptions::new(id, bind, self.db(id), self.ca.cert_pem().into(), self.identity(id));
            match RaftNode::start(opts).await {
                Ok(node) => return (node, bind),
                Err(e) if e.to_string().contains("Address already in use") => continue,
                Err(e) => panic!("start n{id}: {e}"),
            }
        }
        panic!("start n{id}: no free port in 20 tries")
    }

    fn db(&self, id: u64) -> std::path::PathBuf {
        self.dir.path().join(format!("n{id}"))
    }
}

fn free_udp() -> std::net::SocketAddr {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

fn put(key: &str) -> Command {
    Command::Txn(Txn::ops(vec![Op::Put { key: key.into(), value: b"v".to_vec() }]))
}

fn member(id: u64, bind: std::net::SocketAddr) -> Member {
    Member { name: format!("n{id}"), raft_addr: bind.to_string(), api_addr: String::new() }
}

async fn wait_leader(node: &RaftNode) {
    let deadline = Instant::now() + WAIT;
    while node.leader().is_none() {
        assert!(Instant::now() < deadline, "no leader");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Drop the last handle of a stopped node, then wait until its store can be opened.
async fn reopen(path: &std::path::Path, node: Arc<RaftNode>) -> StoppedStore {
    node.shutdown().await;
    drop(node);
    let deadline = Instant::now() + WAIT;
    loop {
        match StoppedStore::open(path) {
            Ok(s) => return s,
            Err(RecoverError::InUse(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("reopen {}: {e}", path.display()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_survivor_becomes_the_only_voter_with_everything_it_had() {
    let h = Harness::new();
    let ((n1, a1), (n2, a2), (n3, a3)) = (h.fresh(1).await, h.fresh(2).await, h.fresh(3).await);
    let addrs = [a1, a2, a3];
    n1.initialize(member(1, addrs[0])).await.unwrap();
    wait_leader(&n1).await;
    n1.add_member(2, member(2, addrs[1]), true, WAIT).await.unwrap();
    n1.add_member(3, member(3, addrs[2]), true, WAIT).await.unwrap();
    for i in 0..50 {
        n1.propose(put(&format!("/k/{i}")), WAIT).await.unwrap();
    }
    n2.read_barrier(WAIT).await.unwrap();

    eprintln!("--- a running node's store is refused");
    assert!(matches!(StoppedStore::open(&h.db(1)), Err(RecoverError::InUse(_))));

    eprintln!("--- stop n1: n2 and n3 still answer the probe, a quorum: recovery would split the cluster");
    let s = reopen(&h.db(1), n1).await;
    let m = s.membership().unwrap();
    assert_eq!(m.voters(), BTreeSet::from([1, 2, 3]));
    let peers: Vec<(u64, String)> = vec![(2, addrs[1].to_string()), (3, addrs[2].to_string())];
    // The probe binds another loopback address: an ephemeral port on 127.0.0.1
    // could be one the stopped nodes will bind again.
    let bind = "127.0.0.2:0".parse().unwrap();
    let up = probe(&peers, bind, h.ca.cert_pem(), &h.identity(1), Duration::from_secs(2)).await.unwrap();
    assert_eq!(up, BTreeSet::from([2, 3]));
    assert!(quorum_reachable(&m.configs, &up.iter().copied().chain([1]).collect()));

    eprintln!("--- n2 and n3 are gone for good: nobody answers");
    n2.shutdown().await;
    n3.shutdown().await;
    let up = probe(&peers, bind, h.ca.cert_pem(), &h.identity(1), Duration::from_secs(1)).await.unwrap();
    assert!(up.is_empty(), "{up:?}");
    assert!(!quorum_reachable(&m.configs, &BTreeSet::from([1])));

    eprintln!("--- rewrite n1's membership and start it: it leads alone, with every write, and takes new ones");
    let log_id = s.make_single_voter(1).unwrap();
    let after = s.membership().unwrap();
    assert_eq!((after.voters(), after.log_id), (BTreeSet::from([1]), Some(log_id)));
    assert_eq!(after.nodes.keys().copied().collect::<Vec<_>>(), vec![1]);
    drop(s);
    let started = Instant::now();
    let n1 = h.node(1, addrs[0]).await;
    let r = n1.propose(put("/after"), WAIT).await.unwrap();
    eprintln!("first write accepted {:?} after the start", started.elapsed());
    assert!(r.succeeded && r.revision > log_id.index);
    assert_eq!(n1.leader(), Some(1));
    let members = n1.members();
    assert_eq!(members.iter().map(|m| (m.0, m.2)).collect::<Vec<_>>(), vec![(1, true)]);
    assert_eq!(n1.store.list("/k/").unwrap().0.len(), 50, "every committed write survived");

    eprintln!("--- a fresh node joins the one-voter cluster as a voter");
    let (n4, a4) = h.fresh(4).await;
    n1.add_member(4, member(4, a4), true, WAIT).await.unwrap();
    n1.propose(put("/with-n4"), WAIT).await.unwrap();
    n4.read_barrier(WAIT).await.unwrap();
    assert_eq!(n4.store.list("/k/").unwrap().0.len(), 50);
    assert_eq!(n1.members().iter().filter(|m| m.2).count(), 2);
    n4.shutdown().await;
    n1.shutdown().await;
}
