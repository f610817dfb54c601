//! The largest single allocation a piece of code asks for, so that tests can
//! assert that decoding what a peer sends stays bounded by what it sent (a
//! forged length must not be believed). A global allocator of the crate's own
//! test binary: it notes each request's size on the calling thread while a
//! measurement runs there, and hands every request to the system allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    /// The largest request seen on this thread while measuring; `None` when not measuring.
    static LARGEST: Cell<Option<usize>> = const { Cell::new(None) };
}

struct Probe;

fn note(size: usize) {
    let _ = LARGEST.try_with(|largest| {
        if let Some(seen) = largest.get() {
            largest.set(Some(seen.max(size)));
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
}
