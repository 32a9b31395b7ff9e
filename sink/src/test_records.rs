//! Records for the sinks' unit tests.

use std::collections::BTreeMap;

use autorma_core::{
    Decision, DlqReason, DlqRecord, EventOrigin, ItemEvent, ItemRef, ModelRef, ResultRecord, ReviewReason, StageTimings,
};
use chrono::Utc;

pub fn event(key: &str, etag: &str) -> ItemEvent {
    ItemEvent {
        bucket: "returns".into(),
        key: key.into(),
        etag: etag.into(),
        size: 1,
        content_type: "image/jpeg".into(),
        event_time: Utc::now(),
        source: EventOrigin::Replay,
        claim: None,
        replay: None,
    }
}

pub fn model() -> ModelRef {
    ModelRef { name: "m".into(), version: "1".into(), sha256: "abc".into() }
}

pub fn result(key: &str, etag: &str, decision: Decision) -> ResultRecord {
    ResultRecord {
        item: ItemRef { bucket: "returns".into(), key: key.into(), etag: etag.into() },
        label: "tops".into(),
        confidence: 0.9,
        probabilities: BTreeMap::from([("shirts".to_string(), 0.1), ("tops".to_string(), 0.9)]),
        decision,
        review_reason: (decision == Decision::Review).then_some(ReviewReason::LowConfidence),
        claim: None,
        model: model(),
        execution_provider: "cpu".into(),
        timings_ms: StageTimings::default(),
        processed_at: Utc::now(),
        read_at: None,
    }
}

pub fn dlq(key: &str, etag: &str) -> DlqRecord {
    DlqRecord {
        reason: DlqReason::DecodeError,
        detail: "bad".into(),
        attempts: 1,
        event: event(key, etag),
        failed_at: Utc::now(),
        read_at: None,
    }
}
