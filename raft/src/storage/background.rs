//! Long work of the store (building a snapshot of the whole state) run at a
//! low CPU priority, so the writes in flight meanwhile keep their latency.
//!
//! Every node reaches the snapshot policy's threshold at about the same index
//! and builds at once; on a machine as busy as the nodes' writes keep it, the
//! builders took the cores from the writes (a 1-client round fell from ~290 to
//! ~60 writes/s while three nodes built a snapshot of 100,000 objects). The
//! thread runs at nice 19 for the work and at its old priority after (it is
//! one of the runtime's reused blocking threads). Nice between threads of one
//! node and between nodes started together (one scheduler autogroup) works.

/// How nice the work runs (the lowest priority).
const NICE: libc::c_int = 19;

/// Run `work` on this thread at the lowest CPU priority, then restore it.
pub(crate) fn at_low_priority<T>(work: impl FnOnce() -> T) -> T {
    // SAFETY: gettid and getpriority/setpriority on this thread's id take and
    // return plain integers.
    let tid = unsafe { libc::gettid() } as libc::id_t;
    let before = unsafe {
        *libc::__errno_location() = 0;
        let p = libc::getpriority(libc::PRIO_PROCESS, tid);
        (*libc::__errno_location() == 0).then_some(p)
    };
    let lowered = before.is_some() && unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, NICE) } == 0;
    let out = work();
    if let (true, Some(p)) = (lowered, before) {
        // Raising a priority back needs CAP_SYS_NICE; without it the thread
        // stays low, which only slows later background work down.
        if unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, p) } != 0 {
            tracing::debug!(nice = p, "could not restore a blocking thread's priority");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::at_low_priority;

    fn nice() -> i32 {
        let tid = unsafe { libc::gettid() } as libc::id_t;
        unsafe { libc::getpriority(libc::PRIO_PROCESS, tid) }
    }

    #[test]
    fn work_runs_at_the_lowest_priority_and_the_thread_gets_its_own_back() {
        std::thread::spawn(|| {
            let before = nice();
            let during = at_low_priority(nice);
            assert_eq!(during, 19, "the work runs at nice 19");
            // Only a privileged thread can raise its priority again.
            if unsafe { libc::geteuid() } == 0 {
                assert_eq!(nice(), before, "the thread's priority is restored");
            }
        })
        .join()
        .unwrap();
    }
}
