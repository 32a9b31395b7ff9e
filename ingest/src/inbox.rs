//! Listing the bucket's inbox, for the reconciliation and the bulk replay: every object under
//! the prefix that can be a photo (`layout::is_inbox_object`), whatever its name.

use autorma_core::layout::is_inbox_object;
use autorma_core::{ObjectInfo, ObjectStore, StoreError};

/// The objects under `prefix` that are photos-to-be, in key order.
pub async fn list_inbox(store: &impl ObjectStore, bucket: &str, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
    let mut objects = store.list(bucket, prefix).await?;
    objects.retain(|o| is_inbox_object(&o.key));
    Ok(objects)
}

#[cfg(test)]
mod tests {
    use autorma_core::MemoryStore;
    use bytes::Bytes;

    use super::*;

    #[tokio::test]
    async fn the_inbox_is_every_object_but_debris_and_the_systems_own() {
        let store = MemoryStore::default();
        for key in ["inbox/a.jpg", "inbox/0b5e2c1a", "inbox/notes.txt", "inbox/.a.jpg.autorma-tmp-7-1", "inbox/sub/"] {
            store.insert("b", key, Bytes::from_static(b"x"));
        }
        store.insert("b", "results/inbox/a.jpg.json", Bytes::from_static(b"{}"));
        let keys: Vec<String> = list_inbox(&store, "b", "inbox/").await.unwrap().into_iter().map(|o| o.key).collect();
        assert_eq!(keys, ["inbox/0b5e2c1a", "inbox/a.jpg", "inbox/notes.txt"]);
        // With the whole bucket as the inbox, the system's own prefixes are still left out.
        let keys: Vec<String> = list_inbox(&store, "b", "").await.unwrap().into_iter().map(|o| o.key).collect();
        assert_eq!(keys, ["inbox/0b5e2c1a", "inbox/a.jpg", "inbox/notes.txt"]);
    }
}
