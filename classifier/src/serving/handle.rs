//! The current model, shared by the pipeline's stages and whoever swaps it.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use autorma_core::metrics::metrics;
use tokio::sync::{Notify, watch};

use super::ServingModel;

#[derive(Clone, Debug)]
pub struct ModelHandle {
    current: Arc<watch::Sender<Arc<ServingModel>>>,
    /// Notified when a photo asks for a version this handle does not serve (the follower then
    /// looks at the alias at once).
    wanted: Arc<Notify>,
    /// Versions the follower refused: nobody waits for them.
    refused: Arc<Mutex<HashSet<String>>>,
}

impl ModelHandle {
    pub fn new(model: ServingModel) -> Self {
        metrics().record_model(&model.model, model.execution_provider, true);
        metrics().start_counts(&model.classes);
        Self { current: Arc::new(watch::Sender::new(Arc::new(model))), wanted: Arc::default(), refused: Arc::default() }
    }

    /// The model new photos are given to.
    pub fn current(&self) -> Arc<ServingModel> {
        self.current.borrow().clone()
    }

    /// Serves `model` to every photo from now on; photos already holding the old one finish
    /// with it. Returns the old one.
    pub fn swap(&self, new: Arc<ServingModel>) -> Arc<ServingModel> {
        let old = self.current.send_replace(new.clone());
        metrics().record_model(&old.model, old.execution_provider, false);
        metrics().record_model(&new.model, new.execution_provider, true);
        metrics().start_counts(&new.classes);
        tracing::info!(model = %new.model.name, from_version = %old.model.version, to_version = %new.model.version,
            sha256 = %new.model.sha256, "model swapped: new photos go to the new version");
        old
    }

    /// The model for a photo that asks for registry version `version` (a replay): the current
    /// one, once it is that version, or at once when that cannot come (the version was
    /// refused, is not newer than the serving one, or `timeout` passed).
    pub async fn wait_for_version(&self, version: &str, timeout: Duration) -> Arc<ServingModel> {
        let current = self.current();
        let newer = match (version.parse::<u64>(), current.model.version.parse::<u64>()) {
            (Ok(wanted), Ok(serving)) => wanted > serving,
            _ => false,
        };
        if !newer || self.is_refused(version) {
            return current;
        }
        self.wanted.notify_one();
        let mut changes = self.current.subscribe();
        let arrived = tokio::time::timeout(timeout, changes.wait_for(|m| m.model.version == version)).await;
        if !matches!(arrived, Ok(Ok(_))) {
            tracing::warn!(wanted = version, serving = %self.current().model.version, ?timeout,
                "a replayed photo waited for a version this worker does not serve; classified with the serving one");
        }
        self.current()
    }

    /// Where the follower hears that a photo wants a newer version.
    pub fn wanted(&self) -> Arc<Notify> {
        self.wanted.clone()
    }

    pub fn refuse(&self, version: &str) {
        self.refused.lock().expect("refused set poisoned").insert(version.to_string());
    }

    pub fn is_refused(&self, version: &str) -> bool {
        self.refused.lock().expect("refused set poisoned").contains(version)
    }
}
