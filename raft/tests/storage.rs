//! The RocksDB storage: openraft's conformance suite, and the store semantics
//! (compare-and-swap, transactions, history, watch, compaction) checked through
//! the state machine directly.

use std::time::Duration;

use clusterd_raft::storage::{self, Export, Import, ImportError, LogStore, StateMachine};
use clusterd_raft::types::{Entry, LeaderId, LogId, StorageError, TypeConfig};
use clusterd_raft::{Command, Compare, EventKind, KeyValue, Member, Op, Txn, WatchItem};
use futures::StreamExt;
use openraft::storage::RaftStateMachine;
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::EntryPayload;
use tempfile::TempDir;

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let (log, sm, _) = storage::open(dir.path()).expect("open store");
        Ok((dir, log, sm))
    }
}

#[tokio::test]
async fn openraft_conformance_suite() {
    Suite::test_all(Builder).await.expect("storage passes the openraft suite");
}

fn log_id(term: u64, node_id: u64, index: u64) -> LogId {
    LogId::new(LeaderId { term, node_id }, index)
}

fn entry(index: u64, cmd: Command) -> Entry {
    Entry { log_id: log_id(1, 1, index), payload: EntryPayload::Normal(cmd) }
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
    let r = sm.apply_batch(vec![entry(1, create("/a", "1")), entry(2, create("/a", "2"))]).unwrap();
    assert!(r[0].succeeded);
    assert_eq!(r[1].failed_compare, Some(0), "a second create of the same key fails");
    assert_eq!(r[1].current.as_ref().unwrap().mod_revision, 1);
    // Update at the right revision succeeds, at a stale one fails.
    let update = |rev: u64, v: &str| {
        Command::Txn(Txn { compares: vec![Compare::ModRevision("/a".into(), rev)], success: vec![put("/a", v)] })
    };
    let r = sm.apply_batch(vec![entry(3, update(1, "3")), entry(4, update(1, "4"))]).unwrap();
    assert!(r[0].succeeded);
    assert!(!r[1].succeeded);
    let a = reader.get("/a").unwrap().unwrap();
    assert_eq!((a.value.as_slice(), a.create_revision, a.mod_revision), (&b"3"[..], 1, 3));
    // A transaction writes all or nothing.
    let txn = Command::Txn(Txn {
        compares: vec![Compare::Exists("/missing".into())],
        success: vec![put("/b", "x"), put("/c", "y")],
    });
    let r = sm.apply_batch(vec![entry(5, txn)]).unwrap();
    assert!(!r[0].succeeded);
    assert!(reader.get("/b").unwrap().is_none());
    let txn = Command::Txn(Txn::ops(vec![put("/b", "x"), put("/c", "y"), Op::Delete { key: "/a".into() }]));
    sm.apply_batch(vec![entry(6, txn)]).unwrap();
    let (items, rev) = reader.list("/").unwrap();
    assert_eq!(rev, 6);
    assert_eq!(items.iter().map(|kv| kv.key.as_str()).collect::<Vec<_>>(), vec!["/b", "/c"]);
}

#[tokio::test]
async fn watch_replays_history_then_follows_and_compaction_answers_gone() {
    let dir = tempfile::tempdir().unwrap();
    let (_log, mut sm, reader) = storage::open(dir.path()).unwrap();
    for i in 1..=5u64 {
        sm.apply_batch(vec![entry(i, Command::Txn(Txn::ops(vec![put(&format!("/k/{i}"), "v")])))]).unwrap();
    }
    sm.apply_batch(vec![entry(6, Command::Txn(Txn::ops(vec![put("/other", "v")])))]).unwrap();
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
    sm.apply_batch(vec![entry(7, Command::Txn(Txn::ops(vec![Op::Delete { key: "/k/1".into() }])))]).unwrap();
    match tokio::time::timeout(Duration::from_secs(5), w.next()).await.unwrap().unwrap().unwrap() {
        WatchItem::Event(e) => {
            assert_eq!((e.revision, e.kind, e.kv.key.as_str()), (7, EventKind::Delete, "/k/1"));
        }
        other => panic!("unexpected {other:?}"),
    }
    // Compact through revision 4: a watch from 3 is gone, from 4 is fine.
    sm.apply_batch(vec![entry(8, Command::Compact(4))]).unwrap();
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
    sm.apply_batch(vec![entry(1, Command::Txn(txn))]).unwrap();
    sm.apply_batch(vec![entry(2, Command::Txn(Txn::ops(vec![put("/c/1", "w")])))]).unwrap();
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
        sm.apply_batch(vec![entry(rev, Command::Txn(Txn::ops(vec![put(&format!("/s/{i}"), "v")])))]).unwrap();
    }
    for i in 0..1500u64 {
        match next_item(&mut slow).await {
            WatchItem::Event(e) => assert_eq!((e.revision, e.kv.key), (3 + i, format!("/s/{i}"))),
            other => panic!("unexpected {other:?}"),
        }
    }
    // Nothing else reached a's watch: its next item is the next change under /a/.
    sm.apply_batch(vec![entry(1503, Command::Txn(Txn::ops(vec![put("/a/3", "v")])))]).unwrap();
    assert_eq!(keys(vec![next_item(&mut a).await]), vec![(1503, "/a/3".to_string())]);
}

