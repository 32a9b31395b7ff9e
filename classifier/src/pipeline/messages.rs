//! The messages between the pipeline's stages, in the order they flow.

use std::sync::Arc;

use autorma_core::{Decision, DlqReason, OutboundRecord, Position, PriorOutcome, ProductCheck, SourcedEvent};
use opentelemetry::Context;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::shadow::ShadowTicket;
use crate::inference::Prediction;
use crate::serving::ServingModel;

/// fetch (or a synchronous request) -> batcher: a photo ready for the model.
#[derive(Debug)]
pub struct Prepared {
    pub origin: Origin,
    /// The model this photo was preprocessed for, and will be inferred and recorded by.
    pub model: Arc<ServingModel>,
    /// CHW f32, `3 * input_size * input_size` values.
    pub tensor: Vec<f32>,
    pub fetch_ms: f64,
    pub decode_ms: f64,
    /// When the tensor was ready: the start of its wait for a batch.
    pub ready_at: Instant,
    /// The photo's span (see `trace.rs`); empty for a request.
    pub trace: Context,
    /// For a claim that names a SKU: what the product check compares the photo with.
    pub product: Option<ProductInput>,
    /// For a photo in the shadow sample: its pass to the shadow stage.
    pub shadow: Option<ShadowTicket>,
}

/// What the product check compares a photo with, made ready before the batch.
#[derive(Debug)]
pub enum ProductInput {
    /// The claimed SKU's catalogue photo: its embedding by this model (cached), or its tensor
    /// (embedded in the photo's batch, then cached).
    Compare { sku: String, catalogue: CatalogueInput },
    /// It cannot be compared (no embedding graph, no catalogue photo...): why.
    Unavailable(String),
}

#[derive(Debug)]
pub enum CatalogueInput {
    Embedded(Arc<[f32]>),
    Tensor(Vec<f32>),
}

/// Where a photo came from, which says where its prediction goes.
#[derive(Debug)]
// Moved once per photo through a bounded channel: boxing the large variant would only add an
// allocation per photo.
#[allow(clippy::large_enum_variant)]
pub enum Origin {
    /// An event of the source: its result goes to the sink, then its position is acknowledged.
    Event(SourcedEvent),
    /// A photo of a synchronous request (`POST /v1/classify`): its answer goes back to the
    /// caller; nothing is written and nothing is acknowledged.
    Request(oneshot::Sender<Result<Answer, String>>),
}

/// inference -> a synchronous request: one photo's prediction.
#[derive(Debug)]
pub struct Answer {
    pub model: Arc<ServingModel>,
    pub prediction: Prediction,
    /// Photos in the batch this one ran in (requests and events share batches).
    pub batch_size: usize,
    pub decode_ms: f64,
    pub batch_wait_ms: f64,
    pub infer_ms: f64,
    pub product: Option<ProductCheck>,
}

/// inference / fetch -> sink.
#[derive(Debug)]
// As `Origin`: one move per photo or batch.
#[allow(clippy::large_enum_variant)]
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
    pub trace: Context,
    /// The product check, for a claim that names a SKU.
    pub product: Option<ProductCheck>,
}

#[derive(Debug)]
pub struct Failed {
    pub sourced: SourcedEvent,
    pub reason: DlqReason,
    pub detail: String,
    pub attempts: u32,
    pub trace: Context,
}

/// sink (or fetch, for skips) -> source stage: this position's outcome is durable; its
/// records go out with the commit that passes it.
#[derive(Debug, Clone)]
pub struct Completion {
    pub position: Position,
    pub outcome: Outcome,
    pub records: Vec<OutboundRecord>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Classified(Decision),
    DeadLettered(DlqReason),
    /// An earlier run already wrote this photo's outcome (a redelivery after a restart).
    AlreadyDone(PriorOutcome),
}
