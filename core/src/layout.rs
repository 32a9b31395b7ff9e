//! Where outcomes live in the bucket (DESIGN.md): `results/<key>.json` and `dlq/<key>.json`,
//! one object per photo key, replaced (never duplicated) when a photo is classified again.

pub const RESULTS_PREFIX: &str = "results/";
pub const DLQ_PREFIX: &str = "dlq/";
/// People's corrections (`autorma serve`), beside the results.
pub const CORRECTIONS_PREFIX: &str = "corrections/";
/// The model registry's versions and aliases (`autorma model`).
pub const REGISTRY_PREFIX: &str = "models/";
/// The product check's catalogue photos, `catalogue/<sku>.jpg`.
pub const CATALOGUE_PREFIX: &str = "catalogue/";

/// The prefixes of the objects the system keeps for itself: never returns to classify, even
/// when the inbox prefix is the whole bucket.
const OWN_PREFIXES: [&str; 5] = [RESULTS_PREFIX, DLQ_PREFIX, CORRECTIONS_PREFIX, REGISTRY_PREFIX, CATALOGUE_PREFIX];

/// Result and dead-letter records are small; an object bigger than this under `results/` or
/// `dlq/` is not one of ours.
pub const MAX_RECORD_BYTES: u64 = 1 << 20;

/// Whether an object under the inbox prefix goes to the pipeline. Every object does, whatever
/// its name or declared type: upload apps and cameras store photos under a bare UUID, and the
/// worker decides from the bytes (a photo is classified, anything else dead-lettered
/// `not_an_image`). Left out: folder markers, an interrupted write's temporary file and the
/// system's own objects.
pub fn is_inbox_object(key: &str) -> bool {
    let name = key.rsplit('/').next().unwrap_or(key);
    !key.ends_with('/') && !name.contains(crate::fsutil::TMP_MARKER) && !OWN_PREFIXES.iter().any(|p| key.starts_with(p))
}

pub fn result_object_key(photo_key: &str) -> String {
    format!("{RESULTS_PREFIX}{photo_key}.json")
}

pub fn dlq_object_key(photo_key: &str) -> String {
    format!("{DLQ_PREFIX}{photo_key}.json")
}

pub fn correction_object_key(photo_key: &str) -> String {
    format!("{CORRECTIONS_PREFIX}{photo_key}.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_inbox_object_but_markers_temporaries_and_our_own_goes_to_the_pipeline() {
        for key in ["inbox/a.jpg", "inbox/e2e/0b5e2c1a-77d4-4b8e-9a51-3f0c2a9d1e6b", "inbox/notes.txt", "photo"] {
            assert!(is_inbox_object(key), "{key}");
        }
        for key in [
            "inbox/",
            "inbox/.a.jpg.autorma-tmp-12-3",
            "results/inbox/a.jpg.json",
            "dlq/a.json",
            "corrections/a.json",
            "models/fashion5/aliases/production.json",
        ] {
            assert!(!is_inbox_object(key), "{key}");
        }
    }
}
