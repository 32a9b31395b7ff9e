"""Class-folder data sets: `<root>/<class>/<photo>` (or `<root>/<split>/<class>/<photo>`)."""
from __future__ import annotations

import hashlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from .preprocess import PreprocessSpec, letterbox_resize, load_rgb

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


def scan(root: Path, classes: list[str] | None = None) -> tuple[list[Path], np.ndarray, list[str]]:
    """Lists photos under `root/<class>/`; classes are the sorted folder names unless given."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data set folder `{root}` does not exist")
    found = sorted(p.name for p in root.iterdir() if p.is_dir())
    classes = list(classes) if classes is not None else found
    missing = [c for c in classes if c not in found]
    if missing:
        raise ValueError(f"data set `{root}` has no folder for classes {missing}")
    paths, labels = [], []
    for idx, cls in enumerate(classes):
        for p in sorted((root / cls).iterdir()):
            if p.suffix.lower() in IMAGE_SUFFIXES:
                paths.append(p)
                labels.append(idx)
    if not paths:
        raise ValueError(f"data set `{root}` holds no photos ({sorted(IMAGE_SUFFIXES)})")
    return paths, np.asarray(labels, dtype=np.int64), classes


def extra_photos(root: Path, classes: list[str], held_out: set[str]) -> tuple[list[Path], np.ndarray, int]:
    """The photos of an extra training source in class folders (`autorma corrections export`
    writes one), labelled by their folder. A class it has no folder for is fine; a folder that is
    not one of `classes` is refused. Photos whose bytes are in `held_out` (sha256 hex: val's and
    test's) are dropped, so a photo judged on never trains; returns how many were."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"extra training source `{root}` does not exist")
    folders = sorted(p.name for p in root.iterdir() if p.is_dir())
    unknown = [f for f in folders if f not in classes]
    if unknown:
        raise ValueError(f"extra training source `{root}` has folders {unknown} that are not classes of this "
                         f"data set ({classes})")
    paths, labels, dropped = [], [], 0
    for cls in folders:
        for p in sorted((root / cls).iterdir()):
            if p.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            if hashlib.sha256(p.read_bytes()).hexdigest() in held_out:
                dropped += 1
                continue
            paths.append(p)
            labels.append(classes.index(cls))
    return paths, np.asarray(labels, dtype=np.int64), dropped


def photo_hashes(roots: list[Path]) -> set[str]:
    """sha256 (hex) of every photo under `roots`."""
    return {hashlib.sha256(p.read_bytes()).hexdigest()
            for root in roots for p in Path(root).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES}


def _load_one(args) -> np.ndarray:
    path, spec = args
    return letterbox_resize(load_rgb(path, spec.background, spec.size), spec)


def load_pixels(paths: list[Path], spec: PreprocessSpec, workers: int = 2) -> np.ndarray:
    """Letterboxed uint8 NHWC pixels for every path, decoded in parallel."""
    jobs = [(p, spec) for p in paths]
    if workers <= 1:
        return np.stack([_load_one(j) for j in jobs])
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return np.stack(list(pool.map(_load_one, jobs, chunksize=64)))


def dataset_fingerprint(root: Path) -> str:
    """sha256 of the data set's `manifest.csv` when it has one (fashion5 does), else of
    the sorted relative paths and bytes of every photo, so a package names what trained it."""
    root = Path(root)
    manifest = root / "manifest.csv"
    if not manifest.exists() and (root.parent / "manifest.csv").exists():
        manifest = root.parent / "manifest.csv"
    h = hashlib.sha256()
    if manifest.exists():
        h.update(manifest.read_bytes())
        return h.hexdigest()
    for p in sorted(q for q in root.rglob("*") if q.suffix.lower() in IMAGE_SUFFIXES):
        h.update(str(p.relative_to(root)).encode())
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def split_dirs(root: Path) -> dict[str, Path]:
    """`train`/`val`/`test` under `root`; raises with the layout expected when absent."""
    root = Path(root)
    out = {s: root / s for s in ("train", "val", "test")}
    for name in ("train", "val"):
        if not out[name].is_dir():
            raise FileNotFoundError(
                f"expected `{out[name]}`: the data set root needs train/ and val/ "
                "(and test/) folders, each with one folder per class"
            )
    return out
