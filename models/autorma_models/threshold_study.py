"""How well do review thresholds chosen on val hold on photos they were not chosen on?

    python -m autorma_models.threshold_study --run runs/cpu/rs128_asp_lr_e100 \
        --data ../shared/datasets/fashion5

Uses val alone: each trial splits val in two stratified halves, fits the temperature and the
thresholds on one half and judges them on the other, for the bare per-class rule and the
per-class rule floored at the pooled threshold (`metrics.review_thresholds`). Prints a markdown
table: share sent to review, accuracy of the accepted photos, share of trials reaching the target.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from . import data, metrics, nets
from .package import split_tensors, torch_logits
from .preprocess import PreprocessSpec

RULES = {"per class": False, "per class, floored at the pooled one": True}


def split_half(labels: np.ndarray, logits: np.ndarray, classes: list[str], target: float,
               trials: int, seed: int) -> dict[str, dict[str, float]]:
    """Mean review share and accepted accuracy on the held-out half, per rule."""
    rng = np.random.default_rng(seed)
    rows = {rule: [] for rule in RULES}
    for _ in range(trials):
        fit = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:np.sum(labels == c) // 2]
                              for c in range(len(classes))])
        held = np.setdiff1d(np.arange(len(labels)), fit)
        t = metrics.fit_temperature(logits[fit], labels[fit])
        p_fit, p_held = metrics.softmax(logits[fit], t), metrics.softmax(logits[held], t)
        for rule, floor in RULES.items():
            th = metrics.review_thresholds(labels[fit], p_fit, classes, target, pooled_floor=floor)
            r = metrics.review_report(labels[held], p_held, classes, th)
            rows[rule].append((r["share_sent_to_review"], r["accepted_accuracy"]))
    out = {}
    for rule, v in rows.items():
        v = np.asarray(v)
        out[rule] = {"review": float(v[:, 0].mean()), "accepted_accuracy": float(v[:, 1].mean()),
                     "trials_reaching_target": float(np.mean(v[:, 1] >= target))}
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, action="append", required=True, help="run folder (repeatable)")
    p.add_argument("--data", type=Path, required=True, help="data set root with val/")
    p.add_argument("--target", type=float, default=0.997, help="accuracy the accepted photos must reach")
    p.add_argument("--trials", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    print("| run | rule | sent to review | accepted right | trials reaching the target |\n|---|---|---|---|---|")
    val_dir = data.split_dirs(a.data)["val"]
    for run in a.run:
        model, ck = nets.load_run(run)
        x_val, y_val = split_tensors(val_dir, ck["classes"], PreprocessSpec(size=ck["size"]), a.workers)
        logits = torch_logits(model, x_val)
        for rule, r in split_half(y_val, logits, ck["classes"], a.target, a.trials, a.seed).items():
            print(f"| {Path(run).name} | {rule} | {100 * r['review']:.1f} % | {100 * r['accepted_accuracy']:.2f} % "
                  f"| {100 * r['trials_reaching_target']:.0f} % |")


if __name__ == "__main__":
    main()
