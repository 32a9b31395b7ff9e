//! Where outcomes live in the bucket (DESIGN.md): `results/<key>.json` and `dlq/<key>.json`,
//! one object per photo key, replaced (never duplicated) when a photo is classified again.

pub const RESULTS_PREFIX: &str = "results/";
pub const DLQ_PREFIX: &str = "dlq/";
/// People's corrections (`autorma serve`), beside the results.
pub const CORRECTIONS_PREFIX: &str = "corrections/";

/// Result and dead-letter records are small; an object bigger than this under `results/` or
/// `dlq/` is not one of ours.
pub const MAX_RECORD_BYTES: u64 = 1 << 20;

pub fn result_object_key(photo_key: &str) -> String {
    format!("{RESULTS_PREFIX}{photo_key}.json")
}

pub fn dlq_object_key(photo_key: &str) -> String {
    format!("{DLQ_PREFIX}{photo_key}.json")
}

pub fn correction_object_key(photo_key: &str) -> String {
    format!("{CORRECTIONS_PREFIX}{photo_key}.json")
}
