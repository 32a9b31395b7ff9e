//! A local folder as the object store: key `a/b.jpg` of the one bucket is `<root>/a/b.jpg`.
//!
//! Writes replace files atomically (temp file, fsync, rename). A conditional write checks and
//! writes under an exclusive lock on the root folder itself (no lock file appears in it), so
//! processes on this machine see it as one step, as S3's conditional writes are. An object's
//! user metadata is kept in the file's extended attributes (`user.<name>`), so it stays with
//! the file as S3's stays with the object.

use std::fs::File;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::{Object, ObjectInfo, ObjectStore, StoreError, WriteCondition};
use crate::claim::Metadata;
use crate::fsutil;

#[derive(Debug, Clone)]
pub struct LocalStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The bucket name this folder stands for (events carry it; others are refused).
    bucket: String,
    root: PathBuf,
}

impl LocalStore {
    pub fn new(bucket: impl Into<String>, root: impl Into<PathBuf>) -> Self {
        Self { inner: Arc::new(Inner { bucket: bucket.into(), root: root.into() }) }
    }

    /// The bucket name this folder stands for.
    pub fn bucket(&self) -> &str {
        &self.inner.bucket
    }

    /// The folder the keys are resolved against.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Maps a key to a path under the root, refusing keys that could escape it.
    pub fn path_for_key(&self, key: &str) -> Result<PathBuf, StoreError> {
        key_to_relative_path(key).map(|rel| self.inner.root.join(rel))
    }

    /// The key's path and an error builder for it, once the bucket is known to be this one.
    fn locate(&self, bucket: &str, key: &str) -> Result<(PathBuf, Located), StoreError> {
        let at = self.at(bucket, key)?;
        Ok((self.path_for_key(key)?, at))
    }

    fn at(&self, bucket: &str, key: &str) -> Result<Located, StoreError> {
        if bucket != self.inner.bucket {
            return Err(StoreError::UnknownBucket { bucket: bucket.to_string(), served: self.inner.bucket.clone() });
        }
        Ok(Located { bucket: bucket.to_string(), key: key.to_string() })
    }
}

/// Names an object in errors.
struct Located {
    bucket: String,
    key: String,
}

impl Located {
    fn io(&self, action: &'static str, source: std::io::Error) -> StoreError {
        if source.kind() == std::io::ErrorKind::NotFound && action == "read" {
            return StoreError::NotFound { bucket: self.bucket.clone(), key: self.key.clone() };
        }
        StoreError::Io { bucket: self.bucket.clone(), key: self.key.clone(), action, source }
    }

    fn too_large(&self, size: u64, max_bytes: u64) -> StoreError {
        StoreError::TooLarge { bucket: self.bucket.clone(), key: self.key.clone(), size, max_bytes }
    }
}

/// `a/b.jpg` -> `a/b.jpg` as a relative path; refuses empty, absolute and `..` keys so a key
/// can never name a file outside the folder it is resolved against.
pub fn key_to_relative_path(key: &str) -> Result<PathBuf, StoreError> {
    let invalid = |reason| StoreError::InvalidKey { key: key.to_string(), reason };
    if key.is_empty() {
        return Err(invalid("empty"));
    }
    let path = Path::new(key);
    for component in path.components() {
        match component {
            Component::Normal(_) => {}
            Component::CurDir => return Err(invalid("contains `.`")),
            Component::ParentDir => return Err(invalid("contains `..`")),
            Component::RootDir | Component::Prefix(_) => return Err(invalid("is absolute")),
        }
    }
    Ok(path.to_path_buf())
}

/// The etag of a local file: hex of the first 16 bytes of `sha256("<size>:<mtime ns>")`.
///
/// Why not a content hash: a scan would read every photo twice (once to hash, once to
/// classify). Size + mtime is what rsync and make trust, it changes when a photo is replaced,
/// and like S3's ETag it identifies a version of an object, not its pixels. Writes through
/// the store move the mtime forward by at least a nanosecond, so each gets a new etag even
/// within one tick of the file system's clock.
pub fn local_etag(size: u64, modified: SystemTime) -> String {
    let nanos = modified.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let digest = Sha256::digest(format!("{size}:{nanos}").as_bytes());
    hex::encode(&digest[..16])
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f).await.expect("local store task panicked")
}

