//! The command line: each option's one definition (type, range, environment variable,
//! default). The config file (`--config`) gives a value to any flag by its name
//! ([`crate::config::file`]); a flag beats the environment, which beats the file, which beats
//! the default. An on/off flag also takes `=false` (`--json=false`), so the command line can
//! turn off what the file turned on.

use std::path::PathBuf;

use autorma_classifier::inference::ExecutionProvider;
use autorma_classifier::pipeline::batcher::BatcherConfig;
use autorma_classifier::preprocess::DecodeLimits;
use autorma_core::shadow::Bounds;
use autorma_ingest::notify::KeyEncoding;
use clap::{ArgAction, Args, Parser, Subcommand};

/// The alias the workers serve, promotions move and replays compare against.
const DEFAULT_ALIAS: &str = "production";

/// Where photos land in the bucket: what ingest watches, uploads go to and replays list.
const DEFAULT_INBOX_PREFIX: &str = "inbox/";

#[derive(Debug, Parser)]
#[command(
    name = "autorma",
    version,
    about = "Sorts photos of returned items into casual_shoes, handbags, shirts, tops and watches.",
    long_about = "Sorts photos of returned items into casual_shoes, handbags, shirts, tops and watches.\n\n\
Before the first run, install ONNX Runtime once with `infra/setup/onnxruntime.sh` (`--gpu` for a\n\
build with `--features cuda`).\n\
Options can also be set in a TOML file (--config: each flag's name as its key, with _ for -;\n\
a [command] table for one command's) or as AUTORMA_* environment variables; a flag beats the\n\
environment, which beats the file, which beats the default."
)]
pub struct Cli {
    /// TOML file of option values: each flag's name as its key (`_` for `-`), e.g.
    // Read before the command line is parsed (config::config_path): declared here for --help.
    /// `batch_size = 16`; a table named after a command (`[worker]`) for its own; the
    /// `[kafka_properties]` table for librdkafka.
    #[arg(long, global = true, env = "AUTORMA_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log filter, e.g. `info` or `autorma_classifier=debug` (default: info for autorma).
    #[arg(long, global = true, env = "AUTORMA_LOG", value_name = "FILTER")]
    pub log: Option<String>,
    /// Long-running commands (run, worker, ingest, serve) and replay export metrics by OTLP/HTTP
    /// to this base URL, e.g. http://127.0.0.1:9090/api/v1/otlp for Prometheus (`/v1/metrics` is
    /// added); OTEL_EXPORTER_OTLP_METRICS_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT work too.
    /// None: no metrics export.
    #[arg(long, global = true, value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// Long-running commands and replay export traces (one per photo: ingest -> worker ->
    /// sink) by OTLP/HTTP to this base URL, e.g. http://127.0.0.1:4318 for Jaeger (`/v1/traces` is added);
    /// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT work too. None: no
    /// traces.
    #[arg(long, global = true, value_name = "URL")]
    pub otlp_traces_endpoint: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Classify every photo in a folder (the embedded pipeline): one result file per photo.
    ///
    /// Writes <out>/results/<path>.json per photo, <out>/results.csv, and <out>/dlq/<path>.json
    /// for each file that is not a usable photo (with the reason). Killed at any moment and
    /// started again with the same --out, it finishes the rest without redoing or duplicating
    /// anything. With --watch it keeps classifying new photos until Ctrl-C.
    Run(RunArgs),
    /// Classify the given photos and print label, confidence and decision for each.
    Classify(ClassifyArgs),
    /// Measure accuracy on a class-folder data set (<data>/<class>/<photo>) through the
    /// production preprocessing and inference path.
    Eval(EvalArgs),
    /// Measure, in one run, the end-to-end img/s of `autorma run` and the model-only img/s.
    Bench(BenchArgs),
    /// Streaming: turn the bucket's notifications (topic rma.uploads.raw) into one ItemEvent
    /// per photo on rma.items, and reconcile what notifications missed.
    ///
    /// Keeps ObjectCreated events under the inbox prefix whose content type or extension is an
    /// image; a malformed notification goes to rma.dlq with the reason and its raw payload.
    /// Input offsets are committed only after rma.items acknowledged. At start and every
    /// --reconcile-interval-s it lists the inbox and sends an ItemEvent for every photo older
    /// than --reconcile-grace-s that has neither results/<key>.json nor dlq/<key>.json (a
    /// broker outage makes the S3 server drop notifications). Runs until Ctrl-C or SIGTERM.
    Ingest(IngestArgs),
    /// Streaming: classify the photos of rma.items (and, with what they leave over, of
    /// rma.items.replay) as one member of a consumer group, with the model version a registry
    /// alias names.
    ///
    /// Fetches each photo from the bucket, micro-batches it through the model and writes its
    /// Result to rma.results (and rma.review when it needs a person) and then to
    /// results/<key>.json in the bucket; a photo that cannot be used goes to rma.dlq and
    /// dlq/<key>.json with its reason. Offsets are committed only behind the sink, so a crash
    /// loses nothing; a redelivered photo that already has its result is not classified
    /// again. One worker per partition of rma.items at most does work; more wait as standbys.
    /// The model comes from the registry (s3://<bucket> unless --registry): the alias's
    /// version, checked on probe photos and swapped in between batches when the alias moves
    /// (polled every --model-poll-s, or at once on SIGHUP). A fresh registry is seeded with
    /// --model (the built-in fashion5 package by default) as version 1 of `production`.
    /// Runs until Ctrl-C or SIGTERM (then it finishes the photos in flight and commits).
    Worker(WorkerArgs),
    /// The model registry: versions and aliases of a model, in the bucket (s3://BUCKET) or a
    /// folder.
    ///
    /// Layout: models/<name>/versions/<n>/ (model.onnx, model.json, MODEL_CARD.md),
    /// models/<name>/aliases/<alias>.json, models/<name>/audit/ (who changed what, when, why).
    /// Workers follow an alias (`production` by default) and swap to the version it names
    /// between batches, after checking it on built-in probe photos.
    Model(ModelArgs),
    /// Classify again, with the model now behind an alias, the photos another model classified.
    ///
    /// Streaming (default): lists the bucket's inbox (--prefix, --since, --until), skips the
    /// photos whose result already comes from the alias's version (unless --all), and writes
    /// an ItemEvent per remaining photo to rma.items.replay at --rate per second. Workers serve
    /// that topic only with what live photos leave over. Prints listed, skipped and sent.
    ///
    /// Embedded (--out DIR): re-classifies, with --model (or --registry's alias), the photos
    /// whose result in DIR another model made; --inbox is the folder `autorma run` read.
    Replay(ReplayArgs),
    /// The HTTP API and the returns-bench page (http://ADDR/) over a results index (SQLite).
    ///
    /// Embedded (--out DIR): the results of an `autorma run --out DIR`, followed as they are
    /// written; with --inbox, it runs that pipeline itself and takes uploads. Streaming
    /// (--streaming): the index follows rma.results, rma.review, rma.dlq and rma.corrections;
    /// uploads go to the bucket's inbox prefix, corrections to the bucket and rma.corrections.
    ///
    /// Routes: POST /v1/classify (photos answered in the request), POST /v1/uploads
    /// (multipart, or a raw image with ?name=), GET /v1/results (filters: label, decision,
    /// since, until, prefix; page, per_page; newest first), /v1/results/{key},
    /// /v1/results.csv, /v1/photos/{key}, GET /v1/review (the queue), POST /v1/review/{key}
    /// ({"label": ...}), GET /v1/events (server-sent events), /v1/model, /healthz, /readyz,
    /// /openapi.json. Errors are JSON {"error": {"code", "message"}}. With --token, every
    /// route but /healthz and the page needs `Authorization: Bearer <token>`. The index is
    /// derived: delete it (or give --rebuild) and it is rebuilt at the next start.
    Serve(ServeArgs),
    /// People's corrections from the review queue, as training data.
    Corrections(CorrectionsArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Embedded mode: the output folder whose results are served (that of `autorma run`);
    /// needed unless --streaming.
    #[arg(long, value_name = "DIR", conflicts_with = "streaming")]
    pub out: Option<PathBuf>,
    /// Embedded mode: also run the pipeline on this folder (as `autorma run --watch --inbox
    /// DIR --out OUT`), and store uploads (POST /v1/uploads) in it.
    #[arg(long, value_name = "DIR", requires = "out")]
    pub inbox: Option<PathBuf>,
    #[command(flatten)]
    pub watch_args: WatchArgs,
    /// Streaming mode: the index follows the topics, uploads and corrections go to the bucket.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value_t = false,
        default_missing_value = "true", action = ArgAction::Set)]
    pub streaming: bool,
    /// Streaming: the index's consumer group (offsets committed after each index write, so its
    /// lag is the index's); give each serve process its own
    #[arg(
        long,
        env = "AUTORMA_SERVE_GROUP",
        value_name = "NAME",
        requires = "streaming",
        default_value = "autorma-serve"
    )]
    pub group: String,
    /// Streaming: uploads are stored under this prefix, where ingest looks
    #[arg(long, env = "AUTORMA_INBOX_PREFIX", value_name = "PREFIX", requires = "streaming", default_value = DEFAULT_INBOX_PREFIX)]
    pub inbox_prefix: String,
    /// Start from an empty index, fed again from `topics` (from their beginning) or from the
    /// `bucket`'s results/ and corrections/ (then the topics from their current end): the
    /// bucket when the topics no longer hold everything. Embedded mode always re-reads --out.
    #[arg(long, value_name = "FROM", value_parser = ["topics", "bucket"], requires = "streaming")]
    pub rebuild: Option<String>,
    /// Streaming: where downloaded model versions are kept [default: $XDG_CACHE_HOME/autorma/models]
    #[arg(long, env = "AUTORMA_MODEL_CACHE", value_name = "DIR")]
    pub model_cache: Option<PathBuf>,
    /// Streaming: `POST /v1/classify` is served by the version the registry's alias names
    /// (as the workers are), followed as it moves.
    #[command(flatten)]
    pub follow: FollowArgs,
    #[command(flatten)]
    pub streaming_args: StreamingArgs,
    /// Web origin allowed to call the API from a browser (repeat for more), e.g.
    /// https://bench.example.com. None by default: CORS is off, only same-origin pages may.
    #[arg(long, value_name = "ORIGIN")]
    pub cors_origin: Vec<String>,
    /// Largest request body, in bytes (uploads, classify)
    #[arg(long, env = "AUTORMA_MAX_BODY_BYTES", value_name = "N", default_value_t = 64 << 20,
        value_parser = clap::value_parser!(u64).range(1..=1 << 34))]
    pub max_body_bytes: u64,
    /// Most pixels the photos of one POST /v1/classify may decode into (a JPEG counted at the
    /// scale it is decoded at), else 413 too_many_pixels: 100 million is about a second of CPU,
    /// a hundred phone photos
    #[arg(long, env = "AUTORMA_MAX_REQUEST_PIXELS", value_name = "N", default_value_t = 100_000_000,
        value_parser = clap::value_parser!(u64).range(1..))]
    pub max_request_pixels: u64,
    /// Most /v1/events streams open at once (each open page holds one), else 503
    /// too_many_streams
    #[arg(long, env = "AUTORMA_MAX_EVENT_STREAMS", value_name = "N", default_value_t = 64,
        value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub max_event_streams: u32,
    /// Address to listen on
    #[arg(long, env = "AUTORMA_LISTEN", value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// The results index file [default: <out>/state/index.sqlite; streaming:
    /// $XDG_CACHE_HOME/autorma/index-<group>.sqlite]
    #[arg(long, value_name = "FILE")]
    pub index: Option<PathBuf>,
    /// Bearer token every route but /healthz and the page then needs (none: no authentication;
    /// required when --listen is not a loopback address, unless --insecure-no-token)
    #[arg(long, env = "AUTORMA_API_TOKEN", value_name = "TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Listen on a non-loopback address without a token: anyone who reaches the port may
    /// upload, correct labels and read every result
    #[arg(long, env = "AUTORMA_INSECURE_NO_TOKEN", value_name = "BOOL", num_args = 0..=1,
        default_missing_value = "true", action = ArgAction::Set, default_value_t = false)]
    pub insecure_no_token: bool,
    /// Host name clients reach the server by (repeat for more), besides localhost, 127.0.0.1,
    /// [::1] and --listen's own address: a request naming another Host is refused (a web page
    /// cannot then reach the server by rebinding a name of its own to this address)
    #[arg(long, env = "AUTORMA_ALLOWED_HOSTS", value_name = "HOST", value_delimiter = ',')]
    pub allowed_host: Vec<String>,
    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// Where the registry is: `s3://BUCKET` (the S3 settings below reach it) or a folder
    /// [default: s3://<--bucket> for streaming commands]
    #[arg(long, env = "AUTORMA_REGISTRY", value_name = "URL|DIR")]
    pub registry: Option<String>,
    /// Model name in the registry
    #[arg(long, env = "AUTORMA_MODEL_NAME", value_name = "NAME", default_value = "fashion5")]
    pub model_name: String,
}

