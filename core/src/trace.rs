//! Traces: one per photo, begun by whoever produces its ItemEvent (`autorma ingest` for a
//! notification or a reconciliation, the replay job) and continued by the worker's stages down
//! to the sink. The context crosses Kafka in the record's W3C `traceparent` (and `tracestate`)
//! header. Like the metrics, all of it goes through the OpenTelemetry API: spans are no-ops and
//! no header is written until the binary installs a tracer provider and the W3C propagator
//! (when a traces endpoint is configured).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use opentelemetry::global::{self, BoxedTracer};
#[cfg(feature = "kafka")]
use opentelemetry::propagation::Extractor;
use opentelemetry::propagation::Injector;
#[cfg(feature = "kafka")]
use opentelemetry::trace::SpanContext;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};
#[cfg(feature = "kafka")]
use rdkafka::message::Headers;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Called by the binary once it has installed a tracer provider: until then no span is made,
/// so a process without a traces endpoint spends nothing on them.
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

pub fn is_enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The instrumentation scope of every AutoRMA span.
pub fn tracer() -> BoxedTracer {
    global::tracer("autorma")
}

/// Starts the span that produces `key`'s record on `topic` (with `attributes()`, made only
/// when tracing is on); with no parent, it is the root of the photo's trace. Its headers
/// ([`headers`]) go with the record; end it with [`end`] once the broker acknowledged.
pub fn start_send(topic: &str, key: &str, attributes: impl FnOnce() -> Vec<KeyValue>) -> Context {
    if !is_enabled() {
        return Context::new();
    }
    let mut attributes = attributes();
    attributes.extend([
        KeyValue::new("messaging.system", "kafka"),
        KeyValue::new("messaging.operation.type", "send"),
        KeyValue::new("messaging.destination.name", topic.to_string()),
        KeyValue::new("messaging.kafka.message.key", key.to_string()),
    ]);
    let tracer = tracer();
    let span = tracer
        .span_builder(format!("send {topic}"))
        .with_kind(SpanKind::Producer)
        .with_attributes(attributes)
        .start_with_context(&tracer, &Context::new());
    Context::new().with_span(span)
}

/// Starts a child span of `parent`'s span (an in-process stage), now or at `start`; nothing
/// when `parent` has no span (tracing is off, or the work is not traced).
pub fn start_child(parent: &Context, name: &'static str, start: Option<SystemTime>) -> Context {
    if !parent.has_active_span() {
        return Context::new();
    }
    let tracer = tracer();
    let mut builder = tracer.span_builder(name);
    builder.start_time = start;
    parent.with_span(tracer.build_with_context(builder, parent))
}

/// A finished child span of `parent`'s span, from `start` to `end` (a stage timed elsewhere,
/// such as a photo's wait for its batch).
pub fn record_child(
    parent: &Context,
    name: &'static str,
    start: SystemTime,
    end: SystemTime,
    attributes: impl FnOnce() -> Vec<KeyValue>,
    error: Option<&dyn std::fmt::Display>,
) {
    let cx = start_child(parent, name, Some(start));
    let span = cx.span();
    if span.is_recording() {
        span.set_attributes(attributes());
        if let Some(error) = error {
            span.set_status(Status::error(error.to_string()));
        }
    }
    span.end_with_timestamp(end);
}

/// Ends `cx`'s span with the outcome of its work: an error marks it failed.
pub fn end<T, E: std::fmt::Display>(cx: &Context, outcome: &Result<T, E>) {
    let span = cx.span();
    if let Err(error) = outcome {
        span.set_status(Status::error(error.to_string()));
    }
    span.end();
}

/// The trace headers of `cx`'s span, to send with a record: none while tracing is off.
pub fn headers(cx: &Context) -> Vec<(String, String)> {
    let mut headers = HeaderList(Vec::new());
    global::get_text_map_propagator(|propagator| propagator.inject_context(cx, &mut headers));
    headers.0
}

/// The remote parent a consumed record's headers carry, if any (and tracing is on).
#[cfg(feature = "kafka")]
pub fn parent_from(headers: Option<&impl Headers>) -> Option<SpanContext> {
    let headers = KafkaHeaders(headers?);
    let cx = global::get_text_map_propagator(|propagator| propagator.extract(&headers));
    let parent = cx.span().span_context().clone();
    parent.is_valid().then_some(parent)
}

struct HeaderList(Vec<(String, String)>);

impl Injector for HeaderList {
    fn set(&mut self, key: &str, value: String) {
        // The propagator writes `tracestate` even when it is empty.
        if !value.is_empty() {
            self.0.push((key.to_string(), value));
        }
    }
}

#[cfg(feature = "kafka")]
struct KafkaHeaders<'a, H>(&'a H);

#[cfg(feature = "kafka")]
impl<H: Headers> Extractor for KafkaHeaders<'_, H> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|h| h.key == key).and_then(|h| std::str::from_utf8(h.value?).ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|h| h.key).collect()
    }
}

#[cfg(all(test, feature = "kafka"))]
mod tests {
    use opentelemetry::trace::{SpanId, TraceFlags, TraceId, TraceState};
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use rdkafka::message::{Header, OwnedHeaders};

    use super::*;

    #[test]
    fn a_context_survives_the_trip_through_kafka_headers() {
        global::set_text_map_propagator(TraceContextPropagator::new());
        let sent = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        let written = headers(&Context::new().with_remote_span_context(sent.clone()));
        assert_eq!(
            written,
            vec![("traceparent".to_string(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_string())]
        );

        let mut record = OwnedHeaders::new().insert(Header { key: "reason", value: Some("x") });
        for (key, value) in &written {
            record = record.insert(Header { key, value: Some(value.as_bytes()) });
        }
        let parent = parent_from(Some(&record)).expect("a parent");
        assert_eq!((parent.trace_id(), parent.span_id()), (sent.trace_id(), sent.span_id()));
        assert!(parent.is_remote());

        assert!(parent_from(Some(&OwnedHeaders::new())).is_none());
        assert!(parent_from(None::<&OwnedHeaders>).is_none());
    }
}
