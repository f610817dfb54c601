//! Following who leads, without openraft's types: the application (controllers,
//! the leader lookup of its API) asks "who leads now" and waits for a change.
//!
//! It follows openraft's server metrics, which change only on a vote, leader or
//! membership change — not on every write, as the full metrics do.

use openraft::alias::WatchReceiverOf;
use openraft::async_runtime::WatchReceiver;
use openraft::metrics::RaftServerMetrics;

use crate::types::{NodeId, TypeConfig};

/// A follower of the leadership seen by one node.
pub struct LeaderWatch {
    rx: WatchReceiverOf<TypeConfig, RaftServerMetrics<TypeConfig>>,
}

impl LeaderWatch {
    pub(crate) fn new(rx: WatchReceiverOf<TypeConfig, RaftServerMetrics<TypeConfig>>) -> Self {
        LeaderWatch { rx }
    }

    /// The leader as this node knows it now; later changes wake [`LeaderWatch::changed`].
    pub fn leader(&mut self) -> Option<NodeId> {
        self.rx.borrow_and_update().current_leader
    }

    /// Wait until the server state changes (the leader may be the same); false
    /// once the node's Raft has stopped.
    pub async fn changed(&mut self) -> bool {
        self.rx.changed().await.is_ok()
    }

    /// Wait until the leader is not `leader`; false once Raft has stopped.
    pub async fn until_not(&mut self, leader: Option<NodeId>) -> bool {
        loop {
            if self.rx.borrow_and_update().current_leader != leader {
                return true;
            }
            if !self.changed().await {
                return false;
            }
        }
    }
}
