//! Feeding the index in streaming mode: the records the workers publish (`rma.results`,
//! `rma.review`, `rma.dlq`) and the corrections people make on any `autorma serve`
//! (`rma.corrections`).
//!
//! Every serve process keeps a whole index of its own, so it reads every partition (assigned,
//! not shared through a group rebalance). Where to start is stored in the index, in the same
//! transaction as the rows ([`IndexBatch`]): a new or deleted index starts from the beginning
//! of the topics, which rebuilds it. The consumer group (`--group`) gets the same offsets
//! committed after each index write, so its lag shows how far behind the index is.
//!
//! The records come from transactions (the workers publish a batch's records with its input
//! offsets), read `read_committed`: only committed records are seen, and a transaction's
//! commit marker takes an offset of its own that no record has. So "caught up" is not "read
//! the record just below the end offset": it is librdkafka's fetch position (which steps over
//! markers and aborted records) at the end, with nothing left to hand over.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use autorma_core::kafka::{KafkaConfig, partition_stats};
use autorma_core::topics;
use autorma_core::{CorrectionRecord, DlqRecord, ResultRecord};
use autorma_sink::index::{IndexBatch, ResultIndex};
use chrono::{DateTime, Utc};
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{ClientContext, Offset, Statistics, TopicPartitionList};
use tokio::sync::broadcast;

use super::error::kafka_step;
use super::{FeedError, FeedEvent, FeedStatus};

/// The topics the index is fed from.
pub const FEED_TOPICS: [&str; 4] = [topics::RESULTS, topics::REVIEW, topics::DLQ, topics::CORRECTIONS];

/// Most records written to the index in one transaction.
const MAX_BATCH: usize = 500;
/// How long a batch waits for more records once it has one.
const BATCH_WAIT: Duration = Duration::from_millis(50);
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// With nothing received for this long, the feed checks whether librdkafka's fetch positions
/// reached the targets (a partition that ends with a transaction marker is never "reached" by
/// a record).
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// Where each partition's feed stands.
type Positions = HashMap<(String, i32), i64>;

/// The feed consumer's context: keeps librdkafka's fetch position of each partition, from its
/// statistics.
#[derive(Clone, Default)]
struct FeedContext {
    fetched: Arc<Mutex<Positions>>,
}

impl ClientContext for FeedContext {
    fn stats(&self, statistics: Statistics) {
        let mut fetched = self.fetched.lock().expect("fetch positions poisoned");
        for (topic, partition, p) in partition_stats(&statistics) {
            if p.next_offset >= 0 {
                fetched.insert((topic.to_string(), partition), p.next_offset);
            }
        }
    }
}

impl ConsumerContext for FeedContext {}

/// The consumer, assigned every partition of [`FEED_TOPICS`] from the index's positions.
pub struct TopicFeed {
    consumer: StreamConsumer<FeedContext>,
    /// Each partition's end when the feed started: reaching all of them is "caught up".
    targets: Positions,
}

impl TopicFeed {
    /// Connects and assigns. Blocking (metadata and watermarks): call on a blocking thread.
    pub fn connect(kafka: &KafkaConfig, group_id: &str, index: &ResultIndex) -> Result<Self, FeedError> {
        let consumer = consumer(kafka, group_id)?;
        let stored = index.positions()?;
        let mut assignment = TopicPartitionList::new();
        let mut targets = Positions::new();
        for (topic, id, low, high) in partitions(&consumer)? {
            let start = match stored.get(&(topic.to_string(), id)).copied() {
                None => low,
                Some(next) if next < low => {
                    tracing::warn!(
                        topic,
                        partition = id,
                        next,
                        low,
                        "records the index has not read are gone (retention): start the index with --rebuild bucket"
                    );
                    low
                }
                Some(next) if next > high => {
                    tracing::warn!(
                        topic,
                        partition = id,
                        next,
                        high,
                        "the index is past the partition's end (a recreated topic?): reading it from its start"
                    );
                    low
                }
                Some(next) => next,
            };
            assignment
                .add_partition_offset(topic, id, Offset::Offset(start))
                .map_err(kafka_step(format!("cannot start `{topic}` partition {id} at offset {start}")))?;
            if start < high {
                targets.insert((topic.to_string(), id), high);
            }
        }
        consumer.assign(&assignment).map_err(kafka_step("cannot assign the feed's partitions"))?;
        tracing::info!(
            partitions = assignment.count(),
            behind = targets.len(),
            group = group_id,
            "the index follows the topics"
        );
        Ok(Self { consumer, targets })
    }

