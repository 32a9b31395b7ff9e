//! What the binary's tests share: the binary with the fixture model, small photos, an HTTP
//! client, the telemetry engines.
// Every test crate includes all of it and uses a part.
#![allow(dead_code)]

pub mod engine;
pub mod http;
pub mod jaeger;
pub mod prometheus;
pub mod serve;

use std::path::{Path, PathBuf};
use std::process::Command;

use image::{ImageEncoder, Rgb, RgbImage};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `autorma` with the tiny5 fixture model, quiet logs, and no settings from the caller's
/// environment. `AUTORMA_TEST_BIN` runs the tests against another build of it instead (an
/// older one, to see a test fail before its fix).
pub fn autorma() -> Command {
    let bin = std::env::var_os("AUTORMA_TEST_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_autorma").into());
    let mut cmd = Command::new(bin);
    cmd.env("AUTORMA_MODEL", root().join("classifier/tests/fixtures/tiny5"))
        .env("AUTORMA_LOG", "warn")
        .env_remove("AUTORMA_CONFIG")
        .env_remove("AUTORMA_API_TOKEN");
    cmd
}

pub fn encode_png(img: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(img, img.width(), img.height(), image::ExtendedColorType::Rgb8)
        .unwrap();
    out
}

/// A 30x30 PNG of one colour at `path` (folders created).
pub fn write_png(path: &Path, color: [u8; 3]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, encode_png(&RgbImage::from_pixel(30, 30, Rgb(color)))).unwrap();
}