#[derive(Debug, Args)]
pub struct ModelArgs {
    #[command(subcommand)]
    pub action: ModelAction,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[command(flatten)]
    pub streaming: StreamingArgs,
}

#[derive(Debug, Subcommand)]
pub enum ModelAction {
    /// Check a package (checksum, preprocessing, ONNX Runtime loads it, its output matches the
    /// class list, probe photos give probabilities) and store it as the next version.
    Push {
        /// Package folder: model.onnx + model.json (+ MODEL_CARD.md).
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        #[command(flatten)]
        change: ChangeArgs,
        /// Path of libonnxruntime.so used for the check [default: where infra/setup/onnxruntime.sh installs it]
        #[arg(long, env = "AUTORMA_ORT_LIBRARY", value_name = "PATH")]
        ort_library: Option<PathBuf>,
    },
    /// List the versions with their checksum, who pushed them, and the aliases on each.
    List {
        /// Print JSON.
        #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value_t = false,
            default_missing_value = "true", action = ArgAction::Set)]
        json: bool,
    },
    /// Show one version's record (checksum, who pushed it, aliases) and its model.json, as JSON.
    Show {
        #[arg(value_name = "VERSION")]
        version: u32,
    },
    /// Point an alias at a version (workers following it swap to it). With `--gate`, only when
    /// the version, run as the shadow, met the bounds against the version the alias names now
    /// (read from rma.shadow, as `compare` prints them).
    Promote {
        #[arg(value_name = "VERSION")]
        version: u32,
        /// The alias, e.g. `production`, `staging` or `shadow`.
        #[arg(long, default_value = DEFAULT_ALIAS)]
        alias: String,
        /// Promote only if the shadow's figures meet the bounds below
        #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value_t = false,
            default_missing_value = "true", action = ArgAction::Set)]
        gate: bool,
        #[command(flatten)]
        bounds: GateArgs,
        #[command(flatten)]
        change: ChangeArgs,
    },
    /// How a version run as the shadow compares with production on the same photos (read
    /// from rma.shadow): agreement overall and per class, review shares, label mix, its time,
    /// and whether it meets the gate's bounds.
    Compare {
        /// The shadow version [default: the one the shadow alias names]
        #[arg(value_name = "VERSION")]
        version: Option<u32>,
        /// The alias the shadow is compared with (its version now)
        #[arg(long, default_value = DEFAULT_ALIAS)]
        alias: String,
        /// The alias naming the shadow version, when VERSION is not given
        #[arg(long, default_value = "shadow")]
        shadow_alias: String,
        #[command(flatten)]
        bounds: GateArgs,
        /// Print JSON.
        #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value_t = false,
            default_missing_value = "true", action = ArgAction::Set)]
        json: bool,
    },
    /// Point an alias back at the version it held before the last promotion.
    Rollback {
        #[arg(long, default_value = DEFAULT_ALIAS)]
        alias: String,
        #[command(flatten)]
        change: ChangeArgs,
    },
    /// The audit trail: pushes, promotions, rollbacks and workers' refusals, oldest first.
    History {
        /// Print JSON.
        #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value_t = false,
            default_missing_value = "true", action = ArgAction::Set)]
        json: bool,
    },
}

