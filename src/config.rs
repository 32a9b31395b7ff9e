//! Configuration: the optional TOML file, merged under the command line and environment, and
//! validated before anything runs so a typo is a clear message, not a surprise mid-run.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use autorma_classifier::PipelineConfig;
use autorma_classifier::inference::{ExecutionProvider, RuntimeConfig, default_library_path};
use autorma_classifier::pipeline::batcher::BatcherConfig;
use autorma_classifier::preprocess::DecodeLimits;
use serde::Deserialize;

use autorma_core::S3Config;
use autorma_core::kafka::KafkaConfig;

use crate::cli::{PipelineArgs, StreamingArgs};

/// The config file. Every key is optional; unknown keys are an error (they are typos).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Model package folder.
    pub model: Option<PathBuf>,
    /// Path of libonnxruntime.so.
    pub ort_library: Option<PathBuf>,
    /// `cpu` or `cuda[:<device>]`.
    pub execution_provider: Option<String>,
    /// Inference threads (one session each).
    pub workers: Option<usize>,
    /// ONNX Runtime intra-op threads per session.
    pub intra_threads: Option<usize>,
    /// Largest micro-batch.
    pub batch_size: Option<usize>,
    /// Longest wait for a micro-batch, in ms.
    pub batch_wait_ms: Option<u64>,
    /// Hold batches for `batch_wait_ms` even when no more photos are coming.
    pub batch_wait_always: Option<bool>,
    /// Photos fetched and decoded at once.
    pub fetch_concurrency: Option<usize>,
    /// Results written at once.
    pub sink_concurrency: Option<usize>,
    /// Largest photo in pixels.
    pub max_pixels: Option<u64>,
    /// Largest photo file in bytes.
    pub max_file_bytes: Option<u64>,
    /// `run --watch`: ms between scans.
    pub poll_interval_ms: Option<u64>,
    /// `run`: bucket name for the inbox; `ingest`, `worker`: the S3 bucket.
    pub bucket: Option<String>,
    /// Kafka bootstrap servers.
    pub brokers: Option<String>,
    /// Extra librdkafka properties (`security.protocol`, `sasl.username`, ...).
    pub kafka_properties: Option<BTreeMap<String, String>>,
    /// S3 endpoint URL.
    pub s3_endpoint: Option<String>,
    /// S3 region.
    pub s3_region: Option<String>,
    /// Path-style S3 addressing.
    pub s3_path_style: Option<bool>,
    /// `ingest`, `serve`: the inbox prefix.
    pub inbox_prefix: Option<String>,
    /// Base URL of an OTLP/HTTP metrics receiver (`/v1/metrics` is added).
    pub otlp_endpoint: Option<String>,
    /// Base URL of an OTLP/HTTP traces receiver (`/v1/traces` is added).
    pub otlp_traces_endpoint: Option<String>,
    /// `ingest`: `url` or `raw` notification keys.
    pub key_encoding: Option<String>,
    /// `ingest`: its consumer group.
    pub ingest_group: Option<String>,
    /// `worker`: its consumer group.
    pub worker_group: Option<String>,
    /// `ingest`: seconds between reconciliations.
    pub reconcile_interval_s: Option<u64>,
    /// `ingest`: seconds a photo is left to its notification.
    pub reconcile_grace_s: Option<u64>,
    /// The model registry: `s3://BUCKET` or a folder.
    pub registry: Option<String>,
    /// The model's name in the registry.
    pub model_name: Option<String>,
    /// `worker`, `ingest`, `replay`: the alias followed.
    pub model_alias: Option<String>,
    /// `worker`, `ingest`: seconds between looks at the alias.
    pub model_poll_s: Option<u64>,
    /// `worker`: where downloaded versions are kept.
    pub model_cache: Option<PathBuf>,
    /// `worker`: replay photos in the pipeline at once.
    pub bulk_inflight: Option<usize>,
    /// `ingest`: cron expression of the replay, or `off`.
    pub replay_schedule: Option<String>,
    /// `ingest`: the schedule's time zone.
    pub replay_tz: Option<String>,
    /// `ingest`, `replay`: photos per second sent to rma.items.replay.
    pub replay_rate: Option<f64>,
}

