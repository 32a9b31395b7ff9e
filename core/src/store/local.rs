//! A local folder as the object store: key `a/b.jpg` of the one bucket is `<root>/a/b.jpg`.

use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use super::{ObjectStore, StoreError};

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

    /// The folder the keys are resolved against.
    pub fn root(&self) -> &std::path::Path {
        &self.inner.root
    }

    /// Maps a key to a path under the root, refusing keys that could escape it.
    pub fn path_for_key(&self, key: &str) -> Result<PathBuf, StoreError> {
        key_to_relative_path(key).map(|rel| self.inner.root.join(rel))
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

impl ObjectStore for LocalStore {
    async fn get(&self, bucket: &str, key: &str, max_bytes: u64) -> Result<Bytes, StoreError> {
        if bucket != self.inner.bucket {
            return Err(StoreError::UnknownBucket { bucket: bucket.to_string(), served: self.inner.bucket.clone() });
        }
        let path = self.path_for_key(key)?;
        let (bucket, key) = (bucket.to_string(), key.to_string());
        tokio::task::spawn_blocking(move || read_limited(&path, &bucket, &key, max_bytes))
            .await
            .expect("blocking read task panicked")
    }
}

fn read_limited(path: &Path, bucket: &str, key: &str, max_bytes: u64) -> Result<Bytes, StoreError> {
    let io_err = |source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::NotFound {
            StoreError::NotFound { bucket: bucket.to_string(), key: key.to_string() }
        } else {
            StoreError::Io { bucket: bucket.to_string(), key: key.to_string(), source }
        }
    };
    let file = std::fs::File::open(path).map_err(io_err)?;
    let size = file.metadata().map_err(io_err)?.len();
    let too_large = |size| StoreError::TooLarge { bucket: bucket.to_string(), key: key.to_string(), size, max_bytes };
    if size > max_bytes {
        return Err(too_large(size));
    }
    // The file may grow between the stat and the read: never read more than the limit + 1.
    let mut buf = Vec::with_capacity(size as usize);
    file.take(max_bytes + 1).read_to_end(&mut buf).map_err(io_err)?;
    if buf.len() as u64 > max_bytes {
        return Err(too_large(buf.len() as u64));
    }
    Ok(Bytes::from(buf))
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
        let err = store.get("other", "sub/a.jpg", 5).await.unwrap_err();
        assert!(matches!(err, StoreError::UnknownBucket { .. }));
    }
}
