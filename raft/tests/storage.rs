//! The RocksDB storage: openraft's conformance suite, and the store semantics
//! (compare-and-swap, transactions, history, watch, compaction) checked through
//! the state machine directly.

use std::time::Duration;

use clusterd_raft::storage::{self, LogStore, StateMachine};
use clusterd_raft::types::{Entry, StorageError, TypeConfig};
use clusterd_raft::{Command, Compare, EventKind, Op, Txn, WatchItem};
use futures::StreamExt;
use openraft::storage::RaftStateMachine;
use openraft::testing::{StoreBuilder, Suite};
use openraft::{CommittedLeaderId, EntryPayload, LogId};
use tempfile::TempDir;

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let (log, sm, _) = storage::open(dir.path()).expect("open store");
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_conformance_suite() {
    Suite::test_all(Builder).expect("storage passes the openraft suite");
}

fn entry(index: u64, cmd: Command) -> Entry {
    Entry { log_id: LogId::new(CommittedLeaderId::new(1, 1), index), payload: EntryPayload::Normal(cmd) }
}

fn put(key: &str, value: &str) -> Op {
    Op::Put { key: key.into(), value: value.as_bytes().to_vec() }
}

#[tokio::test]
async fn compare_and_swap_and_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let (_log, mut sm, reader) = storage::open(dir.path()).unwrap();
    // Create only if absent.
    let create = |k: &str, v: &str| {
        Command::Txn(Txn { compares: vec![Compare::ModRevision(k.into(), 0)], success: vec![put(k, v)] })
    };
    let r = sm.apply(vec![entry(1, create("/a", "1")), entry(2, create("/a", "2"))]).await.unwrap();
    assert!(r[0].succeeded);
    assert_eq!(r[1].failed_compare, Some(0), "a second create of the same key fails");
    assert_eq!(r[1].current.as_ref().unwrap().mod_revision, 1);
    // Update at the right revision succeeds, at a stale one fails.
    let update = |rev: u64, v: &str| {
        Command::Txn(Txn { compares: vec![Compare::ModRevision("/a".into(), rev)], success: vec![put("/a", v)] })
    };
    let r = sm.apply(vec![entry(3, update(1, "3")), entry(4, update(1, "4"))]).await.unwrap();
    assert!(r[0].succeeded);
    assert!(!r[1].succeeded);
    let a = reader.get("/a").unwrap().unwrap();
    assert_eq!((a.value.as_slice(), a.create_revision, a.mod_revision), (&b"3"[..], 1, 3));
    // A transaction writes all or nothing.
    let txn = Command::Txn(Txn {
        compares: vec![Compare::Exists("/missing".into())],
        success: vec![put("/b", "x"), put("/c", "y")],
    });
    let r = sm.apply(vec![entry(5, txn)]).await.unwrap();
    assert!(!r[0].succeeded);
    assert!(reader.get("/b").unwrap().is_none());
    let txn = Command::Txn(Txn::ops(vec![put("/b", "x"), put("/c", "y"), Op::Delete { key: "/a".into() }]));
    sm.apply(vec![entry(6, txn)]).await.unwrap();
    let (items, rev) = reader.list("/").unwrap();
    assert_eq!(rev, 6);
    assert_eq!(items.iter().map(|kv| kv.key.as_str()).collect::<Vec<_>>(), vec!["/b", "/c"]);
}

