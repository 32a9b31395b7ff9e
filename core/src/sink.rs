//! The result sink boundary: where results and dead letters go (object store, or local
//! files). A sink's `Ok` is the acknowledgement the checkpoint waits for; the records it
//! returns go on the topics with that checkpoint (see [`crate::outbound`]).

use std::future::Future;

use crate::dlq::{DlqReason, DlqRecord};
use crate::event::SourcedEvent;
use crate::outbound::OutboundRecord;
use crate::result::{Decision, ModelRef, ResultRecord};

/// Writes are idempotent by object key: writing the record for a key again replaces it.
pub trait ResultSink: Send + Sync + 'static {
    /// What the sink already holds for this exact photo (same key and etag) from this exact
    /// model (name, version and sha256: a registry version may change only the thresholds),
    /// if anything. Redelivered events that find a prior outcome are acknowledged without
    /// being classified again; a replay after a promotion finds none and classifies again.
    /// Asked only for events that may have been handled before
    /// ([`SourcedEvent::maybe_done`]).
    fn lookup(
        &self,
        sourced: &SourcedEvent,
        model: &ModelRef,
    ) -> impl Future<Output = Result<Option<Prior>, SinkError>> + Send;

    /// Durably stores one result; `Ok` means it survives a crash. Returns the records to
    /// publish with the checkpoint (none when another event of the same photo version
    /// already wrote it, or when the sink publishes nothing).
    fn write_result(
        &self,
        record: &ResultRecord,
    ) -> impl Future<Output = Result<Vec<OutboundRecord>, SinkError>> + Send;

    /// Durably stores one dead letter; `Ok` means it survives a crash. Returns its records,
    /// as [`write_result`](Self::write_result).
    fn write_dlq(&self, record: &DlqRecord) -> impl Future<Output = Result<Vec<OutboundRecord>, SinkError>> + Send;

    /// Brings derived outputs (e.g. `results.csv`) up to date; called when the pipeline drains
    /// and periodically while it runs.
    fn flush(&self) -> impl Future<Output = Result<(), SinkError>> + Send;
}

/// What an earlier run already decided about a photo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PriorOutcome {
    Classified(Decision),
    DeadLettered(DlqReason),
}

/// A prior outcome, and the records to publish again with this event's checkpoint: those of
/// the same event's earlier handling, whose checkpoint never committed (a crash between the
/// object's write and the commit). Empty when the records were committed, or will be by the
/// event that wrote the outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prior {
    pub outcome: PriorOutcome,
    pub records: Vec<OutboundRecord>,
}

impl Prior {
    /// A prior outcome whose records need no publishing.
    pub fn settled(outcome: PriorOutcome) -> Self {
        Self { outcome, records: Vec::new() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("failed to write `{path}`: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to read `{path}`: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The object store refused or failed a read or write.
    #[error(transparent)]
    Store(crate::store::StoreError),
    #[error("`{key}` kept changing under the write (other writers of the same key); retrying")]
    Contended { key: String },
    #[error("invalid key `{key}`: {reason}")]
    InvalidKey { key: String, reason: String },
    #[error("failed to encode a record for `{key}`: {source}")]
    Encode {
        key: String,
        #[source]
        source: serde_json::Error,
    },
}

impl SinkError {
    /// I/O may recover (a full disk gets space); a key that cannot be a file name will not.
    pub fn is_retryable(&self) -> bool {
        match self {
            SinkError::Write { .. } | SinkError::Read { .. } | SinkError::Contended { .. } => true,
            SinkError::Store(e) => e.is_retryable(),
            SinkError::InvalidKey { .. } | SinkError::Encode { .. } => false,
        }
    }
}
