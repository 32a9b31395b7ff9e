//! The reconciliation: notifications are not a ledger (an S3 server drops them while the
//! broker is away), so the inbox is listed on a schedule and every photo with no outcome gets
//! an ItemEvent. The bulk replay will reuse the listing.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use autorma_core::event::content_type_for_key;
use autorma_core::layout::{DLQ_PREFIX, MAX_RECORD_BYTES, RESULTS_PREFIX, dlq_object_key, result_object_key};
use autorma_core::topics;
use autorma_core::{DlqRecord, EventOrigin, ItemEvent, ObjectInfo, ObjectStore, ResultRecord, StoreError};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::future::try_join_all;
use rdkafka::producer::FutureProducer;
use tokio::time::Instant;

use super::error::IngestError;
use crate::inbox::list_inbox;
use crate::kafka::send_item;

/// What the reconciliation lists, and how often.
#[derive(Debug, Clone)]
pub struct ReconcileConfig {
    pub bucket: String,
    /// Where photos are uploaded (notifications outside it are not photos).
    pub inbox_prefix: String,
    /// Time between two reconciliations (the first runs at start).
    pub interval: Duration,
    /// A photo younger than this is left to its notification.
    pub grace: Duration,
}

/// What one listing found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReconcileSummary {
    /// Objects under the inbox prefix (`layout::is_inbox_object`: whatever their name).
    pub listed: usize,
    /// Photos with a result or a dead letter written after the photo itself.
    pub done: usize,
    /// Photos newer than the grace period, left to their notification.
    pub recent: usize,
    /// Photos with no outcome: the events to send.
    pub unfinished: usize,
}

pub struct Unfinished {
    pub events: Vec<ItemEvent>,
    /// Dead letters (`dlq/K.json`) beside a result that stands for the same photo: the photo
    /// failed once (the store away) and was classified by another of its events, which did not
    /// look for the dead letter. Deleted, so each photo has one outcome in the bucket.
    pub stale_dead_letters: Vec<String>,
    pub summary: ReconcileSummary,
}

/// What an outcome object (`results/K.json`, `dlq/K.json`) records about its photo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub etag: String,
    /// False for a dead letter that says the store was away (the photo is tried again).
    pub is_final: bool,
}

/// Outcome records already read, by (object key, last modified): each is read once, not at
/// every pass.
pub type OutcomeCache = HashMap<(String, DateTime<Utc>), Recorded>;

/// S3 times have one-second resolution: an outcome written within a second of its photo (or
/// before it) is read to see which photo it records; a later one is taken as the photo's.
const CLOCK_RESOLUTION: chrono::Duration = chrono::Duration::seconds(1);

/// Lists the inbox, results and dead letters, and returns an ItemEvent (origin `replay`) for
/// every photo older than `grace` whose outcome is missing, records another version of the
/// photo (another etag), or is a dead letter that is not final.
pub async fn list_unfinished(
    store: &impl ObjectStore,
    bucket: &str,
    inbox_prefix: &str,
    grace: Duration,
    cache: &mut OutcomeCache,
) -> Result<Unfinished, StoreError> {
    let inbox = list_inbox(store, bucket, inbox_prefix).await?;
    let mut outcomes: HashMap<String, DateTime<Utc>> =
        store.list(bucket, RESULTS_PREFIX).await?.into_iter().map(|o| (o.key, o.last_modified)).collect();
    outcomes.extend(store.list(bucket, DLQ_PREFIX).await?.into_iter().map(|o| (o.key, o.last_modified)));
    cache.retain(|(key, modified), _| outcomes.get(key) == Some(modified));

    let cutoff = Utc::now() - grace;
    let to_read: HashSet<(String, DateTime<Utc>)> = inbox
        .iter()
        .filter(|photo| photo.last_modified <= cutoff)
        .flat_map(|photo| {
            let result = result_object_key(&photo.key);
            let result =
                outcomes.get(&result).filter(|t| **t <= photo.last_modified + CLOCK_RESOLUTION).map(|t| (result, *t));
            let dead = dlq_object_key(&photo.key);
            let dead = outcomes.get(&dead).map(|t| (dead, *t));
            [result, dead]
        })
        .flatten()
        .filter(|entry| !cache.contains_key(entry))
        .collect();
    let read: Vec<_> = futures::stream::iter(to_read)
        .map(|(key, modified)| async move { (read_recorded(store, bucket, &key).await, key, modified) })
        .buffer_unordered(16)
        .collect()
        .await;
    for (recorded, key, modified) in read {
        match recorded {
            Ok(recorded) => {
                cache.insert((key, modified), recorded);
            }
            // Not knowing this pass: counted as an outcome, read again next pass.
            Err(e) => tracing::warn!(%key, error = %e, "cannot read an outcome record; taken as final this time"),
        }
    }
    Ok(select_unfinished(bucket, inbox, &outcomes, cache, grace))
}

