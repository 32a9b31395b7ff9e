//! Stage 1: for each event, skip it if an earlier run already wrote its outcome, else fetch
//! its bytes (retrying transient errors) and decode + preprocess them on a blocking thread.
//!
//! Concurrency is bounded by a semaphore; each photo's task holds its permit until its tensor
//! is handed to the batcher, so a slow model slows the fetches instead of filling memory. It
//! holds an upstream guard as long, so the batcher knows whether more photos are coming.

use std::sync::Arc;

use autorma_core::{
    Claim, DlqReason, Metadata, Object, ObjectStore, ResultSink, RetryConfig, SourcedEvent, StoreError,
};
use opentelemetry::Context;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use tracing::Instrument;

use super::batcher::Upstream;
use super::decode::preprocess_blocking;
use super::messages::{Completion, Failed, Origin, Outcome, Prepared, SinkInput};
use super::product::product_input;
use super::revoked::RevokedPartitions;
use super::shadow::{self, ShadowConfig};
use super::stats::{PipelineStats, ms};
use super::trace;
use crate::catalogue::Catalogue;
use crate::preprocess::DecodeLimits;
use crate::serving::ModelHandle;

/// Longest a replayed photo waits for the version its replay asked for (a worker polls its
/// alias every 30 s by default, and is woken at once by such a photo).
const REPLAY_VERSION_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

pub(crate) struct FetchStage<S, K> {
    pub store: Arc<S>,
    /// Photos of these partitions are dropped, not fetched (see `revoked.rs`).
    pub revoked: Arc<RevokedPartitions>,
    pub stats: Arc<PipelineStats>,
    pub sink: Arc<K>,
    /// The model each photo is given to (read once per photo: see `serving`).
    pub models: ModelHandle,
    pub limits: DecodeLimits,
    /// Where the product check finds a claimed SKU's photo; `None`: no product check.
    pub catalogue: Option<Arc<Catalogue>>,
    /// The shadow model's sample, when one runs beside production.
    pub shadow: Option<ShadowConfig>,
    pub retry: RetryConfig,
    pub concurrency: usize,
    /// Tells the batcher which photos are still on their way (one guard per task).
    pub upstream: Arc<Upstream>,
    pub prepared_tx: mpsc::Sender<Prepared>,
    /// Failures go straight to the sink (DLQ), not through the batcher.
    pub sink_tx: mpsc::Sender<SinkInput>,
    /// Skips are acknowledged directly.
    pub ack_tx: mpsc::Sender<Completion>,
}

impl<S: ObjectStore, K: ResultSink> FetchStage<S, K> {
    /// Runs until `events_rx` closes and every started photo has been handed on.
    pub async fn run(self, mut events_rx: mpsc::Receiver<SourcedEvent>) {
        let permits = Arc::new(Semaphore::new(self.concurrency.max(1)));
        let this = Arc::new(self);
        let mut tasks = tokio::task::JoinSet::new();
        while let Some(sourced) = events_rx.recv().await {
            // On its way from the moment it is taken, also while it waits for a permit.
            let on_its_way = this.upstream.start();
            let permit = permits.clone().acquire_owned().await.expect("semaphore is never closed");
            let span = tracing::info_span!("item", key = %sourced.event.key, partition = sourced.position.partition,
                offset = sourced.position.offset);
            let this = this.clone();
            tasks.spawn(
                async move {
                    this.process(sourced).await;
                    drop((permit, on_its_way));
                }
                .instrument(span),
            );
            // Reap finished tasks as we go so the set does not grow with the backlog.
            while let Some(done) = tasks.try_join_next() {
                done.expect("fetch task panicked");
            }
        }
        while let Some(done) = tasks.join_next().await {
            done.expect("fetch task panicked");
        }
    }

