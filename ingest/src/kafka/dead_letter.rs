//! Dead letters of Kafka messages that cannot be read at all (a notification that is not S3
//! event JSON, an `rma.items` message that is not an ItemEvent). No ItemEvent exists for them,
//! so the record says where the message was and carries its raw payload.

use autorma_core::{OutboundRecord, topics};
use chrono::Utc;
use serde::Serialize;

use super::RawMessage;

#[derive(Serialize)]
struct RawDeadLetter<'a> {
    reason: &'a str,
    detail: &'a str,
    attempts: u32,
    topic: &'a str,
    partition: i32,
    offset: u64,
    /// The message as it was (lossy UTF-8).
    payload: String,
    failed_at: chrono::DateTime<Utc>,
}

/// The message's dead letter for `rma.dlq` (key `topic/partition/offset`, reason and attempts
/// in headers and body), published with the transaction that commits past the message.
pub fn raw_dead_letter(message: &RawMessage, reason: &str, detail: &str) -> OutboundRecord {
    let record = RawDeadLetter {
        reason,
        detail,
        attempts: 1,
        topic: &message.topic,
        partition: message.partition,
        offset: message.position.offset,
        payload: String::from_utf8_lossy(&message.payload).into_owned(),
        failed_at: Utc::now(),
    };
    let body = serde_json::to_vec(&record).expect("always serialises");
    OutboundRecord::new(topics::DLQ, &message.read_at, body, &[("reason", reason), ("attempts", "1")])
}
