//! The check a model passes before it serves: built-in probe photos (generated here, so the
//! binary needs no data files) go through the package's own preprocessing and the model, and
//! every output row must be a probability distribution over the package's classes. A model
//! that cannot load, whose output does not match its class list, or that answers garbage is
//! refused before it sees a real photo.

use std::io::Cursor;

use image::{ImageFormat, Rgb, RgbImage};

use crate::inference::{EmbeddingSession, InferenceError, ModelSession};
use crate::preprocess::Preprocessor;

/// Rows must sum to 1 within this (calibrated softmax in float32).
const SUM_TOLERANCE: f32 = 1e-3;
/// Embeddings must be of length 1 within this.
const NORM_TOLERANCE: f32 = 1e-3;

/// Four small photos unlike each other: white, black, a gradient, and a dark square on white
/// (a centred object, as on the returns bench). PNG, so decoding is exercised too.
pub fn probe_photos() -> Vec<Vec<u8>> {
    let gradient = RgbImage::from_fn(96, 64, |x, y| Rgb([(x * 255 / 95) as u8, (y * 255 / 63) as u8, 128]));
    let object = RgbImage::from_fn(80, 80, |x, y| {
        if (20..60).contains(&x) && (15..65).contains(&y) { Rgb([40, 30, 90]) } else { Rgb([255, 255, 255]) }
    });
    [RgbImage::from_pixel(32, 32, Rgb([255, 255, 255])), RgbImage::from_pixel(48, 32, Rgb([0, 0, 0])), gradient, object]
        .iter()
        .map(|image| {
            let mut png = Vec::new();
            image.write_to(&mut Cursor::new(&mut png), ImageFormat::Png).expect("encoding to memory cannot fail");
            png
        })
        .collect()
}

/// Runs the probe photos through `session` (and the product check's `embedder`, when the
/// package has one: each embedding must be of length 1); an error says what was wrong.
pub fn check(
    preprocessor: &Preprocessor,
    session: &mut ModelSession,
    embedder: Option<&mut EmbeddingSession>,
) -> Result<(), InferenceError> {
    let name = session_name(session);
    let refused = |detail: String| InferenceError::Probe { model: name.clone(), detail };
    let mut batch = Vec::new();
    for photo in probe_photos() {
        let tensor =
            preprocessor.preprocess(&photo).map_err(|e| refused(format!("a probe photo failed to preprocess: {e}")))?;
        batch.extend(tensor);
    }
    if let Some(embedder) = embedder {
        // The shape against `dim` is checked by `embed`.
        for (i, embedding) in embedder.embed(&batch)?.iter().enumerate() {
            let norm = embedding.iter().map(|v| v * v).sum::<f32>().sqrt();
            if !(norm - 1.0).abs().le(&NORM_TOLERANCE) {
                return Err(refused(format!("probe photo {i}: its embedding has length {norm}, not 1")));
            }
        }
    }
    // The shape of the output against the class list is checked by `predict`.
    let predictions = session.predict(&batch)?;
    for (i, p) in predictions.iter().enumerate() {
        let sum: f32 = p.probabilities.iter().sum();
        let in_range = p.probabilities.iter().all(|v| v.is_finite() && (-1e-4..=1.0 + 1e-4).contains(v));
        if !in_range || (sum - 1.0).abs() > SUM_TOLERANCE {
            return Err(refused(format!(
                "probe photo {i}: output {:?} is not a probability distribution (sum {sum})",
                p.probabilities
            )));
        }
    }
    tracing::debug!(model = %name, probes = predictions.len(), "model passed the probe check");
    Ok(())
}

fn session_name(session: &ModelSession) -> String {
    format!("{} version {}", session.model().name, session.model().version)
}
