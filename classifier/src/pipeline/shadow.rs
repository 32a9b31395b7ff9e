//! The shadow stage: a sampled photo, once production has inferred it, is run on the shadow
//! model (`serving::shadow`) by a thread of its own. Its answer becomes a [`ShadowRecord`] for
//! `rma.shadow` and the metrics, never a Result.
//!
//! Off the hot path: the inference workers hand a photo over without waiting (a full queue
//! skips it, counted as `busy`), the thread hands its records on the same way (`unpublished`),
//! and the tensor production used is reused when both models preprocess alike; only otherwise
//! are the photo's bytes kept and decoded again here.

use std::sync::Arc;
use std::thread::JoinHandle;

use autorma_core::metrics::metrics;
use autorma_core::shadow::{ShadowRecord, ShadowSide};
use autorma_core::{ItemEvent, ItemRef};
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::stats::ms;
use crate::inference::Prediction;
use crate::serving::{ServingModel, ShadowHandle, ShadowModel};

/// Sampled photos waiting for the shadow thread; more are skipped.
const QUEUE: usize = 64;
/// Most photos in one shadow run.
const MAX_BATCH: usize = 32;

/// Running a second model beside production.
#[derive(Debug, Clone)]
pub struct ShadowConfig {
    /// The slot the follower fills (the `shadow` alias's version, or a guard).
    pub models: ShadowHandle,
    /// Share of photos (0 to 1) also run on the shadow model. Chosen by key and etag, so every
    /// worker, and a redelivery, picks the same photos.
    pub sample: f64,
    /// Where the records go (`rma.shadow`, by the binary).
    pub records: mpsc::Sender<ShadowRecord>,
}

/// A sampled photo's pass to the shadow stage, taken when it is decoded.
#[derive(Debug)]
pub struct ShadowTicket {
    model: Arc<ShadowModel>,
    /// The photo's bytes, when the shadow model preprocesses differently.
    bytes: Option<Bytes>,
}

/// inference worker -> shadow thread.
#[derive(Debug)]
pub(crate) struct ShadowJob {
    pub item: ItemRef,
    pub production: Arc<ServingModel>,
    pub prediction: Prediction,
    pub ticket: ShadowTicket,
    /// Production's input tensor, when the ticket holds no bytes (the same preprocessing).
    pub tensor: Option<Vec<f32>>,
}

impl ShadowTicket {
    /// Whether the shadow needs production's tensor (it preprocesses alike).
    pub(crate) fn wants_tensor(&self) -> bool {
        self.bytes.is_none()
    }
}

/// The ticket of a photo `production` is about to classify, when it is sampled and a shadow
/// model (other than `production` itself) is set.
pub(crate) fn ticket(
    config: &ShadowConfig,
    event: &ItemEvent,
    production: &ServingModel,
    bytes: &Bytes,
) -> Option<ShadowTicket> {
    let model = config.models.current()?;
    if model.model.model == production.model || !sampled(&event.key, &event.etag, config.sample) {
        return None;
    }
    let bytes = (model.model.preprocessor != production.preprocessor).then(|| bytes.clone());
    Some(ShadowTicket { model, bytes })
}

