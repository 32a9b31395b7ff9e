//! glibc's allocator, capped at one arena per core.
//!
//! glibc gives threads that allocate at the same time arenas of their own, up to 8 per core,
//! and an arena keeps what it freed for reuse. The pipeline's short-lived decode and sink
//! threads (tokio's blocking pool) spread over those arenas, so `autorma run` on the 375 test
//! photos peaked at 173 to 190 MiB on 2 cores; with one arena per core, 111 to 163 MiB at the
//! same speed (README, Speed).

/// Called first thing in `main`, before any thread starts. `MALLOC_ARENA_MAX` in the
/// environment still wins: glibc reads it itself.
pub fn cap_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let cores = libc::c_int::try_from(cores).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only sets a tuning parameter; no thread allocates concurrently yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, cores);
        }
    }
}
