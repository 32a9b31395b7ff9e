//! glibc's allocator, tuned for a process that lives for days.
//!
//! - **One arena per core.** glibc gives threads that allocate at the same time arenas of their
//!   own, up to 8 per core, and an arena keeps what it freed for reuse. The pipeline's
//!   short-lived decode and sink threads (tokio's blocking pool) spread over those arenas, so
//!   `autorma run` on the 375 test photos peaked at 173 to 190 MiB on 2 cores; with one arena
//!   per core, 111 to 163 MiB at the same speed (README, Speed).
//! - **A fixed mmap threshold.** By default glibc raises the size above which it maps memory
//!   to the largest block freed so far (up to 32 MiB). A worker's batch tensor is up to 19 MiB
//!   and of every size from 1 to 32 photos, so after the first big batch those tensors come
//!   from the arenas' heaps, between small allocations that outlive them, and the heaps only
//!   grow: the 30-minute soak saw the worker go 98 to 111 MiB in steps. With the threshold
//!   fixed, each block of 1 MiB or more is mapped and given back when freed.

/// Blocks of this size or more are mapped on their own and returned to the system when freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD_BYTES: libc::c_int = 1 << 20;

/// Called first thing in `main`, before any thread starts. `MALLOC_ARENA_MAX` and
/// `MALLOC_MMAP_THRESHOLD_` in the environment still win: glibc reads them itself.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let set = |param, value| {
            // SAFETY: mallopt only sets a tuning parameter; no thread allocates concurrently yet.
            unsafe { libc::mallopt(param, value) };
        };
        if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            set(libc::M_ARENA_MAX, libc::c_int::try_from(cores).unwrap_or(libc::c_int::MAX));
        }
        if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
            set(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
        }
    }
}
