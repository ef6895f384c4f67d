/// mimalloc, not the system allocator: operators and the published state
/// (sorted runs rebuilt per batch) make many small, short-lived allocations.
/// After a large snapshot glibc's malloc took about a quarter of a feed's
/// write path (`cargo bench -p denorm --bench feed`, which runs on the same
/// allocator).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    denorm::alloc::purge_promptly();
    denorm::cli::main()
}
