//! The topics of DESIGN.md. Created by `infra/engines/topics.sh` (never auto-created: a typo
//! in a name must be an error, not a new empty topic).

/// The bucket's notifications (S3 event JSON), as the S3 server publishes them.
pub const UPLOADS_RAW: &str = "rma.uploads.raw";
/// One ItemEvent per photo, key = object key.
pub const ITEMS: &str = "rma.items";
/// ItemEvents of the bulk replay (served after the live topic).
pub const ITEMS_REPLAY: &str = "rma.items.replay";
/// One Result per classified photo, key = object key.
pub const RESULTS: &str = "rma.results";
/// The Results whose decision is `review`.
pub const REVIEW: &str = "rma.review";
/// Dead letters: reason and attempts in headers and body.
pub const DLQ: &str = "rma.dlq";
/// A person's label for a photo (CorrectionRecord), key = object key.
pub const CORRECTIONS: &str = "rma.corrections";
/// Photos a second model ran beside production (ShadowRecord), key = object key: never Results.
pub const SHADOW: &str = "rma.shadow";
