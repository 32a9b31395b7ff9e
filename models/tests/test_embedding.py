"""The product embedding: trained from a package's backbone, exported beside its classifier."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from autorma_models import embedding, export, tracking

PACKAGE = Path(__file__).resolve().parents[1] / "fashion5"


def test_roc_auc_and_the_threshold_figures():
    honest, wrong = np.array([0.9, 0.8, 0.7, 0.2]), np.array([0.1, 0.3, 0.75])
    # Pairs honest > wrong: 0.9 (3), 0.8 (3), 0.7 (2), 0.2 (1) = 9 of 12.
    assert embedding.roc_auc(honest, wrong) == 0.75
    j = embedding.judge(honest, wrong, threshold=0.5, flag_rate=0.25)
    assert j["at_threshold"] == {"threshold": 0.5, "honest_flagged": 0.25, "wrong_caught": round(2 / 3, 4)}


def test_a_package_gains_an_embedding_and_keeps_its_classifier(tiny_dataset, tmp_path, tracking_uri):
    out = tmp_path / "pkg"
    embedding.main(["--data", str(tiny_dataset), "--package", str(PACKAGE), "--epochs", "1", "--batch-size", "8",
                    "--workers", "1", "--out", str(tmp_path / "run"), "--package-out", str(out), "--version", "3e"])
    meta = json.loads((out / "model.json").read_text())
    source = json.loads((PACKAGE / "model.json").read_text())
    assert meta["version"] == "3e"
    assert meta["onnx"] == source["onnx"] and (out / "model.onnx").read_bytes() == (PACKAGE / "model.onnx").read_bytes()
    e = meta["embedding"]
    assert (e["file"], e["output"], e["dim"], e["similarity"]) == ("embedding.onnx", "embedding", 128, "cosine")
    assert -1 <= e["threshold"] <= 1 and e["parity_max_abs_diff"] < 1e-4
    assert set(e["metrics"]) == {"val_augment_shots", "test_augment_shots"}
    x = np.random.default_rng(0).normal(size=(3, 3, 128, 128)).astype(np.float32)
    z = export.ort_session(out / "embedding.onnx").run(["embedding"], {"image": x})[0]
    assert z.shape == (3, 128) and np.allclose(np.linalg.norm(z, axis=1), 1, atol=1e-5)
    # The embedding's training is a tracked run of its own; the classifier's record is untouched.
    assert meta["training"] == source["training"]
    record = e["training"]["tracking"]
    client = tracking.client(tracking_uri)
    run = client.get_run(record["run_id"])
    assert record["experiment"] == "autorma-fashion5" and run.data.tags["autorma.command"] == "embedding"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [1]
    assert run.data.metrics["val_augment_shots/roc_auc"] == e["metrics"]["val_augment_shots"]["roc_auc"]
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"report.json", "package"}