impl ObjectStore for LocalStore {
    async fn get_object(&self, bucket: &str, key: &str, max_bytes: u64) -> Result<Object, StoreError> {
        let (path, at) = self.locate(bucket, key)?;
        let root = self.inner.root.clone();
        blocking(move || read_limited(&within(&root, &path, &at)?, &at, max_bytes)).await
    }

    async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        _content_type: &str,
        metadata: &Metadata,
    ) -> Result<(), StoreError> {
        let (path, at) = self.locate(bucket, key)?;
        let (root, metadata) = (self.inner.root.clone(), metadata.clone());
        blocking(move || write_locked(&root, &path, &at, &body, &metadata, None).map(|_| ())).await
    }

    async fn put_if(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        _content_type: &str,
        condition: WriteCondition<'_>,
    ) -> Result<bool, StoreError> {
        let (path, at) = self.locate(bucket, key)?;
        let root = self.inner.root.clone();
        let expected = match condition {
            WriteCondition::IfAbsent => None,
            WriteCondition::IfMatch(etag) => Some(etag.to_string()),
        };
        blocking(move || write_locked(&root, &path, &at, &body, &Metadata::new(), Some(expected))).await
    }

    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let at = self.at(bucket, prefix)?;
        // Walk the deepest folder the prefix names, then filter by the whole prefix.
        let start = match prefix.rsplit_once('/') {
            Some((dir, _)) if !dir.is_empty() => self.path_for_key(dir)?,
            _ => self.inner.root.clone(),
        };
        let (root, prefix) = (self.inner.root.clone(), prefix.to_string());
        blocking(move || {
            let mut out = Vec::new();
            walk(&root, &start, &mut out).map_err(|e| at.io("list", e))?;
            out.retain(|o| o.key.starts_with(&prefix));
            out.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(out)
        })
        .await
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), StoreError> {
        let (path, at) = self.locate(bucket, key)?;
        blocking(move || match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(at.io("delete", e)),
            _ => Ok(()),
        })
        .await
    }
}

/// `path` with its links resolved, when that stays under `root` (resolved too). A link in the
/// folder may name another of its files, not one elsewhere (`/etc/passwd`, another user's
/// photos): the pipeline would classify it and `GET /v1/photos` hand it out. The resolved path
/// is what is opened, so a link changed after the check is not followed.
fn within(root: &Path, path: &Path, at: &Located) -> Result<PathBuf, StoreError> {
    let resolved = path.canonicalize().map_err(|e| at.io("read", e))?;
    let root = root.canonicalize().map_err(|e| at.io("read", e))?;
    if !resolved.starts_with(&root) {
        return Err(StoreError::InvalidKey { key: at.key.clone(), reason: "is a link to a file outside the folder" });
    }
    Ok(resolved)
}

fn read_limited(path: &Path, at: &Located, max_bytes: u64) -> Result<Object, StoreError> {
    let file = File::open(path).map_err(|e| at.io("read", e))?;
    // The etag of the file that was opened, whatever replaces it meanwhile.
    let meta = file.metadata().map_err(|e| at.io("read", e))?;
    if meta.is_dir() {
        return Err(StoreError::NotFound { bucket: at.bucket.clone(), key: at.key.clone() });
    }
    let size = meta.len();
    if size > max_bytes {
        return Err(at.too_large(size, max_bytes));
    }
    let etag = local_etag(size, meta.modified().map_err(|e| at.io("read", e))?);
    // The file may grow between the stat and the read: never read more than the limit + 1.
    let mut buf = Vec::with_capacity(size as usize);
    (&file).take(max_bytes + 1).read_to_end(&mut buf).map_err(|e| at.io("read", e))?;
    if buf.len() as u64 > max_bytes {
        return Err(at.too_large(buf.len() as u64, max_bytes));
    }
    let metadata = xattr::read(&file).map_err(|e| at.io("read the metadata of", e))?;
    Ok(Object { bytes: Bytes::from(buf), etag, metadata })
}

