//! The worker's event source: ItemEvents from `rma.items` (the live lane) and
//! `rma.items.replay` (the bulk lane, paused while the pipeline holds enough of it).

use autorma_core::{
    Checkpoint, EventOrigin, EventSource, ItemEvent, Lane, PartitionId, SourceError, Sourced, SourcedEvent,
};

use super::consumer::{KafkaConsumer, KafkaConsumerConfig, RawMessage};
use super::dead_letter::raw_dead_letter;

pub struct KafkaSource {
    consumer: KafkaConsumer,
}

impl KafkaSource {
    /// Blocking, as [`KafkaConsumer::subscribe`].
    pub fn subscribe(config: &KafkaConsumerConfig) -> Result<Self, SourceError> {
        Ok(Self { consumer: KafkaConsumer::subscribe(config)? })
    }

    fn sourced(&self, message: RawMessage) -> Sourced {
        let lane = if self.consumer.is_bulk(&message.topic) { Lane::Bulk } else { Lane::Live };
        if message.committed_before {
            // Its records are on the topics already: acknowledged in its turn, nothing sent.
            // A warning: librdkafka started the partition below the group's committed offset
            // (design.md, "Never below the committed offset").
            tracing::warn!(read_at = %message.read_at, "below the group's committed offset at assignment; skipped");
            return Sourced::Handled { position: message.position, lane, records: Vec::new() };
        }
        match serde_json::from_slice::<ItemEvent>(&message.payload) {
            Ok(event) => Sourced::Event(SourcedEvent {
                position: message.position,
                // A reconciliation's or a replay's photo may have its outcome already.
                maybe_done: message.maybe_done || event.source == EventOrigin::Replay,
                event,
                lane,
                trace: message.trace,
                read_at: Some(message.read_at),
            }),
            // Only `autorma ingest` writes these topics: a bug, or a version this one does not
            // know. The message's dead letter is committed with the offset that passes it.
            Err(e) => {
                tracing::error!(topic = %message.topic, partition = message.partition,
                    offset = message.position.offset, error = %e, "a message that is not an ItemEvent goes to the DLQ");
                let record = raw_dead_letter(&message, "malformed_item_event", &e.to_string());
                Sourced::Handled { position: message.position, lane, records: vec![record] }
            }
        }
    }
}

impl EventSource for KafkaSource {
    /// Never exhausted: waits for the next messages. Cancel-safe, as the consumer's poll is.
    async fn next_batch(&mut self) -> Result<Option<Vec<Sourced>>, SourceError> {
        let messages = self.consumer.next_messages().await?;
        Ok(Some(messages.into_iter().map(|m| self.sourced(m)).collect()))
    }

    async fn commit(&mut self, checkpoint: Checkpoint) -> Result<(), SourceError> {
        self.consumer.commit(checkpoint).await;
        Ok(())
    }

    async fn close(&mut self) -> Result<(), SourceError> {
        self.consumer.flush().await;
        Ok(())
    }

    fn take_revoked(&mut self) -> Vec<PartitionId> {
        self.consumer.take_revoked()
    }

    fn hold_bulk(&mut self, hold: bool) {
        self.consumer.hold_bulk(hold);
    }
}
