//! Feeding the index in streaming mode: the records the workers publish (`rma.results`,
//! `rma.review`, `rma.dlq`) and the corrections people make on any `autorma serve`
//! (`rma.corrections`).
//!
//! Every serve process keeps a whole index of its own, so it reads every partition (assigned,
//! not shared through a group rebalance). Where to start is stored in the index, in the same
//! transaction as the rows ([`IndexBatch`]): a new or deleted index starts from the beginning
//! of the topics, which rebuilds it. The consumer group (`--group`) gets the same offsets
//! committed after each index write, so its lag shows how far behind the index is.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use autorma_core::kafka::{KafkaConfig, topics};
use autorma_core::{CorrectionRecord, DlqRecord, ResultRecord};
use autorma_sink::index::{IndexBatch, ResultIndex};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::broadcast;

use super::FeedEvent;

/// The topics the index is fed from.
pub const FEED_TOPICS: [&str; 4] = [topics::RESULTS, topics::REVIEW, topics::DLQ, topics::CORRECTIONS];

/// Most records written to the index in one transaction.
const MAX_BATCH: usize = 500;
/// How long a batch waits for more records once it has one.
const BATCH_WAIT: Duration = Duration::from_millis(50);
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// Where each partition's feed stands.
type Positions = HashMap<(String, i32), i64>;

/// The consumer, assigned every partition of [`FEED_TOPICS`] from the index's positions.
pub struct TopicFeed {
    consumer: StreamConsumer,
    /// Each partition's end when the feed started: reaching all of them is "caught up".
    targets: Positions,
}

impl TopicFeed {
    /// Connects and assigns. Blocking (metadata and watermarks): call on a blocking thread.
    pub fn connect(kafka: &KafkaConfig, group_id: &str, index: &ResultIndex) -> anyhow::Result<Self> {
        let consumer = consumer(kafka, group_id)?;
        let stored = index.positions()?;
        let mut assignment = TopicPartitionList::new();
        let mut targets = Positions::new();
        for (topic, id, low, high) in partitions(&consumer)? {
            let start = stored.get(&(topic.to_string(), id)).copied().unwrap_or(low).max(low);
            assignment.add_partition_offset(topic, id, Offset::Offset(start))?;
            if start < high {
                targets.insert((topic.to_string(), id), high);
            }
        }
        consumer.assign(&assignment).context("cannot assign the feed's partitions")?;
        tracing::info!(
            partitions = assignment.count(),
            behind = targets.len(),
            group = group_id,
            "the index follows the topics"
        );
        Ok(Self { consumer, targets })
    }

    /// Where every partition ends now: (topic, partition, next offset). Blocking.
    pub fn ends(kafka: &KafkaConfig, group_id: &str) -> anyhow::Result<Vec<(String, i32, i64)>> {
        let consumer = consumer(kafka, group_id)?;
        Ok(partitions(&consumer)?.into_iter().map(|(topic, id, _, high)| (topic.to_string(), id, high)).collect())
    }

