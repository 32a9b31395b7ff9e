//! Exporting the metrics of `autorma_core::metrics` by OTLP (HTTP/protobuf), from the
//! long-running commands (`run`, `worker`, `ingest`, `serve`).
//!
//! Off unless an endpoint is set: `otlp_endpoint` in the config file or `--otlp-endpoint`, or
//! the standard `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT` (the other
//! `OTEL_*` settings, e.g. `OTEL_METRIC_EXPORT_INTERVAL` and `OTEL_EXPORTER_OTLP_HEADERS`, apply
//! as the SDK reads them). An endpoint is a base URL, as in the standard variable:
//! `/v1/metrics` is added (Prometheus: `http://HOST:9090/api/v1/otlp`). A failed export is
//! logged by the SDK (at `warn` and above), never silent.

use anyhow::Context;
use opentelemetry::KeyValue;
use opentelemetry_otlp::{MetricExporter, Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;

/// The standard variables that switch the export on by themselves.
const ENDPOINT_VARIABLES: [&str; 2] = ["OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"];

/// A running export; [`MetricsExport::shutdown`] sends what is left.
pub struct MetricsExport {
    provider: SdkMeterProvider,
}

/// Starts the export for the process `service` (`autorma-worker`, ...), when an endpoint is
/// configured. `instance` names this process among its kind (`host:pid`).
pub fn start(service: &str, instance: &str, endpoint: Option<&str>) -> anyhow::Result<Option<MetricsExport>> {
    let from_env = ENDPOINT_VARIABLES.iter().any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()));
    if endpoint.is_none() && !from_env {
        tracing::debug!("no OTLP endpoint configured: metrics are not exported");
        return Ok(None);
    }
    let mut exporter = MetricExporter::builder().with_http().with_protocol(Protocol::HttpBinary);
    if let Some(base) = endpoint {
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            anyhow::bail!("invalid `otlp_endpoint` = `{base}`: expected an http:// or https:// URL (--otlp-endpoint)");
        }
        exporter = exporter.with_endpoint(format!("{}/v1/metrics", base.trim_end_matches('/')));
    }
    let exporter = exporter.build().context("cannot create the OTLP metrics exporter")?;
    let resource = Resource::builder()
        .with_service_name(service.to_string())
        .with_attributes([
            KeyValue::new("service.instance.id", instance.to_string()),
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
        ])
        .build();
    let provider = SdkMeterProvider::builder().with_periodic_exporter(exporter).with_resource(resource).build();
    opentelemetry::global::set_meter_provider(provider.clone());
    let target = endpoint.map_or_else(|| "from OTEL_EXPORTER_OTLP_*".to_string(), |e| e.to_string());
    tracing::info!(endpoint = %target, service, "exporting metrics by OTLP");
    Ok(Some(MetricsExport { provider }))
}

impl MetricsExport {
    /// Exports what was recorded since the last export, then stops. Blocking.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "the last metrics export failed");
        }
    }
}
