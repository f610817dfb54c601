//! Snapshots received in pieces. A leader sends its snapshot file piece by
//! piece (see [`crate::network`]); each piece is appended to a spool file in
//! the store's snapshot directory (`incoming-<transfer>.part`), and once the
//! last one has arrived the synced file is handed to Raft to install — the
//! state is never held whole in memory.
//!
//! One transfer is received at a time: a piece that does not continue it (a
//! wrong offset, another transfer, vote or snapshot) is refused, which makes
//! the sender start over; a first piece starts a new transfer and removes an
//! unfinished one. Spool files a stop left behind are removed when the store
//! opens (they end in `.part`).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::types::{SnapshotMeta, Vote};

/// A piece of a snapshot transfer, as sent.
#[derive(Debug)]
pub struct Piece {
    /// The sender's vote.
    pub vote: Vote,
    /// What the snapshot covers.
    pub meta: SnapshotMeta,
    /// The transfer's id, chosen by the sender.
    pub transfer: u64,
    /// Where in the snapshot the piece starts.
    pub offset: u64,
    /// The piece's bytes.
    pub data: Vec<u8>,
    /// Whether this is the last piece.
    pub done: bool,
}

/// A piece could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum PieceError {
    /// The piece does not continue the transfer under way.
    #[error("snapshot piece at {offset} of transfer {transfer:x} does not continue {expected}; start over")]
    Unexpected {
        /// The piece's transfer.
        transfer: u64,
        /// The piece's offset.
        offset: u64,
        /// What this node expected instead.
        expected: String,
    },
    /// The spool file could not be written.
    #[error("spool the snapshot to {path}: {source}")]
    Spool {
        /// The spool file.
        path: String,
        /// What failed.
        #[source]
        source: io::Error,
    },
}

/// What taking a piece led to.
#[derive(Debug)]
pub enum Taken {
    /// The piece is written; more are expected.
    More,
    /// The last piece is written and the file synced: install it.
    Complete(Received),
}

/// A whole snapshot received into a synced file. Dropping it removes the file
/// unless an install took it.
#[derive(Debug)]
pub struct Received {
    /// The sender's vote.
    pub vote: Vote,
    /// What the snapshot covers.
    pub meta: SnapshotMeta,
    /// The spool file.
    pub path: PathBuf,
}

impl Drop for Received {
    fn drop(&mut self) {
        remove(&self.path);
    }
}

/// The transfer being received.
struct Transfer {
    id: u64,
    vote: Vote,
    meta: SnapshotMeta,
    path: PathBuf,
    /// Taken out while a piece is written off the async workers.
    file: Option<File>,
    /// Bytes written so far: the offset the next piece must have.
    written: u64,
}

impl Drop for Transfer {
    fn drop(&mut self) {
        // Unfinished, failed or replaced (or the node stopping): nothing will
        // read it. A completed transfer handed its path to [`Received`].
        if !self.path.as_os_str().is_empty() {
            self.file = None;
            remove(&self.path);
        }
    }
}

