//! Objects in memory, for unit tests of anything written against [`ObjectStore`]: any bucket
//! name is accepted, and each write gets a new etag.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use chrono::{DateTime, Utc};

use super::{ListPage, Object, ObjectInfo, ObjectStore, StoreError, WriteCondition};
use crate::claim::Metadata;

#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    /// By (bucket, key), so a listing comes out in key order.
    objects: BTreeMap<(String, String), Stored>,
    /// Writes so far: the next write's etag.
    writes: u64,
}

#[derive(Debug)]
struct Stored {
    bytes: Bytes,
    etag: String,
    metadata: Metadata,
    last_modified: DateTime<Utc>,
}

impl Stored {
    fn info(&self, key: &str) -> ObjectInfo {
        ObjectInfo {
            key: key.to_string(),
            etag: self.etag.clone(),
            size: self.bytes.len() as u64,
            last_modified: self.last_modified,
        }
    }
}

impl MemoryStore {
    /// Puts an object without a runtime, for setting up a test.
    pub fn insert(&self, bucket: &str, key: &str, bytes: Bytes) {
        self.lock().write(bucket, key, bytes, Metadata::new());
    }

    /// Every step is a few map operations, consistent at each unlock.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Inner {
    fn write(&mut self, bucket: &str, key: &str, bytes: Bytes, metadata: Metadata) {
        self.writes += 1;
        let stored = Stored { bytes, etag: format!("{:032x}", self.writes), metadata, last_modified: Utc::now() };
        self.objects.insert((bucket.to_string(), key.to_string()), stored);
    }
}

impl ObjectStore for MemoryStore {
    async fn get_object(&self, bucket: &str, key: &str, max_bytes: u64) -> Result<Object, StoreError> {
        let inner = self.lock();
        let Some(stored) = inner.objects.get(&(bucket.to_string(), key.to_string())) else {
            return Err(StoreError::NotFound { bucket: bucket.into(), key: key.into() });
        };
        let size = stored.bytes.len() as u64;
        if size > max_bytes {
            return Err(StoreError::TooLarge { bucket: bucket.into(), key: key.into(), size, max_bytes });
        }
        Ok(Object { bytes: stored.bytes.clone(), etag: stored.etag.clone(), metadata: stored.metadata.clone() })
    }

    async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        _content_type: &str,
        metadata: &Metadata,
    ) -> Result<(), StoreError> {
        self.lock().write(bucket, key, body, metadata.clone());
        Ok(())
    }

    async fn put_if(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        _content_type: &str,
        condition: WriteCondition<'_>,
    ) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        let current = inner.objects.get(&(bucket.to_string(), key.to_string())).map(|s| s.etag.as_str());
        let holds = match condition {
            WriteCondition::IfAbsent => current.is_none(),
            WriteCondition::IfMatch(etag) => current == Some(etag),
        };
        if holds {
            inner.write(bucket, key, body, Metadata::new());
        }
        Ok(holds)
    }

    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let inner = self.lock();
        let start = (bucket.to_string(), prefix.to_string());
        Ok(inner
            .objects
            .range(start..)
            .take_while(|((b, k), _)| b == bucket && k.starts_with(prefix))
            .map(|((_, key), stored)| stored.info(key))
            .collect())
    }

    async fn list_page(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: Option<&str>,
        max: usize,
    ) -> Result<ListPage, StoreError> {
        let inner = self.lock();
        let at = |key: &str| (bucket.to_string(), key.to_string());
        let from = match start_after {
            Some(after) if after >= prefix => Bound::Excluded(at(after)),
            _ => Bound::Included(at(prefix)),
        };
        let mut listed = inner
            .objects
            .range((from, Bound::Unbounded))
            .take_while(|((b, k), _)| b == bucket && k.starts_with(prefix))
            .map(|((_, key), stored)| stored.info(key));
        let objects: Vec<ObjectInfo> = listed.by_ref().take(max).collect();
        let complete = listed.next().is_none();
        Ok(ListPage { objects, complete })
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), StoreError> {
        self.lock().objects.remove(&(bucket.to_string(), key.to_string()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_boundary_contract_holds() {
        let store = MemoryStore::default();
        crate::testsuite::object_store_contract(&store, "bucket", "").await;
        assert!(store.list("other", "").await.unwrap().is_empty(), "buckets are apart");
    }
}
