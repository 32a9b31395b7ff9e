"""Product embeddings: is the returned item the product that was ordered?

    python -m autorma_models.embedding --data ../shared/datasets/fashion5 --package fashion5 \
        --bench-val /tmp/bench-val --bench-test /tmp/bench-test --epochs 16 \
        --out runs/embedding --package-out /tmp/fashion5-product

A return that claims a SKU is checked by comparing its photo with the SKU's catalogue photo
(cosine similarity of embeddings). The classifier's own penultimate features cannot do it: on
bench-style val photos against the catalogue photos of their class they give a ROC AUC of 0.52,
chance (they were trained to tell classes apart, and the bench's surface fills most of the frame).
So the package gets an embedding network of its own: the classifier's backbone, fine-tuned with a
projection on top, contrastively: each train photo's catalogue view against a bench shot of it
(`bench_augment`), InfoNCE over batches drawn from one class at a time, so every negative is the
hard case the check must catch (another product of the same class); the classifier's
cross-entropy on both views is kept beside it so the features stay about the item.

Chosen on val: the epoch with the best ROC AUC of bench-style val photos against val's catalogue
photos, and the threshold: the similarity below which `--flag-rate` of honest returns on val are
flagged. Judged on test (reported, never chosen on): ROC AUC, and recall at that flag rate.

`--package-out` writes a copy of `--package` with `embedding.onnx` beside its `model.onnx` (the
classifier is untouched: its outputs are identical) and model.json's `embedding` section naming
the file, its checksum, input and output, dimension and threshold (models/PACKAGE.md).

The training is an MLflow run of its own (`autorma_models.tracking`): the options, each epoch's
loss and val ROC AUCs, the final figures, `report.json` and the written package's `model.json`.
When `--package` names the run that made it (model.json's `training.tracking`), the run goes in
that run's experiment, tagged `autorma.package_run_id` with its id; else in `autorma-<name>`.
The written package's `embedding.training.tracking` names the run; its `training.tracking` (the
classifier's) is kept as it was.
"""
from __future__ import annotations

import argparse
import copy
import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import data, export, nets, tracking
from .bench_augment import BenchAugment, item_masks
from .package import sha256_file
from .preprocess import PreprocessSpec

log = logging.getLogger("autorma.embedding")

OUTPUT_NAME = "embedding"


def load(root: Path, classes, spec, workers):
    paths, labels, classes = data.scan(root, classes)
    px = torch.from_numpy(data.load_pixels(paths, spec, workers)).permute(0, 3, 1, 2).contiguous()
    return px, torch.from_numpy(labels), [p.stem for p in paths]


class Embedder(torch.nn.Module):
    """The classifier's backbone and a projection of its pooled features. `forward` gives the
    L2-normalised projection (what is exported); `train_forward` also the class logits."""

    def __init__(self, net: nets.CompactResNet, dim: int):
        super().__init__()
        self.net = net
        width = net.head[-1].in_features
        self.proj = torch.nn.Sequential(torch.nn.Linear(width, width), torch.nn.ReLU(), torch.nn.Linear(width, dim))

    def features(self, x):
        return self.net.head[1](self.net.head[0](self.net.stages(self.net.stem(x))))

    def forward(self, x):
        return F.normalize(self.proj(self.features(x)), dim=1)

    def train_forward(self, x):
        f = self.features(x)
        return F.normalize(self.proj(f), dim=1), self.net.head[-1](self.net.head[2](f))


def similarities(bench_emb, bench_labels, bench_stems, cat_emb, cat_labels, cat_stems):
    """Honest: each bench photo against its own product's catalogue photo (same file stem);
    wrong: against every other catalogue photo of its class."""
    index = {s: i for i, s in enumerate(cat_stems)}
    sims = (bench_emb @ cat_emb.T).numpy()
    honest, wrong = [], []
    for i, stem in enumerate(bench_stems):
        own = index[stem]
        honest.append(sims[i, own])
        same = np.flatnonzero((cat_labels == bench_labels[i]).numpy())
        wrong.append(sims[i, same[same != own]])
    return np.asarray(honest), np.concatenate(wrong)


def roc_auc(honest, wrong) -> float:
    """The probability that an honest pair scores above a wrong one (ties count half)."""
    order = np.concatenate([honest, wrong]).argsort(kind="mergesort")
    ranks = np.empty(len(order))
    ranks[order] = np.arange(1, len(order) + 1)
    return float((ranks[:len(honest)].sum() - len(honest) * (len(honest) + 1) / 2) / (len(honest) * len(wrong)))


