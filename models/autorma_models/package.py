"""Turns a training run into the model package the pipeline serves.

    python -m autorma_models.package --run runs/resnet_s_128_seed1 \
        --data ../shared/datasets/fashion5 --out fashion5 --version 1 --candidates runs

Fits the temperature on val, chooses per-class review thresholds on val, exports the
calibrated graph to ONNX, checks onnxruntime against PyTorch on real photos, judges the
exported graph on val and test, and writes `model.onnx`, `model.json` and `MODEL_CARD.md`.
With `--candidates`, every run folder there is measured for the card's speed table.

Packaging logs to the training's MLflow run (named by `<run>/tracking.json`; a run trained
before tracking gets a run of its own): the judged figures as metrics `package/<split>/...`,
and `options.json`, `model.json` and `MODEL_CARD.md` as artefacts in `package/<name>-v<version>/`.
model.json's `training.tracking` names that run (models/PACKAGE.md).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from . import bench, data, export, metrics, nets, tracking
from .card import write_card
from .preprocess import PreprocessSpec, normalise

log = logging.getLogger("autorma.package")
PARITY_LIMIT = 1e-4


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def split_tensors(root: Path, classes, spec: PreprocessSpec, workers: int):
    paths, labels, _ = data.scan(root, classes)
    return normalise(data.load_pixels(paths, spec, workers), spec), labels


@torch.no_grad()
def torch_logits(model, x: np.ndarray, batch: int = 128) -> np.ndarray:
    return np.concatenate([model(torch.from_numpy(x[i:i + batch])).numpy() for i in range(0, len(x), batch)])


def speed_table(candidates: Path, threads: int) -> list[dict]:
    """One row per run folder: its recipe and figures, plus onnxruntime img/s at batch 32
    measured now, in this one process, so the rows compare with each other."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        speeds: dict[tuple[str, int], float] = {}
        for summary in sorted(candidates.glob("**/summary.json")):
            s = json.loads(summary.read_text())
            key = (s["arch"], s["size"])
            if key not in speeds:
                onnx_path = Path(tmp) / f"{key[0]}_{key[1]}.onnx"
                export.export_onnx(nets.Calibrated(nets.build(key[0], len(s["classes"])), 1.0), key[1], onnx_path)
                speeds[key] = bench.images_per_second(onnx_path, key[1], threads, 32, 4.0)
                log.info("speed %s @%d: %.0f img/s", *key, speeds[key])
            rows.append({"run": summary.parent.name, "arch": s["arch"], "size": s["size"],
                         "epochs": s["history"][-1]["epoch"],
                         "val_acc": s["val_acc"], "val_acc_flip": s["val_acc_flip"],
                         "test_acc": s.get("test_acc"), "train_seconds": round(s["train_seconds"]),
                         "device": s["device"], "recipe": s["recipe"],
                         "images_per_second": round(speeds[key])})
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, required=True, help="run folder holding checkpoint.pt")
    p.add_argument("--data", type=Path, required=True, help="data set root with val/ and test/")
    p.add_argument("--out", type=Path, required=True, help="package folder to write")
    p.add_argument("--name", default="fashion5")
    p.add_argument("--version", default="1")
    p.add_argument("--bench-val", type=Path,
                   help="bench-style val photos (autorma_models.bench_photos on val/): the temperature and the "
                        "review thresholds are fitted on val and these together, and the package is judged on them")
    p.add_argument("--bench-test", type=Path, help="bench-style test photos: judged and recorded as bench_test")
    p.add_argument("--precision-target", type=float, default=0.997,
                   help="accuracy the automatically accepted photos must reach on val")
    p.add_argument("--candidates", type=Path,
                   help="folder of run folders (searched recursively) for the card's speed table")
    p.add_argument("--notes", type=Path, help="markdown section for the card: what was tried and what it gave")
    p.add_argument("--threads", type=int, default=2, help="onnxruntime threads for the speed figures")
    p.add_argument("--workers", type=int, default=2)
    tracking.add_arguments(p)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    torch.set_num_threads(a.threads)
    with tracking.run(a, f"autorma-{a.name}", f"{a.name} v{a.version}", "package",
                      resume=tracking.read_record(a.run)) as run:
        build(a, run)


