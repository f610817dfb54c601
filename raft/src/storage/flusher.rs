//! Group commit for the Raft log.
//!
//! A log append is written to RocksDB without a sync, so it is readable (and can
//! be replicated) at once; its completion is handed here. One thread syncs the
//! WAL once for everything handed to it since its last sync, then completes
//! those appends in the order they were made. Under load one sync covers many
//! appends; alone, an append waits for one sync, as before.
//!
//! The WAL is a single ordered file: a sync that starts after an append was
//! written covers that append and every write before it.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

/// What to do once a submitted write is durable (or the sync failed).
pub(crate) type Completion = Box<dyn FnOnce(io::Result<()>) + Send>;

/// The syncing thread of one store, stopped (after completing everything
/// submitted) when dropped.
pub(crate) struct Flusher {
    tx: Option<mpsc::Sender<Completion>>,
    thread: Option<JoinHandle<()>>,
    syncs: Arc<AtomicU64>,
}

impl Flusher {
    /// Start the thread; `sync` makes every write issued so far durable.
    pub(crate) fn start(sync: impl FnMut() -> io::Result<()> + Send + 'static) -> io::Result<Flusher> {
        let (tx, rx) = mpsc::channel();
        let syncs = Arc::new(AtomicU64::new(0));
        let counter = syncs.clone();
        let thread = std::thread::Builder::new().name("raft-log-sync".into()).spawn(move || run(rx, sync, &counter))?;
        Ok(Flusher { tx: Some(tx), thread: Some(thread), syncs })
    }

    /// Call `done` once every write issued before this call is durable.
    pub(crate) fn submit(&self, done: Completion) {
        let tx = self.tx.as_ref().expect("the sender lives until drop");
        if let Err(mpsc::SendError(done)) = tx.send(done) {
            done(Err(io::Error::other("the log sync thread is gone")));
        }
    }

    /// How many syncs the thread has made.
    pub(crate) fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }
}

fn run(rx: mpsc::Receiver<Completion>, mut sync: impl FnMut() -> io::Result<()>, syncs: &AtomicU64) {
    while let Ok(first) = rx.recv() {
        let mut pending = vec![first];
        pending.extend(rx.try_iter());
        let res = sync();
        syncs.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = &res {
            tracing::error!(error = %e, appends = pending.len(), "syncing the Raft log failed");
        }
        for done in pending {
            done(res.as_ref().map(|_| ()).map_err(|e| io::Error::new(e.kind(), e.to_string())));
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the log sync thread panicked");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Condvar, Mutex};
    use std::time::Duration;

    use super::*;

    /// A sync that blocks until the test opens the gate, counting its calls.
    #[derive(Clone, Default)]
    struct Gate {
        state: Arc<(Mutex<(bool, u32)>, Condvar)>,
    }

    impl Gate {
        fn sync(&self) -> io::Result<()> {
            let (lock, cv) = &*self.state;
            let mut s = lock.lock().unwrap();
            s.1 += 1;
            cv.notify_all();
            while !s.0 {
                s = cv.wait(s).unwrap();
            }
            Ok(())
        }

        fn wait_entered(&self, n: u32) {
            let (lock, cv) = &*self.state;
            let s = lock.lock().unwrap();
            let (_s, timeout) = cv.wait_timeout_while(s, Duration::from_secs(10), |s| s.1 < n).unwrap();
            assert!(!timeout.timed_out(), "the sync thread did not start sync {n}");
        }

        fn open(&self) {
            let (lock, cv) = &*self.state;
            lock.lock().unwrap().0 = true;
            cv.notify_all();
        }
    }

    #[test]
    fn appends_waiting_for_a_sync_share_the_next_one_and_complete_in_order() {
        let gate = Gate::default();
        let g = gate.clone();
        let flusher = Flusher::start(move || g.sync()).unwrap();
        let (tx, rx) = mpsc::channel();
        let record = |i: u32| -> Completion {
            let tx = tx.clone();
            Box::new(move |res: io::Result<()>| tx.send((i, res.is_ok())).unwrap())
        };
        // The first append starts a sync that cannot finish yet...
        flusher.submit(record(0));
        gate.wait_entered(1);
        // ...so the next 99 queue up behind it.
        for i in 1..100 {
            flusher.submit(record(i));
        }
        assert!(rx.try_recv().is_err(), "nothing completes before its sync");
        gate.open();
        let done: Vec<(u32, bool)> = (0..100).map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap()).collect();
        assert_eq!(done, (0..100).map(|i| (i, true)).collect::<Vec<_>>(), "every append completes, in order");
        drop(flusher);
        assert_eq!(gate.state.0.lock().unwrap().1, 2, "one sync for the first append, one for the 99 behind it");
    }

    #[test]
    fn a_failed_sync_fails_every_append_it_covered_and_drop_completes_the_rest() {
        let (tx, rx) = mpsc::channel();
        let flusher = Flusher::start(|| Err(io::Error::other("disk gone"))).unwrap();
        for i in 0..3 {
            let tx = tx.clone();
            flusher.submit(Box::new(move |res: io::Result<()>| tx.send((i, res.is_err())).unwrap()));
        }
        drop(flusher);
        let done: Vec<(u32, bool)> = rx.try_iter().collect();
        assert_eq!(done, vec![(0, true), (1, true), (2, true)], "all failed, in order, before drop returned");
    }
}
