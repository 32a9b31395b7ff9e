//! `ResultRecord`: what the classifier decided about one photo (DESIGN.md, "Contracts").

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::claim::ClaimCheck;

/// Written to `results/<key>.json`; a replay of the same photo overwrites it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultRecord {
    pub item: ItemRef,
    /// `classes[argmax]` of the model's output.
    pub label: String,
    /// The largest probability, the one of `label`.
    pub confidence: f32,
    /// Every class's calibrated probability, by class name.
    pub probabilities: BTreeMap<String, f32>,
    /// `auto` when `confidence >= thresholds[label]` and the photo is what its claim says (if
    /// it has one), else `review`.
    pub decision: Decision,
    /// Why a person looks, when `decision` is `review`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_reason: Option<ReviewReason>,
    /// What the customer said they return, and whether the photo agrees; absent without a claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<ClaimCheck>,
    pub model: ModelRef,
    /// The ONNX Runtime execution provider that actually ran the model (`cpu`, `cuda`).
    pub execution_provider: String,
    pub timings_ms: StageTimings,
    pub processed_at: DateTime<Utc>,
    /// The source position of the event that wrote this object (`topic/partition/offset`),
    /// when its source publishes records: how a redelivery of that event knows its records
    /// may not have committed. Absent in embedded mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_at: Option<String>,
}

/// Identifies the photo: ETag + key are its identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemRef {
    pub bucket: String,
    pub key: String,
    pub etag: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Confident enough to route without a person.
    Auto,
    /// Below the label's threshold: a person looks at it.
    Review,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Auto => "auto",
            Decision::Review => "review",
        }
    }
}

/// Why a result goes to review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewReason {
    /// The model's confidence is under its label's threshold.
    LowConfidence,
    /// The model is confident the photo shows another class than the one claimed.
    WrongItem,
}

impl ReviewReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewReason::LowConfidence => "low_confidence",
            ReviewReason::WrongItem => "wrong_item",
        }
    }
}

/// The model package that produced a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRef {
    pub name: String,
    pub version: String,
    /// sha256 of `model.onnx`; a replay skips photos this exact model already classified.
    pub sha256: String,
}

/// Milliseconds spent per stage for this photo.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct StageTimings {
    /// Reading the object's bytes from the store (all attempts).
    pub fetch: f64,
    /// Decoding + letterbox + resize + normalise.
    pub decode: f64,
    /// From the tensor being ready to the start of its batch's inference: filling the
    /// micro-batch (up to its deadline), then waiting for a free inference worker.
    pub batch_wait: f64,
    /// The ONNX Runtime call for the whole batch this photo was in.
    pub infer: f64,
    /// From the end of inference until the sink started writing this record (queueing and
    /// serialisation); the write itself cannot be timed inside the record it writes.
    pub sink: f64,
}