impl FileConfig {
    pub fn load(path: Option<&Path>) -> anyhow::Result<(Self, Option<PathBuf>)> {
        let Some(path) = path else { return Ok((Self::default(), None)) };
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read config file `{}`", path.display()))?;
        let config = toml::from_str(&text).with_context(|| format!("invalid config file `{}`", path.display()))?;
        Ok((config, Some(path.to_path_buf())))
    }
}

/// Where a value came from, for error messages.
struct Origin<'a> {
    flag: &'a str,
    env: &'a str,
    file: Option<&'a Path>,
    from_file: bool,
}

impl Display for Origin<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.from_file, self.file) {
            (true, Some(file)) => write!(f, "from config file `{}`", file.display()),
            _ => write!(f, "from `{}` or `{}`", self.flag, self.env),
        }
    }
}

/// What the model-running commands need, resolved and validated.
#[derive(Debug, Clone)]
pub struct ModelSettings {
    /// The package folder; `None`: the package built into the program.
    pub model_dir: Option<PathBuf>,
    pub pipeline: PipelineConfig,
}

pub fn resolve(args: &PipelineArgs, file: &FileConfig, file_path: Option<&Path>) -> anyhow::Result<ModelSettings> {
    macro_rules! pick {
        ($field:ident, $flag:literal, $env:literal) => {{
            let origin = |from_file| Origin { flag: $flag, env: $env, file: file_path, from_file };
            match (args.$field.clone(), file.$field.clone()) {
                (Some(v), _) => Some((v, origin(false))),
                (None, Some(v)) => Some((v, origin(true))),
                (None, None) => None,
            }
        }};
    }
    fn in_range<T: PartialOrd + Display + Copy>(
        name: &str,
        value: T,
        origin: &Origin,
        min: T,
        max: T,
    ) -> anyhow::Result<T> {
        if value < min || value > max {
            bail!("invalid `{name}` = {value} ({origin}): must be within {min}..={max}");
        }
        Ok(value)
    }

    let model_dir = pick!(model, "--model", "AUTORMA_MODEL").map(|(v, _)| v);
    let library =
        pick!(ort_library, "--ort-library", "AUTORMA_ORT_LIBRARY").map_or_else(default_library_path, |(v, _)| v);
    let execution_provider = match pick!(execution_provider, "--execution-provider", "AUTORMA_EXECUTION_PROVIDER") {
        None => ExecutionProvider::Cpu,
        Some((v, origin)) => v.parse::<ExecutionProvider>().map_err(|e| anyhow::anyhow!("{e} ({origin})"))?,
    };
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let workers = match pick!(workers, "--workers", "AUTORMA_WORKERS") {
        None => 1,
        Some((v, o)) => in_range("workers", v, &o, 1, 64)?,
    };
    let intra_threads = match pick!(intra_threads, "--intra-threads", "AUTORMA_INTRA_THREADS") {
        None => (cores / workers).max(1),
        Some((v, o)) => in_range("intra_threads", v, &o, 1, 256)?,
    };
    let mut batcher = BatcherConfig::default();
    if let Some((v, o)) = pick!(batch_size, "--batch-size", "AUTORMA_BATCH_SIZE") {
        batcher.max_batch_size = in_range("batch_size", v, &o, 1, 1024)?;
    }
    if let Some((v, o)) = pick!(batch_wait_ms, "--batch-wait-ms", "AUTORMA_BATCH_WAIT_MS") {
        batcher.max_wait = Duration::from_millis(in_range("batch_wait_ms", v, &o, 0, 60_000)?);
    }
    if let Some((v, _)) = pick!(batch_wait_always, "--batch-wait-always", "AUTORMA_BATCH_WAIT_ALWAYS") {
        batcher.wait_when_idle = v;
    }
    let mut limits = DecodeLimits::default();
    if let Some((v, o)) = pick!(max_pixels, "--max-pixels", "AUTORMA_MAX_PIXELS") {
        limits.max_pixels = in_range("max_pixels", v, &o, 1, 1 << 34)?;
    }
    if let Some((v, o)) = pick!(max_file_bytes, "--max-file-bytes", "AUTORMA_MAX_FILE_BYTES") {
        limits.max_bytes = in_range("max_file_bytes", v, &o, 1, 1 << 34)?;
    }

    let mut runtime = RuntimeConfig::new(library);
    runtime.execution_provider = execution_provider;
    runtime.intra_threads = intra_threads;
    let mut pipeline = PipelineConfig::new(runtime);
    pipeline.num_workers = workers;
    pipeline.batcher = batcher;
    pipeline.limits = limits;
    if let Some((v, o)) = pick!(fetch_concurrency, "--fetch-concurrency", "AUTORMA_FETCH_CONCURRENCY") {
        pipeline.fetch_concurrency = in_range("fetch_concurrency", v, &o, 1, 1024)?;
    }
    if let Some((v, o)) = pick!(sink_concurrency, "--sink-concurrency", "AUTORMA_SINK_CONCURRENCY") {
        pipeline.sink_concurrency = in_range("sink_concurrency", v, &o, 1, 1024)?;
    }
    Ok(ModelSettings { model_dir, pipeline })
}