def build(a: argparse.Namespace, run: tracking.Off) -> None:
    """Measures, exports and writes the package `a` asks for, logging to `run`."""
    model, ck = nets.load_run(a.run)
    classes, spec = ck["classes"], PreprocessSpec(size=ck["size"])
    dirs = data.split_dirs(a.data)
    sets = {"val": dirs["val"], "test": dirs["test"], "bench_val": a.bench_val, "bench_test": a.bench_test}
    tensors = {name: split_tensors(root, classes, spec, a.workers) for name, root in sets.items() if root}
    # What the temperature and thresholds are fitted on: val, with its bench-style twin when given.
    fit = [name for name in ("val", "bench_val") if name in tensors]
    y_fit = np.concatenate([tensors[n][1] for n in fit])

    raw_logits = {name: torch_logits(model, x) for name, (x, _) in tensors.items()}
    temperature = metrics.fit_temperature(np.concatenate([raw_logits[n] for n in fit]), y_fit)
    log.info("temperature fitted on %s: %.3f", " + ".join(fit), temperature)

    a.out.mkdir(parents=True, exist_ok=True)
    onnx_path = a.out / "model.onnx"
    shipped = nets.Calibrated(model, temperature).eval()
    export.export_onnx(shipped, spec.size, onnx_path)
    parity = export.parity(shipped, onnx_path, tensors["val"][0][:128])
    log.info("onnxruntime vs PyTorch on 128 val photos: max abs diff %.2e", parity)
    if parity >= PARITY_LIMIT:
        raise SystemExit(f"parity check failed: max abs difference {parity:.2e} >= {PARITY_LIMIT}")

    session = export.ort_session(onnx_path)
    probs = {name: export.ort_predict(session, x) for name, (x, _) in tensors.items()}
    labels = {name: y for name, (_, y) in tensors.items()}
    thresholds = metrics.review_thresholds(y_fit, np.concatenate([probs[n] for n in fit]), classes,
                                           a.precision_target)
    judged = {}
    for split in tensors:
        r = metrics.judge(labels[split], probs[split], classes, thresholds)
        r["ece_before_temperature"] = round(
            metrics.expected_calibration_error(labels[split], metrics.softmax(raw_logits[split])), 4)
        judged[split] = r
    ips = bench.images_per_second(onnx_path, spec.size, a.threads, 32, 5.0)

    meta = {
        "schema": "autorma.model/v1",
        "name": a.name,
        "version": str(a.version),
        "architecture": ck["arch"],
        "classes": classes,
        "onnx": {"file": "model.onnx", "sha256": sha256_file(onnx_path), "input": export.INPUT_NAME,
                 "output": export.OUTPUT_NAME, "opset": export.OPSET},
        "input_size": spec.size,
        "preprocessing": spec.to_json(),
        "temperature": round(temperature, 5),
        "thresholds": {c: round(t, 6) for c, t in thresholds.items()},
        "threshold_rule": (f"per predicted class, lowest confidence keeping {' + '.join(fit)} precision >= "
                           f"{a.precision_target}, floored at the same threshold over all those photos pooled"),
        "metrics": judged,
        "parity_max_abs_diff": parity,
        "onnxruntime_images_per_second": {"batch": 32, "threads": a.threads, "value": round(ips)},
        "dataset": {"name": a.data.name, "manifest_sha256": data.dataset_fingerprint(a.data)},
        "training": {**{k: ck[k] for k in ("recipe", "train_seconds", "device", "steps", "val_acc", "val_acc_flip",
                                           "val_bench_acc") if k in ck},
                     **({"tracking": run.record} if run.record else {})},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (a.out / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
    table = speed_table(a.candidates, a.threads) if a.candidates else []
    write_card(a.out / "MODEL_CARD.md", meta, table, a.notes.read_text() if a.notes else "")
    # The options go in a file, not params: a run's params cannot change, and one training run
    # may be packaged more than once.
    folder = f"package/{a.name}-v{a.version}"
    run.log_dict(tracking.options(a), f"{folder}/options.json")
    run.log_artifacts(a.out / "model.json", a.out / "MODEL_CARD.md", folder=folder)
    run.log_metrics({"package": {**judged, "temperature": temperature, "parity_max_abs_diff": parity,
                                 "onnxruntime_images_per_second": ips}})
    run.set_tags({"autorma.package": f"{a.name} v{a.version}", "autorma.onnx_sha256": meta["onnx"]["sha256"],
                  "autorma.dataset_sha256": meta["dataset"]["manifest_sha256"]})
    print(json.dumps({"package": str(a.out), **{f"{n}_accuracy": judged[n]["accuracy"] for n in judged},
                      "temperature": meta["temperature"],
                      **{f"review_{n}": judged[n]["review"] for n in judged if n != "val"}, "parity": parity,
                      "images_per_second": round(ips)}, indent=2))


if __name__ == "__main__":
    main()
