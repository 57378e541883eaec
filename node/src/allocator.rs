//! The process's memory allocator, tuned once at start.
//!
//! glibc's malloc raises its mmap threshold each time a large block that
//! it mmapped is freed (up to 32 MiB), so later large blocks come from the
//! heap instead, and the heap, fragmented by them, is rarely given back.
//! sled allocates its multi-MiB write buffers over and over: with the
//! dynamic threshold, the peak RSS of a node ingesting 100,000 posts was
//! 112–125 MiB; with the threshold fixed at glibc's initial 128 KiB,
//! 82–86 MiB at the same rate (`mutual-bench --ingest-child`, three runs
//! each; mimalloc instead of glibc's malloc gave 145 MiB). See
//! ARCHITECTURE.md, "Where the time goes".

/// Fixes glibc's mmap threshold at 128 KiB (which also stops its dynamic
/// adjustment). Call once, first thing in `main`, before any thread
/// starts; a no-op with another libc.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fix_mmap_threshold();
}

/// The project's one `unsafe` block: a call into glibc with a constant.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn fix_mmap_threshold() {
    /// glibc's initial threshold.
    const MMAP_THRESHOLD: libc::c_int = 128 * 1024;
    // SAFETY: mallopt only sets one of malloc's parameters, to a valid
    // value; `tune` is called before the process starts other threads.
    let ok = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) };
    if ok != 1 {
        tracing::debug!("glibc refused to fix its mmap threshold");
    }
}
