//! The reconciliation: notifications are not a ledger (an S3 server drops them while the
//! broker is away), so the inbox is listed on a schedule and every photo with no outcome gets
//! an ItemEvent.
//!
//! A pass walks the inbox one page (a window) at a time, with the outcome objects in that
//! page's key range, and sends each window's events before it lists the next: what a pass holds
//! does not grow with the bucket. Between passes it keeps one fingerprint per outcome it had
//! to read (8 bytes), so no record is read twice.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use autorma_core::event::content_type_for_key;
use autorma_core::layout::{
    DLQ_PREFIX, MAX_RECORD_BYTES, RESULTS_PREFIX, dlq_object_key, is_inbox_object, result_object_key,
};
use autorma_core::topics;
use autorma_core::{DlqRecord, EventOrigin, ItemEvent, ObjectInfo, ObjectStore, ResultRecord, StoreError};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::future::try_join_all;
use rdkafka::producer::FutureProducer;
use tokio::time::Instant;

use super::error::IngestError;
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

/// Inbox objects per window: one S3 listing page.
const WINDOW: usize = 1000;

/// What a listing found.
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

impl ReconcileSummary {
    fn add(&mut self, other: &ReconcileSummary) {
        self.listed += other.listed;
        self.done += other.done;
        self.recent += other.recent;
        self.unfinished += other.unfinished;
    }
}

/// One window of a pass: what its photos lack, and where the next window starts.
#[derive(Debug, Default)]
pub struct Window {
    pub events: Vec<ItemEvent>,
    /// Dead letters (`dlq/K.json`) beside a result that stands for the same photo: the photo
    /// failed once (the store away) and was classified by another of its events, which did not
    /// look for the dead letter. Deleted, so each photo has one outcome in the bucket.
    pub stale_dead_letters: Vec<String>,
    pub summary: ReconcileSummary,
    /// The last inbox key listed, when more follow.
    pub next_start: Option<String>,
}

/// What an outcome object (`results/K.json`, `dlq/K.json`) records about its photo.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Recorded {
    etag: String,
    /// False for a dead letter that says the store was away (the photo is tried again).
    is_final: bool,
}

/// Outcome objects read and found to stand for their photo, as fingerprints of (outcome key,
/// last modified, photo etag): a changed photo or a rewritten outcome is a new fingerprint, and
/// one not met in a whole pass (the outcome deleted) is dropped at its end. Sorted vectors, 8
/// bytes a photo (a million photos: 8 MB). A collision (two in 2^64) could only hide one photo
/// from one pass's look.
#[derive(Debug, Default)]
pub struct Confirmed {
    /// Sorted, from the last pass that ended.
    earlier: Vec<u64>,
    /// Met or read in this pass (unsorted; sorted and deduplicated when it ends).
    this_pass: Vec<u64>,
}

impl Confirmed {
    fn fingerprint(outcome_key: &str, modified: DateTime<Utc>, photo_etag: &str) -> u64 {
        let mut hasher = DefaultHasher::new();
        (outcome_key, modified, photo_etag).hash(&mut hasher);
        hasher.finish()
    }

    fn knows(&self, fingerprint: u64) -> bool {
        self.earlier.binary_search(&fingerprint).is_ok()
    }

    /// Whether an earlier pass confirmed it; if so it is kept for the next.
    fn recall(&mut self, fingerprint: u64) -> bool {
        let known = self.knows(fingerprint);
        if known {
            self.this_pass.push(fingerprint);
        }
        known
    }

    fn keep(&mut self, fingerprint: u64) {
        self.this_pass.push(fingerprint);
    }

    fn end_pass(&mut self) {
        let mut kept = std::mem::take(&mut self.this_pass);
        kept.sort_unstable();
        kept.dedup();
        kept.shrink_to_fit();
        self.earlier = kept;
    }
}

/// S3 times have one-second resolution: an outcome written within a second of its photo (or
/// before it) is read to see which photo it records; a later one is taken as the photo's.
const CLOCK_RESOLUTION: chrono::Duration = chrono::Duration::seconds(1);

