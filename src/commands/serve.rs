//! `autorma serve`: the HTTP API and the returns-bench page over the results index.
//!
//! Embedded: the index follows an `autorma run` output folder; with `--inbox`, that pipeline
//! runs in this process. Streaming: the index follows the topics; uploads and corrections go
//! to the bucket (and `rma.corrections`), and `POST /v1/classify` is served by the version the
//! registry's alias names, as the workers are. Embedded, `POST /v1/classify` shares the
//! in-process pipeline's model and batches; otherwise it has a batcher of its own.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use autorma_api::feed::topics::{FEED_TOPICS, TopicFeed};
use autorma_api::feed::{self, FeedEvent, FeedStatus};
use autorma_api::stores::{Broker, Photos, Stores};
use autorma_api::{EventStreams, ServeState, router};
use autorma_classifier::catalogue::Catalogue;
use autorma_classifier::serving::{ModelHandle, ServingModel};
use autorma_classifier::{PipelineModel, Requests, serve_requests};
use autorma_core::metrics::metrics;
use autorma_core::{Decision, LocalStore, Store};
use autorma_registry::ModelPackage;
use autorma_sink::index::{ResultFilter, ResultIndex};
use tokio::sync::{broadcast, watch};

use super::registry::follow_registry;
use super::run::{EmbeddedRun, run_embedded};
use super::streaming::connect;
use super::{cache_dir, model_setup};
use crate::cli::ServeArgs;
use crate::config::{self, ConfigFile, ModelSettings};
use crate::shutdown::shutdown_signal;

/// How often the output folder is looked at for new results.
const FEED_INTERVAL: Duration = Duration::from_millis(500);
/// How far back the topics are read again after a rebuild from the bucket: longer than a
/// worker's sink takes between a record's publish and its object's PUT, retries included.
const BUCKET_REBUILD_OVERLAP: chrono::TimeDelta = chrono::TimeDelta::minutes(15);
/// How often the review queue's size is measured for the metrics.
const QUEUE_GAUGE_INTERVAL: Duration = Duration::from_secs(5);
/// Results an events subscriber may fall behind by before it misses some.
const EVENT_BUFFER: usize = 4096;

pub async fn serve(args: ServeArgs, file: &ConfigFile) -> anyhow::Result<ExitCode> {
    if !args.streaming && args.out.is_none() {
        bail!("serve needs --out DIR (the output folder of `autorma run`) or --streaming");
    }
    let token = args.token.clone().filter(|t| !t.is_empty());
    refuse_exposure_without_token(&args.listen, token.is_some(), args.insecure_no_token).await?;
    let (settings, package) = model_setup(&args.pipeline)?;
    let cors_origins = cors_origins(&args.cors_origin)?;
    let max_body_bytes = usize::try_from(args.max_body_bytes).context("--max-body-bytes is too large")?;
    // One stop for everything: the first Ctrl-C or SIGTERM stops the pipeline (it drains and
    // commits) and the HTTP server (it finishes the requests in flight).
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopping = stop_rx.clone();
    let stopped = move || {
        let mut stop_rx = stop_rx.clone();
        async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
        }
    };

    let (events, _) = broadcast::channel(EVENT_BUFFER);
    let feed_status = Arc::new(FeedStatus::default());
    let started = if args.streaming {
        start_streaming(&args, file, settings, package, &events, &feed_status).await?
    } else {
        start_embedded(&args, settings, package, &events, &feed_status, stopped()).await?
    };

    let listen = &args.listen;
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on `{listen}` (set --listen or AUTORMA_LISTEN)"))?;
    let address = listener.local_addr()?;
    let allowed_hosts = autorma_api::allowed_hosts(address, &args.allowed_host);
    let state = Arc::new(ServeState {
        index: started.index,
        stores: started.stores,
        max_body_bytes,
        max_request_pixels: args.max_request_pixels,
        events,
        requests: started.requests,
        stopping: stopping.clone(),
        token,
        cors_origins,
        feed: feed_status,
        event_streams: EventStreams::new(args.max_event_streams as usize),
        allowed_hosts,
    });
    let queue_gauge = tokio::spawn(report_review_queue(state.index.clone(), state.feed.clone()));
    tracing::info!(%address, mode = if args.streaming { "streaming" } else { "embedded" },
        index = %started.index_path.display(), authentication = state.token.is_some(),
        hosts = ?state.allowed_hosts, "serving");
    println!("listening on http://{address}");
    let server = autorma_api::server::serve(listener, router(state), stopped());
    tokio::pin!(server);
    let result = match started.pipeline {
        None => {
            server.await;
            Ok(())
        }
        Some(mut pipeline) => {
            // A pipeline that stops by itself has failed: so does the server, with its error.
            tokio::select! {
                () = &mut server => {
                    let summary = (&mut pipeline).await.expect("the pipeline panicked")?;
                    println!("pipeline stopped: classified {} photos, dead-lettered {}", summary.classified(), summary.dlq);
                    Ok(())
                }
                ended = &mut pipeline => match ended.expect("the pipeline panicked") {
                    // Asked to stop, the pipeline drained before the last requests ended.
                    Ok(summary) if *stopping.borrow() => {
                        println!("pipeline stopped: classified {} photos, dead-lettered {}", summary.classified(), summary.dlq);
                        (&mut server).await;
                        Ok(())
                    }
                    Ok(_) => Err(anyhow::anyhow!("the pipeline stopped while the server was running")),
                    Err(e) => Err(e.context("the pipeline failed")),
                },
            }
        }
    };
    for task in started.tasks {
        task.abort();
    }
    queue_gauge.abort();
    result?;
    Ok(ExitCode::SUCCESS)
}

