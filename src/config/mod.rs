//! Configuration: the command line with the config file's values as its defaults ([`file`]),
//! resolved into each part's settings before anything runs, so a typo is a clear message, not
//! a surprise mid-run.

pub mod file;

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use autorma_classifier::PipelineConfig;
use autorma_classifier::catalogue::Catalogue;
use autorma_classifier::inference::{RuntimeConfig, default_library_path};
use autorma_classifier::pipeline::batcher::BatcherConfig;
use autorma_classifier::preprocess::DecodeLimits;
use autorma_core::S3Config;
use autorma_core::kafka::KafkaConfig;
use clap::{CommandFactory, FromArgMatches};

pub use file::ConfigFile;

use crate::cli::{Cli, PipelineArgs, StreamingArgs};

/// The command line, with the config file's values (`--config` or `AUTORMA_CONFIG`) as the
/// flags' defaults. A usage error (or `--help`) is clap's, printed as clap prints it; a bad
/// config file is an error naming the key and the file.
pub fn parse_command_line() -> anyhow::Result<(Cli, ConfigFile)> {
    let args: Vec<OsString> = std::env::args_os().collect();
    let file = match config_path(&args) {
        Some(path) => ConfigFile::load(&path)?,
        None => ConfigFile::default(),
    };
    let command = file.apply(Cli::command())?;
    let matches = command.try_get_matches_from(args).unwrap_or_else(|e| e.exit());
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    Ok((cli, file))
}