/// Who makes a change and why, for the audit trail.
#[derive(Debug, Args)]
pub struct ChangeArgs {
    /// Who makes the change [default: $USER]
    #[arg(long, value_name = "NAME")]
    pub by: Option<String>,
    /// Why, in a few words (kept in the audit trail).
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
}

#[derive(Debug, Args)]
pub struct CorrectionsArgs {
    #[command(subcommand)]
    pub action: CorrectionsAction,
}

#[derive(Debug, Subcommand)]
pub enum CorrectionsAction {
    /// Write every corrected photo into a class-folder set: <out>/<label>/<photo>, and
    /// <out>/manifest.csv (file, label, key, etag, by, corrected_at, model_label, model_name,
    /// model_version).
    ///
    /// From the bucket's corrections/ and inbox (default), or embedded from --results (the
    /// output folder of `autorma run` or `serve --out`) and --inbox. A photo replaced since it
    /// was corrected (its etag moved), gone, or not an image is skipped and said so. An earlier
    /// export at --out is replaced whole. Train with it beside the data set's train split:
    /// `python -m autorma_models.train --extra <out> ...` (models/).
    Export(ExportArgs),
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Where the set is written (a new or empty folder, or an earlier export)
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Embedded mode: the output folder whose corrections/ are exported
    #[arg(long, value_name = "DIR", requires = "inbox")]
    pub results: Option<PathBuf>,
    /// Embedded mode: the folder the photos were read from
    #[arg(long, value_name = "DIR", requires = "results")]
    pub inbox: Option<PathBuf>,
    #[command(flatten)]
    pub file_limit: FileLimitArgs,
    #[command(flatten)]
    pub streaming: StreamingArgs,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Key prefix of the photos to replay
    #[arg(long, value_name = "PREFIX", default_value = DEFAULT_INBOX_PREFIX)]
    pub prefix: String,
    /// Only photos last modified at or after this time (RFC 3339 or YYYY-MM-DD, UTC).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only photos last modified before this time (RFC 3339 or YYYY-MM-DD, UTC).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Replay every listed photo, even those the current version already classified.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value_t = false,
        default_missing_value = "true", action = ArgAction::Set)]
    pub all: bool,
    /// Most photos sent per second to rma.items.replay
    #[arg(long, env = "AUTORMA_REPLAY_RATE", value_name = "N", default_value_t = 200.0, value_parser = positive_rate)]
    pub rate: f64,
    /// The alias whose version is current
    #[arg(long, env = "AUTORMA_MODEL_ALIAS", value_name = "ALIAS", default_value = DEFAULT_ALIAS)]
    pub alias: String,
    /// Show no progress bar.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value_t = false,
        default_missing_value = "true", action = ArgAction::Set)]
    pub no_progress: bool,
    /// Embedded mode: the output folder of an earlier `autorma run`.
    #[arg(long, value_name = "DIR", requires = "inbox")]
    pub out: Option<PathBuf>,
    /// Embedded mode: the folder that run read.
    #[arg(long, value_name = "DIR", requires = "out")]
    pub inbox: Option<PathBuf>,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[command(flatten)]
    pub streaming: StreamingArgs,
    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

