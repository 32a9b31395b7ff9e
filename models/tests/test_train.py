"""Training options one at a time: the augmentation, starting from a run, distillation."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from autorma_models import train
from autorma_models.preprocess import PreprocessSpec


def _tiny_run(data, out, *extra):
    train.main(["--data", str(data), "--out", str(out), "--arch", "resnet_s", "--size", "32", "--epochs", "1",
                "--batch-size", "8", "--max-steps", "2", "--workers", "1", *extra])
    return json.loads((out / "summary.json").read_text())


@pytest.fixture(scope="module")
def base_run(tiny_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("base")
    _tiny_run(tiny_dataset, out)
    return out


def test_augment_keeps_the_white_background_and_shape():
    spec = PreprocessSpec(size=64)
    aug = train.BatchAugment(spec, torch.device("cpu"), aspect_jitter=1.33, lowres_prob=0.5)
    x = torch.full((16, 3, 64, 64), 255, dtype=torch.uint8)
    x[:, :, 24:40, 28:36] = 0  # a dark item in the middle of a white frame
    torch.manual_seed(0)
    y = aug(x) * aug.std + aug.mean  # back to 0..1
    assert y.shape == (16, 3, 64, 64)
    # Corners stay background whatever the zoom, rotation, stretch or shrink (colour jitter
    # moves white by at most its brightness factor, and the clamp keeps it at or near 1).
    assert y[:, :, :3, :3].min() > 0.8
    assert y.min() < 0.3  # and the item is still there


def test_lowres_simulation_softens_detail():
    spec = PreprocessSpec(size=64)
    # 2-pixel stripes: finer than a photo shrunk to 75 % can hold.
    checker = ((torch.arange(64).view(1, -1) // 2 + torch.arange(64).view(-1, 1) // 2) % 2 * 255).to(torch.uint8)
    x = checker.expand(8, 3, 64, 64).contiguous()
    torch.manual_seed(0)
    sharp = train.BatchAugment(spec, torch.device("cpu"), 1.0, 0.0)(x)
    torch.manual_seed(0)
    soft = train.BatchAugment(spec, torch.device("cpu"), 1.0, 1.0)(x)
    def detail(t):  # mean step between horizontal neighbours: high for a checkerboard
        return (t[..., 1:] - t[..., :-1]).abs().mean()
    assert detail(soft) < 0.5 * detail(sharp)


def test_init_and_teachers_are_recorded(base_run, tiny_dataset, tmp_path):
    s = _tiny_run(tiny_dataset, tmp_path / "student", "--init", str(base_run), "--teacher", str(base_run),
                  "--teacher", str(base_run), "--distill-weight", "0.5")
    assert s["recipe"]["init"] == str(base_run)
    assert s["recipe"]["teacher"] == [str(base_run), str(base_run)]
    assert s["steps"] == 2


def test_a_teacher_of_another_size_is_refused(base_run, tiny_dataset, tmp_path):
    with pytest.raises(SystemExit, match="at 32px"):
        train.main(["--data", str(tiny_dataset), "--out", str(tmp_path / "x"), "--arch", "resnet_s",
                    "--size", "48", "--max-steps", "1", "--workers", "1", "--teacher", str(base_run)])


def test_init_from_another_architecture_is_refused(base_run, tiny_dataset, tmp_path):
    with pytest.raises(SystemExit, match="resnet_s"):
        train.main(["--data", str(tiny_dataset), "--out", str(tmp_path / "x"), "--arch", "resnet_m",
                    "--size", "32", "--max-steps", "1", "--workers", "1", "--init", str(base_run)])


def test_a_package_starts_a_run_with_its_exact_function(tmp_path):
    """`--init` from a shipped package: the BN layers export folded away are unfolded again, so
    the rebuilt module gives the package's probabilities."""
    from autorma_models import export, nets

    torch.manual_seed(0)
    net = nets.build("resnet_s", 5)
    for m in net.modules():  # BN statistics and scales as after training, not the identity
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    shipped = nets.Calibrated(net, 0.5).eval()
    export.export_onnx(shipped, 32, tmp_path / "model.onnx")
    (tmp_path / "model.json").write_text(json.dumps({
        "architecture": "resnet_s", "classes": list("abcde"), "input_size": 32, "temperature": 0.5,
        "onnx": {"file": "model.onnx"}}))
    x = torch.randn(64, 3, 32, 32)
    model, record = nets.from_package(tmp_path, x)
    assert record["arch"] == "resnet_s" and record["size"] == 32
    with torch.no_grad():
        want = shipped(x)
        got = nets.Calibrated(model, 0.5).eval()(x)
    assert (got - want).abs().max() < 1e-4
    # In train mode BN normalises by the batch; on the photos it was unfolded on, that is the same
    # (dropout aside).
    model.train()
    model.head[2].eval()
    with torch.no_grad():
        assert (torch.softmax(model(x) / 0.5, 1) - want).abs().max() < 1e-3


def test_a_run_starts_from_a_package(tiny_dataset, tmp_path):
    from autorma_models import export, nets

    classes = sorted(p.name for p in (tiny_dataset / "train").iterdir())
    export.export_onnx(nets.Calibrated(nets.build("resnet_s", len(classes)), 1.0), 32, tmp_path / "model.onnx")
    (tmp_path / "model.json").write_text(json.dumps({
        "architecture": "resnet_s", "classes": classes, "input_size": 32, "temperature": 1.0,
        "onnx": {"file": "model.onnx"}}))
    s = _tiny_run(tiny_dataset, tmp_path / "run", "--init", str(tmp_path))
    assert s["recipe"]["init"] == str(tmp_path)


def test_corrections_reach_the_training_manifest(tiny_dataset, tmp_path):
    """An export of corrections (`autorma corrections export`: <label>/<photo>) trains beside
    train/ under the person's label; a photo of val or test in it is dropped."""
    import csv
    import shutil

    from PIL import Image

    extra = tmp_path / "corrections"
    (extra / "shirts").mkdir(parents=True)
    (extra / "tops").mkdir()
    Image.new("RGB", (40, 60), (200, 30, 30)).save(extra / "shirts" / "inbox__bench-1__a.jpg")
    val_photo = sorted((tiny_dataset / "val" / "tops").iterdir())[0]
    shutil.copy(val_photo, extra / "tops" / "inbox__from-val.jpg")
    _tiny_run(tiny_dataset, tmp_path / "run", "--extra", str(extra))
    with (tmp_path / "run" / "train_manifest.csv").open() as f:
        rows = list(csv.DictReader(f))
    from_extra = [r for r in rows if r["source"] == str(extra)]
    assert [(Path(r["path"]).name, r["label"]) for r in from_extra] == [("inbox__bench-1__a.jpg", "shirts")]
    assert sum(r["source"] == "train" for r in rows) == len(list((tiny_dataset / "train").rglob("*.jpg")))


def test_an_extra_folder_that_is_not_a_class_is_refused(tiny_dataset, tmp_path):
    (tmp_path / "extra" / "sandals").mkdir(parents=True)
    with pytest.raises(ValueError, match="sandals"):
        _tiny_run(tiny_dataset, tmp_path / "run", "--extra", str(tmp_path / "extra"))
