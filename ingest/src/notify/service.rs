//! The ingest service loop: consume notifications, produce ItemEvents, commit behind the
//! acknowledgements; the reconciliation runs beside it (`reconcile.rs`).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use autorma_core::kafka::{KafkaConfig, topics};
use autorma_core::{PartitionId, S3Store};
use futures::future::try_join_all;
use rdkafka::producer::FutureProducer;

use super::error::IngestError;
use super::parse::{NotificationFilter, Parsed, parse_notification};
use super::reconcile::{ReconcileConfig, reconcile_loop};
use crate::kafka::{KafkaConsumer, KafkaConsumerConfig, RawMessage, send_item, send_raw_dead_letter};

#[derive(Debug, Clone)]
pub struct IngestConfig {
    pub kafka: KafkaConfig,
    /// The ingest services' consumer group on `rma.uploads.raw`.
    pub group_id: String,
    pub filter: NotificationFilter,
    /// What the reconciliation lists, and how often.
    pub reconcile: ReconcileConfig,
}

/// Counts since start, logged at the end.
#[derive(Debug, Default, Clone)]
pub struct IngestSummary {
    pub notifications: u64,
    pub items: u64,
    pub skipped: u64,
    /// Notifications sent to the DLQ (whole, or for one of their records).
    pub malformed: u64,
    pub reconciled: u64,
}

/// Runs until `shutdown`, or until Kafka fails for good.
pub async fn run_ingest(
    config: IngestConfig,
    store: S3Store,
    shutdown: impl Future<Output = ()>,
) -> Result<IngestSummary, IngestError> {
    let mut consumer = KafkaConsumer::subscribe(&KafkaConsumerConfig {
        kafka: config.kafka.clone(),
        group_id: config.group_id.clone(),
        topics: vec![topics::UPLOADS_RAW.to_string()],
        bulk_topics: Vec::new(),
        max_batch: 256,
    })?;
    let producer = config.kafka.producer()?;
    tracing::info!(bucket = %config.reconcile.bucket, inbox = %config.filter.inbox_prefix,
        key_encoding = ?config.filter.key_encoding, reconcile_every = ?config.reconcile.interval,
        grace = ?config.reconcile.grace, "ingest starting");
    let reconciled = Arc::new(AtomicU64::new(0));
    let reconciliation =
        tokio::spawn(reconcile_loop(config.reconcile.clone(), store, producer.clone(), reconciled.clone()));
    let mut summary = IngestSummary::default();
    let mut shutdown = std::pin::pin!(shutdown);
    let result = loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break Ok(()),
            messages = consumer.next_messages() => {
                let forwarded = match messages {
                    Ok(messages) => forward(&config.filter, &producer, &messages, &mut summary).await.map(|()| messages),
                    Err(e) => Err(e.into()),
                };
                match forwarded {
                    Ok(messages) => consumer.commit(&watermarks(&messages)),
                    Err(e) => break Err(e),
                }
                // The ingest's partitions need no tracking beyond the batch: forget revoked ids.
                consumer.take_revoked();
            }
        }
    };
    // Stopping mid-send is safe: what it sent is idempotent, what it did not is found next time.
    reconciliation.abort();
    summary.reconciled = reconciled.load(Ordering::Relaxed);
    tracing::info!(?summary, "ingest stopped");
    result.map(|()| summary)
}

/// Produces the ItemEvents (and dead letters) of a batch of notifications and waits for
/// every acknowledgement.
async fn forward(
    filter: &NotificationFilter,
    producer: &FutureProducer,
    messages: &[RawMessage],
    summary: &mut IngestSummary,
) -> Result<(), IngestError> {
    let mut items = Vec::new();
    let mut dead = Vec::new();
    for message in messages {
        summary.notifications += 1;
        let problems: Vec<String> = match parse_notification(&message.payload, filter) {
            Ok(records) => records
                .into_iter()
                .filter_map(|record| match record {
                    Parsed::Item(event) => {
                        items.push(event);
                        None
                    }
                    Parsed::Skipped { key, why } => {
                        summary.skipped += 1;
                        tracing::debug!(%key, why, "notification skipped");
                        None
                    }
                    Parsed::Invalid(malformed) => Some(malformed.0),
                })
                .collect(),
            Err(malformed) => vec![malformed.0],
        };
        if !problems.is_empty() {
            summary.malformed += 1;
            let detail = problems.join("; ");
            tracing::warn!(topic = %message.topic, partition = message.partition, offset = message.position.offset,
                error = %detail, "malformed notification sent to the DLQ");
            dead.push((message, detail));
        }
    }
    summary.items += items.len() as u64;
    try_join_all(items.iter().map(|event| send_item(producer, topics::ITEMS, event))).await?;
    try_join_all(
        dead.iter().map(|(message, detail)| send_raw_dead_letter(producer, message, "malformed_notification", detail)),
    )
    .await?;
    Ok(())
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
            payload: Vec::new(),
            trace: None,
        };
        assert_eq!(watermarks(&[m(0, 4), m(1, 9), m(0, 5)]), vec![(0, 6), (1, 10)]);
    }
}
