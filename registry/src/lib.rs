//! Model packages and the registry that holds their versions.
//!
//! A package is the folder a model ships in (`model.onnx` + `model.json`, see
//! models/PACKAGE.md): [`ModelPackage::load`] parses it, checks every field the Rust pipeline
//! relies on and verifies the ONNX file's sha256, so a bad package is refused before any photo
//! is judged. (Whether ONNX Runtime can run it is checked by `autorma-classifier`, which owns
//! the runtime, before a push and before a swap.)
//!
//! The [`Registry`] keeps numbered versions and aliases (`production`, `staging`) of one
//! model in a bucket of an `autorma_core::Store`: the streaming bucket, or a local folder in
//! embedded mode (layout in [`records`]). Version numbers are claimed with conditional writes and aliases
//! change by compare-and-swap, so concurrent pushes and promotions cannot collide; every
//! change leaves an audit record.

mod builtin;
mod error;
mod manifest;
mod package;
pub mod records;
mod registry;

pub use builtin::{BUILTIN_PACKAGE, builtin_package};
pub use error::RegistryError;
pub use manifest::{MANIFEST_SCHEMA, Manifest, OnnxSpec, Precision, Preprocessing};
pub use package::{ModelPackage, sha256_file};
pub use records::{Actor, AliasRecord, AuditAction, AuditRecord, TrackingRun, VersionInfo, VersionRecord};
pub use registry::{REGISTRY_PREFIX, Registry, short_sha};
