"""An INT8 model package from an fp32 one: static quantization (QDQ), calibrated on train photos.

    python -m autorma_models.quantize --model fashion5 --data ../shared/datasets/fashion5 \
        --out fashion5-int8

Calibrates activation ranges on photos of the train split (never val or test), quantizes
weights per channel and activations per tensor into a QDQ graph, refits the review thresholds
on val with the quantized probabilities (the fp32 rule and target), judges it on val and test
beside the fp32 graph, and writes the package only if both accuracies are within
`--max-accuracy-drop` of fp32's.

Two parts stay in float. The temperature and the softmax: probabilities in 8 bits would move
confidences by up to 1/255, more than the thresholds' margins. And the first convolution: it
sees the normalised photo, whose white background sits at the edge of the range, and its few
weights cost little. Chosen on val among 12 variants (calibration method and size, which layers
stay float, signed or unsigned activations): see `scripts/findings-fashion5-int8.md`.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                      quantize_static)
from onnxruntime.quantization.shape_inference import quant_pre_process

from . import bench, data, export, metrics
from .card import write_card
from .evaluate import load_package
from .package import sha256_file, split_tensors
from .preprocess import PreprocessSpec, normalise

log = logging.getLogger("autorma.quantize")
# What may follow the classifier's logits (the temperature's Mul or Div, the Softmax): in float.
AFTER_LOGITS = {"Mul", "Div", "Softmax"}
METHODS = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
           "percentile": CalibrationMethod.Percentile}


class Batches(CalibrationDataReader):
    """Feeds the calibration photos to the quantizer, one photo per run: the histogram
    calibrators need every run's tensors to have the same shape."""

    def __init__(self, x: np.ndarray, batch: int = 1):
        self._batches = iter([{export.INPUT_NAME: x[i:i + batch]} for i in range(0, len(x), batch)])

    def get_next(self):
        return next(self._batches, None)


def calibration_sample(root: Path, classes: list[str], per_class: int, seed: int) -> list[Path]:
    """`per_class` photos of each class, drawn without replacement with a fixed seed."""
    paths, labels, _ = data.scan(root, classes)
    rng = np.random.default_rng(seed)
    chosen = []
    for i in range(len(classes)):
        idx = np.flatnonzero(labels == i)
        chosen += [paths[j] for j in sorted(rng.choice(idx, size=min(per_class, len(idx)), replace=False))]
    return chosen


def float_nodes(onnx_path: Path) -> list[str]:
    """The first convolution and everything after the logits (see the module's doc)."""
    nodes = list(onnx.load(str(onnx_path)).graph.node)  # in topological order
    first_conv = next(n.name for n in nodes if n.op_type == "Conv")
    logits = max(i for i, n in enumerate(nodes) if n.op_type in ("Gemm", "MatMul"))
    return [first_conv] + [n.name for n in nodes[logits + 1:] if n.op_type in AFTER_LOGITS]


def quantize(fp32_onnx: Path, out_onnx: Path, calibration: np.ndarray, method: str) -> list[str]:
    """Writes the QDQ graph; returns the names of the nodes left in float."""
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32_onnx), str(prepared))
        kept_float = float_nodes(prepared)
        # The calibrators print progress to stdout, which is this tool's JSON summary.
        with contextlib.redirect_stdout(sys.stderr):
            quantize_static(
                str(prepared), str(out_onnx), Batches(calibration),
                quant_format=QuantFormat.QDQ, per_channel=True,
                # u8 activations and s8 weights: what ONNX Runtime's x86 kernels (VNNI) run fastest.
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                calibrate_method=METHODS[method], nodes_to_exclude=kept_float,
            )
    return kept_float