#[tokio::test]
async fn state_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    // Term, leader and index all differ, so a log id read back wrongly shows.
    let log_id = log_id(3, 2, 27);
    {
        let (_log, mut sm, _reader) = storage::open(dir.path()).unwrap();
        let e = Entry { log_id, payload: EntryPayload::Normal(Command::Txn(Txn::ops(vec![put("/x", "1")]))) };
        sm.apply_batch(vec![e]).unwrap();
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
    let r = sm.apply_batch(vec![entry(1, once.clone()), entry(2, once.clone())]).unwrap();
    assert!(r[0].succeeded && r[1].succeeded, "a retry is not a failed create");
    assert_eq!((r[0].revision, r[1].revision), (1, 1));
    let r = sm.apply_batch(vec![entry(3, once.clone())]).unwrap();
    assert_eq!(r[0].revision, 1);
    assert_eq!(reader.get("/u").unwrap().unwrap().mod_revision, 1);
    // Another id is another transaction: its create fails on the existing key.
    let r = sm.apply_batch(vec![entry(4, Command::Unique { id: 43, txn })]).unwrap();
    assert_eq!(r[0].failed_compare, Some(0));
    // Compaction forgets ids at or below it.
    sm.apply_batch(vec![entry(5, Command::Compact(2))]).unwrap();
    let r = sm.apply_batch(vec![entry(6, once)]).unwrap();
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
    a.apply_batch(vec![entry(1, once.clone()), entry(2, Command::Txn(Txn::ops(vec![put("/t", "2")])))]).unwrap();
    let snap = a.get_snapshot_builder().await.build_snapshot().await.unwrap();
    b.install_snapshot(&snap.meta, snap.snapshot).await.unwrap();
    assert_eq!(rb.revision(), 2);
    assert_eq!(rb.get("/t").unwrap().unwrap().value, b"2");
    assert_eq!(rb.compacted(), 2, "history before the snapshot is not on the new node");
    // A retry of the first write reaching the new node gets the first answer.
    let r = b.apply_batch(vec![entry(3, once)]).unwrap();
    assert!(r[0].succeeded);
    assert_eq!(r[0].revision, 1);
    assert_eq!(rb.get("/s").unwrap().unwrap().mod_revision, 1);
}

/// A log append is written without a sync: it is readable as soon as `append`
/// returns, and reported durable later by the store's sync thread, which syncs
/// once for every append pending. Everything reported is there after a reopen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_are_readable_at_once_and_survive_a_reopen_once_reported_durable() {
    use openraft::storage::{IOFlushed, RaftLogReader, RaftLogStorage};
    use openraft::type_config::TypeConfigExt;
    let dir = tempfile::tempdir().unwrap();
    let n = 300u64;
    {
        let (mut log, _sm, _reader) = storage::open(dir.path()).unwrap();
        let mut reader = log.get_log_reader().await;
        let mut reports = Vec::new();
        for i in 1..=n {
            let (tx, rx) = TypeConfig::oneshot();
            let e = entry(i, Command::Txn(Txn::ops(vec![put(&format!("/k/{i}"), "v")])));
            log.append([e], IOFlushed::signal(tx)).await.unwrap();
            let read = reader.try_get_log_entries(i..=i).await.unwrap();
            assert_eq!(read.len(), 1, "entry {i} is readable when append returns");
            reports.push(rx);
        }
        for rx in reports {
            rx.await.expect("the sync thread reports every append").expect("durable");
        }
        eprintln!("{n} appends made durable by {} WAL syncs", log.syncs());
        assert!(log.syncs() >= 1 && log.syncs() <= n);
    }
    let (mut log, _sm, _reader) = storage::open(dir.path()).unwrap();
    let mut reader = log.get_log_reader().await;
    let all = reader.try_get_log_entries(1..=n).await.unwrap();
    assert_eq!(all.iter().map(|e| e.log_id.index).collect::<Vec<_>>(), (1..=n).collect::<Vec<_>>());
}