/// How a long-running command follows a registry alias.
#[derive(Debug, Args)]
pub struct FollowArgs {
    /// The alias whose version is served
    #[arg(long, env = "AUTORMA_MODEL_ALIAS", value_name = "ALIAS", default_value = DEFAULT_ALIAS)]
    pub alias: String,
    /// Seconds between two looks at the alias; SIGHUP looks at once
    #[arg(long, env = "AUTORMA_MODEL_POLL_S", value_name = "S", default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub model_poll_s: u64,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Folder of photos (jpg, png, webp; scanned recursively; dotfiles are ignored).
    #[arg(long, value_name = "DIR")]
    pub inbox: PathBuf,
    /// Output folder: results/, dlq/, results.csv and state/ (event log + checkpoint).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// After the backlog, keep watching the inbox for new photos until Ctrl-C.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value_t = false,
        default_missing_value = "true", action = ArgAction::Set)]
    pub watch: bool,
    #[command(flatten)]
    pub watch_args: WatchArgs,
    /// Bucket name recorded in results and events for this inbox
    #[arg(long, env = "AUTORMA_BUCKET", value_name = "NAME", default_value = "local")]
    pub bucket: String,
    /// What each returned photo is claimed to be: a CSV with a header, `key` (the photo's path in
    /// the inbox) and `expected_label`, optionally `sku` and `rma_id`. A photo the model
    /// confidently sees as another class goes to review as `wrong_item`; a photo not in the
    /// file is classified as without it.
    #[arg(long, value_name = "FILE")]
    pub claims: Option<PathBuf>,
    /// Show no progress bar.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value_t = false,
        default_missing_value = "true", action = ArgAction::Set)]
    pub no_progress: bool,
    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

