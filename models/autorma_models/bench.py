"""Model-only onnxruntime throughput, the figure in the model card's speed table.

    python -m autorma_models.bench --onnx models/fashion5/model.onnx --threads 2 --batch 32
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from .export import INPUT_NAME, OUTPUT_NAME, ort_session


def images_per_second(onnx_path: Path, size: int, threads: int = 2, batch: int = 32, seconds: float = 5.0) -> float:
    sess = ort_session(onnx_path, threads)
    x = np.random.default_rng(0).standard_normal((batch, 3, size, size), dtype=np.float32)
    for _ in range(3):
        sess.run([OUTPUT_NAME], {INPUT_NAME: x})
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        sess.run([OUTPUT_NAME], {INPUT_NAME: x})
        n += batch
    return n / (time.perf_counter() - t0)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--onnx", type=Path, required=True)
    p.add_argument("--size", type=int, help="input size; read from model.json beside the ONNX when absent")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seconds", type=float, default=5.0)
    a = p.parse_args(argv)
    size = a.size or json.loads((a.onnx.parent / "model.json").read_text())["input_size"]
    ips = images_per_second(a.onnx, size, a.threads, a.batch, a.seconds)
    print(json.dumps({"onnx": str(a.onnx), "size": size, "threads": a.threads, "batch": a.batch,
                      "images_per_second": round(ips, 1)}))


if __name__ == "__main__":
    main()
