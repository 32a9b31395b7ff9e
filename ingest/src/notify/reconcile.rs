//! The inbox listing behind the reconciliation: which photos have no outcome yet.

use std::collections::HashSet;
use std::time::Duration;

use autorma_core::event::content_type_for_key;
use autorma_core::layout::{DLQ_PREFIX, RESULTS_PREFIX, dlq_object_key, result_object_key};
use autorma_core::store::s3::ObjectInfo;
use autorma_core::{EventOrigin, ItemEvent, S3Store, StoreError};
use chrono::Utc;

/// What one listing found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReconcileSummary {
    /// Photos under the inbox prefix (image extensions only).
    pub listed: usize,
    /// Photos with a result or a dead letter.
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
/// every photo older than `grace` that has neither outcome.
pub async fn list_unfinished(
    store: &S3Store,
    bucket: &str,
    inbox_prefix: &str,
    grace: Duration,
) -> Result<Unfinished, StoreError> {
    let inbox = store.list(bucket, inbox_prefix).await?;
    let mut outcomes: HashSet<String> = store.list(bucket, RESULTS_PREFIX).await?.into_iter().map(|o| o.key).collect();
    outcomes.extend(store.list(bucket, DLQ_PREFIX).await?.into_iter().map(|o| o.key));
    Ok(select_unfinished(bucket, inbox, &outcomes, grace))
}

fn select_unfinished(bucket: &str, inbox: Vec<ObjectInfo>, outcomes: &HashSet<String>, grace: Duration) -> Unfinished {
    let cutoff = Utc::now() - grace;
    let mut summary = ReconcileSummary::default();
    let mut events = Vec::new();
    for object in inbox {
        let content_type = content_type_for_key(&object.key);
        if content_type == "application/octet-stream" || object.key.ends_with('/') {
            continue;
        }
        summary.listed += 1;
        if outcomes.contains(&result_object_key(&object.key)) || outcomes.contains(&dlq_object_key(&object.key)) {
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

#[cfg(test)]
mod tests {
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
    fn only_old_photos_without_an_outcome_are_sent() {
        let inbox = vec![
            object("inbox/done.jpg", 600),
            object("inbox/failed.jpg", 600),
            object("inbox/lost.jpg", 600),
            object("inbox/new.jpg", 1),
            object("inbox/notes.txt", 600),
        ];
        let outcomes: HashSet<String> =
            ["results/inbox/done.jpg.json", "dlq/inbox/failed.jpg.json"].into_iter().map(String::from).collect();
        let found = select_unfinished("returns", inbox, &outcomes, Duration::from_secs(60));
        assert_eq!(found.summary, ReconcileSummary { listed: 4, done: 2, recent: 1, unfinished: 1 });
        assert_eq!(found.events[0].key, "inbox/lost.jpg");
        assert_eq!(found.events[0].source, EventOrigin::Replay);
        assert_eq!(found.events[0].content_type, "image/jpeg");
    }
}
