"""Experiment tracking: where runs go, what a resumed run is, and turning it off."""
from __future__ import annotations

import argparse
import json

import pytest

from autorma_models import tracking, train


def _args(*argv):
    p = argparse.ArgumentParser()
    p.add_argument("--out")
    tracking.add_arguments(p)
    return p.parse_args(list(argv))


def test_the_store_is_the_flag_then_the_environment_then_models_mlruns(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////elsewhere/mlflow.db")
    assert tracking.resolve_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert tracking.resolve_uri() == "sqlite:////elsewhere/mlflow.db"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert tracking.resolve_uri() == f"sqlite:///{tracking.MODELS_DIR / 'mlruns' / 'mlflow.db'}"
    # A relative SQLite path is recorded absolute: model.json is read from other folders.
    monkeypatch.chdir(tmp_path)
    assert tracking.resolve_uri("sqlite:///store/mlflow.db") == f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"


def test_metrics_are_the_numbers_of_a_report():
    report = {"accuracy": 0.5, "num_photos": 20, "per_class": {"tops": {"f1": 0.25}}, "ok": True,
              "confusion": {"classes": ["tops"], "rows_true_cols_predicted": [[1]]}, "model": {"name": "x"}}
    assert tracking.flatten(report) == {"accuracy": 0.5, "num_photos": 20.0, "per_class/tops/f1": 0.25}


def test_a_recorded_run_is_resumed_as_it_is(tracking_uri):
    with tracking.run(_args(), "autorma-test", "first", "train") as first:
        first.log_metrics({"loss": 1.0}, step=1)
    with tracking.run(_args("--experiment", "ignored"), "autorma-other", "second", "package",
                      resume=first.record) as again:
        again.log_metrics({"package": {"accuracy": 0.5}})
    assert again.record == first.record == {"tool": "mlflow", "run_id": first.run_id,
                                            "experiment": "autorma-test", "tracking_uri": tracking_uri}
    run = tracking.client(tracking_uri).get_run(first.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "first"
    assert run.data.metrics == {"loss": 1.0, "package/accuracy": 0.5}


def test_a_run_missing_from_the_store_gets_a_new_one_that_names_it(tracking_uri):
    gone = {"tool": "mlflow", "run_id": "0" * 32, "experiment": "x", "tracking_uri": "sqlite:////other.db"}
    with tracking.run(_args("--experiment", "autorma-elsewhere"), "autorma-test", "pkg", "package",
                      resume=gone) as run:
        pass
    assert run.run_id != gone["run_id"] and run.record["experiment"] == "autorma-elsewhere"
    tags = tracking.client(tracking_uri).get_run(run.run_id).data.tags
    assert tags["autorma.training_run_id"] == gone["run_id"] and tags["autorma.command"] == "package"


def test_a_command_that_fails_leaves_a_failed_run(tracking_uri):
    with pytest.raises(SystemExit):
        with tracking.run(_args(), "autorma-test", "broken", "train") as run:
            raise SystemExit("no data")
    assert tracking.client(tracking_uri).get_run(run.run_id).info.status == "FAILED"


def test_no_tracking_records_nothing(tiny_dataset, tmp_path, monkeypatch):
    # A store MLflow cannot open: nothing may try.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "bogus://nowhere")
    out = tmp_path / "run"
    train.main(["--data", str(tiny_dataset), "--out", str(out), "--arch", "resnet_s", "--size", "32",
                "--epochs", "1", "--batch-size", "8", "--max-steps", "1", "--workers", "1", "--no-tracking"])
    assert not (out / tracking.RECORD_FILE).exists()
    assert tracking.read_record(out) is None
    assert not set(tracking.OPTIONS) & set(json.loads((out / "summary.json").read_text())["recipe"])
