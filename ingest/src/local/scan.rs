//! Listing the inbox: which files are photos-to-be (their etag is the local store's,
//! `autorma_core::store::local::local_etag`).

use std::collections::HashSet;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use autorma_core::{SourceError, fsutil};

/// A file found by a scan.
#[derive(Debug, Clone)]
pub struct ScannedFile {
    /// Path relative to the inbox, `/`-separated.
    pub key: String,
    pub size: u64,
    pub modified: SystemTime,
}

/// What a scan skips: hidden entries (dotfiles, editor and copy temp files) and the excluded
/// folder (the output folder when it sits inside the inbox).
#[derive(Debug, Clone)]
pub struct ScanFilter {
    exclude: Option<PathBuf>,
}

impl ScanFilter {
    pub fn new(inbox: &Path, exclude: Option<&Path>) -> Self {
        // Compare canonical paths so `out` and `./inbox/../out` are the same folder.
        let exclude = exclude.and_then(|p| std::fs::canonicalize(p).ok().or_else(|| Some(inbox.join(p))));
        Self { exclude }
    }

    fn skips(&self, path: &Path) -> bool {
        let hidden = path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'));
        hidden
            || fsutil::is_tmp_file(path)
            || self.exclude.as_ref().is_some_and(|ex| std::fs::canonicalize(path).is_ok_and(|p| &p == ex))
    }
}

/// What a scan found.
#[derive(Debug, Default)]
pub struct Scan {
    pub files: Vec<ScannedFile>,
    /// Entries that are not photos, with why: a link to nothing, a FIFO, a socket, a device.
    pub skipped: Vec<(PathBuf, &'static str)>,
}

/// Lists regular files under `inbox`, sorted by key. With `settle`, files modified less than
/// that long ago are left out (they may still be being written).
pub fn scan(inbox: &Path, filter: &ScanFilter, settle: Option<Duration>) -> Result<Scan, SourceError> {
    let now = SystemTime::now();
    let mut found = Scan::default();
    let mut dirs = vec![inbox.to_path_buf()];
    // Folders by (device, inode): one reached again through a symlink is not listed again. A
    // link back up the tree would otherwise list the same photos under ever longer keys until
    // the path no longer resolves and the whole scan fails.
    let mut seen_dirs = HashSet::new();
    if let Ok(meta) = std::fs::metadata(inbox) {
        seen_dirs.insert((meta.dev(), meta.ino()));
    }
    while let Some(dir) = dirs.pop() {
        let scan_err = |source| SourceError::Scan { path: dir.display().to_string(), source };
        // Sorted, so that of two links to one folder the same one wins every scan.
        let mut paths = std::fs::read_dir(&dir)
            .and_then(|entries| entries.map(|entry| entry.map(|e| e.path())).collect::<Result<Vec<_>, _>>())
            .map_err(scan_err)?;
        paths.sort();
        for path in paths {
            if filter.skips(&path) {
                continue;
            }
            // Follows symlinks: a linked photo is a photo (the store refuses one whose target
            // leaves the inbox, and the photo is dead-lettered with that reason).
            let Ok(meta) = std::fs::metadata(&path) else {
                found.skipped.push((path, "a link to nothing"));
                continue;
            };
            if meta.is_dir() {
                if seen_dirs.insert((meta.dev(), meta.ino())) {
                    dirs.push(path);
                }
                continue;
            }
            if !meta.is_file() {
                let kind = meta.file_type();
                let why = if kind.is_fifo() {
                    "a FIFO"
                } else if kind.is_socket() {
                    "a socket"
                } else if kind.is_block_device() || kind.is_char_device() {
                    "a device"
                } else {
                    "not a regular file"
                };
                found.skipped.push((path, why));
                continue;
            }
            let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            if settle.is_some_and(|settle| now.duration_since(modified).unwrap_or_default() < settle) {
                continue;
            }
            let rel = path.strip_prefix(inbox).expect("scanned path is under the inbox");
            let Some(key) = rel.to_str().map(|k| k.replace(std::path::MAIN_SEPARATOR, "/")) else {
                tracing::warn!(path = %path.display(), "skipping a file whose name is not UTF-8");
                continue;
            };
            found.files.push(ScannedFile { key, size: meta.len(), modified });
        }
    }
    found.files.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_hidden_tmp_and_excluded() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = dir.path();
        for p in ["a.jpg", "sub/b.jpg", ".DS_Store", ".git/x", "out/results/a.jpg.json", ".c.jpg.autorma-tmp-1-1"] {
            let path = inbox.join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"x").unwrap();
        }
        let filter = ScanFilter::new(inbox, Some(&inbox.join("out")));
        let keys: Vec<_> = scan(inbox, &filter, None).unwrap().files.into_iter().map(|f| f.key).collect();
        assert_eq!(keys, vec!["a.jpg", "sub/b.jpg"]);
        // Everything is fresh: with a settle time nothing is ready yet.
        assert!(scan(inbox, &filter, Some(Duration::from_secs(60))).unwrap().files.is_empty());
    }

    #[test]
    fn a_symlink_cycle_is_listed_once() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = dir.path();
        for p in ["a.jpg", "sub/b.jpg"] {
            let path = inbox.join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"x").unwrap();
        }
        std::os::unix::fs::symlink(inbox, inbox.join("sub/up")).unwrap();
        std::os::unix::fs::symlink(inbox.join("sub"), inbox.join("alias")).unwrap();
        let filter = ScanFilter::new(inbox, None);
        let keys: Vec<_> = scan(inbox, &filter, None).unwrap().files.into_iter().map(|f| f.key).collect();
        assert_eq!(keys.len(), 2, "{keys:?}");
        assert_eq!(keys[0], "a.jpg");
        assert!(keys[1].ends_with("b.jpg"), "{keys:?}");
        assert_eq!(scan(inbox, &filter, None).unwrap().files[1].key, keys[1], "the same alias wins every scan");
    }

    #[test]
    fn what_is_not_a_file_is_skipped_with_its_reason() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = dir.path();
        std::fs::write(inbox.join("a.jpg"), b"x").unwrap();
        std::os::unix::fs::symlink(inbox.join("gone.jpg"), inbox.join("dangling.jpg")).unwrap();
        assert!(std::process::Command::new("mkfifo").arg(inbox.join("pipe.jpg")).status().unwrap().success());
        let found = scan(inbox, &ScanFilter::new(inbox, None), None).unwrap();
        assert_eq!(found.files.len(), 1);
        let skipped: Vec<(String, &str)> = found
            .skipped
            .iter()
            .map(|(p, why)| (p.file_name().unwrap().to_string_lossy().into_owned(), *why))
            .collect();
        assert_eq!(skipped, [("dangling.jpg".to_string(), "a link to nothing"), ("pipe.jpg".to_string(), "a FIFO")]);
    }
}
