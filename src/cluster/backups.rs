//! Scheduled snapshots: every voter writes a backup file of its own replica
//! into `D/snapshots/` at an interval and keeps the newest few, as k3s does
//! with etcd snapshots — so a cluster that lost its quorum and its admin's
//! backups still has recent ones on each surviving voter's disk.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use clusterd_raft::storage::Export;
use clusterd_raft::StoreReader;

use super::snapshot_file::{FileError, FileSink, Header, LEFT_OUT};
use crate::util;

/// How often a voter writes a snapshot, and how many it keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupSchedule {
    /// Seconds between snapshots; 0: none.
    pub interval_seconds: u64,
    /// Snapshots kept (the oldest are removed).
    pub retain: usize,
}

impl BackupSchedule {
    /// Whether no snapshots are scheduled.
    pub fn is_off(&self) -> bool {
        self.interval_seconds == 0
    }
}

/// Scheduled snapshots' file names start so (and end in [`SUFFIX`]).
const PREFIX: &str = "snapshot-";
const SUFFIX: &str = ".snap";

/// `D/snapshots`.
pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("snapshots")
}

/// The file name of a snapshot taken at `stamp` (UTC, `YYYYmmddTHHMMSSZ`):
/// names sort as their times do.
fn file_name(stamp: &str, revision: u64) -> String {
    format!("{PREFIX}{stamp}-r{revision}{SUFFIX}")
}

/// Of the file names in the snapshot directory, the scheduled snapshots to
/// remove so that the newest `retain` are kept (other files are left alone).
pub fn expired(names: &[String], retain: usize) -> Vec<String> {
    let mut ours: Vec<&String> = names.iter().filter(|n| n.starts_with(PREFIX) && n.ends_with(SUFFIX)).collect();
    ours.sort();
    let remove = ours.len().saturating_sub(retain.max(1));
    ours[..remove].iter().map(|n| n.to_string()).collect()
}

/// A scheduled snapshot failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The file could not be written.
    #[error(transparent)]
    File(#[from] FileError),
    /// The replica could not be read.
    #[error("read the store: {0}")]
    Read(String),
}

/// Write a snapshot of the local replica into `dir`; returns its path.
pub fn write(store: &StoreReader, dir: &Path, cluster: &str, node: &str) -> Result<PathBuf, BackupError> {
    std::fs::create_dir_all(dir).map_err(FileError::Io)?;
    let now = chrono::Utc::now();
    let mut sink = None;
    let mut failed = None;
    let mut path = PathBuf::new();
    store
        .export(LEFT_OUT, 1 << 20, |item| {
            let step = match item {
                Export::Start { revision, keys } => {
                    path = dir.join(file_name(&now.format("%Y%m%dT%H%M%SZ").to_string(), revision));
                    let header = Header {
                        revision,
                        keys,
                        created: util::rfc3339(now),
                        cluster: cluster.into(),
                        node: node.into(),
                    };
                    FileSink::create(&path, &header).map(|s| sink = Some(s))
                }
                Export::Keys(kvs) => {
                    let s = sink.as_mut().expect("the start comes first");
                    kvs.iter().try_for_each(|kv| s.entry(kv))
                }
            };
            step.map_err(|e| failed = Some(e)).is_ok()
        })
        .map_err(|e| BackupError::Read(e.to_string()))?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    sink.expect("the export starts").finish()?;
    Ok(path)
}

/// Remove the expired snapshots of `dir`.
fn prune(dir: &Path, retain: usize) -> std::io::Result<()> {
    let names: Vec<String> = std::fs::read_dir(dir)?.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect();
    for name in expired(&names, retain) {
        std::fs::remove_file(dir.join(&name))?;
        tracing::info!(file = %name, "scheduled snapshot removed (retention)");
    }
    Ok(())
}

/// Write a snapshot every interval until `stop`.
pub async fn run(
    store: StoreReader,
    data_dir: PathBuf,
    schedule: BackupSchedule,
    cluster: String,
    node: String,
    mut stop: watch::Receiver<bool>,
) {
    if schedule.is_off() {
        return;
    }
    let every = Duration::from_secs(schedule.interval_seconds);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let dir = dir(&data_dir);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let (store, dir, cluster, node) = (store.clone(), dir.clone(), cluster.clone(), node.clone());
        let done = tokio::task::spawn_blocking(move || {
            let path = write(&store, &dir, &cluster, &node)?;
            prune(&dir, schedule.retain).map_err(FileError::Io)?;
            Ok::<_, BackupError>(path)
        })
        .await;
        match done {
            Ok(Ok(path)) => tracing::info!(file = %path.display(), "scheduled snapshot written"),
            Ok(Err(e)) => tracing::warn!(error = %e, "scheduled snapshot failed"),
            Err(e) => tracing::warn!(error = %e, "scheduled snapshot failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_snapshots_are_kept_and_other_files_left_alone() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let a = file_name("20261201T030000Z", 10);
        let b = file_name("20261201T040000Z", 5);
        let c = file_name("20261202T000000Z", 90);
        let table: Vec<(Vec<String>, usize, Vec<String>)> = vec![
            (vec![], 5, vec![]),
            (vec![c.clone(), a.clone(), b.clone()], 5, vec![]),
            (vec![c.clone(), a.clone(), b.clone()], 2, vec![a.clone()]),
            (vec![c.clone(), a.clone(), b.clone()], 1, vec![a.clone(), b.clone()]),
            (vec![c.clone(), a.clone(), b.clone()], 0, vec![a.clone(), b.clone()]),
            ([names(&["mine.snap", "snapshot-x.snap.part"]), vec![a.clone(), b.clone()]].concat(), 1, vec![a.clone()]),
        ];
        for (given, retain, want) in table {
            assert_eq!(expired(&given, retain), want, "{given:?} keeping {retain}");
        }
    }

    #[test]
    fn names_sort_by_time_not_revision() {
        assert!(file_name("20261201T030000Z", 900) < file_name("20261201T030001Z", 10));
    }
}