/// The window of inbox objects after `start_after`: an ItemEvent (origin `replay`) for every
/// photo older than `grace` whose outcome is missing, records another version of the photo
/// (another etag), or is a dead letter that is not final.
pub async fn list_unfinished(
    store: &impl ObjectStore,
    config: &ReconcileConfig,
    start_after: Option<&str>,
    confirmed: &mut Confirmed,
) -> Result<Window, StoreError> {
    let page = store.list_page(&config.bucket, &config.inbox_prefix, start_after, WINDOW).await?;
    let next_start = page.next_start().map(str::to_string);
    let photos: Vec<ObjectInfo> = page.objects.into_iter().filter(|o| is_inbox_object(&o.key)).collect();
    let (Some(first), Some(last)) = (photos.first(), photos.last()) else {
        return Ok(Window { next_start, ..Window::default() });
    };
    let mut outcomes = HashMap::new();
    for (prefix, outcome_key) in
        [(RESULTS_PREFIX, result_object_key as fn(&str) -> String), (DLQ_PREFIX, dlq_object_key)]
    {
        let range = OutcomeRange::new(prefix, outcome_key, &config.inbox_prefix, &first.key, &last.key);
        outcomes.extend(range.list(store, &config.bucket).await?);
    }

    let cutoff = Utc::now() - config.grace;
    let mut to_read = Vec::new();
    for photo in photos.iter().filter(|photo| photo.last_modified <= cutoff) {
        let result = result_object_key(&photo.key);
        if let Some(modified) = outcomes.get(&result).filter(|t| **t <= photo.last_modified + CLOCK_RESOLUTION) {
            to_read.push((result, *modified, &photo.etag));
        }
        let dead = dlq_object_key(&photo.key);
        if let Some(modified) = outcomes.get(&dead) {
            to_read.push((dead, *modified, &photo.etag));
        }
    }
    to_read.retain(|(key, modified, etag)| !confirmed.recall(Confirmed::fingerprint(key, *modified, etag)));
    let to_read: Vec<String> = to_read.into_iter().map(|(key, _, _)| key).collect();
    let bucket = config.bucket.as_str();
    let read: Vec<_> = futures::stream::iter(to_read)
        .map(|key| async move { (read_recorded(store, bucket, &key).await, key) })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut recorded = HashMap::new();
    for (outcome, key) in read {
        match outcome {
            Ok(outcome) => {
                recorded.insert(key, outcome);
            }
            // Not knowing this pass: counted as an outcome, read again next pass.
            Err(e) => tracing::warn!(%key, error = %e, "cannot read an outcome record; taken as final this time"),
        }
    }
    let mut window =
        select_unfinished(bucket, photos, &Outcomes { listed: outcomes, recorded }, confirmed, config.grace);
    window.next_start = next_start;
    Ok(window)
}

/// The outcome objects (under one of `results/`, `dlq/`) of the photos `first..=last`.
/// `outcome_key` does not keep key order (`a.json` sorts after `a-1.json`), so the range ends at
/// the greatest outcome key of any photo key up to `last`: that of `last` or of one of its
/// prefixes. Outcomes of photos outside the window that fall in the range are listed too and
/// never looked up.
struct OutcomeRange {
    listing_prefix: String,
    after: String,
    last: String,
}

impl OutcomeRange {
    fn new(prefix: &str, outcome_key: fn(&str) -> String, inbox_prefix: &str, first: &str, last: &str) -> Self {
        let last = (0..=last.len())
            .filter(|i| last.is_char_boundary(*i))
            .map(|i| outcome_key(&last[..i]))
            .max()
            .unwrap_or_default();
        // `prefix + first` is a proper prefix of the first photo's outcome key: it sorts before
        // it, and before every later photo's.
        OutcomeRange { listing_prefix: format!("{prefix}{inbox_prefix}"), after: format!("{prefix}{first}"), last }
    }

    async fn list(
        mut self,
        store: &impl ObjectStore,
        bucket: &str,
    ) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        let mut out = Vec::new();
        loop {
            let page = store.list_page(bucket, &self.listing_prefix, Some(&self.after), WINDOW).await?;
            let next = page.next_start().map(str::to_string);
            let listed = page.objects.len();
            let before = out.len();
            out.extend(page.objects.into_iter().take_while(|o| o.key <= self.last).map(|o| (o.key, o.last_modified)));
            match next {
                Some(next) if out.len() - before == listed => self.after = next,
                _ => return Ok(out),
            }
        }
    }
}

