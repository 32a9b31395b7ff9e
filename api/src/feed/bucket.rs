//! Rebuilding the index from the bucket (`autorma serve --streaming --rebuild bucket`): every
//! `results/**.json` and `corrections/**.json`, for when the topics no longer hold everything
//! (retention). The topics are then followed from a while before the listing (the caller's
//! overlap): a record published then is read from its topic even when its object came too late
//! for the listing (the sink and the API publish first, then write the object); reading some
//! twice changes nothing (newer results win in the index).

use std::sync::Arc;

use autorma_core::ObjectStore;
use autorma_core::layout::{CORRECTIONS_PREFIX, MAX_RECORD_BYTES, RESULTS_PREFIX};
use autorma_sink::index::{IndexBatch, ResultIndex};
use futures::StreamExt;
use serde::de::DeserializeOwned;

use super::{FeedError, parse_record};

/// Objects read at once.
const CONCURRENCY: usize = 16;

/// Feeds `index` from the bucket, with the topic `positions` the feed goes on from.
pub async fn rebuild(
    store: &impl ObjectStore,
    bucket: &str,
    index: &Arc<ResultIndex>,
    positions: Vec<(String, i32, i64)>,
) -> Result<(), FeedError> {
    let results = read_all(store, bucket, RESULTS_PREFIX).await?;
    let corrections = read_all(store, bucket, CORRECTIONS_PREFIX).await?;
    let (n, m) = (results.len(), corrections.len());
    let index = index.clone();
    tokio::task::spawn_blocking(move || index.apply(&IndexBatch { results, corrections, positions }))
        .await
        .expect("indexing panicked")?;
    tracing::info!(results = n, corrections = m, %bucket, "the results index was rebuilt from the bucket");
    Ok(())
}

/// The records under `prefix`; an object that is not one (or is gone by now) is skipped, and
/// said.
async fn read_all<T: DeserializeOwned>(
    store: &impl ObjectStore,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<T>, FeedError> {
    let objects = store.list(bucket, prefix).await.map_err(|source| FeedError::List {
        bucket: bucket.into(),
        prefix: prefix.into(),
        source: Box::new(source),
    })?;
    let records = futures::stream::iter(objects.into_iter().filter(|o| o.key.ends_with(".json")))
        .map(|object| async move { parse_record(&object.key, store.get(bucket, &object.key, MAX_RECORD_BYTES).await) })
        .buffer_unordered(CONCURRENCY)
        .filter_map(std::future::ready)
        .collect()
        .await;
    Ok(records)
}
