//! Loading a package folder: parse, check the contract, verify the checksum.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::RegistryError;
use crate::manifest::{MANIFEST_SCHEMA, Manifest};
use crate::records::TrackingRun;

/// A validated model package.
#[derive(Debug, Clone)]
pub struct ModelPackage {
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// Absolute path of the verified `model.onnx`.
    pub onnx_path: PathBuf,
    /// Absolute path of the verified embedding graph, when the package has one.
    pub embedding_path: Option<PathBuf>,
}

impl ModelPackage {
    /// Reads `<dir>/model.json`, validates it and verifies `model.onnx`'s sha256.
    pub fn load(dir: &Path) -> Result<Self, RegistryError> {
        let manifest_path = dir.join("model.json");
        if !manifest_path.is_file() {
            return Err(RegistryError::MissingManifest { dir: dir.to_path_buf() });
        }
        let bytes = std::fs::read(&manifest_path)
            .map_err(|source| RegistryError::Read { path: manifest_path.clone(), source })?;
        let manifest = Manifest::parse(&bytes, &manifest_path)?;

        let onnx_path = verified(dir, &manifest.onnx.file, &manifest.onnx.sha256)?;
        let embedding_path = match &manifest.embedding {
            Some(e) => Some(verified(dir, &e.file, &e.sha256)?),
            None => None,
        };
        Ok(ModelPackage { dir: dir.to_path_buf(), manifest, onnx_path, embedding_path })
    }

    /// The package's files as a registry stores them: the graphs, the card when there is one,
    /// and `model.json` last (a version is complete once it is there).
    pub fn files(&self) -> Vec<String> {
        let mut files = vec![self.manifest.onnx.file.clone()];
        files.extend(self.manifest.embedding.as_ref().map(|e| e.file.clone()));
        if self.dir.join("MODEL_CARD.md").is_file() {
            files.push("MODEL_CARD.md".into());
        }
        files.push("model.json".into());
        files
    }

    /// The tracking run model.json's `training.tracking` names; `None` without one, or with
    /// one that does not read as such (logged: the package serves the same either way).
    pub fn tracking(&self) -> Option<TrackingRun> {
        let value = self.manifest.training.get("tracking")?;
        serde_json::from_value(value.clone())
            .inspect_err(|e| tracing::warn!(dir = %self.dir.display(), error = %e, "model.json's training.tracking is not a tracking run; not recorded"))
            .ok()
    }

    pub fn classes(&self) -> &[String] {
        &self.manifest.classes
    }

    /// The `auto` threshold of a class (validated to exist for every class).
    pub fn threshold(&self, class: &str) -> f32 {
        self.manifest.thresholds[class]
    }

    /// A test figure recorded in `model.json` under `metrics.test`, by JSON pointer
    /// (`/accuracy`, `/review/share_sent_to_review`), when present.
    pub fn recorded_test_metric(&self, pointer: &str) -> Option<f64> {
        self.manifest.metrics.get("test")?.pointer(pointer)?.as_f64()
    }
}

/// The absolute path of `<dir>/<file>`, once its sha256 is the one the manifest states.
fn verified(dir: &Path, file: &str, sha256: &str) -> Result<PathBuf, RegistryError> {
    let path = dir.join(file);
    let actual = sha256_file(&path)?;
    if !actual.eq_ignore_ascii_case(sha256) {
        return Err(RegistryError::ChecksumMismatch { path, expected: sha256.to_string(), actual });
    }
    Ok(std::path::absolute(&path).unwrap_or(path))
}

impl Manifest {
    /// Parses and validates a `model.json` (read from `path`, which errors name).
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self, RegistryError> {
        let manifest: Manifest = serde_json::from_slice(bytes)
            .map_err(|source| RegistryError::Parse { path: path.to_path_buf(), source })?;
        validate(&manifest).map_err(|detail| RegistryError::Invalid { path: path.to_path_buf(), detail })?;
        Ok(manifest)
    }
}

/// Checks every field the Rust pipeline relies on; the message names the offending field.
fn validate(m: &Manifest) -> Result<(), String> {
    if m.schema != MANIFEST_SCHEMA {
        return Err(format!("`schema` is `{}`, this build reads `{MANIFEST_SCHEMA}`", m.schema));
    }
    if m.name.is_empty() || m.version.is_empty() {
        return Err("`name` and `version` must not be empty".into());
    }
    if m.classes.is_empty() {
        return Err("`classes` is empty".into());
    }
    let mut seen = std::collections::BTreeSet::new();
    for class in &m.classes {
        if class.is_empty() || !seen.insert(class.as_str()) {
            return Err(format!("`classes` has an empty or repeated name `{class}`"));
        }
        match m.thresholds.get(class) {
            None => return Err(format!("`thresholds` has no entry for class `{class}`")),
            Some(t) if !(0.0..=1.0).contains(t) => {
                return Err(format!("`thresholds.{class}` is {t}, not within [0, 1]"));
            }
            Some(_) => {}
        }
    }
    if let Some(extra) = m.thresholds.keys().find(|k| !seen.contains(k.as_str())) {
        return Err(format!("`thresholds` names `{extra}`, which is not in `classes`"));
    }
    if !(m.claim_threshold > 0.0 && m.claim_threshold < 1.0) {
        return Err(format!("`claim_threshold` is {}, not within (0, 1)", m.claim_threshold));
    }
    if m.input_size == 0 || m.input_size > 4096 {
        return Err(format!("`input_size` is {}, expected 1..=4096", m.input_size));
    }
    let p = &m.preprocessing;
    let expect = |field: &str, actual: &str, wanted: &str| {
        if actual == wanted {
            Ok(())
        } else {
            Err(format!("`preprocessing.{field}` is `{actual}`, this build supports only `{wanted}`"))
        }
    };
    expect("color", &p.color, "rgb")?;
    expect("letterbox", &p.letterbox, "pad_to_square_centered")?;
    expect("resize_filter", &p.resize_filter, "bilinear")?;
    expect("layout", &p.layout, "NCHW")?;
    if !(p.scale.is_finite() && p.scale > 0.0) {
        return Err(format!("`preprocessing.scale` is {}, expected a positive number", p.scale));
    }
    if p.std.iter().any(|s| !(s.is_finite() && *s > 0.0)) || p.mean.iter().any(|m| !m.is_finite()) {
        return Err("`preprocessing.mean`/`std` must be finite and `std` positive".into());
    }
    check_graph("onnx", &m.onnx.file, &m.onnx.sha256, &m.onnx.input, &m.onnx.output)?;
    if let Some(e) = &m.embedding {
        check_graph("embedding", &e.file, &e.sha256, &e.input, &e.output)?;
        if e.file == m.onnx.file {
            return Err("`embedding.file` is the classifier's `onnx.file`: the embedding is a graph of its own".into());
        }
        if e.dim == 0 || e.dim > 4096 {
            return Err(format!("`embedding.dim` is {}, expected 1..=4096", e.dim));
        }
        if e.similarity != "cosine" {
            return Err(format!("`embedding.similarity` is `{}`, this build supports only `cosine`", e.similarity));
        }
        if !(-1.0..=1.0).contains(&e.threshold) {
            return Err(format!("`embedding.threshold` is {}, not a cosine similarity within [-1, 1]", e.threshold));
        }
    }
    Ok(())
}

