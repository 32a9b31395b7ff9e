//! The current model, shared by the pipeline's stages and whoever swaps it.

use std::sync::{Arc, RwLock};

use super::ServingModel;

#[derive(Clone, Debug)]
pub struct ModelHandle {
    current: Arc<RwLock<Arc<ServingModel>>>,
}

impl ModelHandle {
    pub fn new(model: ServingModel) -> Self {
        Self { current: Arc::new(RwLock::new(Arc::new(model))) }
    }

    /// The model new photos are given to.
    pub fn current(&self) -> Arc<ServingModel> {
        self.current.read().expect("model handle poisoned").clone()
    }

    /// Serves `model` to every photo from now on; photos already holding the old one finish
    /// with it. Returns the old one.
    pub fn swap(&self, model: ServingModel) -> Arc<ServingModel> {
        let new = Arc::new(model);
        let old = std::mem::replace(&mut *self.current.write().expect("model handle poisoned"), new.clone());
        tracing::info!(model = %new.model.name, from_version = %old.model.version, to_version = %new.model.version,
            sha256 = %new.model.sha256, "model swapped: new photos go to the new version");
        old
    }
}
