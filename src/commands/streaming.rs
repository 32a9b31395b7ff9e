//! What `ingest` and `worker` share: connecting to the engines and checking, before any work,
//! that the broker answers, the topics exist and the bucket can be used.

use std::time::Duration;

use anyhow::Context;
use autorma_core::S3Store;

use crate::config::StreamingSettings;

/// How long the start-up checks wait for the broker.
const BROKER_CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// Checks Kafka (reachable, `topics` present) and the bucket, then returns the S3 client.
pub async fn connect(settings: &StreamingSettings, topics: &[&'static str]) -> anyhow::Result<S3Store> {
    let kafka = settings.kafka.clone();
    let topics = topics.to_vec();
    tokio::task::spawn_blocking(move || kafka.check_topics(&topics, BROKER_CHECK_TIMEOUT))
        .await
        .expect("broker check panicked")?;
    let store = connect_bucket(settings).await?;
    tracing::info!(brokers = %settings.kafka.brokers, endpoint = settings.s3.endpoint.as_deref().unwrap_or("AWS S3"),
        bucket = %settings.bucket, "connected to Kafka and S3");
    Ok(store)
}

/// The S3 client, once the bucket answers (for commands that need no broker).
pub async fn connect_bucket(settings: &StreamingSettings) -> anyhow::Result<S3Store> {
    let store = S3Store::connect(&settings.s3).await;
    store
        .check_bucket(&settings.bucket)
        .await
        .context("cannot use the bucket (set it with --bucket or AUTORMA_BUCKET)")?;
    Ok(store)
}
