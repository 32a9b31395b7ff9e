use std::path::PathBuf;

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
}
