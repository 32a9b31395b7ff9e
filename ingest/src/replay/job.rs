//! One replay run: plan it against the model behind the alias, then send it. The
//! `autorma replay` command and the schedule both run this.

use autorma_core::S3Store;
use autorma_core::kafka::KafkaError;
use autorma_core::metrics::metrics;
use autorma_registry::{Registry, RegistryError};
use rdkafka::producer::FutureProducer;

use super::plan::{CurrentModel, ReplayFilter, plan_replay};
use super::send::{ReplaySummary, send_replay};

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("replay: {0}")]
    Registry(#[from] RegistryError),
    #[error("replay: listing the bucket failed: {0}")]
    Store(#[from] autorma_core::StoreError),
    #[error("replay: {0}")]
    Kafka(#[from] KafkaError),
}

#[derive(Clone)]
pub struct ReplayJob {
    pub store: S3Store,
    pub bucket: String,
    pub producer: FutureProducer,
    pub registry: Registry,
    /// Results from the version behind this alias are current.
    pub alias: String,
    pub filter: ReplayFilter,
    /// Send every listed photo, current results or not.
    pub all: bool,
    /// Most events sent per second.
    pub rate: f64,
}

impl ReplayJob {
    /// Plans and sends; `progress(sent, total)` follows the sending.
    pub async fn run(&self, mut progress: impl FnMut(usize, usize)) -> Result<ReplaySummary, ReplayError> {
        let alias = self
            .registry
            .alias(&self.alias)
            .await?
            .ok_or_else(|| RegistryError::NoAlias { model: self.registry.describe(), alias: self.alias.clone() })?;
        let current = CurrentModel { name: self.registry.name().to_string(), version: alias.version.to_string() };
        let plan = plan_replay(&self.store, &self.bucket, &self.filter, &current, self.all).await?;
        tracing::info!(listed = plan.listed, skipped = plan.skipped, to_send = plan.events.len(),
            model = ?current, all = self.all, prefix = %self.filter.prefix, "replay planned");
        let total = plan.events.len();
        metrics().record_replay("listed", plan.listed);
        metrics().record_replay("skipped", plan.skipped);
        let mut counted = 0;
        let sent = send_replay(&self.producer, &plan.events, self.rate, |sent| {
            metrics().record_replay("sent", sent - counted);
            counted = sent;
            progress(sent, total);
        })
        .await?;
        let summary = ReplaySummary { listed: plan.listed, skipped: plan.skipped, sent };
        tracing::info!(listed = summary.listed, skipped = summary.skipped, sent = summary.sent, "replay sent");
        Ok(summary)
    }
}
