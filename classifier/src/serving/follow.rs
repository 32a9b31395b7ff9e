//! Following a registry alias: notice when it names another version (a poll, or at once when
//! woken), load that version beside the one serving, check it, and swap it in. A version that
//! fails to load or check is refused: logged, recorded in the registry's audit trail, and not
//! tried again; the serving model goes on. A replayed photo that asks for a newer version than
//! the one served wakes the follower too (see [`ModelHandle::wait_for_version`]).

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
    /// The store was away: the version is not at fault, try it again (at the next poll).
    pub fn is_transient(&self) -> bool {
        matches!(self, LoadError::Registry(e) if e.is_transient())
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

    /// The version the alias names now, loaded and checked, as the handle to serve from. If
    /// it is refused, the versions the alias named before are tried, newest first, so a
    /// restart never stops a fleet that was serving: a refusal is recorded either way.
    pub async fn load_current(&self) -> Result<ModelHandle, LoadError> {
        let alias = &self.config.alias;
        let record = self
            .registry
            .alias(alias)
            .await?
            .ok_or_else(|| RegistryError::NoAlias { model: self.registry.describe(), alias: alias.clone() })?;
        let mut refused: Vec<u32> = Vec::new();
        let mut first_error = None;
        for version in std::iter::once(record.version).chain(record.previous.iter().rev().copied()) {
            match self.load(version).await {
                Ok(model) => {
                    if first_error.is_some() {
                        tracing::error!(%alias, named = record.version, serving = version,
                            "the alias names a version this worker refused; serving the one it named before");
                    }
                    let handle = ModelHandle::new(model);
                    for version in refused {
                        handle.refuse(&version.to_string());
                    }
                    return Ok(handle);
                }
                Err(e) if e.is_transient() => return Err(e),
                Err(e) => {
                    self.refuse(version, &e).await;
                    refused.push(version);
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.expect("the alias names at least one version"))
    }

    /// Logs a refusal and records it in the registry's audit trail.
    async fn refuse(&self, version: u32, error: &LoadError) {
        tracing::error!(version, %error, "refused this model version");
        self.registry.record_refusal(version, &self.config.alias, &self.config.worker_id, &error.to_string()).await;
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
        let alias = self.config.alias.clone();
        let wanted = handle.wanted();
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(self.config.poll_interval) => {}
                () = self.wake.notified() => tracing::info!(%alias, "asked to look at the alias now"),
                () = wanted.notified() => tracing::info!(%alias, "a replayed photo asks for a newer version; looking now"),
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
            if serving == version.to_string() || handle.is_refused(&version.to_string()) {
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
                    tracing::error!(serving_version = %serving, "the serving model goes on");
                    handle.refuse(&version.to_string());
                    self.refuse(version, &e).await;
                }
            }
        }
    }
}
