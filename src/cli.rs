//! The command line. Every option that tunes the pipeline can also come from the environment
//! (`AUTORMA_*`) or the config file (`--config`); a flag beats the environment, which beats
//! the file, which beats the default.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "autorma",
    version,
    about = "Sorts photos of returned items into casual_shoes, handbags, shirts, tops and watches.",
    long_about = "Sorts photos of returned items into casual_shoes, handbags, shirts, tops and watches.\n\n\
Before the first run, install ONNX Runtime once with `infra/setup/onnxruntime.sh`.\n\
Options can also be set in a TOML file (--config) or as AUTORMA_* environment variables;\n\
a flag beats the environment, which beats the file."
)]
pub struct Cli {
    /// TOML file with defaults for the options below (keys as in `--help`, with `_` for `-`).
    #[arg(long, global = true, env = "AUTORMA_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log filter, e.g. `info` or `autorma_classifier=debug` (default: info for autorma).
    #[arg(long, global = true, env = "AUTORMA_LOG", value_name = "FILTER")]
    pub log: Option<String>,
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
    /// Streaming: classify the photos of rma.items as one member of a consumer group.
    ///
    /// Fetches each photo from the bucket, micro-batches it through the model and writes its
    /// Result to rma.results (and rma.review when it needs a person) and then to
    /// results/<key>.json in the bucket; a photo that cannot be used goes to rma.dlq and
    /// dlq/<key>.json with its reason. Offsets are committed only behind the sink, so a crash
    /// loses nothing; a redelivered photo that already has its result is not classified
    /// again. One worker per partition of rma.items at most does work; more wait as standbys.
    /// Runs until Ctrl-C or SIGTERM (then it finishes the photos in flight and commits).
    Worker(WorkerArgs),
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
    #[arg(long)]
    pub watch: bool,
    /// Milliseconds between two scans of the inbox in --watch mode [default: 500]
    #[arg(long, env = "AUTORMA_POLL_INTERVAL_MS", value_name = "MS")]
    pub poll_interval_ms: Option<u64>,
    /// Bucket name recorded in results and events for this inbox [default: local]
    #[arg(long, env = "AUTORMA_BUCKET", value_name = "NAME")]
    pub bucket: Option<String>,
    /// Show no progress bar.
    #[arg(long)]
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
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Data set folder: one sub-folder per class, named as the model's classes.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
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
    #[arg(long, default_value_t = 32)]
    pub model_batch_size: usize,
    /// Rounds of each measurement, interleaved (end-to-end, model-only, end-to-end, ...) so
    /// both see the same machine; the report gives each one's median.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

/// Where the streaming engines are (Kafka, S3), shared by `ingest` and `worker`.
/// S3 credentials come from the standard AWS chain: AWS_ACCESS_KEY_ID and
/// AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or an instance role.
#[derive(Debug, Args, Default)]
pub struct StreamingArgs {
    /// Kafka bootstrap servers, `host:port[,host:port]` [default: 127.0.0.1:9092]
    #[arg(long, env = "AUTORMA_KAFKA_BROKERS", value_name = "LIST")]
    pub brokers: Option<String>,
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
    /// The bucket photos land in; results/ and dlq/ are written beside inbox/ [default: returns]
    #[arg(long, env = "AUTORMA_BUCKET", value_name = "NAME")]
    pub bucket: Option<String>,
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Only keys under this prefix are photos to classify [default: inbox/]
    #[arg(long, env = "AUTORMA_INBOX_PREFIX", value_name = "PREFIX")]
    pub inbox_prefix: Option<String>,
    /// How the S3 server writes keys in its notifications: `url` (AWS S3, MinIO) or `raw`
    /// (versitygw) [default: url]
    #[arg(long, env = "AUTORMA_KEY_ENCODING", value_name = "ENCODING")]
    pub key_encoding: Option<String>,
    /// Consumer group of the ingest services on rma.uploads.raw [default: autorma-ingest]
    #[arg(long, env = "AUTORMA_INGEST_GROUP", value_name = "NAME")]
    pub group: Option<String>,
    /// Seconds between two reconciliations of the inbox (the first runs at start) [default: 300]
    #[arg(long, env = "AUTORMA_RECONCILE_INTERVAL_S", value_name = "S")]
    pub reconcile_interval_s: Option<u64>,
    /// A photo younger than this many seconds is left to its notification [default: 120]
    #[arg(long, env = "AUTORMA_RECONCILE_GRACE_S", value_name = "S")]
    pub reconcile_grace_s: Option<u64>,
    #[command(flatten)]
    pub streaming: StreamingArgs,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Consumer group of the workers on rma.items [default: autorma-workers]
    #[arg(long, env = "AUTORMA_WORKER_GROUP", value_name = "NAME")]
    pub group: Option<String>,
    #[command(flatten)]
    pub streaming: StreamingArgs,
    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

/// Options shared by every command that runs the model.
#[derive(Debug, Args, Default)]
pub struct PipelineArgs {
    /// Model package folder (model.onnx + model.json) [default: models/fashion5]
    #[arg(long, env = "AUTORMA_MODEL", value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Path of libonnxruntime.so [default: where infra/setup/onnxruntime.sh installs it]
    #[arg(long, env = "AUTORMA_ORT_LIBRARY", value_name = "PATH")]
    pub ort_library: Option<PathBuf>,
    /// `cpu`, or `cuda[:<device>]` (needs a build with `--features cuda`) [default: cpu]
    #[arg(long, env = "AUTORMA_EXECUTION_PROVIDER", value_name = "EP")]
    pub execution_provider: Option<String>,
    /// Inference threads, each with its own ONNX Runtime session [default: 1]
    #[arg(long, env = "AUTORMA_WORKERS", value_name = "N")]
    pub workers: Option<usize>,
    /// Threads ONNX Runtime uses within one operator, per session [default: cores / workers]
    #[arg(long, env = "AUTORMA_INTRA_THREADS", value_name = "N")]
    pub intra_threads: Option<usize>,
    /// Largest micro-batch [default: 32]
    #[arg(long, env = "AUTORMA_BATCH_SIZE", value_name = "N")]
    pub batch_size: Option<usize>,
    /// Longest a photo waits for its micro-batch to fill, in ms [default: 20]
    #[arg(long, env = "AUTORMA_BATCH_WAIT_MS", value_name = "MS")]
    pub batch_wait_ms: Option<u64>,
    /// Photos fetched and decoded at once [default: 2 x cores; for `worker`, at least 16]
    #[arg(long, env = "AUTORMA_FETCH_CONCURRENCY", value_name = "N")]
    pub fetch_concurrency: Option<usize>,
    /// Largest photo accepted, in pixels (width x height), checked before decoding [default: 40000000]
    #[arg(long, env = "AUTORMA_MAX_PIXELS", value_name = "N")]
    pub max_pixels: Option<u64>,
    /// Largest photo file accepted, in bytes [default: 52428800]
    #[arg(long, env = "AUTORMA_MAX_FILE_BYTES", value_name = "N")]
    pub max_file_bytes: Option<u64>,
}
