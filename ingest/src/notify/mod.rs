//! `autorma ingest`: bucket notifications in, ItemEvents out.
//!
//! ```text
//! rma.uploads.raw ─parse + filter─▶ rma.items (one ItemEvent per photo, key = object key)
//!                 └─malformed────▶ rma.dlq   (reason + raw payload)
//! bucket listing (start + every few minutes) ─photos with no outcome─▶ rma.items
//! ```
//! Delivery guarantee: a batch's ItemEvents and its input offsets commit in one Kafka
//! transaction, so a crash emits no event twice to a `read_committed` reader.
//! Notifications are not a ledger (a broker outage drops them at the S3 server), so the
//! reconciliation lists the inbox and sends what has neither a result nor a dead letter.

mod error;
mod parse;
mod reconcile;
mod service;

pub use error::IngestError;
pub use parse::{KeyEncoding, Malformed, NotificationFilter, Parsed, parse_notification};
pub use reconcile::{Confirmed, ReconcileConfig, ReconcileSummary, Window, list_unfinished};
pub use service::{IngestConfig, run_ingest};
