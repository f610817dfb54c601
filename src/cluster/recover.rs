//! `clusterd recover`: bring a cluster back from the loss of its quorum, on
//! one surviving voter whose peers are gone for good.
//!
//! The node must be stopped (its store is opened exclusively; its containers
//! keep running meanwhile). The other members are asked over the cluster
//! transport whether they answer: if enough do that the old cluster could
//! still decide, recovery would split it in two, and it is refused unless
//! `--force`. Otherwise the node's store is rewritten to make it the only
//! voter (see [`clusterd_raft::recover`]) and the node runs as a one-voter
//! cluster, in the foreground like `start`. Once it leads, the registrations
//! of the members it dropped are removed, so they can join again under the
//! same names with `clusterd reset` and `clusterd join`.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use clusterd_raft::recover::{probe, quorum_reachable, StoppedStore};
use clusterd_raft::{Command, Compare, NodeId, Op, RaftNode, Txn};

use super::config::DataDir;
use super::start::launch;
use super::ClusterError;
use crate::api::keys;

/// How long a member has to answer the probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// How long the recovered node has to become leader and clean up.
const CLEANUP_WAIT: Duration = Duration::from_secs(60);

/// What recovery does, given the membership and who answered.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// The node already is the only voter: nothing to rewrite.
    AlreadyAlone,
    /// Make the node the only voter.
    Rewrite,
    /// A quorum of the old membership is up: recovery would split the cluster.
    RefuseQuorumUp,
    /// The node is not a voter: it may lack committed entries.
    RefuseNotAVoter,
}

/// Decide for node `me` of a membership with voter sets `configs`, of whose
/// other members `up` answered. `force` overrides a refusal.
pub fn decide(me: NodeId, configs: &[BTreeSet<NodeId>], up: &BTreeSet<NodeId>, force: bool) -> Decision {
    let voters: BTreeSet<NodeId> = configs.iter().flatten().copied().collect();
    if voters == BTreeSet::from([me]) {
        return Decision::AlreadyAlone;
    }
    if force {
        return Decision::Rewrite;
    }
    if !voters.contains(&me) {
        return Decision::RefuseNotAVoter;
    }
    let with_me: BTreeSet<NodeId> = up.iter().copied().chain([me]).collect();
    if quorum_reachable(configs, &with_me) {
        return Decision::RefuseQuorumUp;
    }
    Decision::Rewrite
}

/// The names whose registration records (name, revision of the record) are
/// stale after a recovery at log index `recovered_at`: registered before it,
/// and no longer members. A name registered after it is a node joining now.
pub fn stale_registrations(records: &[(String, u64)], members: &BTreeSet<String>, recovered_at: u64) -> Vec<String> {
    records
        .iter()
        .filter(|(name, rev)| *rev <= recovered_at && !members.contains(name))
        .map(|(name, _)| name.clone())
        .collect()
}

/// Recover the node kept in `data_dir` and run it until a signal.
pub async fn recover(data_dir: &Path, force: bool) -> Result<(), ClusterError> {
    let dir = DataDir(data_dir.to_path_buf());
    let state = dir.load_state()?;
    let (ca_pem, identity) = super::renewal::pki_renewed_while_stopped(&dir, &state)?;
    let failed = |e: clusterd_raft::recover::RecoverError| ClusterError::Config(e.to_string());
    let store = StoppedStore::open(&dir.db_path()).map_err(failed)?;
    let members = store.membership().map_err(failed)?;
    let others: Vec<(NodeId, String)> =
        members.nodes.iter().filter(|(id, _)| **id != state.id).map(|(id, m)| (*id, m.raft_addr.clone())).collect();
    let own: SocketAddr = state
        .raft_addr
        .parse()
        .map_err(|_| ClusterError::Config(format!("raftAddr \"{}\" is not IP:port", state.raft_addr)))?;
    let up = if others.is_empty() {
        BTreeSet::new()
    } else {
        println!("asking the other {} member(s) whether they answer ({PROBE_TIMEOUT:?} each)...", others.len());
        probe(&others, SocketAddr::new(own.ip(), 0), &ca_pem, &identity, PROBE_TIMEOUT)
            .await
            .map_err(|e| ClusterError::Config(format!("probe the other members: {e}")))?
    };
    let name = |id: &NodeId| members.nodes.get(id).map(|m| m.name.clone()).unwrap_or_else(|| id.to_string());
    let listed = |ids: &BTreeSet<NodeId>| ids.iter().map(name).collect::<Vec<_>>().join(", ");
    let mut dropped: Vec<(String, bool)> = Vec::new();
    match decide(state.id, &members.configs, &up, force) {
        Decision::AlreadyAlone => {
            println!("node {} already is the only voter of its cluster: starting it", state.name);
        }
        Decision::RefuseQuorumUp => {
            return Err(ClusterError::Config(format!(
                "refusing to recover: {} of the other members answer ({}); with this node they form a quorum of \
                 the cluster's voters ({}), so recovering would split a healthy cluster. Start this node with \
                 `clusterd start --data-dir {}` instead, or pass --force if those members are gone for good",
                up.len(),
                listed(&up),
                listed(&members.voters()),
                data_dir.display()
            )));
        }
        Decision::RefuseNotAVoter => {
            return Err(ClusterError::Config(format!(
                "refusing to recover: node {} is not a voter (voters: {}), so it may lack committed writes; \
                 recover a surviving voter instead, or pass --force",
                state.name,
                listed(&members.voters())
            )));
        }
        Decision::Rewrite => {
            let log_id = store.make_single_voter(state.id).map_err(failed)?;
            let gone: BTreeSet<NodeId> = others.iter().map(|(id, _)| *id).collect();
            let silent: BTreeSet<NodeId> = gone.difference(&up).copied().collect();
            println!(
                "recovered: node {} is now the only voter (membership entry {log_id}); dropped: {} (not answering: {})",
                state.name,
                listed(&gone),
                listed(&silent)
            );
            dropped = gone.iter().map(|id| (name(id), members.voters().contains(id))).collect();
        }
    }
    let recovered_at = store.membership().map_err(failed)?.log_id.map(|l| l.index).unwrap_or(0);
    drop(store);
    let running = launch(&dir, &[]).await?;
    tokio::spawn(remove_stale_registrations(running.node.clone(), recovered_at));
    print_rejoin(&state.api_addr, &dropped);
    running.run_until_signal().await
}

