//! Logs: `tracing` to stderr, filtered by `--log`, `AUTORMA_LOG` or `RUST_LOG`.

use tracing_subscriber::EnvFilter;

/// Our crates at `info` (per-photo events are `debug`), everything else at `warn`: ONNX
/// Runtime's chatter stays out, OpenTelemetry's failed exports are seen.
const DEFAULT_FILTER: &str =
    "warn,autorma=info,autorma_classifier=info,autorma_ingest=info,autorma_sink=info,autorma_registry=info";

pub fn init(flag: Option<&str>) {
    let filter = flag
        .map(str::to_string)
        .or_else(|| std::env::var("AUTORMA_LOG").ok())
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| DEFAULT_FILTER.to_string());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|e| {
        eprintln!("warning: invalid log filter `{filter}` ({e}); using the default");
        EnvFilter::new(DEFAULT_FILTER)
    });
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(ansi)
        .init();
}
