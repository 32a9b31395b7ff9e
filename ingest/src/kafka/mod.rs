//! Kafka as the event source: a consumer group over `rma.items`, offsets as checkpoints.
//!
//! [`KafkaSource`] is the worker's source (ItemEvents); [`KafkaConsumer`] is the group member
//! underneath, also used by the `autorma ingest` service on the raw notifications;
//! [`send_item`] produces the ItemEvents the source reads. How
//! partitions map to pipeline positions, and what happens on a rebalance: `design.md`.

mod assignments;
mod consumer;
mod dead_letter;
mod produce;
mod source;

pub use consumer::{KafkaConsumer, KafkaConsumerConfig, RawMessage};
pub use dead_letter::send_raw_dead_letter;
pub use produce::send_item;
pub use source::KafkaSource;
