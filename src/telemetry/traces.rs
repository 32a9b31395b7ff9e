//! Exporting the spans of `autorma_core::trace` (one trace per photo) by OTLP.

use anyhow::Context;
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};

use super::Target;

/// Spans buffered for export when `OTEL_BSP_MAX_QUEUE_SIZE` does not say: a worker makes
/// about six per photo, hundreds of photos a second, and the SDK's 2,048 would drop some
/// while one export is on its way.
const MAX_QUEUE_SIZE: usize = 16_384;

/// Installs the global tracer provider and the W3C trace-context propagator, so spans are
/// recorded and exported in batches and the records this process produces carry
/// `traceparent`.
pub(super) fn start(target: &Target, resource: Resource) -> anyhow::Result<SdkTracerProvider> {
    let mut exporter = SpanExporter::builder().with_http().with_protocol(Protocol::HttpBinary);
    if let Target::Url(url) = target {
        exporter = exporter.with_endpoint(url);
    }
    let exporter = exporter.build().context("cannot create the OTLP span exporter")?;
    let mut batch = BatchConfigBuilder::default();
    if std::env::var_os("OTEL_BSP_MAX_QUEUE_SIZE").is_none() {
        batch = batch.with_max_queue_size(MAX_QUEUE_SIZE);
    }
    let processor = BatchSpanProcessor::builder(exporter).with_batch_config(batch.build()).build();
    let provider = SdkTracerProvider::builder().with_span_processor(processor).with_resource(resource).build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    autorma_core::trace::enable();
    tracing::info!(endpoint = target.describe(), "exporting traces by OTLP");
    Ok(provider)
}
