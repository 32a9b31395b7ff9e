//! The event source boundary: where [`SourcedEvent`]s come from (Kafka, or a folder scan) and
//! where the pipeline reports what may be committed.

use std::future::Future;

use crate::event::Sourced;
use crate::outbound::OutboundRecord;
use crate::position::PartitionId;

/// Yields events in batches and later hears which positions are safe to commit.
///
/// Offsets within a partition are handed out in increasing order. The pipeline commits a
/// partition's watermark only when every event below it has reached the sink or the DLQ
/// (see `autorma-classifier`'s checkpoint tracker), so a source that restarts from its last
/// commit redelivers at most the events that were in flight: at-least-once.
pub trait EventSource: Send + 'static {
    /// The next events; `Ok(None)` once the source is exhausted (a finite scan is done).
    ///
    /// Must be cancel-safe: the pipeline polls it inside `select!`, and a future dropped before
    /// it completes must not lose events (they come with a later call).
    fn next_batch(&mut self) -> impl Future<Output = Result<Option<Vec<Sourced>>, SourceError>> + Send;

    /// Records that, in each listed partition, every offset below the watermark is done, and
    /// publishes the records of those offsets with it: both or neither. `Ok` may also mean
    /// "kept for the next commit" (a broker away): a source that cannot publish now holds the
    /// checkpoint and offers it again, as the records of a partition it still owns must not
    /// be lost. Called every commit interval, with an empty checkpoint when nothing advanced,
    /// so a held checkpoint does not wait for new events.
    fn commit(&mut self, checkpoint: Checkpoint) -> impl Future<Output = Result<(), SourceError>> + Send;

    /// Called once after the last commit: finish what commits are still under way. Sources
    /// that commit synchronously keep the default.
    fn close(&mut self) -> impl Future<Output = Result<(), SourceError>> + Send {
        async { Ok(()) }
    }

    /// Partitions taken away from this source since the last call (a consumer-group
    /// rebalance). The pipeline forgets them: their queued events are dropped and late
    /// completions ignored; a partition given back later comes under a new id. Sources whose
    /// partitions never move (a folder) keep the default.
    fn take_revoked(&mut self) -> Vec<PartitionId> {
        Vec::new()
    }

    /// Asks the source to stop (`true`) or resume (`false`) delivering events of the
    /// [`Lane::Bulk`](crate::Lane) lane, while live events keep coming: the pipeline holds
    /// enough bulk work already. Sources without a bulk lane keep the default.
    fn hold_bulk(&mut self, _hold: bool) {}
}

/// What the pipeline hands the source to commit: the watermarks that moved, as `(partition,
/// next offset)` (Kafka's convention: the committed offset is the next one to read), and the
/// records of the photos they passed, in offset order within a partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checkpoint {
    pub watermarks: Vec<(PartitionId, u64)>,
    pub records: Vec<(PartitionId, OutboundRecord)>,
}

impl Checkpoint {
    pub fn is_empty(&self) -> bool {
        self.watermarks.is_empty() && self.records.is_empty()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("failed to list `{path}`: {source}")]
    Scan {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to read or write the source state `{path}`: {source}")]
    State {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("corrupt source state `{path}`: {detail}")]
    Corrupt { path: String, detail: String },
    #[error("cannot use `{path}`: {detail}")]
    NotOwner { path: String, detail: String },
    #[error("Kafka: {detail}")]
    Broker { detail: String, retryable: bool },
    #[error("commit of partition {partition} at offset {offset} failed: {detail}")]
    Commit { partition: PartitionId, offset: u64, detail: String },
}

impl SourceError {
    /// A failed listing may succeed next time; corrupt state will not.
    pub fn is_retryable(&self) -> bool {
        match self {
            SourceError::Scan { .. } => true,
            SourceError::Broker { retryable, .. } => *retryable,
            _ => false,
        }
    }
}