/// `--config FILE` (or `--config=FILE`) before any `--`, else `AUTORMA_CONFIG`: read before the
/// command line is parsed, since the file's values are part of how it is parsed.
fn config_path(args: &[OsString]) -> Option<PathBuf> {
    let mut args = args.iter().skip(1).map(|a| a.to_string_lossy());
    while let Some(arg) = args.next() {
        match arg.as_ref() {
            "--" => break,
            "--config" => return args.next().map(|p| PathBuf::from(p.as_ref())),
            other => {
                if let Some(path) = other.strip_prefix("--config=") {
                    return Some(PathBuf::from(path));
                }
            }
        }
    }
    std::env::var_os("AUTORMA_CONFIG").filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// What the model-running commands need, resolved and validated.
#[derive(Debug, Clone)]
pub struct ModelSettings {
    /// The package folder; `None`: the package built into the program.
    pub model_dir: Option<PathBuf>,
    pub pipeline: PipelineConfig,
}

/// The pipeline's settings from its flags (each already within its range: clap checks them).
pub fn resolve(args: &PipelineArgs) -> ModelSettings {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let workers = args.workers as usize;
    let mut runtime = RuntimeConfig::new(args.ort_library.clone().unwrap_or_else(default_library_path));
    runtime.execution_provider = args.execution_provider;
    runtime.intra_threads = args.intra_threads.map_or((cores / workers).max(1), |n| n as usize);
    runtime.warm_batch = args.batch_size as usize;
    let mut pipeline = PipelineConfig::new(runtime);
    pipeline.num_workers = workers;
    pipeline.batcher = BatcherConfig {
        max_batch_size: args.batch_size as usize,
        max_wait: Duration::from_millis(args.batch_wait_ms),
        wait_when_idle: args.batch_wait_always,
    };
    pipeline.limits = DecodeLimits { max_pixels: args.max_pixels, max_bytes: args.file_limit.max_file_bytes };
    if let Some(n) = args.fetch_concurrency {
        pipeline.fetch_concurrency = n as usize;
    }
    if let Some(n) = args.sink_concurrency {
        pipeline.sink_concurrency = n as usize;
    }
    pipeline.catalogue = args.catalogue.as_deref().map(|dir| Arc::new(Catalogue::folder(dir)));
    ModelSettings { model_dir: args.model.clone(), pipeline }
}

/// Where the streaming engines are, resolved.
#[derive(Debug, Clone)]
pub struct StreamingSettings {
    pub kafka: KafkaConfig,
    pub s3: S3Config,
    pub bucket: String,
}

pub fn resolve_streaming(args: &StreamingArgs, file: &ConfigFile) -> anyhow::Result<StreamingSettings> {
    if args.brokers.trim().is_empty() {
        bail!("invalid `brokers`: empty (set --brokers or AUTORMA_KAFKA_BROKERS, e.g. 127.0.0.1:9092)");
    }
    let mut kafka = KafkaConfig::new(args.brokers.clone());
    kafka.properties = file.kafka_properties()?;
    // These carry the delivery guarantee: offsets move only behind the sink, writes are
    // idempotent, acknowledged by every replica and committed in each process's own
    // transactions, and only committed records are read.
    const GUARANTEES: &[&str] = &[
        "enable.auto.commit",
        "enable.auto.offset.store",
        "auto.offset.reset",
        "group.id",
        "enable.idempotence",
        "acks",
        "bootstrap.servers",
        "isolation.level",
        "transactional.id",
    ];
    if let Some((key, _)) = kafka.properties.iter().find(|(key, _)| GUARANTEES.contains(&key.as_str())) {
        bail!(
            "`kafka_properties.{key}` cannot be set: AutoRMA sets it for its delivery guarantee (brokers: --brokers; groups: --group)"
        );
    }
    let endpoint = args.s3_endpoint.clone();
    if let Some(url) = &endpoint
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        bail!(
            "invalid `s3_endpoint` = `{url}`: must be an http:// or https:// URL (--s3-endpoint, AUTORMA_S3_ENDPOINT)"
        );
    }
    let s3 = S3Config {
        path_style: args.s3_path_style.unwrap_or(endpoint.is_some()),
        region: args.s3_region.clone(),
        endpoint,
        ..S3Config::default()
    };
    let bucket = args.bucket.clone().unwrap_or_else(|| "returns".into());
    if bucket.is_empty() || bucket.contains('/') {
        bail!("invalid `bucket` = `{bucket}`: must be a bucket name (--bucket, AUTORMA_BUCKET)");
    }
    Ok(StreamingSettings { kafka, s3, bucket })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use autorma_classifier::inference::ExecutionProvider;
    use clap::ArgMatches;
    use clap::parser::ValueSource;

    use super::*;

    /// Parses `args` with `toml` as the config file.
    fn parse_with(toml: &str, args: &[&str]) -> anyhow::Result<ArgMatches> {
        matches_with(&ConfigFile::parse(toml, Path::new("autorma.toml"))?, args)
    }

    fn matches_with(file: &ConfigFile, args: &[&str]) -> anyhow::Result<ArgMatches> {
        Ok(file.apply(Cli::command())?.try_get_matches_from(args)?)
    }

    fn cli_with(toml: &str, args: &[&str]) -> Cli {
        Cli::from_arg_matches(&parse_with(toml, args).unwrap()).unwrap()
    }

    /// A value each flag takes, other than its default.
    fn sample(id: &str) -> &'static str {
        match id {
            "log" => "debug",
            "otlp_endpoint" | "otlp_traces_endpoint" => "http://127.0.0.1:9999",
            "s3_endpoint" => "http://127.0.0.1:19000",
            "cors_origin" => "https://bench.example.com",
            "allowed_host" => "bench.example.com",
            "inbox" | "out" | "results" | "catalogue" | "data" | "model" | "ort_library" | "model_cache" | "index" | "registry" | "dir" => {
                "/tmp/autorma-sample"
            }
            "files" => "a.jpg",
            "watch"
            | "no_progress"
            | "json"
            | "all"
            | "streaming"
            | "replay_on_promotion"
            | "batch_wait_always"
            | "s3_path_style"
            | "insecure_no_token"
            | "gate"
            // `eval --claims` is a switch, `run --claims FILE` a path: "true" parses as both.
            | "claims" => "true",
            "wrong_rate"
            | "shadow_sample"
            | "watch_min_agreement"
            | "watch_max_review_increase"
            | "watch_max_label_shift"
            | "min_agreement"
            | "max_review_increase"
            | "max_label_shift" => "0.2",
            "execution_provider" => "cuda:1",
            "bucket" | "model_name" | "alias" | "shadow_alias" | "group" | "token" | "by" | "reason" | "s3_region" => "sample-name",
            "inbox_prefix" | "prefix" => "sample/",
            "brokers" => "broker.example:9092",
            "key_encoding" => "raw",
            "replay_schedule" => "off",
            "replay_tz" => "Europe/Berlin",
            "replay_rate" | "rate" => "12.5",
            "since" => "2026-01-01",
            "until" => "2026-02-01",
            "listen" => "127.0.0.1:9",
            "rebuild" => "bucket",
            "version" => "3",
            "poll_interval_ms"
            | "model_poll_s"
            | "workers"
            | "intra_threads"
            | "batch_size"
            | "batch_wait_ms"
            | "fetch_concurrency"
            | "sink_concurrency"
            | "max_pixels"
            | "max_file_bytes"
            | "reconcile_interval_s"
            | "reconcile_grace_s"
            | "bulk_inflight"
            | "max_body_bytes"
            | "max_request_pixels"
            | "max_event_streams"
            | "model_batch_size"
            | "rounds"
            | "watch_s"
            | "watch_min_photos"
            | "min_photos" => "17",
            other => panic!("no sample value for `{other}`: add one to this test"),
        }
    }

    /// Every command as the command line names it: `["run"]`, `["model", "push"]`, ...
    fn commands(command: &clap::Command, path: Vec<String>, out: &mut Vec<Vec<String>>) {
        if command.get_subcommands().next().is_none() {
            out.push(path);
            return;
        }
        for sub in command.get_subcommands() {
            let mut path = path.clone();
            path.push(sub.get_name().to_string());
            commands(sub, path, out);
        }
    }

    #[test]
    fn every_flag_of_every_command_has_a_file_key_of_its_name() {
        let root = Cli::command();
        let mut paths = Vec::new();
        commands(&root, Vec::new(), &mut paths);
        let mut checked = 0;
        for path in &paths {
            // The commands along the path, each with its flags (`model`'s, then `push`'s).
            let mut levels = vec![&root];
            for name in path {
                levels.push(levels.last().unwrap().find_subcommand(name).unwrap());
            }
            for (depth, level) in levels.iter().enumerate() {
                for arg in level.get_arguments().filter(|a| a.get_long().is_some()) {
                    let id = arg.get_id().as_str();
                    if matches!(id, "help" | "version" | "config") {
                        continue;
                    }
                    // The rest of the command line: what each level must be given, but the
                    // flag under test (given by the file alone).
                    let mut argv = vec!["autorma".to_string()];
                    for (d, l) in levels.iter().enumerate() {
                        if d > 0 {
                            argv.push(l.get_name().to_string());
                        }
                        for required in l.get_arguments().filter(|a| a.is_required_set() && a.get_id() != id) {
                            if let Some(long) = required.get_long() {
                                argv.push(format!("--{long}"));
                            }
                            argv.push(sample(required.get_id().as_str()).to_string());
                        }
                        if l.get_name() == "serve" && !matches!(id, "streaming" | "out") {
                            argv.push("--streaming".into());
                        }
                    }
                    let key = format!("{id} = {}", toml_value(sample(id)));
                    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
                    let matches = parse_with(&key, &argv).unwrap_or_else(|e| panic!("{path:?} {key}: {e}"));
                    let mut at = &matches;
                    for name in path.iter().take(depth) {
                        at = at.subcommand_matches(name).unwrap();
                    }
                    let got: Vec<String> = at
                        .get_raw(id)
                        .unwrap_or_else(|| panic!("{path:?}: the file's `{id}` was not taken"))
                        .map(|v| v.to_string_lossy().into_owned())
                        .collect();
                    assert_eq!(got, [sample(id)], "{path:?}: `{key}`");
                    assert_eq!(at.value_source(id), Some(ValueSource::DefaultValue), "{path:?}: {id}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 100, "only {checked} flags were checked");
    }

    /// `sample` written as TOML: numbers and booleans bare, the rest quoted.
    fn toml_value(sample: &str) -> String {
        let bare = sample.parse::<f64>().is_ok() || matches!(sample, "true" | "false");
        if bare { sample.to_string() } else { format!("{sample:?}") }
    }

    #[test]
    fn a_flag_beats_the_file_which_beats_the_default() {
        let cli = cli_with("batch_size = 8\nworkers = 2\n", &["autorma", "classify", "--batch-size", "16", "a.jpg"]);
        let crate::cli::Command::Classify(args) = cli.command else { panic!() };
        let settings = resolve(&args.pipeline);
        assert_eq!(settings.pipeline.batcher.max_batch_size, 16, "the flag");
        assert_eq!(settings.pipeline.num_workers, 2, "the file");
        assert_eq!(settings.pipeline.batcher.max_wait, Duration::from_millis(20), "the default");
        assert_eq!(settings.model_dir, None, "the built-in package");
        assert_eq!(settings.pipeline.runtime.execution_provider, ExecutionProvider::Cpu);
        assert!(!settings.pipeline.batcher.wait_when_idle);
    }

    #[test]
    fn a_command_table_applies_to_that_command_over_the_top_level() {
        let toml = "group = \"everyone\"\n[worker]\ngroup = \"workers-eu\"\n[model]\nbucket = \"models\"\n";
        let crate::cli::Command::Worker(worker) = cli_with(toml, &["autorma", "worker"]).command else { panic!() };
        assert_eq!(worker.group, "workers-eu");
        let crate::cli::Command::Ingest(ingest) = cli_with(toml, &["autorma", "ingest"]).command else { panic!() };
        assert_eq!(ingest.group, "everyone");
        assert_eq!(ingest.streaming.bucket, None, "[model] is model's alone");
        let crate::cli::Command::Model(model) = cli_with(toml, &["autorma", "model", "list"]).command else { panic!() };
        assert_eq!(model.streaming.bucket.as_deref(), Some("models"));
        // A key every command's table overrides is still a known key.
        let toml = "rate = 100\n[replay]\nrate = 50\n";
        let crate::cli::Command::Replay(replay) = cli_with(toml, &["autorma", "replay"]).command else { panic!() };
        assert_eq!(replay.rate, 50.0);
    }

    #[test]
    fn a_bad_file_names_the_key_and_the_file() {
        let error = |toml: &str| parse_with(toml, &["autorma", "classify", "a.jpg"]).unwrap_err().to_string();
        let e = error("batchsize = 8\n");
        assert!(e.contains("unknown key `batchsize`") && e.contains("autorma.toml"), "{e}");
        let e = error("[worker]\nlisten = \"0.0.0.0:80\"\n");
        assert!(e.contains("unknown key `worker.listen`"), "{e}");
        let e = error("batch_size = 0\n");
        assert!(e.contains("`batch_size` = 0") && e.contains("autorma.toml") && e.contains("1..=1024"), "{e}");
        let e = error("json = \"yes\"\n");
        assert!(e.contains("`json`") && e.contains("possible values: true, false"), "{e}");
        let e = error("batch_size = [1, 2]\n");
        assert!(e.contains("takes one value"), "{e}");
        let e = error("[serve]\nlog = \"debug\"\n");
        assert!(e.contains("`serve.log`") && e.contains("top level"), "{e}");
        let e = error("worker_group = \"w\"\n");
        assert!(e.contains("[worker] table"), "{e}");
        let e = error("config = \"other.toml\"\n");
        assert!(e.contains("cannot name another"), "{e}");
        assert!(error("batch_size = \n").contains("invalid config file"));
    }

    #[test]
    fn the_file_gives_a_flag_the_command_line_must_otherwise_give() {
        let crate::cli::Command::Run(run) =
            cli_with("[run]\ninbox = \"/photos\"\nout = \"/results\"\n", &["autorma", "run"]).command
        else {
            panic!()
        };
        assert_eq!((run.inbox.to_str(), run.out.to_str()), (Some("/photos"), Some("/results")));
        assert!(parse_with("", &["autorma", "run"]).is_err(), "still required without the file");
        let crate::cli::Command::Serve(serve) = cli_with(
            "cors_origin = [\"https://a.example\", \"https://b.example\"]\n",
            &["autorma", "serve", "--out", "o"],
        )
        .command
        else {
            panic!()
        };
        assert_eq!(serve.cors_origin, ["https://a.example", "https://b.example"], "a repeated flag takes a list");
        // What the file turns on, the command line can turn off.
        let crate::cli::Command::Classify(classify) =
            cli_with("json = true\n", &["autorma", "classify", "--json=false", "a.jpg"]).command
        else {
            panic!()
        };
        assert!(!classify.json);
    }

    #[test]
    fn help_does_not_show_a_token_from_the_file() {
        let file =
            ConfigFile::parse("token = \"s3cret-token\"\nlisten = \"127.0.0.1:9\"\n", Path::new("a.toml")).unwrap();
        let mut command = file.apply(Cli::command()).unwrap();
        let help = command.find_subcommand_mut("serve").unwrap().render_long_help().to_string();
        assert!(help.contains("[default: 127.0.0.1:9]"), "the file's values are the defaults --help shows");
        assert!(!help.contains("s3cret-token"), "{help}");
    }

    #[test]
    fn the_config_path_is_read_before_the_command_line_is_parsed() {
        let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(config_path(&args(&["autorma", "--config", "a.toml", "run"])), Some(PathBuf::from("a.toml")));
        assert_eq!(config_path(&args(&["autorma", "run", "--config=b.toml"])), Some(PathBuf::from("b.toml")));
    }

    #[test]
    fn kafka_properties_cannot_undo_the_delivery_guarantee() {
        let streaming = |toml: &str| {
            let file = ConfigFile::parse(toml, Path::new("autorma.toml")).unwrap();
            let matches = matches_with(&file, &["autorma", "ingest"]).unwrap();
            let crate::cli::Command::Ingest(ingest) = Cli::from_arg_matches(&matches).unwrap().command else {
                panic!()
            };
            resolve_streaming(&ingest.streaming, &file)
        };
        let settings = streaming("[kafka_properties]\n\"security.protocol\" = \"ssl\"\n").unwrap();
        assert_eq!(settings.kafka.properties, vec![("security.protocol".to_string(), "ssl".to_string())]);
        let err = streaming("[kafka_properties]\n\"enable.auto.commit\" = \"true\"\n").unwrap_err().to_string();
        assert!(err.contains("enable.auto.commit"), "{err}");
        // `latest` would skip the backlog of a new group.
        assert!(streaming("[kafka_properties]\n\"auto.offset.reset\" = \"latest\"\n").is_err());
        // Uncommitted records would show a crash's results twice; one id shared by processes
        // would fence them against each other.
        assert!(streaming("[kafka_properties]\n\"isolation.level\" = \"read_uncommitted\"\n").is_err());
        assert!(streaming("[kafka_properties]\n\"transactional.id\" = \"shared\"\n").is_err());
    }
}
