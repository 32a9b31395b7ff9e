//! The model being served, and changing it while photos flow.
//!
//! A [`ServingModel`] is one package made ready: its sessions (one per inference worker), its
//! preprocessing, the identity results name, all checked on the built-in probe photos
//! ([`probe`]) before anything is served. The pipeline reads the current one from a
//! [`ModelHandle`] once per photo, and the photo carries it to the end: it is preprocessed,
//! batched (a batch never mixes models), inferred and recorded by the same model. Swapping the
//! handle therefore takes effect between batches, and the old model is dropped when its last
//! photo is written. [`follow`] keeps a handle on the version a registry alias names.

pub mod follow;
mod handle;
pub mod probe;
mod shadow;

use std::sync::{Arc, Mutex, MutexGuard};

use autorma_core::ModelRef;
use autorma_registry::ModelPackage;

pub use follow::{AliasFollower, FollowConfig, LoadError, ShadowFollow};
pub use handle::ModelHandle;
pub use shadow::{ShadowHandle, ShadowModel, Tripped, WatchConfig};

use crate::catalogue::EmbeddingCache;
use crate::inference::{EmbeddingSession, InferenceError, ModelSession, RuntimeConfig};
use crate::preprocess::{DecodeLimits, Preprocessor};

pub struct ServingModel {
    pub package: Arc<ModelPackage>,
    /// What results name: name, version and sha256.
    pub model: ModelRef,
    pub classes: Arc<[String]>,
    pub preprocessor: Preprocessor,
    /// The execution provider the sessions run on (`cpu`, `cuda`).
    pub execution_provider: &'static str,
    /// One per inference worker; a worker only ever locks its own, so the lock never waits.
    sessions: Vec<Mutex<ModelSession>>,
    /// The product check's sessions, one per worker as above; empty for a package without an
    /// embedding graph.
    embedders: Vec<Mutex<EmbeddingSession>>,
    /// Catalogue photos' embeddings by this model, by SKU.
    pub catalogue_embeddings: EmbeddingCache,
}

impl ServingModel {
    /// Creates `workers` sessions and checks the model on the probe photos. Blocking (it
    /// loads the model): call it on a blocking thread.
    pub fn load(
        package: Arc<ModelPackage>,
        runtime: &RuntimeConfig,
        limits: DecodeLimits,
        workers: usize,
    ) -> Result<Self, InferenceError> {
        let mut sessions =
            (0..workers.max(1)).map(|_| ModelSession::new(&package, runtime)).collect::<Result<Vec<_>, _>>()?;
        let mut embedders = (0..workers.max(1))
            .map(|_| EmbeddingSession::new(&package, runtime))
            .filter_map(Result::transpose)
            .collect::<Result<Vec<_>, _>>()?;
        let preprocessor = Preprocessor::for_package(&package, limits);
        probe::check(&preprocessor, &mut sessions[0], embedders.first_mut())?;
        Ok(Self {
            embedders: embedders.into_iter().map(Mutex::new).collect(),
            catalogue_embeddings: EmbeddingCache::default(),
            model: sessions[0].model().clone(),
            execution_provider: sessions[0].execution_provider(),
            classes: package.classes().to_vec().into(),
            preprocessor,
            package,
            sessions: sessions.into_iter().map(Mutex::new).collect(),
        })
    }

    /// The session of inference worker `worker`.
    pub(crate) fn session(&self, worker: usize) -> MutexGuard<'_, ModelSession> {
        self.sessions[worker % self.sessions.len()].lock().expect("session lock poisoned")
    }

    /// The embedding session of inference worker `worker`; `None` when the package has no
    /// embedding graph.
    pub(crate) fn embedder(&self, worker: usize) -> Option<MutexGuard<'_, EmbeddingSession>> {
        (!self.embedders.is_empty())
            .then(|| self.embedders[worker % self.embedders.len()].lock().expect("session lock poisoned"))
    }

    /// The product check's threshold: the cosine similarity under which a return is not the
    /// claimed product; `None` without an embedding graph.
    pub fn product_threshold(&self) -> Option<f32> {
        self.package.manifest.embedding.as_ref().map(|e| e.threshold)
    }
}

impl std::fmt::Debug for ServingModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServingModel")
            .field("model", &self.model)
            .field("execution_provider", &self.execution_provider)
            .field("sessions", &self.sessions.len())
            .field("embedders", &self.embedders.len())
            .finish()
    }
}
