"""Experiment tracking: training, packaging, evaluation and the product embedding's training log
their options, per-epoch metrics and artefacts to MLflow runs, so that a model version leads
back to how it was made (model.json's `training.tracking` names the run: models/PACKAGE.md).

The store is local and needs no server: `--tracking-uri`, else `$MLFLOW_TRACKING_URI`, else a
SQLite file, `models/mlruns/mlflow.db`. A SQLite store keeps each experiment's artefacts beside
the file, in `artifacts/<experiment>/` (MLflow's own default is `./mlruns` under whatever folder
the command ran in). Not MLflow's plain-folder store: it is frozen, and refuses to open unless
told to. MLflow's usage telemetry is switched off before MLflow is imported, so nothing leaves the
machine. `--no-tracking` turns tracking off; MLflow is then not even imported.

MLflow is imported here only: a command opens a `run` and calls the methods of what it yields.
"""
from __future__ import annotations

import argparse
import fcntl
import json
import logging
import os
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger("autorma.tracking")

MODELS_DIR = Path(__file__).resolve().parents[1]
DEFAULT_STORE = MODELS_DIR / "mlruns" / "mlflow.db"
SQLITE = "sqlite:///"
# The argparse destinations `add_arguments` adds: where runs are logged, not how a model is made,
# so they are left out of a run's params and of a training recipe.
OPTIONS = ("tracking_uri", "experiment", "no_tracking")
# The file in a training run folder that names its MLflow run, so packaging logs to that run.
RECORD_FILE = "tracking.json"


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("experiment tracking (MLflow)")
    g.add_argument("--tracking-uri",
                   help="MLflow tracking URI [default: $MLFLOW_TRACKING_URI, else sqlite:///<models>/mlruns/mlflow.db]")
    g.add_argument("--experiment", help="MLflow experiment for a new run [default: autorma-<model name>]")
    g.add_argument("--no-tracking", action="store_true", help="log nothing to MLflow")


def resolve_uri(given: str | None = None) -> str:
    """The tracking URI, a relative SQLite path made absolute: it is recorded, and read elsewhere."""
    uri = given or os.environ.get("MLFLOW_TRACKING_URI") or f"{SQLITE}{DEFAULT_STORE}"
    db = _sqlite_file(uri)
    return f"{SQLITE}{db.resolve()}" if db else uri


def _sqlite_file(uri: str) -> Path | None:
    return Path(uri[len(SQLITE):]) if uri.startswith(SQLITE) else None


def client(uri: str):
    """An MLflow client on `uri`. A SQLite file's folder is made first (SQLite does not), and the
    client is opened under a lock beside the file: opening creates or upgrades the store's tables,
    which two commands started together (candidates trained side by side) would break."""
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"  # read once, when mlflow is imported
    from mlflow import MlflowClient

    db = _sqlite_file(uri)
    if not db:
        return MlflowClient(tracking_uri=uri)
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return MlflowClient(tracking_uri=uri)


def read_record(folder: Path) -> dict | None:
    """The run a run folder's `tracking.json` names, if it has one (runs trained before tracking do not)."""
    path = Path(folder) / RECORD_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def made_by(meta: dict) -> dict:
    """The run that made a package (model.json's `training.tracking`); {} when not recorded."""
    return meta.get("training", {}).get("tracking") or {}


def options(args: argparse.Namespace) -> dict:
    """A command's options as JSON (paths as strings), less where it logs (`OPTIONS`)."""
    def plain(v):
        return [plain(x) for x in v] if isinstance(v, list) else str(v) if isinstance(v, Path) else v

    return {k: plain(v) for k, v in sorted(vars(args).items()) if k not in OPTIONS}


def flatten(values: dict, prefix: str = "") -> dict[str, float]:
    """The numbers of a nested report, keyed by their path (`val/review/accepted_accuracy`):
    what MLflow can chart. Strings, lists (a confusion matrix) and flags are left out."""
    out = {}
    for k, v in values.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "/"))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[key] = float(v)
    return out


class Off:
    """Tracking turned off (`--no-tracking`): every call does nothing, so callers need no branches."""

    record: dict | None = None

    def log_params(self, args: argparse.Namespace) -> None:
        pass

    def log_metrics(self, values: dict, step: int = 0) -> None:
        pass

    def set_tags(self, tags: dict) -> None:
        pass

    def log_artifacts(self, *paths: Path, folder: str | None = None) -> None:
        pass

    def log_dict(self, values: dict, name: str) -> None:
        pass

    def write_record(self, folder: Path) -> None:
        pass