#[tokio::test]
async fn watch_replays_history_then_follows_and_compaction_answers_gone() {
    let dir = tempfile::tempdir().unwrap();
    let (_log, mut sm, reader) = storage::open(dir.path()).unwrap();
    for i in 1..=5u64 {
        sm.apply(vec![entry(i, Command::Txn(Txn::ops(vec![put(&format!("/k/{i}"), "v")])))]).await.unwrap();
    }
    sm.apply(vec![entry(6, Command::Txn(Txn::ops(vec![put("/other", "v")])))]).await.unwrap();
    // From revision 2: history 3, 4, 5 under /k/, then a live event.
    let mut w = reader.watch("/k/".into(), 2, None);
    let mut seen = Vec::new();
    for _ in 0..3 {
        match tokio::time::timeout(Duration::from_secs(5), w.next()).await.unwrap().unwrap().unwrap() {
            WatchItem::Event(e) => seen.push(e.revision),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, vec![3, 4, 5]);
    sm.apply(vec![entry(7, Command::Txn(Txn::ops(vec![Op::Delete { key: "/k/1".into() }])))]).await.unwrap();
    match tokio::time::timeout(Duration::from_secs(5), w.next()).await.unwrap().unwrap().unwrap() {
        WatchItem::Event(e) => {
            assert_eq!((e.revision, e.kind, e.kv.key.as_str()), (7, EventKind::Delete, "/k/1"));
        }
        other => panic!("unexpected {other:?}"),
    }
    // Compact through revision 4: a watch from 3 is gone, from 4 is fine.
    sm.apply(vec![entry(8, Command::Compact(4))]).await.unwrap();
    assert_eq!(reader.compacted(), 4);
    let mut old = reader.watch("/k/".into(), 3, None);
    let gone = tokio::time::timeout(Duration::from_secs(5), old.next()).await.unwrap().unwrap();
    assert_eq!(gone.unwrap_err().compacted, 4);
    let mut ok = reader.watch("/k/".into(), 4, None);
    match tokio::time::timeout(Duration::from_secs(5), ok.next()).await.unwrap().unwrap().unwrap() {
        WatchItem::Event(e) => assert_eq!(e.revision, 5),
        other => panic!("unexpected {other:?}"),
    }
}

async fn next_item(w: &mut (impl futures::Stream<Item = Result<WatchItem, storage::Gone>> + Unpin)) -> WatchItem {
    tokio::time::timeout(Duration::from_secs(5), w.next()).await.expect("a watch item in time").unwrap().unwrap()
}

#[tokio::test]
async fn live_watches_get_every_event_of_a_transaction_under_their_prefix_and_catch_up_when_behind() {
    let dir = tempfile::tempdir().unwrap();
    let (_log, mut sm, reader) = storage::open(dir.path()).unwrap();
    let mut a = reader.watch("/a/".into(), 0, None);
    let mut b = reader.watch("/b/".into(), 0, Some(Duration::from_millis(100)));
    // Let both register before anything is applied: a bookmark proves b's has.
    assert_eq!(next_item(&mut b).await, WatchItem::Progress(0));
    // One transaction touching both prefixes: three events sharing revision 1.
    let txn = Txn::ops(vec![put("/a/1", "x"), put("/b/1", "y"), put("/a/2", "z")]);
    sm.apply(vec![entry(1, Command::Txn(txn))]).await.unwrap();
    sm.apply(vec![entry(2, Command::Txn(Txn::ops(vec![put("/c/1", "w")])))]).await.unwrap();
    let keys = |items: Vec<WatchItem>| -> Vec<(u64, String)> {
        items
            .into_iter()
            .map(|i| match i {
                WatchItem::Event(e) => (e.revision, e.kv.key),
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    };
    let got_a = keys(vec![next_item(&mut a).await, next_item(&mut a).await]);
    assert_eq!(got_a, vec![(1, "/a/1".to_string()), (1, "/a/2".to_string())]);
    assert_eq!(keys(vec![next_item(&mut b).await]), vec![(1, "/b/1".to_string())]);
    // Revision 2 concerns neither; b's next bookmark still moves past it.
    assert_eq!(next_item(&mut b).await, WatchItem::Progress(2));
    // A watch nobody reads falls behind the live feed and catches up from history.
    let mut slow = reader.watch("/s/".into(), 2, None);
    for i in 0..1500u64 {
        let rev = 3 + i;
        sm.apply(vec![entry(rev, Command::Txn(Txn::ops(vec![put(&format!("/s/{i}"), "v")])))]).await.unwrap();
    }
    for i in 0..1500u64 {
        match next_item(&mut slow).await {
            WatchItem::Event(e) => assert_eq!((e.revision, e.kv.key), (3 + i, format!("/s/{i}"))),
            other => panic!("unexpected {other:?}"),
        }
    }
    // Nothing else reached a's watch: its next item is the next change under /a/.
    sm.apply(vec![entry(1503, Command::Txn(Txn::ops(vec![put("/a/3", "v")])))]).await.unwrap();
    assert_eq!(keys(vec![next_item(&mut a).await]), vec![(1503, "/a/3".to_string())]);
}

#[tokio::test]
async fn state_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    // Term, leader and index all differ, so a log id read back wrongly shows.
    let log_id = LogId::new(CommittedLeaderId::new(3, 2), 27);
    {
        let (_log, mut sm, _reader) = storage::open(dir.path()).unwrap();
        let e = Entry { log_id, payload: EntryPayload::Normal(Command::Txn(Txn::ops(vec![put("/x", "1")]))) };
        sm.apply(vec![e]).await.unwrap();
    }
    let (_log, mut sm, reader) = storage::open(dir.path()).unwrap();
    assert_eq!(reader.revision(), 27);
    assert_eq!(reader.get("/x").unwrap().unwrap().value, b"1");
    let (applied, _) = sm.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id), "the applied log id survives a reopen exactly");
}

