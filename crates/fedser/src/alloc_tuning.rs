//! glibc malloc tuning. By default glibc serves allocations above 128 KiB with fresh `mmap`s
//! and returns freed memory to the kernel, so a training loop that allocates and frees the
//! same few-megabyte tensors every step pays page faults and page zeroing each time (profiled:
//! about 10% of a CNN training step, more on the main thread of feature extraction). Keeping
//! such blocks in the heap costs nothing in peak memory: the same sizes come back every step.

/// Raises the mmap and trim thresholds (no-op on other C libraries).
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called once before other threads start.
    unsafe {
        // 32 MiB is glibc's upper limit for the mmap threshold on 64-bit systems.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20);
    }
}
