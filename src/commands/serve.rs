//! `autorma serve`: the HTTP API over the results index, fed from an embedded run's folder.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, bail};
use autorma_sink::index::ResultIndex;

use super::model_setup;
use super::run::shutdown_signal;
use crate::cli::ServeArgs;
use crate::config::FileConfig;
use crate::serve::{ModelInfo, ServeState, feed, router};

/// How often the output folder is looked at for new results.
const FEED_INTERVAL: Duration = Duration::from_millis(500);
/// Results an events subscriber may fall behind by before it misses some.
const EVENT_BUFFER: usize = 4096;

pub async fn serve(args: ServeArgs, file: &FileConfig, file_path: Option<&Path>) -> anyhow::Result<ExitCode> {
    if !args.out.is_dir() {
        bail!("--out `{}` is not a folder (the output folder of `autorma run`)", args.out.display());
    }
    let (settings, package) = model_setup(&args.pipeline, file, file_path)?;
    let m = &package.manifest;
    let model = ModelInfo {
        name: m.name.clone(),
        version: m.version.clone(),
        sha256: m.onnx.sha256.to_ascii_lowercase(),
        execution_provider: settings.pipeline.runtime.execution_provider.name().to_string(),
        classes: package.classes().to_vec(),
    };
    let index_path = args.index.clone().unwrap_or_else(|| args.out.join("state/index.sqlite"));
    let index = Arc::new(ResultIndex::open(&index_path)?);
    let caught_up = Arc::new(AtomicBool::new(false));
    let token = args.token.clone().filter(|t| !t.is_empty());
    let (events, _) = tokio::sync::broadcast::channel(EVENT_BUFFER);
    let state = Arc::new(ServeState {
        index: index.clone(),
        out: args.out.clone(),
        events: events.clone(),
        model,
        token,
        caught_up: caught_up.clone(),
    });
    let feeder = tokio::spawn(feed::follow_out_folder(args.out.clone(), index, FEED_INTERVAL, caught_up, events));

    let listen = args.listen.clone().unwrap_or_else(|| "127.0.0.1:8080".into());
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on `{listen}` (set --listen or AUTORMA_LISTEN)"))?;
    tracing::info!(address = %listener.local_addr()?, out = %args.out.display(), index = %index_path.display(),
        authentication = state.token.is_some(), "serving");
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown_signal()).await?;
    feeder.abort();
    Ok(ExitCode::SUCCESS)
}
