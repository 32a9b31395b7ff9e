//! Rebuilding the index from the bucket (`autorma serve --streaming --rebuild bucket`): every
//! `results/**.json` and `corrections/**.json`, for when the topics no longer hold everything
//! (retention). The topics are then followed from where they ended before the listing: a
//! record published after that is read from its topic, one before it is in the bucket (the
//! sink and the API write the topic first, then the object).

use std::sync::Arc;

use anyhow::Context;
use autorma_core::layout::{CORRECTIONS_PREFIX, MAX_RECORD_BYTES, RESULTS_PREFIX};
use autorma_core::{ObjectStore, S3Store};
use autorma_sink::index::{IndexBatch, ResultIndex};
use futures::StreamExt;
use serde::de::DeserializeOwned;

/// Objects read at once.
const CONCURRENCY: usize = 16;

/// Feeds `index` from the bucket; `ends` are the topics' ends taken before (see the module).
pub async fn rebuild(
    store: &S3Store,
    bucket: &str,
    index: &Arc<ResultIndex>,
    ends: Vec<(String, i32, i64)>,
) -> anyhow::Result<()> {
    let results = read_all(store, bucket, RESULTS_PREFIX).await?;
    let corrections = read_all(store, bucket, CORRECTIONS_PREFIX).await?;
    let (n, m) = (results.len(), corrections.len());
    let index = index.clone();
    tokio::task::spawn_blocking(move || index.apply(&IndexBatch { results, corrections, positions: ends }))
        .await
        .expect("indexing panicked")?;
    tracing::info!(results = n, corrections = m, %bucket, "the results index was rebuilt from the bucket");
    Ok(())
}

/// The records under `prefix`; an object that is not one (or is gone by now) is skipped, and
/// said.
async fn read_all<T: DeserializeOwned>(store: &S3Store, bucket: &str, prefix: &str) -> anyhow::Result<Vec<T>> {
    let objects = store.list(bucket, prefix).await.with_context(|| format!("cannot list `{prefix}` in `{bucket}`"))?;
    let records = futures::stream::iter(objects.into_iter().filter(|o| o.key.ends_with(".json")))
        .map(|object| async move {
            let read = store.get(bucket, &object.key, MAX_RECORD_BYTES).await.map_err(anyhow::Error::from);
            match read.and_then(|bytes| Ok(serde_json::from_slice::<T>(&bytes)?)) {
                Ok(record) => Some(record),
                Err(e) => {
                    tracing::warn!(key = %object.key, error = %e, "not indexed: unreadable record");
                    None
                }
            }
        })
        .buffer_unordered(CONCURRENCY)
        .filter_map(std::future::ready)
        .collect()
        .await;
    Ok(records)
}
