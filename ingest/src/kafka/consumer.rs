//! A Kafka consumer in a consumer group that hands out messages with their pipeline
//! positions and commits only the checkpoints it is given (never on its own), each in the
//! transaction that publishes its records (`transaction.rs`).

use std::collections::HashSet;
use std::sync::Arc;

use autorma_core::kafka::KafkaConfig;
use autorma_core::{Checkpoint, PartitionId, Position, SourceError, trace};
use futures::FutureExt;
use opentelemetry::trace::SpanContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, TopicPartitionList};

use super::assignments::{AssignmentContext, TopicPartition};
use super::transaction::Transactions;

#[derive(Debug, Clone)]
pub struct KafkaConsumerConfig {
    pub kafka: KafkaConfig,
    /// The consumer group: members share the topics' partitions.
    pub group_id: String,
    pub topics: Vec<String>,
    /// Those of `topics` whose messages are the bulk lane (the replay): served after the live
    /// ones, and paused while the pipeline holds enough of them.
    pub bulk_topics: Vec<String>,
    /// Most messages handed out by one call.
    pub max_batch: usize,
}

/// One consumed message, owned.
#[derive(Debug, Clone)]
pub struct RawMessage {
    /// Where the pipeline tracks it (partition id of this assignment, Kafka offset).
    pub position: Position,
    pub topic: String,
    pub partition: i32,
    pub payload: Vec<u8>,
    /// The producer's span, from the record's `traceparent` header.
    pub trace: Option<SpanContext>,
    /// `topic/partition/offset`: where it was read, the same in every process.
    pub read_at: String,
    /// Whether an earlier owner of the partition (or this process before a restart) may have
    /// handled it: it sits below the partition's end offset at the time it was assigned.
    pub maybe_done: bool,
    /// A committed transaction passed it already: below the group's committed offset when
    /// the partition was assigned (a consumer that started too low; see `design.md`).
    pub committed_before: bool,
}

pub struct KafkaConsumer {
    consumer: Arc<StreamConsumer<AssignmentContext>>,
    context: AssignmentContext,
    transactions: Transactions,
    max_batch: usize,
    bulk_topics: Vec<String>,
    /// Whether the bulk lane is held, and the bulk partitions paused for it so far.
    bulk_held: bool,
    paused: HashSet<TopicPartition>,
}

