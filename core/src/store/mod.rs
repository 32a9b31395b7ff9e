//! The object store boundary: where photos are read from and where results, dead letters,
//! corrections and the model registry are written (S3/MinIO/versitygw, a local folder, or
//! memory in unit tests). Everything that touches objects goes through [`ObjectStore`], so
//! which of the three it is gets decided once, where the binary builds a [`Store`].

pub mod local;
pub mod memory;
#[cfg(feature = "s3")]
pub mod s3;

use std::future::Future;
use std::path::PathBuf;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::claim::Metadata;

pub use local::LocalStore;
pub use memory::MemoryStore;
#[cfg(feature = "s3")]
pub use s3::{S3Config, S3Store};

/// Reads, writes and lists objects. Implementations must be cheap to share (`&self`,
/// `Send + Sync`); every write replaces an object whole (readers see the old or the new one).
pub trait ObjectStore: Send + Sync + 'static {
    /// The whole object, its etag (without quotes) and its user metadata, refusing (without
    /// reading it) one larger than `max_bytes`; [`StoreError::NotFound`] when there is no such
    /// key (see [`optional`]).
    fn get_object(
        &self,
        bucket: &str,
        key: &str,
        max_bytes: u64,
    ) -> impl Future<Output = Result<Object, StoreError>> + Send;

    /// The whole object and its etag, as [`get_object`](Self::get_object).
    fn get_tagged(
        &self,
        bucket: &str,
        key: &str,
        max_bytes: u64,
    ) -> impl Future<Output = Result<(Bytes, String), StoreError>> + Send {
        async move { self.get_object(bucket, key, max_bytes).await.map(|o| (o.bytes, o.etag)) }
    }

    /// The whole object, as [`get_object`](Self::get_object) without etag and metadata.
    fn get(&self, bucket: &str, key: &str, max_bytes: u64) -> impl Future<Output = Result<Bytes, StoreError>> + Send {
        async move { self.get_object(bucket, key, max_bytes).await.map(|o| o.bytes) }
    }

    /// Writes the object whole, with its user metadata (S3's `x-amz-meta-<name>`).
    fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        content_type: &str,
        metadata: &Metadata,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Writes the object whole, with no user metadata.
    fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        content_type: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        async move { self.put_object(bucket, key, body, content_type, &Metadata::new()).await }
    }

    /// Writes the object only if `condition` holds, the check and the write one atomic step;
    /// `Ok(false)`: it did not hold and nothing was written.
    fn put_if(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        content_type: &str,
        condition: WriteCondition<'_>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Every object whose key starts with `prefix`, sorted by key.
    fn list(&self, bucket: &str, prefix: &str) -> impl Future<Output = Result<Vec<ObjectInfo>, StoreError>> + Send;

    /// One page of [`list`](Self::list): at most `max` of its objects, those that sort after
    /// `start_after`; so a caller walking a large bucket holds one page at a time. This default
    /// lists everything and cuts (the local folder walks its tree anyway); S3 and memory ask
    /// for the page alone.
    fn list_page(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: Option<&str>,
        max: usize,
    ) -> impl Future<Output = Result<ListPage, StoreError>> + Send {
        async move {
            let mut objects = self.list(bucket, prefix).await?;
            if let Some(after) = start_after {
                objects.retain(|o| o.key.as_str() > after);
            }
            let complete = objects.len() <= max;
            objects.truncate(max);
            Ok(ListPage { objects, complete })
        }
    }

    /// Deletes the object; no error when there is none.
    fn delete(&self, bucket: &str, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// `None` for a missing object, so callers for whom absence is an answer need no match.
pub fn optional<T>(result: Result<T, StoreError>) -> Result<Option<T>, StoreError> {
    match result {
        Ok(found) => Ok(Some(found)),
        Err(StoreError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The precondition of [`ObjectStore::put_if`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteCondition<'a> {
    /// Only if no object has the key (`If-None-Match: *`).
    IfAbsent,
    /// Only if the object still has this etag (`If-Match`): a compare-and-swap.
    IfMatch(&'a str),
}

/// An object as [`ObjectStore::get_object`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub bytes: Bytes,
    /// Without the quotes S3 puts around it.
    pub etag: String,
    /// User metadata by lower-case name.
    pub metadata: Metadata,
}

/// One object seen by a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    /// Without the quotes S3 puts around it.
    pub etag: String,
    pub size: u64,
    pub last_modified: DateTime<Utc>,
}

/// What [`ObjectStore::list_page`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    pub objects: Vec<ObjectInfo>,
    /// No object of the listing sorts after this page's last.
    pub complete: bool,
}

impl ListPage {
    /// Where the next page starts (`start_after`), or `None` when this was the last.
    pub fn next_start(&self) -> Option<&str> {
        self.objects.last().filter(|_| !self.complete).map(|o| o.key.as_str())
    }
}

/// Every store the binary can use, as one type.
#[derive(Debug, Clone)]
pub enum Store {
    Local(LocalStore),
    #[cfg(feature = "s3")]
    S3(S3Store),
    Memory(MemoryStore),
}

impl Store {
    /// How logs and messages name a bucket of this store: `s3://bucket`, the folder, or
    /// `memory://bucket`.
    pub fn describe(&self, bucket: &str) -> String {
        match self {
            Store::Local(store) => store.root().display().to_string(),
            #[cfg(feature = "s3")]
            Store::S3(_) => format!("s3://{bucket}"),
            Store::Memory(_) => format!("memory://{bucket}"),
        }
    }

    /// Whether the bucket answers now (`serve`'s `/readyz`): the folder exists, or the S3
    /// bucket does and the credentials may use it.
    pub async fn check(&self, bucket: &str) -> Result<(), StoreError> {
        match self {
            Store::Local(store) if store.root().is_dir() => Ok(()),
            Store::Local(store) => Err(StoreError::Unavailable {
                bucket: bucket.into(),
                detail: format!("`{}` is not a folder", store.root().display()),
            }),
            #[cfg(feature = "s3")]
            Store::S3(store) => store.check_bucket(bucket).await.map_err(|e| match e {
                StoreError::Remote { detail, .. } => StoreError::Unavailable { bucket: bucket.into(), detail },
                other => other,
            }),
            Store::Memory(_) => Ok(()),
        }
    }

    /// The file a key is, when the store is a local folder (a model package is loaded in place).
    pub fn local_path(&self, key: &str) -> Option<PathBuf> {
        match self {
            Store::Local(store) => store.path_for_key(key).ok(),
            #[cfg(feature = "s3")]
            Store::S3(_) => None,
            Store::Memory(_) => None,
        }
    }
}

/// Calls the same method on whichever store `self` is.
macro_rules! each_store {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            Store::Local($store) => $call,
            #[cfg(feature = "s3")]
            Store::S3($store) => $call,
            Store::Memory($store) => $call,
        }
    };
}

impl ObjectStore for Store {
    async fn get_object(&self, bucket: &str, key: &str, max_bytes: u64) -> Result<Object, StoreError> {
        each_store!(self, store => store.get_object(bucket, key, max_bytes).await)
    }

    async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        content_type: &str,
        metadata: &Metadata,
    ) -> Result<(), StoreError> {
        each_store!(self, store => store.put_object(bucket, key, body, content_type, metadata).await)
    }

    async fn put_if(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        content_type: &str,
        condition: WriteCondition<'_>,
    ) -> Result<bool, StoreError> {
        each_store!(self, store => store.put_if(bucket, key, body, content_type, condition).await)
    }

    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        each_store!(self, store => store.list(bucket, prefix).await)
    }

    async fn list_page(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: Option<&str>,
        max: usize,
    ) -> Result<ListPage, StoreError> {
        each_store!(self, store => store.list_page(bucket, prefix, start_after, max).await)
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), StoreError> {
        each_store!(self, store => store.delete(bucket, key).await)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("object `{key}` not found in bucket `{bucket}`")]
    NotFound { bucket: String, key: String },
    #[error("object `{key}` in bucket `{bucket}` is {size} bytes, over the limit of {max_bytes}")]
    TooLarge { bucket: String, key: String, size: u64, max_bytes: u64 },
    #[error("bucket `{bucket}` cannot be used: {detail}")]
    Unavailable { bucket: String, detail: String },
    #[error("invalid key `{key}`: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    #[error("unknown bucket `{bucket}` (this store serves `{served}`)")]
    UnknownBucket { bucket: String, served: String },
    /// A remote store's answer (S3): `retryable` unless the server's answer was final.
    #[error("S3 request for `{key}` in bucket `{bucket}` failed: {detail}")]
    Remote { bucket: String, key: String, detail: String, retryable: bool },
    #[error("failed to {action} `{key}` in bucket `{bucket}`: {source}")]
    Io {
        bucket: String,
        key: String,
        /// `read`, `write`, `list` or `delete`.
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    /// Only errors that another attempt may fix are retried; a missing or oversized object is
    /// final.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Remote { retryable, .. } => *retryable,
            StoreError::Io { source, .. } => !matches!(
                source.kind(),
                std::io::ErrorKind::PermissionDenied
                    | std::io::ErrorKind::IsADirectory
                    | std::io::ErrorKind::InvalidInput
            ),
            _ => false,
        }
    }
}