/// The photo an outcome object records. An unreadable record records no photo (etag empty),
/// so the photo is classified again and the record replaced.
async fn read_recorded(store: &impl ObjectStore, bucket: &str, key: &str) -> Result<Recorded, StoreError> {
    let bytes = store.get(bucket, key, MAX_RECORD_BYTES).await?;
    let recorded = if key.starts_with(RESULTS_PREFIX) {
        serde_json::from_slice::<ResultRecord>(&bytes).ok().map(|r| Recorded { etag: r.item.etag, is_final: true })
    } else {
        serde_json::from_slice::<DlqRecord>(&bytes)
            .ok()
            .map(|d| Recorded { etag: d.event.etag, is_final: d.reason.is_final() })
    };
    Ok(recorded.unwrap_or(Recorded { etag: String::new(), is_final: true }))
}

/// Whether the outcome object `key` stands for `photo`: it records the photo's etag (when it
/// was read) or, not read, it was written clearly after the photo.
fn stands_for(key: &str, photo: &ObjectInfo, outcomes: &HashMap<String, DateTime<Utc>>, cache: &OutcomeCache) -> bool {
    let Some(modified) = outcomes.get(key) else { return false };
    match cache.get(&(key.to_string(), *modified)) {
        Some(recorded) => recorded.is_final && recorded.etag == photo.etag,
        // Unread: a result written clearly after the photo, or a record that could not be read.
        None => true,
    }
}

fn select_unfinished(
    bucket: &str,
    inbox: Vec<ObjectInfo>,
    outcomes: &HashMap<String, DateTime<Utc>>,
    cache: &OutcomeCache,
    grace: Duration,
) -> Unfinished {
    let cutoff = Utc::now() - grace;
    let mut summary = ReconcileSummary::default();
    let mut events = Vec::new();
    let mut stale_dead_letters = Vec::new();
    for object in inbox {
        summary.listed += 1;
        let (result, dead) = (result_object_key(&object.key), dlq_object_key(&object.key));
        let result_stands = stands_for(&result, &object, outcomes, cache);
        let dead_stands = stands_for(&dead, &object, outcomes, cache);
        if result_stands && outcomes.contains_key(&dead) && !dead_stands {
            stale_dead_letters.push(dead);
        }
        if result_stands || dead_stands {
            summary.done += 1;
        } else if object.last_modified > cutoff {
            summary.recent += 1;
        } else {
            events.push(ItemEvent {
                bucket: bucket.to_string(),
                content_type: content_type_for_key(&object.key).to_string(),
                key: object.key,
                etag: object.etag,
                size: object.size,
                event_time: object.last_modified,
                source: EventOrigin::Replay,
                replay: None,
            });
        }
    }
    summary.unfinished = events.len();
    Unfinished { events, stale_dead_letters, summary }
}

