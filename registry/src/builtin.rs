//! The shipped model package (`models/fashion5`), built into the program, so that `autorma run
//! --inbox X --out Y` works from any folder. It is written out once into a cache folder named
//! by its version and the checksums of its graph and its manifest (a manifest edited without a
//! new version, such as a threshold chosen later, gets a folder of its own), and loaded from
//! there like any other package (ONNX Runtime takes a file).

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::RegistryError;
use crate::manifest::Manifest;
use crate::package::ModelPackage;
use crate::registry::{place_package, short_sha};

const MANIFEST: &[u8] = include_bytes!("../../models/fashion5/model.json");

/// The package's files, as they are in `models/fashion5` when the program is built
/// (`model.json` last: a folder holding it is complete).
const FILES: [(&str, &[u8]); 4] = [
    ("model.onnx", include_bytes!("../../models/fashion5/model.onnx")),
    ("embedding.onnx", include_bytes!("../../models/fashion5/embedding.onnx")),
    ("MODEL_CARD.md", include_bytes!("../../models/fashion5/MODEL_CARD.md")),
    ("model.json", MANIFEST),
];

/// How messages name the built-in package where a folder would be named.
pub const BUILTIN_PACKAGE: &str = "the built-in fashion5 package";

/// The built-in package, written under `cache` the first time (and again if that copy does
/// not check out).
pub fn builtin_package(cache: &Path) -> Result<ModelPackage, RegistryError> {
    let manifest = Manifest::parse(MANIFEST, Path::new("models/fashion5/model.json (built in)"))?;
    let dir = cache.join("builtin").join(format!(
        "{}-{}-{}-{}",
        manifest.name,
        manifest.version,
        short_sha(&manifest.onnx.sha256),
        short_sha(&hex::encode(Sha256::digest(MANIFEST)))
    ));
    place_package(&dir, &FILES, &manifest.onnx.sha256)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_package_is_the_shipped_one_and_is_written_once() {
        let cache = tempfile::tempdir().unwrap();
        let package = builtin_package(cache.path()).unwrap();
        let shipped =
            ModelPackage::load(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../models/fashion5"))).unwrap();
        assert_eq!(package.manifest.onnx.sha256, shipped.manifest.onnx.sha256);
        assert_eq!(package.manifest.version, shipped.manifest.version);
        assert!(package.dir.starts_with(cache.path()));
        // A good copy is used as it is; a damaged one is named, never loaded.
        let modified = std::fs::metadata(package.dir.join("model.json")).unwrap().modified().unwrap();
        assert_eq!(builtin_package(cache.path()).unwrap().dir, package.dir);
        assert_eq!(std::fs::metadata(package.dir.join("model.json")).unwrap().modified().unwrap(), modified);
        std::fs::write(package.dir.join("model.onnx"), b"damaged").unwrap();
        let err = builtin_package(cache.path()).unwrap_err().to_string();
        assert!(err.contains("delete the folder") && err.contains(&package.dir.display().to_string()), "{err}");
    }
}
