//! Recovery of a member whose cluster lost its quorum for good.
//!
//! When most voters are gone (their hosts and data lost), Raft cannot commit
//! anything, not even a membership change that removes the dead: that needs the
//! quorum that is missing. The way out is outside the protocol: on the stopped
//! survivor, append a membership entry naming it the only voter, under a term
//! no leader ever used, and record a vote for that term. Started again, the
//! node is the only voter of its effective membership, elects itself at once
//! and commits everything in its log — every entry the old cluster committed
//! that reached this node, and the membership entry with them.
//!
//! This is safe only if the old majority really is gone: [`probe`] asks every
//! other member whether it answers, and [`quorum_reachable`] says whether the
//! old cluster could still decide without this node's help.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use openraft::{EntryPayload, Membership};
use rocksdb::{IteratorMode, WriteBatch, WriteOptions, DB};

use crate::codec::{decode, encode};
use crate::pki::Identity;
use crate::rpc::{Request, Response};
use crate::storage::log_store::{io_err, meta, KEY_PURGED, KEY_VOTE};
use crate::storage::state_machine::{meta_get, KEY_MEMBERSHIP};
use crate::storage::{be, cf, open_db, OpenError, CF_LOGS, CF_RAFT_META};
use crate::transport::Transport;
use crate::types::{Entry, LeaderId, LogId, Member, NodeId, StoredMembership, Vote};

/// Recovery could not read or rewrite the store.
#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    /// Another process (the node itself) has the store open.
    #[error("the store at {0} is in use: stop the node first (its containers keep running while it is stopped)")]
    InUse(String),
    /// The store did not open.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The store records no membership: the node never was part of a cluster.
    #[error("the store at {0} records no membership")]
    NoMembership(String),
    /// The node to keep is not in the membership.
    #[error("node {0} is not a member in its own store")]
    NotAMember(NodeId),
    /// Reading or writing the store failed.
    #[error("the store: {0}")]
    Io(#[from] io::Error),
}

/// The membership a stopped store would start with, and where it is recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMembers {
    /// The log id of the entry that set it (`None` before any).
    pub log_id: Option<LogId>,
    /// The voter sets; two while a membership change is half done (joint consensus).
    pub configs: Vec<BTreeSet<NodeId>>,
    /// Every member (voters and learners) with its record.
    pub nodes: BTreeMap<NodeId, Member>,
}

impl StoredMembers {
    /// Every voter, of either config.
    pub fn voters(&self) -> BTreeSet<NodeId> {
        self.configs.iter().flatten().copied().collect()
    }
}

/// A store opened while its node is stopped, to inspect and rewrite its membership.
pub struct StoppedStore {
    db: DB,
    path: PathBuf,
}

