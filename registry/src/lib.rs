//! Model packages: loading and validating the folder a model ships in (`model.onnx` +
//! `model.json`, see models/PACKAGE.md).
//!
//! Input: a package directory. Output: a [`ModelPackage`] whose `model.onnx` matches the
//! sha256 in `model.json` and whose classes, thresholds and preprocessing the Rust pipeline
//! knows how to honour, or a [`RegistryError`] that says what is wrong. Nothing is served from
//! a package that did not validate, so a bad package is refused before any photo is judged.
//!
//! Later: versions and aliases on object storage (`models/<name>/versions/<n>/`,
//! `models/<name>/aliases/<alias>.json`), promote and rollback, validation before a hot swap.

mod error;
mod manifest;
mod package;

pub use error::RegistryError;
pub use manifest::{MANIFEST_SCHEMA, Manifest, OnnxSpec, Preprocessing};
pub use package::{ModelPackage, sha256_file};
