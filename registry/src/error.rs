use std::path::PathBuf;

use autorma_core::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("model package `{dir}` has no `model.json` (expected a folder with model.onnx + model.json)")]
    MissingManifest { dir: PathBuf },
    #[error("failed to read `{path}`: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to write `{path}`: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path}` is not a valid model.json: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("`{path}`: {detail}")]
    Invalid { path: PathBuf, detail: String },
    #[error("`{path}` has sha256 `{actual}` but model.json says `{expected}`")]
    ChecksumMismatch { path: PathBuf, expected: String, actual: String },
    #[error("registry store: {0}")]
    Store(#[from] StoreError),
    #[error("registry record `{key}` is not valid JSON of its kind: {source}")]
    BadRecord {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{model} has no version {version} (versions: {known:?})")]
    NoSuchVersion { model: String, version: u32, known: Vec<u32> },
    #[error("{model} version {version} is incomplete (its push is still uploading, or died): push it again")]
    Incomplete { model: String, version: u32 },
    #[error(
        "{model} has no alias `{alias}`: promote a version to it first (`autorma model promote N --alias {alias}`)"
    )]
    NoAlias { model: String, alias: String },
    #[error("alias `{alias}` now names version {found}, not {expected}: it was changed meanwhile")]
    AliasMoved { alias: String, expected: u32, found: u32 },
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Conflict(String),
}

impl RegistryError {
    /// The store was away or answered with an error that may pass: trying again may work.
    pub fn is_transient(&self) -> bool {
        matches!(self, RegistryError::Store(e) if e.is_retryable())
    }
}
