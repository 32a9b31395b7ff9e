//! Exporting the metrics of `autorma_core::metrics` by OTLP.

use anyhow::Context;
use opentelemetry_otlp::{MetricExporter, Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;

use super::Target;

/// Installs the global meter provider: every instrument recorded from now on is exported
/// (every `OTEL_METRIC_EXPORT_INTERVAL`, 60 s by default).
pub(super) fn start(target: &Target, resource: Resource) -> anyhow::Result<SdkMeterProvider> {
    let mut exporter = MetricExporter::builder().with_http().with_protocol(Protocol::HttpBinary);
    if let Target::Url(url) = target {
        exporter = exporter.with_endpoint(url);
    }
    let exporter = exporter.build().context("cannot create the OTLP metrics exporter")?;
    let provider = SdkMeterProvider::builder().with_periodic_exporter(exporter).with_resource(resource).build();
    opentelemetry::global::set_meter_provider(provider.clone());
    tracing::info!(endpoint = target.describe(), "exporting metrics by OTLP");
    Ok(provider)
}