/// A window's outcome objects: listed (key, last modified), and the records read.
struct Outcomes {
    listed: HashMap<String, DateTime<Utc>>,
    recorded: HashMap<String, Recorded>,
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

/// Whether the outcome object `key` stands for `photo`: it records the photo's etag (read now
/// or confirmed in an earlier pass) or, not read, it was written clearly after the photo.
fn stands_for(key: &str, photo: &ObjectInfo, outcomes: &Outcomes, confirmed: &mut Confirmed) -> bool {
    let Some(modified) = outcomes.listed.get(key) else { return false };
    let fingerprint = Confirmed::fingerprint(key, *modified, &photo.etag);
    // Kept for the next pass already, when the window chose what to read.
    if confirmed.knows(fingerprint) {
        return true;
    }
    match outcomes.recorded.get(key) {
        Some(recorded) => {
            let stands = recorded.is_final && recorded.etag == photo.etag;
            if stands {
                confirmed.keep(fingerprint);
            }
            stands
        }
        // Unread: a result written clearly after the photo, or a record that could not be read.
        None => true,
    }
}

fn select_unfinished(
    bucket: &str,
    inbox: Vec<ObjectInfo>,
    outcomes: &Outcomes,
    confirmed: &mut Confirmed,
    grace: Duration,
) -> Window {
    let cutoff = Utc::now() - grace;
    let mut window = Window::default();
    let summary = &mut window.summary;
    for object in inbox {
        summary.listed += 1;
        let (result, dead) = (result_object_key(&object.key), dlq_object_key(&object.key));
        let result_stands = stands_for(&result, &object, outcomes, confirmed);
        let dead_stands = stands_for(&dead, &object, outcomes, confirmed);
        if result_stands && outcomes.listed.contains_key(&dead) && !dead_stands {
            window.stale_dead_letters.push(dead);
        }
        if result_stands || dead_stands {
            summary.done += 1;
        } else if object.last_modified > cutoff {
            summary.recent += 1;
        } else {
            window.events.push(ItemEvent {
                bucket: bucket.to_string(),
                content_type: content_type_for_key(&object.key).to_string(),
                key: object.key,
                etag: object.etag,
                size: object.size,
                event_time: object.last_modified,
                source: EventOrigin::Replay,
                claim: None,
                replay: None,
            });
        }
    }
    summary.unfinished = window.events.len();
    window
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
    let mut confirmed = Confirmed::default();
    loop {
        tick.tick().await;
        let hold = config.interval * 3;
        recently_sent.retain(|_, at| at.elapsed() < hold);
        // A failed listing is retried at the next tick; notifications keep flowing meanwhile.
        match reconcile_once(&config, &store, &producer, &mut recently_sent, &mut confirmed).await {
            Ok(sent) => {
                sent_total.fetch_add(sent, Ordering::Relaxed);
            }
            Err(e) => tracing::warn!(error = %e, "reconciliation failed; retried at the next interval"),
        }
    }
}

/// One pass, window by window: each window's events are sent before the next is listed.
async fn reconcile_once(
    config: &ReconcileConfig,
    store: &impl ObjectStore,
    producer: &FutureProducer,
    recently_sent: &mut HashMap<(String, String), Instant>,
    confirmed: &mut Confirmed,
) -> Result<u64, IngestError> {
    let mut total = ReconcileSummary::default();
    let mut sent = 0;
    let mut start_after: Option<String> = None;
    loop {
        let window = list_unfinished(store, config, start_after.as_deref(), confirmed).await?;
        total.add(&window.summary);
        let to_send: Vec<&ItemEvent> =
            window.events.iter().filter(|e| !recently_sent.contains_key(&(e.key.clone(), e.etag.clone()))).collect();
        for chunk in to_send.chunks(256) {
            try_join_all(chunk.iter().map(|event| send_item(producer, topics::ITEMS, event))).await?;
            let now = Instant::now();
            recently_sent.extend(chunk.iter().map(|e| ((e.key.clone(), e.etag.clone()), now)));
        }
        sent += to_send.len();
        for key in &window.stale_dead_letters {
            match store.delete(&config.bucket, key).await {
                Ok(()) => {
                    tracing::info!(%key, "reconciliation: deleted a dead letter that the photo's result replaced")
                }
                // Tried again at the next pass.
                Err(e) => tracing::warn!(%key, error = %e, "reconciliation: cannot delete a stale dead letter"),
            }
        }
        match window.next_start {
            Some(next) => start_after = Some(next),
            None => break,
        }
    }
    confirmed.end_pass();
    let held_back = total.unfinished - sent;
    if sent > 0 {
        tracing::info!(
            listed = total.listed,
            done = total.done,
            recent = total.recent,
            sent,
            held_back,
            "reconciliation: sent the photos that had no outcome"
        );
    } else {
        tracing::debug!(
            listed = total.listed,
            done = total.done,
            recent = total.recent,
            held_back,
            "reconciliation: nothing to send"
        );
    }
    Ok(sent as u64)
}

#[cfg(test)]
mod tests {
    use autorma_core::MemoryStore;
    use bytes::Bytes;

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
        let recorded = [
            ("dlq/inbox/failed.jpg.json", "e2", true),
            ("results/inbox/replaced.jpg.json", "v1", true),
            ("results/inbox/same-bytes-again.jpg.json", "e5", true),
            ("dlq/inbox/store-was-away.jpg.json", "e6", false),
            ("dlq/inbox/done.jpg.json", "e1", false),
        ]
        .into_iter()
        .map(|(key, etag, is_final)| (key.to_string(), Recorded { etag: etag.into(), is_final }))
        .collect();
        let outcomes = Outcomes { listed: outcomes, recorded };

