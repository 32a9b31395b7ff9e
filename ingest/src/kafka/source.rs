//! The worker's event source: ItemEvents from `rma.items` (the live lane) and
//! `rma.items.replay` (the bulk lane, paused while the pipeline holds enough of it).

use std::collections::VecDeque;
use std::time::Duration;

use autorma_core::kafka::KafkaError;
use autorma_core::{EventSource, ItemEvent, Lane, PartitionId, RetryConfig, SourceError, SourcedEvent};
use rdkafka::producer::FutureProducer;
use tokio::task::JoinHandle;

use super::consumer::{KafkaConsumer, KafkaConsumerConfig, RawMessage};
use super::dead_letter::send_raw_dead_letter;

pub struct KafkaSource {
    consumer: KafkaConsumer,
    /// For the dead letters of messages that are not ItemEvents.
    producer: FutureProducer,
    /// Events of the last poll, handed out once its unreadable messages are dead-lettered.
    ready: Vec<SourcedEvent>,
    /// Messages that are not ItemEvents, with why, not yet acknowledged by `rma.dlq`.
    unreadable: VecDeque<(RawMessage, String)>,
    /// The dead letter of `unreadable`'s first message, on its way: a task, so a call of
    /// `next_batch` cancelled while it waits does not send it again.
    sending: Option<JoinHandle<Result<(), KafkaError>>>,
    /// Failed sends of that dead letter in a row.
    num_send_failures: u32,
}

/// Tries to dead-letter one unreadable message before the source gives up (and the worker
/// stops without committing past it), about a minute in all.
const DEAD_LETTER_RETRY: RetryConfig =
    RetryConfig { max_attempts: 10, initial_backoff: Duration::from_secs(1), max_backoff: Duration::from_secs(10) };

impl KafkaSource {
    pub fn subscribe(config: &KafkaConsumerConfig) -> Result<Self, SourceError> {
        let producer =
            config.kafka.producer().map_err(|e| SourceError::Broker { detail: e.to_string(), retryable: false })?;
        Ok(Self {
            consumer: KafkaConsumer::subscribe(config)?,
            producer,
            ready: Vec::new(),
            unreadable: VecDeque::new(),
            sending: None,
            num_send_failures: 0,
        })
    }
}

impl EventSource for KafkaSource {
    /// Never exhausted: waits for the next messages. A message that is not an ItemEvent (only
    /// `autorma ingest` writes this topic: a bug, or a version it does not know) goes to
    /// `rma.dlq` with its raw payload before any event after it is handed out, so no commit
    /// can pass it unrecorded.
    ///
    /// Cancel-safe: what was taken from the consumer stays in `self` until handed out.
    async fn next_batch(&mut self) -> Result<Option<Vec<SourcedEvent>>, SourceError> {
        loop {
            while let Some((message, detail)) = self.unreadable.front() {
                let sending = self.sending.get_or_insert_with(|| {
                    let (producer, message, detail) = (self.producer.clone(), message.clone(), detail.clone());
                    tokio::spawn(async move {
                        send_raw_dead_letter(&producer, &message, "malformed_item_event", &detail).await
                    })
                });
                let sent = sending.await.expect("dead-letter send panicked");
                self.sending = None;
                match sent {
                    Ok(()) => {
                        tracing::error!(topic = %message.topic, partition = message.partition,
                            offset = message.position.offset, error = %detail, "a message that is not an ItemEvent went to the DLQ");
                        self.unreadable.pop_front();
                        self.num_send_failures = 0;
                    }
                    Err(e) => {
                        self.num_send_failures += 1;
                        if self.num_send_failures >= DEAD_LETTER_RETRY.max_attempts {
                            return Err(SourceError::Broker {
                                detail: format!("cannot dead-letter an unreadable message on `rma.dlq`: {e}"),
                                retryable: false,
                            });
                        }
                        let wait = DEAD_LETTER_RETRY.backoff(self.num_send_failures);
                        tracing::warn!(error = %e, ?wait, "cannot dead-letter an unreadable message yet; retrying");
                        tokio::time::sleep(wait).await;
                    }
                }
            }
            if !self.ready.is_empty() {
                return Ok(Some(std::mem::take(&mut self.ready)));
            }
            for message in self.consumer.next_messages().await? {
                match serde_json::from_slice::<ItemEvent>(&message.payload) {
                    Ok(event) => {
                        let lane = if self.consumer.is_bulk(&message.topic) { Lane::Bulk } else { Lane::Live };
                        self.ready.push(SourcedEvent { position: message.position, event, lane, trace: message.trace });
                    }
                    Err(e) => self.unreadable.push_back((message, e.to_string())),
                }
            }
        }
    }

    async fn commit(&mut self, watermarks: &[(PartitionId, u64)]) -> Result<(), SourceError> {
        self.consumer.commit(watermarks);
        Ok(())
    }

    fn take_revoked(&mut self) -> Vec<PartitionId> {
        self.consumer.take_revoked()
    }

    fn hold_bulk(&mut self, hold: bool) {
        self.consumer.hold_bulk(hold);
    }
}
