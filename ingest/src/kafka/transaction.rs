//! Publishing a checkpoint's records and committing its input offsets in one Kafka
//! transaction: a `read_committed` consumer sees the records exactly when the offsets moved
//! past their messages, so a crash or a rebalance redelivers the messages and never shows
//! their records twice.
//!
//! One transactional producer per process, its `transactional.id` unique to the process (the
//! group, the host, the process id and the start time): a zombie is not fenced by a successor
//! taking its id but through the consumer group's metadata (KIP-447): a transaction that commits offsets
//! under a generation the group has left behind is refused, aborted here, and its partitions'
//! share is dropped (the new owner redelivers those messages). What a transaction could not
//! commit for partitions still held (the broker away, an abort) goes with the next one.
//!
//! A producer that hits a fatal error (librdkafka has them for a broker that comes back with a
//! transaction state it did not expect) is replaced by a new one with the same id, whose
//! initialisation aborts whatever the old one left open; then the carried checkpoint goes out.
//!
//! librdkafka's transaction calls block, so each transaction runs on a blocking thread. One is
//! in flight at a time; the next `commit` waits for it, so a slow broker slows the pipeline
//! instead of piling up records.

use std::sync::Arc;
use std::time::Duration;

use autorma_core::kafka::{KafkaConfig, owned_headers};
use autorma_core::{Checkpoint, OutboundRecord, SourceError};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use tokio::task::JoinHandle;

use super::assignments::{AssignmentContext, offsets_list};

/// Longest one transaction call (begin, offsets, commit, abort) waits for the broker.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a transaction keeps retrying its commit before it is aborted and carried over.
const COMMIT_DEADLINE: Duration = Duration::from_secs(60);
/// Transactions tried at shutdown for what is still carried.
const FLUSH_ATTEMPTS: u32 = 3;

pub(crate) struct Transactions {
    kafka: KafkaConfig,
    transactional_id: String,
    /// `None` after a fatal error, until the next transaction makes a new one.
    producer: Option<FutureProducer>,
    consumer: Arc<StreamConsumer<AssignmentContext>>,
    in_flight: Option<JoinHandle<Attempt>>,
    /// What earlier transactions could not commit, offered again first.
    carried: Checkpoint,
    /// An earlier transaction could neither commit nor abort: abort it before the next.
    open: bool,
}

/// How a transaction went.
struct Attempt {
    /// What it could not commit, for partitions still held.
    uncommitted: Checkpoint,
    /// A transaction is still open on the producer.
    open: bool,
    /// The producer, unless it hit a fatal error.
    producer: Option<FutureProducer>,
}

impl Transactions {
    /// A transactional producer for the members of `group` in this process (blocking: up to
    /// half a minute while the broker sets up its transaction state).
    pub fn new(
        kafka: &KafkaConfig,
        group: &str,
        consumer: Arc<StreamConsumer<AssignmentContext>>,
    ) -> Result<Self, SourceError> {
        let transactional_id = process_transactional_id(group);
        let producer = transactional_producer(kafka, &transactional_id)
            .map_err(|e| SourceError::Broker { detail: e, retryable: true })?;
        tracing::info!(%transactional_id, "transactional producer ready");
        Ok(Self {
            kafka: kafka.clone(),
            transactional_id,
            producer: Some(producer),
            consumer,
            in_flight: None,
            carried: Checkpoint::default(),
            open: false,
        })
    }

    /// Waits for the transaction in flight, then starts one for what it left and `checkpoint`.
    pub async fn commit(&mut self, checkpoint: Checkpoint) {
        self.finish().await;
        let mut next = std::mem::take(&mut self.carried);
        merge(&mut next, checkpoint);
        if next.is_empty() && !self.open {
            return;
        }
        let producer = match self.producer.take() {
            Some(producer) => producer,
            None => {
                let (kafka, id) = (self.kafka.clone(), self.transactional_id.clone());
                match tokio::task::spawn_blocking(move || transactional_producer(&kafka, &id))
                    .await
                    .expect("producer set-up panicked")
                {
                    Ok(producer) => {
                        tracing::info!(transactional_id = %self.transactional_id, "transactional producer made again; the old one's transaction is aborted");
                        // Initialising the id aborted what the old producer left open.
                        self.open = false;
                        producer
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot make the transactional producer again yet; the checkpoint waits");
                        self.carried = next;
                        return;
                    }
                }
            }
        };
        let (consumer, open) = (self.consumer.clone(), self.open);
        self.in_flight = Some(tokio::task::spawn_blocking(move || transact(producer, &consumer, next, open)));
    }