        let mut confirmed = Confirmed::default();
        let found = select_unfinished("returns", inbox, &outcomes, &mut confirmed, Duration::from_secs(60));
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

    /// Photo keys that are prefixes of one another, whose outcome keys sort in another order.
    fn tricky_keys(count: usize) -> Vec<String> {
        (0..count)
            .flat_map(|i| [format!("inbox/p{i:04}"), format!("inbox/p{i:04}-x"), format!("inbox/p{i:04}.jpg")])
            .collect()
    }

    #[test]
    fn an_outcome_range_holds_the_outcome_of_every_photo_between_its_ends() {
        let mut keys = tricky_keys(40);
        keys.extend(
            ["inbox/a", "inbox/a!", "inbox/a.", "inbox/a.j", "inbox/a.json", "inbox/a.jsoo", "inbox/é", "inbox/é-"]
                .map(String::from),
        );
        keys.sort();
        for (first, last) in keys.iter().enumerate().flat_map(|(i, f)| keys[i..].iter().map(move |l| (f, l))) {
            let range = OutcomeRange::new(RESULTS_PREFIX, result_object_key, "inbox/", first, last);
            for key in keys.iter().filter(|k| *k >= first && *k <= last) {
                let outcome = result_object_key(key);
                assert!(
                    outcome > range.after && outcome <= range.last,
                    "{outcome} outside ({}, {}]",
                    range.after,
                    range.last
                );
                assert!(outcome.starts_with(&range.listing_prefix));
            }
        }
    }

    /// A final dead letter for `photo`, as a worker writes it.
    fn dead_letter(photo: &ObjectInfo) -> Bytes {
        let event = ItemEvent {
            bucket: "returns".into(),
            key: photo.key.clone(),
            etag: photo.etag.clone(),
            size: photo.size,
            content_type: "image/jpeg".into(),
            event_time: photo.last_modified,
            source: EventOrigin::Notification,
            claim: None,
            replay: None,
        };
        let record = DlqRecord {
            reason: autorma_core::DlqReason::NotAnImage,
            detail: "text".into(),
            attempts: 1,
            event,
            failed_at: Utc::now(),
            read_at: None,
        };
        Bytes::from(serde_json::to_vec(&record).unwrap())
    }

    async fn one_pass(
        store: &MemoryStore,
        config: &ReconcileConfig,
        confirmed: &mut Confirmed,
    ) -> (Vec<String>, usize) {
        let (mut unfinished, mut windows, mut start_after) = (Vec::new(), 0, None);
        loop {
            let window = list_unfinished(store, config, start_after.as_deref(), confirmed).await.unwrap();
            assert!(window.summary.listed <= WINDOW);
            windows += 1;
            unfinished.extend(window.events.into_iter().map(|e| e.key));
            match window.next_start {
                Some(next) => start_after = Some(next),
                None => break,
            }
        }
        confirmed.end_pass();
        (unfinished, windows)
    }

    #[tokio::test]
    async fn a_pass_walks_the_inbox_window_by_window_and_finds_every_photo_without_an_outcome() {
        let store = MemoryStore::default();
        let keys = tricky_keys(900);
        for key in &keys {
            store.insert("returns", key, Bytes::from_static(b"photo"));
        }
        let photos = store.list("returns", "inbox/").await.unwrap();
        // Two photos in three get an outcome that records them (read: written with the photo);
        // the second window ends at `p0666-x`, whose prefix `p0666` has one.
        let mut expected = Vec::new();
        for (i, photo) in photos.iter().enumerate() {
            if i % 3 == 2 {
                expected.push(photo.key.clone());
            } else {
                store.insert("returns", &dlq_object_key(&photo.key), dead_letter(photo));
            }
        }
        let config = ReconcileConfig {
            bucket: "returns".into(),
            inbox_prefix: "inbox/".into(),
            interval: Duration::from_secs(60),
            grace: Duration::ZERO,
        };
        let mut confirmed = Confirmed::default();
        let (mut unfinished, windows) = one_pass(&store, &config, &mut confirmed).await;
        unfinished.sort();
        assert_eq!(unfinished, expected);
        assert_eq!(windows, 3, "2,700 photos, 1,000 a window");
        assert_eq!(confirmed.earlier.len(), 1800, "each record read is remembered, not re-read");

        // The next pass keeps what it meets again; a deleted outcome's fingerprint goes.
        let (unfinished, _) = one_pass(&store, &config, &mut confirmed).await;
        assert_eq!((unfinished.len(), confirmed.earlier.len()), (900, 1800));
        store.delete("returns", &dlq_object_key(&photos[1].key)).await.unwrap();
        let (unfinished, _) = one_pass(&store, &config, &mut confirmed).await;
        assert_eq!((unfinished.len(), confirmed.earlier.len()), (901, 1799));
    }
}
