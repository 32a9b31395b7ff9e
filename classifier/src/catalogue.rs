//! The catalogue photos the product check compares returns with: `<prefix><sku>.<ext>` in a
//! store (the bucket's `catalogue/`, or a folder), and the embeddings made of them, cached per
//! model version (each [`ServingModel`](crate::serving::ServingModel) holds its own).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::path::Path;

use autorma_core::layout::CATALOGUE_PREFIX;
use autorma_core::{LocalStore, Object, ObjectStore, Store, StoreError};

/// Extensions tried for a SKU's photo, in this order (lower case: `1163.JPG` is not found).
const EXTENSIONS: [&str; 4] = ["jpg", "jpeg", "png", "webp"];
/// How long a catalogue photo's embedding is used before the photo is read again (a photo
/// replaced in the catalogue counts from then on).
pub const EMBEDDING_TTL: Duration = Duration::from_secs(300);
/// SKUs whose embeddings (or misses) are kept; past it the cache starts again.
const MAX_CACHED: usize = 20_000;
/// How long a SKU without a catalogue photo is taken to have none: a miss costs a read per
/// extension, and an empty catalogue would cost them for every claimed photo.
pub const MISS_TTL: Duration = Duration::from_secs(60);

/// Where the catalogue photos are.
#[derive(Debug, Clone)]
pub struct Catalogue {
    store: Store,
    bucket: String,
    /// `catalogue/` in the bucket; empty for a folder of photos.
    prefix: String,
    /// SKUs found without a photo, and when.
    misses: Arc<Mutex<HashMap<String, Instant>>>,
}

impl Catalogue {
    /// The bucket's `catalogue/` (streaming).
    pub fn in_bucket(store: Store, bucket: String) -> Self {
        Catalogue { store, bucket, prefix: CATALOGUE_PREFIX.to_string(), misses: Arc::default() }
    }

    /// A folder of `<sku>.<ext>` photos (embedded).
    pub fn folder(dir: &Path) -> Self {
        // A folder store's bucket is only a name.
        Catalogue {
            store: Store::Local(LocalStore::new("catalogue", dir)),
            bucket: "catalogue".into(),
            prefix: String::new(),
            misses: Arc::default(),
        }
    }

    /// The photo of `sku`, `None` when the catalogue has none (or had none less than
    /// [`MISS_TTL`] ago). A SKU that could leave the prefix (a `/`, `..`) has none.
    pub async fn photo(&self, sku: &str, max_bytes: u64) -> Result<Option<Object>, StoreError> {
        if sku.is_empty() || sku.contains(['/', '\\']) || sku.starts_with('.') || self.missed_lately(sku) {
            return Ok(None);
        }
        for extension in EXTENSIONS {
            let key = format!("{}{sku}.{extension}", self.prefix);
            match self.store.get_object(&self.bucket, &key, max_bytes).await {
                Ok(object) => return Ok(Some(object)),
                Err(StoreError::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        let mut misses = self.misses.lock().expect("catalogue lock poisoned");
        if misses.len() >= MAX_CACHED {
            misses.clear();
        }
        misses.insert(sku.to_string(), Instant::now());
        Ok(None)
    }

    fn missed_lately(&self, sku: &str) -> bool {
        let misses = self.misses.lock().expect("catalogue lock poisoned");
        misses.get(sku).is_some_and(|at| at.elapsed() < MISS_TTL)
    }

    /// How logs and results name it: `s3://bucket/catalogue/`, or the folder.
    pub fn describe(&self) -> String {
        match self.prefix.as_str() {
            "" => self.store.describe(&self.bucket),
            prefix => format!("{}/{prefix}", self.store.describe(&self.bucket)),
        }
    }
}

/// An embedding and when it was made.
type Made = (Instant, Arc<[f32]>);

/// Catalogue embeddings of one model, by SKU.
#[derive(Debug, Default)]
pub struct EmbeddingCache {
    entries: Mutex<HashMap<String, Made>>,
}

impl EmbeddingCache {
    /// The SKU's embedding, when made less than [`EMBEDDING_TTL`] ago.
    pub fn get(&self, sku: &str) -> Option<Arc<[f32]>> {
        let entries = self.entries.lock().expect("embedding cache lock poisoned");
        entries.get(sku).filter(|(made, _)| made.elapsed() < EMBEDDING_TTL).map(|(_, e)| e.clone())
    }

    pub fn insert(&self, sku: &str, embedding: Arc<[f32]>) {
        let mut entries = self.entries.lock().expect("embedding cache lock poisoned");
        if entries.len() >= MAX_CACHED && !entries.contains_key(sku) {
            entries.clear();
        }
        entries.insert(sku.to_string(), (Instant::now(), embedding));
    }
}

#[cfg(test)]
mod tests {
    use autorma_core::{MemoryStore, Metadata};
    use bytes::Bytes;

    use super::*;

    #[tokio::test]
    async fn a_sku_finds_its_photo_by_any_image_extension_and_never_leaves_the_prefix_and_a_miss_is_remembered() {
        let store = MemoryStore::default();
        let none = Metadata::default();
        store.put_object("b", "catalogue/1163.png", Bytes::from_static(b"png"), "image/png", &none).await.unwrap();
        store.put_object("b", "secret.jpg", Bytes::from_static(b"no"), "image/jpeg", &none).await.unwrap();
        let catalogue = Catalogue::in_bucket(Store::Memory(store.clone()), "b".into());
        assert_eq!(catalogue.photo("1163", 100).await.unwrap().unwrap().bytes, Bytes::from_static(b"png"));
        assert!(catalogue.photo("1164", 100).await.unwrap().is_none());
        assert!(catalogue.photo("../secret", 100).await.unwrap().is_none());
        // A miss is remembered for a while: the next photo claimed as it costs no read.
        store.put_object("b", "catalogue/1164.jpg", Bytes::from_static(b"jpg"), "image/jpeg", &none).await.unwrap();
        assert!(catalogue.photo("1164", 100).await.unwrap().is_none());
    }

    #[test]
    fn the_cache_keeps_an_embedding_for_its_time() {
        let cache = EmbeddingCache::default();
        assert!(cache.get("1163").is_none());
        cache.insert("1163", Arc::from(vec![1.0, 0.0]));
        assert_eq!(cache.get("1163").as_deref(), Some(&[1.0, 0.0][..]));
    }
}