fn print_rejoin(api_addr: &str, dropped: &[(String, bool)]) {
    if dropped.is_empty() {
        return;
    }
    println!("to bring the dropped nodes back, on each of their hosts:");
    println!("  clusterd reset --data-dir OLD_DIR     # if its old data directory is still there; then remove OLD_DIR");
    println!("  clusterd token create                 # here, for TOKEN");
    for (name, voter) in dropped {
        let role = if *voter { " --control-plane" } else { "" };
        println!("  clusterd join {api_addr} --token TOKEN --data-dir NEW_DIR --name {name}{role}");
    }
}

/// Once this node leads, remove the registrations of the members it dropped.
async fn remove_stale_registrations(node: Arc<RaftNode>, recovered_at: u64) {
    if let Err(e) = node.read_barrier(CLEANUP_WAIT).await {
        tracing::warn!(error = %e, "recover: no leader to remove the dropped members' registrations");
        return;
    }
    let members: BTreeSet<String> = node.members().into_iter().map(|(_, m, _)| m.name).collect();
    let records = match node.store.list(keys::MEMBERS) {
        Ok((kvs, _)) => kvs,
        Err(e) => {
            tracing::warn!(error = %e, "recover: the registrations could not be read");
            return;
        }
    };
    let named: Vec<(String, u64)> =
        records.iter().map(|kv| (kv.key.trim_start_matches(keys::MEMBERS).to_string(), kv.mod_revision)).collect();
    for name in stale_registrations(&named, &members, recovered_at) {
        let key = format!("{}{name}", keys::MEMBERS);
        let rev = records.iter().find(|kv| kv.key == key).map(|kv| kv.mod_revision).unwrap_or(0);
        let txn = Txn { compares: vec![Compare::ModRevision(key.clone(), rev)], success: vec![Op::Delete { key }] };
        match node.propose(Command::Txn(txn), CLEANUP_WAIT).await {
            Ok(_) => tracing::info!(%name, "recover: removed the registration of a dropped member"),
            Err(e) => tracing::warn!(%name, error = %e, "recover: the registration could not be removed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[NodeId]) -> BTreeSet<NodeId> {
        v.iter().copied().collect()
    }

    #[test]
    fn recovery_is_refused_while_a_quorum_answers_unless_forced() {
        use Decision::*;
        type Case<'a> = (&'a [&'a [NodeId]], &'a [NodeId], bool, Decision);
        let table: &[Case] = &[
            // (voter sets, others up, force, decision); the node is 1.
            (&[&[1, 2, 3]], &[], false, Rewrite),
            (&[&[1, 2, 3]], &[2], false, RefuseQuorumUp),
            (&[&[1, 2, 3]], &[2, 3], false, RefuseQuorumUp),
            (&[&[1, 2, 3]], &[2, 3], true, Rewrite),
            (&[&[1, 2, 3, 4, 5]], &[2], false, Rewrite),
            (&[&[1, 2, 3, 4, 5]], &[2, 3], false, RefuseQuorumUp),
            // A learner answering does not make a quorum.
            (&[&[1, 2, 3]], &[4], false, Rewrite),
            (&[&[1]], &[], false, AlreadyAlone),
            (&[&[1]], &[4], true, AlreadyAlone),
            (&[&[2, 3, 4]], &[], false, RefuseNotAVoter),
            (&[&[2, 3, 4]], &[], true, Rewrite),
            // Mid-change: the new set's majority answers.
            (&[&[1, 2, 3], &[1, 4, 5]], &[2, 4], false, RefuseQuorumUp),
            (&[&[1, 2, 3], &[1, 4, 5]], &[2], false, Rewrite),
        ];
        for (configs, up, force, want) in table {
            let configs: Vec<BTreeSet<NodeId>> = configs.iter().map(|c| ids(c)).collect();
            assert_eq!(decide(1, &configs, &ids(up), *force), *want, "{configs:?} up {up:?} force {force}");
        }
    }

    #[test]
    fn only_registrations_of_dropped_members_from_before_the_recovery_are_stale() {
        let members: BTreeSet<String> = ["n1".to_string()].into();
        let records = vec![("n1".to_string(), 5), ("n2".into(), 9), ("n3".into(), 40), ("w1".into(), 12)];
        assert_eq!(stale_registrations(&records, &members, 30), vec!["n2".to_string(), "w1".into()]);
        assert!(stale_registrations(&records, &members, 4).is_empty());
    }
}
