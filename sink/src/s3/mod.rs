//! Streaming mode's sink: the bucket and the Kafka topics.
//!
//! ```text
//! result      ─▶ rma.results (key = object key) [+ rma.review when decision = review]
//!                then results/<key>.json in the photo's bucket
//! dead letter ─▶ rma.dlq (reason, attempts in headers and body), then dlq/<key>.json
//! ```
//! `Ok` means the producer's acknowledgements arrived (idempotent producer, `acks=all`) and
//! the S3 PUT returned. The topic comes first: an object in the bucket then always means its
//! record is on the topic, so `lookup` (which reads the bucket) never acknowledges a photo
//! whose record a crash kept off the topic; a crash between the two publishes it again.

use std::collections::HashSet;
use std::sync::Mutex;

use autorma_core::kafka::{KafkaConfig, KafkaError, send, topics};
use autorma_core::layout::{MAX_RECORD_BYTES, dlq_object_key, result_object_key};
use autorma_core::store::optional;
use autorma_core::{
    Decision, DlqRecord, ItemEvent, ModelRef, ObjectStore, PriorOutcome, ResultRecord, ResultSink, S3Store, SinkError,
};
use bytes::Bytes;
use rdkafka::producer::FutureProducer;

pub struct StreamingSink {
    store: S3Store,
    producer: FutureProducer,
    /// (bucket, key) whose lookup found a dead letter that no longer stands (another etag, or
    /// a store that was away): it is deleted once the photo's result is written, so a key has
    /// one outcome.
    stale_dead_letters: Mutex<HashSet<(String, String)>>,
}

impl StreamingSink {
    pub fn new(store: S3Store, kafka: &KafkaConfig) -> Result<Self, KafkaError> {
        Ok(Self { store, producer: kafka.producer()?, stale_dead_letters: Mutex::default() })
    }

    async fn read_record<T: serde::de::DeserializeOwned>(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<T>, SinkError> {
        let Some(bytes) = optional(self.store.get(bucket, key, MAX_RECORD_BYTES).await).map_err(SinkError::Store)?
        else {
            return Ok(None);
        };
        match serde_json::from_slice(&bytes) {
            Ok(record) => Ok(Some(record)),
            // Unreadable: as if absent, so the photo is classified again and the object replaced.
            Err(e) => {
                tracing::warn!(%bucket, %key, error = %e, "unreadable record in the bucket; classifying again");
                Ok(None)
            }
        }
    }

    async fn put(&self, bucket: &str, key: String, body: Vec<u8>) -> Result<(), SinkError> {
        self.store.put(bucket, &key, Bytes::from(body), "application/json").await.map_err(SinkError::Store)
    }
}

fn publish_error(e: KafkaError) -> SinkError {
    match e {
        KafkaError::Send { topic, key, detail } => SinkError::Publish { topic, key, detail },
        other => SinkError::Publish { topic: String::new(), key: String::new(), detail: other.to_string() },
    }
}

fn encode<T: serde::Serialize>(key: &str, record: &T) -> Result<Vec<u8>, SinkError> {
    serde_json::to_vec(record).map_err(|source| SinkError::Encode { key: key.to_string(), source })
}

impl ResultSink for StreamingSink {
    async fn lookup(&self, event: &ItemEvent, model: &ModelRef) -> Result<Option<PriorOutcome>, SinkError> {
        let result: Option<ResultRecord> = self.read_record(&event.bucket, &result_object_key(&event.key)).await?;
        if let Some(result) = result
            && result.item.etag == event.etag
            && result.model == *model
        {
            return Ok(Some(PriorOutcome::Classified(result.decision)));
        }
        let dead: Option<DlqRecord> = self.read_record(&event.bucket, &dlq_object_key(&event.key)).await?;
        match dead {
            Some(d) if d.event.etag == event.etag && d.reason.is_final() => {
                Ok(Some(PriorOutcome::DeadLettered(d.reason)))
            }
            Some(_) => {
                self.stale_dead_letters.lock().expect("poisoned").insert((event.bucket.clone(), event.key.clone()));
                Ok(None)
            }
            None => Ok(None),
        }
    }

    async fn write_result(&self, record: &ResultRecord) -> Result<(), SinkError> {
        let key = &record.item.key;
        let body = encode(key, record)?;
        let headers = [("decision", record.decision.as_str()), ("model_version", record.model.version.as_str())];
        let to_results = send(&self.producer, topics::RESULTS, key, &body, &headers);
        if record.decision == Decision::Review {
            let to_review = send(&self.producer, topics::REVIEW, key, &body, &headers);
            futures::try_join!(to_results, to_review).map_err(publish_error)?;
        } else {
            to_results.await.map_err(publish_error)?;
        }
        self.put(&record.item.bucket, result_object_key(key), body).await?;
        let stale =
            self.stale_dead_letters.lock().expect("poisoned").remove(&(record.item.bucket.clone(), key.clone()));
        // Best effort: the result is written and stands; a dead letter left behind is older
        // than it, and the reconciliation reads it as such.
        if stale && let Err(e) = self.store.delete(&record.item.bucket, &dlq_object_key(key)).await {
            tracing::warn!(%key, error = %e, "could not delete the photo's stale dead letter");
        }
        Ok(())
    }

    async fn write_dlq(&self, record: &DlqRecord) -> Result<(), SinkError> {
        let key = &record.event.key;
        let body = encode(key, record)?;
        let attempts = record.attempts.to_string();
        send(&self.producer, topics::DLQ, key, &body, &[("reason", record.reason.as_str()), ("attempts", &attempts)])
            .await
            .map_err(publish_error)?;
        self.put(&record.event.bucket, dlq_object_key(key), body).await
    }

    /// Nothing is buffered: every write waited for its acknowledgements.
    async fn flush(&self) -> Result<(), SinkError> {
        Ok(())
    }
}
