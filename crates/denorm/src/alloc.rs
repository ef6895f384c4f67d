//! The binary's allocator is mimalloc (`main.rs`). mimalloc keeps the pages
//! a thread frees for reuse and hands them back to the OS lazily, on later
//! allocations; after a snapshot-sized batch (the snapshot's rows, each
//! operator's chunk outputs, the first publish) those are tens of percent
//! of the process's resident memory and stay resident until the next
//! refresh happens to purge them (TPC-H at SF 0.05: 317 MB after the
//! snapshot, 233 MB once returned; `BENCHMARKS.md`). The engine returns
//! them right after such a batch, so a started denorm's RSS is what it
//! holds.

/// Batches with more changes than this are followed by
/// [`release_free_memory`] (the executor's snapshot chunk).
pub(crate) const LARGE_BATCH: usize = 1 << 16;

/// Returns the pages mimalloc holds free to the OS (`mi_collect(true)`):
/// a few milliseconds after a large batch, nothing on the hot path. With
/// another global allocator (tests) it has nothing to return.
#[allow(unsafe_code)]
pub(crate) fn release_free_memory() {
    // SAFETY: `mi_collect` takes no pointers and changes no live
    // allocation; it only purges free pages.
    unsafe { libmimalloc_sys::mi_collect(true) }
}
