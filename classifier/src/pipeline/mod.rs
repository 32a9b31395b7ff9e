//! The pipeline core, written once and generic over the three boundaries (object store, event
//! source, result sink), so embedded mode and the streaming deployment run the same code.
//!
//! ```text
//! source ─events─▶ fetch (≤ N at once) ─prepared─▶ batcher ─batches─▶ inference threads
//!   ▲              + decode/preprocess                                     │
//!   │              (blocking threads)   ──failures (DLQ)──▶ sink ◀─results─┘
//!   └────────────────── completions (durable outcomes) ──────┘
//! ```
//! Every arrow is a bounded channel: a slow stage slows the ones before it, down to the
//! source, instead of growing a queue. Positions are committed by the source stage only as
//! contiguous watermarks of durable outcomes (see `checkpoint.rs`).

pub mod batcher;
mod decode;
mod fetch;
mod infer;
pub mod messages;
mod product;
mod requests;
mod revoked;
mod shadow;
mod sink_stage;
mod source_stage;
mod stats;
mod trace;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use autorma_core::{EventSource, ObjectStore, ResultSink, SinkError, SourceError};
use autorma_registry::ModelPackage;
use tokio::sync::mpsc;
use tokio::time::Instant;

pub use autorma_core::RetryConfig;
pub use requests::{RequestError, RequestInbox, Requests, requests, serve_requests};
pub use shadow::ShadowConfig;
pub use stats::{PipelineStats, PipelineSummary};

use crate::catalogue::Catalogue;
use crate::checkpoint::TrackerError;
use crate::inference::{InferenceError, RuntimeConfig};
use crate::preprocess::DecodeLimits;
use crate::serving::{ModelHandle, ServingModel};
use batcher::{BatcherConfig, Upstream, run_batcher};

/// How the pipeline runs. Every field has a default suited to a small machine.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Photos fetched and decoded at once (each holds its bytes and tensor in memory).
    pub fetch_concurrency: usize,
    pub batcher: BatcherConfig,
    /// Inference threads, each with its own ONNX Runtime session.
    pub num_workers: usize,
    pub runtime: RuntimeConfig,
    pub limits: DecodeLimits,
    pub fetch_retry: RetryConfig,
    pub sink_retry: RetryConfig,
    /// Polls of a failing source (a folder that cannot be listed, a broker away) before the
    /// run gives up with the error.
    pub source_retry: RetryConfig,
    /// Result writes in flight at once.
    pub sink_concurrency: usize,
    /// Events queued between the source and the fetch stage.
    pub queue_capacity: usize,
    /// Bulk-lane (replay) photos in the pipeline at once: the most a live photo can find ahead
    /// of it while a replay runs. Small keeps live latency; larger gives the replay more speed
    /// (and bigger batches, which a GPU needs).
    pub bulk_inflight: usize,
    /// Most time between two commits of the checkpoint.
    pub commit_interval: Duration,
    /// Longest a written outcome waits to show in derived sink outputs (results.csv), even
    /// when no more photos come.
    pub sink_flush_interval: Duration,
    /// Where the product check finds the catalogue photos of claimed SKUs; `None`: a claimed
    /// SKU is recorded but not compared.
    pub catalogue: Option<Arc<Catalogue>>,
    /// A second model run beside production on a sample of photos; `None`: none.
    pub shadow: Option<ShadowConfig>,
}

