//! `autorma serve`: the HTTP API over the results index, fed from an embedded run's folder,
//! and with `--inbox`, that embedded pipeline in the same process.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, bail};
use autorma_sink::index::ResultIndex;

use autorma_classifier::serving::{ModelHandle, ServingModel};
use autorma_classifier::{PipelineModel, PipelineStats};
use autorma_core::{LocalStore, Store};

use super::model_setup;
use super::run::{EmbeddedRun, run_embedded, shutdown_signal};
use crate::cli::ServeArgs;
use crate::config::{self, FileConfig};
use crate::serve::{ServeState, feed, router};

/// How often the output folder is looked at for new results.
const FEED_INTERVAL: Duration = Duration::from_millis(500);
/// Results an events subscriber may fall behind by before it misses some.
const EVENT_BUFFER: usize = 4096;

pub async fn serve(args: ServeArgs, file: &FileConfig, file_path: Option<&Path>) -> anyhow::Result<ExitCode> {
    if args.inbox.is_some() {
        std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create --out `{}`", args.out.display()))?;
    } else if !args.out.is_dir() {
        bail!("--out `{}` is not a folder (the output folder of `autorma run`, or give --inbox)", args.out.display());
    }
    let (settings, package) = model_setup(&args.pipeline, file, file_path)?;
    // One model, loaded once: the pipeline (with --inbox) and `POST /v1/classify` share its
    // sessions and batches.
    let pipeline_config = settings.pipeline.clone();
    let serving = tokio::task::spawn_blocking(move || {
        ServingModel::load(package, &pipeline_config.runtime, pipeline_config.limits, pipeline_config.num_workers)
    })
    .await
    .expect("model loading panicked")?;
    let models = ModelHandle::new(serving);
    let (requests, request_inbox) = autorma_classifier::requests(models.clone());
    let index_path = args.index.clone().unwrap_or_else(|| args.out.join("state/index.sqlite"));
    let index = Arc::new(ResultIndex::open(&index_path)?);
    let caught_up = Arc::new(AtomicBool::new(false));
    let token = args.token.clone().filter(|t| !t.is_empty());
    let cors_origins = args
        .cors_origin
        .iter()
        .map(|o| match o.parse::<axum::http::HeaderValue>() {
            Ok(v) if o.starts_with("http://") || o.starts_with("https://") => Ok(v),
            _ => Err(anyhow::anyhow!(
                "invalid --cors-origin `{o}`: expected an origin such as https://bench.example.com"
            )),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let max_body_bytes = args.max_body_bytes.unwrap_or(64 << 20);
    if max_body_bytes == 0 {
        bail!("invalid `max_body_bytes` = 0 (--max-body-bytes, AUTORMA_MAX_BODY_BYTES): must be positive");
    }
    // One stop for both halves: the first Ctrl-C or SIGTERM stops the pipeline (it drains and
    // commits) and the HTTP server (it finishes the requests in flight).
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = move || {
        let mut stop_rx = stop_rx.clone();
        async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
        }
    };
    let stats = Arc::new(PipelineStats::default());
    let bucket = file.bucket.clone().unwrap_or_else(|| "local".into());
    let pipeline = match &args.inbox {
        None => {
            // No pipeline here: requests get a batcher and inference threads of their own.
            let config = settings.pipeline.clone();
            tokio::spawn(async move { autorma_classifier::serve_requests(request_inbox, &config, stats).await });
            None
        }
        Some(inbox) => {
            let run = EmbeddedRun {
                inbox: inbox.clone(),
                out: args.out.clone(),
                bucket: bucket.clone(),
                watch: true,
                poll_interval: config::poll_interval(None, file)?,
            };
            let stop = stopped();
            let settings = settings.clone();
            Some(tokio::spawn(async move {
                let model = PipelineModel::Handle(models);
                run_embedded(&run, settings, model, Some(request_inbox), stats, stop).await
            }))
        }
    };
    let (events, _) = tokio::sync::broadcast::channel(EVENT_BUFFER);
    let state = Arc::new(ServeState {
        index: index.clone(),
        out: args.out.clone(),
        inbox: args.inbox.clone(),
        photos: args.inbox.as_ref().map(|inbox| Store::Local(LocalStore::new(bucket.clone(), inbox))),
        max_body_bytes,
        events: events.clone(),
        requests,
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
    let server = axum::serve(listener, router(state, &cors_origins)).with_graceful_shutdown(stopped());
    let result = match pipeline {
        None => server.await.map_err(anyhow::Error::from),
        Some(mut pipeline) => {
            // A pipeline that stops by itself has failed: so does the server, with its error.
            tokio::select! {
                served = server => {
                    let summary = (&mut pipeline).await.expect("the pipeline panicked")?;
                    println!("pipeline stopped: classified {} photos, dead-lettered {}", summary.classified(), summary.dlq);
                    served.map_err(anyhow::Error::from)
                }
                ended = &mut pipeline => match ended.expect("the pipeline panicked") {
                    Ok(_) => Err(anyhow::anyhow!("the pipeline stopped while the server was running")),
                    Err(e) => Err(e.context("the pipeline failed")),
                },
            }
        }
    };
    feeder.abort();
    result?;
    Ok(ExitCode::SUCCESS)
}