def judge(honest, wrong, threshold: float, flag_rate: float) -> dict:
    """ROC AUC; flagged share of honest and caught share of wrong returns at `threshold` (flag
    below it); and the recall at this set's own `flag_rate` quantile of honest similarities."""
    own = np.quantile(honest, flag_rate)
    return {"roc_auc": round(roc_auc(honest, wrong), 4),
            "at_threshold": {"threshold": round(threshold, 4), "honest_flagged": round(float((honest < threshold).mean()), 4),
                             "wrong_caught": round(float((wrong < threshold).mean()), 4)},
            f"recall_at_{flag_rate:g}_flag_rate": round(float((wrong < own).mean()), 4),
            "honest_pairs": len(honest), "wrong_pairs": len(wrong)}


@torch.no_grad()
def embed(model, px, normalise, batch=256):
    model.eval()
    return torch.cat([model(normalise(px[i:i + batch])) for i in range(0, px.shape[0], batch)])


def split_similarities(model, normalise, split):
    """(honest, wrong) similarities of each bench-style set of a split against its catalogue photos."""
    (cat_px, cat_y, cat_stems), benches = split
    cat = embed(model, cat_px, normalise)
    return {name: similarities(embed(model, px, normalise), y, stems, cat, cat_y, cat_stems)
            for name, (px, y, stems) in benches.items()}


def fixed_shots(x_uint8):
    """Bench shots of a split drawn by the training augmentation at a fixed seed: a view of the
    figure that needs no generator run (the generator's photos are the figure that counts)."""
    a, b = item_masks(x_uint8)
    state = torch.random.get_rng_state()
    torch.manual_seed(1234)
    shots = BenchAugment(1.0).shoot(x_uint8.float() / 255, a, b)
    torch.random.set_rng_state(state)
    return (shots * 255).round().to(torch.uint8)


def train_embedder(model, x_train, y_train, n_classes, normalise, args, on_epoch):
    """Contrastive fine-tuning; `on_epoch(epoch, loss)` returns the epoch's val score, and the
    best-scoring epoch's weights are returned."""
    alpha, boxes = item_masks(x_train)
    bench = BenchAugment(1.0)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-5, nesterov=True)
    by_class = [(y_train == c).nonzero().flatten() for c in range(n_classes)]
    steps = len(y_train) // args.batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=steps * args.epochs, pct_start=0.15)
    best, best_state = -1.0, copy.deepcopy(model.state_dict())
    for epoch in range(1, args.epochs + 1):
        model.train()
        total = 0.0
        for step in range(steps):
            pool = by_class[step % n_classes]
            pick = pool[torch.randperm(len(pool))[:args.batch_size]]
            catalogue = x_train[pick].float() / 255
            flip = torch.rand(len(pick)) < 0.5
            catalogue = torch.where(flip.view(-1, 1, 1, 1), catalogue.flip(3), catalogue)
            shot = bench.shoot(x_train[pick].float() / 255, alpha[pick], boxes[pick])
            z, logits = model.train_forward(normalise(torch.cat([catalogue, shot]), scaled=True))
            za, zb = z[:len(pick)], z[len(pick):]
            sim = za @ zb.T / args.tau
            target = torch.arange(len(pick))
            nce = (F.cross_entropy(sim, target) + F.cross_entropy(sim.T, target)) / 2
            loss = nce + args.ce_weight * F.cross_entropy(logits, y_train[pick].repeat(2))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        score = on_epoch(epoch, total / steps)
        if score > best:
            best, best_state = score, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    return best


class _Normalise:
    def __init__(self, spec: PreprocessSpec):
        self.scale = spec.scale
        self.mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
        self.std = torch.tensor(spec.std).view(1, 3, 1, 1)

    def __call__(self, x, scaled: bool = False):
        x = x.float() if scaled else x.float() * self.scale
        return (x - self.mean) / self.std


