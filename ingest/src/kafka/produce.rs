//! Producing ItemEvents onto the topics [`KafkaSource`](super::KafkaSource) reads
//! (`rma.items`, `rma.items.replay`): by `autorma ingest` (notifications, in its transactions;
//! reconciliation) and the bulk replay.

use autorma_core::kafka::{KafkaError, send};
use autorma_core::{ItemEvent, OutboundRecord, trace};
use opentelemetry::KeyValue;
use rdkafka::producer::FutureProducer;

/// The record of one ItemEvent (key = object key). Its span begins the photo's trace; the
/// record's `traceparent` carries it to the worker. The span ends here: what follows it is
/// the worker's.
pub fn item_record(topic: &str, event: &ItemEvent) -> OutboundRecord {
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
    trace::end::<(), String>(&span, &Ok(()));
    OutboundRecord { topic: topic.to_string(), key: event.key.clone(), payload: body, headers }
}

/// Produces one ItemEvent outside any transaction (the reconciliation and the replay, which
/// consume nothing) and waits for the acknowledgement.
pub async fn send_item(producer: &FutureProducer, topic: &str, event: &ItemEvent) -> Result<(), KafkaError> {
    let record = item_record(topic, event);
    let headers: Vec<(&str, &str)> = record.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    send(producer, topic, &record.key, &record.payload, &headers).await
}
