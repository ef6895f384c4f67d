//! The binary's allocator is mimalloc (`main.rs`). mimalloc keeps the pages
//! a thread frees for reuse and hands them back to the OS lazily, on later
//! allocations; after a snapshot-sized batch (the snapshot's rows, each
//! operator's chunk outputs, the first publish) those are tens of percent
//! of the process's resident memory and stay resident until the next
//! refresh happens to purge them (TPC-H at SF 0.05: 317 MB after the
//! snapshot, 233 MB once returned; `BENCHMARKS.md`). The engine returns
//! them right after such a batch, so a started denorm's RSS is what it
//! holds.

/// mimalloc's `mi_option_purge_delay` (the same index in its v2 and v3
/// `mimalloc.h`; `libmimalloc-sys` names no constant for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Makes mimalloc purge the pages it frees at once instead of after a
/// delay (10 ms, ×10 for arenas) that only expires on a later allocation:
/// a denorm that goes idle after a batch otherwise keeps that batch's
/// freed pages resident. Called first thing in `main`; TPC-H at SF 0.05
/// through the binary: 268 → 248 MB after the refresh, peak 312 → 296 MB,
/// the changes per CPU second unchanged (`BENCHMARKS.md`).
///
/// Transparent huge pages are off at build time (`libmimalloc-sys`'s
/// `no_thp` feature: mimalloc does not `madvise` its arenas huge): with
/// them a 2 MiB page stays resident while any 64 KiB of it is in use, and
/// TPC-H's state made 116 MB of huge pages (RSS 268 → 232 MB after the
/// refresh without them). On a kernel whose THP mode is `always` rather
/// than `madvise`, `MIMALLOC_ALLOW_THP=0` in the environment turns them
/// off for the process (mimalloc reads it before `main`).
#[allow(unsafe_code)]
pub fn purge_promptly() {
    // SAFETY: `mi_option_set` only stores an option's value.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) }
}

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
