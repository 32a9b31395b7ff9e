"""Judges a model package on any class-folder data set, through onnxruntime.

    python -m autorma_models.evaluate --model fashion5 --data ../shared/datasets/fashion5/test --json

Prints accuracy, per_class (precision, recall, f1, support), confusion (rows true, columns
predicted), ece and the review figures under the package's own thresholds.

Each evaluation is an MLflow run of its own (`autorma_models.tracking`): the options, the
report's numbers as metrics and the report as `report.json`. When the package names the run that
made it (model.json's `training.tracking`), the evaluation goes in that run's experiment, tagged
`autorma.package_run_id` with its id; else in `autorma-<name>`.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import data, export, metrics, tracking
from .package import sha256_file
from .preprocess import PreprocessSpec, normalise


def load_package(model_dir: Path) -> dict:
    meta_path = Path(model_dir) / "model.json"
    if not meta_path.exists():
        raise SystemExit(f"`{meta_path}` not found: --model must be a model package folder")
    meta = json.loads(meta_path.read_text())
    onnx_path = Path(model_dir) / meta["onnx"]["file"]
    if sha256_file(onnx_path) != meta["onnx"]["sha256"]:
        raise SystemExit(f"`{onnx_path}` does not match the sha256 in model.json: the package is damaged")
    return meta


def evaluate(model_dir: Path, data_dir: Path, workers: int = 2) -> dict:
    meta = load_package(model_dir)
    spec = PreprocessSpec.from_model_json(meta)
    classes = meta["classes"]
    paths, labels, _ = data.scan(data_dir, classes)
    x = normalise(data.load_pixels(paths, spec, workers), spec)
    probs = export.ort_predict(export.ort_session(Path(model_dir) / meta["onnx"]["file"]), x)
    out = metrics.judge(labels, probs, classes, meta["thresholds"])
    out["model"] = {"name": meta["name"], "version": meta["version"], "sha256": meta["onnx"]["sha256"]}
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, required=True, help="model package folder (model.json + model.onnx)")
    p.add_argument("--data", type=Path, required=True, help="folder with one sub-folder per class")
    p.add_argument("--json", action="store_true", help="print the whole report as JSON")
    p.add_argument("--workers", type=int, default=2)
    tracking.add_arguments(p)
    a = p.parse_args(argv)
    r = evaluate(a.model, a.data, a.workers)
    meta = json.loads((a.model / "model.json").read_text())
    made_by = tracking.made_by(meta)
    with tracking.run(a, made_by.get("experiment", f"autorma-{meta['name']}"),
                      f"evaluate {meta['name']} v{meta['version']} on {a.data.name}", "evaluate",
                      tags={"autorma.package_run_id": made_by.get("run_id"),
                            "autorma.onnx_sha256": meta["onnx"]["sha256"],
                            "autorma.dataset_sha256": data.dataset_fingerprint(a.data)}) as run:
        run.log_params(a)
        run.log_metrics(r)
        run.log_dict(r, "report.json")
    if a.json:
        json.dump(r, sys.stdout, indent=2)
        print()
    else:
        print(f"accuracy {r['accuracy']:.4f} on {r['num_photos']} photos; "
              f"review {r['review']['share_sent_to_review']:.2%}, accepted accuracy {r['review']['accepted_accuracy']:.4f}")


if __name__ == "__main__":
    main()
