//! `autorma replay`: the bulk replay, streaming (to rma.items.replay) or embedded (--out).

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use autorma_classifier::Pipeline;
use autorma_core::topics;
use autorma_core::{EventOrigin, ItemEvent, LocalStore, ModelRef, ReplayRequest, Store};
use autorma_ingest::replay::{ReplayFilter, ReplayJob};
use autorma_ingest::{ListSource, Source};
use autorma_registry::ModelPackage;
use autorma_sink::{LocalSink, Sink};
use chrono::{DateTime, NaiveDate, Utc};
use indicatif::{ProgressBar, ProgressStyle};

use super::model_setup;
use super::registry::open_registry;
use super::streaming::connect;
use crate::cli::ReplayArgs;
use crate::config::{self, ConfigFile};
use crate::shutdown::shutdown_signal;

pub async fn replay(args: ReplayArgs, file: &ConfigFile) -> anyhow::Result<ExitCode> {
    if let (Some(out), Some(inbox)) = (&args.out, &args.inbox) {
        return embedded(&args, out, inbox, file).await;
    }
    let streaming = config::resolve_streaming(&args.streaming, file)?;
    let store = connect(&streaming, &[topics::ITEMS_REPLAY]).await?;
    let registry = open_registry(&args.registry, &streaming, Some(&store)).await?;
    let job = ReplayJob {
        producer: streaming.kafka.producer().context("cannot create the Kafka producer")?,
        bucket: streaming.bucket.clone(),
        store,
        registry,
        alias: args.alias.clone(),
        filter: ReplayFilter {
            prefix: args.prefix.clone(),
            since: args.since.as_deref().map(|t| parse_time("since", t)).transpose()?,
            until: args.until.as_deref().map(|t| parse_time("until", t)).transpose()?,
        },
        all: args.all,
        rate: args.rate,
    };
    let bar = progress_bar(args.no_progress);
    let summary = job
        .run(|sent, total| {
            bar.set_length(total as u64);
            bar.set_position(sent as u64);
        })
        .await?;
    bar.finish_and_clear();
    println!(
        "replay: listed {} photos, skipped {} (already classified by `{}`), sent {} to {}",
        summary.listed,
        summary.skipped,
        job.alias,
        summary.sent,
        topics::ITEMS_REPLAY
    );
    Ok(ExitCode::SUCCESS)
}

/// Embedded: re-run, with the current model, the photos of `out` another model classified.
async fn embedded(args: &ReplayArgs, out: &Path, inbox: &Path, file: &ConfigFile) -> anyhow::Result<ExitCode> {
    let (settings, mut package) = model_setup(&args.pipeline)?;
    if args.registry.registry.is_some() {
        // The registry's alias names the current model; the streaming settings are unused
        // unless the registry is a bucket.
        let streaming = config::resolve_streaming(&args.streaming, file)?;
        let registry = open_registry(&args.registry, &streaming, None).await?;
        let alias = &args.alias;
        let record =
            registry.alias(alias).await?.with_context(|| format!("{} has no alias `{alias}`", registry.describe()))?;
        let cache = out.join("state/models");
        package = Arc::new(registry.fetch(record.version, &cache).await?);
    }
    let current = model_ref(&package);
    let sink = LocalSink::open(out).with_context(|| format!("cannot open `{}`", out.display()))?;
    let stale = sink.results_made_by_other_than((!args.all).then_some(&current));
    let listed = sink.num_results();
    let events: Vec<ItemEvent> = stale
        .into_iter()
        .map(|item| ItemEvent {
            content_type: autorma_core::event::content_type_for_key(&item.key).to_string(),
            bucket: item.bucket,
            key: item.key,
            etag: item.etag,
            size: 0,
            event_time: Utc::now(),
            source: EventOrigin::Replay,
            claim: None,
            replay: Some(ReplayRequest { model_version: current.version.clone(), force: args.all }),
        })
        .collect();
    let to_send = events.len();
    let bucket = events.first().map_or_else(|| "local".to_string(), |e| e.bucket.clone());
    let store = Store::Local(LocalStore::new(bucket, inbox));
    let pipeline = Pipeline::new(
        store,
        Source::List(ListSource::new(events)),
        Arc::new(Sink::Local(sink)),
        package,
        settings.pipeline,
    );
    let summary = pipeline.run(shutdown_signal()).await?;
    println!(
        "replay: {listed} results in {}, {} already from {} v{}, re-classified {} (auto {}, review {}), dead-lettered {}",
        out.display(),
        listed - to_send,
        current.name,
        current.version,
        summary.classified(),
        summary.auto,
        summary.review,
        summary.dlq
    );
    Ok(ExitCode::SUCCESS)
}

fn model_ref(package: &ModelPackage) -> ModelRef {
    let m = &package.manifest;
    ModelRef { name: m.name.clone(), version: m.version.clone(), sha256: m.onnx.sha256.to_ascii_lowercase() }
}

/// RFC 3339, or a date (midnight UTC).
fn parse_time(name: &str, text: &str) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").with_context(|| {
        format!("invalid --{name} `{text}`: expected RFC 3339 (2026-11-27T02:00:00Z) or YYYY-MM-DD")
    })?;
    Ok(date.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc())
}

fn progress_bar(hidden: bool) -> ProgressBar {
    if hidden || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} replay {pos}/{len} sent [{bar:30}] {per_sec} eta {eta}")
            .expect("valid template"),
    );
    bar
}
