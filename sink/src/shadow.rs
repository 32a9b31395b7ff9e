//! `rma.shadow`: the shadow stage's records written out, and read back whole for
//! `autorma model compare` and `promote --gate`.
//!
//! These records are not the photos' results: they are published outside the workers'
//! transactions, at least once (a record sent twice is counted once by
//! [`Comparison`](autorma_core::shadow::Comparison)), so the shadow never slows a commit.

use std::collections::HashMap;
use std::time::Duration;

use autorma_core::kafka::{KafkaConfig, KafkaError, send};
use autorma_core::shadow::ShadowRecord;
use autorma_core::topics;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;

/// Sends in flight at once: enough that the broker's round trips do not pace the shadow.
const IN_FLIGHT: usize = 64;
/// How long librdkafka tries a record before it gives up on it (its default is 5 minutes): a
/// shadow record is not worth holding a stopping worker for.
const SEND_TIMEOUT_MS: &str = "10000";

/// The producer of `rma.shadow`'s records.
pub fn producer(kafka: &KafkaConfig) -> Result<FutureProducer, KafkaError> {
    kafka
        .client_config(&[
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("linger.ms", "20"),
            ("message.timeout.ms", SEND_TIMEOUT_MS),
        ])
        .create()
        .map_err(|e| KafkaError::Client { detail: e.to_string() })
}

/// Publishes every record `records` yields to `rma.shadow` (key = object key), until the
/// channel closes; a record the broker refuses is logged and dropped (it is not a result).
pub async fn publish(producer: FutureProducer, mut records: mpsc::Receiver<ShadowRecord>) {
    let mut sends = FuturesUnordered::new();
    let report = |sent: Result<(), KafkaError>| {
        if let Err(e) = sent {
            tracing::warn!(error = %e, "a shadow record was not published");
        }
    };
    loop {
        tokio::select! {
            record = records.recv(), if sends.len() < IN_FLIGHT => {
                let Some(record) = record else { break };
                let producer = producer.clone();
                sends.push(async move {
                    let body = serde_json::to_vec(&record).expect("shadow records serialise");
                    let headers = [("role", record.role.as_str()), ("version", record.shadow.model.version.as_str())];
                    send(&producer, topics::SHADOW, &record.item.key, &body, &headers).await
                });
            }
            Some(sent) = sends.next(), if !sends.is_empty() => report(sent),
        }
    }
    while let Some(sent) = sends.next().await {
        report(sent);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ShadowReadError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error("reading `{}` failed: {detail}", topics::SHADOW)]
    Read { detail: String },
    #[error("reading `{}` did not reach its end within {timeout:?} ({left} records left)", topics::SHADOW)]
    Timeout { timeout: Duration, left: i64 },
}

/// Every record on `rma.shadow` now, from the start of each partition to its end as it was
/// when the read began. Records that are not valid JSON of the kind are skipped with a warning.
/// Blocking: call on a blocking thread.
pub fn read_all(kafka: &KafkaConfig, timeout: Duration) -> Result<Vec<ShadowRecord>, ShadowReadError> {
    let read_err = |e: rdkafka::error::KafkaError| ShadowReadError::Read { detail: e.to_string() };
    // No group is joined (partitions are assigned) and nothing is committed: the id only
    // satisfies librdkafka.
    let group = format!("autorma-shadow-read-{}", std::process::id());
    let consumer: BaseConsumer = kafka
        .client_config(&[
            ("group.id", &group),
            ("enable.auto.commit", "false"),
            ("enable.partition.eof", "false"),
            // Records retention removes meanwhile: start at what is left, not at the end.
            ("auto.offset.reset", "earliest"),
        ])
        .create()
        .map_err(read_err)?;
    kafka.check_topics_with(consumer.client(), &[topics::SHADOW], timeout)?;
    let metadata = consumer.fetch_metadata(Some(topics::SHADOW), timeout).map_err(read_err)?;
    let mut assignment = TopicPartitionList::new();
    // Each partition's end, and where the read stands in it.
    let mut ends: HashMap<i32, (i64, i64)> = HashMap::new();
    for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
        let (low, high) = consumer.fetch_watermarks(topics::SHADOW, partition.id(), timeout).map_err(read_err)?;
        if high > low {
            assignment.add_partition_offset(topics::SHADOW, partition.id(), Offset::Offset(low)).map_err(read_err)?;
            ends.insert(partition.id(), (high, low));
        }
    }
    if ends.is_empty() {
        return Ok(Vec::new());
    }
    consumer.assign(&assignment).map_err(read_err)?;
    let deadline = std::time::Instant::now() + timeout;
    let mut records = Vec::new();
    while !ends.is_empty() {
        let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) else {
            let left = ends.values().map(|(end, at)| end - at).sum();
            return Err(ShadowReadError::Timeout { timeout, left });
        };
        let message = match consumer.poll(left.min(Duration::from_millis(500))) {
            None => continue,
            // librdkafka retries what can pass (a broker away for a moment); the deadline
            // bounds the wait.
            Some(Err(e)) => {
                tracing::warn!(error = %e, "reading rma.shadow: retrying");
                continue;
            }
            Some(Ok(message)) => message,
        };
        match serde_json::from_slice::<ShadowRecord>(message.payload().unwrap_or_default()) {
            Ok(record) => records.push(record),
            Err(e) => tracing::warn!(partition = message.partition(), offset = message.offset(), error = %e,
                "skipping a record of rma.shadow that is not a shadow record"),
        }
        if let Some((end, at)) = ends.get_mut(&message.partition()) {
            *at = message.offset() + 1;
            if *at >= *end {
                ends.remove(&message.partition());
            }
        }
    }
    Ok(records)
}
