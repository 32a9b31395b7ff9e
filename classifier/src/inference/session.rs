//! One ONNX Runtime session: owned by one inference worker thread (a session runs one batch
//! at a time; more throughput comes from more workers, each with its own session).

use std::path::{Path, PathBuf};

use autorma_core::ModelRef;
use autorma_registry::ModelPackage;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::TensorRef;

use super::InferenceError;
use super::decision::{Prediction, decide};
use super::runtime::{ExecutionProvider, RuntimeConfig, init_runtime};

pub struct ModelSession {
    session: Session,
    model_path: PathBuf,
    input: String,
    output: String,
    size: usize,
    num_classes: usize,
    thresholds: Vec<f32>,
    provider: ExecutionProvider,
    model: ModelRef,
}

impl ModelSession {
    /// Creates a session on the requested execution provider, or fails: a provider that
    /// cannot register is an error, never a silent fallback to CPU.
    pub fn new(package: &ModelPackage, config: &RuntimeConfig) -> Result<Self, InferenceError> {
        let model_path = package.onnx_path.clone();
        let session = open_session(&model_path, config)?;

        let m = &package.manifest;
        check_signature(&session, &model_path, &m.onnx.input, &m.onnx.output)?;
        tracing::info!(model = %m.name, version = %m.version, execution_provider = config.execution_provider.name(),
            intra_threads = config.intra_threads, "created inference session");
        let mut created = Self {
            session,
            model_path,
            input: m.onnx.input.clone(),
            output: m.onnx.output.clone(),
            size: m.input_size as usize,
            num_classes: m.classes.len(),
            thresholds: m.classes.iter().map(|c| package.threshold(c)).collect(),
            provider: config.execution_provider,
            model: ModelRef {
                name: m.name.clone(),
                version: m.version.clone(),
                sha256: m.onnx.sha256.to_ascii_lowercase(),
            },
        };
        if config.warm_batch > 1 {
            let zeros = vec![0.0; config.warm_batch * 3 * created.size * created.size];
            created.predict(&zeros)?;
        }
        Ok(created)
    }

    /// The execution provider this session runs on (`cpu`, `cuda`).
    pub fn execution_provider(&self) -> &'static str {
        self.provider.name()
    }

    pub fn model(&self) -> &ModelRef {
        &self.model
    }

    /// Runs `batch` (N CHW tensors back to back, `N * 3 * size * size` values) and decides
    /// each row.
    pub fn predict(&mut self, batch: &[f32]) -> Result<Vec<Prediction>, InferenceError> {
        let graph = Graph { path: &self.model_path, input: &self.input, output: &self.output, size: self.size };
        run_rows(&mut self.session, &graph, batch, self.num_classes, |row| decide(row, &self.thresholds))
    }
}

/// What [`run_rows`] needs to know of a session's graph.
pub(super) struct Graph<'a> {
    pub path: &'a Path,
    pub input: &'a str,
    pub output: &'a str,
    /// Side of the square input.
    pub size: usize,
}

/// Runs `batch` (N CHW tensors back to back, `N * 3 * size * size` values) through `session`
/// and gives each row of its output, checked to be `[N, width]`, to `row`.
pub(super) fn run_rows<T>(
    session: &mut Session,
    graph: &Graph<'_>,
    batch: &[f32],
    width: usize,
    row: impl FnMut(&[f32]) -> T,
) -> Result<Vec<T>, InferenceError> {
    let per_item = 3 * graph.size * graph.size;
    assert!(!batch.is_empty() && batch.len().is_multiple_of(per_item), "batch is not a whole number of tensors");
    let n = batch.len() / per_item;
    let run_err = |detail: String| InferenceError::Run { batch_size: n, detail };
    let input =
        TensorRef::from_array_view(([n, 3, graph.size, graph.size], batch)).map_err(|e| run_err(e.to_string()))?;
    let outputs = session.run(ort::inputs![graph.input => input]).map_err(|e| run_err(e.to_string()))?;
    let (shape, values) = outputs[graph.output].try_extract_tensor::<f32>().map_err(|e| run_err(e.to_string()))?;
    if shape.len() != 2 || shape[0] as usize != n || shape[1] as usize != width {
        return Err(InferenceError::Signature {
            model: graph.path.to_path_buf(),
            detail: format!("output `{}` shape {:?}, expected [{n}, {width}]", graph.output, &shape[..]),
        });
    }
    Ok(values.chunks_exact(width).map(row).collect())
}