/// Writes `body` and `metadata` at `path` under the root's lock; with `condition` (`Some(None)`:
/// only if absent, `Some(Some(etag))`: only if the current etag is that one), `Ok(false)` when
/// it does not hold.
fn write_locked(
    root: &Path,
    path: &Path,
    at: &Located,
    body: &[u8],
    metadata: &Metadata,
    condition: Option<Option<String>>,
) -> Result<bool, StoreError> {
    let io = |e| at.io("write", e);
    std::fs::create_dir_all(root).map_err(io)?;
    // flock on the folder: released when `lock` is dropped, or when the process dies.
    let lock = File::open(root).map_err(io)?;
    lock.lock().map_err(io)?;
    let current = match std::fs::metadata(path) {
        Ok(meta) => Some(meta),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io(e)),
    };
    let current_modified = current.as_ref().map(|m| m.modified()).transpose().map_err(io)?;
    if let Some(expected) = condition {
        let current_etag = current.as_ref().zip(current_modified).map(|(m, t)| local_etag(m.len(), t));
        if current_etag != expected {
            return Ok(false);
        }
    }
    let now = SystemTime::now();
    let modified = match current_modified {
        Some(before) if before >= now => before + Duration::from_nanos(1),
        _ => now,
    };
    fsutil::atomic_write_modified(path, body, modified, |file| xattr::write(file, metadata)).map_err(io)?;
    Ok(true)
}

/// Every file under `dir` as an object of `root`; temporary files of interrupted writes are
/// not objects. Folders are entered only as themselves (a symlinked folder could loop).
fn walk(root: &Path, dir: &Path, out: &mut Vec<ObjectInfo>) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            walk(root, &path, out)?;
            continue;
        }
        if fsutil::is_tmp_file(&path) {
            continue;
        }
        let Ok(meta) = std::fs::metadata(&path) else { continue };
        if !meta.is_file() {
            continue;
        }
        let modified = meta.modified()?;
        let rel = path.strip_prefix(root).expect("walked from the root");
        out.push(ObjectInfo {
            key: rel.to_string_lossy().replace(std::path::MAIN_SEPARATOR, "/"),
            etag: local_etag(meta.len(), modified),
            size: meta.len(),
            last_modified: DateTime::<Utc>::from(modified),
        });
    }
    Ok(())
}

/// Metadata as extended attributes of the `user.` namespace.
mod xattr {
    use std::fs::File;
    use std::io;

    use crate::claim::Metadata;

    const NAMESPACE: &str = "user.";

    /// Every `user.` attribute of the file; none on a file system that keeps none.
    pub fn read(file: &File) -> io::Result<Metadata> {
        let names = match rustix::fs::flistxattr_query(file) {
            Ok(0) => return Ok(Metadata::new()),
            Ok(len) => {
                let mut names = vec![0u8; len];
                let len = rustix::fs::flistxattr(file, &mut names[..])?;
                names.truncate(len);
                names
            }
            Err(rustix::io::Errno::NOTSUP) => return Ok(Metadata::new()),
            Err(e) => return Err(e.into()),
        };
        let mut metadata = Metadata::new();
        for name in names.split(|b| *b == 0).filter_map(|n| std::str::from_utf8(n).ok()) {
            let Some(short) = name.strip_prefix(NAMESPACE) else { continue };
            let mut value = vec![0u8; rustix::fs::fgetxattr_query(file, name)?];
            let len = rustix::fs::fgetxattr(file, name, &mut value[..])?;
            value.truncate(len);
            metadata.insert(short.to_ascii_lowercase(), String::from_utf8_lossy(&value).into_owned());
        }
        Ok(metadata)
    }

