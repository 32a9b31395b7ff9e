//! The reconciliation: notifications are not a ledger (an S3 server drops them while the
//! broker is away), so the inbox is listed on a schedule and every photo with no outcome gets
//! an ItemEvent. The bulk replay will reuse the listing.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use autorma_core::event::content_type_for_key;
use autorma_core::layout::{DLQ_PREFIX, RESULTS_PREFIX, dlq_object_key, result_object_key};
use autorma_core::store::s3::ObjectInfo;
use autorma_core::{DlqReason, DlqRecord, EventOrigin, ItemEvent, S3Store, StoreError};
use chrono::{DateTime, Utc};
use futures::future::try_join_all;
use rdkafka::producer::FutureProducer;
use tokio::time::Instant;

use super::service::{IngestConfig, IngestError, send_item};

/// What one listing found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReconcileSummary {
    /// Photos under the inbox prefix (image extensions only).
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
    pub summary: ReconcileSummary,
}

/// Lists the inbox, results and dead letters, and returns an ItemEvent (origin `replay`) for
/// every photo older than `grace` with no outcome written after it. A dead letter for a photo
/// that could not be fetched is not an outcome: the store failed, not the photo.
pub async fn list_unfinished(
    store: &S3Store,
    bucket: &str,
    inbox_prefix: &str,
    grace: Duration,
) -> Result<Unfinished, StoreError> {
    let inbox = store.list(bucket, inbox_prefix).await?;
    let mut outcomes: HashMap<String, DateTime<Utc>> =
        store.list(bucket, RESULTS_PREFIX).await?.into_iter().map(|o| (o.key, o.last_modified)).collect();
    for dead in store.list(bucket, DLQ_PREFIX).await? {
        let record = store.get_optional(bucket, &dead.key, 1 << 20).await?;
        let fetch_failed = record
            .and_then(|bytes| serde_json::from_slice::<DlqRecord>(&bytes).ok())
            .is_some_and(|r| r.reason == DlqReason::FetchFailed);
        if !fetch_failed {
            outcomes.insert(dead.key, dead.last_modified);
        }
    }
    Ok(select_unfinished(bucket, inbox, &outcomes, grace))
}

fn select_unfinished(
    bucket: &str,
    inbox: Vec<ObjectInfo>,
    outcomes: &HashMap<String, DateTime<Utc>>,
    grace: Duration,
) -> Unfinished {
    let cutoff = Utc::now() - grace;
    let mut summary = ReconcileSummary::default();
    let mut events = Vec::new();
    for object in inbox {
        let content_type = content_type_for_key(&object.key);
        if content_type == "application/octet-stream" || object.key.ends_with('/') {
            continue;
        }
        summary.listed += 1;
        // An outcome older than the photo is the outcome of a photo since replaced.
        let has_outcome = [result_object_key(&object.key), dlq_object_key(&object.key)]
            .iter()
            .any(|key| outcomes.get(key).is_some_and(|written| *written >= object.last_modified));
        if has_outcome {
            summary.done += 1;
        } else if object.last_modified > cutoff {
            summary.recent += 1;
        } else {
            events.push(ItemEvent {
                bucket: bucket.to_string(),
                key: object.key,
                etag: object.etag,
                size: object.size,
                content_type: content_type.to_string(),
                event_time: object.last_modified,
                source: EventOrigin::Replay,
            });
        }
    }
    summary.unfinished = events.len();
    Unfinished { events, summary }
}

/// Reconciles at start and every `reconcile_interval`, on a task of its own so a long listing
/// never holds up the notifications. A photo it sent is not sent again for three intervals:
/// one still waiting in the workers' backlog is not queued twice.
pub async fn reconcile_loop(
    config: IngestConfig,
    store: S3Store,
    producer: FutureProducer,
    sent_total: Arc<AtomicU64>,
) {
    let mut tick = tokio::time::interval(config.reconcile_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut recently_sent: HashMap<(String, String), Instant> = HashMap::new();
    loop {
        tick.tick().await;
        let hold = config.reconcile_interval * 3;
        recently_sent.retain(|_, at| at.elapsed() < hold);
        // A failed listing is retried at the next tick; notifications keep flowing meanwhile.
        match reconcile_once(&config, &store, &producer, &mut recently_sent).await {
            Ok(sent) => {
                sent_total.fetch_add(sent, Ordering::Relaxed);
            }
            Err(e) => tracing::warn!(error = %e, "reconciliation failed; retried at the next interval"),
        }
    }
}

async fn reconcile_once(
    config: &IngestConfig,
    store: &S3Store,
    producer: &FutureProducer,
    recently_sent: &mut HashMap<(String, String), Instant>,
) -> Result<u64, IngestError> {
    let found = list_unfinished(store, &config.bucket, &config.filter.inbox_prefix, config.reconcile_grace).await?;
    let to_send: Vec<&ItemEvent> =
        found.events.iter().filter(|e| !recently_sent.contains_key(&(e.key.clone(), e.etag.clone()))).collect();
    for chunk in to_send.chunks(256) {
        try_join_all(chunk.iter().map(|event| send_item(producer, event))).await?;
        let now = Instant::now();
        recently_sent.extend(chunk.iter().map(|e| ((e.key.clone(), e.etag.clone()), now)));
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
    use std::collections::HashSet;

    use super::*;

    fn object(key: &str, age_s: i64) -> ObjectInfo {
        ObjectInfo {
            key: key.into(),
            etag: "e".into(),
            size: 1,
            last_modified: Utc::now() - chrono::Duration::seconds(age_s),
        }
    }

    #[test]
    fn only_old_photos_without_a_newer_outcome_are_sent() {
        let inbox = vec![
            object("inbox/done.jpg", 600),
            object("inbox/failed.jpg", 600),
            object("inbox/lost.jpg", 600),
            object("inbox/replaced.jpg", 300),
            object("inbox/new.jpg", 1),
            object("inbox/notes.txt", 600),
        ];
        let at = |age_s| Utc::now() - chrono::Duration::seconds(age_s);
        let outcomes: HashMap<String, DateTime<Utc>> = [
            ("results/inbox/done.jpg.json", at(590)),
            ("dlq/inbox/failed.jpg.json", at(590)),
            // Written before the photo was replaced: the outcome of the old photo.
            ("results/inbox/replaced.jpg.json", at(590)),
        ]
        .into_iter()
        .map(|(k, t)| (k.to_string(), t))
        .collect();
        let found = select_unfinished("returns", inbox, &outcomes, Duration::from_secs(60));
        assert_eq!(found.summary, ReconcileSummary { listed: 5, done: 2, recent: 1, unfinished: 2 });
        let keys: HashSet<&str> = found.events.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, HashSet::from(["inbox/lost.jpg", "inbox/replaced.jpg"]));
        assert!(found.events.iter().all(|e| e.source == EventOrigin::Replay && e.content_type == "image/jpeg"));
    }
}
