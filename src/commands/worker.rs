//! `autorma worker`: the pipeline core on the streaming backends (Kafka source on the live and
//! replay topics, S3 store, S3 + Kafka sink), one member of the workers' consumer group,
//! serving the model version a registry alias names.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use autorma_classifier::serving::{AliasFollower, FollowConfig, ModelHandle};
use autorma_classifier::{Pipeline, PipelineModel, RetryConfig};
use autorma_core::kafka::topics;
use autorma_core::{S3Store, Store};
use autorma_ingest::{KafkaConsumerConfig, KafkaSource, Source};
use autorma_registry::{Actor, ModelPackage};
use autorma_sink::{Sink, StreamingSink};

use super::registry::{open_registry, process_id};
use super::run::shutdown_signal;
use super::streaming::connect;
use super::{cache_dir, model_setup};
use crate::cli::WorkerArgs;
use crate::config::{self, FileConfig, ModelSettings, StreamingSettings};

pub async fn worker(args: WorkerArgs, file: &FileConfig, file_path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let (mut settings, package) = model_setup(&args.pipeline, file, file_path)?;
    // A remote store or broker has blips a local folder does not: ride out a few seconds of
    // them before a photo is dead-lettered as `store_unavailable`, or the sink gives up.
    settings.pipeline.fetch_retry = RetryConfig {
        max_attempts: 6,
        initial_backoff: Duration::from_millis(500),
        max_backoff: Duration::from_secs(10),
    };
    // Fetches and writes wait on the network (S3 round trips, the broker's acknowledgement),
    // not on this machine's cores: keep more of them in flight than a local folder needs.
    if args.pipeline.fetch_concurrency.is_none() && file.fetch_concurrency.is_none() {
        settings.pipeline.fetch_concurrency = settings.pipeline.fetch_concurrency.max(16);
    }
    settings.pipeline.sink_concurrency = 32;
    settings.pipeline.sink_retry =
        RetryConfig { max_attempts: 8, initial_backoff: Duration::from_secs(1), max_backoff: Duration::from_secs(30) };
    let streaming = config::resolve_streaming(&args.streaming, file)?;
    let group_id = args.group.clone().or(file.worker_group.clone()).unwrap_or_else(|| "autorma-workers".into());
    let (arg, from_file) = (args.bulk_inflight.map(|n| n as u64), file.bulk_inflight.map(|n| n as u64));
    settings.pipeline.bulk_inflight = config::within("bulk_inflight", arg, from_file, 4, 1..=4096)? as usize;
    let store =
        connect(&streaming, &[topics::ITEMS, topics::ITEMS_REPLAY, topics::RESULTS, topics::REVIEW, topics::DLQ])
            .await?;
    let models = follow_registry(&args, file, &streaming, &store, &settings, package).await?;
    let sink = StreamingSink::new(store.clone(), &streaming.kafka).context("cannot create the Kafka producer")?;
    let source = KafkaSource::subscribe(&KafkaConsumerConfig {
        kafka: streaming.kafka.clone(),
        group_id,
        topics: vec![topics::ITEMS.to_string(), topics::ITEMS_REPLAY.to_string()],
        bulk_topics: vec![topics::ITEMS_REPLAY.to_string()],
        // Small polls: the consumer is polled (and hears of rebalances) only once the last
        // poll's events are queued, so a big batch delays rebalances behind a slow model.
        max_batch: 64,
    })
    .context("cannot join the workers' consumer group")?;
    let (handle, follower) = models;
    let following = tokio::spawn(follower.run(handle.clone(), std::future::pending()));
    let pipeline = Pipeline::serving(
        Store::S3(store),
        Source::Kafka(source),
        Arc::new(Sink::Streaming(sink)),
        PipelineModel::Handle(handle),
        settings.pipeline,
    );
    let summary = pipeline.run(shutdown_signal()).await;
    following.abort();
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

/// Seeds a fresh registry with the shipped package, loads the version the alias names, and
/// returns the handle the pipeline serves from with the follower that keeps it current
/// (woken at once by SIGHUP).
async fn follow_registry(
    args: &WorkerArgs,
    file: &FileConfig,
    streaming: &StreamingSettings,
    store: &S3Store,
    settings: &ModelSettings,
    package: Arc<ModelPackage>,
) -> anyhow::Result<(ModelHandle, AliasFollower)> {
    let registry = open_registry(&args.follow.registry, file, streaming, Some(store)).await?;
    let alias = args.follow.alias.clone().or(file.model_alias.clone()).unwrap_or_else(|| "production".into());
    let worker_id = process_id("worker");
    let seeder = Actor { who: worker_id.clone(), why: Some("first start: seeded with the shipped package".into()) };
    if let Some(version) = registry.seed(&package, &alias, &seeder).await? {
        tracing::info!(registry = %registry.describe(), %alias, version, dir = %package.dir.display(),
            "the registry had no `{alias}`: seeded it with the shipped package");
    }
    let follower = AliasFollower::new(
        registry,
        FollowConfig {
            poll_interval: config::seconds(
                "model_poll_s",
                args.follow.model_poll_s,
                file.model_poll_s,
                30,
                1..=86_400,
            )?,
            cache_dir: args
                .model_cache
                .clone()
                .or(file.model_cache.clone())
                .unwrap_or_else(|| cache_dir().join("models")),
            runtime: settings.pipeline.runtime.clone(),
            limits: settings.pipeline.limits,
            workers: settings.pipeline.num_workers,
            worker_id,
            alias: alias.clone(),
        },
    );
    let handle = follower.load_current().await.with_context(|| format!("cannot serve the model `{alias}` names"))?;
    let waker = follower.waker();
    tokio::spawn(async move {
        let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else { return };
        while hangups.recv().await.is_some() {
            waker.notify_one();
        }
    });
    Ok((handle, follower))
}