/// The run command's extra settings.
pub fn poll_interval(arg: Option<u64>, file: &FileConfig) -> anyhow::Result<Duration> {
    Ok(Duration::from_millis(within("poll_interval_ms", arg, file.poll_interval_ms, 500, 10..=3_600_000)?))
}

/// Where the streaming engines are, resolved.
#[derive(Debug, Clone)]
pub struct StreamingSettings {
    pub kafka: KafkaConfig,
    pub s3: S3Config,
    pub bucket: String,
}

pub fn resolve_streaming(args: &StreamingArgs, file: &FileConfig) -> anyhow::Result<StreamingSettings> {
    let brokers = args.brokers.clone().or(file.brokers.clone()).unwrap_or_else(|| "127.0.0.1:9092".into());
    if brokers.trim().is_empty() {
        bail!("invalid `brokers`: empty (set --brokers or AUTORMA_KAFKA_BROKERS, e.g. 127.0.0.1:9092)");
    }
    let mut kafka = KafkaConfig::new(brokers);
    kafka.properties = file.kafka_properties.clone().unwrap_or_default().into_iter().collect();
    // These carry the delivery guarantee: offsets move only behind the sink, writes are
    // idempotent and acknowledged by every replica.
    const GUARANTEES: &[&str] = &[
        "enable.auto.commit",
        "enable.auto.offset.store",
        "auto.offset.reset",
        "group.id",
        "enable.idempotence",
        "acks",
        "bootstrap.servers",
    ];
    if let Some((key, _)) = kafka.properties.iter().find(|(key, _)| GUARANTEES.contains(&key.as_str())) {
        bail!(
            "`kafka_properties.{key}` cannot be set: AutoRMA sets it for its delivery guarantee (brokers: --brokers; groups: --group)"
        );
    }
    let endpoint = args.s3_endpoint.clone().or(file.s3_endpoint.clone());
    if let Some(url) = &endpoint
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        bail!(
            "invalid `s3_endpoint` = `{url}`: must be an http:// or https:// URL (--s3-endpoint, AUTORMA_S3_ENDPOINT)"
        );
    }
    let s3 = S3Config {
        path_style: args.s3_path_style.or(file.s3_path_style).unwrap_or(endpoint.is_some()),
        region: args.s3_region.clone().or(file.s3_region.clone()),
        endpoint,
        ..S3Config::default()
    };
    let bucket = args.bucket.clone().or(file.bucket.clone()).unwrap_or_else(|| "returns".into());
    if bucket.is_empty() || bucket.contains('/') {
        bail!("invalid `bucket` = `{bucket}`: must be a bucket name (--bucket, AUTORMA_BUCKET)");
    }
    Ok(StreamingSettings { kafka, s3, bucket })
}

