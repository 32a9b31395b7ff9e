//! Where the registry's objects live: the bucket in streaming mode, a local folder in embedded
//! mode. Both give the registry the same four operations, including the conditional writes
//! that keep two pushes from taking one version number and two promotions from losing one.

use std::fs::File;
use std::path::{Path, PathBuf};

use autorma_core::store::local::key_to_relative_path;
use autorma_core::{S3Store, StoreError, WriteCondition, fsutil};
use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::error::RegistryError;

/// Largest object the registry reads (a model file).
pub const MAX_OBJECT_BYTES: u64 = 2 << 30;

#[derive(Debug, Clone)]
pub enum RegistryStore {
    /// Keys are files under `root` (`root/models/<name>/...`).
    Local {
        root: PathBuf,
    },
    S3 {
        store: S3Store,
        bucket: String,
    },
}

impl RegistryStore {
    /// How logs and messages name the place: `s3://bucket` or the folder.
    pub fn describe(&self) -> String {
        match self {
            RegistryStore::Local { root } => root.display().to_string(),
            RegistryStore::S3 { bucket, .. } => format!("s3://{bucket}"),
        }
    }

    /// The object's bytes and its etag (the S3 etag, or the sha256 of a local file).
    pub async fn read(&self, key: &str, max_bytes: u64) -> Result<Option<(Bytes, String)>, RegistryError> {
        match self {
            RegistryStore::S3 { store, bucket } => Ok(store.get_with_etag(bucket, key, max_bytes).await?),
            RegistryStore::Local { .. } => {
                let path = self.local_path(key)?;
                blocking(move || match std::fs::read(&path) {
                    Ok(bytes) => {
                        let etag = hex::encode(Sha256::digest(&bytes));
                        Ok(Some((Bytes::from(bytes), etag)))
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(source) => Err(RegistryError::Read { path, source }),
                })
                .await
            }
        }
    }

    /// Writes `bytes` at `key` if `condition` holds (always when `None`); `Ok(false)` when it
    /// did not and nothing was written.
    pub async fn write(
        &self,
        key: &str,
        bytes: Bytes,
        condition: Option<WriteCondition<'_>>,
    ) -> Result<bool, RegistryError> {
        match self {
            RegistryStore::S3 { store, bucket } => {
                let content_type = if key.ends_with(".json") { "application/json" } else { "application/octet-stream" };
                match condition {
                    None => store.put(bucket, key, bytes, content_type).await.map(|()| true),
                    Some(condition) => store.put_if(bucket, key, bytes, content_type, condition).await,
                }
                .map_err(RegistryError::from)
            }
            RegistryStore::Local { root } => {
                let path = self.local_path(key)?;
                let lock_path = root.join(".registry.lock");
                let expected = condition.map(|c| match c {
                    WriteCondition::IfAbsent => None,
                    WriteCondition::IfMatch(etag) => Some(etag.to_string()),
                });
                blocking(move || {
                    let write_err = |source| RegistryError::Write { path: path.clone(), source };
                    std::fs::create_dir_all(lock_path.parent().expect("has a parent")).map_err(write_err)?;
                    // One lock for the folder: the check and the write are one step for every
                    // process on this machine (File::unlock happens when the file is dropped).
                    let lock = File::create(&lock_path).map_err(write_err)?;
                    lock.lock().map_err(write_err)?;
                    if let Some(expected) = expected {
                        let current = match std::fs::read(&path) {
                            Ok(bytes) => Some(hex::encode(Sha256::digest(&bytes))),
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                            Err(source) => return Err(RegistryError::Read { path: path.clone(), source }),
                        };
                        if current != expected {
                            return Ok(false);
                        }
                    }
                    fsutil::atomic_write(&path, &bytes).map_err(write_err)?;
                    Ok(true)
                })
                .await
            }
        }
    }

    /// Every key under `prefix`.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, RegistryError> {
        match self {
            RegistryStore::S3 { store, bucket } => {
                Ok(store.list(bucket, prefix).await?.into_iter().map(|o| o.key).collect())
            }
            RegistryStore::Local { root } => {
                let (root, prefix) = (root.clone(), prefix.to_string());
                blocking(move || {
                    // Walk the deepest folder the prefix names, then filter by the whole prefix.
                    let dir = root.join(prefix.rsplit_once('/').map_or("", |(dir, _)| dir));
                    let mut keys = Vec::new();
                    walk(&root, &dir, &mut keys)?;
                    keys.retain(|k| k.starts_with(&prefix));
                    keys.sort();
                    Ok(keys)
                })
                .await
            }
        }
    }

    /// The folder a key is a file in, for a local registry (a package is loaded in place).
    pub fn local_dir(&self, key_prefix: &str) -> Option<PathBuf> {
        match self {
            RegistryStore::Local { root } => Some(root.join(key_prefix.trim_end_matches('/'))),
            RegistryStore::S3 { .. } => None,
        }
    }

    fn local_path(&self, key: &str) -> Result<PathBuf, RegistryError> {
        let RegistryStore::Local { root } = self else { unreachable!("only local keys are paths") };
        Ok(root.join(key_to_relative_path(key)?))
    }
}

fn walk(root: &Path, dir: &Path, keys: &mut Vec<String>) -> Result<(), RegistryError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(RegistryError::Read { path: dir.to_path_buf(), source }),
    };
    for entry in entries {
        let path = entry.map_err(|source| RegistryError::Read { path: dir.to_path_buf(), source })?.path();
        if path.is_dir() {
            walk(root, &path, keys)?;
        } else if !fsutil::is_tmp_file(&path) && path.file_name().is_some_and(|n| n != ".registry.lock") {
            let rel = path.strip_prefix(root).expect("walked from root");
            keys.push(rel.to_string_lossy().replace(std::path::MAIN_SEPARATOR, "/"));
        }
    }
    Ok(())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RegistryError> + Send + 'static,
) -> Result<T, RegistryError> {
    tokio::task::spawn_blocking(f).await.expect("registry file operation panicked")
}

impl From<StoreError> for RegistryError {
    fn from(e: StoreError) -> Self {
        RegistryError::Store(e)
    }
}
