//! Which photos a replay sends: every photo of the inbox listing (`crate::inbox`) under the
//! prefix and within the time window, unless its result already comes from the current model
//! version.

use std::collections::HashSet;

use autorma_core::event::content_type_for_key;
use autorma_core::layout::{MAX_RECORD_BYTES, RESULTS_PREFIX, result_object_key};
use autorma_core::store::optional;
use autorma_core::{EventOrigin, ItemEvent, ObjectInfo, ObjectStore, ReplayRequest, ResultRecord, StoreError};
use chrono::{DateTime, Utc};
use futures::StreamExt;

use crate::inbox::list_inbox;

/// Result objects read at once.
const READ_CONCURRENCY: usize = 16;

#[derive(Debug, Clone, Default)]
pub struct ReplayFilter {
    /// Key prefix of the photos (the inbox).
    pub prefix: String,
    /// Only photos last modified at or after this...
    pub since: Option<DateTime<Utc>>,
    /// ...and before this.
    pub until: Option<DateTime<Utc>>,
}

/// The model results are compared with: a result from this name and version is current.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentModel {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Default)]
pub struct ReplayPlan {
    /// The events to send (origin `replay`), in key order.
    pub events: Vec<ItemEvent>,
    /// Objects under the prefix and within the window.
    pub listed: usize,
    /// Of those, photos whose result the current version made.
    pub skipped: usize,
}

/// Lists and reads what it needs to decide. Every photo whose result `current` did not make is
/// sent, or every listed photo when `all`; each event names `current`'s version.
pub async fn plan_replay(
    store: &impl ObjectStore,
    bucket: &str,
    filter: &ReplayFilter,
    current: &CurrentModel,
    all: bool,
) -> Result<ReplayPlan, StoreError> {
    let photos: Vec<ObjectInfo> = list_inbox(store, bucket, &filter.prefix)
        .await?
        .into_iter()
        .filter(|o| {
            filter.since.is_none_or(|t| o.last_modified >= t) && filter.until.is_none_or(|t| o.last_modified < t)
        })
        .collect();
    let current_keys: HashSet<String> = match all {
        true => HashSet::new(),
        false => {
            let with_result: HashSet<String> = store
                .list(bucket, &format!("{RESULTS_PREFIX}{}", filter.prefix))
                .await?
                .into_iter()
                .map(|o| o.key)
                .collect();
            let to_read: Vec<(String, String)> = photos
                .iter()
                .filter(|p| with_result.contains(&result_object_key(&p.key)))
                .map(|p| (p.key.clone(), p.etag.clone()))
                .collect();
            let reads = to_read.into_iter().map(|(key, etag)| is_current(store, bucket, key, etag, current));
            futures::stream::iter(reads)
                .buffer_unordered(READ_CONCURRENCY)
                .filter_map(std::future::ready)
                .collect()
                .await
        }
    };
    let listed = photos.len();
    let events: Vec<ItemEvent> = photos
        .into_iter()
        .filter(|p| !current_keys.contains(&p.key))
        .map(|p| ItemEvent {
            bucket: bucket.to_string(),
            content_type: content_type_for_key(&p.key).to_string(),
            key: p.key,
            etag: p.etag,
            size: p.size,
            event_time: p.last_modified,
            source: EventOrigin::Replay,
            claim: None,
            replay: Some(ReplayRequest { model_version: current.version.clone(), force: all }),
        })
        .collect();
    Ok(ReplayPlan { listed, skipped: listed - events.len(), events })
}

/// `Some(key)` when the photo's result was made by the current version from these bytes.
async fn is_current(
    store: &impl ObjectStore,
    bucket: &str,
    key: String,
    etag: String,
    current: &CurrentModel,
) -> Option<String> {
    let current = match optional(store.get(bucket, &result_object_key(&key), MAX_RECORD_BYTES).await) {
        Ok(Some(bytes)) => {
            serde_json::from_slice::<ResultRecord>(&bytes).is_ok_and(|r| made_by(&r, current) && r.item.etag == etag)
        }
        Ok(None) => false,
        // Not knowing: sent, which costs a classification, never a result.
        Err(e) => {
            tracing::warn!(%key, error = %e, "cannot read a result; the photo is replayed");
            false
        }
    };
    current.then_some(key)
}

/// Whether `record` was made by the current model version.
pub fn made_by(record: &ResultRecord, current: &CurrentModel) -> bool {
    record.model.name == current.name && record.model.version == current.version
}
