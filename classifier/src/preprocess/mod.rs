//! Photo bytes -> the model's input tensor, exactly as `model.json` says (models/PACKAGE.md,
//! "Preprocessing, step by step"). The Python twin is `models/autorma_models/preprocess.py`;
//! the parity test in `classifier/tests/parity.rs` holds the two together.

mod decode;
mod tensor;

use autorma_core::DlqReason;
use autorma_registry::ModelPackage;

pub(crate) use decode::panic_text;
pub use decode::{DecodeLimits, decode_rgb, decoded_pixels, sniff_format};
pub use tensor::{letterbox_resize, normalise_into};

/// Why a photo could not become a tensor; each maps to a DLQ reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreprocessError {
    #[error("not an image: {detail}")]
    NotAnImage { detail: String },
    #[error("too large: {detail}")]
    TooLarge { detail: String },
    #[error("cannot decode: {detail}")]
    Decode { detail: String },
}

impl PreprocessError {
    pub fn reason(&self) -> DlqReason {
        match self {
            PreprocessError::NotAnImage { .. } => DlqReason::NotAnImage,
            PreprocessError::TooLarge { .. } => DlqReason::TooLarge,
            PreprocessError::Decode { .. } => DlqReason::DecodeError,
        }
    }

    pub fn detail(&self) -> &str {
        match self {
            PreprocessError::NotAnImage { detail }
            | PreprocessError::TooLarge { detail }
            | PreprocessError::Decode { detail } => detail,
        }
    }
}

/// The preprocessing of one model package, ready to apply to many photos.
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocessor {
    /// Side of the square input.
    pub size: u32,
    pub background: [u8; 3],
    pub scale: f32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub limits: DecodeLimits,
}

impl Preprocessor {
    pub fn for_package(package: &ModelPackage, limits: DecodeLimits) -> Self {
        let p = &package.manifest.preprocessing;
        Self {
            size: package.manifest.input_size,
            background: p.background,
            scale: p.scale,
            mean: p.mean,
            std: p.std,
            limits,
        }
    }

    /// Number of f32 values of one photo's tensor (`3 * size * size`).
    pub fn tensor_len(&self) -> usize {
        3 * self.size as usize * self.size as usize
    }

    /// Decodes (upright, a JPEG at the smallest DCT scale that keeps `size` pixels on the long
    /// side), letterboxes, resizes and normalises one photo into a CHW f32 tensor.
    pub fn preprocess(&self, bytes: &[u8]) -> Result<Vec<f32>, PreprocessError> {
        let rgb = decode_rgb(bytes, &self.limits, self.background, self.size)?;
        let square = letterbox_resize(&rgb, self.size, self.background);
        let mut out = vec![0.0; self.tensor_len()];
        normalise_into(&square, self.scale, self.mean, self.std, &mut out);
        Ok(out)
    }
}
