//! `DlqRecord`: a photo that failed for good, with why (DESIGN.md, "Contracts").
//!
//! Bad input is data, not an outage: it is dead-lettered, counted by reason, and its position
//! is committed like any other.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::ItemEvent;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DlqRecord {
    pub reason: DlqReason,
    /// Human-readable cause (the decoder's or the store's message).
    pub detail: String,
    /// How many times the item was tried before it was dead-lettered.
    pub attempts: u32,
    pub event: ItemEvent,
    pub failed_at: DateTime<Utc>,
    /// The source position of the event that wrote this object (`topic/partition/offset`),
    /// when its source publishes records: how a redelivery of that event knows its records
    /// may not have committed. Absent in embedded mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_at: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DlqReason {
    /// The bytes claim a supported format (JPEG, PNG, WebP) but do not decode (truncated, corrupt).
    DecodeError,
    /// The bytes are not a supported image at all (empty file, text, PDF, GIF...).
    NotAnImage,
    /// Over the size limit (file bytes or pixels), refused before decoding.
    TooLarge,
    /// The object could not be read, and trying again will not help (gone, access refused).
    FetchFailed,
    /// The store kept failing with errors that may pass (timeouts, 5xx) through every retry.
    /// Not final: a redelivery or the reconciliation tries the photo again.
    StoreUnavailable,
    /// The model could not run on it (should not happen for a valid tensor).
    InferenceFailed,
}

impl DlqReason {
    pub const ALL: [DlqReason; 6] = [
        DlqReason::DecodeError,
        DlqReason::NotAnImage,
        DlqReason::TooLarge,
        DlqReason::FetchFailed,
        DlqReason::StoreUnavailable,
        DlqReason::InferenceFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DlqReason::DecodeError => "decode_error",
            DlqReason::NotAnImage => "not_an_image",
            DlqReason::TooLarge => "too_large",
            DlqReason::FetchFailed => "fetch_failed",
            DlqReason::StoreUnavailable => "store_unavailable",
            DlqReason::InferenceFailed => "inference_failed",
        }
    }

    /// Whether this dead letter is the photo's outcome for good. One that says the store was
    /// away is not: the photo is tried again when it comes again.
    pub fn is_final(self) -> bool {
        self != DlqReason::StoreUnavailable
    }
}

impl std::fmt::Display for DlqReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
