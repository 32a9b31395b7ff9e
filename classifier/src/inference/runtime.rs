//! The ONNX Runtime shared library and the execution provider.
//!
//! `ort` is built with `load-dynamic`: the library is opened at run time from a path, never
//! downloaded. `infra/setup/onnxruntime.sh` (`--gpu` for the CUDA build) installs the pinned one
//! at [`default_library_path`], where the binary finds it without any environment variable.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;

use super::InferenceError;

/// The ONNX Runtime release `infra/setup/onnxruntime.sh` installs.
pub const ORT_VERSION: &str = "1.31.1";

/// The command that installs the library [`default_library_path`] points at in this build.
pub const SETUP_COMMAND: &str =
    if cfg!(feature = "cuda") { "infra/setup/onnxruntime.sh --gpu" } else { "infra/setup/onnxruntime.sh" };

/// Which hardware runs the model. Chosen explicitly: asking for CUDA never silently runs on CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExecutionProvider {
    #[default]
    Cpu,
    Cuda {
        device_id: i32,
    },
}

impl ExecutionProvider {
    /// The name results and logs report.
    pub fn name(self) -> &'static str {
        match self {
            ExecutionProvider::Cpu => "cpu",
            ExecutionProvider::Cuda { .. } => "cuda",
        }
    }
}

impl std::str::FromStr for ExecutionProvider {
    type Err = String;

    /// `cpu`, `cuda` or `cuda:<device id>`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cpu" => Ok(ExecutionProvider::Cpu),
            "cuda" => Ok(ExecutionProvider::Cuda { device_id: 0 }),
            other => match other.strip_prefix("cuda:").map(str::parse::<i32>) {
                Some(Ok(device_id)) if device_id >= 0 => Ok(ExecutionProvider::Cuda { device_id }),
                _ => Err(format!("unknown execution provider `{other}` (expected `cpu`, `cuda` or `cuda:<device>`)")),
            },
        }
    }
}

impl std::fmt::Display for ExecutionProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExecutionProvider::Cpu => f.write_str("cpu"),
            ExecutionProvider::Cuda { device_id } => write!(f, "cuda:{device_id}"),
        }
    }
}

/// How sessions are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// Path of `libonnxruntime.so`.
    pub library: PathBuf,
    pub execution_provider: ExecutionProvider,
    /// Threads ONNX Runtime uses inside one operator, per session.
    pub intra_threads: usize,
    /// Whether ONNX Runtime's idle pool threads busy-wait for work. Off by default: in the
    /// pipeline the same cores decode photos, and spinning threads take their time.
    pub intra_op_spinning: bool,
    /// The largest batch a session will run: each runs one of this size when it is created, so
    /// ONNX Runtime's memory arena is at its high-water mark from the start (a worker's memory
    /// then stays flat instead of stepping up the first time a backlog fills a batch).
    pub warm_batch: usize,
}

impl RuntimeConfig {
    pub fn new(library: PathBuf) -> Self {
        Self {
            library,
            execution_provider: ExecutionProvider::Cpu,
            intra_threads: 1,
            intra_op_spinning: false,
            warm_batch: 1,
        }
    }
}

/// `${XDG_DATA_HOME:-$HOME/.local/share}/autorma/onnxruntime/<version>/libonnxruntime.so`, or
/// `.../<version>-cuda/libonnxruntime.so` in a build with the `cuda` feature: the CPU library
/// has no CUDA provider, so a CUDA build needs the one `infra/setup/onnxruntime.sh --gpu`
/// installs, which also runs the CPU provider. [`SETUP_COMMAND`] installs the right one.
pub fn default_library_path() -> PathBuf {
    let data_home = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from(".local/share"));
    let folder = if cfg!(feature = "cuda") { format!("{ORT_VERSION}-cuda") } else { ORT_VERSION.to_owned() };
    data_home.join("autorma/onnxruntime").join(folder).join("libonnxruntime.so")
}

struct Loaded {
    path: PathBuf,
    environment: Environment,
}

static RUNTIME: OnceLock<Result<Loaded, String>> = OnceLock::new();

/// Loads the library once per process and returns the shared environment.
pub fn init_runtime(library: &Path) -> Result<&'static Environment, InferenceError> {
    if !library.is_file() {
        return Err(InferenceError::LibraryMissing { path: library.to_path_buf() });
    }
    let loaded = RUNTIME.get_or_init(|| {
        let environment = ort::init_from(library)
            .map_err(|e| e.to_string())?
            .with_name("autorma")
            .build()
            .map_err(|e| e.to_string())?;
        tracing::info!(library = %library.display(), "loaded ONNX Runtime");
        Ok(Loaded { path: library.to_path_buf(), environment })
    });
    match loaded {
        Ok(loaded) if loaded.path == library => Ok(&loaded.environment),
        Ok(loaded) => {
            Err(InferenceError::LibraryConflict { loaded: loaded.path.clone(), requested: library.to_path_buf() })
        }
        Err(detail) => Err(InferenceError::LibraryLoad { path: library.to_path_buf(), detail: detail.clone() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_providers() {
        assert_eq!("cpu".parse(), Ok(ExecutionProvider::Cpu));
        assert_eq!("cuda".parse(), Ok(ExecutionProvider::Cuda { device_id: 0 }));
        assert_eq!("cuda:1".parse(), Ok(ExecutionProvider::Cuda { device_id: 1 }));
        assert!("gpu".parse::<ExecutionProvider>().is_err());
        assert!("cuda:-1".parse::<ExecutionProvider>().is_err());
    }

    #[test]
    fn a_missing_library_says_how_to_get_one() {
        let err = init_runtime(Path::new("/nonexistent/libonnxruntime.so")).err().unwrap().to_string();
        assert!(err.contains("infra/setup/onnxruntime.sh"), "{err}");
        assert_eq!(err.contains("onnxruntime.sh --gpu"), cfg!(feature = "cuda"), "{err}");
    }

    #[test]
    fn a_cuda_build_defaults_to_the_cuda_library() {
        let path = default_library_path();
        let folder = path.parent().and_then(Path::file_name).unwrap().to_str().unwrap();
        let expected = if cfg!(feature = "cuda") { format!("{ORT_VERSION}-cuda") } else { ORT_VERSION.to_owned() };
        assert_eq!(folder, expected, "{}", path.display());
        assert!(path.ends_with("libonnxruntime.so"), "{}", path.display());
    }
}
