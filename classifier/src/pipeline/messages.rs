//! The messages between the pipeline's stages, in the order they flow.

use std::sync::Arc;

use autorma_core::{Decision, DlqReason, Position, PriorOutcome, SourcedEvent};
use tokio::time::Instant;

use crate::inference::Prediction;
use crate::serving::ServingModel;

/// fetch -> batcher: a photo ready for the model.
#[derive(Debug)]
pub struct Prepared {
    pub sourced: SourcedEvent,
    /// The model this photo was preprocessed for, and will be inferred and recorded by.
    pub model: Arc<ServingModel>,
    /// CHW f32, `3 * input_size * input_size` values.
    pub tensor: Vec<f32>,
    pub fetch_ms: f64,
    pub decode_ms: f64,
    /// When the tensor was ready: the start of its wait for a batch.
    pub ready_at: Instant,
}

/// inference / fetch -> sink.
#[derive(Debug)]
pub enum SinkInput {
    /// One batch's results, in batch order.
    Classified(Vec<Classified>),
    /// A photo that failed for good and goes to the DLQ.
    Failed(Failed),
}

#[derive(Debug)]
pub struct Classified {
    pub sourced: SourcedEvent,
    pub model: Arc<ServingModel>,
    pub prediction: Prediction,
    pub fetch_ms: f64,
    pub decode_ms: f64,
    pub batch_wait_ms: f64,
    pub infer_ms: f64,
    pub infer_done_at: Instant,
}

#[derive(Debug)]
pub struct Failed {
    pub sourced: SourcedEvent,
    pub reason: DlqReason,
    pub detail: String,
    pub attempts: u32,
}

/// sink (or fetch, for skips) -> source stage: this position's outcome is durable.
#[derive(Debug, Clone, Copy)]
pub struct Completion {
    pub position: Position,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Classified(Decision),
    DeadLettered(DlqReason),
    /// An earlier run already wrote this photo's outcome (a redelivery after a restart).
    AlreadyDone(PriorOutcome),
}