/// The fields naming a graph of the package (`onnx`, `embedding`): a file inside it, its
/// checksum, its tensors.
fn check_graph(field: &str, file: &str, sha256: &str, input: &str, output: &str) -> Result<(), String> {
    if file.is_empty() || file.contains('/') || file.contains('\\') || file.contains("..") || file == "model.json" {
        return Err(format!("`{field}.file` is `{file}`, expected a file name inside the package"));
    }
    if sha256.len() != 64 || !sha256.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("`{field}.sha256` must be 64 hex digits"));
    }
    if input.is_empty() || output.is_empty() {
        return Err(format!("`{field}.input` and `{field}.output` must name the graph's tensors"));
    }
    Ok(())
}

/// Hex sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<String, RegistryError> {
    let read_err = |source| RegistryError::Read { path: path.to_path_buf(), source };
    let mut file = std::fs::File::open(path).map_err(read_err)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(read_err)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `manifest` fuzz target's inputs are accepted or refused with a message, without a
    /// panic; the seeds (shipped packages' `model.json`) are accepted.
    #[test]
    fn the_manifest_fuzz_inputs_are_accepted_or_refused() {
        for (name, bytes) in autorma_core::testsuite::fuzz_inputs("manifest") {
            let parsed = Manifest::parse(&bytes, Path::new(&name));
            if name.starts_with("seeds/") {
                assert!(parsed.is_ok(), "{name}: {parsed:?}");
            }
        }
    }
    use crate::Precision;

    const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../classifier/tests/fixtures/tiny5");

    fn copy_fixture() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for f in ["model.json", "model.onnx"] {
            std::fs::copy(Path::new(FIXTURE).join(f), dir.path().join(f)).unwrap();
        }
        dir
    }

    fn edit_manifest(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
        let path = dir.join("model.json");
        let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        edit(&mut json);
        std::fs::write(path, json.to_string()).unwrap();
    }

    #[test]
    fn loads_the_fixture_package() {
        let package = ModelPackage::load(Path::new(FIXTURE)).unwrap();
        assert_eq!(package.classes().len(), 5);
        assert_eq!(package.threshold("tops"), 0.6);
        assert!(package.onnx_path.is_absolute());
    }

    #[test]
    fn refuses_a_tampered_onnx() {
        let dir = copy_fixture();
        let mut bytes = std::fs::read(dir.path().join("model.onnx")).unwrap();
        bytes.push(0);
        std::fs::write(dir.path().join("model.onnx"), bytes).unwrap();
        let err = ModelPackage::load(dir.path()).unwrap_err();
        assert!(matches!(err, RegistryError::ChecksumMismatch { .. }), "{err}");
    }

    #[test]
    fn refuses_a_missing_threshold_and_unknown_preprocessing() {
        let dir = copy_fixture();
        edit_manifest(dir.path(), |j| {
            j["thresholds"].as_object_mut().unwrap().remove("tops");
        });
        let err = ModelPackage::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("no entry for class `tops`"), "{err}");

        let dir = copy_fixture();
        edit_manifest(dir.path(), |j| j["preprocessing"]["resize_filter"] = "bicubic".into());
        let err = ModelPackage::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("resize_filter"), "{err}");
    }

    #[test]
    fn reads_the_precision_fp32_when_absent() {
        let package = ModelPackage::load(Path::new(FIXTURE)).unwrap();
        assert_eq!(package.manifest.precision, Precision::Fp32);

        let dir = copy_fixture();
        edit_manifest(dir.path(), |j| j["precision"] = "int8".into());
        assert_eq!(ModelPackage::load(dir.path()).unwrap().manifest.precision, Precision::Int8);

        edit_manifest(dir.path(), |j| j["precision"] = "fp4".into());
        let err = ModelPackage::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("fp4") && err.contains("int8"), "{err}");
    }

    #[test]
    fn refuses_a_folder_without_manifest() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(ModelPackage::load(dir.path()), Err(RegistryError::MissingManifest { .. })));
    }
}