impl StoppedStore {
    /// Open the existing store at `path`; a store held open by a running node is
    /// refused with [`RecoverError::InUse`].
    pub fn open(path: &Path) -> Result<StoppedStore, RecoverError> {
        match open_db(path, false) {
            Ok(db) => Ok(StoppedStore { db, path: path.to_path_buf() }),
            Err(OpenError::Db { source, .. }) if is_lock_error(&source) => {
                Err(RecoverError::InUse(path.display().to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The effective membership: the last one in the log, else the state machine's.
    pub fn membership(&self) -> Result<StoredMembers, RecoverError> {
        let applied: StoredMembership =
            meta_get(&self.db, KEY_MEMBERSHIP)?.ok_or_else(|| RecoverError::NoMembership(self.shown()))?;
        let mut effective = applied;
        for item in self.db.iterator_cf(cf(&self.db, CF_LOGS), IteratorMode::End) {
            let (_, raw) = item.map_err(io_err)?;
            let entry: Entry = decode(&raw).map_err(io_err)?;
            if Some(entry.log_id) <= *effective.log_id() {
                break;
            }
            if let EntryPayload::Membership(m) = entry.payload {
                effective = StoredMembership::new(Some(entry.log_id), m);
                break;
            }
        }
        let m = effective.membership();
        if m.nodes().next().is_none() {
            return Err(RecoverError::NoMembership(self.shown()));
        }
        Ok(StoredMembers {
            log_id: *effective.log_id(),
            configs: m.get_joint_config().clone(),
            nodes: m.nodes().map(|(id, n)| (*id, n.clone())).collect(),
        })
    }

    /// Make node `id` the only voter and the only member: append a membership
    /// entry saying so under a fresh term, and vote for `id` in that term, in
    /// one synced write. Returns the new entry's log id.
    pub fn make_single_voter(&self, id: NodeId) -> Result<LogId, RecoverError> {
        let current = self.membership()?;
        let me = current.nodes.get(&id).cloned().ok_or(RecoverError::NotAMember(id))?;
        let vote: Option<Vote> = meta(&self.db, KEY_VOTE)?;
        let last = self.last_log_id()?;
        // Above every term this node has seen, so the entry's id is new to any log.
        let term = vote.map(|v| v.leader_id().term).max(last.map(|l| l.committed_leader_id().term)).unwrap_or(0) + 1;
        let log_id = LogId::new(LeaderId { term, node_id: id }, last.map(|l| l.index + 1).unwrap_or(0));
        let membership = Membership::new(vec![BTreeSet::from([id])], BTreeMap::from([(id, me)]))
            .map_err(|e| RecoverError::Io(io_err(e)))?;
        let entry = Entry { log_id, payload: EntryPayload::Membership(membership) };
        let mut batch = WriteBatch::default();
        batch.put_cf(cf(&self.db, CF_LOGS), be(log_id.index), encode(&entry).map_err(io_err)?);
        batch.put_cf(cf(&self.db, CF_RAFT_META), KEY_VOTE, encode(&Vote::new(term, id)).map_err(io_err)?);
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(batch, &wo).map_err(io_err)?;
        tracing::info!(%log_id, node = id, "recover: this node is now the only voter");
        Ok(log_id)
    }

    fn last_log_id(&self) -> Result<Option<LogId>, RecoverError> {
        match self.db.iterator_cf(cf(&self.db, CF_LOGS), IteratorMode::End).next() {
            Some(item) => {
                let (_, raw) = item.map_err(io_err)?;
                let entry: Entry = decode(&raw).map_err(io_err)?;
                Ok(Some(entry.log_id))
            }
            None => Ok(meta(&self.db, KEY_PURGED)?),
        }
    }

    fn shown(&self) -> String {
        self.path.display().to_string()
    }
}

fn is_lock_error(e: &rocksdb::Error) -> bool {
    e.kind() == rocksdb::ErrorKind::IOError && e.to_string().contains("LOCK")
}

/// Whether the members in `up` can still form a quorum: a majority of every
/// voter set (both, during a membership change).
pub fn quorum_reachable(configs: &[BTreeSet<NodeId>], up: &BTreeSet<NodeId>) -> bool {
    !configs.is_empty() && configs.iter().all(|c| c.intersection(up).count() * 2 > c.len())
}

/// Which of `peers` (id, transport address) answer a request over the cluster
/// transport within `timeout`: a live member of this cluster, not merely an
/// open port. Asked from an endpoint bound on `bind` with this node's identity.
pub async fn probe(
    peers: &[(NodeId, String)],
    bind: SocketAddr,
    ca_pem: &str,
    identity: &Identity,
    timeout: Duration,
) -> Result<BTreeSet<NodeId>, crate::transport::TransportError> {
    let transport = Transport::bind(bind, crate::pki::LiveIdentity::new(ca_pem, identity)?)?;
    let asks = peers.iter().map(|(id, addr)| {
        let transport = &transport;
        async move {
            match transport.call(addr, &Request::Applied, timeout).await {
                Ok(Response::Applied(_)) => Some(*id),
                Ok(other) => {
                    tracing::debug!(peer = id, answer = ?other, "recover: unexpected answer to a probe");
                    None
                }
                Err(e) => {
                    tracing::info!(peer = id, %addr, error = %e, "recover: member does not answer");
                    None
                }
            }
        }
    });
    let up = futures::future::join_all(asks).await.into_iter().flatten().collect();
    transport.close();
    Ok(up)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quorum_is_a_majority_of_every_voter_set() {
        let s = |ids: &[NodeId]| ids.iter().copied().collect::<BTreeSet<_>>();
        // (voter sets, members up, quorum)
        type Case<'a> = (&'a [&'a [NodeId]], &'a [NodeId], bool);
        let table: &[Case] = &[
            // (voter sets, members up, quorum)
            (&[&[1, 2, 3]], &[1], false),
            (&[&[1, 2, 3]], &[1, 2], true),
            (&[&[1, 2, 3]], &[1, 2, 3], true),
            (&[&[1, 2, 3, 4]], &[1, 2], false),
            (&[&[1, 2, 3, 4, 5]], &[1, 4, 5], true),
            (&[&[1, 2, 3, 4, 5]], &[1, 2], false),
            (&[&[1]], &[1], true),
            (&[&[1]], &[], false),
            // Joint: a majority of the old set is not enough without one of the new.
            (&[&[1, 2, 3], &[1, 4, 5]], &[1, 2], false),
            (&[&[1, 2, 3], &[1, 4, 5]], &[1, 2, 4], true),
            (&[], &[1], false),
        ];
        for (configs, up, want) in table {
            let configs: Vec<BTreeSet<NodeId>> = configs.iter().map(|c| s(c)).collect();
            assert_eq!(quorum_reachable(&configs, &s(up)), *want, "configs {configs:?}, up {up:?}");
        }
    }
}
