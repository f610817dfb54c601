//! When a node builds a Raft snapshot.
//!
//! A snapshot writes the whole state to a file, so its cost grows with the
//! state while a fixed "every N entries" policy does not: a node holding
//! 100,000 objects and writing 5,000 a second rewrote 50 MB every two seconds
//! with N = 10,000 (and every write meanwhile waited behind it). A snapshot is
//! due once the log since the last one holds at least `every` entries **and**
//! at least as many entries as the state holds objects, so the snapshot work
//! per write stays bounded whatever the state's size (etcd's default of
//! 100,000 entries plays the same part). The log grows to at most about the
//! state's size before it is purged.

use openraft::async_runtime::WatchReceiver;

use crate::storage::StoreReader;
use crate::types::Raft;

/// Whether a snapshot is due: `applied` entries applied, the last snapshot at
/// `snapshot` (none yet: 0), `objects` in the state.
pub fn due(applied: u64, snapshot: u64, every: u64, objects: u64) -> bool {
    let since = applied.saturating_sub(snapshot);
    every > 0 && since >= every && since >= objects
}

/// Follow `raft`'s progress and ask for a snapshot when [`due`] (not again
/// until the one asked for is built or `every` more entries applied).
pub(crate) async fn run(raft: Raft, reader: StoreReader, every: u64) {
    let mut metrics = raft.metrics();
    let mut asked_at: Option<u64> = None;
    loop {
        let (applied, snapshot) = {
            let m = metrics.borrow_watched();
            (m.last_applied.map(|l| l.index).unwrap_or(0), m.snapshot.map(|l| l.index).unwrap_or(0))
        };
        if asked_at.is_some_and(|at| snapshot >= at || applied >= at + every) {
            asked_at = None;
        }
        // The object count is looked up only once the cheap bound is passed.
        if asked_at.is_none() && applied.saturating_sub(snapshot) >= every.max(1) {
            let objects = reader.estimated_objects();
            if due(applied, snapshot, every, objects) {
                tracing::debug!(applied, snapshot, objects, "building a snapshot");
                if raft.trigger().snapshot().await.is_err() {
                    return;
                }
                asked_at = Some(applied);
            }
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::due;

    #[test]
    fn a_snapshot_is_due_after_every_entries_and_no_sooner_than_the_state_is_rewritten() {
        // (applied, last snapshot, every, objects, due)
        let table = [
            (9_999, 0, 10_000, 10, false), // fewer entries than `every`
            (10_000, 0, 10_000, 10, true), // a small state: every 10,000
            (25_000, 15_000, 10_000, 500, true),
            (24_999, 15_000, 10_000, 500, false),
            (60_000, 0, 10_000, 100_000, false), // a big state: not before its size in entries
            (100_000, 0, 10_000, 100_000, true),
            (250_000, 100_000, 10_000, 150_000, true),
            (249_999, 100_000, 10_000, 150_000, false),
            (1_000_000, 0, 0, 0, false), // `every` 0: never
            (5, 10, 1, 0, false),        // a snapshot ahead of applied (just installed)
        ];
        for (applied, snapshot, every, objects, want) in table {
            assert_eq!(due(applied, snapshot, every, objects), want, "{applied} {snapshot} {every} {objects}");
        }
    }
}
