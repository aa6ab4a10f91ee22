//! The allocator's one setting `pledged` makes: glibc's arena limit.
//!
//! This is the workspace's only unsafe code (the lint is `deny`, not
//! `forbid`, for it): glibc's `mallopt` has no safe wrapper.

/// Two glibc malloc arenas per core, unless the operator set
/// `MALLOC_ARENA_MAX`. Call it first in `main`, before any other thread
/// exists: glibc fixes its arena limit when the first thread beyond the main
/// one allocates, and ignores later changes.
///
/// By default glibc gives each thread that allocates an arena of its own, up
/// to eight per core, and keeps what each one grew to: at a million pledges
/// about 14 arenas of 10 to 18 MB held 170 MB of the server's 307 MB
/// (BENCHMARKS.md, sessions 7 and 8). Two per core kept the pledge rate of
/// glibc's default in A/B runs; one per core cost about 15 % of it (the
/// prechecks' threads then wait for each other's allocations).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn limit_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
    let arenas = libc::c_int::try_from(cores.saturating_mul(2)).unwrap_or(libc::c_int::MAX);
    // SAFETY: mallopt takes no pointers and only sets one of glibc's
    // allocator parameters, under the allocator's own lock; any value is
    // valid for M_ARENA_MAX. It returns 0 on failure, which leaves glibc's
    // default: nothing to undo.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, arenas);
    }
}

/// Other allocators than glibc's choose their own arenas.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn limit_arenas() {}
