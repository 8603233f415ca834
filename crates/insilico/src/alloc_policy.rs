//! The process's allocator policy.
//!
//! A forward pass allocates and frees activations of tens of megabytes (conv1 of cnn-small
//! on 1,000 images is 50 MB). glibc serves every allocation over 32 MB with a fresh `mmap`
//! and returns it on free, so the kernel zero-fills it again page by page on the next pass:
//! in the ablation sweep page faults took a fifth of the time, and setting this policy cut
//! the sweep from 51 s to 31 s (2,000 images, the same loaded machine). Serving every
//! allocation from the heap and never trimming it keeps those pages for reuse; the cost is
//! that the process keeps its peak memory until it exits (1.4 GB to 1.8 GB there).

/// Keeps freed memory in the process for reuse (glibc only; elsewhere a no-op). The
/// environment variable `INSILICO_MALLOC=default` leaves glibc's policy as it is, to
/// compare the two with one binary.
pub fn keep_freed_memory() {
    if std::env::var("INSILICO_MALLOC").is_ok_and(|v| v == "default") {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only sets allocator parameters; called first thing in `main`,
    // before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}