/// Whether the photo (`key`, `etag`) is in a `rate` sample: FNV-1a of both, as a share of
/// the hash's range (stable across processes and releases, unlike std's hasher).
pub(crate) fn sampled(key: &str, etag: &str, rate: f64) -> bool {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.bytes().chain([0]).chain(etag.bytes()) {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    (hash as f64 / u64::MAX as f64) < rate
}

/// Starts the shadow thread; it ends when every sender of the returned queue is dropped.
pub(crate) fn spawn(config: &ShadowConfig) -> (mpsc::Sender<ShadowJob>, JoinHandle<()>) {
    let (jobs_tx, jobs_rx) = mpsc::channel(QUEUE);
    let (handle, records) = (config.models.clone(), config.records.clone());
    let thread = std::thread::Builder::new()
        .name("autorma-shadow".into())
        .spawn(move || run(jobs_rx, &handle, &records))
        .expect("failed to spawn the shadow thread");
    (jobs_tx, thread)
}

/// Hands `job` over if the shadow thread has room; otherwise it is skipped (counted).
pub(crate) fn offer(jobs: &mpsc::Sender<ShadowJob>, job: ShadowJob) {
    if jobs.try_send(job).is_err() {
        metrics().record_shadow_skipped("busy", 1);
        tracing::debug!("the shadow model is behind; photo not shadowed");
    }
}

fn run(mut jobs: mpsc::Receiver<ShadowJob>, handle: &ShadowHandle, records: &mpsc::Sender<ShadowRecord>) {
    let mut next = None;
    loop {
        let Some(first) = next.take().or_else(|| jobs.blocking_recv()) else { return };
        // A run is one model's: a photo for another starts the next run.
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) if Arc::ptr_eq(&job.ticket.model.model, &batch[0].ticket.model.model) => batch.push(job),
                Ok(job) => {
                    next = Some(job);
                    break;
                }
                Err(_) => break,
            }
        }
        for record in shadow_batch(batch) {
            metrics().record_shadow(&record);
            handle.observe(&record);
            // Never waits: a stalled broker must not hold up the pipeline's shutdown.
            if records.try_send(record).is_err() {
                metrics().record_shadow_skipped("unpublished", 1);
            }
        }
    }
}

/// Runs one batch on its shadow model; the photos that could not be run are skipped (counted).
fn shadow_batch(batch: Vec<ShadowJob>) -> Vec<ShadowRecord> {
    let started = Instant::now();
    let shadow = batch[0].ticket.model.clone();
    let span = tracing::debug_span!("shadow_batch", size = batch.len(), version = %shadow.model.model.version);
    let _entered = span.enter();
    let skip = |reason, n| metrics().record_shadow_skipped(reason, n);
    let mut input = Vec::new();
    let mut jobs = Vec::with_capacity(batch.len());
    for job in batch {
        match (&job.ticket.bytes, &job.tensor) {
            (None, Some(tensor)) => input.extend_from_slice(tensor),
            (None, None) => unreachable!("a ticket without bytes comes with production's tensor"),
            (Some(bytes), _) => match shadow.model.preprocessor.preprocess(bytes) {
                Ok(tensor) => input.extend(tensor),
                Err(e) => {
                    tracing::debug!(key = %job.item.key, error = %e, "the shadow model cannot preprocess the photo");
                    skip("decode_error", 1);
                    continue;
                }
            },
        }
        jobs.push(job);
    }
    if jobs.is_empty() {
        return Vec::new();
    }
    let predictions = match shadow.model.session(0).predict(&input) {
        Ok(predictions) => predictions,
        Err(e) => {
            tracing::warn!(error = %e, "the shadow model failed on a batch; its photos are not shadowed");
            skip("inference_failed", jobs.len());
            return Vec::new();
        }
    };
    let per_photo_ms = ms(started.elapsed()) / jobs.len() as f64;
    jobs.into_iter()
        .zip(predictions)
        .map(|(job, prediction)| {
            let production = side(&job.production, &job.prediction);
            ShadowRecord::new(job.item, shadow.role, production, side(&shadow.model, &prediction), per_photo_ms)
        })
        .collect()
}

fn side(model: &ServingModel, prediction: &Prediction) -> ShadowSide {
    ShadowSide {
        model: model.model.clone(),
        label: model.classes[prediction.label].clone(),
        confidence: prediction.confidence,
        decision: prediction.decision,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_is_stable_and_near_its_rate() {
        let keys: Vec<String> = (0..20_000).map(|i| format!("returns/{i}.jpg")).collect();
        let picked = keys.iter().filter(|k| sampled(k, "etag", 0.1)).count();
        assert!((1_700..2_300).contains(&picked), "{picked} of 20000 at 10 %");
        assert!(keys.iter().all(|k| sampled(k, "e", 0.1) == sampled(k, "e", 0.1)));
        assert!(keys.iter().all(|k| !sampled(k, "e", 0.0) && sampled(k, "e", 1.0)));
        let other_etag = keys.iter().filter(|k| sampled(k, "etag", 0.1) != sampled(k, "other", 0.1)).count();
        assert!(other_etag > 1_000, "a new upload of a key is sampled afresh");
    }
}
