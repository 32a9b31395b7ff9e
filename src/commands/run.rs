//! `autorma run`: the embedded pipeline on a folder. Wires the local backends (folder store,
//! folder source, result files) into the pipeline core and shows progress.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use autorma_classifier::{Pipeline, PipelineModel, PipelineStats, PipelineSummary, RequestInbox};
use autorma_core::{LocalStore, Store};
use autorma_ingest::local::{ClaimsByKey, read_claims};
use autorma_ingest::{LocalFolderSource, LocalFolderSourceConfig, Source};
use autorma_sink::{LocalSink, Sink};

use super::model_setup;
use crate::cli::RunArgs;
use crate::config::ModelSettings;
use crate::shutdown::shutdown_signal;

/// Everything `autorma run` needs besides the model.
pub struct EmbeddedRun {
    pub inbox: PathBuf,
    pub out: PathBuf,
    pub bucket: String,
    pub watch: bool,
    pub poll_interval: Duration,
    /// Each photo's claim by key (`run --claims FILE`).
    pub claims: Arc<ClaimsByKey>,
}

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let (settings, package) = model_setup(&args.pipeline)?;
    let m = &package.manifest;
    let model_line = format!(
        "model {} v{} (sha256 {}...), execution provider {}",
        m.name,
        m.version,
        &m.onnx.sha256[..12],
        settings.pipeline.runtime.execution_provider
    );
    let claims = match &args.claims {
        Some(path) => {
            let claims = read_claims(path, &m.classes)?;
            tracing::info!(file = %path.display(), photos = claims.len(), "claims read");
            claims
        }
        None => ClaimsByKey::new(),
    };
    let embedded = EmbeddedRun {
        inbox: args.inbox.clone(),
        out: args.out.clone(),
        bucket: args.bucket.clone(),
        watch: args.watch,
        poll_interval: Duration::from_millis(args.watch_args.poll_interval_ms),
        claims: Arc::new(claims),
    };
    let stats = Arc::new(PipelineStats::default());
    let progress = (!args.no_progress && !args.watch).then(|| spawn_progress(stats.clone()));
    let summary =
        run_embedded(&embedded, settings, PipelineModel::Package(package), None, stats, shutdown_signal()).await;
    if let Some((bar, task)) = progress {
        task.abort();
        bar.finish_and_clear();
    }
    let summary = summary?;
    print_summary(&summary, &embedded.out);
    println!("{model_line}");
    Ok(ExitCode::SUCCESS)
}

/// Builds the local backends and runs the pipeline until the inbox is done (or, with
/// `watch`, until `shutdown`); `requests` share its batches while it runs.
pub async fn run_embedded(
    run: &EmbeddedRun,
    settings: ModelSettings,
    model: PipelineModel,
    requests: Option<RequestInbox>,
    stats: Arc<PipelineStats>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<PipelineSummary> {
    if !run.inbox.is_dir() {
        bail!("inbox `{}` is not a folder", run.inbox.display());
    }
    std::fs::create_dir_all(&run.out)
        .with_context(|| format!("cannot create output folder `{}`", run.out.display()))?;
    let inbox = std::fs::canonicalize(&run.inbox)?;
    let out = std::fs::canonicalize(&run.out)?;
    if inbox == out || inbox.starts_with(&out) {
        bail!("--out `{}` must not be the inbox or contain it", run.out.display());
    }
    let mut source_config = LocalFolderSourceConfig::new(&inbox, out.join("state"));
    source_config.bucket = run.bucket.clone();
    source_config.watch = run.watch;
    source_config.poll_interval = run.poll_interval;
    source_config.claims = run.claims.clone();
    // An output folder inside the inbox must not be classified as photos.
    source_config.exclude = out.starts_with(&inbox).then(|| out.clone());
    let source =
        LocalFolderSource::open(source_config).context("cannot open the run's state (output folder `state/`)")?;
    let sink = LocalSink::open(&out).context("cannot open the output folder")?;
    let store = Store::Local(LocalStore::new(run.bucket.clone(), &inbox));

    let mut pipeline =
        Pipeline::serving(store, Source::Local(source), Arc::new(Sink::Local(sink)), model, settings.pipeline);
    pipeline.stats = stats;
    pipeline.requests = requests;
    Ok(pipeline.run(shutdown).await?)
}

fn spawn_progress(stats: Arc<PipelineStats>) -> (indicatif::ProgressBar, tokio::task::JoinHandle<()>) {
    use std::sync::atomic::Ordering;
    // Hidden until the first photo is found, so the start-up log lines come before the bar.
    let bar = indicatif::ProgressBar::with_draw_target(Some(0), indicatif::ProgressDrawTarget::hidden());
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} photos  {msg}  eta {eta}")
            .expect("valid template"),
    );
    let task = tokio::spawn({
        let bar = bar.clone();
        async move {
            let mut started: Option<std::time::Instant> = None;
            loop {
                let discovered = stats.discovered.load(Ordering::Relaxed);
                if discovered > 0 && started.is_none() {
                    started = Some(std::time::Instant::now());
                    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                }
                let done = stats.num_done();
                let rate = started.map_or(0.0, |t| done as f64 / t.elapsed().as_secs_f64().max(1e-3));
                bar.set_length(discovered);
                bar.set_position(done);
                bar.set_message(format!(
                    "{rate:.0} img/s  auto {} review {} dlq {}",
                    stats.auto.load(Ordering::Relaxed),
                    stats.review.load(Ordering::Relaxed),
                    stats.dlq.load(Ordering::Relaxed)
                ));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    (bar, task)
}

fn print_summary(s: &PipelineSummary, out: &Path) {
    println!(
        "classified {} photos, dead-lettered {} in {:.2} s ({:.1} img/s)",
        s.classified(),
        s.dlq,
        s.elapsed.as_secs_f64(),
        s.items_per_second()
    );
    println!("  auto     {}", s.auto);
    println!("  review   {}", s.review);
    let reasons: Vec<String> = s.dlq_by_reason.iter().map(|(r, n)| format!("{r} {n}")).collect();
    println!(
        "  dlq      {}{}",
        s.dlq,
        if reasons.is_empty() { String::new() } else { format!(" ({})", reasons.join(", ")) }
    );
    if s.already_done > 0 {
        println!("  skipped  {} (already done by an earlier run)", s.already_done);
    }
    println!(
        "results in {}/results/, {}/results.csv; dead letters in {}/dlq/",
        out.display(),
        out.display(),
        out.display()
    );
}