    /// Where to read each partition from to see every record published since `time`:
    /// (topic, partition, offset). Blocking.
    pub fn positions_at(
        kafka: &KafkaConfig,
        group_id: &str,
        time: DateTime<Utc>,
    ) -> Result<Vec<(String, i32, i64)>, FeedError> {
        let consumer = consumer(kafka, group_id)?;
        let partitions = partitions(&consumer)?;
        let mut query = TopicPartitionList::new();
        for (topic, id, _, _) in &partitions {
            query
                .add_partition_offset(topic, *id, Offset::Offset(time.timestamp_millis()))
                .map_err(kafka_step("cannot look up offsets by time"))?;
        }
        let found = consumer
            .offsets_for_times(query, METADATA_TIMEOUT)
            .map_err(kafka_step("cannot look up offsets by time"))?;
        Ok(partitions
            .into_iter()
            .map(|(topic, id, _, high)| {
                // No record since `time`: the partition's end.
                let offset = match found.find_partition(topic, id).map(|p| p.offset()) {
                    Some(Offset::Offset(n)) => n,
                    _ => high,
                };
                (topic.to_string(), id, offset)
            })
            .collect())
    }

    /// Feeds `index` until the task is dropped; says it caught up once every partition has
    /// reached where it ended at start.
    pub async fn run(mut self, index: Arc<ResultIndex>, status: Arc<FeedStatus>, events: broadcast::Sender<FeedEvent>) {
        if self.targets.is_empty() {
            status.set_caught_up();
        }
        loop {
            let (batch, announce) = self.next_batch().await;
            if batch.is_empty() {
                self.check_fetched(&status);
                continue;
            }
            // The rows and the positions together; kept until the index takes them.
            let batch = Arc::new(batch);
            loop {
                let (index, batch) = (index.clone(), batch.clone());
                match tokio::task::spawn_blocking(move || index.apply(&batch)).await.expect("indexing panicked") {
                    Ok(()) => {
                        status.succeeded();
                        break;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "writing to the results index failed; trying again in 1 s");
                        status.failed(format!("writing to the results index failed: {e}"));
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
                    status.set_caught_up();
                }
            }
        }
    }

    /// Idle: every target partition librdkafka has fetched past (over markers and aborted
    /// records) with nothing more handed over is reached.
    fn check_fetched(&mut self, status: &FeedStatus) {
        if self.targets.is_empty() {
            return;
        }
        let fetched = self.consumer.context().fetched.lock().expect("fetch positions poisoned").clone();
        self.targets.retain(|key, target| fetched.get(key).is_none_or(|position| position < target));
        if self.targets.is_empty() {
            tracing::info!("the results index has caught up with the topics");
            status.set_caught_up();
        }
    }

    /// Up to [`MAX_BATCH`] records: waits for the first (at most [`IDLE_CHECK`] while not
    /// caught up), then [`BATCH_WAIT`] for more.
    async fn next_batch(&self) -> (IndexBatch, Vec<FeedEvent>) {
        let mut batch = IndexBatch::default();
        let mut announce = Vec::new();
        let mut next: HashMap<(String, i32), i64> = HashMap::new();
        for n in 0..MAX_BATCH {
            let wait = match n {
                0 if self.targets.is_empty() => None,
                0 => Some(IDLE_CHECK),
                _ => Some(BATCH_WAIT),
            };
            let received = match wait {
                None => self.consumer.recv().await,
                Some(wait) => match tokio::time::timeout(wait, self.consumer.recv()).await {
                    Ok(received) => received,
                    Err(_) => break,
                },
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
            // Records from before the start (a new index reading the topics' history) are
            // indexed, not announced as new.
            let new = self.targets.get(&(topic.clone(), partition)).is_none_or(|target| offset + 1 >= *target);
            let decoded = match topic.as_str() {
                topics::RESULTS | topics::REVIEW => serde_json::from_slice::<ResultRecord>(payload).map(|record| {
                    if new && topic == topics::RESULTS {
                        announce.push(FeedEvent::Result(Arc::new(record.clone())));
                    }
                    batch.results.push(record);
                }),
                topics::DLQ => serde_json::from_slice::<DlqRecord>(payload).map(|record| {
                    if new {
                        announce.push(FeedEvent::DeadLetter(Arc::new(record)));
                    }
                }),
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

fn consumer(kafka: &KafkaConfig, group_id: &str) -> Result<StreamConsumer<FeedContext>, FeedError> {
    kafka
        .client_config(&[
            ("group.id", group_id),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", "earliest"),
            ("isolation.level", "read_committed"),
            // The fetch positions the idle check reads.
            ("statistics.interval.ms", "500"),
        ])
        .create_with_context(FeedContext::default())
        .map_err(kafka_step("cannot create the index's Kafka consumer"))
}

/// Every partition of [`FEED_TOPICS`]: (topic, partition, low and high watermarks).
fn partitions(consumer: &StreamConsumer<FeedContext>) -> Result<Vec<(&'static str, i32, i64, i64)>, FeedError> {
    let mut out = Vec::new();
    for topic in FEED_TOPICS {
        let metadata = consumer
            .fetch_metadata(Some(topic), METADATA_TIMEOUT)
            .map_err(kafka_step(format!("cannot read the partitions of `{topic}`")))?;
        for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
            let id = partition.id();
            let (low, high) = consumer
                .fetch_watermarks(topic, id, METADATA_TIMEOUT)
                .map_err(kafka_step(format!("cannot read the offsets of `{topic}` partition {id}")))?;
            out.push((topic, id, low, high));
        }
    }
    Ok(out)
}