/// A stopped node whose applying lagged its log (entries committed, not yet
/// applied when it stopped) is read as it will serve: `open_caught_up`
/// applies what its log records as committed, and no more.
#[tokio::test]
async fn a_stopped_store_read_caught_up_shows_its_committed_entries_and_no_uncommitted_one() {
    use openraft::storage::{IOFlushed, RaftLogStorage};
    use openraft::type_config::TypeConfigExt;
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut log, mut sm, _reader) = storage::open(dir.path()).unwrap();
        let e1 = entry(1, Command::Txn(Txn::ops(vec![put("/a", "1")])));
        sm.apply_batch(vec![e1.clone()]).unwrap();
        let e2 = entry(2, Command::Txn(Txn::ops(vec![put("/ca", "key")])));
        let e3 = entry(3, Command::Txn(Txn::ops(vec![put("/late", "x")])));
        let (tx, rx) = TypeConfig::oneshot();
        log.append([e1, e2, e3], IOFlushed::signal(tx)).await.unwrap();
        rx.await.unwrap().unwrap();
        log.save_committed(Some(log_id(1, 1, 2))).await.unwrap();
    }
    let reader = storage::open(dir.path()).unwrap().2;
    assert!(reader.get("/ca").unwrap().is_none(), "a plain open shows only what was applied");
    drop(reader);
    let reader = storage::open_caught_up(dir.path()).unwrap();
    assert_eq!(reader.revision(), 2);
    assert_eq!(reader.get("/ca").unwrap().unwrap().value, b"key");
    assert!(reader.get("/late").unwrap().is_none(), "an entry not known committed is not applied");
    drop(reader);
    let reader = storage::open_caught_up(dir.path()).unwrap();
    assert_eq!(reader.revision(), 2, "a second read applies nothing twice");
    assert_eq!(reader.get("/ca").unwrap().unwrap().mod_revision, 2);
}

/// Rewrite (or remove) the format record of a closed store, as another build would have left it.
fn set_format_record(path: &std::path::Path, format: Option<u32>) {
    let cfs = rocksdb::DB::list_cf(&rocksdb::Options::default(), path).unwrap();
    let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), path, cfs).unwrap();
    let meta = db.cf_handle("raft_meta").unwrap();
    match format {
        None => db.delete_cf(meta, b"format").unwrap(),
        Some(f) => db.put_cf(meta, b"format", f.to_be_bytes()).unwrap(),
    }
}

#[test]
fn a_store_of_another_format_is_refused_with_what_to_do_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (_log, mut sm, _reader) = storage::open(dir.path()).unwrap();
        sm.apply_batch(vec![entry(1, Command::Txn(Txn::ops(vec![put("/x", "1")])))]).unwrap();
    }
    drop(storage::open(dir.path()).expect("a store of this build's format reopens"));

    // A store from before formats were recorded holds data but no record.
    set_format_record(dir.path(), None);
    let refused = storage::open(dir.path()).err().expect("an unrecorded store with data is refused").to_string();
    for part in ["format 1", "openraft 0.9", "reads only format 2", "clusterd join"] {
        assert!(refused.contains(part), "{part:?} missing from: {refused}");
    }
    set_format_record(dir.path(), Some(storage::format::FORMAT + 1));
    let refused = storage::open(dir.path()).err().expect("a newer store is refused").to_string();
    assert!(refused.contains("a newer clusterd"), "{refused}");

    // Refusing read and wrote nothing: with its record back, the data is there.
    set_format_record(dir.path(), Some(storage::format::FORMAT));
    let (_log, _sm, reader) = storage::open(dir.path()).unwrap();
    assert_eq!(reader.get("/x").unwrap().unwrap().value, b"1");
}

