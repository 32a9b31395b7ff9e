//! The worker's event source: ItemEvents from `rma.items` (and, later, `rma.items.replay`).

use autorma_core::{EventSource, ItemEvent, PartitionId, SourceError, SourcedEvent};

use super::consumer::{KafkaConsumer, KafkaConsumerConfig};

pub struct KafkaSource {
    consumer: KafkaConsumer,
}

impl KafkaSource {
    pub fn subscribe(config: &KafkaConsumerConfig) -> Result<Self, SourceError> {
        Ok(Self { consumer: KafkaConsumer::subscribe(config)? })
    }
}

impl EventSource for KafkaSource {
    /// Never exhausted: waits for the next messages. A message that is not an ItemEvent (only
    /// `autorma ingest` writes this topic, so a bug or a stranger) is logged and skipped; it
    /// stays on the topic for inspection.
    async fn next_batch(&mut self) -> Result<Option<Vec<SourcedEvent>>, SourceError> {
        let messages = self.consumer.next_messages().await?;
        let events = messages
            .into_iter()
            .filter_map(|m| match serde_json::from_slice::<ItemEvent>(&m.payload) {
                Ok(event) => Some(SourcedEvent { position: m.position, event }),
                Err(e) => {
                    tracing::error!(topic = %m.topic, partition = m.partition, offset = m.position.offset, error = %e,
                        "skipping a message that is not an ItemEvent");
                    None
                }
            })
            .collect();
        Ok(Some(events))
    }

    async fn commit(&mut self, watermarks: &[(PartitionId, u64)]) -> Result<(), SourceError> {
        self.consumer.commit(watermarks).await
    }

    fn take_revoked(&mut self) -> Vec<PartitionId> {
        self.consumer.take_revoked()
    }
}