#[derive(Debug, Args)]
pub struct ClassifyArgs {
    /// Photos to classify.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Print one JSON object per photo instead of a table.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value_t = false,
        default_missing_value = "true", action = ArgAction::Set)]
    pub json: bool,
    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Data set folder: one sub-folder per class, named as the model's classes.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Also judge the wrong-item check: each photo claims its own class, except a
    /// `--wrong-rate` share (chosen by a hash of the photo's path, so the same on every run)
    /// that claims another; prints precision, recall and the share of honest returns flagged.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value_t = false,
        default_missing_value = "true", action = ArgAction::Set)]
    pub claims: bool,
    /// Share of wrong-item claims in `--claims`' set.
    #[arg(long, default_value_t = 0.1, value_parser = parse_share, requires = "claims")]
    pub wrong_rate: f64,
    /// Print the report as JSON.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value_t = false,
        default_missing_value = "true", action = ArgAction::Set)]
    pub json: bool,
    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Folder of photos (scanned recursively), e.g. a data set split.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Batch size of the model-only measurement.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub model_batch_size: u64,
    /// Rounds of each measurement, interleaved (end-to-end, model-only, end-to-end, ...) so
    /// both see the same machine; the report gives each one's median.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub rounds: u64,
    /// Also run rounds with a shadow model (the same package) on this share of the photos,
    /// interleaved with the others, to measure what the shadow costs the production path
    /// (0: none)
    #[arg(long, value_name = "SHARE", default_value_t = 0.0, value_parser = parse_share)]
    pub shadow_sample: f64,
    /// Print the report as JSON.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value_t = false,
        default_missing_value = "true", action = ArgAction::Set)]
    pub json: bool,
    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

/// How an embedded pipeline watches its inbox (`run --watch`, `serve --inbox`).
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Milliseconds between two scans of the inbox (`run --watch`, `serve --inbox`)
    #[arg(long, env = "AUTORMA_POLL_INTERVAL_MS", value_name = "MS", default_value_t = 500,
        value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub poll_interval_ms: u64,
}

