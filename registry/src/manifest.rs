//! `model.json` v1, field by field (models/PACKAGE.md is the contract).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const MANIFEST_SCHEMA: &str = "autorma.model/v1";

/// `claim_threshold` of a package that states none: a calibrated probability of 1 %.
pub const DEFAULT_CLAIM_THRESHOLD: f32 = 0.01;

fn default_claim_threshold() -> f32 {
    DEFAULT_CLAIM_THRESHOLD
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub schema: String,
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub architecture: Option<String>,
    /// Class names in the order of the output's columns.
    pub classes: Vec<String>,
    pub onnx: OnnxSpec,
    /// Numbers the graph computes in; `fp32` when absent (packages written before the field).
    #[serde(default)]
    pub precision: Precision,
    /// Side of the square input, in pixels.
    pub input_size: u32,
    pub preprocessing: Preprocessing,
    /// For information only: temperature scaling is inside the graph.
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Per-class minimum confidence for an `auto` decision.
    pub thresholds: BTreeMap<String, f32>,
    /// The wrong-item check: a claimed class whose probability is under this is not what the
    /// photo shows (chosen on val with `autorma eval --claims`); [`DEFAULT_CLAIM_THRESHOLD`]
    /// for a package without one.
    #[serde(default = "default_claim_threshold")]
    pub claim_threshold: f32,
    /// The product check's embedding graph, when the package has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<EmbeddingSpec>,
    /// Val/test metrics as trained; kept opaque here, `autorma eval` compares against them.
    #[serde(default)]
    pub metrics: serde_json::Value,
    #[serde(default)]
    pub dataset: serde_json::Value,
    #[serde(default)]
    pub training: serde_json::Value,
}

/// An INT8 package is a quantized copy of an fp32 one (`models/autorma_models/quantize.py`):
/// same input, output and preprocessing, so the pipeline runs both the same way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    Fp32,
    Int8,
}

impl Precision {
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Int8 => "int8",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnnxSpec {
    /// File name inside the package folder.
    pub file: String,
    pub sha256: String,
    /// Name of the graph input, `float32[N, 3, input_size, input_size]`.
    pub input: String,
    /// Name of the graph output, `float32[N, num_classes]` calibrated probabilities.
    pub output: String,
    #[serde(default)]
    pub opset: Option<u32>,
}

/// A second graph beside the classifier (`autorma_models.embedding`): the same input, and an
/// L2-normalised embedding per photo. A claimed product's catalogue photo and the returned
/// item's photo are compared by the cosine similarity of theirs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingSpec {
    /// File name inside the package folder.
    pub file: String,
    pub sha256: String,
    /// Name of the graph input, as the classifier's.
    pub input: String,
    /// Name of the graph output, `float32[N, dim]`, each row of length 1.
    pub output: String,
    pub dim: u32,
    /// How two embeddings compare: only `cosine`.
    pub similarity: String,
    /// A claimed product whose catalogue photo is less similar than this is not what the photo
    /// shows (chosen on val: it flags a set share of honest returns).
    pub threshold: f32,
    /// Val/test figures as trained; opaque here.
    #[serde(default)]
    pub metrics: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocessing {
    pub color: String,
    pub letterbox: String,
    pub background: [u8; 3],
    pub resize_filter: String,
    pub scale: f32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub layout: String,
}
