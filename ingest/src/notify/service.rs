//! The ingest service loop: consume notifications, produce ItemEvents, commit behind the
//! acknowledgements, and reconcile on a schedule.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use autorma_core::kafka::{KafkaConfig, KafkaError, send, topics};
use autorma_core::{ItemEvent, PartitionId, S3Store, SourceError, StoreError};
use chrono::Utc;
use futures::future::try_join_all;
use rdkafka::producer::FutureProducer;
use serde::Serialize;

use super::parse::{Malformed, NotificationFilter, Parsed, parse_notification};
use super::reconcile::list_unfinished;
use crate::kafka::{KafkaConsumer, KafkaConsumerConfig, RawMessage};

#[derive(Debug, Clone)]
pub struct IngestConfig {
    pub kafka: KafkaConfig,
    /// The ingest services' consumer group on `rma.uploads.raw`.
    pub group_id: String,
    pub filter: NotificationFilter,
    /// The bucket the reconciliation lists.
    pub bucket: String,
    /// Time between two reconciliations (the first runs at start).
    pub reconcile_interval: Duration,
    /// A photo younger than this is left to its notification by the reconciliation.
    pub reconcile_grace: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Counts since start, logged at the end.
#[derive(Debug, Default, Clone)]
pub struct IngestSummary {
    pub notifications: u64,
    pub items: u64,
    pub skipped: u64,
    pub malformed: u64,
    pub reconciled: u64,
}

/// The dead letter of a notification that could not be read: no ItemEvent exists for it, so
/// it carries where it came from and the raw payload.
#[derive(Serialize)]
struct MalformedNotification<'a> {
    reason: &'static str,
    detail: &'a str,
    attempts: u32,
    topic: &'a str,
    partition: i32,
    offset: u64,
    payload: String,
    failed_at: chrono::DateTime<Utc>,
}

/// Runs until `shutdown`, or until Kafka fails for good.
pub async fn run_ingest(
    config: IngestConfig,
    store: S3Store,
    shutdown: impl Future<Output = ()>,
) -> Result<IngestSummary, IngestError> {
    let consumer = KafkaConsumer::subscribe(&KafkaConsumerConfig {
        kafka: config.kafka.clone(),
        group_id: config.group_id.clone(),
        topics: vec![topics::UPLOADS_RAW.to_string()],
        max_batch: 256,
    })?;
    let producer = config.kafka.producer()?;
    let mut summary = IngestSummary::default();
    let mut reconcile_tick = tokio::time::interval(config.reconcile_interval);
    reconcile_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shutdown = std::pin::pin!(shutdown);
    tracing::info!(bucket = %config.bucket, inbox = %config.filter.inbox_prefix, key_encoding = ?config.filter.key_encoding,
        reconcile_every = ?config.reconcile_interval, grace = ?config.reconcile_grace, "ingest starting");
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            _ = reconcile_tick.tick() => {
                // A failed listing is retried at the next tick; notifications keep flowing.
                match reconcile(&config, &store, &producer).await {
                    Ok(sent) => summary.reconciled += sent,
                    Err(e) => tracing::warn!(error = %e, "reconciliation failed; retried at the next interval"),
                }
            }
            messages = consumer.next_messages() => {
                let messages = messages?;
                forward(&config.filter, &producer, &messages, &mut summary).await?;
                consumer.commit(&watermarks(&messages)).await?;
            }
        }
    }
    tracing::info!(?summary, "ingest stopped");
    Ok(summary)
}

/// Produces the ItemEvents (and dead letters) of a batch of notifications and waits for
/// every acknowledgement.
async fn forward(
    filter: &NotificationFilter,
    producer: &FutureProducer,
    messages: &[RawMessage],
    summary: &mut IngestSummary,
) -> Result<(), KafkaError> {
    let mut items = Vec::new();
    let mut dead = Vec::new();
    for message in messages {
        summary.notifications += 1;
        match parse_notification(&message.payload, filter) {
            Ok(records) => {
                for record in records {
                    match record {
                        Parsed::Item(event) => items.push(event),
                        Parsed::Skipped { key, why } => {
                            summary.skipped += 1;
                            tracing::debug!(%key, why, "notification skipped");
                        }
                    }
                }
            }
            Err(malformed) => {
                summary.malformed += 1;
                tracing::warn!(topic = %message.topic, partition = message.partition, offset = message.position.offset,
                    error = %malformed, "malformed notification sent to the DLQ");
                dead.push(dead_letter(message, &malformed));
            }
        }
    }
    summary.items += items.len() as u64;
    let sends = items.iter().map(|event| send_item(producer, event));
    let dead_sends = dead.iter().map(|(key, body)| {
        send(producer, topics::DLQ, key, body, &[("reason", "malformed_notification"), ("attempts", "1")])
    });
    try_join_all(sends).await?;
    try_join_all(dead_sends).await?;
    Ok(())
}

async fn send_item(producer: &FutureProducer, event: &ItemEvent) -> Result<(), KafkaError> {
    let body = serde_json::to_vec(event).expect("an ItemEvent always serialises");
    tracing::debug!(key = %event.key, etag = %event.etag, source = ?event.source, "item event");
    send(producer, topics::ITEMS, &event.key, &body, &[]).await
}

fn dead_letter(message: &RawMessage, malformed: &Malformed) -> (String, Vec<u8>) {
    let record = MalformedNotification {
        reason: "malformed_notification",
        detail: &malformed.0,
        attempts: 1,
        topic: &message.topic,
        partition: message.partition,
        offset: message.position.offset,
        payload: String::from_utf8_lossy(&message.payload).into_owned(),
        failed_at: Utc::now(),
    };
    let key = format!("{}/{}/{}", message.topic, message.partition, message.position.offset);
    (key, serde_json::to_vec(&record).expect("always serialises"))
}

/// Every message of the batch is done once `forward` returned: commit past the last one of
/// each partition (Kafka's committed offset is the next one to read).
fn watermarks(messages: &[RawMessage]) -> Vec<(PartitionId, u64)> {
    let mut next: BTreeMap<PartitionId, u64> = BTreeMap::new();
    for m in messages {
        let entry = next.entry(m.position.partition).or_default();
        *entry = (*entry).max(m.position.offset + 1);
    }
    next.into_iter().collect()
}

async fn reconcile(config: &IngestConfig, store: &S3Store, producer: &FutureProducer) -> Result<u64, IngestError> {
    let found = list_unfinished(store, &config.bucket, &config.filter.inbox_prefix, config.reconcile_grace).await?;
    for chunk in found.events.chunks(256) {
        try_join_all(chunk.iter().map(|event| send_item(producer, event))).await?;
    }
    let s = &found.summary;
    if s.unfinished > 0 {
        tracing::info!(
            listed = s.listed,
            done = s.done,
            recent = s.recent,
            sent = s.unfinished,
            "reconciliation: sent the photos that had no outcome"
        );
    } else {
        tracing::debug!(listed = s.listed, done = s.done, recent = s.recent, "reconciliation: nothing missing");
    }
    Ok(s.unfinished as u64)
}

#[cfg(test)]
mod tests {
    use autorma_core::Position;

    use super::*;

    #[test]
    fn the_commit_passes_the_last_message_of_each_partition() {
        let m = |partition, offset| RawMessage {
            position: Position::new(partition, offset),
            topic: "rma.uploads.raw".into(),
            partition: partition as i32,
            key: None,
            payload: Vec::new(),
        };
        assert_eq!(watermarks(&[m(0, 4), m(1, 9), m(0, 5)]), vec![(0, 6), (1, 10)]);
    }
}
