//! The largest single allocation a piece of code asks for, so that tests can
//! assert that decoding what a peer sends stays bounded by what it sent (a
//! forged length must not be believed). A global allocator of the crate's own
//! test binary: it notes each request's size on the calling thread while a
//! measurement runs there (or in the [`Gauge`] the thread joined), and hands
//! every request to the system allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

thread_local! {
    /// The largest request seen on this thread while measuring; `None` when not measuring.
    static LARGEST: Cell<Option<usize>> = const { Cell::new(None) };
    /// The gauge this thread's requests are noted in, if it joined one.
    static GAUGE: Cell<Option<&'static AtomicUsize>> = const { Cell::new(None) };
}

struct Probe;

fn note(size: usize) {
    let _ = LARGEST.try_with(|largest| {
        if let Some(seen) = largest.get() {
            largest.set(Some(seen.max(size)));
        }
    });
    let _ = GAUGE.try_with(|gauge| {
        if let Some(g) = gauge.get() {
            g.fetch_max(size, Ordering::Relaxed);
        }
    });
}

// SAFETY: every call is passed unchanged to the system allocator.
unsafe impl GlobalAlloc for Probe {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static PROBE: Probe = Probe;

/// Run `f` and return its result with the largest allocation (bytes) it asked
/// for on this thread.
pub fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|l| l.set(Some(0)));
    let out = f();
    let largest = LARGEST.with(|l| l.replace(None)).unwrap_or(0);
    (out, largest)
}

/// The largest allocation asked for on any of the threads that joined the
/// gauge (a runtime's threads, say: `on_thread_start(move || gauge.join())`),
/// whatever they run. Threads of other tests are not counted.
#[derive(Clone, Copy)]
pub struct Gauge(&'static AtomicUsize);

impl Default for Gauge {
    fn default() -> Self {
        Self::new()
    }
}

impl Gauge {
    /// A new gauge (a few bytes, kept to the end of the test binary).
    pub fn new() -> Self {
        Gauge(Box::leak(Box::new(AtomicUsize::new(0))))
    }

    /// Note this thread's allocations in the gauge from now on.
    pub fn join(self) {
        GAUGE.with(|g| g.set(Some(self.0)));
    }

    /// Forget what was noted so far.
    pub fn reset(self) {
        self.0.store(0, Ordering::SeqCst);
    }

    /// The largest allocation noted since the last reset.
    pub fn largest(self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_probe_sees_a_large_allocation() {
        let (v, largest) = super::largest_allocation(|| vec![1u8; 3 << 20]);
        assert_eq!(v.len(), 3 << 20);
        assert!(largest >= 3 << 20, "{largest}");
        let (_, small) = super::largest_allocation(|| vec![1u8; 10]);
        assert!(small < 1024, "{small}");
    }

    #[test]
    fn a_gauge_sees_the_threads_that_joined_it_and_no_other() {
        let gauge = super::Gauge::new();
        let joined = std::thread::spawn(move || {
            gauge.join();
            vec![1u8; 2 << 20].len()
        });
        assert_eq!(joined.join().unwrap(), 2 << 20);
        assert!(gauge.largest() >= 2 << 20, "{}", gauge.largest());
        gauge.reset();
        let other = std::thread::spawn(|| vec![1u8; 4 << 20].len());
        assert_eq!(other.join().unwrap(), 4 << 20);
        assert!(gauge.largest() < 1 << 20, "{}", gauge.largest());
    }
}
