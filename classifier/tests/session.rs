//! The model session on the tiny5 fixture: real ONNX Runtime, real decisions.
//! Needs the library from `infra/setup/onnxruntime.sh` (or `AUTORMA_ORT_LIBRARY`).

use std::path::{Path, PathBuf};

use autorma_classifier::inference::{
    ExecutionProvider, InferenceError, ModelSession, RuntimeConfig, default_library_path,
};
use autorma_classifier::preprocess::{DecodeLimits, Preprocessor};
use autorma_core::Decision;
use autorma_registry::ModelPackage;
use image::{ImageEncoder, Rgb, RgbImage};

fn tiny5() -> ModelPackage {
    ModelPackage::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny5")).unwrap()
}

fn library() -> PathBuf {
    std::env::var_os("AUTORMA_ORT_LIBRARY").map(PathBuf::from).unwrap_or_else(default_library_path)
}

fn png(color: [u8; 3], w: u32, h: u32) -> Vec<u8> {
    let img = RgbImage::from_pixel(w, h, Rgb(color));
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out).write_image(&img, w, h, image::ExtendedColorType::Rgb8).unwrap();
    out
}

#[test]
fn classifies_by_colour_in_one_batch() {
    let package = tiny5();
    let mut session = ModelSession::new(&package, &RuntimeConfig::new(library())).unwrap();
    assert_eq!(session.execution_provider(), "cpu");
    let pre = Preprocessor::for_package(&package, DecodeLimits::default());
    // Square photos so the white letterbox does not shift the mean colour.
    let colours = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [0, 0, 0], [128, 128, 128]];
    let mut batch = Vec::new();
    for c in colours {
        batch.extend(pre.preprocess(&png(c, 50, 50)).unwrap());
    }
    let predictions = session.predict(&batch).unwrap();
    let labels: Vec<_> = predictions.iter().map(|p| package.classes()[p.label].as_str()).collect();
    assert_eq!(&labels[..5], ["casual_shoes", "handbags", "shirts", "tops", "watches"]);
    assert!(predictions[..5].iter().all(|p| p.decision == Decision::Auto && p.confidence > 0.9));
    // Mid grey is equally far from every prototype: low confidence, so a person reviews it.
    assert_eq!(predictions[5].decision, Decision::Review);
    assert!((predictions[5].probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-4);
}

#[test]
fn cuda_is_an_error_not_a_silent_cpu_run() {
    if cfg!(feature = "cuda") {
        return; // with the feature, success depends on the machine; covered by the GPU check.
    }
    let mut config = RuntimeConfig::new(library());
    config.execution_provider = ExecutionProvider::Cuda { device_id: 0 };
    let err = ModelSession::new(&tiny5(), &config).err().expect("cuda must not silently succeed on cpu");
    assert!(matches!(err, InferenceError::ProviderUnavailable { provider: "cuda", .. }), "{err}");
}

#[test]
fn a_model_whose_names_differ_from_model_json_is_refused() {
    let mut package = tiny5();
    package.manifest.onnx.output = "logits".into();
    let err = ModelSession::new(&package, &RuntimeConfig::new(library())).err().unwrap();
    assert!(matches!(err, InferenceError::Signature { .. }), "{err}");
}
