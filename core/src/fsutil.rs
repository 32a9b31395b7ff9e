//! Atomic file replacement: the only way embedded mode writes a result, a DLQ record or a
//! checkpoint, so a `kill -9` leaves either the old file or the new one, never half of one.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::SystemTime;

/// Marks temporary files; anything containing it is debris of an interrupted write.
pub const TMP_MARKER: &str = ".autorma-tmp-";

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to `path` atomically and durably: temp file in the same directory, fsync,
/// rename over `path`, fsync the directory (so the rename itself survives a power cut).
/// Creates missing parent directories.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_durably(path, bytes, |_| Ok(()))
}

/// [`atomic_write`], with `tag(file)` (the local object store sets the object's metadata) and
/// then the modification time set to `modified` on the new file before it takes `path`'s place
/// (the local object store makes each write's etag differ through it).
pub fn atomic_write_modified(
    path: &Path,
    bytes: &[u8],
    modified: SystemTime,
    tag: impl FnOnce(&File) -> io::Result<()>,
) -> io::Result<()> {
    write_durably(path, bytes, |file| {
        tag(file)?;
        file.set_modified(modified)
    })
}

/// [`replace`], `prepare(file)` before the bytes are made durable, then the folder synced.
fn write_durably(path: &Path, bytes: &[u8], prepare: impl FnOnce(&File) -> io::Result<()>) -> io::Result<()> {
    replace(path, bytes, |file| {
        prepare(file)?;
        file.sync_all()
    })?;
    File::open(parent(path))?.sync_all()
}

/// The folder `path` is in (`.` for a bare file name).
fn parent(path: &Path) -> &Path {
    path.parent().filter(|dir| !dir.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Temp file, `flush(file)` (which makes the bytes durable), rename over `path`; the temp file
/// is removed if any step fails.
fn replace(path: &Path, bytes: &[u8], flush: impl FnOnce(&File) -> io::Result<()>) -> io::Result<()> {
    fs::create_dir_all(parent(path))?;
    let tmp = tmp_path(path);
    let result = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        flush(&file)?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Group commit for many small files on one filesystem: each [`sync`](Self::sync) returns
/// once a `syncfs` that began after the call has finished, and the threads that call it
/// while one runs share the next. Two fsyncs per file (file and directory) cost the embedded
/// sink most of its CPU and bound its writes to the disk's flush latency; a `syncfs` per
/// group of writes does the same work once.
#[derive(Debug)]
pub struct SyncGroup {
    /// Any folder on the filesystem to sync.
    dir: File,
    state: Mutex<SyncState>,
    done: Condvar,
}

#[derive(Debug, Default)]
struct SyncState {
    /// Calls so far; a call's ticket is the count including it.
    requested: u64,
    /// Every call with a ticket up to this one is durable.
    synced: u64,
    running: bool,
    /// The first failed sync's error. It sticks: pages whose writeback failed are gone, and
    /// the kernel reports that once per open file, so a later sync that succeeds proves
    /// nothing about them.
    failed: Option<(io::ErrorKind, String)>,
}

impl SyncGroup {
    pub fn open(dir: &Path) -> io::Result<Self> {
        Ok(Self { dir: File::open(dir)?, state: Mutex::default(), done: Condvar::new() })
    }

    /// Replaces `path` atomically with `bytes` made durable before the rename, so even a power
    /// cut leaves the old file or the new one, never an empty one. The rename itself is
    /// durable once a later [`sync`](Self::sync) returns.
    pub fn replace(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        replace(path, bytes, |_| self.sync())
    }

    /// The state is a few counters, consistent at every unlock: a panic elsewhere cannot
    /// leave it half-updated.
    fn lock(&self) -> std::sync::MutexGuard<'_, SyncState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Blocks until everything written on the filesystem before this call is durable. After
    /// one failure, every call fails with it.
    pub fn sync(&self) -> io::Result<()> {
        let mut state = self.lock();
        state.requested += 1;
        let ticket = state.requested;
        loop {
            if let Some((kind, detail)) = &state.failed {
                return Err(io::Error::new(*kind, format!("syncfs failed earlier: {detail}")));
            }
            if state.synced >= ticket {
                return Ok(());
            }
            if state.running {
                state = self.done.wait(state).unwrap_or_else(std::sync::PoisonError::into_inner);
                continue;
            }
            // Run one for every call made so far, this one included.
            state.running = true;
            let covers = state.requested;
            drop(state);
            let result = syncfs(&self.dir);
            state = self.lock();
            state.running = false;
            match result {
                Ok(()) => state.synced = state.synced.max(covers),
                Err(e) => state.failed = Some((e.kind(), e.to_string())),
            }
            self.done.notify_all();
        }
    }
}

#[cfg(target_os = "linux")]
fn syncfs(dir: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is open for as long as `dir` lives.
    if unsafe { libc::syncfs(dir.as_raw_fd()) } == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

#[cfg(not(target_os = "linux"))]
fn syncfs(dir: &File) -> io::Result<()> {
    // No per-filesystem sync elsewhere: the directory's fsync plus a global sync.
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    dir.sync_all()
}

/// A name beside `path` for a temporary file or folder: hidden, unique in this process, and
/// marked as temporary ([`is_tmp_file`]), so a scan never takes it for a photo.
pub fn tmp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}{TMP_MARKER}{}-{n}", std::process::id()))
}

/// True for a leftover temp file of [`atomic_write`].
pub fn is_tmp_file(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n.to_string_lossy().contains(TMP_MARKER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_creates_parents_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/c.json");
        atomic_write(&path, b"one").unwrap();
        atomic_write(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        // No temp debris after successful writes.
        let names: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("c.json")]);
    }

    #[test]
    fn every_concurrent_sync_returns_covered() {
        let dir = tempfile::tempdir().unwrap();
        let group = std::sync::Arc::new(SyncGroup::open(dir.path()).unwrap());
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let (group, path) = (group.clone(), dir.path().join(format!("r{i}.json")));
                std::thread::spawn(move || {
                    group.replace(&path, b"{}").unwrap();
                    group.sync().unwrap();
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let state = group.state.lock().unwrap();
        // Two calls a file: before the rename and after it.
        assert_eq!((state.requested, state.synced, state.running), (16, 16, false), "every call is covered");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 8);
    }

    #[test]
    fn a_failed_sync_fails_every_later_one() {
        let dir = tempfile::tempdir().unwrap();
        let group = SyncGroup::open(dir.path()).unwrap();
        group.sync().unwrap();
        group.lock().failed = Some((io::ErrorKind::Other, "EIO".into()));
        let err = group.sync().unwrap_err().to_string();
        assert!(err.contains("syncfs failed earlier: EIO"), "{err}");
        assert!(group.replace(&dir.path().join("r.json"), b"{}").is_err());
        assert!(!dir.path().join("r.json").exists(), "nothing replaced after a failed sync");
    }

    #[test]
    fn tmp_names_are_recognised() {
        let tmp = tmp_path(Path::new("/x/y.json"));
        assert!(is_tmp_file(&tmp));
        assert!(tmp.file_name().unwrap().to_string_lossy().starts_with(".y.json"));
        assert!(!is_tmp_file(Path::new("/x/y.json")));
    }
}
