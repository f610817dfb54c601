//! Several members in one process over real QUIC on loopback: forwarding,
//! linearizable reads, leader failure, and a new learner catching up through a
//! snapshot after the log was purged.

use std::sync::Arc;
use std::time::Duration;

use clusterd_raft::pki::Ca;
use clusterd_raft::{Command, Member, NodeOptions, Op, RaftNode, Txn};
use openraft::async_runtime::WatchReceiver;

struct Harness {
    ca: Ca,
    dir: tempfile::TempDir,
}

fn free_udp() -> std::net::SocketAddr {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

impl Harness {
    fn new() -> Self {
        clusterd_raft::pki::install_default_provider();
        Harness { ca: Ca::generate("test").unwrap(), dir: tempfile::tempdir().unwrap() }
    }

    async fn node(&self, id: u64, snapshot_every: u64) -> (Arc<RaftNode>, Member) {
        let bind = free_udp();
        let identity =
            self.ca.issue(&format!("n{id}"), &["127.0.0.1".into()], clusterd_raft::pki::NODE_VALIDITY).unwrap();
        let mut opts =
            NodeOptions::new(id, bind, self.dir.path().join(format!("n{id}")), self.ca.cert_pem().into(), identity);
        opts.snapshot_every = snapshot_every;
        opts.keep_logs = 5;
        let node = RaftNode::start(opts).await.unwrap();
        let member = Member { name: format!("n{id}"), raft_addr: bind.to_string(), api_addr: String::new() };
        (node, member)
    }
}

fn put(key: &str, value: &str) -> Command {
    Command::Txn(Txn::ops(vec![Op::Put { key: key.into(), value: value.as_bytes().to_vec() }]))
}

const WAIT: Duration = Duration::from_secs(20);

/// Add a member through `leader`, again while the leader's own first
/// membership is not yet committed (just after `initialize`, on a loaded
/// machine, openraft refuses a change "while undergoing a configuration
/// change").
async fn add_member(leader: &Arc<RaftNode>, id: u64, member: Member, voter: bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match leader.add_member(id, member.clone(), voter, WAIT).await {
            Ok(()) => return,
            Err(e) if e.to_string().contains("undergoing a configuration change") => {
                assert!(tokio::time::Instant::now() < deadline, "add member {id}: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("add member {id}: {e}"),
        }
    }
}

async fn wait_leader(nodes: &[&Arc<RaftNode>], not: Option<u64>) -> u64 {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        for n in nodes {
            if let Some(l) = n.leader() {
                if Some(l) != not && nodes.iter().any(|m| m.id == l) {
                    return l;
                }
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "no leader elected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_voters_forward_failover_and_snapshot_catch_up() {
    let h = Harness::new();
    let (n1, m1) = h.node(1, 50).await;
    let (n2, m2) = h.node(2, 50).await;
    let (n3, m3) = h.node(3, 50).await;
    eprintln!("--- initialize n1, add n2 and n3 as voters");
    n1.initialize(m1).await.unwrap();
    wait_leader(&[&n1], None).await;
    add_member(&n1, 2, m2, true).await;
    add_member(&n1, 3, m3, true).await;
    assert_eq!(n1.members().iter().filter(|m| m.2).count(), 3);

    eprintln!("--- a write proposed on a follower is forwarded to the leader");
    let r = n3.propose(put("/a", "1"), WAIT).await.unwrap();
    assert!(r.succeeded);
    assert_eq!(n3.store.get("/a").unwrap().unwrap().mod_revision, r.revision, "read-your-writes on the proposer");

    eprintln!("--- a linearizable read on another follower sees it");
    n2.read_barrier(WAIT).await.unwrap();
    assert_eq!(n2.store.get("/a").unwrap().unwrap().value, b"1");

    eprintln!("--- stop the leader; the survivors elect another and take writes");
    let all = [n1.clone(), n2.clone(), n3.clone()];
    let leader = wait_leader(&[&n1, &n2, &n3], None).await;
    let old = all.iter().find(|n| n.id == leader).unwrap().clone();
    let survivors: Vec<_> = all.iter().filter(|n| n.id != leader).cloned().collect();
    old.shutdown().await;
    let new_leader = wait_leader(&[&survivors[0], &survivors[1]], Some(leader)).await;
    assert_ne!(new_leader, leader);
    for i in 0..120 {
        survivors[i % 2].propose(put(&format!("/k/{i}"), "v"), WAIT).await.unwrap();
    }

    eprintln!("--- a new learner joins after the log was purged: it gets a snapshot");
    let (n4, m4) = h.node(4, 50).await;
    survivors[0].add_member(4, m4, false, WAIT).await.unwrap();
    let snapshot = survivors.iter().find_map(|n| n.raft.metrics().borrow_watched().snapshot);
    assert!(snapshot.is_some(), "the survivors built a snapshot");
    let target = survivors[0].store.revision();
    assert!(n4.store.wait_applied(target, WAIT).await, "the learner caught up");
    assert_eq!(n4.store.list("/k/").unwrap().0.len(), 120);
    assert_eq!(n4.store.get("/a").unwrap().unwrap().value, b"1");
    let purged: Vec<_> = survivors.iter().map(|n| n.raft.metrics().borrow_watched().purged).collect();
    eprintln!("purged: {purged:?}, learner compacted at {}", n4.store.compacted());
    assert!(
        purged.iter().any(|p| p.is_some_and(|p| p.index > 1)),
        "the survivors purged their logs behind the snapshot"
    );
    assert!(n4.store.compacted() > 0, "history before the snapshot is gone on the learner");

    for n in survivors.iter().chain([&n4]) {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_without_its_quorum_answers_a_write_in_the_callers_time() {
    let h = Harness::new();
    let (n1, m1) = h.node(1, 1000).await;
    let (n2, m2) = h.node(2, 1000).await;
    let (n3, m3) = h.node(3, 1000).await;
    n1.initialize(m1).await.unwrap();
    wait_leader(&[&n1], None).await;
    add_member(&n1, 2, m2, true).await;
    add_member(&n1, 3, m3, true).await;
    n1.propose(put("/a", "1"), WAIT).await.unwrap();
    eprintln!("--- both followers go; the leader keeps its role but cannot commit");
    n2.shutdown().await;
    n3.shutdown().await;
    let wait = Duration::from_secs(2);
    let started = tokio::time::Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(15), n1.propose(put("/b", "1"), wait)).await;
    let took = started.elapsed();
    let r = r.expect("the write came back instead of hanging");
    assert!(r.is_err(), "no quorum, no commit: {r:?}");
    eprintln!("refused in {took:?}: {}", r.unwrap_err());
    assert!(took < Duration::from_secs(5), "within about the caller's wait: {took:?}");
    n1.shutdown().await;
}