fn remove(path: &Path) {
    match fs::remove_file(path) {
        Ok(()) => tracing::debug!(file = %path.display(), "removed a snapshot spool file"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(file = %path.display(), error = %e, "could not remove a snapshot spool file"),
    }
}

/// Receives snapshot transfers into a store's snapshot directory.
pub struct Incoming {
    dir: PathBuf,
    current: tokio::sync::Mutex<Option<Transfer>>,
}

impl Incoming {
    /// Receive into `dir` (the store's snapshot directory, which exists).
    pub fn new(dir: PathBuf) -> Self {
        Incoming { dir, current: tokio::sync::Mutex::new(None) }
    }

    /// The spool file of transfer `id`.
    fn spool(&self, id: u64) -> PathBuf {
        self.dir.join(format!("incoming-{id:016x}.part"))
    }

    /// Take one piece: append it to its transfer's file (a first piece starts
    /// a new transfer); on the last, sync the file and hand it over.
    pub async fn take(&self, piece: Piece) -> Result<Taken, PieceError> {
        let mut current = self.current.lock().await;
        if piece.offset == 0 {
            // A new transfer replaces the one under way (its file removed).
            *current = None;
            let path = self.spool(piece.transfer);
            let file = File::create(&path).map_err(|source| spool_err(&path, source))?;
            *current = Some(Transfer {
                id: piece.transfer,
                vote: piece.vote,
                meta: piece.meta.clone(),
                path,
                file: Some(file),
                written: 0,
            });
        }
        let transfer = match current.as_mut() {
            Some(t)
                if t.id == piece.transfer
                    && t.written == piece.offset
                    && t.vote == piece.vote
                    && t.meta == piece.meta =>
            {
                t
            }
            other => {
                let expected = match other {
                    Some(t) if t.id == piece.transfer && t.written != piece.offset => {
                        format!("transfer {:x} at {}", t.id, t.written)
                    }
                    Some(t) if t.id == piece.transfer => format!("transfer {:x} of another vote or snapshot", t.id),
                    Some(t) => format!("transfer {:x}", t.id),
                    None => "any transfer (none is under way)".into(),
                };
                return Err(PieceError::Unexpected { transfer: piece.transfer, offset: piece.offset, expected });
            }
        };
        let (mut file, path, done) =
            (transfer.file.take().expect("a transfer holds its file"), transfer.path.clone(), piece.done);
        let len = piece.data.len() as u64;
        let wrote = tokio::task::spawn_blocking(move || {
            let r = file.write_all(&piece.data).and_then(|()| if done { file.sync_all() } else { Ok(()) });
            (file, r)
        })
        .await;
        let (file, result) = match wrote {
            Ok(done) => done,
            Err(e) => {
                // The file is gone with the task: this transfer cannot go on.
                current.take();
                return Err(spool_err(&path, io::Error::other(e)));
            }
        };
        if let Err(e) = result {
            current.take();
            return Err(spool_err(&path, e));
        }
        if !done {
            transfer.file = Some(file);
            transfer.written += len;
            return Ok(Taken::More);
        }
        drop(file);
        let mut t = current.take().expect("checked above");
        let received = Received { vote: t.vote, meta: t.meta.clone(), path: std::mem::take(&mut t.path) };
        Ok(Taken::Complete(received))
    }
}

fn spool_err(path: &Path, source: io::Error) -> PieceError {
    PieceError::Spool { path: path.display().to_string(), source }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{LeaderId, LogId, StoredMembership};

    fn meta(index: u64) -> SnapshotMeta {
        SnapshotMeta {
            last_log_id: Some(LogId::new(LeaderId { term: 1, node_id: 1 }, index)),
            last_membership: StoredMembership::default(),
        }
    }

    fn piece(transfer: u64, offset: u64, data: &[u8], done: bool) -> Piece {
        Piece { vote: Vote::new(1, 1), meta: meta(10), transfer, offset, data: data.to_vec(), done }
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn pieces_in_order_make_the_file_and_others_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let incoming = Incoming::new(dir.path().to_path_buf());
        assert!(matches!(incoming.take(piece(7, 0, b"abc", false)).await, Ok(Taken::More)));
        let refused = [
            ("a piece ahead of the transfer", piece(7, 4, b"x", false)),
            ("a piece already received", piece(7, 1, b"bc", false)),
            ("a piece of another transfer", piece(8, 3, b"def", false)),
            ("a piece of another vote", Piece { vote: Vote::new(2, 1), ..piece(7, 3, b"def", false) }),
            ("a piece of another snapshot", Piece { meta: meta(11), ..piece(7, 3, b"def", false) }),
        ];
        for (what, p) in refused {
            let err = incoming.take(p).await.expect_err(what);
            assert!(matches!(err, PieceError::Unexpected { .. }), "{what}: {err}");
        }
        // The transfer goes on where it was.
        assert!(matches!(incoming.take(piece(7, 3, b"def", false)).await, Ok(Taken::More)));
        let received = match incoming.take(piece(7, 6, b"g", true)).await {
            Ok(Taken::Complete(r)) => r,
            other => panic!("the last piece completes the transfer: {other:?}"),
        };
        assert_eq!(fs::read(&received.path).unwrap(), b"abcdefg");
        assert_eq!((received.vote, received.meta.clone()), (Vote::new(1, 1), meta(10)));
        let err = incoming.take(piece(7, 7, b"h", true)).await.expect_err("a finished transfer takes no more");
        assert!(matches!(err, PieceError::Unexpected { .. }), "{err}");
        drop(received);
        assert!(files(dir.path()).is_empty(), "a received file nobody took is removed");
    }

    #[tokio::test]
    async fn a_new_transfer_replaces_an_unfinished_one() {
        let dir = tempfile::tempdir().unwrap();
        let incoming = Incoming::new(dir.path().to_path_buf());
        assert!(matches!(incoming.take(piece(1, 0, b"old", false)).await, Ok(Taken::More)));
        assert_eq!(files(dir.path()), [format!("incoming-{:016x}.part", 1)]);
        assert!(matches!(incoming.take(piece(2, 0, b"new", false)).await, Ok(Taken::More)));
        assert_eq!(files(dir.path()), [format!("incoming-{:016x}.part", 2)], "the unfinished file is removed");
        let err = incoming.take(piece(1, 3, b"more", false)).await.expect_err("the replaced transfer is over");
        assert!(matches!(err, PieceError::Unexpected { .. }), "{err}");
        let Ok(Taken::Complete(received)) = incoming.take(piece(2, 3, b"!", true)).await else {
            panic!("the new transfer completes");
        };
        assert_eq!(fs::read(&received.path).unwrap(), b"new!");
    }
}
