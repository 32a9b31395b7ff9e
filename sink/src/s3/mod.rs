//! Streaming mode's sink: the bucket, and the records the worker publishes with its commit.
//!
//! ```text
//! result      ─▶ results/<key>.json in the photo's bucket
//!                records: rma.results (key = object key) [+ rma.review when decision = review]
//! dead letter ─▶ dlq/<key>.json;  record: rma.dlq (reason, attempts in headers and body)
//! ```
//! `Ok` means the object is written. The records are not sent here: they go back to the
//! pipeline, which hands them to the source with the checkpoint that passes the photo, and the
//! Kafka source publishes them and the input offsets in one transaction. So an object can
//! exist whose records never committed (a crash before the commit), but only until its event is
//! redelivered, and each object says which event wrote it (`read_at`):
//!
//! - the same event, redelivered, finds its object: it publishes the object's records again
//!   (its transaction never committed, or the offset would not have come back);
//! - another event of the same photo version (a notification and a reconciliation, a replay)
//!   finds the object: nothing to publish, the writer's records committed or will.
//!
//! Every write is conditional (`If-None-Match: *` for a new key, `If-Match` over what a lookup
//! saw), so two events of one photo racing each other cannot both think they wrote first. A new
//! photo costs two bucket requests in all: the worker's GET of the photo and this PUT; the
//! lookup's GETs are spent only on events that may have been handled before.

use std::collections::HashMap;
use std::sync::Mutex;

use autorma_core::layout::{MAX_RECORD_BYTES, dlq_object_key, result_object_key};
use autorma_core::store::optional;
use autorma_core::{
    Decision, DlqRecord, ModelRef, ObjectStore, OutboundRecord, Prior, PriorOutcome, ResultRecord, ResultSink,
    SinkError, SourcedEvent, Store, WriteCondition, topics,
};
use bytes::Bytes;
use serde::de::DeserializeOwned;

/// Writers of one key racing each other: after this many lost compare-and-swaps in a row the
/// write fails (retryably) instead of looping.
const MAX_RACES: usize = 5;

pub struct StreamingSink {
    store: Store,
    /// What a lookup saw of a key that it did not find done, for the write that follows.
    seen: Mutex<HashMap<(String, String), Seen>>,
}

#[derive(Debug, Default)]
struct Seen {
    /// The etag of the result object there (from another photo version or model): the write
    /// replaces exactly it.
    result_etag: Option<String>,
    /// A dead letter that no longer stands (another etag, or a store that was away): deleted
    /// once the photo's result is written, so a key has one outcome.
    stale_dead_letter: bool,
}

/// An object as read back: its record (`None` when unreadable), bytes and etag.
struct Stored<T> {
    record: Option<T>,
    bytes: Bytes,
    etag: String,
}

/// What a conditional write found.
enum Put<T> {
    Written,
    /// The same photo version's outcome was there already, written by this record's event or
    /// another one.
    Found(T, Bytes),
}

impl StreamingSink {
    pub fn new(store: Store) -> Self {
        Self { store, seen: Mutex::default() }
    }

    async fn read<T: DeserializeOwned>(&self, bucket: &str, key: &str) -> Result<Option<Stored<T>>, SinkError> {
        let found = optional(self.store.get_tagged(bucket, key, MAX_RECORD_BYTES).await).map_err(SinkError::Store)?;
        Ok(found.map(|(bytes, etag)| {
            let record = serde_json::from_slice(&bytes)
                .inspect_err(
                    |e| tracing::warn!(%bucket, %key, error = %e, "unreadable record in the bucket; replacing it"),
                )
                .ok();
            Stored { record, bytes, etag }
        }))
    }