class Run(Off):
    """An MLflow run, through the client API (no global active run to leak between commands).
    `record` is what model.json's `training.tracking` and a run folder's `tracking.json` hold."""

    def __init__(self, mlflow_client, run_id: str, experiment: str, uri: str):
        self.client, self.run_id = mlflow_client, run_id
        self.record = {"tool": "mlflow", "run_id": run_id, "experiment": experiment, "tracking_uri": uri}

    def log_params(self, args: argparse.Namespace) -> None:
        """The command's `options`, a string as it is and anything else as JSON."""
        from mlflow.entities import Param

        params = [Param(k, v if isinstance(v, str) else json.dumps(v)) for k, v in options(args).items()]
        self.client.log_batch(self.run_id, params=params)

    def log_metrics(self, values: dict, step: int = 0) -> None:
        """The numbers of `values` (nested dicts flattened), at `step`: the epoch, in a history."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, now, step) for k, v in flatten(values).items()])

    def set_tags(self, tags: dict) -> None:
        for k, v in tags.items():
            self.client.set_tag(self.run_id, k, str(v))

    def log_artifacts(self, *paths: Path, folder: str | None = None) -> None:
        for path in paths:
            self.client.log_artifact(self.run_id, str(path), folder)

    def log_dict(self, values: dict, name: str) -> None:
        self.client.log_dict(self.run_id, values, name)

    def write_record(self, folder: Path) -> None:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / RECORD_FILE).write_text(json.dumps(self.record, indent=2) + "\n")


def git_commit() -> tuple[str | None, bool | None]:
    """The commit the code runs from, and whether models/ differs from it; (None, None) outside a
    git checkout. Read-only, without optional locks: a checkout in use elsewhere is not disturbed."""
    def git(*cmd):
        return subprocess.run(["git", "--no-optional-locks", *cmd], cwd=MODELS_DIR, capture_output=True, text=True)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return None, None
        return head.stdout.strip(), git("diff", "--quiet", "HEAD", "--", ".").returncode != 0
    except OSError:  # no git
        return None, None


def _experiment_id(c, name: str, uri: str) -> str:
    from mlflow.exceptions import MlflowException

    found = c.get_experiment_by_name(name)
    if found:
        return found.experiment_id
    db = _sqlite_file(uri)
    try:
        return c.create_experiment(name, artifact_location=(db.parent / "artifacts" / name).as_uri() if db else None)
    except MlflowException:  # made meanwhile by a command started beside this one
        return c.get_experiment_by_name(name).experiment_id


@contextmanager
def run(args: argparse.Namespace, experiment: str, name: str, command: str, resume: dict | None = None,
        tags: dict | None = None):
    """Yields the run a command logs to. `Off` under `--no-tracking`. The run `resume` names (a
    `tracking.json` record) when the store holds it, as it is: its own command ended it. Else a new
    run in `args.experiment or experiment`, named `name`, tagged with the command, the git commit,
    the run `resume` named if any, and `tags` (those not None); ended FINISHED, or FAILED if the
    block raises."""
    if args.no_tracking:
        yield Off()
        return
    uri = resolve_uri(args.tracking_uri)
    c = client(uri)
    from mlflow.exceptions import MlflowException

    if resume:
        try:
            found = c.get_run(resume["run_id"])
        except MlflowException:
            found = None
            log.warning("run %s (recorded in %s) is not in %s: logging to a new run", resume["run_id"],
                        resume.get("tracking_uri"), uri)
        if found:
            yield Run(c, found.info.run_id, c.get_experiment(found.info.experiment_id).name, uri)
            return
    experiment = args.experiment or experiment
    commit, dirty = git_commit()
    all_tags = {"autorma.command": command, "mlflow.source.git.commit": commit,
                "autorma.git_dirty": None if dirty is None else str(dirty).lower(),
                "autorma.training_run_id": resume and resume["run_id"], **(tags or {})}
    started = c.create_run(_experiment_id(c, experiment, uri), run_name=name,
                           tags={k: str(v) for k, v in all_tags.items() if v is not None})
    current = Run(c, started.info.run_id, experiment, uri)
    log.info("MLflow run %s in experiment %s (%s)", current.run_id, experiment, uri)
    try:
        yield current
    except BaseException:
        c.set_terminated(current.run_id, "FAILED")
        raise
    c.set_terminated(current.run_id, "FINISHED")