    /// Waits for the transaction in flight; what it could not commit is carried to the next.
    pub async fn finish(&mut self) {
        let Some(in_flight) = self.in_flight.take() else { return };
        let attempt = in_flight.await.expect("transaction thread panicked");
        self.open = attempt.open;
        self.carried = attempt.uncommitted;
        self.producer = attempt.producer;
    }

    /// Waits until everything handed to [`commit`](Self::commit) is committed, trying again
    /// up to [`FLUSH_ATTEMPTS`] times (shutdown: what stays uncommitted is redelivered next time).
    pub async fn flush(&mut self) {
        for _ in 0..FLUSH_ATTEMPTS {
            self.finish().await;
            if self.carried.is_empty() && !self.open {
                return;
            }
            self.commit(Checkpoint::default()).await;
        }
        self.finish().await;
        if !self.carried.is_empty() {
            tracing::warn!(
                records = self.carried.records.len(),
                "stopping with records not committed; their messages will be redelivered"
            );
        }
    }
}

/// A producer of transactions under `transactional_id`, initialised: the broker aborts what an
/// earlier producer with the id left open. Blocking.
fn transactional_producer(kafka: &KafkaConfig, transactional_id: &str) -> Result<FutureProducer, String> {
    let producer: FutureProducer = kafka
        .client_config(&[
            ("transactional.id", transactional_id),
            ("enable.idempotence", "true"),
            ("acks", "all"),
            // The records of a transaction go out in few requests.
            ("linger.ms", "5"),
            ("transaction.timeout.ms", "120000"),
        ])
        .create()
        .map_err(|e| format!("cannot create the transactional producer: {e}"))?;
    producer
        .init_transactions(Duration::from_secs(30))
        .map_err(|e| format!("cannot initialise transactions (transactional.id `{transactional_id}`): {e}"))?;
    Ok(producer)
}

fn process_transactional_id(group: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!("{group}-{}-{}-{}", host.trim(), std::process::id(), started.as_millis())
}

/// Adds `later` to `into`: the highest watermark per partition, records in order.
fn merge(into: &mut Checkpoint, later: Checkpoint) {
    for (id, offset) in later.watermarks {
        match into.watermarks.iter_mut().find(|(p, _)| *p == id) {
            Some(entry) => entry.1 = entry.1.max(offset),
            None => into.watermarks.push((id, offset)),
        }
    }
    into.records.extend(later.records);
}