def write_package(source: Path, out: Path, model: Embedder, spec: PreprocessSpec, dim: int, threshold: float,
                  figures: dict, parity_x: np.ndarray, version: str | None) -> dict:
    """A copy of `source` with embedding.onnx and model.json's `embedding` section."""
    if out.resolve() == Path(source).resolve():
        raise SystemExit(f"--package-out {out} is --package itself: write the new package beside it")
    if out.exists():
        if not (out / "model.json").is_file():
            raise SystemExit(f"--package-out {out} exists and is not a model package: give a new folder")
        shutil.rmtree(out)
    shutil.copytree(source, out)
    path = out / "embedding.onnx"
    model = model.eval().cpu()
    torch.onnx.export(model, (torch.zeros(2, 3, spec.size, spec.size),), str(path),
                      input_names=[export.INPUT_NAME], output_names=[OUTPUT_NAME], opset_version=export.OPSET,
                      dynamic_axes={export.INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}, dynamo=False)
    with torch.no_grad():
        ref = model(torch.from_numpy(parity_x)).numpy()
    session = export.ort_session(path)
    got = session.run([OUTPUT_NAME], {export.INPUT_NAME: parity_x})[0]
    parity = float(np.abs(ref - got).max())
    if parity >= 1e-4:
        raise SystemExit(f"embedding parity check failed: max abs difference {parity:.2e}")
    meta = json.loads((out / "model.json").read_text())
    if version:
        meta["version"] = version
    meta["embedding"] = {
        "file": path.name, "sha256": sha256_file(path), "input": export.INPUT_NAME, "output": OUTPUT_NAME,
        "dim": dim, "similarity": "cosine", "threshold": round(threshold, 4),
        "threshold_rule": figures["threshold_rule"], "metrics": figures["metrics"], "parity_max_abs_diff": parity,
        "training": figures["training"],
    }
    (out / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
    card = out / "MODEL_CARD.md"
    if card.exists():
        card.write_text(card.read_text().rstrip("\n") + "\n\n" + card_section(meta["embedding"]))
    return meta


def card_section(e: dict) -> str:
    """The model card's section on the product check, from the figures measured."""
    rows = "".join(
        f"| {name} | {m['roc_auc']:.4f} | {100 * m['at_threshold']['honest_flagged']:.2f} % | "
        f"{100 * m['at_threshold']['wrong_caught']:.2f} % | {100 * next(v for k, v in m.items() if k.startswith('recall_at')):.2f} % | "
        f"{m['honest_pairs']} / {m['wrong_pairs']} |\n"
        for name, m in e["metrics"].items())
    t = e["training"]
    return (f"## Product check (`{e['file']}`)\n\n"
            f"A claimed SKU's catalogue photo against the returned item's photo: cosine similarity of "
            f"{e['dim']}-dimensional embeddings, a mismatch under {e['threshold']} ({e['threshold_rule']}). "
            f"Trained from {t['from']}'s backbone for {t['epochs']} epochs ({t['train_seconds']} s), contrastively: "
            f"catalogue photos against bench shots of them, negatives of the same class "
            f"(`python -m autorma_models.embedding`). Pairs: each photo with its own product's catalogue "
            f"photo (honest) and with every other product of its class (wrong).\n\n"
            f"| set | ROC AUC | honest flagged | wrong caught | caught at a 1 % flag rate | pairs (honest / wrong) |\n"
            f"|---|---|---|---|---|---|\n{rows}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="root with train/, val/ and test/ class folders")
    ap.add_argument("--package", type=Path, required=True, help="model package whose backbone starts the run")
    ap.add_argument("--bench-val", type=Path, help="bench_photos made from val/ (matched to val by file stem)")
    ap.add_argument("--bench-test", type=Path, help="bench_photos made from test/ (matched to test by file stem)")
    ap.add_argument("--epochs", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--tau", type=float, default=0.1, help="InfoNCE temperature")
    ap.add_argument("--ce-weight", type=float, default=0.5, help="weight of the classifier's cross-entropy")
    ap.add_argument("--dim", type=int, default=128, help="embedding dimension")
    ap.add_argument("--flag-rate", type=float, default=0.01, help="share of honest val returns the threshold flags")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True, help="run folder: report.json and embedder.pt")
    ap.add_argument("--package-out", type=Path, help="write the package with its embedding here")
    ap.add_argument("--version", help="the written package's version [default: --package's]")
    tracking.add_arguments(ap)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    meta = json.loads((args.package / "model.json").read_text())
    made_by = tracking.made_by(meta)
    with tracking.run(args, made_by.get("experiment", f"autorma-{meta['name']}"), args.out.name, "embedding",
                      tags={"autorma.package_run_id": made_by.get("run_id"),
                            "autorma.dataset_sha256": data.dataset_fingerprint(args.data)}) as run:
        run.log_params(args)
        fine_tune(args, meta, run)


def fine_tune(args: argparse.Namespace, meta: dict, run: tracking.Off) -> None:
    """Trains the embedder from `meta`'s package, chooses on val, judges on test, and writes the
    run folder and (with `--package-out`) the package, logging to `run`."""
    classes, spec = meta["classes"], PreprocessSpec.from_model_json(meta)
    normalise = _Normalise(spec)

    t0 = time.time()
    dirs = data.split_dirs(args.data)
    x_train, y_train, _ = load(dirs["train"], classes, spec, args.workers)
    splits = {}
    for split, bench_dir in (("val", args.bench_val), ("test", args.bench_test)):
        x, y, stems = load(dirs[split], classes, spec, args.workers)
        benches = {"augment_shots": (fixed_shots(x), y, stems)}
        if bench_dir:
            benches["bench_photos"] = load(bench_dir, classes, spec, args.workers)
        splits[split] = ((x, y, stems), benches)
    chosen_on = "bench_photos" if args.bench_val else "augment_shots"
    log.info("loaded train, val and test with their bench-style sets in %.0fs; choosing on val %s",
             time.time() - t0, chosen_on)

    net, _ = nets.from_package(args.package, normalise(x_train[torch.randperm(len(y_train))[:512]]))
    model = Embedder(net, args.dim)
    report = {"args": {k: str(v) for k, v in vars(args).items()}, "epochs": []}
    before = {name: roc_auc(*s) for name, s in split_similarities(model, normalise, splits["val"]).items()}
    log.info("val ROC AUC before training (an untrained projection): %s", before)

    def on_epoch(epoch, loss):
        aucs = {name: round(roc_auc(*s), 4) for name, s in split_similarities(model, normalise, splits["val"]).items()}
        report["epochs"].append({"epoch": epoch, "loss": round(loss, 4), "val_roc_auc": aucs,
                                 "seconds": round(time.time() - t0)})
        log.info("epoch %d: loss %.4f, val ROC AUC %s", epoch, loss, aucs)
        run.log_metrics({"loss": loss, "val_roc_auc": aucs}, step=epoch)
        (args.out / "report.json").write_text(json.dumps(report, indent=1))
        return aucs[chosen_on]

    t1 = time.time()
    best = train_embedder(model, x_train, y_train, len(classes), normalise, args, on_epoch)
    train_seconds = round(time.time() - t1)
    val_sims = split_similarities(model, normalise, splits["val"])
    threshold = float(np.quantile(val_sims[chosen_on][0], args.flag_rate))
    figures = {
        "threshold_rule": f"flags the lowest {args.flag_rate:g} of honest val returns ({chosen_on} against val's "
                          "catalogue photos)",
        "metrics": {f"{split}_{name}": judge(*sims, threshold, args.flag_rate)
                    for split in ("val", "test")
                    for name, sims in (val_sims if split == "val" else split_similarities(model, normalise, splits["test"])).items()},
        "training": {"from": meta["name"] + " v" + str(meta["version"]), "epochs": args.epochs,
                     "best_val_roc_auc": round(best, 4), "batch_size": args.batch_size, "lr": args.lr,
                     "tau": args.tau, "ce_weight": args.ce_weight, "train_seconds": train_seconds,
                     "seed": args.seed, **({"tracking": run.record} if run.record else {})},
    }
    report.update(figures)
    (args.out / "report.json").write_text(json.dumps(report, indent=1))
    torch.save(model.state_dict(), args.out / "embedder.pt")
    log.info("chosen on val: threshold %.4f; %s", threshold, json.dumps(figures["metrics"]))
    run.log_metrics({**figures["metrics"], "threshold": threshold, "best_val_roc_auc": best,
                     "train_seconds": train_seconds}, step=args.epochs)
    run.log_artifacts(args.out / "report.json")
    if args.package_out:
        parity_x = normalise(splits["val"][0][0][:64]).numpy()
        write_package(args.package, args.package_out, model, spec, args.dim, threshold, figures, parity_x, args.version)
        log.info("wrote %s with embedding.onnx", args.package_out)
        run.log_artifacts(args.package_out / "model.json", folder="package")


if __name__ == "__main__":
    main()
