//! A photo's spans in the pipeline: `classify photo`, continuing the trace its event's
//! producer began (see `autorma_core::trace`), with one child per stage: fetch, decode,
//! batch_wait, infer, sink (or dead_letter). The context rides along in the stages' messages;
//! the photo span ends with the photo's outcome (or, if the photo is dropped, when its last
//! message is).

use std::time::{Duration, SystemTime};

pub(crate) use autorma_core::trace::{end, start_child};
use autorma_core::{DlqReason, ResultRecord, SourcedEvent, trace};
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};

/// Starts the photo's span, a child of the span that produced its event when there was one
/// (nothing while tracing is off).
pub(crate) fn start_photo(sourced: &SourcedEvent) -> Context {
    if !trace::is_enabled() {
        return Context::new();
    }
    let parent = match &sourced.trace {
        Some(remote) => Context::new().with_remote_span_context(remote.clone()),
        None => Context::new(),
    };
    let tracer = trace::tracer();
    let span = tracer
        .span_builder("classify photo")
        .with_kind(if sourced.trace.is_some() { SpanKind::Consumer } else { SpanKind::Internal })
        .with_attributes([
            KeyValue::new("autorma.bucket", sourced.event.bucket.clone()),
            KeyValue::new("autorma.key", sourced.event.key.clone()),
            KeyValue::new("autorma.partition", sourced.position.partition as i64),
            KeyValue::new("autorma.offset", sourced.position.offset as i64),
            KeyValue::new("autorma.lane", sourced.lane.as_str()),
        ])
        .start_with_context(&tracer, &parent);
    parent.with_span(span)
}

/// The photo's wait for its batch and its share of the batch's inference (failed with
/// `error`), timed by the inference thread.
pub(crate) fn record_batch_stages(
    photo: &Context,
    waited: Duration,
    infer_started: SystemTime,
    infer_done: SystemTime,
    batch_attributes: impl FnOnce() -> Vec<KeyValue>,
    error: Option<&dyn std::fmt::Display>,
) {
    trace::record_child(photo, "batch_wait", infer_started - waited, infer_started, Vec::new, None);
    trace::record_child(photo, "infer", infer_started, infer_done, batch_attributes, error);
}

/// Ends the photo's span with its result.
pub(crate) fn finish_classified(photo: &Context, record: &ResultRecord) {
    let span = photo.span();
    span.set_attributes([
        KeyValue::new("autorma.outcome", "classified"),
        KeyValue::new("autorma.label", record.label.clone()),
        KeyValue::new("autorma.decision", record.decision.as_str()),
        KeyValue::new("autorma.confidence", f64::from(record.confidence)),
        KeyValue::new("autorma.model.version", record.model.version.clone()),
        KeyValue::new("autorma.execution_provider", record.execution_provider.clone()),
    ]);
    span.end();
}

/// Ends the photo's span as dead-lettered (an error, with the reason).
pub(crate) fn finish_dead_lettered(photo: &Context, reason: DlqReason, detail: &str) {
    let span = photo.span();
    span.set_attributes([
        KeyValue::new("autorma.outcome", "dead_lettered"),
        KeyValue::new("autorma.dlq.reason", reason.as_str()),
    ]);
    span.set_status(Status::error(format!("{reason}: {detail}")));
    span.end();
}

/// Ends the photo's span with an `outcome` that writes nothing: `already_done` by an earlier
/// run (a redelivery), `dropped_revoked` (its partition moved to another worker).
pub(crate) fn finish_without_write(photo: &Context, outcome: &'static str) {
    let span = photo.span();
    span.set_attribute(KeyValue::new("autorma.outcome", outcome));
    span.end();
}