/// Where the streaming engines are (Kafka, S3), shared by `ingest` and `worker`.
/// S3 credentials come from the standard AWS chain: AWS_ACCESS_KEY_ID and
/// AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or an instance role.
#[derive(Debug, Args)]
pub struct StreamingArgs {
    /// Kafka bootstrap servers, `host:port[,host:port]`
    #[arg(long, env = "AUTORMA_KAFKA_BROKERS", value_name = "LIST", default_value = "127.0.0.1:9092")]
    pub brokers: String,
    /// S3 endpoint URL, e.g. http://127.0.0.1:19000 for MinIO or versitygw [default: AWS S3]
    #[arg(long, env = "AUTORMA_S3_ENDPOINT", value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// S3 region [default: AWS_REGION or the AWS profile's, else us-east-1]
    #[arg(long, env = "AUTORMA_S3_REGION", value_name = "REGION")]
    pub s3_region: Option<String>,
    /// Path-style S3 addressing, which MinIO and versitygw need [default: true when
    /// --s3-endpoint is set, else false]
    #[arg(long, env = "AUTORMA_S3_PATH_STYLE", value_name = "BOOL")]
    pub s3_path_style: Option<bool>,
    /// The bucket photos land in; results/ and dlq/ are written beside inbox/ [default: returns;
    /// `serve` without --streaming: local, as `run`]
    #[arg(long, env = "AUTORMA_BUCKET", value_name = "NAME")]
    pub bucket: Option<String>,
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Only keys under this prefix are photos to classify
    #[arg(long, env = "AUTORMA_INBOX_PREFIX", value_name = "PREFIX", default_value = DEFAULT_INBOX_PREFIX)]
    pub inbox_prefix: String,
    /// How the S3 server writes keys in its notifications: `url` (AWS S3, MinIO) or `raw`
    /// (versitygw)
    #[arg(long, env = "AUTORMA_KEY_ENCODING", value_name = "ENCODING", default_value = "url")]
    pub key_encoding: KeyEncoding,
    /// Consumer group of the ingest services on rma.uploads.raw
    #[arg(long, env = "AUTORMA_INGEST_GROUP", value_name = "NAME", default_value = "autorma-ingest")]
    pub group: String,
    /// Seconds between two reconciliations of the inbox (the first runs at start)
    #[arg(long, env = "AUTORMA_RECONCILE_INTERVAL_S", value_name = "S", default_value_t = 300,
        value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub reconcile_interval_s: u64,
    /// A photo younger than this many seconds is left to its notification
    #[arg(long, env = "AUTORMA_RECONCILE_GRACE_S", value_name = "S", default_value_t = 120,
        value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub reconcile_grace_s: u64,
    /// When to replay the inbox against the production model: a cron expression (minute hour
    /// day month weekday), or `off`
    #[arg(long, env = "AUTORMA_REPLAY_SCHEDULE", value_name = "CRON", default_value = "0 2 * * *")]
    pub replay_schedule: String,
    /// Time zone of --replay-schedule, an IANA name such as Europe/Berlin
    #[arg(long, env = "AUTORMA_REPLAY_TZ", value_name = "TZ", default_value = "UTC")]
    pub replay_tz: String,
    /// Also replay after each promotion of the alias (looked at every --model-poll-s).
    #[arg(long, env = "AUTORMA_REPLAY_ON_PROMOTION", value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value_t = false,
        default_missing_value = "true", action = ArgAction::Set)]
    pub replay_on_promotion: bool,
    /// Most photos per second a scheduled replay sends
    #[arg(long, env = "AUTORMA_REPLAY_RATE", value_name = "N", default_value_t = 200.0, value_parser = positive_rate)]
    pub replay_rate: f64,
    #[command(flatten)]
    pub follow: FollowArgs,
    #[command(flatten)]
    pub streaming: StreamingArgs,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Consumer group of the workers on rma.items
    #[arg(long, env = "AUTORMA_WORKER_GROUP", value_name = "NAME", default_value = "autorma-workers")]
    pub group: String,
    /// Replay photos in the pipeline at once: the most a live photo finds ahead of it while a
    /// replay runs. 4 kept live latency within 1.2x of idle on 2 cores; raise it on a GPU,
    /// where replays need big batches
    #[arg(long, env = "AUTORMA_BULK_INFLIGHT", value_name = "N", default_value_t = 4,
        value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub bulk_inflight: u64,
    /// Where downloaded model versions are kept [default: $XDG_CACHE_HOME/autorma/models]
    #[arg(long, env = "AUTORMA_MODEL_CACHE", value_name = "DIR")]
    pub model_cache: Option<PathBuf>,
    #[command(flatten)]
    pub follow: FollowArgs,
    #[command(flatten)]
    pub shadow: ShadowArgs,
    #[command(flatten)]
    pub streaming: StreamingArgs,
    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