/// A server other machines can reach needs a token, unless the operator says the network is
/// trusted; checked before anything is loaded.
async fn refuse_exposure_without_token(listen: &str, has_token: bool, insecure: bool) -> anyhow::Result<()> {
    let addresses: Vec<std::net::SocketAddr> =
        tokio::net::lookup_host(listen).await.with_context(|| format!("cannot resolve --listen `{listen}`"))?.collect();
    let Some(exposed) = addresses.iter().find(|a| !a.ip().is_loopback()).filter(|_| !has_token) else {
        return Ok(());
    };
    if !insecure {
        bail!(
            "serve would listen on {exposed}, which other machines can reach, with no --token: anyone who \
             reaches it could upload photos, correct labels and read every result. Give --token \
             (AUTORMA_API_TOKEN), or --insecure-no-token when the network itself is trusted"
        );
    }
    tracing::warn!(address = %exposed, "listening beyond this machine without a token (--insecure-no-token)");
    Ok(())
}

/// What a mode starts besides the server.
struct Started {
    index: Arc<ResultIndex>,
    index_path: PathBuf,
    stores: Stores,
    requests: Requests,
    /// The tasks feeding the index, following the registry.
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Embedded with --inbox: the pipeline.
    pipeline: Option<tokio::task::JoinHandle<anyhow::Result<autorma_classifier::PipelineSummary>>>,
}

