//! One file per command; this module routes to them and holds what they share.

mod bench;
mod classify;
mod corrections;
mod eval;
mod ingest;
mod model;
mod registry;
mod replay;
mod run;
mod serve;
mod shadow;
mod streaming;
mod worker;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use autorma_classifier::preprocess::{PreprocessError, Preprocessor};
use autorma_core::DlqReason;
use autorma_ingest::local::{ScanFilter, scan};
use autorma_registry::{BUILTIN_PACKAGE, ModelPackage, builtin_package};

use crate::cli::{Cli, Command, PipelineArgs};
use crate::config::{self, ConfigFile, ModelSettings};
use crate::telemetry;

pub async fn dispatch(cli: Cli, file: ConfigFile) -> anyhow::Result<ExitCode> {
    // The long-running commands and the replay job export metrics and traces (where an
    // endpoint is configured).
    let role = match &cli.command {
        Command::Run(_) => Some("run"),
        Command::Ingest(_) => Some("ingest"),
        Command::Worker(_) => Some("worker"),
        Command::Serve(_) => Some("serve"),
        // A job, not a service: its last export happens as it ends.
        Command::Replay(_) => Some("replay"),
        _ => None,
    };
    let endpoints =
        telemetry::Endpoints { metrics: cli.otlp_endpoint.clone(), traces: cli.otlp_traces_endpoint.clone() };
    let export = match role {
        Some(role) => Some(telemetry::start(&format!("autorma-{role}"), &registry::process_id(role), &endpoints)?),
        None => None,
    };
    let result = run_command(cli, &file).await;
    if let Some(export) = export {
        tokio::task::spawn_blocking(move || export.shutdown()).await.expect("the telemetry shutdown panicked");
    }
    result
}

/// `file` is for the Kafka properties it may hold (its other values are the flags' now).
async fn run_command(cli: Cli, file: &ConfigFile) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(args) => run::run(args).await,
        Command::Classify(args) => classify::classify(args).await,
        Command::Eval(args) => eval::eval(args).await,
        Command::Bench(args) => bench::bench(args).await,
        Command::Ingest(args) => ingest::ingest(args, file).await,
        Command::Worker(args) => worker::worker(args, file).await,
        Command::Model(args) => model::model(args, file).await,
        Command::Replay(args) => replay::replay(args, file).await,
        Command::Corrections(args) => corrections::corrections(args, file).await,
        Command::Serve(args) => serve::serve(args, file).await,
    }
}

/// Resolves the settings and loads (validates) the model package.
fn model_setup(args: &PipelineArgs) -> anyhow::Result<(ModelSettings, Arc<ModelPackage>)> {
    if let Some(dir) = args.catalogue.as_deref().filter(|dir| !dir.is_dir()) {
        anyhow::bail!(
            "--catalogue `{}` is not a folder (a folder of <sku>.jpg catalogue photos; set with --catalogue or AUTORMA_CATALOGUE)",
            dir.display()
        );
    }
    let settings = config::resolve(args);
    let package = match &settings.model_dir {
        Some(dir) => ModelPackage::load(dir).with_context(|| {
            format!("cannot use model package `{}` (set it with --model or AUTORMA_MODEL)", dir.display())
        })?,
        None => builtin_package(&cache_dir().join("models"))
            .with_context(|| format!("cannot unpack {BUILTIN_PACKAGE} into the cache folder (or set --model DIR)"))?,
    };
    tracing::info!(model = %package.manifest.name, version = %package.manifest.version,
        precision = package.manifest.precision.as_str(), dir = %package.dir.display(),
        builtin = settings.model_dir.is_none(), "model package verified");
    Ok((settings, Arc::new(package)))
}

/// The photos-to-be under `root`, listed as `autorma run` lists an inbox (hidden and temp
/// files skipped, a folder reached again through a symlink listed once), sorted.
fn list_files(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let found = scan(root, &ScanFilter::new(root, None), None)?;
    for (path, why) in &found.skipped {
        tracing::warn!(path = %path.display(), why, "skipped an entry that is not a photo file");
    }
    Ok(found.files.into_iter().map(|file| root.join(file.key)).collect())
}

/// Why a file given on the command line could not become a tensor: the reason a `run` would
/// dead-letter it with, and the detail.
#[derive(Debug)]
pub struct Refused {
    pub reason: DlqReason,
    pub detail: String,
}

impl From<PreprocessError> for Refused {
    fn from(e: PreprocessError) -> Self {
        Refused { reason: e.reason(), detail: e.detail().to_string() }
    }
}

/// Reads and preprocesses files on all cores; each result is the tensor or why it failed.
fn preprocess_files(files: &[PathBuf], preprocessor: &Preprocessor) -> Vec<Result<Vec<f32>, Refused>> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).min(files.len().max(1));
    let chunk = files.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|path| Ok(preprocessor.preprocess(&read_limited(path, preprocessor)?)?))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("preprocess thread panicked")).collect()
    })
}

/// The file's bytes, refused without reading when over the size limit; like the pipeline's
/// fetch, a file that cannot be read is `fetch_failed`.
fn read_limited(path: &Path, preprocessor: &Preprocessor) -> Result<Vec<u8>, Refused> {
    let fetch_failed =
        |e: std::io::Error| Refused { reason: DlqReason::FetchFailed, detail: format!("cannot read: {e}") };
    let size = std::fs::metadata(path).map_err(fetch_failed)?.len();
    let max_bytes = preprocessor.limits.max_bytes;
    if size > max_bytes {
        return Err(Refused {
            reason: DlqReason::TooLarge,
            detail: format!("{size} bytes, over the limit of {max_bytes}"),
        });
    }
    std::fs::read(path).map_err(fetch_failed)
}

/// `${XDG_CACHE_HOME:-$HOME/.cache}/autorma`: what can be fetched or derived again (model
/// versions, results indexes).
fn cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"))
        .join("autorma")
}