/// A worker's shadow model and its watch of promotions.
#[derive(Debug, Args)]
pub struct ShadowArgs {
    /// Share of photos also run on the shadow model (the `--shadow-alias` version, or a
    /// guard after a promotion), off the results' path; 0: no shadow and no watch
    #[arg(long, env = "AUTORMA_SHADOW_SAMPLE", value_name = "SHARE", default_value_t = 0.1, value_parser = parse_share)]
    pub shadow_sample: f64,
    /// The alias whose version runs as the shadow (unset alias: none runs)
    #[arg(long, env = "AUTORMA_SHADOW_ALIAS", value_name = "ALIAS", default_value = "shadow")]
    pub shadow_alias: String,
    /// Seconds a promoted version is watched against the one before it, on the shadow sample,
    /// by the workers serving when it came; past the bounds below, the alias is rolled back. 0: no watch
    #[arg(long, env = "AUTORMA_WATCH_S", value_name = "S", default_value_t = 1800,
        value_parser = clap::value_parser!(u64).range(0..=7 * 86_400))]
    pub watch_s: u64,
    /// Photos a watch compares before it may roll back
    #[arg(long, env = "AUTORMA_WATCH_MIN_PHOTOS", value_name = "N", default_value_t = Bounds::WATCH.min_photos,
        value_parser = clap::value_parser!(u64).range(1..))]
    pub watch_min_photos: u64,
    /// Least share of photos on which the promoted version gives the previous one's label
    #[arg(long, env = "AUTORMA_WATCH_MIN_AGREEMENT", value_name = "SHARE",
        default_value_t = Bounds::WATCH.min_agreement, value_parser = parse_share)]
    pub watch_min_agreement: f64,
    /// Most the promoted version's review share may exceed the previous one's (0.1 = 10 points)
    #[arg(long, env = "AUTORMA_WATCH_MAX_REVIEW_INCREASE", value_name = "SHARE",
        default_value_t = Bounds::WATCH.max_review_increase, value_parser = parse_share)]
    pub watch_max_review_increase: f64,
    /// Most the label mix may move (total variation distance of the label shares)
    #[arg(long, env = "AUTORMA_WATCH_MAX_LABEL_SHIFT", value_name = "SHARE",
        default_value_t = Bounds::WATCH.max_label_shift, value_parser = parse_share)]
    pub watch_max_label_shift: f64,
}

impl ShadowArgs {
    pub fn bounds(&self) -> Bounds {
        Bounds {
            min_photos: self.watch_min_photos,
            min_agreement: self.watch_min_agreement,
            max_review_increase: self.watch_max_review_increase,
            max_label_shift: self.watch_max_label_shift,
        }
    }
}

/// What a shadow must show against production, for `model compare` and `promote --gate`.
#[derive(Debug, Args)]
pub struct GateArgs {
    /// Photos compared before the gate opens
    #[arg(long, value_name = "N", default_value_t = Bounds::GATE.min_photos,
        value_parser = clap::value_parser!(u64).range(1..))]
    pub min_photos: u64,
    /// Least share of photos given production's label
    #[arg(long, value_name = "SHARE", default_value_t = Bounds::GATE.min_agreement, value_parser = parse_share)]
    pub min_agreement: f64,
    /// Most the shadow's review share may exceed production's (0.05 = 5 points)
    #[arg(long, value_name = "SHARE", default_value_t = Bounds::GATE.max_review_increase, value_parser = parse_share)]
    pub max_review_increase: f64,
    /// Most the label mix may move (total variation distance of the label shares)
    #[arg(long, value_name = "SHARE", default_value_t = Bounds::GATE.max_label_shift, value_parser = parse_share)]
    pub max_label_shift: f64,
}

impl GateArgs {
    pub fn bounds(&self) -> Bounds {
        Bounds {
            min_photos: self.min_photos,
            min_agreement: self.min_agreement,
            max_review_increase: self.max_review_increase,
            max_label_shift: self.max_label_shift,
        }
    }
}