    async fn process(&self, mut sourced: SourcedEvent) {
        if self.drop_if_revoked(&sourced) {
            return;
        }
        let photo = trace::start_photo(&sourced);
        let model = match &sourced.event.replay {
            Some(replay) => self.models.wait_for_version(&replay.model_version, REPLAY_VERSION_WAIT).await,
            None => self.models.current(),
        };
        // A prior result from another model (or version) is not a skip: that is a replay.
        // A new photo is not looked up at all (see `SourcedEvent::maybe_done`).
        let lookup = async {
            if !sourced.maybe_done || sourced.event.replay.as_ref().is_some_and(|r| r.force) {
                return Ok(None);
            }
            self.sink.lookup(&sourced, &model.model).await
        };
        match lookup.await {
            Ok(Some(prior)) => {
                tracing::debug!(outcome = ?prior.outcome, republished = prior.records.len(), "already done by an earlier run");
                trace::finish_without_write(&photo, "already_done");
                let completion = Completion {
                    position: sourced.position,
                    outcome: Outcome::AlreadyDone(prior.outcome),
                    records: prior.records,
                };
                let _ = self.ack_tx.send(completion).await;
                return;
            }
            Ok(None) => {}
            // Not knowing is not fatal: classifying again is idempotent, only slower.
            Err(e) => tracing::warn!(error = %e, "sink lookup failed; classifying again"),
        }

        let started = Instant::now();
        let span = trace::start_child(&photo, "fetch", None);
        let fetched = self.fetch(&sourced).await;
        trace::end(&span, &fetched.as_ref().map_err(|(_, detail, _)| detail));
        let (object, attempts) = match fetched {
            Ok(ok) => ok,
            Err((reason, detail, attempts)) => {
                self.fail(sourced, reason, detail, attempts, photo).await;
                return;
            }
        };
        let fetch_ms = ms(started.elapsed());
        if sourced.event.claim.is_none() {
            sourced.event.claim = claim_of(&object.metadata);
        }
        let bytes = object.bytes;
        let shadow = self.shadow.as_ref().and_then(|config| shadow::ticket(config, &sourced.event, &model, &bytes));

        let span = trace::start_child(&photo, "decode", None);
        let (tensor, decode_ms) = preprocess_blocking(&model, bytes).await;
        trace::end(&span, &tensor);
        match tensor {
            Ok(_) if self.drop_if_revoked(&sourced) => trace::finish_without_write(&photo, "dropped_revoked"),
            Ok(tensor) => {
                let sku = sourced.event.claim.as_ref().and_then(|c| c.sku.as_deref());
                let product = product_input(&model, self.catalogue.as_deref(), sku, self.limits.max_bytes).await;
                let origin = Origin::Event(sourced);
                let ready_at = Instant::now();
                let prepared =
                    Prepared { origin, model, tensor, fetch_ms, decode_ms, ready_at, trace: photo, product, shadow };
                let _ = self.prepared_tx.send(prepared).await;
            }
            Err(e) => {
                tracing::info!(reason = %e.reason(), detail = e.detail(), "photo refused");
                self.fail(sourced, e.reason(), e.detail().to_string(), attempts, photo).await;
            }
        }
    }

    /// True (and counted) when the photo's partition was revoked: no completion is sent, as
    /// the source stage has forgotten the partition; the new owner gets the photo again.
    fn drop_if_revoked(&self, sourced: &SourcedEvent) -> bool {
        let revoked = self.revoked.contains(sourced.position.partition);
        if revoked {
            tracing::debug!("partition revoked; photo dropped");
            self.stats.dropped_revoked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        revoked
    }

    /// The object and the number of tries it took, or why it failed for good.
    async fn fetch(&self, sourced: &SourcedEvent) -> Result<(Object, u32), (DlqReason, String, u32)> {
        let event = &sourced.event;
        let read = || self.store.get_object(&event.bucket, &event.key, self.limits.max_bytes);
        match self.retry.run("fetch", read, StoreError::is_retryable).await {
            Ok(fetched) => Ok(fetched),
            Err((e @ StoreError::TooLarge { .. }, tries)) => Err((DlqReason::TooLarge, e.to_string(), tries)),
            Err((e, tries)) => {
                // Out of tries on an error that may pass is the store's failure, not the
                // photo's: its dead letter says so, and is not final.
                let reason = if e.is_retryable() { DlqReason::StoreUnavailable } else { DlqReason::FetchFailed };
                tracing::warn!(error = %e, attempt = tries, %reason, "fetch failed");
                Err((reason, e.to_string(), tries))
            }
        }
    }

    async fn fail(&self, sourced: SourcedEvent, reason: DlqReason, detail: String, attempts: u32, photo: Context) {
        let failed = Failed { sourced, reason, detail, attempts, trace: photo };
        let _ = self.sink_tx.send(SinkInput::Failed(failed)).await;
    }
}

/// The claim the photo's metadata carries. One that breaks the claim rules (too long, control
/// characters) is left out with a warning: the photo is still classified, without the check.
fn claim_of(metadata: &Metadata) -> Option<Claim> {
    Claim::from_metadata(metadata).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "the photo's claim is ignored");
        None
    })
}
