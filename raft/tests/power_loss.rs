//! A store cut off like a power cut: in the `power-loss` mode
//! (`CLUSTERD_FAILPOINT=power-loss`) RocksDB keeps unsynced writes in the
//! process, so a `kill -9` loses them. The store runs in a child process (this
//! test binary started again on this test) that appends and applies without
//! waiting for its syncs, and is killed mid-stream; the reopened store must
//! hold every append it reported durable, without a gap, and a state machine
//! that is exactly the log applied up to its applied index.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command as Process, Stdio};
use std::time::{Duration, Instant};

use clusterd_raft::storage::{self, failpoint};
use clusterd_raft::types::{Entry, LeaderId, LogId, TypeConfig};
use clusterd_raft::{Command, Op, Txn};
use openraft::storage::{IOFlushed, RaftLogReader, RaftLogStorage, RaftStateMachine};
use openraft::type_config::TypeConfigExt;
use openraft::EntryPayload;

/// Set in the child: the store directory it writes.
const CHILD: &str = "CLUSTERD_TEST_POWER_LOSS_STORE";
/// This test's name, to start the child on it.
const NAME: &str = "a_store_cut_off_between_unsynced_appends_and_their_sync_reopens_without_gap_or_double_apply";

fn entry(index: u64) -> Entry {
    let op = Op::Put { key: format!("/k/{index:08}"), value: index.to_string().into_bytes() };
    Entry {
        log_id: LogId::new(LeaderId { term: 1, node_id: 1 }, index),
        payload: EntryPayload::Normal(Command::Txn(Txn::ops(vec![op]))),
    }
}

/// The child: append one entry after another without waiting for their
/// syncs, print `durable <index>` as each is reported durable, and apply the
/// entries a few behind the last appended (as a follower applies what the
/// leader's majority committed, synced here or not), until killed.
async fn child(dir: &Path) {
    let (mut log, mut sm, _reader) = storage::open(dir).expect("open the store");
    let mut last = log.get_log_state().await.unwrap().last_log_id.map(|l| l.index).unwrap_or(0);
    let mut applied = sm.applied_state().await.unwrap().0.map(|l| l.index).unwrap_or(0);
    loop {
        last += 1;
        let (tx, rx) = TypeConfig::oneshot();
        log.append([entry(last)], IOFlushed::signal(tx)).await.unwrap();
        println!("appended {last}");
        let index = last;
        tokio::spawn(async move {
            if let Ok(Ok(())) = rx.await {
                println!("durable {index}");
            }
        });
        if last > applied + 4 {
            sm.apply_batch((applied + 1..=last - 2).map(entry).collect()).unwrap();
            applied = last - 2;
        }
        tokio::task::yield_now().await;
    }
}

/// Start the child on `dir`, kill it (SIGKILL) once it reported `durable`
/// more entries durable; return the highest index it reported durable and
/// the highest it appended.
fn run_and_kill(dir: &Path, durable: u64) -> (u64, u64) {
    let exe = std::env::current_exe().unwrap();
    let mut proc = Process::new(exe)
        .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD, dir)
        .env(failpoint::ENV, failpoint::POWER_LOSS)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the child");
    let out = BufReader::new(proc.stdout.take().unwrap());
    let (mut highest, mut appended, mut seen) = (0, 0, 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    for line in out.lines() {
        let line = line.unwrap();
        if let Some(index) = line.strip_prefix("appended ") {
            appended = appended.max(index.parse::<u64>().unwrap());
        }
        if let Some(index) = line.strip_prefix("durable ") {
            highest = highest.max(index.parse::<u64>().unwrap());
            seen += 1;
            if seen >= durable {
                break;
            }
        }
        assert!(Instant::now() < deadline, "the child reported {seen} durable appends in 30 s");
    }
    proc.kill().unwrap();
    proc.wait().unwrap();
    assert!(seen >= durable, "the child stopped after {seen} durable appends");
    (highest, appended)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_cut_off_between_unsynced_appends_and_their_sync_reopens_without_gap_or_double_apply() {
    if let Some(dir) = std::env::var_os(CHILD) {
        return child(Path::new(&dir)).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut lost = Vec::new();
    for round in 1..=4u64 {
        let (durable, appended) = tokio::task::block_in_place(|| run_and_kill(dir.path(), 300 * round));
        let (mut log, mut sm, reader) = storage::open(dir.path()).unwrap();
        let last = log.get_log_state().await.unwrap().last_log_id.map(|l| l.index).unwrap_or(0);
        assert!(last >= durable, "round {round}: entry {durable} was reported durable, the log ends at {last}");
        let entries = log.get_log_reader().await.try_get_log_entries(1..=last).await.unwrap();
        let indexes: Vec<u64> = entries.iter().map(|e| e.log_id.index).collect();
        assert_eq!(indexes, (1..=last).collect::<Vec<_>>(), "round {round}: the log has no gap");
        let applied = sm.applied_state().await.unwrap().0.map(|l| l.index).unwrap_or(0);
        assert!(applied <= last, "round {round}: applied {applied} beyond the log's end {last}");
        // The state is the log applied up to `applied`, once: nothing beyond it
        // (it would be applied again on replay), nothing missing.
        let (kvs, revision) = reader.list("/k/").unwrap();
        assert_eq!(revision, applied, "round {round}");
        let mods: Vec<u64> = kvs.iter().map(|kv| kv.mod_revision).collect();
        assert_eq!(mods, (1..=applied).collect::<Vec<_>>(), "round {round}: the state is the log up to {applied}");
        // Replaying the rest applies each entry once.
        sm.apply_batch((applied + 1..=last).map(entry).collect()).unwrap();
        assert_eq!(reader.list("/k/").unwrap().0.len() as u64, last, "round {round}");
        // The appends the kill lost (at least: the child printed some appends late).
        lost.push(appended.saturating_sub(last));
    }
    eprintln!("appends lost by the kill, per round: {lost:?}");
}
