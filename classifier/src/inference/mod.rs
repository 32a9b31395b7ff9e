//! ONNX Runtime: loading the library, one session per worker, and turning the model's
//! probabilities into decisions.

mod decision;
mod embedding;
mod runtime;
mod session;

pub use decision::{Prediction, Verdict, decide, judge, product_check};
pub use embedding::{EmbeddingSession, cosine};
pub use runtime::{ExecutionProvider, ORT_VERSION, RuntimeConfig, SETUP_COMMAND, default_library_path, init_runtime};
pub use session::ModelSession;

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum InferenceError {
    #[error(
        "ONNX Runtime library not found at `{path}`; run `{SETUP_COMMAND}` once, or point \
         `--ort-library` / `AUTORMA_ORT_LIBRARY` at a libonnxruntime.so {ORT_VERSION}"
    )]
    LibraryMissing { path: PathBuf },
    #[error("failed to load ONNX Runtime from `{path}`: {detail}")]
    LibraryLoad { path: PathBuf, detail: String },
    #[error("ONNX Runtime is already loaded from `{loaded}`; cannot switch to `{requested}` in one process")]
    LibraryConflict { loaded: PathBuf, requested: PathBuf },
    #[error("execution provider `{provider}` is not available: {detail}")]
    ProviderUnavailable { provider: &'static str, detail: String },
    #[error("failed to create a session for `{model}`: {detail}")]
    Session { model: PathBuf, detail: String },
    #[error("model `{model}` does not match model.json: {detail}")]
    Signature { model: PathBuf, detail: String },
    #[error("{model} failed the probe check: {detail}")]
    Probe { model: String, detail: String },
    #[error("inference on a batch of {batch_size} failed: {detail}")]
    Run { batch_size: usize, detail: String },
}