#[tokio::test]
async fn an_export_imported_elsewhere_is_a_store_at_its_revision_with_one_voter() {
    let src = tempfile::tempdir().unwrap();
    let (_log, mut sm, reader) = storage::open(src.path()).unwrap();
    let cmd = |ops: Vec<Op>| Command::Txn(Txn::ops(ops));
    let del = |k: &str| Op::Delete { key: k.into() };
    sm.apply_batch(vec![
        entry(1, cmd(vec![put("/a", "1"), put("/skip/x", "s")])),
        entry(2, cmd(vec![put("/b", "2"), put("/c", "3")])),
        entry(3, cmd(vec![put("/a", "4"), del("/c")])),
        entry(4, cmd(vec![])),
    ])
    .unwrap();

    // Tiny chunks: every key comes in its own, after the count.
    let mut items = Vec::new();
    reader
        .export(&["/skip/"], 1, |e| {
            items.push(e);
            true
        })
        .unwrap();
    assert_eq!(items[0], Export::Start { revision: 4, keys: 2 });
    let kvs: Vec<KeyValue> = items[1..]
        .iter()
        .flat_map(|e| match e {
            Export::Keys(k) => k.clone(),
            other => panic!("{other:?} after the start"),
        })
        .collect();
    assert_eq!(items.len(), 3, "one chunk per key");
    assert_eq!(kvs, reader.list("/").unwrap().0.into_iter().filter(|kv| kv.key != "/skip/x").collect::<Vec<_>>());
    let a = &kvs[0];
    assert_eq!((a.key.as_str(), a.create_revision, a.mod_revision), ("/a", 1, 3));

    let dst = tempfile::tempdir().unwrap();
    let path = dst.path().join("db");
    let mut import = Import::create(&path, 4).unwrap();
    for kv in kvs.clone() {
        import.put(kv).unwrap();
    }
    let member = Member { name: "r".into(), raft_addr: "127.0.0.1:1".into(), api_addr: "127.0.0.1:2".into() };
    assert_eq!(import.finish(7, member.clone()).unwrap(), 2);

    let (_log, mut sm, reader) = storage::open(&path).unwrap();
    let (applied, membership) = sm.applied_state().await.unwrap();
    assert_eq!(applied.map(|l| l.index), Some(4));
    assert_eq!(membership.membership().voter_ids().collect::<Vec<_>>(), vec![7]);
    assert_eq!(membership.membership().get_node(&7), Some(&member));
    assert_eq!(reader.list("/").unwrap(), (kvs, 4));
    assert_eq!(reader.compacted(), 4, "the history before the import is gone");
    let r = sm.apply_batch(vec![entry(5, cmd(vec![put("/a", "5")]))]).unwrap();
    assert_eq!(r[0].revision, 5);
    let a = reader.get("/a").unwrap().unwrap();
    assert_eq!((a.create_revision, a.mod_revision), (1, 5), "revisions go on from the import's");

    // Refusals: a used directory, a key newer than the export, impossible revisions.
    assert!(matches!(Import::create(&path, 4), Err(ImportError::NotEmpty(_))));
    let mut import = Import::create(&dst.path().join("other"), 4).unwrap();
    let kv = |create, modified| KeyValue {
        key: "/k".into(),
        value: vec![],
        create_revision: create,
        mod_revision: modified,
    };
    assert!(matches!(import.put(kv(1, 5)), Err(ImportError::Revision { mod_revision: 5, revision: 4, .. })));
    assert!(matches!(import.put(kv(3, 2)), Err(ImportError::Revisions(_))));
    assert!(matches!(import.put(kv(0, 2)), Err(ImportError::Revisions(_))));
}

/// The process's peak resident set since the last reset, and its current one, in MiB.
fn peak_and_now_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse::<f64>().unwrap() / 1024.0
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// Figures: building and installing a snapshot of 100,000 keys of 512 bytes,
/// and how much the process's peak memory grows meanwhile (the state is ~55 MiB).
/// `target/debug/deps/storage-* snapshot_figures --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: 100,000 keys"]
async fn snapshot_figures_for_100k_keys() {
    use openraft::storage::RaftSnapshotBuilder;
    const KEYS: u64 = 100_000;
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_la, mut a, _ra) = storage::open(a_dir.path()).unwrap();
    let (_lb, mut b, rb) = storage::open(b_dir.path()).unwrap();
    let value = "x".repeat(512);
    for chunk in (1..=KEYS).collect::<Vec<_>>().chunks(1000) {
        let entries = chunk
            .iter()
            .map(|i| {
                entry(*i, Command::Txn(Txn::ops(vec![put(&format!("/registry/configmaps/default/cm-{i}"), &value)])))
            })
            .collect();
        a.apply_batch(entries).unwrap();
    }
    let reset = || std::fs::write("/proc/self/clear_refs", "5").unwrap();
    reset();
    let (_, before) = peak_and_now_mib();
    let began = std::time::Instant::now();
    let snap = a.get_snapshot_builder().await.build_snapshot().await.unwrap();
    let build = began.elapsed();
    let (peak_build, _) = peak_and_now_mib();
    let size =
        std::fs::read_dir(a_dir.path().join("snapshots")).unwrap().next().unwrap().unwrap().metadata().unwrap().len();
    // The network still sends snapshots whole: the receiver starts from the bytes.
    let bytes = snap.snapshot.into_bytes().unwrap();
    reset();
    let (_, before_install) = peak_and_now_mib();
    let began = std::time::Instant::now();
    b.install_snapshot(&snap.meta, storage::SnapshotData::from_bytes(bytes)).await.unwrap();
    let install = began.elapsed();
    let (peak_install, _) = peak_and_now_mib();
    assert_eq!(rb.revision(), KEYS);
    eprintln!(
        "FIGURES snapshot of {KEYS} keys x 512 B: file {:.1} MiB; build {:.2}s, peak RSS +{:.1} MiB over {:.1} MiB; \
         install (from bytes in memory) {:.2}s, peak RSS +{:.1} MiB over {:.1} MiB",
        size as f64 / (1 << 20) as f64,
        build.as_secs_f64(),
        peak_build - before,
        before,
        install.as_secs_f64(),
        peak_install - before_install,
        before_install
    );
}
