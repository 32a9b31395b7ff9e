//! Atomic file replacement: the only way embedded mode writes a result, a DLQ record or a
//! checkpoint, so a `kill -9` leaves either the old file or the new one, never half of one.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Marks temporary files; anything containing it is debris of an interrupted write.
pub const TMP_MARKER: &str = ".autorma-tmp-";

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to `path` atomically and durably: temp file in the same directory, fsync,
/// rename over `path`, fsync the directory (so the rename itself survives a power cut).
/// Creates missing parent directories.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().filter(|dir| !dir.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let tmp = tmp_path(path);
    let result = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn tmp_path(path: &Path) -> PathBuf {
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
    fn tmp_names_are_recognised() {
        let tmp = tmp_path(Path::new("/x/y.json"));
        assert!(is_tmp_file(&tmp));
        assert!(tmp.file_name().unwrap().to_string_lossy().starts_with(".y.json"));
        assert!(!is_tmp_file(Path::new("/x/y.json")));
    }
}
