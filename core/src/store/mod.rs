//! The object store boundary: where photos' bytes are read from (S3/MinIO, or a local folder).

pub mod local;
pub mod s3;

use std::future::Future;

use bytes::Bytes;

pub use local::LocalStore;
pub use s3::{ObjectInfo, S3Config, S3Store, WriteCondition};

/// Every store the binary can use, as one type.
#[derive(Debug, Clone)]
pub enum Store {
    Local(LocalStore),
    S3(S3Store),
}

impl ObjectStore for Store {
    async fn get(&self, bucket: &str, key: &str, max_bytes: u64) -> Result<Bytes, StoreError> {
        match self {
            Store::Local(store) => store.get(bucket, key, max_bytes).await,
            Store::S3(store) => store.get(bucket, key, max_bytes).await,
        }
    }
}

/// Reads objects. Implementations must be cheap to share (`&self`, `Send + Sync`).
pub trait ObjectStore: Send + Sync + 'static {
    /// Reads the whole object, refusing (without reading it) one larger than `max_bytes`.
    fn get(&self, bucket: &str, key: &str, max_bytes: u64) -> impl Future<Output = Result<Bytes, StoreError>> + Send;
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("object `{key}` not found in bucket `{bucket}`")]
    NotFound { bucket: String, key: String },
    #[error("object `{key}` in bucket `{bucket}` is {size} bytes, over the limit of {max_bytes}")]
    TooLarge { bucket: String, key: String, size: u64, max_bytes: u64 },
    #[error("invalid key `{key}`: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    #[error("unknown bucket `{bucket}` (this store serves `{served}`)")]
    UnknownBucket { bucket: String, served: String },
    /// A remote store's answer (S3): `retryable` unless the server's answer was final.
    #[error("S3 request for `{key}` in bucket `{bucket}` failed: {detail}")]
    Remote { bucket: String, key: String, detail: String, retryable: bool },
    #[error("failed to read `{key}` from bucket `{bucket}`: {source}")]
    Io {
        bucket: String,
        key: String,
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