    /// Writes `body` at `key` unless the same photo version's outcome is there already, with a
    /// compare-and-swap over what was last seen (nothing, at first, unless a lookup saw more).
    async fn put_once<T: DeserializeOwned>(
        &self,
        bucket: &str,
        key: &str,
        body: &Bytes,
        mut expected: Option<String>,
        same_version: impl Fn(&T) -> bool,
    ) -> Result<Put<T>, SinkError> {
        for _ in 0..MAX_RACES {
            let condition = expected.as_deref().map_or(WriteCondition::IfAbsent, WriteCondition::IfMatch);
            let put = self.store.put_if(bucket, key, body.clone(), "application/json", condition).await;
            if put.map_err(SinkError::Store)? {
                return Ok(Put::Written);
            }
            // Someone wrote first, or the object changed since the lookup: see what is there.
            match self.read::<T>(bucket, key).await? {
                None => expected = None,
                Some(Stored { record: Some(old), bytes, .. }) if same_version(&old) => {
                    return Ok(Put::Found(old, bytes));
                }
                Some(other) => expected = Some(other.etag),
            }
        }
        Err(SinkError::Contended { key: key.to_string() })
    }

    fn take_seen(&self, bucket: &str, key: &str) -> Seen {
        self.seen.lock().expect("poisoned").remove(&(bucket.to_string(), key.to_string())).unwrap_or_default()
    }

    fn remember(&self, bucket: &str, key: &str, update: impl FnOnce(&mut Seen)) {
        update(self.seen.lock().expect("poisoned").entry((bucket.to_string(), key.to_string())).or_default());
    }
}

/// The records of an outcome found in the bucket: published again only by the event that
/// wrote it (see the module's doc); `None` on either side means a source without records.
fn republish(
    found_by: &Option<String>,
    written_by: &Option<String>,
    records: impl FnOnce() -> Vec<OutboundRecord>,
) -> Vec<OutboundRecord> {
    if found_by.is_some() && found_by == written_by { records() } else { Vec::new() }
}

/// `rma.results`, and `rma.review` for a result a person must look at (with its reason as a
/// header too, so a consumer can route wrong items without reading the body).
fn result_records(record: &ResultRecord, body: &[u8]) -> Vec<OutboundRecord> {
    let key = &record.item.key;
    let mut headers = vec![("decision", record.decision.as_str()), ("model_version", record.model.version.as_str())];
    let mut records = vec![OutboundRecord::new(topics::RESULTS, key, body.to_vec(), &headers)];
    if record.decision == Decision::Review {
        headers.extend(record.review_reason.map(|reason| ("review_reason", reason.as_str())));
        records.push(OutboundRecord::new(topics::REVIEW, key, body.to_vec(), &headers));
    }
    records
}

fn dlq_records(record: &DlqRecord, body: &[u8]) -> Vec<OutboundRecord> {
    let attempts = record.attempts.to_string();
    let headers = [("reason", record.reason.as_str()), ("attempts", attempts.as_str())];
    vec![OutboundRecord::new(topics::DLQ, &record.event.key, body.to_vec(), &headers)]
}

fn encode<T: serde::Serialize>(key: &str, record: &T) -> Result<Bytes, SinkError> {
    serde_json::to_vec(record).map(Bytes::from).map_err(|source| SinkError::Encode { key: key.to_string(), source })
}

impl ResultSink for StreamingSink {
    async fn lookup(&self, sourced: &SourcedEvent, model: &ModelRef) -> Result<Option<Prior>, SinkError> {
        let event = &sourced.event;
        let result = self.read::<ResultRecord>(&event.bucket, &result_object_key(&event.key)).await?;
        if let Some(Stored { record, bytes, etag }) = result {
            match record {
                Some(r) if r.item.etag == event.etag && r.model == *model => {
                    let records = republish(&sourced.read_at, &r.read_at, || result_records(&r, &bytes));
                    return Ok(Some(Prior { outcome: PriorOutcome::Classified(r.decision), records }));
                }
                _ => self.remember(&event.bucket, &event.key, |seen| seen.result_etag = Some(etag)),
            }
        }
        let dead = self.read::<DlqRecord>(&event.bucket, &dlq_object_key(&event.key)).await?;
        match dead {
            Some(Stored { record: Some(d), bytes, .. }) if d.event.etag == event.etag && d.reason.is_final() => {
                let records = republish(&sourced.read_at, &d.read_at, || dlq_records(&d, &bytes));
                Ok(Some(Prior { outcome: PriorOutcome::DeadLettered(d.reason), records }))
            }
            Some(_) => {
                self.remember(&event.bucket, &event.key, |seen| seen.stale_dead_letter = true);
                Ok(None)
            }
            None => Ok(None),
        }
    }

