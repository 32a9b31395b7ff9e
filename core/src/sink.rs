//! The result sink boundary: where results and dead letters go (object store + Kafka, or
//! local files). A sink's `Ok` is the acknowledgement the checkpoint waits for.

use std::future::Future;

use crate::dlq::{DlqReason, DlqRecord};
use crate::event::ItemEvent;
use crate::result::{Decision, ModelRef, ResultRecord};

/// Writes are idempotent by object key: writing the record for a key again replaces it.
pub trait ResultSink: Send + Sync + 'static {
    /// What the sink already holds for this exact photo (same key and etag) from this exact
    /// model (name, version and sha256: a registry version may change only the thresholds),
    /// if anything. Redelivered events that find a prior outcome are acknowledged without
    /// being classified again; a replay after a promotion finds none and classifies again.
    fn lookup(
        &self,
        event: &ItemEvent,
        model: &ModelRef,
    ) -> impl Future<Output = Result<Option<PriorOutcome>, SinkError>> + Send;

    /// Durably stores one result; `Ok` means it survives a crash.
    fn write_result(&self, record: &ResultRecord) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// Durably stores one dead letter; `Ok` means it survives a crash.
    fn write_dlq(&self, record: &DlqRecord) -> impl Future<Output = Result<(), SinkError>> + Send;

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
    #[error("publish to `{topic}` (key `{key}`) failed: {detail}")]
    Publish { topic: String, key: String, detail: String },
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
            SinkError::Write { .. } | SinkError::Read { .. } | SinkError::Publish { .. } => true,
            SinkError::Store(e) => e.is_retryable(),
            SinkError::InvalidKey { .. } | SinkError::Encode { .. } => false,
        }
    }
}
