//! The ingest service loop: consume notifications, and publish their ItemEvents and commit
//! their offsets in one transaction per batch; the reconciliation runs beside it (`reconcile.rs`).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use autorma_core::kafka::KafkaConfig;
use autorma_core::topics;
use autorma_core::{Checkpoint, PartitionId, S3Store};

use super::error::IngestError;
use super::parse::{NotificationFilter, Parsed, parse_notification};
use super::reconcile::{ReconcileConfig, reconcile_loop};
use crate::kafka::{KafkaConsumer, KafkaConsumerConfig, RawMessage, item_record, raw_dead_letter};

/// How often a transaction that could not commit is retried while no notification comes.
const IDLE_COMMIT_INTERVAL: Duration = Duration::from_secs(1);

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
    let consumer_config = KafkaConsumerConfig {
        kafka: config.kafka.clone(),
        group_id: config.group_id.clone(),
        topics: vec![topics::UPLOADS_RAW.to_string()],
        bulk_topics: Vec::new(),
        max_batch: 256,
    };
    let mut consumer = tokio::task::spawn_blocking(move || KafkaConsumer::subscribe(&consumer_config))
        .await
        .expect("subscribing panicked")?;
    // The reconciliation consumes nothing, so it has no offsets to commit with its events: it
    // sends them on a producer of its own, outside the transactions.
    let producer = config.kafka.producer()?;
    tracing::info!(bucket = %config.reconcile.bucket, inbox = %config.filter.inbox_prefix,
        key_encoding = ?config.filter.key_encoding, reconcile_every = ?config.reconcile.interval,
        grace = ?config.reconcile.grace, "ingest starting");
    let reconciled = Arc::new(AtomicU64::new(0));
    let reconciliation = tokio::spawn(reconcile_loop(config.reconcile.clone(), store, producer, reconciled.clone()));
    let mut summary = IngestSummary::default();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut idle_commit = tokio::time::interval(IDLE_COMMIT_INTERVAL);
    idle_commit.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let result = loop {
        tokio::select! {
            biased;
            () = &mut shutdown => {
                consumer.flush().await;
                break Ok(());
            }
            _ = idle_commit.tick() => consumer.commit(Checkpoint::default()).await,
            messages = consumer.next_messages() => {
                let messages = match messages {
                    Ok(messages) => messages,
                    Err(e) => break Err(e.into()),
                };
                consumer.commit(forward(&config.filter, &messages, &mut summary)).await;
                idle_commit.reset();
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

/// The ItemEvents (and dead letters) of a batch of notifications, and the offsets past it:
/// one transaction publishes the records and commits the offsets.
fn forward(filter: &NotificationFilter, messages: &[RawMessage], summary: &mut IngestSummary) -> Checkpoint {
    let mut records = Vec::new();
    for message in messages {
        summary.notifications += 1;
        // Forwarded already by a committed transaction (a consumer that started too low).
        if message.committed_before {
            continue;
        }
        let mut problems = Vec::new();
        match parse_notification(&message.payload, filter) {
            Ok(parsed) => {
                for record in parsed {
                    match record {
                        Parsed::Item(event) => {
                            summary.items += 1;
                            records.push((message.position.partition, item_record(topics::ITEMS, &event)));
                        }
                        Parsed::Skipped { key, why } => {
                            summary.skipped += 1;
                            tracing::debug!(%key, why, "notification skipped");
                        }
                        Parsed::Invalid(malformed) => problems.push(malformed.0),
                    }
                }
            }
            Err(malformed) => problems.push(malformed.0),
        }
        if !problems.is_empty() {
            summary.malformed += 1;
            let detail = problems.join("; ");
            tracing::warn!(topic = %message.topic, partition = message.partition, offset = message.position.offset,
                error = %detail, "malformed notification sent to the DLQ");
            let record = raw_dead_letter(message, "malformed_notification", &detail);
            records.push((message.position.partition, record));
        }
    }
    Checkpoint { watermarks: watermarks(messages), records }
}

/// Every message of the batch is done once its records are in the transaction: commit past
/// the last one of each partition (Kafka's committed offset is the next one to read).
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
            read_at: format!("rma.uploads.raw/{partition}/{offset}"),
            maybe_done: false,
            committed_before: false,
        };
        assert_eq!(watermarks(&[m(0, 4), m(1, 9), m(0, 5)]), vec![(0, 6), (1, 10)]);
    }
}