    async fn write_result(&self, record: &ResultRecord) -> Result<Vec<OutboundRecord>, SinkError> {
        let (bucket, key) = (&record.item.bucket, &record.item.key);
        let body = encode(key, record)?;
        let seen = self.take_seen(bucket, key);
        let same_version = |old: &ResultRecord| old.item.etag == record.item.etag && old.model == record.model;
        let records =
            match self.put_once(bucket, &result_object_key(key), &body, seen.result_etag, same_version).await? {
                Put::Written => result_records(record, &body),
                Put::Found(old, bytes) => {
                    tracing::debug!(%key, written_by = ?old.read_at, "the photo's result was there already");
                    republish(&record.read_at, &old.read_at, || result_records(&old, &bytes))
                }
            };
        // Best effort: the result is written and stands; a dead letter left behind is older
        // than it, and the reconciliation reads it as such.
        if seen.stale_dead_letter
            && let Err(e) = self.store.delete(bucket, &dlq_object_key(key)).await
        {
            tracing::warn!(%key, error = %e, "could not delete the photo's stale dead letter");
        }
        Ok(records)
    }

    async fn write_dlq(&self, record: &DlqRecord) -> Result<Vec<OutboundRecord>, SinkError> {
        let (bucket, key) = (&record.event.bucket, &record.event.key);
        let body = encode(key, record)?;
        // What the lookup saw serves a result's write only; dropped here, so the memo does not
        // grow with every looked-up photo that fails.
        self.take_seen(bucket, key);
        let same_version = |old: &DlqRecord| old.event.etag == record.event.etag && old.reason == record.reason;
        Ok(match self.put_once(bucket, &dlq_object_key(key), &body, None, same_version).await? {
            Put::Written => dlq_records(record, &body),
            Put::Found(old, bytes) => republish(&record.read_at, &old.read_at, || dlq_records(&old, &bytes)),
        })
    }

    /// Nothing is buffered: every write waited for the bucket.
    async fn flush(&self) -> Result<(), SinkError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use autorma_core::{MemoryStore, Position};

    use super::*;
    use crate::test_records::{dlq, event, model, result};

    fn sink() -> (StreamingSink, MemoryStore) {
        let store = MemoryStore::default();
        (StreamingSink::new(Store::Memory(store.clone())), store)
    }

    fn at(offset: u64) -> Option<String> {
        Some(format!("rma.items/0/{offset}"))
    }

    fn result_at(etag: &str, decision: Decision, read_at: Option<String>) -> ResultRecord {
        ResultRecord { read_at, ..result("inbox/a.jpg", etag, decision) }
    }

    fn sourced(etag: &str, read_at: Option<String>) -> SourcedEvent {
        SourcedEvent { read_at, ..SourcedEvent::live(Position::new(0, 0), event("inbox/a.jpg", etag)) }
    }

    fn topics_of(records: &[OutboundRecord]) -> Vec<&str> {
        records.iter().map(|r| r.topic.as_str()).collect()
    }