    /// Sets each entry as `user.<name>`; a file system that keeps no attributes is an error
    /// only when there is metadata to keep.
    pub fn write(file: &File, metadata: &Metadata) -> io::Result<()> {
        for (name, value) in metadata {
            let set = rustix::fs::fsetxattr(
                file,
                format!("{NAMESPACE}{name}"),
                value.as_bytes(),
                rustix::fs::XattrFlags::empty(),
            );
            set.map_err(|e| match e {
                rustix::io::Errno::NOTSUP => io::Error::new(
                    io::ErrorKind::Unsupported,
                    "this file system keeps no extended attributes, where the folder store keeps an object's metadata",
                ),
                e => e.into(),
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_escape_the_root() {
        assert!(key_to_relative_path("a/b.jpg").is_ok());
        assert!(matches!(key_to_relative_path("../x"), Err(StoreError::InvalidKey { .. })));
        assert!(matches!(key_to_relative_path("/etc/passwd"), Err(StoreError::InvalidKey { .. })));
        assert!(matches!(key_to_relative_path("a/../../x"), Err(StoreError::InvalidKey { .. })));
        assert!(matches!(key_to_relative_path(""), Err(StoreError::InvalidKey { .. })));
    }

    #[test]
    fn etag_tracks_size_and_mtime() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(local_etag(10, t), local_etag(10, t));
        assert_ne!(local_etag(10, t), local_etag(11, t));
        assert_ne!(local_etag(10, t), local_etag(10, t + Duration::from_nanos(1)));
        assert_eq!(local_etag(10, t).len(), 32);
    }

    #[tokio::test]
    async fn a_link_is_read_only_while_it_stays_in_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let (root, elsewhere) = (dir.path().join("inbox"), dir.path().join("secret.txt"));
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/a.jpg"), b"photo").unwrap();
        std::fs::write(&elsewhere, b"secret").unwrap();
        std::os::unix::fs::symlink(root.join("sub/a.jpg"), root.join("inside.jpg")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, root.join("outside.jpg")).unwrap();
        std::os::unix::fs::symlink(dir.path(), root.join("up")).unwrap();
        let store = LocalStore::new("local", &root);
        assert_eq!(&store.get("local", "inside.jpg", 100).await.unwrap()[..], b"photo");
        for key in ["outside.jpg", "up/secret.txt"] {
            let err = store.get("local", key, 100).await.unwrap_err();
            assert!(matches!(err, StoreError::InvalidKey { .. }), "{key}: {err}");
            assert!(err.to_string().contains("outside the folder"), "{err}");
        }
    }

    #[tokio::test]
    async fn get_reads_refuses_and_reports() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/a.jpg"), b"12345").unwrap();
        let store = LocalStore::new("local", dir.path());
        assert_eq!(&store.get("local", "sub/a.jpg", 5).await.unwrap()[..], b"12345");
        let err = store.get("local", "sub/a.jpg", 4).await.unwrap_err();
        assert!(matches!(err, StoreError::TooLarge { size: 5, max_bytes: 4, .. }), "{err}");
        assert!(!err.is_retryable());
        let err = store.get("local", "sub/missing.jpg", 5).await.unwrap_err();
        assert!(matches!(err, StoreError::NotFound { .. }));
        let err = store.get("local", "sub", 5).await.unwrap_err();
        assert!(matches!(err, StoreError::NotFound { .. }), "a folder is not an object: {err}");
        let err = store.get("other", "sub/a.jpg", 5).await.unwrap_err();
        assert!(matches!(err, StoreError::UnknownBucket { .. }));
    }

    #[tokio::test]
    async fn the_boundary_contract_holds() {
        let dir = tempfile::tempdir().unwrap();
        crate::testsuite::object_store_contract(&LocalStore::new("local", dir.path().join("root")), "local", "").await;
        // Nothing but the objects is left in the folder: no lock file, no temp files.
        let mut names = Vec::new();
        let mut dirs = vec![dir.path().join("root")];
        while let Some(d) = dirs.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    names.push(path.strip_prefix(dir.path()).unwrap().display().to_string());
                }
            }
        }
        names.sort();
        assert_eq!(names, ["root/a/1.json", "root/a/2.json", "root/b.json"]);
    }

    #[tokio::test]
    async fn a_write_in_the_same_clock_tick_still_changes_the_etag() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new("local", dir.path());
        store.put("local", "k", Bytes::from_static(b"one"), "text/plain").await.unwrap();
        // The file's mtime in the future: the next write's clock reading is not after it.
        let path = dir.path().join("k");
        let ahead = SystemTime::now() + Duration::from_secs(60);
        File::options().write(true).open(&path).unwrap().set_modified(ahead).unwrap();
        let (_, before) = store.get_tagged("local", "k", 10).await.unwrap();
        store.put("local", "k", Bytes::from_static(b"two"), "text/plain").await.unwrap();
        let (bytes, after) = store.get_tagged("local", "k", 10).await.unwrap();
        assert_eq!(&bytes[..], b"two");
        assert_ne!(before, after, "same size, same clock tick, new etag");
        assert!(
            !store.put_if("local", "k", Bytes::from_static(b"3"), "", WriteCondition::IfMatch(&before)).await.unwrap()
        );
    }
}
