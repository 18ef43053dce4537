//! Test builds only: a global allocator that counts, per thread, the bytes the allocator
//! takes for live allocations, so a unit test can measure what a structure holds without
//! other tests' allocations (tests run on threads of their own) in the figure.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Counts live bytes per thread, then defers to the system allocator.
pub struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

/// What glibc's malloc takes for `size` bytes: an 8-byte header, rounded up to 16, at least
/// 32 (what RSS grows by, rather than what was asked for).
fn chunk(size: usize) -> isize {
    ((size + 8).div_ceil(16) * 16).max(32) as isize
}

fn count(delta: isize) {
    // Not available while the thread is being torn down: nothing measures then.
    let _ = LIVE.try_with(|live| live.set(live.get() + delta));
}

/// Bytes of live allocations made by this thread, less those it freed.
pub fn live_bytes() -> isize {
    LIVE.with(Cell::get)
}

// SAFETY: every call is passed unchanged to `System`, which upholds the contract.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(chunk(layout.size()));
        // SAFETY: the caller's guarantees for `layout` hold for `System` too.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(chunk(layout.size()));
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-chunk(layout.size()));
        // SAFETY: `ptr` was allocated by `System` with `layout` (every allocation is).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(chunk(new_size) - chunk(layout.size()));
        // SAFETY: as for `dealloc`; `new_size` is the caller's to keep valid.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
