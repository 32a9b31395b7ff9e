//! The product check's graph (model.json's `embedding`): the same input tensors as the
//! classifier, one L2-normalised embedding per photo. One session per inference worker, like
//! the classifier's.

use std::path::PathBuf;

use autorma_registry::ModelPackage;
use ort::session::Session;

use super::InferenceError;
use super::runtime::RuntimeConfig;
use super::session::{Graph, check_signature, open_session, run_rows};

pub struct EmbeddingSession {
    session: Session,
    path: PathBuf,
    input: String,
    output: String,
    size: usize,
    dim: usize,
}

impl EmbeddingSession {
    /// The package's embedding session, `None` for a package without one.
    pub fn new(package: &ModelPackage, config: &RuntimeConfig) -> Result<Option<Self>, InferenceError> {
        let (Some(spec), Some(path)) = (&package.manifest.embedding, &package.embedding_path) else {
            return Ok(None);
        };
        let session = open_session(path, config)?;
        check_signature(&session, path, &spec.input, &spec.output)?;
        Ok(Some(Self {
            session,
            path: path.clone(),
            input: spec.input.clone(),
            output: spec.output.clone(),
            size: package.manifest.input_size as usize,
            dim: spec.dim as usize,
        }))
    }

    /// The embeddings of `batch` (N CHW tensors back to back), one row of `dim` per tensor.
    pub fn embed(&mut self, batch: &[f32]) -> Result<Vec<Vec<f32>>, InferenceError> {
        let graph = Graph { path: &self.path, input: &self.input, output: &self.output, size: self.size };
        run_rows(&mut self.session, &graph, batch, self.dim, <[f32]>::to_vec)
    }
}

/// The cosine similarity of two embeddings (1: the same direction); 0 when either is zero.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let denominator = norm(a) * norm(b);
    if denominator > 0.0 { dot / denominator } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::cosine;

    #[test]
    fn cosine_is_the_angle_not_the_length() {
        assert!((cosine(&[1.0, 0.0], &[3.0, 0.0]) - 1.0).abs() < 1e-6);
        assert!(cosine(&[1.0, 0.0], &[0.0, 2.0]).abs() < 1e-6);
        assert!((cosine(&[1.0, 1.0], &[-1.0, -1.0]) + 1.0).abs() < 1e-6);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
    }
}
