//! `autorma worker`: the pipeline core on the streaming backends (Kafka source on the live and
//! replay topics, S3 store, S3 sink whose topic records the source publishes in its
//! transactions), one member of the workers' consumer group, serving the model version a
//! registry alias names.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use autorma_classifier::catalogue::Catalogue;
use autorma_classifier::serving::{ShadowFollow, ShadowHandle, WatchConfig};
use autorma_classifier::{Pipeline, PipelineModel, RetryConfig, ShadowConfig};
use autorma_core::Store;
use autorma_core::metrics::metrics;
use autorma_core::topics;
use autorma_ingest::{KafkaConsumerConfig, KafkaSource, Source};
use autorma_sink::{Sink, StreamingSink};

use super::model_setup;
use super::registry::follow_registry;
use super::streaming::connect;
use crate::cli::ShadowArgs;
use crate::cli::WorkerArgs;
use crate::config::StreamingSettings;
use crate::config::{self, ConfigFile, ModelSettings};
use crate::shutdown::shutdown_signal;

pub async fn worker(args: WorkerArgs, file: &ConfigFile) -> anyhow::Result<ExitCode> {
    let (mut settings, package) = model_setup(&args.pipeline)?;
    // A remote store or broker has blips a local folder does not: ride out a few seconds of
    // them before a photo is dead-lettered as `store_unavailable`, or the sink gives up.
    settings.pipeline.fetch_retry = RetryConfig {
        max_attempts: 6,
        initial_backoff: Duration::from_millis(500),
        max_backoff: Duration::from_secs(10),
    };
    // Fetches and writes wait on the network (S3 round trips, the broker's acknowledgement),
    // not on this machine's cores: keep more of them in flight than a local folder needs.
    if args.pipeline.fetch_concurrency.is_none() {
        settings.pipeline.fetch_concurrency = settings.pipeline.fetch_concurrency.max(16);
    }
    if args.pipeline.sink_concurrency.is_none() {
        settings.pipeline.sink_concurrency = 32;
    }
    // A result reaches `read_committed` consumers when the transaction that commits its offset
    // does: commit often (Kafka Streams' exactly-once default is 100 ms too). Under load one
    // transaction still carries many photos.
    settings.pipeline.commit_interval = Duration::from_millis(100);
    settings.pipeline.sink_retry =
        RetryConfig { max_attempts: 8, initial_backoff: Duration::from_secs(1), max_backoff: Duration::from_secs(30) };
    let mut streaming = config::resolve_streaming(&args.streaming, file)?;
    // The pipeline's fetch and sink retries are the only ones: one S3 request per try.
    streaming.s3.max_attempts = 1;
    let group_id = args.group.clone();
    settings.pipeline.bulk_inflight = args.bulk_inflight as usize;
    let mut needed = vec![topics::ITEMS, topics::ITEMS_REPLAY, topics::RESULTS, topics::REVIEW, topics::DLQ];
    if args.shadow.shadow_sample > 0.0 {
        needed.push(topics::SHADOW);
    }
    let store = connect(&streaming, &needed).await?;
    let model_cache = args.model_cache.clone();
    let (shadow, publishing) = shadow_setup(&args.shadow, &args.follow.alias, &streaming, &mut settings)?;
    let models = follow_registry("worker", &args.follow, model_cache, &streaming, &store, &settings, package).await?;
    let store = Store::S3(store);
    if settings.pipeline.catalogue.is_none() {
        settings.pipeline.catalogue = Some(Arc::new(Catalogue::in_bucket(store.clone(), streaming.bucket.clone())));
    }
    let sink = StreamingSink::new(store.clone());
    let consumer = KafkaConsumerConfig {
        kafka: streaming.kafka.clone(),
        group_id,
        topics: vec![topics::ITEMS.to_string(), topics::ITEMS_REPLAY.to_string()],
        bulk_topics: vec![topics::ITEMS_REPLAY.to_string()],
        // Small polls: the consumer is polled (and hears of rebalances) only once the last
        // poll's events are queued, so a big batch delays rebalances behind a slow model.
        max_batch: 64,
    };
    let source = tokio::task::spawn_blocking(move || KafkaSource::subscribe(&consumer))
        .await
        .expect("subscribing panicked")
        .context("cannot join the workers' consumer group")?;
    let (handle, follower) = models;
    let follower = follower.with_shadow(shadow);
    let following = tokio::spawn(follower.run(handle.clone(), std::future::pending()));
    let pipeline = Pipeline::serving(
        store,
        Source::Kafka(source),
        Arc::new(Sink::Streaming(sink)),
        PipelineModel::Handle(handle),
        settings.pipeline,
    );
    let summary = pipeline.run(shutdown_signal()).await;
    following.abort();
    // The pipeline dropped its end of the records' queue: what is queued goes out, briefly.
    if let Some(publishing) = publishing
        && tokio::time::timeout(SHADOW_FLUSH, publishing).await.is_err()
    {
        tracing::warn!("shadow records still unsent at exit were dropped");
    }
    let summary = summary?;
    println!(
        "worker stopped: classified {} photos (auto {}, review {}), dead-lettered {}, {} already done, \
         {} left to another worker by a rebalance, in {:.1} s",
        summary.classified(),
        summary.auto,
        summary.review,
        summary.dlq,
        summary.already_done,
        summary.dropped_revoked,
        summary.elapsed.as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

/// Longest a stopping worker waits for its last shadow records to be published.
const SHADOW_FLUSH: Duration = Duration::from_secs(5);
/// Shadow records waiting for the publisher.
const SHADOW_QUEUE: usize = 256;

/// With a shadow sample: the pipeline's shadow stage, the follower's slot and the task that
/// publishes the records to rma.shadow.
fn shadow_setup(
    args: &ShadowArgs,
    alias: &str,
    streaming: &StreamingSettings,
    settings: &mut ModelSettings,
) -> anyhow::Result<(Option<ShadowFollow>, Option<tokio::task::JoinHandle<()>>)> {
    if args.shadow_sample == 0.0 {
        tracing::info!("--shadow-sample is 0: no shadow model runs and promotions are not watched");
        return Ok((None, None));
    }
    let producer = autorma_sink::shadow::producer(&streaming.kafka)?;
    metrics().start_shadow_counts(alias);
    let (records, queue) = tokio::sync::mpsc::channel(SHADOW_QUEUE);
    let handle = ShadowHandle::default();
    settings.pipeline.shadow = Some(ShadowConfig { models: handle.clone(), sample: args.shadow_sample, records });
    let publishing = tokio::spawn(autorma_sink::shadow::publish(producer, queue));
    let watch = WatchConfig { window: Duration::from_secs(args.watch_s), bounds: args.bounds() };
    tracing::info!(sample = args.shadow_sample, alias = %args.shadow_alias, watch_s = args.watch_s, "shadow sampling on");
    Ok((Some(ShadowFollow { handle, alias: args.shadow_alias.clone(), watch }), Some(publishing)))
}
