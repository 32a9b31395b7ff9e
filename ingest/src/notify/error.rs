//! What stops `autorma ingest`, and what fails one reconciliation pass.

use autorma_core::kafka::KafkaError;
use autorma_core::{SourceError, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error(transparent)]
    Store(#[from] StoreError),
}