impl KafkaConsumer {
    /// Joins the group and readies the transactional producer (blocking: up to half a minute
    /// while the broker fences this id's earlier transactions).
    pub fn subscribe(config: &KafkaConsumerConfig) -> Result<Self, SourceError> {
        let offsets = config
            .kafka
            .client_config(&[("group.id", &config.group_id), ("isolation.level", "read_uncommitted")])
            .create()
            .map_err(|e| broker_error(&e))?;
        let context = AssignmentContext::new(&config.group_id, offsets);
        let consumer: StreamConsumer<AssignmentContext> = config
            .kafka
            .client_config(&[
                ("group.id", &config.group_id),
                // Offsets move only when the pipeline says every message below is done.
                ("enable.auto.commit", "false"),
                ("enable.auto.offset.store", "false"),
                ("auto.offset.reset", "earliest"),
                // Records of aborted transactions are never seen, and an assignment waits for
                // the offsets of a transaction still committing (KIP-447's stable offsets).
                ("isolation.level", "read_committed"),
                // Only the partitions that move are revoked; the others keep flowing.
                ("partition.assignment.strategy", "cooperative-sticky"),
                // A member killed without leaving is noticed within this time.
                ("session.timeout.ms", "10000"),
                ("heartbeat.interval.ms", "1000"),
                // The consumer lag metric comes from librdkafka's statistics.
                ("statistics.interval.ms", "5000"),
            ])
            .create_with_context(context.clone())
            .map_err(|e| broker_error(&e))?;
        let consumer = Arc::new(consumer);
        let transactions = Transactions::new(&config.kafka, &config.group_id, consumer.clone())?;
        let topics: Vec<&str> = config.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics).map_err(|e| broker_error(&e))?;
        tracing::info!(group = %config.group_id, ?topics, "subscribed");
        Ok(Self {
            consumer,
            context,
            transactions,
            max_batch: config.max_batch.max(1),
            bulk_topics: config.bulk_topics.clone(),
            bulk_held: false,
            paused: HashSet::new(),
        })
    }

    pub fn is_bulk(&self, topic: &str) -> bool {
        self.bulk_topics.iter().any(|t| t == topic)
    }

    /// Pauses (`true`) or resumes the bulk topics' partitions. librdkafka drops what it had
    /// prefetched of a paused partition and fetches again after the last message handed out,
    /// so nothing is skipped; partitions assigned while held are paused at the next poll.
    pub fn hold_bulk(&mut self, hold: bool) {
        self.bulk_held = hold;
        if hold {
            self.pause_new_bulk_partitions();
        } else if !self.paused.is_empty() {
            let paused: Vec<TopicPartition> = self.paused.iter().cloned().collect();
            match self.consumer.resume(&partition_list(&paused)) {
                Ok(()) => {
                    self.paused.clear();
                    tracing::debug!("replay partitions resumed");
                }
                // Kept in the set: the next hold_bulk(false) tries them again.
                Err(e) => tracing::warn!(error = %e, "could not resume the replay partitions"),
            }
        }
    }

    fn pause_new_bulk_partitions(&mut self) {
        let assigned = match self.consumer.assignment() {
            Ok(assigned) => assigned,
            Err(e) => return tracing::warn!(error = %e, "cannot read the assignment to pause the replay partitions"),
        };
        let assigned: HashSet<TopicPartition> =
            assigned.elements().iter().map(|e| (e.topic().to_string(), e.partition())).collect();
        // A partition revoked since it was paused may come back unpaused: forget it here.
        self.paused.retain(|tp| assigned.contains(tp));
        let new: Vec<TopicPartition> =
            assigned.into_iter().filter(|tp| self.is_bulk(&tp.0) && !self.paused.contains(tp)).collect();
        if new.is_empty() {
            return;
        }
        match self.consumer.pause(&partition_list(&new)) {
            Ok(()) => {
                tracing::debug!(partitions = ?new, "replay partitions paused: live photos first");
                self.paused.extend(new);
            }
            Err(e) => tracing::warn!(error = %e, "could not pause the replay partitions"),
        }
    }

    /// Waits for at least one message, then takes what is already there, up to the batch
    /// size. Cancel-safe: a message is taken from librdkafka's queue only in the poll that
    /// returns it. Rebalance callbacks run inside these polls.
    pub async fn next_messages(&mut self) -> Result<Vec<RawMessage>, SourceError> {
        if self.bulk_held {
            self.pause_new_bulk_partitions();
        }
        let mut batch = Vec::new();
        loop {
            match self.consumer.recv().await {
                Ok(message) => {
                    self.push_owned(&message, &mut batch);
                    break;
                }
                Err(e) => self.consume_error(e)?,
            }
        }
        while batch.len() < self.max_batch {
            match self.consumer.recv().now_or_never() {
                Some(Ok(message)) => self.push_owned(&message, &mut batch),
                Some(Err(e)) => self.consume_error(e)?,
                None => break,
            }
        }
        Ok(batch)
    }

    fn push_owned(&self, message: &rdkafka::message::BorrowedMessage<'_>, batch: &mut Vec<RawMessage>) {
        // A message of a partition revoked since it was fetched belongs to the next owner.
        let state = self.context.state();
        let Some(id) = state.id_of(message.topic(), message.partition()) else {
            return;
        };
        let offset = message.offset() as u64;
        batch.push(RawMessage {
            position: Position::new(id, offset),
            topic: message.topic().to_string(),
            partition: message.partition(),
            payload: message.payload().map(<[u8]>::to_vec).unwrap_or_default(),
            trace: trace::parent_from(message.headers()),
            read_at: format!("{}/{}/{offset}", message.topic(), message.partition()),
            maybe_done: state.maybe_done(id, offset),
            committed_before: state.committed_before(id, offset),
        });
    }

    /// librdkafka reconnects by itself: a transport error is logged and the wait goes on;
    /// only a fatal error ends the consumer.
    fn consume_error(&self, e: KafkaError) -> Result<(), SourceError> {
        if matches!(e, KafkaError::MessageConsumptionFatal(_)) {
            return Err(broker_error(&e));
        }
        tracing::warn!(error = %e, "kafka consumer error; librdkafka retries");
        Ok(())
    }

    /// Publishes the checkpoint's records and commits its offsets in one transaction, once the
    /// transaction before it has finished (see `transaction.rs`). A transaction that fails is
    /// not an error: its records and offsets go with the next one, and a broken producer is
    /// made again.
    pub async fn commit(&mut self, checkpoint: Checkpoint) {
        self.transactions.commit(checkpoint).await;
    }

    /// Commits what is still in flight or carried (a few tries), before the consumer closes.
    pub async fn flush(&mut self) {
        self.transactions.flush().await;
    }

    pub fn take_revoked(&self) -> Vec<PartitionId> {
        self.context.state().take_revoked()
    }
}

fn partition_list(partitions: &[TopicPartition]) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    for (topic, partition) in partitions {
        list.add_partition(topic, *partition);
    }
    list
}

/// What the consumer cannot get past by itself (librdkafka retries everything else).
fn broker_error(e: &KafkaError) -> SourceError {
    SourceError::Broker { detail: e.to_string(), retryable: false }
}
