//! Result sinks: where the classifier's decisions land.
//!
//! Input: [`ResultRecord`](autorma_core::ResultRecord)s and
//! [`DlqRecord`](autorma_core::DlqRecord)s from the pipeline. Output: one record per object
//! key, durable when the write returns `Ok`, which is the acknowledgement the pipeline's
//! checkpoint waits for.
//!
//! Delivery guarantee: writes are idempotent by key (a replay replaces `results/<key>.json`,
//! never adds a second one), so the at-least-once delivery of the sources becomes exactly one
//! result per photo. `lookup` tells the pipeline what is already there, so a redelivered photo
//! is not classified twice. The streaming sink's topic records are returned, not sent: the
//! Kafka source publishes them in the transaction that commits their offsets (`s3`'s doc).
//!
//! Implementations: [`local::LocalSink`] (embedded mode: files under the output folder) and
//! [`s3::StreamingSink`] (streaming: the bucket, and the records for `rma.results`,
//! `rma.review` and `rma.dlq`); [`Sink`] is the enum the binary holds. [`shadow`] publishes the
//! shadow model's records to `rma.shadow` and reads them back. [`index`] is the results index
//! `autorma serve` queries, derived from what the sinks wrote.

pub mod index;
pub mod local;
pub mod results_csv;
pub mod s3;
pub mod shadow;
#[cfg(test)]
mod test_records;

use autorma_core::{DlqRecord, ModelRef, OutboundRecord, Prior, ResultRecord, ResultSink, SinkError, SourcedEvent};

pub use local::LocalSink;
pub use s3::StreamingSink;

/// Every sink the binary can run, as one type.
pub enum Sink {
    Local(LocalSink),
    Streaming(StreamingSink),
}

impl ResultSink for Sink {
    async fn lookup(&self, sourced: &SourcedEvent, model: &ModelRef) -> Result<Option<Prior>, SinkError> {
        match self {
            Sink::Local(sink) => sink.lookup(sourced, model).await,
            Sink::Streaming(sink) => sink.lookup(sourced, model).await,
        }
    }

    async fn write_result(&self, record: &ResultRecord) -> Result<Vec<OutboundRecord>, SinkError> {
        match self {
            Sink::Local(sink) => sink.write_result(record).await,
            Sink::Streaming(sink) => sink.write_result(record).await,
        }
    }

    async fn write_dlq(&self, record: &DlqRecord) -> Result<Vec<OutboundRecord>, SinkError> {
        match self {
            Sink::Local(sink) => sink.write_dlq(record).await,
            Sink::Streaming(sink) => sink.write_dlq(record).await,
        }
    }

    async fn flush(&self) -> Result<(), SinkError> {
        match self {
            Sink::Local(sink) => sink.flush().await,
            Sink::Streaming(sink) => sink.flush().await,
        }
    }
}
