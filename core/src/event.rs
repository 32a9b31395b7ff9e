//! `ItemEvent`: one photo that arrived (DESIGN.md, "Contracts").

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::claim::Claim;
use crate::outbound::OutboundRecord;
use crate::position::Position;

/// One canonical event per object; ETag + key identify one photo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemEvent {
    /// Bucket that holds the photo (the inbox folder's bucket name in embedded mode).
    pub bucket: String,
    /// Object key, URL-decoded, `/`-separated, relative to the bucket.
    pub key: String,
    /// Version tag of the object's content; a changed photo gets a new etag and is a new item.
    pub etag: String,
    /// Size in bytes as announced by the notification (or seen by the scan).
    pub size: u64,
    /// MIME type guessed from the key's extension; the bytes decide, this is only a hint.
    pub content_type: String,
    /// When the object was created or last modified.
    pub event_time: DateTime<Utc>,
    /// Which path brought the event.
    pub source: EventOrigin,
    /// What the customer says the photo shows, when the event itself carries it (a claims
    /// file in embedded mode); otherwise the worker reads it from the object's metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<Claim>,
    /// Set by the bulk replay only: what it asks of the worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<ReplayRequest>,
}

impl ItemEvent {
    /// The photo it names, as results and shadow records name it.
    pub fn item_ref(&self) -> crate::ItemRef {
        crate::ItemRef { bucket: self.bucket.clone(), key: self.key.clone(), etag: self.etag.clone() }
    }
}

/// What a bulk replay asks of the worker that classifies its photo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayRequest {
    /// The registry version the replay is for. A worker serving an older one looks at its
    /// alias at once and waits (bounded) for the swap, rather than finding its own old result
    /// current and skipping the photo.
    pub model_version: String,
    /// Classify even when the sink holds a result from the serving model (`replay --all`).
    #[serde(default)]
    pub force: bool,
}

/// Which path produced an [`ItemEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventOrigin {
    /// A live notification (bucket notification, or a new file seen by the folder watch).
    Notification,
    /// A listing of what was already there (bulk replay, or the initial folder scan).
    Replay,
    /// The uploads API.
    Upload,
}

impl EventOrigin {
    /// As in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            EventOrigin::Notification => "notification",
            EventOrigin::Replay => "replay",
            EventOrigin::Upload => "upload",
        }
    }
}

/// What a source hands the pipeline: an event to classify, or a position the source handled
/// itself (a message that is not an ItemEvent, dead-lettered), which the pipeline commits in
/// its turn with the source's records.
#[derive(Debug, Clone, PartialEq, Eq)]
// Moved once per event into a queue: boxing the common variant would add an allocation each.
#[allow(clippy::large_enum_variant)]
pub enum Sourced {
    Event(SourcedEvent),
    Handled { position: Position, lane: Lane, records: Vec<OutboundRecord> },
}

impl Sourced {
    pub fn position(&self) -> Position {
        match self {
            Sourced::Event(e) => e.position,
            Sourced::Handled { position, .. } => *position,
        }
    }

    pub fn lane(&self) -> Lane {
        match self {
            Sourced::Event(e) => e.lane,
            Sourced::Handled { lane, .. } => *lane,
        }
    }
}

/// An event together with where it sits in its source, so its completion can be committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcedEvent {
    pub position: Position,
    pub event: ItemEvent,
    pub lane: Lane,
    /// The span that produced the event (its record's `traceparent`), when it was traced: the
    /// photo's spans in the worker continue that trace (see [`crate::trace`]).
    pub trace: Option<opentelemetry::trace::SpanContext>,
    /// Where the event was read, stable across restarts and rebalances (Kafka:
    /// `topic/partition/offset`); `None` for sources that publish no records. The streaming
    /// sink writes it into the outcome, so a redelivery of this very event (whose records
    /// may not have committed) is told from another event of the same photo (whose records
    /// did, or will).
    pub read_at: Option<String>,
    /// Whether the event may have been handled before (a redelivery after a crash or a
    /// rebalance, a reconciliation, a replay): only then is the sink asked for a prior
    /// outcome. A new photo costs no lookup; the sink's conditional write still catches the
    /// rare duplicate.
    pub maybe_done: bool,
}

impl SourcedEvent {
    /// An untraced event of the live lane, looked up before it is classified.
    pub fn live(position: Position, event: ItemEvent) -> Self {
        Self { position, event, lane: Lane::Live, trace: None, read_at: None, maybe_done: true }
    }
}

/// Which queue an event came from. The pipeline serves `Live` first: a bulk replay must never
/// make a photo at the returns bench wait behind the backlog.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Lane {
    /// New photos (`rma.items`, the folder scan).
    #[default]
    Live,
    /// The bulk replay (`rma.items.replay`): served with what live photos leave over.
    Bulk,
}

impl Lane {
    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Live => "live",
            Lane::Bulk => "bulk",
        }
    }
}

/// Guesses the MIME type from a key's extension (`application/octet-stream` when unknown).
pub fn content_type_for_key(key: &str) -> &'static str {
    image_type_for_key(key).unwrap_or("application/octet-stream")
}

/// The image MIME type a key's extension names (jpg, jpeg, png, webp), if any.
pub fn image_type_for_key(key: &str) -> Option<&'static str> {
    let ext = key.rsplit_once('.').map(|(_, ext)| ext.to_ascii_lowercase());
    match ext.as_deref() {
        Some("jpg" | "jpeg") => Some("image/jpeg"),
        Some("png") => Some("image/png"),
        Some("webp") => Some("image/webp"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_follows_extension_case_insensitively() {
        assert_eq!(content_type_for_key("a/b.JPG"), "image/jpeg");
        assert_eq!(content_type_for_key("b.webp"), "image/webp");
        assert_eq!(content_type_for_key("notes.txt"), "application/octet-stream");
        assert_eq!(content_type_for_key("noext"), "application/octet-stream");
    }

    #[test]
    fn event_serialises_with_snake_case_origin() {
        let event = ItemEvent {
            bucket: "returns".into(),
            key: "inbox/a.jpg".into(),
            etag: "abc".into(),
            size: 3,
            content_type: "image/jpeg".into(),
            event_time: DateTime::from_timestamp(0, 0).unwrap(),
            source: EventOrigin::Notification,
            claim: None,
            replay: None,
        };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["source"], "notification");
        assert_eq!(json["event_time"], "1970-01-01T00:00:00Z");
        let back: ItemEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, event);
    }
}