/// A number of seconds within `range`, from the flag/env or the file, else `default`.
pub fn seconds(
    name: &str,
    arg: Option<u64>,
    file: Option<u64>,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> anyhow::Result<Duration> {
    Ok(Duration::from_secs(within(name, arg, file, default, range)?))
}

/// The flag/env value, else the file's, else `default`; refused outside `range`.
pub fn within(
    name: &str,
    arg: Option<u64>,
    file: Option<u64>,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> anyhow::Result<u64> {
    let value = arg.or(file).unwrap_or(default);
    if !range.contains(&value) {
        bail!("invalid `{name}` = {value}: must be within {}..={}", range.start(), range.end());
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_beats_file_beats_default() {
        let file: FileConfig = toml::from_str("batch_size = 8\nworkers = 2\n").unwrap();
        let args = PipelineArgs { batch_size: Some(16), ..Default::default() };
        let s = resolve(&args, &file, Some(Path::new("c.toml"))).unwrap();
        assert_eq!(s.pipeline.batcher.max_batch_size, 16);
        assert_eq!(s.pipeline.num_workers, 2);
        assert_eq!(s.model_dir, None, "the built-in package");
        assert_eq!(s.pipeline.runtime.execution_provider, ExecutionProvider::Cpu);
    }

    #[test]
    fn batching_and_sink_options_come_from_the_file_and_the_flags() {
        let s = resolve(&PipelineArgs::default(), &FileConfig::default(), None).unwrap();
        assert!(!s.pipeline.batcher.wait_when_idle, "a batch goes at once when nothing is coming, by default");
        assert_eq!(s.pipeline.sink_concurrency, 8);

        let file: FileConfig = toml::from_str("batch_wait_always = true\nsink_concurrency = 64\n").unwrap();
        let s = resolve(&PipelineArgs::default(), &file, None).unwrap();
        assert!(s.pipeline.batcher.wait_when_idle);
        assert_eq!(s.pipeline.sink_concurrency, 64);

        let args = PipelineArgs { batch_wait_always: Some(false), sink_concurrency: Some(2), ..Default::default() };
        let s = resolve(&args, &file, None).unwrap();
        assert!(!s.pipeline.batcher.wait_when_idle, "the flag beats the file");
        assert_eq!(s.pipeline.sink_concurrency, 2);

        let file: FileConfig = toml::from_str("sink_concurrency = 0\n").unwrap();
        let err = resolve(&PipelineArgs::default(), &file, None).unwrap_err().to_string();
        assert!(err.contains("`sink_concurrency` = 0"), "{err}");
    }

    #[test]
    fn bad_values_name_the_key_and_where_it_came_from() {
        let file: FileConfig = toml::from_str("batch_size = 0\n").unwrap();
        let err = resolve(&PipelineArgs::default(), &file, Some(Path::new("c.toml"))).unwrap_err().to_string();
        assert!(err.contains("`batch_size` = 0") && err.contains("c.toml"), "{err}");
        let args = PipelineArgs { execution_provider: Some("tpu".into()), ..Default::default() };
        let err = resolve(&args, &FileConfig::default(), None).unwrap_err().to_string();
        assert!(err.contains("tpu") && err.contains("AUTORMA_EXECUTION_PROVIDER"), "{err}");
    }

    #[test]
    fn kafka_properties_cannot_undo_the_delivery_guarantee() {
        let file: FileConfig = toml::from_str("[kafka_properties]\n\"security.protocol\" = \"ssl\"\n").unwrap();
        let settings = resolve_streaming(&StreamingArgs::default(), &file).unwrap();
        assert_eq!(settings.kafka.properties, vec![("security.protocol".to_string(), "ssl".to_string())]);
        let file: FileConfig = toml::from_str("[kafka_properties]\n\"enable.auto.commit\" = \"true\"\n").unwrap();
        let err = resolve_streaming(&StreamingArgs::default(), &file).unwrap_err().to_string();
        assert!(err.contains("enable.auto.commit"), "{err}");
        // `latest` would skip the backlog of a new group.
        let file: FileConfig = toml::from_str("[kafka_properties]\n\"auto.offset.reset\" = \"latest\"\n").unwrap();
        assert!(resolve_streaming(&StreamingArgs::default(), &file).is_err());
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<FileConfig>("batchsize = 8\n").is_err());
    }
}
