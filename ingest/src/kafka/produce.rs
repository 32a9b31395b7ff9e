//! Producing ItemEvents onto the topics [`KafkaSource`](super::KafkaSource) reads
//! (`rma.items`, `rma.items.replay`): by `autorma ingest` (notifications, reconciliation) and
//! the bulk replay.

use autorma_core::kafka::{KafkaError, send};
use autorma_core::{ItemEvent, trace};
use opentelemetry::KeyValue;
use rdkafka::producer::FutureProducer;

/// Produces one ItemEvent to `topic` (key = object key) and waits for the acknowledgement.
/// Its span begins the photo's trace; the record carries it to the worker.
pub async fn send_item(producer: &FutureProducer, topic: &str, event: &ItemEvent) -> Result<(), KafkaError> {
    let body = serde_json::to_vec(event).expect("an ItemEvent always serialises");
    tracing::debug!(topic, key = %event.key, etag = %event.etag, source = ?event.source, "item event");
    let span = trace::start_send(topic, &event.key, || {
        vec![
            KeyValue::new("autorma.bucket", event.bucket.clone()),
            KeyValue::new("autorma.etag", event.etag.clone()),
            KeyValue::new("autorma.event_source", event.source.as_str()),
        ]
    });
    let headers = trace::headers(&span);
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let sent = send(producer, topic, &event.key, &body, &headers).await;
    trace::end(&span, &sent);
    sent
}