def predict(onnx_path: Path, tensors: dict) -> dict:
    session = export.ort_session(onnx_path)
    return {split: export.ort_predict(session, x) for split, x in tensors.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, required=True, help="the fp32 model package folder")
    p.add_argument("--data", type=Path, required=True, help="data set root with train/, val/ and test/")
    p.add_argument("--out", type=Path, required=True, help="package folder to write")
    p.add_argument("--version", help="the package's version (default: the fp32 one's + `-int8`)")
    p.add_argument("--calibration-per-class", type=int, default=100,
                   help="train photos of each class the activation ranges are calibrated on")
    p.add_argument("--method", choices=sorted(METHODS), default="percentile", help="calibration method")
    p.add_argument("--seed", type=int, default=0, help="seed of the calibration sample")
    p.add_argument("--precision-target", type=float, default=0.997,
                   help="accuracy the automatically accepted photos must reach on val (the fp32 rule)")
    p.add_argument("--max-accuracy-drop", type=float, default=0.003,
                   help="largest accuracy loss against fp32 allowed on val and on test")
    p.add_argument("--notes", type=Path, help="markdown section for the card: what was tried and what it gave")
    p.add_argument("--threads", type=int, default=2, help="onnxruntime threads for the speed figures")
    p.add_argument("--workers", type=int, default=2)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    if a.out.resolve() == a.model.resolve():
        raise SystemExit("--out must be another folder than --model: the fp32 package stays as it is")
    fp32 = load_package(a.model)
    if fp32.get("precision", "fp32") != "fp32":
        raise SystemExit(f"`{a.model}` is already a {fp32['precision']} package: quantize the fp32 one")
    classes, spec = fp32["classes"], PreprocessSpec.from_model_json(fp32)
    dirs = data.split_dirs(a.data)
    sample = calibration_sample(dirs["train"], classes, a.calibration_per_class, a.seed)
    calibration = normalise(data.load_pixels(sample, spec, a.workers), spec)
    log.info("calibrating on %d train photos (%s)", len(sample), a.method)

    # The graph is judged where it is made; `--out` is touched only once it passed.
    scratch = tempfile.TemporaryDirectory()
    fp32_onnx, int8_onnx = a.model / fp32["onnx"]["file"], Path(scratch.name) / fp32["onnx"]["file"]
    kept_float = quantize(fp32_onnx, int8_onnx, calibration, a.method)

    tensors, labels = {}, {}
    for split in ("val", "test"):
        tensors[split], labels[split] = split_tensors(dirs[split], classes, spec, a.workers)
    before = {s: metrics.judge(labels[s], p, classes, fp32["thresholds"])
              for s, p in predict(fp32_onnx, tensors).items()}
    probs = predict(int8_onnx, tensors)
    # Thresholds refitted on val, by the rule the fp32 package's were chosen by.
    thresholds = metrics.review_thresholds(labels["val"], probs["val"], classes, a.precision_target)
    after = {s: metrics.judge(labels[s], p, classes, thresholds) for s, p in probs.items()}
    drops = {s: before[s]["accuracy"] - after[s]["accuracy"] for s in ("val", "test")}
    speed = {name: round(bench.images_per_second(path, spec.size, a.threads, 32, 5.0))
             for name, path in (("fp32", fp32_onnx), ("int8", int8_onnx))}
    summary = {"val_accuracy": {"fp32": before["val"]["accuracy"], "int8": after["val"]["accuracy"]},
               "test_accuracy": {"fp32": before["test"]["accuracy"], "int8": after["test"]["accuracy"]},
               "images_per_second": speed, "threads": a.threads, "batch": 32}
    print(json.dumps(summary, indent=2))
    too_far = {s: round(d, 4) for s, d in drops.items() if d > a.max_accuracy_drop}
    if too_far:
        raise SystemExit(f"INT8 accuracy fell by more than {a.max_accuracy_drop} against fp32 on {too_far}: "
                         "no package written")

    meta = dict(fp32)
    meta.update({
        "version": a.version or f"{fp32['version']}-int8",
        "precision": "int8",
        "onnx": {**fp32["onnx"], "sha256": sha256_file(int8_onnx)},
        "thresholds": {c: round(t, 6) for c, t in thresholds.items()},
        "metrics": {s: after[s] for s in ("val", "test")},
        "onnxruntime_images_per_second": {"batch": 32, "threads": a.threads, "value": speed["int8"]},
        "quantization": {
            "method": "static, QDQ: weights int8 per channel, activations uint8 per tensor",
            "calibration": {"split": "train", "photos": len(sample), "method": a.method, "seed": a.seed,
                            "per_class": a.calibration_per_class},
            "float_nodes": kept_float,
            "from": {"version": fp32["version"], "sha256": fp32["onnx"]["sha256"],
                     "metrics": {s: before[s]["accuracy"] for s in ("val", "test")},
                     "onnxruntime_images_per_second": speed["fp32"]},
        },
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    })
    meta.pop("parity_max_abs_diff", None)  # a PyTorch parity figure says nothing of this graph
    a.out.mkdir(parents=True, exist_ok=True)
    shutil.move(int8_onnx, a.out / fp32["onnx"]["file"])
    if "embedding" in fp32:  # the product check's graph goes along as it is (fp32)
        shutil.copy(a.model / fp32["embedding"]["file"], a.out / fp32["embedding"]["file"])
    (a.out / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
    write_card(a.out / "MODEL_CARD.md", meta, [], a.notes.read_text() if a.notes else "")
    log.info("wrote %s", a.out)


if __name__ == "__main__":
    main()
