//! A counting global allocator for benchmarks: mimalloc, with the live heap
//! bytes of the process kept in one counter (requested sizes, as
//! `denorm-core`'s `state_bytes` counts them). A bench installs it with
//!
//! ```ignore
//! #[global_allocator]
//! static GLOBAL: denorm_testkit::alloc::Counting = denorm_testkit::alloc::Counting;
//! ```
//!
//! and reads [`live_bytes`] before and after what it measures.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicIsize, Ordering};

static LIVE: AtomicIsize = AtomicIsize::new(0);

/// mimalloc, counting live heap bytes.
#[derive(Debug, Clone, Copy)]
pub struct Counting;

// SAFETY: every call forwards to mimalloc unchanged; only the sizes are
// counted, in an atomic.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        mimalloc::MiMalloc.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        mimalloc::MiMalloc.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        mimalloc::MiMalloc.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        mimalloc::MiMalloc.realloc(ptr, layout, new_size)
    }
}

/// Live heap bytes of the process (0 unless [`Counting`] is the global
/// allocator).
pub fn live_bytes() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// Hands the pages mimalloc holds free back to the OS, as the engine does
/// after a snapshot-sized batch (`denorm::alloc::release_free_memory`), so a
/// bench's RSS stands for what `denorm run` holds.
#[allow(unsafe_code)]
pub fn release_free_memory() {
    // SAFETY: `mi_collect` takes no pointers; it only purges free pages.
    unsafe { libmimalloc_sys::mi_collect(true) }
}
