"""Trains a classifier from scratch on a class-folder data set with train/ and val/ splits.

    python -m autorma_models.train --data ../shared/datasets/fashion5 --arch resnet_m \
        --size 128 --epochs 120 --out runs/resnet_m_128

All pixels are letterboxed once (the exact `model.json` preprocessing) and kept as uint8 on
the training device; augmentation runs there on whole batches, so a GPU is never starved and
a CPU run has no loader processes to feed. The class imbalance of `train` is handled by
class-balanced sampling. The run keeps an exponential moving average (EMA) of the weights
and writes the EMA weights, the recipe and the val history to `<out>/checkpoint.pt`.

`--extra DIR` trains on a further class-folder set beside train/: the corrections people made
in the review queue (`autorma corrections export --out DIR`). Its photos whose bytes are in
val/ or test/ are dropped, so nothing judged on is trained on. `<out>/train_manifest.csv` lists
every photo the run trains on, its label and its source.

The run is tracked with MLflow (`autorma_models.tracking`): its options, the training loss and
learning rate of every epoch, the val figures whenever they are measured, the final figures,
`summary.json`, `train_manifest.csv` and (when small) the checkpoint. `<out>/tracking.json` names
the MLflow run, so packaging logs to the same run.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import data, nets, tracking
from .bench_augment import BenchAugment, item_masks
from .preprocess import PreprocessSpec

log = logging.getLogger("autorma.train")
# Checkpoints up to this size (bytes) are copied to the MLflow run too; bigger ones stay in the run
# folder alone, so a store holding many candidates' runs does not grow by hundreds of MB each.
CHECKPOINT_ARTIFACT_LIMIT = 64 << 20


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="root with train/ and val/ class folders")
    p.add_argument("--out", type=Path, required=True,
                   help="run folder: checkpoint.pt, summary.json (figures and val history), train_manifest.csv, "
                        "tracking.json")
    p.add_argument("--arch", default="resnet_m", choices=sorted(nets.ARCHITECTURES))
    p.add_argument("--size", type=int, default=128, help="input size in pixels (square)")
    p.add_argument("--epochs", type=int, default=None,
                   help="default: 200 on a GPU, 100 on the CPU (about 30 min for resnet_s at 128 px on 2 cores)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.2, help="peak SGD learning rate at batch 256 (scaled linearly)")
    p.add_argument("--weight-decay", type=float, default=5e-5 * 10)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--mix-prob", type=float, default=0.5, help="share of batches given mixup or cutmix")
    p.add_argument("--aspect-jitter", type=float, default=1.33,
                   help="widen or narrow photos by up to this factor (1: off); fashion5's 224x224 copies are "
                        "3:4 photos stretched square, so 1.33 shows every photo both ways")
    p.add_argument("--lowres-prob", type=float, default=0.3,
                   help="share of photos shrunk to 55-75 %% and enlarged back, like the 60x80 copies (0: off)")
    p.add_argument("--bench-prob", type=float, default=0.0,
                   help="share of photos turned into bench-style shots: the item cut from its white, placed "
                        "small and anywhere in a 4:3 or 16:9 frame on a surface, under uneven light "
                        "(autorma_models.bench_augment; 0: off)")
    p.add_argument("--bench-val", type=Path, default=None,
                   help="class-folder set of bench-style val photos (autorma_models.bench_photos on val/), "
                        "judged beside val and recorded as val_bench_acc, for choosing")
    p.add_argument("--extra", type=Path, action="append", default=[],
                   help="class-folder set trained on beside train/ (repeatable), e.g. `autorma corrections "
                        "export`'s; photos whose bytes are in val/ or test/ are dropped")
    p.add_argument("--ema-decay", type=float, default=0.998)
    p.add_argument("--init", type=Path, default=None,
                   help="run folder, or model package (a folder with model.json, e.g. fashion5), whose weights "
                        "start this run (same --arch), instead of random ones")
    p.add_argument("--teacher", type=Path, action="append", default=[],
                   help="run folder of a teacher (repeatable): the targets blend in the teachers' averaged "
                        "probabilities on the same augmented batch (knowledge distillation)")
    p.add_argument("--distill-weight", type=float, default=0.7,
                   help="share of the target taken from the teachers when --teacher is given")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fp32", action="store_true",
                   help="train in fp32 on a GPU too (default there: bf16 autocast; the CPU is always fp32)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--limit-per-class", type=int, default=0, help="use at most N photos per class (smoke tests)")
    p.add_argument("--max-steps", type=int, default=0, help="stop after N optimiser steps (smoke tests)")
    p.add_argument("--time-budget", type=float, default=0,
                   help="seconds of training at most: after 2 epochs the epoch count is cut to fit (0: no limit)")
    p.add_argument("--report-test", action="store_true",
                   help="also report accuracy on test/ at the end (for the record; never used to choose)")
    p.add_argument("--workers", type=int, default=2, help="processes that decode photos at start")
    tracking.add_arguments(p)
    return p.parse_args(argv)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda was asked for but no CUDA device is available")
    return torch.device(name)


def scan_split(root: Path, classes, limit: int):
    paths, labels, classes = data.scan(root, classes)
    if limit:
        keep = np.concatenate([np.flatnonzero(labels == c)[:limit] for c in range(len(classes))])
        paths, labels = [paths[i] for i in keep], labels[keep]
    return paths, labels, classes


def load_pixels(paths, labels, spec, workers: int):
    pixels = data.load_pixels(paths, spec, workers)
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(labels)


def load_split(root: Path, classes, spec, limit: int, workers: int):
    paths, labels, classes = scan_split(root, classes, limit)
    return (*load_pixels(paths, labels, spec, workers), classes)


def train_photos(dirs: dict[str, Path], extra: list[Path], limit: int):
    """train/'s photos, then each extra source's; with the source of each, for the manifest."""
    paths, labels, classes = scan_split(dirs["train"], None, limit)
    sources = ["train"] * len(paths)
    if extra:
        held_out = data.photo_hashes([dirs[s] for s in ("val", "test") if dirs[s].is_dir()])
        for root in extra:
            more, more_labels, dropped = data.extra_photos(root, classes, held_out)
            log.info("extra source %s: %d photos (%s)%s", root, len(more),
                     ", ".join(f"{classes[c]} {n}" for c, n in enumerate(np.bincount(more_labels, minlength=len(classes))) if n),
                     f"; {dropped} dropped: their bytes are in val/ or test/" if dropped else "")
            paths, labels = paths + more, np.concatenate([labels, more_labels])
            sources += [str(root)] * len(more)
    return paths, labels, classes, sources


def write_train_manifest(path: Path, paths, labels, classes, sources) -> None:
    """Every photo the run trains on, with its label and where it came from."""
    import csv
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "source"])
        w.writerows((str(p), classes[int(y)], src) for p, y, src in zip(paths, labels, sources))


class BatchAugment:
    """Whole-batch augmentation on the training device (GPU or CPU): flip, affine (optionally
    with aspect-ratio jitter) with white fill, or (with `bench_prob`) the item placed in a
    bench-style frame instead; then optional low-resolution simulation and colour jitter."""

    def __init__(self, spec: PreprocessSpec, device, aspect_jitter: float = 1.0, lowres_prob: float = 0.0,
                 bench_prob: float = 0.0):
        self.bench = BenchAugment(bench_prob)
        self.mean = torch.tensor(spec.mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(spec.std, device=device).view(1, 3, 1, 1)
        self.scale = spec.scale
        self.log_aspect = math.log(aspect_jitter)
        self.lowres_prob = lowres_prob

    def normalise(self, x_uint8):
        return (x_uint8.float() * self.scale - self.mean) / self.std

    def __call__(self, x_uint8, alpha=None, boxes=None):
        """`alpha` and `boxes` (from `bench_augment.item_masks`) are needed when bench_prob > 0."""
        catalogue = x_uint8.float() * self.scale
        b, dev = catalogue.shape[0], catalogue.device
        flip = torch.rand(b, device=dev) < 0.5
        x = torch.where(flip.view(b, 1, 1, 1), catalogue.flip(3), catalogue)
        zoom = torch.exp(torch.empty(b, device=dev).uniform_(math.log(0.8), math.log(1.25)))
        aspect = torch.exp(torch.empty(b, device=dev).uniform_(-self.log_aspect, self.log_aspect) / 2)
        angle = torch.empty(b, device=dev).uniform_(-12, 12) * math.pi / 180
        shift = torch.empty(b, 2, device=dev).uniform_(-0.1, 0.1)
        # Output->input map: rotation times per-axis scale (1/zoom, with width and height
        # pulled apart by `aspect`).
        sx, sy = 1 / (zoom * aspect), aspect / zoom
        cos, sin = torch.cos(angle), torch.sin(angle)
        theta = torch.stack([torch.stack([cos * sx, -sin * sy, shift[:, 0]], 1),
                             torch.stack([sin * sx, cos * sy, shift[:, 1]], 1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        # Sample the inverted image with zero padding, so what enters the frame is white.
        x = 1 - F.grid_sample(1 - x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        # Bench shots are placed from the photo as it was (they draw their own mirror and turn).
        x = self.bench(catalogue, x, alpha, boxes)
        if self.lowres_prob > 0:
            # One shrink factor per batch (a per-photo size would need a loop); a random subset gets it.
            size = x.shape[-1]
            small = max(8, int(size * float(torch.empty(1).uniform_(0.55, 0.75))))
            low = F.interpolate(F.interpolate(x, size=(small, small), mode="bilinear", antialias=True,
                                              align_corners=False),
                                size=(size, size), mode="bilinear", align_corners=False)
            pick = torch.rand(b, device=dev) < self.lowres_prob
            x = torch.where(pick.view(b, 1, 1, 1), low, x)
        bright = torch.empty(b, 1, 1, 1, device=dev).uniform_(0.9, 1.1)
        contrast = torch.empty(b, 1, 1, 1, device=dev).uniform_(0.85, 1.15)
        sat = torch.empty(b, 1, 1, 1, device=dev).uniform_(0.8, 1.2)
        x = x * bright
        m = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - m) * contrast + m
        grey = (x * torch.tensor([0.299, 0.587, 0.114], device=dev).view(1, 3, 1, 1)).sum(1, keepdim=True)
        x = ((x - grey) * sat + grey).clamp(0, 1)
        return (x - self.mean) / self.std


def mix(x, y_soft, rng: np.random.Generator):
    """Mixup or CutMix (half each) with a shuffled copy of the batch."""
    perm = torch.randperm(x.shape[0], device=x.device)
    if rng.random() < 0.5:
        lam = float(rng.beta(0.4, 0.4))
        return lam * x + (1 - lam) * x[perm], lam * y_soft + (1 - lam) * y_soft[perm]
    lam = float(rng.beta(1.0, 1.0))
    h, w = x.shape[2:]
    ch, cw = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
    cy, cx = rng.integers(h), rng.integers(w)
    y0, y1, x0, x1 = max(cy - ch // 2, 0), min(cy + ch // 2, h), max(cx - cw // 2, 0), min(cx + cw // 2, w)
    x = x.clone()
    x[:, :, y0:y1, x0:x1] = x[perm][:, :, y0:y1, x0:x1]
    lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)
    return x, lam * y_soft + (1 - lam) * y_soft[perm]


@torch.no_grad()
def predict_logits(model, pixels, aug: BatchAugment, device, flip_tta=False, batch=256):
    model.eval()
    out = []
    for i in range(0, pixels.shape[0], batch):
        x = aug.normalise(pixels[i:i + batch].to(device, non_blocking=True))
        logits = model(x).float()
        if flip_tta:
            logits = (logits + model(x.flip(3)).float()) / 2
        out.append(logits)
    return torch.cat(out)


def accuracy(model, pixels, labels, aug: BatchAugment, device) -> float:
    return (predict_logits(model, pixels, aug, device).argmax(1).cpu() == labels).float().mean().item()


def init_weights(path: Path, x_train, aug: BatchAugment, calib: int = 512):
    """The starting weights of `--init`: a run's checkpoint, or a shipped package's ONNX graph with
    its BatchNorm layers unfolded again on a sample of train photos."""
    if (path / "model.json").is_file():
        pick = torch.randperm(x_train.shape[0])[:calib]
        model, record = nets.from_package(path, aug.normalise(x_train[pick]).cpu())
        log.info("init from package %s (%s, trained at %dpx)", path, record["arch"], record["size"])
        return model, record
    return nets.load_run(path)


def load_teachers(runs, classes, size: int, device) -> list[torch.nn.Module]:
    teachers = []
    for run in runs:
        model, record = nets.load_run(run)
        if record["classes"] != classes or record["size"] != size:
            raise SystemExit(f"teacher {run} was trained on {record['classes']} at {record['size']}px; "
                             f"this run is {classes} at {size}px")
        for p in model.parameters():
            p.requires_grad_(False)
        teachers.append(model.to(device).to(memory_format=torch.channels_last))
        log.info("teacher %s: %s, val acc %.4f", run, record["arch"], record["val_acc"])
    return teachers


@torch.no_grad()
def teacher_probs(teachers, x):
    return torch.stack([F.softmax(t(x).float(), 1) for t in teachers]).mean(0)


class Ema:
    """EMA of parameters; buffers (BN statistics) are copied from the live model."""

    def __init__(self, model, decay):
        import copy
        self.model = copy.deepcopy(model).eval()
        self.decay = decay
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model, step):
        d = min(self.decay, (1 + step) / (10 + step))  # warm start: early weights fade fast
        ema_p = list(self.model.parameters())
        torch._foreach_mul_(ema_p, d)
        torch._foreach_add_(ema_p, [p.detach() for p in model.parameters()], alpha=1 - d)
        for e, b in zip(self.model.buffers(), model.buffers()):
            e.copy_(b)


def jsonable(v):
    if isinstance(v, Path):
        return str(v)
    return [jsonable(x) for x in v] if isinstance(v, list) else v


def train(args) -> dict:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    seed_everything(args.seed)
    device = pick_device(args.device)
    if args.epochs is None:
        args.epochs = 200 if device.type == "cuda" else 100
    with tracking.run(args, f"autorma-{args.data.resolve().name}", args.out.name, "train",
                      tags={"autorma.dataset_sha256": data.dataset_fingerprint(args.data)}) as run:
        run.write_record(args.out)
        run.log_params(args)
        return run_training(args, device, run)


def run_training(args, device: torch.device, run: tracking.Off) -> dict:
    spec = PreprocessSpec(size=args.size)
    dirs = data.split_dirs(args.data)
    t0 = time.time()
    paths, labels, classes, sources = train_photos(dirs, args.extra, args.limit_per_class)
    write_train_manifest(args.out / "train_manifest.csv", paths, labels, classes, sources)
    x_train, y_train = load_pixels(paths, labels, spec, args.workers)
    x_val, y_val, _ = load_split(dirs["val"], classes, spec, args.limit_per_class, args.workers)
    log.info("loaded %d train / %d val photos at %dpx in %.1fs on %s", len(y_train), len(y_val), args.size,
             time.time() - t0, device)
    masks = (None, None)
    if args.bench_prob > 0:
        t1 = time.time()
        masks = tuple(m.to(device) for m in item_masks(x_train))
        log.info("cut %d items from their white for bench shots in %.1fs", len(y_train), time.time() - t1)
    x_bench_val = None
    if args.bench_val:
        x_bench_val, y_bench_val, _ = load_split(args.bench_val, classes, spec, args.limit_per_class, args.workers)
    x_train, y_train = x_train.to(device), y_train.to(device)
    aug = BatchAugment(spec, device, args.aspect_jitter, args.lowres_prob, args.bench_prob)

    if args.init:
        model, record = init_weights(args.init, x_train, aug)
        if record["arch"] != args.arch or record["classes"] != classes:
            raise SystemExit(f"--init {args.init} is a {record['arch']} over {record['classes']}, "
                             f"not a {args.arch} over {classes}")
    else:
        model = nets.build(args.arch, len(classes))
    model = model.to(device).to(memory_format=torch.channels_last)
    teachers = load_teachers(args.teacher, classes, args.size, device)
    ema = Ema(model, args.ema_decay)
    counts = torch.bincount(y_train, minlength=len(classes)).float()
    # Class-balanced sampling: each class is drawn equally often, whatever its size in train.
    sample_w = (1.0 / counts)[y_train]
    steps_per_epoch = max(1, len(y_train) // args.batch_size)
    total = steps_per_epoch * args.epochs
    if args.max_steps:
        total = min(total, args.max_steps)
    lr = args.lr * args.batch_size / 256
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    opt = torch.optim.SGD([{"params": decay, "weight_decay": args.weight_decay},
                           {"params": no_decay, "weight_decay": 0}], lr=lr, momentum=0.9, nesterov=True)
    warm = min(steps_per_epoch * 3, total // 10 + 1)
    plan = {"total": total}  # read by the schedule, so a time budget can shorten the run
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm
        else 0.5 * (1 + math.cos(math.pi * min(1.0, (s - warm) / max(1, plan["total"] - warm)))))
    rng = np.random.default_rng(args.seed)
    amp = device.type == "cuda" and not args.fp32
    history, step, t_train = [], 0, time.time()
    while step < plan["total"]:
        model.train()
        idx = torch.multinomial(sample_w, steps_per_epoch * args.batch_size, replacement=True)
        # Summed on the device, read once an epoch: a read per step would wait for the GPU each time.
        loss_sum, batches = torch.zeros((), device=device), 0
        for bi in range(steps_per_epoch):
            if step >= plan["total"]:
                break
            sel = idx[bi * args.batch_size:(bi + 1) * args.batch_size]
            x = aug(x_train[sel], *(m[sel] if m is not None else None for m in masks))
            x = x.contiguous(memory_format=torch.channels_last)
            y = F.one_hot(y_train[sel], len(classes)).float()
            y = y * (1 - args.label_smoothing) + args.label_smoothing / len(classes)
            if rng.random() < args.mix_prob:
                x, y = mix(x, y, rng)
            if teachers:
                y = (1 - args.distill_weight) * y + args.distill_weight * teacher_probs(teachers, x)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                logits = model(x)
            loss = torch.sum(-y * F.log_softmax(logits.float(), 1), 1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            ema.update(model, step)
            loss_sum += loss.detach()
            batches += 1
            step += 1
        epoch = step // steps_per_epoch
        run.log_metrics({"train_loss": (loss_sum / batches).item(), "lr": sched.get_last_lr()[0]}, step=epoch)
        if epoch == 1:
            t_epoch1 = time.time()
        if args.time_budget and epoch == 3:
            # Epochs 2-3 time the steady state (epoch 1 pays for warm-up and kernel choice).
            per_epoch = (time.time() - t_epoch1) / 2
            fit = max(4, int((args.time_budget - (t_epoch1 - t_train)) / per_epoch))
            if fit * steps_per_epoch < plan["total"]:
                plan["total"] = fit * steps_per_epoch
                log.warning("time budget %.0fs at %.2fs/epoch: training %d epochs, not %d",
                            args.time_budget, per_epoch, fit, args.epochs)
        if epoch % 10 == 0 or step >= plan["total"]:
            point = {"epoch": epoch, "step": step, "val_acc_ema": accuracy(ema.model, x_val, y_val, aug, device)}
            if x_bench_val is not None:
                point["val_bench_acc_ema"] = accuracy(ema.model, x_bench_val, y_bench_val, aug, device)
            point["seconds"] = time.time() - t_train
            history.append(point)
            run.log_metrics({k: v for k, v in point.items() if k not in ("epoch", "step")}, step=epoch)
            log.info("epoch %d step %d/%d %s", epoch, step, plan["total"],
                     " ".join(f"{k} {v:.4f}" for k, v in point.items() if k.startswith("val_")))

    train_seconds = time.time() - t_train
    val_logits = predict_logits(ema.model, x_val, aug, device).cpu()
    val_logits_flip = predict_logits(ema.model, x_val, aug, device, flip_tta=True).cpu()
    more_metrics = {}
    if x_bench_val is not None:
        more_metrics["val_bench_acc"] = accuracy(ema.model, x_bench_val, y_bench_val, aug, device)
    if args.report_test and dirs["test"].is_dir():
        # Reported, never used to choose: selection reads val alone.
        x_test, y_test, _ = load_split(dirs["test"], classes, spec, args.limit_per_class, args.workers)
        for key, flip in (("test_acc", False), ("test_acc_flip", True)):
            pred = predict_logits(ema.model, x_test, aug, device, flip_tta=flip).argmax(1).cpu()
            more_metrics[key] = (pred == y_test).float().mean().item()
    result = {
        "arch": args.arch,
        "classes": classes,
        "size": args.size,
        "val_acc": (val_logits.argmax(1) == y_val).float().mean().item(),
        "val_acc_flip": (val_logits_flip.argmax(1) == y_val).float().mean().item(),
        **more_metrics,
        "train_seconds": train_seconds,
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "steps": step,
        "recipe": {k: jsonable(v) for k, v in vars(args).items() if k not in tracking.OPTIONS},
        "history": history,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": ema.model.state_dict(), **result}, args.out / "checkpoint.pt")
    (args.out / "summary.json").write_text(json.dumps(result, indent=2))
    run.log_metrics({k: result[k] for k in ("val_acc", "val_acc_flip", *more_metrics, "train_seconds", "steps")},
                    step=epoch)
    checkpoint = args.out / "checkpoint.pt"
    small = checkpoint.stat().st_size <= CHECKPOINT_ARTIFACT_LIMIT
    run.log_artifacts(args.out / "summary.json", args.out / "train_manifest.csv", *([checkpoint] if small else []))
    log.info("done: val acc %.4f (flip %.4f) in %.0fs -> %s", result["val_acc"], result["val_acc_flip"],
             train_seconds, args.out)
    return result


def main(argv=None):
    train(parse_args(argv))


if __name__ == "__main__":
    main()
