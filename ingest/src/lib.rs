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
//! topic and its committed offsets). Kafka (S3 notifications on `rma.items`) comes later as a
//! `kafka/` folder beside `local/`; [`Source`] is the enum the binary holds.

pub mod local;

use autorma_core::{EventSource, PartitionId, SourceError, SourcedEvent};

pub use local::{LocalFolderSource, LocalFolderSourceConfig};

/// Every source the binary can run, as one type (Kafka joins as a variant).
pub enum Source {
    Local(LocalFolderSource),
}

impl EventSource for Source {
    async fn next_batch(&mut self) -> Result<Option<Vec<SourcedEvent>>, SourceError> {
        match self {
            Source::Local(source) => source.next_batch().await,
        }
    }

    async fn commit(&mut self, watermarks: &[(PartitionId, u64)]) -> Result<(), SourceError> {
        match self {
            Source::Local(source) => source.commit(watermarks).await,
        }
    }
}
