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
//! instead of piling up records. A call that times out (the broker away) is called again until
//! it ends: librdkafka refuses any other transaction call meanwhile (an abort after a commit
//! that timed out stays "conflicting" for ever), and the broker ends it either way, as it
//! aborts a transaction open longer than [`TRANSACTION_TIMEOUT`].

use std::sync::Arc;
use std::time::Duration;

use autorma_core::kafka::{KafkaConfig, owned_headers};
use autorma_core::{Checkpoint, OutboundRecord, SourceError};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use tokio::task::JoinHandle;

use super::assignments::{AssignmentContext, offsets_list};

/// How long one transaction call (offsets, commit, abort) waits for the broker before it is
/// called again (with a warning in the log).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// `transaction.timeout.ms`: the broker aborts a transaction open longer than this. It bounds
/// how long a killed process's open transaction holds back `read_committed` readers and the
/// group's offsets of its partitions (Kafka Streams uses 10 s).
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(15);
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
}

/// How a transaction went.
struct Attempt {
    /// What it could not commit, for partitions still held.
    uncommitted: Checkpoint,
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
        })
    }

    /// Waits for the transaction in flight, then starts one for what it left and `checkpoint`.
    ///
    /// Called with an empty checkpoint when the pipeline has nothing new (every commit
    /// interval, while idle), it finishes what is pending without waiting on the broker: a
    /// carried checkpoint, a producer to make again (until then the broker holds the broken
    /// one's transaction open, which keeps the group's offsets of its partitions unstable, so
    /// a consumer assigned them cannot start, and `read_committed` readers of its topics
    /// waiting).
    pub async fn commit(&mut self, checkpoint: Checkpoint) {
        if checkpoint.is_empty() && self.in_flight.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        self.finish().await;
        let mut next = std::mem::take(&mut self.carried);
        merge(&mut next, checkpoint);
        if next.is_empty() && self.producer.is_some() {
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
        let consumer = self.consumer.clone();
        self.in_flight = Some(tokio::task::spawn_blocking(move || transact(producer, &consumer, next)));
    }

    /// Waits for the transaction in flight; what it could not commit is carried to the next.
    pub async fn finish(&mut self) {
        let Some(in_flight) = self.in_flight.take() else { return };
        let attempt = in_flight.await.expect("transaction thread panicked");
        self.carried = attempt.uncommitted;
        self.producer = attempt.producer;
    }

    /// Waits until everything handed to [`commit`](Self::commit) is committed, trying again
    /// up to [`FLUSH_ATTEMPTS`] times (shutdown: what stays uncommitted is redelivered next time).
    pub async fn flush(&mut self) {
        for _ in 0..FLUSH_ATTEMPTS {
            self.finish().await;
            if self.carried.is_empty() && self.producer.is_some() {
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
    let timeout_ms = TRANSACTION_TIMEOUT.as_millis().to_string();
    let producer: FutureProducer = kafka
        .client_config(&[
            ("transactional.id", transactional_id),
            ("enable.idempotence", "true"),
            ("acks", "all"),
            // The records of a transaction go out in few requests.
            ("linger.ms", "5"),
            // A transaction that begins while the broker still writes the last one's markers
            // is told to retry (CONCURRENT_TRANSACTIONS): soon, not after the default 100 ms
            // (it grows to `retry.backoff.max.ms` when the broker is away).
            ("retry.backoff.ms", "10"),
            ("transaction.timeout.ms", &timeout_ms),
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

/// One transaction, on a blocking thread: publish the records and commit the offsets of the
/// partitions still held.
fn transact(
    producer: FutureProducer,
    consumer: &StreamConsumer<AssignmentContext>,
    mut checkpoint: Checkpoint,
) -> Attempt {
    // Partitions revoked since: their messages go to the new owner, with their records.
    let offsets = {
        let state = consumer.context().state();
        checkpoint.watermarks.retain(|(id, _)| state.partition_of(*id).is_some());
        checkpoint.records.retain(|(id, _)| state.partition_of(*id).is_some());
        // Never below what the group had committed: a consumer that started too low would
        // otherwise move the commit back, and a later owner would redeliver from there.
        offsets_list(
            checkpoint
                .watermarks
                .iter()
                .filter(|(id, o)| *o >= state.committed_at_assignment(*id))
                .map(|(id, o)| (state.partition_of(*id).expect("retained"), *o)),
        )
    };
    let Some(group) = consumer.group_metadata().filter(|_| !checkpoint.is_empty()) else {
        return Attempt { uncommitted: checkpoint, producer: Some(producer) };
    };
    if let Err(e) = producer.begin_transaction() {
        return failed(producer, checkpoint, &e, "begin");
    }
    let mut deliveries = Vec::with_capacity(checkpoint.records.len());
    for (_, record) in &checkpoint.records {
        match enqueue(&producer, record) {
            Ok(delivery) => deliveries.push(delivery),
            Err(e) => return abort(producer, checkpoint, &e, "send"),
        }
    }
    if offsets.count() > 0
        && let Err(e) = until_done("offsets", || producer.send_offsets_to_transaction(&offsets, &group, CALL_TIMEOUT))
    {
        return abort(producer, checkpoint, &e, "offsets");
    }
    // Acknowledged before the commit: rdkafka's commit flushes what is outstanding in polls of
    // 100 ms, which put 100 ms on every transaction.
    if let Err(e) = delivered(deliveries) {
        return abort(producer, checkpoint, &e, "send");
    }
    if let Err(e) = until_done("commit", || producer.commit_transaction(CALL_TIMEOUT)) {
        return abort(producer, checkpoint, &e, "commit");
    }
    tracing::debug!(records = checkpoint.records.len(), offsets = ?checkpoint.watermarks, "transaction committed");
    // The consumer does not see offsets committed through the producer: storing them (never
    // committed from here) keeps its lag statistic current.
    if let Err(e) = consumer.store_offsets(&offsets) {
        tracing::debug!(error = %e, "could not store the committed offsets for the lag statistic");
    }
    Attempt { uncommitted: Checkpoint::default(), producer: Some(producer) }
}

/// Calls a transaction API until it ends: one that timed out (the broker away) is resumed by
/// calling it again, and librdkafka refuses any other transaction call until then.
fn until_done(step: &str, mut call: impl FnMut() -> KafkaResult<()>) -> KafkaResult<()> {
    loop {
        match call() {
            Err(KafkaError::Transaction(e)) if e.is_retriable() => {
                tracing::warn!(error = %e, step, "transaction call not confirmed yet; resuming it");
            }
            done => return done,
        }
    }
}

/// Queues one record in the open transaction, waiting while librdkafka's queue is full.
fn enqueue(producer: &FutureProducer, record: &OutboundRecord) -> Result<DeliveryFuture, KafkaError> {
    let headers = owned_headers(record.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let mut message = FutureRecord::to(&record.topic).key(&record.key).payload(&record.payload).headers(headers);
    loop {
        match producer.send_result(message) {
            Ok(delivery) => return Ok(delivery),
            Err((KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), back)) => {
                message = back;
                producer.poll(Duration::from_millis(10));
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// Waits for the broker's acknowledgement of every record queued in the transaction (on the
/// transaction's blocking thread, inside the runtime).
fn delivered(deliveries: Vec<DeliveryFuture>) -> Result<(), KafkaError> {
    let outcomes = tokio::runtime::Handle::current().block_on(futures::future::join_all(deliveries));
    for delivery in outcomes {
        match delivery {
            Ok(Ok(_)) => {}
            Ok(Err((e, _))) => return Err(e),
            // librdkafka dropped the report: only on its shutdown.
            Err(_) => return Err(KafkaError::Canceled),
        }
    }
    Ok(())
}

fn abort(producer: FutureProducer, checkpoint: Checkpoint, error: &KafkaError, step: &str) -> Attempt {
    if is_fatal(error) {
        return failed(producer, checkpoint, error, step);
    }
    match until_done("abort", || producer.abort_transaction(CALL_TIMEOUT)) {
        Ok(()) => failed(producer, checkpoint, error, step),
        // Neither committed nor aborted: only a new producer under the id ends the transaction.
        Err(e) => failed_for_good(checkpoint, &e, "abort"),
    }
}

/// The transaction did not commit: its checkpoint goes with the next one. A fatal error drops
/// the producer (the next transaction makes a new one with the same id).
fn failed(producer: FutureProducer, checkpoint: Checkpoint, error: &KafkaError, step: &str) -> Attempt {
    if is_fatal(error) {
        return failed_for_good(checkpoint, error, step);
    }
    tracing::warn!(%error, step, records = checkpoint.records.len(), "transaction not committed; its records and offsets go with the next one");
    Attempt { uncommitted: checkpoint, producer: Some(producer) }
}

fn failed_for_good(checkpoint: Checkpoint, error: &KafkaError, step: &str) -> Attempt {
    tracing::warn!(%error, step, records = checkpoint.records.len(), "transaction not committed and the producer is broken; a new one takes over its id, then the records and offsets go again");
    Attempt { uncommitted: checkpoint, producer: None }
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
