//! The classifier: AutoRMA's pipeline core.
//!
//! Input: events from an [`EventSource`](autorma_core::EventSource), photo bytes from an
//! [`ObjectStore`](autorma_core::ObjectStore), a validated model package from
//! `autorma-registry`. Output: one [`ResultRecord`](autorma_core::ResultRecord) or
//! [`DlqRecord`](autorma_core::DlqRecord) per event, written to a
//! [`ResultSink`](autorma_core::ResultSink), and commits back to the source.
//!
//! Delivery guarantee: at-least-once with idempotent outcomes. A position is committed only
//! when it and every position before it in its partition has a durable outcome
//! ([`checkpoint`]); redelivered events whose outcome is already in the sink are acknowledged
//! without running the model again.
//!
//! Modules in the order a photo meets them: [`preprocess`] (bytes -> tensor, with the size
//! limit before decoding), [`inference`] (ONNX Runtime sessions and decisions), [`pipeline`]
//! (the stages wired with bounded channels, among them the micro-batcher,
//! [`pipeline::batcher`]), [`checkpoint`] (contiguous watermarks). [`serving`] holds the model being served and swaps
//! in a new one between batches.

pub mod catalogue;
pub mod checkpoint;
pub mod inference;
pub mod pipeline;
pub mod preprocess;
pub mod serving;
#[cfg(any(test, feature = "testsuite"))]
pub mod testsuite;

pub use pipeline::{
    Pipeline, PipelineConfig, PipelineError, PipelineModel, PipelineStats, PipelineSummary, RequestError, RequestInbox,
    Requests, RetryConfig, ShadowConfig, requests, serve_requests,
};
