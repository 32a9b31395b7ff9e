//! What can stop a feed.

use autorma_core::StoreError;
use autorma_sink::index::IndexError;
use rdkafka::error::KafkaError;

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("cannot read `{path}`: {source}")]
    Folder {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot list `{prefix}` in bucket `{bucket}`: {source}")]
    List {
        bucket: String,
        prefix: String,
        /// Boxed: a store error is large, and this one is rare.
        #[source]
        source: Box<StoreError>,
    },
    /// `what` says which step: creating the consumer, reading the partitions, assigning.
    #[error("{what}: {source}")]
    Kafka {
        what: String,
        #[source]
        source: KafkaError,
    },
}

/// Names the Kafka step that failed.
pub(crate) fn kafka_step(what: impl Into<String>) -> impl FnOnce(KafkaError) -> FeedError {
    let what = what.into();
    move |source| FeedError::Kafka { what, source }
}
