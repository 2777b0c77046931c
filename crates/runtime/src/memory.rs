//! How freed memory goes back to the kernel.
//!
//! glibc's malloc serves large blocks (from 128 KiB up) with their own `mmap` and returns
//! them to the kernel on `free`, and trims the heap's top as it shrinks. A restorer pass
//! allocates and frees tens of megabytes per layer, so every layer's buffers were faulted in
//! again, page by page: on two cores `clearair profile` measured a 512² restore at 2,201 ms
//! with glibc's defaults against 1,638 ms with large blocks kept in the heap and no trimming
//! (kernel time 7.3 s → 4.2 s over the run). glibc also gives threads heaps of their own
//! (arenas), so buffers freed by one thread were of no use to the next: libtorch's worker
//! threads and every request's blocking thread faulted in heaps of their own. With a single
//! arena `clearair bench --size 512` went from p50 1,582 ms, 0.64 req/s at concurrency 1 and
//! 0.43 at 4 (kernel time 25.6 s) to 1,096 ms, 0.91 and 0.91 req/s (2.1 s). The cost is that a
//! process keeps its peak heap; `CLEARAIR_MALLOC=system` keeps glibc's defaults.

/// Keeps freed memory in the process for reuse (see the module documentation), unless
/// `CLEARAIR_MALLOC=system`. Call first in `main`, before any thread starts (threads that
/// already allocated keep their arenas): [`crate::launch::run`] does. Returns whether the
/// policy was applied.
pub fn retain_freed_memory() -> bool {
    if std::env::var("CLEARAIR_MALLOC").is_ok_and(|v| v == "system") {
        return false;
    }
    apply()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn apply() -> bool {
    // SAFETY: mallopt only changes global allocator parameters, under glibc's arena lock, so
    // it is safe while other threads allocate; both parameters are documented ones.
    unsafe {
        // No block gets its own mapping (a large allocation comes from the heap instead) …
        let no_mmap = libc::mallopt(libc::M_MMAP_MAX, 0) == 1;
        // … and the heap's top is never handed back (the largest positive int: "never").
        let no_trim = libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX) == 1;
        // … and every thread shares one heap, so what one frees the next reuses.
        let one_arena = libc::mallopt(libc::M_ARENA_MAX, 1) == 1;
        no_mmap && no_trim && one_arena
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn apply() -> bool {
    false
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_policy_applies_on_glibc() {
        let applied = super::retain_freed_memory();
        if cfg!(all(target_os = "linux", target_env = "gnu")) {
            assert!(applied, "mallopt refused the parameters");
        }
        // Large blocks still allocate and free.
        let block = vec![1u8; 64 << 20];
        assert_eq!(block.iter().map(|&b| u64::from(b)).sum::<u64>(), 64 << 20);
    }
}
