"""Fixtures: a tiny class-folder data set, from the real photos when they are beside the
project, else synthetic ones (coloured shapes on white, one shape per class); and the MLflow
store every command the tests run tracks to."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

CLASSES = ["casual_shoes", "handbags", "shirts", "tops", "watches"]
REAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets" / "fashion5"


def _synthetic(path: Path, cls: int, rng: np.random.Generator) -> None:
    """A coloured shape on white; the shape (not the colour) tells the class."""
    w, h = (int(v) for v in rng.integers(40, 120, 2))
    img = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(img)
    colour = tuple(int(v) for v in rng.integers(0, 200, 3))
    x0, y0, x1, y1 = w * 0.2, h * 0.2, w * 0.8, h * 0.8
    shapes = [
        lambda: draw.rectangle((x0, y0, x1, y1), fill=colour),
        lambda: draw.ellipse((x0, y0, x1, y1), fill=colour),
        lambda: draw.polygon([(x0, y1), (x1, y1), ((x0 + x1) / 2, y0)], fill=colour),
        lambda: draw.line((x0, y0, x1, y1), fill=colour, width=5),
        lambda: draw.chord((x0, y0, x1, y1), 0, 180, fill=colour),
    ]
    shapes[cls]()
    img.save(path, quality=90)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("val", 4), ("test", 4)):
        for i, c in enumerate(CLASSES):
            d = root / split / c
            d.mkdir(parents=True)
            real = sorted((REAL / split / c).glob("*.jpg"))[:n] if (REAL / split / c).is_dir() else []
            for k in range(n):
                if real:
                    shutil.copy(real[k], d / real[k].name)
                else:
                    _synthetic(d / f"{k}.jpg", i, rng)
    return root


@pytest.fixture(scope="session", autouse=True)
def tracking_uri(tmp_path_factory):
    """One throwaway store for the whole session, never models/mlruns (creating MLflow's
    database takes seconds, so not one per test)."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlruns') / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        yield uri