/// Options shared by every command that runs the model.
#[derive(Debug, Args)]
pub struct PipelineArgs {
    /// Model package folder (model.onnx + model.json) [default: the fashion5 package built into
    /// the program, unpacked once under $XDG_CACHE_HOME/autorma/models/builtin]
    #[arg(long, env = "AUTORMA_MODEL", value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Path of libonnxruntime.so [default: where infra/setup/onnxruntime.sh installs it]
    #[arg(long, env = "AUTORMA_ORT_LIBRARY", value_name = "PATH")]
    pub ort_library: Option<PathBuf>,
    /// Folder of catalogue photos, <sku>.jpg (or .jpeg, .png, .webp), for the product check of
    /// claims that name a SKU [default: streaming, the bucket's catalogue/; embedded, none: a
    /// claimed SKU is recorded but not compared]
    #[arg(long, env = "AUTORMA_CATALOGUE", value_name = "DIR")]
    pub catalogue: Option<PathBuf>,
    /// `cpu`, or `cuda[:<device>]` (needs a build with `--features cuda`)
    #[arg(long, env = "AUTORMA_EXECUTION_PROVIDER", value_name = "EP", default_value = "cpu")]
    pub execution_provider: ExecutionProvider,
    /// Inference threads, each with its own ONNX Runtime session
    #[arg(long, env = "AUTORMA_WORKERS", value_name = "N", default_value_t = 1,
        value_parser = clap::value_parser!(u64).range(1..=64))]
    pub workers: u64,
    /// Threads ONNX Runtime uses within one operator, per session [default: cores / workers]
    #[arg(long, env = "AUTORMA_INTRA_THREADS", value_name = "N", value_parser = clap::value_parser!(u64).range(1..=256))]
    pub intra_threads: Option<u64>,
    /// Largest micro-batch
    #[arg(long, env = "AUTORMA_BATCH_SIZE", value_name = "N", default_value_t = BatcherConfig::default().max_batch_size as u64,
        value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub batch_size: u64,
    /// Longest a photo waits for its micro-batch to fill while more photos are on their way,
    /// in ms; when none are, the batch goes at once
    #[arg(long, env = "AUTORMA_BATCH_WAIT_MS", value_name = "MS",
        default_value_t = BatcherConfig::default().max_wait.as_millis() as u64,
        value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub batch_wait_ms: u64,
    /// Hold every batch for the full --batch-wait-ms, even when no more photos are on their
    /// way: fuller batches when photos arrive in bursts (a GPU), at the cost of latency
    #[arg(long, env = "AUTORMA_BATCH_WAIT_ALWAYS", value_name = "BOOL", num_args = 0..=1, require_equals = true,
        default_value_t = BatcherConfig::default().wait_when_idle, default_missing_value = "true",
        action = ArgAction::Set)]
    pub batch_wait_always: bool,
    /// Photos fetched and decoded at once [default: 2 x cores; for `worker`, at least 16]
    #[arg(long, env = "AUTORMA_FETCH_CONCURRENCY", value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub fetch_concurrency: Option<u64>,
    /// Results written at once (each a file or object, written durably) [default: 8; for
    /// `worker`, 32]
    #[arg(long, env = "AUTORMA_SINK_CONCURRENCY", value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub sink_concurrency: Option<u64>,
    /// Largest photo accepted, in pixels: width x height, checked before decoding, and the
    /// square it is letterboxed into (its long side squared)
    #[arg(long, env = "AUTORMA_MAX_PIXELS", value_name = "N", default_value_t = DecodeLimits::default().max_pixels,
        value_parser = clap::value_parser!(u64).range(1..=1 << 34))]
    pub max_pixels: u64,
    #[command(flatten)]
    pub file_limit: FileLimitArgs,
}

/// The largest photo file, one flag for the pipeline and for what reads its photos again.
#[derive(Debug, Args)]
pub struct FileLimitArgs {
    /// Largest photo file accepted, in bytes
    #[arg(long, env = "AUTORMA_MAX_FILE_BYTES", value_name = "N", default_value_t = DecodeLimits::default().max_bytes,
        value_parser = clap::value_parser!(u64).range(1..=1 << 34))]
    pub max_file_bytes: u64,
}

/// A replay rate: photos per second, positive.
fn positive_rate(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!("`{value}` is not a positive number of photos per second")),
    }
}

/// A share: a number from 0 to 1.
fn parse_share(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(share) if (0.0..=1.0).contains(&share) => Ok(share),
        _ => Err(format!("`{value}` is not a share from 0 to 1 (e.g. 0.1)")),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn batch_wait_always_takes_a_value_only_after_an_equals_sign() {
        let parse = |args: &[&str]| match Cli::try_parse_from(args).unwrap().command {
            Command::Classify(c) => (c.pipeline.batch_wait_always, c.files),
            other => panic!("parsed as {other:?}"),
        };
        let (wait, files) = parse(&["autorma", "classify", "--batch-wait-always", "a.jpg"]);
        assert_eq!((wait, files), (true, vec![PathBuf::from("a.jpg")]), "the photo is not taken as the value");
        assert!(!parse(&["autorma", "classify", "--batch-wait-always=false", "a.jpg"]).0);
        assert!(!parse(&["autorma", "classify", "a.jpg"]).0);
    }
}
