//! The messages that travel between AutoRMA's stages and the three boundary traits the
//! pipeline is written against.
//!
//! Inputs and outputs: an [`EventSource`] yields [`ItemEvent`]s (one per uploaded photo, each
//! with its [`Position`] in a partition); the classifier reads the photo's bytes from an
//! [`ObjectStore`]; a [`ResultSink`] takes a [`ResultRecord`] or a [`DlqRecord`] and its `Ok` is
//! the acknowledgement that lets the source commit.
//!
//! Delivery guarantee: this crate holds no state. The contract it states is at-least-once
//! delivery from sources plus idempotent results keyed by object key (a replay overwrites
//! `results/<key>.json`, never adds a second one), which together classify each photo once;
//! the records a sink returns ([`OutboundRecord`]) are published by the source with the
//! [`Checkpoint`] that passes their photo, so on Kafka each is committed once.
//!
//! Each trait has an embedded implementation for `autorma run` on one machine (a local folder
//! as the store here in [`store::local`], a folder scan in `autorma-ingest`, local files in
//! `autorma-sink`); the streaming ones beside them: S3 here in [`store::s3`], Kafka (whose shared
//! settings and topic names are in [`kafka`]) in `autorma-ingest` and `autorma-sink`. The
//! object store is the whole boundary to objects (get, put, conditional put, list, delete), so
//! the registry, the API and the replay use it too; [`store::memory`] serves unit tests.

pub mod claim;
pub mod correction;
pub mod dlq;
pub mod event;
pub mod fsutil;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod layout;
pub mod metrics;
pub mod outbound;
pub mod position;
pub mod result;
pub mod retry;
pub mod shadow;
pub mod sink;
pub mod source;
pub mod store;
#[cfg(any(test, feature = "testsuite"))]
pub mod testsuite;
pub mod topics;
pub mod trace;

pub use claim::{CheckOutcome, Claim, ClaimCheck, Metadata, ProductCheck};
pub use correction::CorrectionRecord;
pub use dlq::{DlqReason, DlqRecord};
pub use event::{EventOrigin, ItemEvent, Lane, ReplayRequest, Sourced, SourcedEvent};
pub use outbound::OutboundRecord;
pub use position::{PartitionId, Position};
pub use result::{Decision, ItemRef, ModelRef, ResultRecord, ReviewReason, StageTimings};
pub use retry::RetryConfig;
pub use sink::{Prior, PriorOutcome, ResultSink, SinkError};
pub use source::{Checkpoint, EventSource, SourceError};
pub use store::{
    ListPage, LocalStore, MemoryStore, Object, ObjectInfo, ObjectStore, Store, StoreError, WriteCondition,
};
#[cfg(feature = "s3")]
pub use store::{S3Config, S3Store};