/// A session of the graph at `path` on the configured execution provider, or an error: a
/// provider that cannot register is an error, never a silent fallback to CPU.
pub(super) fn open_session(path: &Path, config: &RuntimeConfig) -> Result<Session, InferenceError> {
    let environment = init_runtime(&config.library)?;
    let session_err = |detail: String| InferenceError::Session { model: path.to_path_buf(), detail };
    let builder = Session::builder(environment).map_err(|e| session_err(e.to_string()))?;
    let builder = builder
        .with_optimization_level(GraphOptimizationLevel::Level3)
        .map_err(|e| session_err(e.to_string()))?
        .with_intra_threads(config.intra_threads.max(1))
        .map_err(|e| session_err(e.to_string()))?
        .with_intra_op_spinning(config.intra_op_spinning)
        .map_err(|e| session_err(e.to_string()))?
        // The memory pattern is planned per input shape and kept: with batches of every size
        // from 1 to the largest, a worker's memory grew by a pattern each time a new size
        // came (93 to 111 MB over sizes 1 to 32 in a probe of this model; 93 to 99 without,
        // and no slower).
        .with_memory_pattern(false)
        .map_err(|e| session_err(e.to_string()))?;
    let provider_err = |e: ort::Error<_>| InferenceError::ProviderUnavailable {
        provider: config.execution_provider.name(),
        detail: e.to_string(),
    };
    let mut builder = match config.execution_provider {
        ExecutionProvider::Cpu => builder
            .with_execution_providers([ort::ep::CPU::default().build().error_on_failure()])
            .map_err(provider_err)?,
        ExecutionProvider::Cuda { device_id } => cuda(builder, device_id)
            .map_err(|detail| InferenceError::ProviderUnavailable { provider: "cuda", detail })?,
    };
    builder.commit_from_file(path).map_err(|e| session_err(e.to_string()))
}

/// The graph has the input and output the manifest names.
pub(super) fn check_signature(session: &Session, path: &Path, input: &str, output: &str) -> Result<(), InferenceError> {
    let signature_err = |detail: String| InferenceError::Signature { model: path.to_path_buf(), detail };
    if !session.inputs().iter().any(|i| i.name() == input) {
        let names: Vec<_> = session.inputs().iter().map(|i| i.name().to_string()).collect();
        return Err(signature_err(format!("no input `{input}` (graph inputs: {names:?})")));
    }
    if !session.outputs().iter().any(|o| o.name() == output) {
        let names: Vec<_> = session.outputs().iter().map(|o| o.name().to_string()).collect();
        return Err(signature_err(format!("no output `{output}` (graph outputs: {names:?})")));
    }
    Ok(())
}

#[cfg(feature = "cuda")]
fn cuda(
    builder: ort::session::builder::SessionBuilder,
    device_id: i32,
) -> Result<ort::session::builder::SessionBuilder, String> {
    builder
        .with_execution_providers([ort::ep::CUDA::default().with_device_id(device_id).build().error_on_failure()])
        .map_err(|e| e.to_string())
}

#[cfg(not(feature = "cuda"))]
fn cuda(
    _builder: ort::session::builder::SessionBuilder,
    _device_id: i32,
) -> Result<ort::session::builder::SessionBuilder, String> {
    Err("this binary was built without the `cuda` feature (cargo build --features cuda)".into())
}