/// Reconciles at start and every `reconcile_interval`, on a task of its own so a long listing
/// never holds up the notifications. A photo it sent is not sent again for three intervals:
/// one still waiting in the workers' backlog is not queued twice.
pub async fn reconcile_loop(
    config: ReconcileConfig,
    store: impl ObjectStore,
    producer: FutureProducer,
    sent_total: Arc<AtomicU64>,
) {
    let mut tick = tokio::time::interval(config.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut recently_sent: HashMap<(String, String), Instant> = HashMap::new();
    let mut cache = OutcomeCache::new();
    loop {
        tick.tick().await;
        let hold = config.interval * 3;
        recently_sent.retain(|_, at| at.elapsed() < hold);
        // A failed listing is retried at the next tick; notifications keep flowing meanwhile.
        match reconcile_once(&config, &store, &producer, &mut recently_sent, &mut cache).await {
            Ok(sent) => {
                sent_total.fetch_add(sent, Ordering::Relaxed);
            }
            Err(e) => tracing::warn!(error = %e, "reconciliation failed; retried at the next interval"),
        }
    }
}

async fn reconcile_once(
    config: &ReconcileConfig,
    store: &impl ObjectStore,
    producer: &FutureProducer,
    recently_sent: &mut HashMap<(String, String), Instant>,
    cache: &mut OutcomeCache,
) -> Result<u64, IngestError> {
    let found = list_unfinished(store, &config.bucket, &config.inbox_prefix, config.grace, cache).await?;
    let to_send: Vec<&ItemEvent> =
        found.events.iter().filter(|e| !recently_sent.contains_key(&(e.key.clone(), e.etag.clone()))).collect();
    for chunk in to_send.chunks(256) {
        try_join_all(chunk.iter().map(|event| send_item(producer, topics::ITEMS, event))).await?;
        let now = Instant::now();
        recently_sent.extend(chunk.iter().map(|e| ((e.key.clone(), e.etag.clone()), now)));
    }
    for key in &found.stale_dead_letters {
        match store.delete(&config.bucket, key).await {
            Ok(()) => tracing::info!(%key, "reconciliation: deleted a dead letter that the photo's result replaced"),
            // Tried again at the next pass.
            Err(e) => tracing::warn!(%key, error = %e, "reconciliation: cannot delete a stale dead letter"),
        }
    }
    let s = &found.summary;
    let held_back = s.unfinished - to_send.len();
    if !to_send.is_empty() {
        tracing::info!(
            listed = s.listed,
            done = s.done,
            recent = s.recent,
            sent = to_send.len(),
            held_back,
            "reconciliation: sent the photos that had no outcome"
        );
    } else {
        tracing::debug!(
            listed = s.listed,
            done = s.done,
            recent = s.recent,
            held_back,
            "reconciliation: nothing to send"
        );
    }
    Ok(to_send.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(age_s: i64) -> DateTime<Utc> {
        Utc::now() - chrono::Duration::seconds(age_s)
    }

    fn object(key: &str, etag: &str, age_s: i64) -> ObjectInfo {
        ObjectInfo { key: key.into(), etag: etag.into(), size: 1, last_modified: at(age_s) }
    }

    #[test]
    fn only_old_objects_without_an_outcome_that_stands_for_them_are_sent() {
        let inbox = vec![
            object("inbox/done.jpg", "e1", 600),
            object("inbox/failed.jpg", "e2", 600),
            object("inbox/lost.jpg", "e3", 600),
            object("inbox/replaced.jpg", "v2", 300),
            object("inbox/same-bytes-again.jpg", "e5", 300),
            object("inbox/store-was-away.jpg", "e6", 600),
            object("inbox/new.jpg", "e7", 1),
            object("inbox/notes.txt", "e8", 600),
            object("inbox/0b5e2c1a-77d4-4b8e-9a51-3f0c2a9d1e6b", "e9", 600),
        ];
        let outcomes: HashMap<String, DateTime<Utc>> = [
            ("results/inbox/done.jpg.json", at(590)),
            // The store was away for one event of the photo; another one classified it.
            ("dlq/inbox/done.jpg.json", at(595)),
            ("dlq/inbox/failed.jpg.json", at(590)),
            ("results/inbox/replaced.jpg.json", at(590)),
            ("results/inbox/same-bytes-again.jpg.json", at(590)),
            ("dlq/inbox/store-was-away.jpg.json", at(590)),
        ]
        .into_iter()
        .map(|(k, t)| (k.to_string(), t))
        .collect();
        // What reading the records (older than their photos, or dead letters) found.
        let mut cache = OutcomeCache::new();
        let mut recorded = |key: &str, etag: &str, is_final| {
            cache.insert((key.to_string(), outcomes[key]), Recorded { etag: etag.into(), is_final });
        };
        recorded("dlq/inbox/failed.jpg.json", "e2", true);
        recorded("results/inbox/replaced.jpg.json", "v1", true);
        recorded("results/inbox/same-bytes-again.jpg.json", "e5", true);
        recorded("dlq/inbox/store-was-away.jpg.json", "e6", false);
        recorded("dlq/inbox/done.jpg.json", "e1", false);

        let found = select_unfinished("returns", inbox, &outcomes, &cache, Duration::from_secs(60));
        // Whatever their name, objects are sent (the worker reads the bytes).
        assert_eq!(found.summary, ReconcileSummary { listed: 9, done: 3, recent: 1, unfinished: 5 });
        let types: HashMap<&str, &str> =
            found.events.iter().map(|e| (e.key.as_str(), e.content_type.as_str())).collect();
        assert_eq!(
            types,
            HashMap::from([
                ("inbox/lost.jpg", "image/jpeg"),
                ("inbox/replaced.jpg", "image/jpeg"),
                ("inbox/store-was-away.jpg", "image/jpeg"),
                ("inbox/notes.txt", "application/octet-stream"),
                ("inbox/0b5e2c1a-77d4-4b8e-9a51-3f0c2a9d1e6b", "application/octet-stream"),
            ])
        );
        assert!(found.events.iter().all(|e| e.source == EventOrigin::Replay));
        // A dead letter whose photo has its result goes; one that is the photo's outcome stays.
        assert_eq!(found.stale_dead_letters, vec!["dlq/inbox/done.jpg.json".to_string()]);
    }
}