    /// Feeds `index` until the task is dropped; sets `caught_up` once every partition has
    /// reached where it ended at start.
    pub async fn run(
        mut self,
        index: Arc<ResultIndex>,
        caught_up: Arc<AtomicBool>,
        events: broadcast::Sender<FeedEvent>,
    ) {
        caught_up.store(self.targets.is_empty(), Ordering::Relaxed);
        loop {
            let (batch, announce) = self.next_batch().await;
            if batch.is_empty() {
                continue;
            }
            // The rows and the positions together; kept until the index takes them.
            let batch = Arc::new(batch);
            loop {
                let (index, batch) = (index.clone(), batch.clone());
                match tokio::task::spawn_blocking(move || index.apply(&batch)).await.expect("indexing panicked") {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::error!(error = %e, "writing to the results index failed; trying again in 1 s");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
            self.commit(&batch.positions);
            for event in announce {
                // Nobody listening is fine.
                let _ = events.send(event);
            }
            if !self.targets.is_empty() {
                for (topic, partition, next) in &batch.positions {
                    let key = (topic.clone(), *partition);
                    if self.targets.get(&key).is_some_and(|target| next >= target) {
                        self.targets.remove(&key);
                    }
                }
                if self.targets.is_empty() {
                    tracing::info!("the results index has caught up with the topics");
                    caught_up.store(true, Ordering::Relaxed);
                }
            }
        }
    }

    /// Up to [`MAX_BATCH`] records: waits for the first, then [`BATCH_WAIT`] for more.
    async fn next_batch(&self) -> (IndexBatch, Vec<FeedEvent>) {
        let mut batch = IndexBatch::default();
        let mut announce = Vec::new();
        let mut next: HashMap<(String, i32), i64> = HashMap::new();
        for n in 0..MAX_BATCH {
            let received = if n == 0 {
                self.consumer.recv().await
            } else {
                match tokio::time::timeout(BATCH_WAIT, self.consumer.recv()).await {
                    Ok(received) => received,
                    Err(_) => break,
                }
            };
            let message = match received {
                Ok(message) => message,
                Err(e) => {
                    // librdkafka reconnects by itself; the feed just waits.
                    tracing::warn!(error = %e, "reading the topics failed");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    break;
                }
            };
            let (topic, partition, offset) = (message.topic().to_string(), message.partition(), message.offset());
            let payload = message.payload().unwrap_or_default();
            let decoded = match topic.as_str() {
                topics::RESULTS | topics::REVIEW => serde_json::from_slice::<ResultRecord>(payload).map(|record| {
                    if topic == topics::RESULTS {
                        announce.push(FeedEvent::Result(Arc::new(record.clone())));
                    }
                    batch.results.push(record);
                }),
                topics::DLQ => serde_json::from_slice::<DlqRecord>(payload)
                    .map(|record| announce.push(FeedEvent::DeadLetter(Arc::new(record)))),
                _ => serde_json::from_slice::<CorrectionRecord>(payload).map(|record| batch.corrections.push(record)),
            };
            if let Err(e) = decoded {
                // Not ours, or from a newer version: skipped (and said), never a stuck feed.
                tracing::warn!(%topic, partition, offset, error = %e, "record skipped: not readable");
            }
            next.insert((topic, partition), offset + 1);
        }
        batch.positions = next.into_iter().map(|((topic, partition), offset)| (topic, partition, offset)).collect();
        (batch, announce)
    }

    /// The group's offsets, after the index write (for monitoring: the index keeps its own).
    fn commit(&self, positions: &[(String, i32, i64)]) {
        let mut offsets = TopicPartitionList::new();
        for (topic, partition, next) in positions {
            let _ = offsets.add_partition_offset(topic, *partition, Offset::Offset(*next));
        }
        if let Err(e) = self.consumer.commit(&offsets, CommitMode::Async) {
            tracing::warn!(error = %e, "committing the feed's offsets failed; the next commit carries them");
        }
    }
}

fn consumer(kafka: &KafkaConfig, group_id: &str) -> anyhow::Result<StreamConsumer> {
    kafka
        .client_config(&[
            ("group.id", group_id),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", "earliest"),
        ])
        .create()
        .context("cannot create the index's Kafka consumer")
}

/// Every partition of [`FEED_TOPICS`]: (topic, partition, low and high watermarks).
fn partitions(consumer: &StreamConsumer) -> anyhow::Result<Vec<(&'static str, i32, i64, i64)>> {
    let mut out = Vec::new();
    for topic in FEED_TOPICS {
        let metadata = consumer
            .fetch_metadata(Some(topic), METADATA_TIMEOUT)
            .with_context(|| format!("cannot read the partitions of `{topic}`"))?;
        for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
            let id = partition.id();
            let (low, high) = consumer
                .fetch_watermarks(topic, id, METADATA_TIMEOUT)
                .with_context(|| format!("cannot read the offsets of `{topic}` partition {id}"))?;
            out.push((topic, id, low, high));
        }
    }
    Ok(out)
}
