//! Kafka as the event source: a consumer group over `rma.items`, offsets as checkpoints.
//!
//! [`KafkaSource`] is the worker's source (ItemEvents); [`KafkaConsumer`] is the group member
//! underneath, also used by the `autorma ingest` service on the raw notifications. How
//! partitions map to pipeline positions, and what happens on a rebalance: `design.md`.

mod assignments;
mod consumer;
mod dead_letter;
mod source;

pub use consumer::{KafkaConsumer, KafkaConsumerConfig, RawMessage};
pub use dead_letter::send_raw_dead_letter;
pub use source::KafkaSource;
