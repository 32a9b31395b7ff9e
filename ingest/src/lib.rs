//! Event sources: where AutoRMA learns that a photo arrived.
//!
//! Output: [`SourcedEvent`](autorma_core::SourcedEvent)s, each an `ItemEvent` with its
//! position (partition, offset), handed out in offset order per partition. Input back from the
//! pipeline: commits of contiguous watermarks (every offset below is done).
//!
//! Delivery guarantee: at-least-once. A source restarts from its last commit, so events that
//! were in flight at a crash are delivered again; the sink's idempotent, key-addressed results
//! make the redelivery harmless.
//!
//! Implementations: [`local::LocalFolderSource`] (embedded mode: a scan, and optionally a
//! watch, of a folder, with its own event log and checkpoint file standing in for a Kafka
//! topic and its committed offsets) and [`kafka::KafkaSource`] (streaming: a consumer group on
//! `rma.items`, committed offsets as checkpoints); [`Source`] is the enum the binary holds.
//!
//! [`notify`] is the `autorma ingest` service that turns the bucket's notifications into
//! those ItemEvents, and reconciles what notifications missed. [`replay`] is the bulk replay
//! (`rma.items.replay`) and its schedule, and the embedded replay's [`ListSource`]. Both list
//! the bucket's photos through [`inbox`].

pub mod inbox;
pub mod kafka;
pub mod local;
pub mod notify;
pub mod replay;

use autorma_core::{Checkpoint, EventSource, PartitionId, SourceError, Sourced};

pub use kafka::{KafkaConsumerConfig, KafkaSource};
pub use local::{LocalFolderSource, LocalFolderSourceConfig};
pub use replay::ListSource;

/// Every source the binary can run, as one type.
pub enum Source {
    Local(LocalFolderSource),
    Kafka(KafkaSource),
    /// The embedded replay's photos.
    List(ListSource),
}

impl EventSource for Source {
    async fn next_batch(&mut self) -> Result<Option<Vec<Sourced>>, SourceError> {
        match self {
            Source::Local(source) => source.next_batch().await,
            Source::Kafka(source) => source.next_batch().await,
            Source::List(source) => source.next_batch().await,
        }
    }

    async fn commit(&mut self, checkpoint: Checkpoint) -> Result<(), SourceError> {
        match self {
            Source::Local(source) => source.commit(checkpoint).await,
            Source::Kafka(source) => source.commit(checkpoint).await,
            Source::List(source) => source.commit(checkpoint).await,
        }
    }

    async fn close(&mut self) -> Result<(), SourceError> {
        match self {
            Source::Local(source) => source.close().await,
            Source::Kafka(source) => source.close().await,
            Source::List(source) => source.close().await,
        }
    }

    fn take_revoked(&mut self) -> Vec<PartitionId> {
        match self {
            Source::Local(source) => source.take_revoked(),
            Source::Kafka(source) => source.take_revoked(),
            Source::List(source) => source.take_revoked(),
        }
    }

    fn hold_bulk(&mut self, hold: bool) {
        match self {
            Source::Local(source) => source.hold_bulk(hold),
            Source::Kafka(source) => source.hold_bulk(hold),
            Source::List(source) => source.hold_bulk(hold),
        }
    }
}