/// One transaction, on a blocking thread: abort what an earlier one left open, then publish
/// the records and commit the offsets of the partitions still held.
fn transact(
    producer: FutureProducer,
    consumer: &StreamConsumer<AssignmentContext>,
    mut checkpoint: Checkpoint,
    open: bool,
) -> Attempt {
    if open && let Err(e) = producer.abort_transaction(CALL_TIMEOUT) {
        return failed(producer, checkpoint, true, &e, "abort of the previous transaction");
    }
    // Partitions revoked since: their messages go to the new owner, with their records.
    let offsets = {
        let state = consumer.context().state();
        checkpoint.watermarks.retain(|(id, _)| state.partition_of(*id).is_some());
        checkpoint.records.retain(|(id, _)| state.partition_of(*id).is_some());
        offsets_list(checkpoint.watermarks.iter().map(|(id, o)| (state.partition_of(*id).expect("retained"), *o)))
    };
    let Some(group) = consumer.group_metadata().filter(|_| !checkpoint.is_empty()) else {
        return Attempt { uncommitted: checkpoint, open: false, producer: Some(producer) };
    };
    if let Err(e) = producer.begin_transaction() {
        return failed(producer, checkpoint, false, &e, "begin");
    }
    for (_, record) in &checkpoint.records {
        if let Err(e) = enqueue(&producer, record) {
            return abort(producer, checkpoint, &e, "send");
        }
    }
    if offsets.count() > 0
        && let Err(e) = producer.send_offsets_to_transaction(&offsets, &group, CALL_TIMEOUT)
    {
        return abort(producer, checkpoint, &e, "offsets");
    }
    let started = std::time::Instant::now();
    loop {
        match producer.commit_transaction(CALL_TIMEOUT) {
            Ok(()) => {
                tracing::debug!(records = checkpoint.records.len(), offsets = ?checkpoint.watermarks, "transaction committed");
                // The consumer does not see offsets committed through the producer: storing
                // them (never committed from here) keeps its lag statistic current.
                if let Err(e) = consumer.store_offsets(&offsets) {
                    tracing::debug!(error = %e, "could not store the committed offsets for the lag statistic");
                }
                return Attempt { uncommitted: Checkpoint::default(), open: false, producer: Some(producer) };
            }
            Err(KafkaError::Transaction(e)) if e.is_retriable() && started.elapsed() < COMMIT_DEADLINE => {
                tracing::warn!(error = %e, "transaction commit not confirmed yet; retrying");
            }
            Err(e) => return abort(producer, checkpoint, &e, "commit"),
        }
    }
}

/// Queues one record in the open transaction, waiting while librdkafka's queue is full.
fn enqueue(producer: &FutureProducer, record: &OutboundRecord) -> Result<(), KafkaError> {
    let headers = owned_headers(record.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let mut message = FutureRecord::to(&record.topic).key(&record.key).payload(&record.payload).headers(headers);
    loop {
        // The delivery outcome is the commit's: a record that fails makes the commit fail.
        match producer.send_result(message) {
            Ok(_delivery) => return Ok(()),
            Err((KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), back)) => {
                message = back;
                producer.poll(Duration::from_millis(10));
            }
            Err((e, _)) => return Err(e),
        }
    }
}

fn abort(producer: FutureProducer, checkpoint: Checkpoint, error: &KafkaError, step: &str) -> Attempt {
    if is_fatal(error) {
        return failed(producer, checkpoint, true, error, step);
    }
    match producer.abort_transaction(CALL_TIMEOUT) {
        Ok(()) => failed(producer, checkpoint, false, error, step),
        Err(e) if is_fatal(&e) => failed(producer, checkpoint, true, &e, "abort"),
        Err(e) => {
            tracing::warn!(error = %e, "transaction abort not confirmed; retried before the next one");
            failed(producer, checkpoint, true, error, step)
        }
    }
}

/// The transaction did not commit: its checkpoint goes with the next one. A fatal error drops
/// the producer (the next transaction makes a new one with the same id).
fn failed(producer: FutureProducer, checkpoint: Checkpoint, open: bool, error: &KafkaError, step: &str) -> Attempt {
    tracing::warn!(%error, step, records = checkpoint.records.len(), "transaction not committed; its records and offsets go with the next one");
    if is_fatal(error) {
        tracing::warn!("the transactional producer hit a fatal error; a new one takes over its id");
        return Attempt { uncommitted: checkpoint, open: false, producer: None };
    }
    Attempt { uncommitted: checkpoint, open, producer: Some(producer) }
}

fn is_fatal(error: &KafkaError) -> bool {
    matches!(error, KafkaError::Transaction(e) if e.is_fatal())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str) -> (u32, OutboundRecord) {
        (0, OutboundRecord::new("rma.results", key, Vec::new(), &[]))
    }

    #[test]
    fn a_carried_checkpoint_merges_with_the_next_in_order() {
        let mut carried = Checkpoint { watermarks: vec![(0, 5), (1, 3)], records: vec![record("a")] };
        merge(&mut carried, Checkpoint { watermarks: vec![(0, 9), (2, 1)], records: vec![record("b")] });
        assert_eq!(carried.watermarks, vec![(0, 9), (1, 3), (2, 1)]);
        let keys: Vec<&str> = carried.records.iter().map(|(_, r)| r.key.as_str()).collect();
        assert_eq!(keys, ["a", "b"]);
    }
}