#[tokio::test]
async fn a_unique_transaction_applies_once() {
    let dir = tempfile::tempdir().unwrap();
    let (_log, mut sm, reader) = storage::open(dir.path()).unwrap();
    let txn = Txn { compares: vec![Compare::ModRevision("/u".into(), 0)], success: vec![put("/u", "1")] };
    let once = Command::Unique { id: 42, txn: txn.clone() };
    // The retry lands in the same batch and in a later one: both get the first answer.
    let r = sm.apply(vec![entry(1, once.clone()), entry(2, once.clone())]).await.unwrap();
    assert!(r[0].succeeded && r[1].succeeded, "a retry is not a failed create");
    assert_eq!((r[0].revision, r[1].revision), (1, 1));
    let r = sm.apply(vec![entry(3, once.clone())]).await.unwrap();
    assert_eq!(r[0].revision, 1);
    assert_eq!(reader.get("/u").unwrap().unwrap().mod_revision, 1);
    // Another id is another transaction: its create fails on the existing key.
    let r = sm.apply(vec![entry(4, Command::Unique { id: 43, txn })]).await.unwrap();
    assert_eq!(r[0].failed_compare, Some(0));
    // Compaction forgets ids at or below it.
    sm.apply(vec![entry(5, Command::Compact(2))]).await.unwrap();
    let r = sm.apply(vec![entry(6, once)]).await.unwrap();
    assert_eq!(r[0].failed_compare, Some(0), "a forgotten id applies again (and here fails its compare)");
}

#[tokio::test]
async fn snapshots_carry_data_and_unique_ids_to_another_node() {
    use openraft::storage::RaftSnapshotBuilder;
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_la, mut a, _ra) = storage::open(a_dir.path()).unwrap();
    let (_lb, mut b, rb) = storage::open(b_dir.path()).unwrap();
    let txn = Txn { compares: vec![Compare::ModRevision("/s".into(), 0)], success: vec![put("/s", "1")] };
    let once = Command::Unique { id: 7, txn };
    a.apply(vec![entry(1, once.clone()), entry(2, Command::Txn(Txn::ops(vec![put("/t", "2")])))]).await.unwrap();
    let snap = a.get_snapshot_builder().await.build_snapshot().await.unwrap();
    b.install_snapshot(&snap.meta, snap.snapshot).await.unwrap();
    assert_eq!(rb.revision(), 2);
    assert_eq!(rb.get("/t").unwrap().unwrap().value, b"2");
    assert_eq!(rb.compacted(), 2, "history before the snapshot is not on the new node");
    // A retry of the first write reaching the new node gets the first answer.
    let r = b.apply(vec![entry(3, once)]).await.unwrap();
    assert!(r[0].succeeded);
    assert_eq!(r[0].revision, 1);
    assert_eq!(rb.get("/s").unwrap().unwrap().mod_revision, 1);
}
