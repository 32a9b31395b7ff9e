//! Kafka as the event source: a consumer group over `rma.items`, offsets as checkpoints.
//!
//! [`KafkaSource`] is the worker's source (ItemEvents); [`KafkaConsumer`] is the group member
//! underneath, also used by the `autorma ingest` service on the raw notifications; both commit
//! their offsets in the transactions that publish their output records (`transaction.rs`).
//! [`item_record`] and [`send_item`] make the ItemEvents the source reads. How partitions map
//! to pipeline positions, and what happens on a crash or a rebalance: `design.md`.

mod assignments;
mod consumer;
mod dead_letter;
mod produce;
mod source;
mod transaction;

pub use consumer::{KafkaConsumer, KafkaConsumerConfig, RawMessage};
pub use dead_letter::raw_dead_letter;
pub use produce::{item_record, send_item};
pub use source::KafkaSource;
