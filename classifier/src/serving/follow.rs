//! Following a registry alias: notice when it names another version (a poll, or at once when
//! woken), load that version beside the one serving, check it, and swap it in. A version that
//! fails to load or check is refused: logged, recorded in the registry's audit trail, and not
//! tried again; the serving model goes on.

use std::collections::HashSet;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use autorma_registry::{Registry, RegistryError};
use tokio::sync::Notify;

use super::{ModelHandle, ServingModel};
use crate::inference::{InferenceError, RuntimeConfig};
use crate::preprocess::DecodeLimits;

#[derive(Debug, Clone)]
pub struct FollowConfig {
    pub alias: String,
    pub poll_interval: Duration,
    /// Where versions downloaded from a bucket are kept.
    pub cache_dir: PathBuf,
    pub runtime: RuntimeConfig,
    pub limits: DecodeLimits,
    /// Sessions per model: one per inference worker.
    pub workers: usize,
    /// Who a refusal is recorded as (host and process).
    pub worker_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Inference(#[from] InferenceError),
}

impl LoadError {
    /// The store was away: the version is not at fault, try it again at the next poll.
    fn is_transient(&self) -> bool {
        matches!(self, LoadError::Registry(RegistryError::Store(e)) if e.is_retryable())
    }
}

pub struct AliasFollower {
    registry: Registry,
    config: FollowConfig,
    wake: Arc<Notify>,
}

impl AliasFollower {
    pub fn new(registry: Registry, config: FollowConfig) -> Self {
        Self { registry, config, wake: Arc::default() }
    }

    /// Notify it to look at the alias now rather than at the next poll.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// The version the alias names now, loaded and checked: the first model to serve.
    pub async fn load_current(&self) -> Result<ServingModel, LoadError> {
        let alias = &self.config.alias;
        let record = self
            .registry
            .alias(alias)
            .await?
            .ok_or_else(|| RegistryError::NoAlias { model: self.registry.describe(), alias: alias.clone() })?;
        self.load(record.version).await
    }

    async fn load(&self, version: u32) -> Result<ServingModel, LoadError> {
        let package = Arc::new(self.registry.fetch(version, &self.config.cache_dir).await?);
        let (runtime, limits, workers) = (self.config.runtime.clone(), self.config.limits, self.config.workers);
        let model = tokio::task::spawn_blocking(move || ServingModel::load(package, &runtime, limits, workers))
            .await
            .expect("loading a model panicked")?;
        Ok(model)
    }

    /// Keeps `handle` on the alias's version until `shutdown` completes.
    pub async fn run(self, handle: ModelHandle, shutdown: impl Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut refused: HashSet<u32> = HashSet::new();
        let alias = self.config.alias.clone();
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(self.config.poll_interval) => {}
                () = self.wake.notified() => tracing::info!(%alias, "asked to look at the alias now"),
            }
            let version = match self.registry.alias(&alias).await {
                Ok(Some(record)) => record.version,
                Ok(None) => {
                    tracing::warn!(%alias, registry = %self.registry.describe(), "the alias is gone; serving on");
                    continue;
                }
                Err(e) => {
                    tracing::warn!(%alias, error = %e, "cannot read the alias; serving on");
                    continue;
                }
            };
            let serving = handle.current().model.version.clone();
            if serving == version.to_string() || refused.contains(&version) {
                continue;
            }
            tracing::info!(%alias, from_version = %serving, to_version = version, "the alias names a new version; loading it");
            match self.load(version).await {
                Ok(model) => {
                    handle.swap(model);
                }
                Err(e) if e.is_transient() => {
                    tracing::warn!(version, error = %e, "could not fetch the new version; trying again at the next poll");
                }
                Err(e) => {
                    tracing::error!(version, error = %e, serving_version = %serving,
                        "refused the new version; the serving model goes on");
                    refused.insert(version);
                    if let Err(audit) =
                        self.registry.record_refusal(version, &alias, &self.config.worker_id, &e.to_string()).await
                    {
                        tracing::warn!(error = %audit, "could not record the refusal in the registry");
                    }
                }
            }
        }
    }
}
