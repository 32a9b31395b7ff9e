"""ONNX export of a calibrated model and the parity check against PyTorch."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

INPUT_NAME, OUTPUT_NAME, OPSET = "image", "probabilities", 17


def export_onnx(module: torch.nn.Module, size: int, path: Path) -> None:
    """Writes `module` (already calibrated: outputs probabilities) with a dynamic batch axis."""
    module = module.eval().cpu()
    dummy = torch.zeros(2, 3, size, size)
    torch.onnx.export(
        module, (dummy,), str(path), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
        opset_version=OPSET, dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        dynamo=False,  # the TorchScript exporter writes one self-contained file for small graphs
    )


def ort_session(path: Path, threads: int = 0) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def ort_predict(session: ort.InferenceSession, x: np.ndarray, batch: int = 64) -> np.ndarray:
    return np.concatenate([session.run([OUTPUT_NAME], {INPUT_NAME: x[i:i + batch]})[0]
                           for i in range(0, len(x), batch)])


def parity(module: torch.nn.Module, path: Path, x: np.ndarray) -> float:
    """Max abs difference of the probabilities from PyTorch and onnxruntime on `x` (NCHW)."""
    with torch.no_grad():
        ref = module.eval().cpu()(torch.from_numpy(x)).numpy()
    got = ort_predict(ort_session(path), x)
    return float(np.abs(ref - got).max())