impl PipelineConfig {
    pub fn new(runtime: RuntimeConfig) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            fetch_concurrency: 2 * cores,
            batcher: BatcherConfig::default(),
            num_workers: 1,
            runtime,
            limits: DecodeLimits::default(),
            fetch_retry: RetryConfig::default(),
            sink_retry: RetryConfig::default(),
            source_retry: RetryConfig {
                max_attempts: 8,
                initial_backoff: Duration::from_secs(1),
                max_backoff: Duration::from_secs(30),
            },
            sink_concurrency: 8,
            queue_capacity: 256,
            bulk_inflight: 4,
            commit_interval: Duration::from_millis(500),
            sink_flush_interval: Duration::from_secs(5),
            catalogue: None,
            shadow: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Inference(#[from] InferenceError),
    #[error("event source failed: {0}")]
    Source(#[source] SourceError),
    #[error("commit failed: {0}")]
    Commit(#[source] SourceError),
    #[error("sink failed for `{key}`: {source}")]
    Sink {
        key: String,
        #[source]
        source: SinkError,
    },
    #[error("checkpoint tracking failed: {0}")]
    Tracker(#[source] TrackerError),
}

/// What the pipeline serves: a package it loads when it starts, or a handle whose model
/// someone else loaded and may swap while it runs (a worker following a registry alias).
pub enum PipelineModel {
    Package(Arc<ModelPackage>),
    Handle(ModelHandle),
}

pub struct Pipeline<S, E, K> {
    pub store: Arc<S>,
    pub source: E,
    pub sink: Arc<K>,
    pub model: PipelineModel,
    pub config: PipelineConfig,
    /// Live counters; clone the `Arc` before `run` to watch progress.
    pub stats: Arc<PipelineStats>,
    /// Synchronous requests that share this pipeline's batches and sessions (see `requests`);
    /// they are served while the pipeline runs.
    pub requests: Option<RequestInbox>,
}

impl<S: ObjectStore, E: EventSource, K: ResultSink> Pipeline<S, E, K> {
    pub fn new(store: S, source: E, sink: Arc<K>, package: Arc<ModelPackage>, config: PipelineConfig) -> Self {
        Self::serving(store, source, sink, PipelineModel::Package(package), config)
    }

    pub fn serving(store: S, source: E, sink: Arc<K>, model: PipelineModel, config: PipelineConfig) -> Self {
        Self { store: Arc::new(store), source, sink, model, config, stats: Arc::default(), requests: None }
    }

    /// Runs until the source is exhausted (and everything drained), or until `shutdown`
    /// completes (then it stops reading, drains what is in flight and commits).
    ///
    /// Sessions are created first, so a missing library or an unusable execution provider
    /// fails here before any photo is read.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<PipelineSummary, PipelineError> {
        let started = Instant::now();
        let Pipeline { store, source, sink, model, config, stats, requests } = self;
        let models = match model {
            PipelineModel::Handle(handle) => handle,
            PipelineModel::Package(package) => {
                let (runtime, limits, n) = (config.runtime.clone(), config.limits, config.num_workers.max(1));
                let model = tokio::task::spawn_blocking(move || ServingModel::load(package, &runtime, limits, n))
                    .await
                    .expect("model loading panicked")?;
                ModelHandle::new(model)
            }
        };
        let serving = models.current();
        tracing::info!(model = %serving.model.name, version = %serving.model.version,
            execution_provider = serving.execution_provider, workers = config.num_workers.max(1),
            max_batch_size = config.batcher.max_batch_size, max_wait_ms = config.batcher.max_wait.as_millis() as u64,
            wait_when_idle = config.batcher.wait_when_idle,
            "pipeline starting");
        drop(serving);

        let (events_tx, events_rx) = mpsc::channel(config.queue_capacity.max(1));
        // The batcher holds the batch it fills; this queue only absorbs bursts. Sized by the
        // fetch stage, not the batch: at batch 1024, 2 x batch tensors (400 MB at 128 px)
        // sat here, and their memory traffic cost more CPU than the queue ever saved.
        let (prepared_tx, prepared_rx) = mpsc::channel(config.fetch_concurrency.max(1));
        let (sink_tx, sink_rx) = mpsc::channel(config.num_workers.max(1) * 2 + config.fetch_concurrency);
        // Completions are drained continuously by the source stage, so this bound never
        // blocks for long; it is sized to a few batches.
        let (ack_tx, ack_rx) = mpsc::channel(config.batcher.max_batch_size.max(1) * 4 + config.fetch_concurrency);

        // Requests join the batches until the fetch stage ends, so the batcher's input closes.
        let fetch_done = Arc::new(tokio::sync::Notify::new());
        let forward_task = requests.map(|inbox| tokio::spawn(inbox.forward(prepared_tx.clone(), fetch_done.clone())));
        let revoked = Arc::new(revoked::RevokedPartitions::default());
        let upstream = Arc::new(Upstream::default());
        let fetch = fetch::FetchStage {
            store,
            revoked: revoked.clone(),
            stats: stats.clone(),
            sink: sink.clone(),
            models,
            limits: config.limits,
            catalogue: config.catalogue.clone(),
            shadow: config.shadow.clone(),
            retry: config.fetch_retry,
            concurrency: config.fetch_concurrency,
            upstream: upstream.clone(),
            prepared_tx,
            sink_tx: sink_tx.clone(),
            ack_tx: ack_tx.clone(),
        };
        let fetch_task = tokio::spawn(async move {
            let _done = requests::NotifyOnDrop(fetch_done);
            fetch.run(events_rx).await;
        });
        let model_stage = ModelStage::spawn(&config, prepared_rx, upstream, sink_tx, stats.clone());
        let sink_stage = sink_stage::SinkStage {
            sink,
            retry: config.sink_retry,
            concurrency: config.sink_concurrency,
            flush_interval: config.sink_flush_interval,
            ack_tx,
        };
        // A sink that fails for good cannot acknowledge anything more: stop reading (as on
        // shutdown) so the pipeline winds down instead of fetching photos it cannot record.
        let sink_failed = Arc::new(tokio::sync::Notify::new());
        let sink_task = tokio::spawn({
            let sink_failed = sink_failed.clone();
            async move {
                let result = sink_stage.run(sink_rx).await;
                if result.is_err() {
                    sink_failed.notify_one();
                }
                result
            }
        });
        let stop = async move {
            tokio::select! {
                () = shutdown => {}
                () = sink_failed.notified() => tracing::error!("the sink failed; stopping"),
            }
        };

        let source_stage = source_stage::SourceStage {
            source,
            revoked,
            stats: stats.clone(),
            commit_interval: config.commit_interval,
            retry: config.source_retry,
            bulk_inflight: config.bulk_inflight,
            bulk_queue: config.queue_capacity,
        };
        let committed = source_stage.run(events_tx, ack_rx, stop).await;

        // The source stage ends when every completion sender is gone, i.e. every stage ended
        // (or it failed: then the stages wind down as their channels close).
        let sink_result = sink_task.await.expect("sink stage panicked");
        fetch_task.await.expect("fetch stage panicked");
        if let Some(forward_task) = forward_task {
            forward_task.await.expect("request forwarding panicked");
        }
        model_stage.join().await;
        let committed = committed?;
        sink_result?;
        Ok(stats.summary(started.elapsed(), committed))
    }
}

/// The batcher and the inference threads: the part of the pipeline that synchronous requests
/// share.
struct ModelStage {
    batcher: tokio::task::JoinHandle<()>,
    workers: Vec<std::thread::JoinHandle<()>>,
    /// Ends once the workers (its only senders) have.
    shadow: Option<std::thread::JoinHandle<()>>,
}

impl ModelStage {
    fn spawn(
        config: &PipelineConfig,
        prepared_rx: mpsc::Receiver<messages::Prepared>,
        upstream: Arc<Upstream>,
        sink_tx: mpsc::Sender<messages::SinkInput>,
        stats: Arc<PipelineStats>,
    ) -> Self {
        let (batch_tx, batch_rx) = mpsc::channel(config.num_workers.max(1));
        // A batch runs on one model: a photo given to another one starts the next batch.
        let same_model = |a: &messages::Prepared, b: &messages::Prepared| Arc::ptr_eq(&a.model, &b.model);
        let batcher = tokio::spawn(run_batcher(config.batcher, prepared_rx, batch_tx, upstream, same_model));
        let (shadow_tx, shadow) = config.shadow.as_ref().map(shadow::spawn).unzip();
        let workers = infer::spawn_workers(config.num_workers, batch_rx, sink_tx, shadow_tx, stats);
        Self { batcher, workers, shadow }
    }

    /// Waits until the batcher's input has closed and every batch is inferred.
    async fn join(self) {
        self.batcher.await.expect("batcher panicked");
        let (workers, shadow) = (self.workers, self.shadow);
        tokio::task::spawn_blocking(move || {
            for worker in workers {
                worker.join().expect("inference worker panicked");
            }
            if let Some(shadow) = shadow {
                shadow.join().expect("the shadow thread panicked");
            }
        })
        .await
        .expect("joining inference workers panicked");
    }
}
