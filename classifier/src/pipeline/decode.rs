//! Decoding and preprocessing on the blocking threads, for the fetch stage and the photos of
//! requests (`/v1/classify`) alike.

use std::sync::Arc;

use tokio::time::Instant;

use super::stats::ms;
use crate::preprocess::{PreprocessError, panic_text};
use crate::serving::ServingModel;

/// Decodes and preprocesses `bytes` for `model` on a blocking thread; also returns how long
/// that took (ms).
pub(crate) async fn preprocess_blocking(
    model: &Arc<ServingModel>,
    bytes: bytes::Bytes,
) -> (Result<Vec<f32>, PreprocessError>, f64) {
    let started = Instant::now();
    let model = model.clone();
    let tensor = match tokio::task::spawn_blocking(move || model.preprocessor.preprocess(&bytes)).await {
        Ok(tensor) => tensor,
        // The decoders' panics are caught where they are called (`decode_caught`); one anywhere
        // else in the preprocessing is refused the same way. Stopping instead would stop every
        // restart too, on the same photo above the checkpoint.
        Err(e) => Err(PreprocessError::Decode { detail: format!("the decoder panicked: {}", panic_message(e)) }),
    };
    (tensor, ms(started.elapsed()))
}

fn panic_message(e: tokio::task::JoinError) -> String {
    if !e.is_panic() {
        return e.to_string();
    }
    panic_text(&*e.into_panic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_becomes_its_message() {
        let err = tokio::task::spawn_blocking(|| panic!("bad huffman table")).await.unwrap_err();
        assert_eq!(panic_message(err), "bad huffman table");
        let code = 3;
        let err = tokio::task::spawn_blocking(move || panic!("marker {code}")).await.unwrap_err();
        assert_eq!(panic_message(err), "marker 3");
    }
}
