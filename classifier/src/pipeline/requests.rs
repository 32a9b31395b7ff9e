//! Synchronous classification (`POST /v1/classify`) through the pipeline's own batcher and
//! sessions. A request's photo is decoded on a blocking thread of the caller's runtime, then
//! joins the micro-batches of the source's photos; its answer comes straight back from the
//! inference worker. Nothing is written to the sink and nothing is acknowledged.

use std::sync::Arc;

use tokio::sync::{Notify, Semaphore, mpsc, oneshot};
use tokio::time::Instant;

use super::decode::preprocess_blocking;
use super::messages::{Answer, Origin, Prepared};
use super::product::product_input;
use super::{ModelStage, PipelineConfig, PipelineStats};
use crate::catalogue::Catalogue;
use crate::preprocess::PreprocessError;
use crate::serving::ModelHandle;

/// Photos of requests waiting for the batcher, at most (each holds its tensor).
const REQUEST_QUEUE: usize = 64;

/// Classifies photos for callers; cheap to clone (one per HTTP handler).
#[derive(Clone, Debug)]
pub struct Requests {
    models: ModelHandle,
    /// Where a claimed SKU's catalogue photo is, for the product check.
    catalogue: Option<Arc<Catalogue>>,
    tx: mpsc::Sender<Prepared>,
    /// Photos decoded at once: a decoded photo can take far more memory than its bytes.
    decoding: Arc<Semaphore>,
}

/// The receiving end of [`Requests`]: give it to a [`Pipeline`](super::Pipeline) (its
/// `requests` field) to share that pipeline's batches, or to [`serve_requests`].
#[derive(Debug)]
pub struct RequestInbox(mpsc::Receiver<Prepared>);

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The photo cannot be classified (not an image, too large, undecodable).
    #[error(transparent)]
    Photo(#[from] PreprocessError),
    #[error("the pipeline has stopped")]
    Stopped,
    #[error("inference failed: {0}")]
    Inference(String),
}

/// Requests classified by the current model of `models`, at most `decode_concurrency` photos
/// decoded at once (the pipeline's fetch concurrency suits); a photo claimed as a SKU is
/// compared with its photo in `catalogue`, as the pipeline does.
pub fn requests(
    models: ModelHandle,
    catalogue: Option<Arc<Catalogue>>,
    decode_concurrency: usize,
) -> (Requests, RequestInbox) {
    let (tx, rx) = mpsc::channel(REQUEST_QUEUE);
    let decoding = Arc::new(Semaphore::new(decode_concurrency.max(1)));
    (Requests { models, catalogue, tx, decoding }, RequestInbox(rx))
}

impl Requests {
    /// The model new requests are classified by.
    pub fn models(&self) -> &ModelHandle {
        &self.models
    }

    /// Classifies one photo, within the same limits (bytes, pixels) as a pipeline photo; with
    /// the product check when it is claimed as `sku`.
    pub async fn classify(&self, bytes: bytes::Bytes, sku: Option<&str>) -> Result<Answer, RequestError> {
        let model = self.models.current();
        let max_bytes = model.preprocessor.limits.max_bytes;
        if bytes.len() as u64 > max_bytes {
            let detail = format!("{} bytes, over the limit of {max_bytes}", bytes.len());
            return Err(PreprocessError::TooLarge { detail }.into());
        }
        let permit = self.decoding.acquire().await.expect("never closed");
        let (tensor, decode_ms) = preprocess_blocking(&model, bytes).await;
        let tensor = tensor?;
        let product = product_input(&model, self.catalogue.as_deref(), sku, max_bytes).await;
        drop(permit);
        let (reply, answer) = oneshot::channel();
        let prepared = Prepared {
            origin: Origin::Request(reply),
            model,
            tensor,
            fetch_ms: 0.0,
            decode_ms,
            ready_at: Instant::now(),
            trace: opentelemetry::Context::new(),
            product,
            // A request's answer is not sampled: the shadow compares the photos of the stream.
            shadow: None,
        };
        self.tx.send(prepared).await.map_err(|_| RequestError::Stopped)?;
        answer.await.map_err(|_| RequestError::Stopped)?.map_err(RequestError::Inference)
    }
}

impl RequestInbox {
    /// Hands requests to the batcher until `done` is notified (the pipeline's fetch stage
    /// ended: the batcher must see its input close) or every [`Requests`] is dropped.
    pub(crate) async fn forward(mut self, prepared_tx: mpsc::Sender<Prepared>, done: Arc<Notify>) {
        loop {
            let prepared = tokio::select! {
                biased;
                () = done.notified() => return,
                prepared = self.0.recv() => prepared,
            };
            let Some(prepared) = prepared else { return };
            if prepared_tx.send(prepared).await.is_err() {
                return;
            }
        }
    }
}

/// Notifies when dropped: the fetch stage's end, even when it panics, so [`RequestInbox::forward`]
/// lets go of the batcher's input.
pub(crate) struct NotifyOnDrop(pub Arc<Notify>);

impl Drop for NotifyOnDrop {
    fn drop(&mut self) {
        self.0.notify_one();
    }
}

/// Serves requests where no pipeline runs (`autorma serve` without an inbox): a batcher and
/// `config.num_workers` inference threads of their own, until every [`Requests`] is dropped.
pub async fn serve_requests(inbox: RequestInbox, config: &PipelineConfig, stats: Arc<PipelineStats>) {
    // Requests never reach the sink; the channel only completes the stage's wiring. Nothing
    // prepares photos upstream of the batcher here: a request goes as soon as no other waits.
    let (sink_tx, _sink_rx) = mpsc::channel(1);
    let upstream = Arc::new(super::batcher::Upstream::default());
    ModelStage::spawn(config, inbox.0, upstream, sink_tx, stats).join().await;
}