    #[tokio::test]
    async fn a_photo_version_gets_its_records_once_whatever_events_bring_it() {
        let (sink, store) = sink();
        let written = sink.write_result(&result_at("e1", Decision::Review, at(7))).await.unwrap();
        assert_eq!(topics_of(&written), ["rma.results", "rma.review"]);
        let reason = ("review_reason".to_string(), "low_confidence".to_string());
        assert!(written[1].headers.contains(&reason) && !written[0].headers.contains(&reason));
        let object = store.get("returns", "results/inbox/a.jpg.json", MAX_RECORD_BYTES).await.unwrap();
        assert_eq!(written[0].payload, object.to_vec(), "the record is the object, byte for byte");

        // Another event of the same photo (the reconciliation's), classified in a race: the
        // object stays, and nothing more is published.
        assert!(sink.write_result(&result_at("e1", Decision::Review, at(9))).await.unwrap().is_empty());
        assert_eq!(store.get("returns", "results/inbox/a.jpg.json", MAX_RECORD_BYTES).await.unwrap(), object);
        // Its lookup, had it made one: done, nothing to publish.
        let prior = sink.lookup(&sourced("e1", at(9)), &model()).await.unwrap().unwrap();
        assert_eq!(prior, Prior::settled(PriorOutcome::Classified(Decision::Review)));

        // The writing event redelivered (its commit never happened): the same records again.
        let prior = sink.lookup(&sourced("e1", at(7)), &model()).await.unwrap().unwrap();
        assert_eq!(prior.records, written);
        // And the same event classified again without a lookup finds them too.
        assert_eq!(sink.write_result(&result_at("e1", Decision::Review, at(7))).await.unwrap(), written);
    }

    #[tokio::test]
    async fn a_new_photo_version_or_model_replaces_the_object_and_publishes() {
        let (sink, store) = sink();
        sink.write_result(&result_at("e1", Decision::Auto, at(1))).await.unwrap();
        // Replaced photo, without a lookup: the compare-and-swap finds the old one and replaces it.
        let written = sink.write_result(&result_at("e2", Decision::Auto, at(2))).await.unwrap();
        assert_eq!(topics_of(&written), ["rma.results"]);
        // A replay under a new model, after a lookup that saw the old object.
        let v2 = ModelRef { version: "2".into(), ..model() };
        assert_eq!(sink.lookup(&sourced("e2", at(3)), &v2).await.unwrap(), None);
        let replayed = ResultRecord { model: v2.clone(), ..result_at("e2", Decision::Auto, at(3)) };
        assert_eq!(topics_of(&sink.write_result(&replayed).await.unwrap()), ["rma.results"]);
        let object = store.get("returns", "results/inbox/a.jpg.json", MAX_RECORD_BYTES).await.unwrap();
        let stored: ResultRecord = serde_json::from_slice(&object).unwrap();
        assert_eq!((stored.item.etag.as_str(), stored.model.version.as_str()), ("e2", "2"));
    }

    #[tokio::test]
    async fn dead_letters_follow_the_same_rule_and_a_result_clears_a_stale_one() {
        let (sink, store) = sink();
        let letter = DlqRecord { read_at: at(4), ..dlq("inbox/a.jpg", "e1") };
        assert_eq!(topics_of(&sink.write_dlq(&letter).await.unwrap()), ["rma.dlq"]);
        let again = DlqRecord { read_at: at(5), ..letter.clone() };
        assert!(sink.write_dlq(&again).await.unwrap().is_empty(), "the same failure of the same photo version");
        let prior = sink.lookup(&sourced("e1", at(4)), &model()).await.unwrap().unwrap();
        assert_eq!(topics_of(&prior.records), ["rma.dlq"], "its own event redelivered publishes it again");

        // The photo is replaced by one that classifies: the lookup sees the old dead letter,
        // and the result's write deletes it.
        assert_eq!(sink.lookup(&sourced("e2", at(6)), &model()).await.unwrap(), None);
        sink.write_result(&result_at("e2", Decision::Auto, at(6))).await.unwrap();
        assert!(store.get("returns", "dlq/inbox/a.jpg.json", MAX_RECORD_BYTES).await.is_err());
    }

    #[tokio::test]
    async fn an_unreadable_object_is_replaced() {
        let (sink, store) = sink();
        store.insert("returns", "results/inbox/a.jpg.json", Bytes::from_static(b"{not json"));
        assert_eq!(sink.lookup(&sourced("e1", at(1)), &model()).await.unwrap(), None);
        let written = sink.write_result(&result_at("e1", Decision::Auto, at(1))).await.unwrap();
        assert_eq!(topics_of(&written), ["rma.results"]);
        let object = store.get("returns", "results/inbox/a.jpg.json", MAX_RECORD_BYTES).await.unwrap();
        assert_eq!(written[0].payload, object.to_vec());
    }
}
