"""The real training, packaging and evaluation commands, end to end, on a tiny data set."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from autorma_models import bench_photos, evaluate, package, tracking, train
from autorma_models.preprocess import PreprocessSpec, preprocess_file


@pytest.fixture(scope="module")
def packaged(tiny_dataset, tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    out = tmp_path_factory.mktemp("pkg") / "tiny"
    # Bench-style copies of val and test, small (0.3 MP) so the test stays quick.
    bench = tmp_path_factory.mktemp("bench")
    for split in ("val", "test"):
        bench_photos.run(tiny_dataset / split, bench / split, seed=0, workers=1, max_megapixels=0.3)
    # Two whole epochs (40 train photos, 5 batches each), so the tracked history has two points.
    train.main(["--data", str(tiny_dataset), "--out", str(run), "--arch", "resnet_s", "--size", "64",
                "--epochs", "2", "--batch-size", "8", "--workers", "1", "--report-test",
                "--bench-prob", "0.5", "--bench-val", str(bench / "val")])
    package.main(["--run", str(run), "--data", str(tiny_dataset), "--out", str(out), "--version", "0-test",
                  "--workers", "1", "--bench-val", str(bench / "val"), "--bench-test", str(bench / "test")])
    return out


def test_package_is_complete_and_consistent(packaged):
    meta = json.loads((packaged / "model.json").read_text())
    assert meta["schema"] == "autorma.model/v1"
    assert meta["classes"] == ["casual_shoes", "handbags", "shirts", "tops", "watches"]
    assert meta["input_size"] == 64
    assert meta["onnx"]["sha256"] == package.sha256_file(packaged / "model.onnx")
    assert meta["parity_max_abs_diff"] < package.PARITY_LIMIT
    assert set(meta["thresholds"]) == set(meta["classes"])
    assert all(0 < t <= 1 for t in meta["thresholds"].values())
    assert meta["temperature"] > 0
    card = (packaged / "MODEL_CARD.md").read_text()
    assert "## Intended use and known limits" in card


def test_bench_style_sets_are_fitted_on_and_judged(packaged):
    meta = json.loads((packaged / "model.json").read_text())
    assert set(meta["metrics"]) == {"val", "test", "bench_val", "bench_test"}
    assert meta["metrics"]["bench_test"]["num_photos"] == 20
    assert "val + bench_val" in meta["threshold_rule"]
    assert meta["training"]["recipe"]["bench_prob"] == 0.5
    assert 0 <= meta["training"]["val_bench_acc"] <= 1
    card = (packaged / "MODEL_CARD.md").read_text()
    assert "| test, bench-style |" in card and "--bench-prob 0.5" in card
    assert "fitted on val and bench-style val together" in card


def test_training_and_packaging_are_one_mlflow_run(packaged, tiny_dataset, tracking_uri, tmp_path):
    meta = json.loads((packaged / "model.json").read_text())
    record = meta["training"]["tracking"]
    run_dir = Path(meta["training"]["recipe"]["out"])
    assert record == json.loads((run_dir / "tracking.json").read_text())
    assert record["tool"] == "mlflow" and record["tracking_uri"] == tracking_uri
    assert re.fullmatch("[0-9a-f]{32}", record["run_id"])
    assert not set(tracking.OPTIONS) & set(meta["training"]["recipe"]), "where it was logged is no recipe"

    client = tracking.client(tracking_uri)
    run = client.get_run(record["run_id"])
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == record["experiment"] == f"autorma-{tiny_dataset.name}"
    params = run.data.params
    assert (params["arch"], params["size"], params["epochs"], params["bench_prob"]) == ("resnet_s", "64", "2", "0.5")
    assert params["data"] == str(tiny_dataset) and "tracking_uri" not in params
    tags = run.data.tags
    assert tags["autorma.command"] == "train"
    assert tags["autorma.dataset_sha256"] == meta["dataset"]["manifest_sha256"]
    assert tags["autorma.onnx_sha256"] == meta["onnx"]["sha256"]
    assert tags.get("mlflow.source.git.commit") == tracking.git_commit()[0]

    def history(key):
        return [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)]

    # Every epoch's loss and learning rate; the val figures when measured (the last epoch here).
    assert [step for step, _ in history("train_loss")] == [1, 2] and len(history("lr")) == 2
    summary = json.loads((run_dir / "summary.json").read_text())
    assert history("val_acc_ema") == [(2, summary["history"][-1]["val_acc_ema"])]
    assert len(history("val_bench_acc_ema")) == 1
    assert run.data.metrics["val_acc"] == pytest.approx(summary["val_acc"])
    # The package's figures, on the same run.
    assert run.data.metrics["package/test/accuracy"] == meta["metrics"]["test"]["accuracy"]
    assert run.data.metrics["package/bench_val/review/share_sent_to_review"] == \
        meta["metrics"]["bench_val"]["review"]["share_sent_to_review"]

    folder = "package/fashion5-v0-test"
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == \
        {"summary.json", "train_manifest.csv", "checkpoint.pt", "package"}
    assert {a.path for a in client.list_artifacts(run.info.run_id, folder)} == \
        {f"{folder}/model.json", f"{folder}/MODEL_CARD.md", f"{folder}/options.json"}
    logged = Path(client.download_artifacts(run.info.run_id, f"{folder}/model.json", str(tmp_path)))
    assert logged.read_bytes() == (packaged / "model.json").read_bytes()


def test_onnx_batch_axis_is_dynamic_and_outputs_probabilities(packaged):
    from autorma_models import export
    sess = export.ort_session(packaged / "model.onnx")
    for n in (1, 3):
        p = sess.run(["probabilities"], {"image": np.zeros((n, 3, 64, 64), np.float32)})[0]
        assert p.shape == (n, 5)
        np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)


def test_evaluate_reports_accuracy_per_class_and_confusion(packaged, tiny_dataset, capsys):
    evaluate.main(["--model", str(packaged), "--data", str(tiny_dataset / "val"), "--json", "--workers", "1"])
    r = json.loads(capsys.readouterr().out)
    assert 0 <= r["accuracy"] <= 1
    assert sum(sum(row) for row in r["confusion"]["rows_true_cols_predicted"]) == r["num_photos"] == 20
    assert set(r["per_class"]) == {"casual_shoes", "handbags", "shirts", "tops", "watches"}


def test_an_evaluation_is_a_run_beside_the_one_that_made_the_package(packaged, tiny_dataset, tracking_uri, capsys):
    evaluate.main(["--model", str(packaged), "--data", str(tiny_dataset / "test"), "--json", "--workers", "1"])
    r = json.loads(capsys.readouterr().out)
    made_by = json.loads((packaged / "model.json").read_text())["training"]["tracking"]
    client = tracking.client(tracking_uri)
    experiment = client.get_experiment_by_name(made_by["experiment"])
    run = client.search_runs([experiment.experiment_id], "tags.`autorma.command` = 'evaluate'",
                             order_by=["attributes.start_time DESC"], max_results=1)[0]
    assert run.info.run_name == "evaluate fashion5 v0-test on test"
    assert run.data.tags["autorma.package_run_id"] == made_by["run_id"]
    assert run.data.metrics["accuracy"] == r["accuracy"]
    assert run.data.metrics["per_class/watches/f1"] == r["per_class"]["watches"]["f1"]
    assert run.data.params["data"] == str(tiny_dataset / "test")
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["report.json"]


def test_evaluate_refuses_a_damaged_package(packaged, tmp_path):
    import shutil
    broken = tmp_path / "broken"
    shutil.copytree(packaged, broken)
    with open(broken / "model.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(SystemExit, match="sha256"):
        evaluate.load_package(broken)


def test_preprocess_letterboxes_on_white(tmp_path):
    from PIL import Image
    img = Image.new("RGB", (40, 80), (255, 0, 0))  # tall: white bars left and right
    img.save(tmp_path / "red.png")
    spec = PreprocessSpec(size=32)
    x = preprocess_file(tmp_path / "red.png", spec)
    assert x.shape == (3, 32, 32) and x.dtype == np.float32
    white = (1.0 - np.asarray(spec.mean)) / np.asarray(spec.std)
    red = (np.array([1.0, 0, 0]) - np.asarray(spec.mean)) / np.asarray(spec.std)
    np.testing.assert_allclose(x[:, 16, 0], white, atol=1e-5)    # left bar
    np.testing.assert_allclose(x[:, 16, 31], white, atol=1e-5)   # right bar
    np.testing.assert_allclose(x[:, 16, 16], red, atol=1e-5)     # the photo, centred


def test_quantize_writes_an_int8_package_judged_beside_fp32(packaged, tiny_dataset, tmp_path, capsys):
    import onnx
    from autorma_models import quantize
    out = tmp_path / "int8"
    # The tiny model is barely trained: the gate is opened so the package is written and checked.
    quantize.main(["--model", str(packaged), "--data", str(tiny_dataset), "--out", str(out),
                   "--calibration-per-class", "4", "--max-accuracy-drop", "1", "--workers", "1"])
    summary = json.loads(capsys.readouterr().out)
    assert set(summary["images_per_second"]) == {"fp32", "int8"}
    meta = evaluate.load_package(out)  # checks the sha256 against the graph
    fp32 = json.loads((packaged / "model.json").read_text())
    assert meta["precision"] == "int8" and meta["version"] == "0-test-int8"
    q = meta["quantization"]
    assert q["calibration"] == {"split": "train", "photos": 20, "method": "percentile", "seed": 0, "per_class": 4}
    assert q["from"]["sha256"] == fp32["onnx"]["sha256"]
    ops = [n.op_type for n in onnx.load(str(out / "model.onnx")).graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    # The softmax's input and output stay float: no DequantizeLinear right after it.
    assert ops[-1] == "Softmax", ops[-4:]
    assert meta["metrics"]["test"]["accuracy"] == summary["test_accuracy"]["int8"]
    assert "Precision int8" in (out / "MODEL_CARD.md").read_text()
    # An int8 package is not quantized again.
    with pytest.raises(SystemExit, match="already a int8 package"):
        quantize.main(["--model", str(out), "--data", str(tiny_dataset), "--out", str(tmp_path / "again")])


def test_quantize_refuses_to_write_a_package_that_loses_accuracy(packaged, tiny_dataset, tmp_path):
    from autorma_models import quantize
    out = tmp_path / "int8"
    # A negative allowance fails every gate: nothing may be left behind.
    with pytest.raises(SystemExit, match="no package written"):
        quantize.main(["--model", str(packaged), "--data", str(tiny_dataset), "--out", str(out),
                       "--calibration-per-class", "2", "--max-accuracy-drop", "-1", "--workers", "1"])
    assert not out.exists(), "nothing is written before the gate"
    with pytest.raises(SystemExit, match="another folder"):
        quantize.main(["--model", str(packaged), "--data", str(tiny_dataset), "--out", str(packaged)])