async fn start_embedded(
    args: &ServeArgs,
    settings: ModelSettings,
    package: Arc<ModelPackage>,
    events: &broadcast::Sender<FeedEvent>,
    feed_status: &Arc<FeedStatus>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Started> {
    let out = args.out.clone().expect("checked at start");
    if args.inbox.is_some() {
        std::fs::create_dir_all(&out).with_context(|| format!("cannot create --out `{}`", out.display()))?;
    } else if !out.is_dir() {
        bail!("--out `{}` is not a folder (the output folder of `autorma run`, or give --inbox)", out.display());
    }
    let index_path = args.index.clone().unwrap_or_else(|| out.join("state/index.sqlite"));
    let index = Arc::new(ResultIndex::open(&index_path)?);
    // The name `run` records for its inbox, by default.
    let bucket = args.streaming_args.bucket.clone().unwrap_or_else(|| "local".into());
    // One model, loaded once: the pipeline (with --inbox) and `POST /v1/classify` share its
    // sessions and batches.
    let config = settings.pipeline.clone();
    let catalogue = settings.pipeline.catalogue.clone();
    let serving = tokio::task::spawn_blocking(move || {
        ServingModel::load(package, &config.runtime, config.limits, config.num_workers)
    })
    .await
    .expect("model loading panicked")?;
    let models = ModelHandle::new(serving);
    let (requests, request_inbox) =
        autorma_classifier::requests(models.clone(), catalogue.clone(), settings.pipeline.fetch_concurrency);
    let pipeline = match &args.inbox {
        None => {
            // No pipeline here: requests get a batcher and inference threads of their own.
            let config = settings.pipeline.clone();
            tokio::spawn(async move { serve_requests(request_inbox, &config, Arc::default()).await });
            None
        }
        Some(inbox) => {
            let run = EmbeddedRun {
                inbox: inbox.clone(),
                out: out.clone(),
                bucket: bucket.clone(),
                watch: true,
                poll_interval: Duration::from_millis(args.watch_args.poll_interval_ms),
                claims: Arc::default(),
            };
            Some(tokio::spawn(async move {
                let model = PipelineModel::Handle(models);
                run_embedded(&run, settings, model, Some(request_inbox), Arc::default(), stop).await
            }))
        }
    };
    let feeder = tokio::spawn(feed::folder::follow_out_folder(
        out.clone(),
        index.clone(),
        FEED_INTERVAL,
        feed_status.clone(),
        events.clone(),
    ));
    // Uploads go to the inbox's top folder: the pipeline scans all of it.
    let photos = args.inbox.as_ref().map(|inbox| Photos {
        store: Store::Local(LocalStore::new(bucket.clone(), inbox)),
        upload_prefix: String::new(),
    });
    let corrections = Store::Local(LocalStore::new(bucket.clone(), out));
    let stores = Stores { bucket, photos, corrections, broker: None, catalogue };
    Ok(Started { index, index_path, stores, requests, tasks: vec![feeder], pipeline })
}

async fn start_streaming(
    args: &ServeArgs,
    file: &ConfigFile,
    settings: ModelSettings,
    package: Arc<ModelPackage>,
    events: &broadcast::Sender<FeedEvent>,
    feed_status: &Arc<FeedStatus>,
) -> anyhow::Result<Started> {
    let streaming = config::resolve_streaming(&args.streaming_args, file)?;
    let group = args.group.clone();
    let inbox_prefix = args.inbox_prefix.clone();
    let store = connect(&streaming, &FEED_TOPICS).await?;
    let index_path = args.index.clone().unwrap_or_else(|| cache_dir().join(format!("index-{group}.sqlite")));
    if args.rebuild.is_some() {
        remove_index(&index_path)?;
    }
    let index = Arc::new(ResultIndex::open(&index_path)?);
    if args.rebuild.as_deref() == Some("bucket") {
        // The topics are then read from a while before the listing: a record published just
        // before it may have its object written just after (the sink publishes, then PUTs).
        let since = chrono::Utc::now() - BUCKET_REBUILD_OVERLAP;
        let (kafka, group) = (streaming.kafka.clone(), group.clone());
        let positions = tokio::task::spawn_blocking(move || TopicFeed::positions_at(&kafka, &group, since))
            .await
            .expect("looking up the topics' positions panicked")?;
        feed::bucket::rebuild(&store, &streaming.bucket, &index, positions).await?;
    }
    let (kafka, feed_group, feed_index) = (streaming.kafka.clone(), group.clone(), index.clone());
    let topic_feed = tokio::task::spawn_blocking(move || TopicFeed::connect(&kafka, &feed_group, &feed_index))
        .await
        .expect("connecting the feed panicked")?;
    let feeder = tokio::spawn(topic_feed.run(index.clone(), feed_status.clone(), events.clone()));
    // The version the workers serve, followed as it moves.
    let (models, follower) =
        follow_registry("serve", &args.follow, args.model_cache.clone(), &streaming, &store, &settings, package)
            .await?;
    let following = tokio::spawn(follower.run(models.clone(), std::future::pending()));
    let store = Store::S3(store);
    let catalogue = settings.pipeline.catalogue.clone();
    let catalogue =
        catalogue.unwrap_or_else(|| Arc::new(Catalogue::in_bucket(store.clone(), streaming.bucket.clone())));
    let (requests, request_inbox) =
        autorma_classifier::requests(models, Some(catalogue.clone()), settings.pipeline.fetch_concurrency);
    let config = settings.pipeline.clone();
    tokio::spawn(async move { serve_requests(request_inbox, &config, Arc::default()).await });
    let producer = streaming.kafka.producer().context("cannot create the Kafka producer")?;
    let stores = Stores {
        catalogue: Some(catalogue),
        bucket: streaming.bucket,
        photos: Some(Photos { store: store.clone(), upload_prefix: inbox_prefix }),
        corrections: store,
        broker: Some(Broker { kafka: streaming.kafka, producer, topics: &FEED_TOPICS }),
    };
    Ok(Started { index, index_path, stores, requests, tasks: vec![feeder, following], pipeline: None })
}

/// The review queue's size in the metrics, every [`QUEUE_GAUGE_INTERVAL`] once the index has
/// caught up (before, it would report a queue still being read).
async fn report_review_queue(index: Arc<ResultIndex>, feed: Arc<FeedStatus>) {
    let queue = ResultFilter { decision: Some(Decision::Review), uncorrected: true, ..ResultFilter::default() };
    while !feed.is_caught_up() {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    loop {
        let (index, queue) = (index.clone(), queue.clone());
        match tokio::task::spawn_blocking(move || index.query(&queue, 1, 1)).await.expect("counting panicked") {
            Ok(page) => metrics().review_queue.record(page.total, &[]),
            Err(e) => tracing::warn!(error = %e, "cannot count the review queue"),
        }
        tokio::time::sleep(QUEUE_GAUGE_INTERVAL).await;
    }
}

/// Deletes the index file and its SQLite companions (`-wal`, `-shm`).
fn remove_index(path: &Path) -> anyhow::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot delete the index `{}`", path.display())),
        }
    }
    tracing::info!(index = %path.display(), "rebuilding the results index");
    Ok(())
}

fn cors_origins(origins: &[String]) -> anyhow::Result<Vec<axum::http::HeaderValue>> {
    origins
        .iter()
        .map(|o| match o.parse::<axum::http::HeaderValue>() {
            Ok(v) if o.starts_with("http://") || o.starts_with("https://") => Ok(v),
            _ => Err(anyhow::anyhow!(
                "invalid --cors-origin `{o}`: expected an origin such as https://bench.example.com"
            )),
        })
        .collect()
}
