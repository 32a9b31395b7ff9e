"""bench_photos: one bench-style photo per input, phone-sized, sideways ones tagged so a viewer
shows them upright, and byte-identical for the same seed. Small photos (--max-megapixels)
except one full-size render, so the whole file runs in a few seconds."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from autorma_models import bench_photos
from conftest import CLASSES

SMALL = ["--max-megapixels", "0.05", "--limit", "2"]


def _run(data: Path, out: Path, *flags: str) -> dict:
    bench_photos.main(["--data", str(data), "--out", str(out), *SMALL, *flags])
    return json.loads((out / "bench_photos.json").read_text())


def _inputs(split: Path, limit: int = 2) -> list[str]:
    return [f"{c}/{p.stem}.jpg" for c in CLASSES for p in sorted((split / c).iterdir())[:limit]]


@pytest.fixture(scope="module")
def small_run(tiny_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    return out, _run(tiny_dataset / "test", out, "--seed", "0", "--workers", "1")


def test_one_photo_per_input_in_its_class_folder(small_run, tiny_dataset):
    out, report = small_run
    expected = _inputs(tiny_dataset / "test")
    assert sorted(str(p.relative_to(out)) for p in out.glob("*/*.jpg")) == sorted(expected)
    assert [ph["output"] for ph in report["photos"]] == expected
    assert report["seed"] == 0 and report["num_photos"] == len(expected) == 10
    for ph in report["photos"]:
        with Image.open(out / ph["output"]) as im:
            assert im.format == "JPEG"
            assert ImageOps.exif_transpose(im).size == tuple(ph["size"])
        x, y, w, h = ph["item_box"]
        assert 0 <= x and 0 <= y and x + w <= ph["size"][0] and y + h <= ph["size"][1]
        assert ph["background"] in bench_photos.BACKGROUNDS
        assert 75 <= ph["quality"] <= 95


def test_drawn_sizes_are_phone_photos_of_8_to_12_megapixels():
    # The real sizes, no shrink: many draws, no rendering.
    seen = set()
    for i in range(300):
        p = bench_photos.draw_params(bench_photos.photo_rngs(0, "tops", f"{i}.jpg")[0])
        w, h = p["size"]
        assert 7.9e6 <= w * h <= 12.2e6
        assert round(max(w, h) / min(w, h), 2) in (1.33, 1.78)
        assert 0.35 <= p["scale"] <= 0.85 and 75 <= p["quality"] <= 95
        assert p["orientation"] in (1, 3, 6, 8)
        seen.add((w > h, p["orientation"] != 1, p["background"]))
    assert {s[0] for s in seen} == {True, False}  # both portrait and landscape
    assert {s[2] for s in seen} == set(bench_photos.BACKGROUNDS)


def test_a_full_size_photo(tmp_path):
    # One real 8-12 MP render, with the item (a dark square on white) where the record says.
    src = tmp_path / "data" / "watches"
    src.mkdir(parents=True)
    img = Image.new("RGB", (120, 160), "white")
    img.paste((20, 20, 140), (30, 40, 90, 120))
    img.save(src / "a.jpg", quality=95)
    bench_photos.main(["--data", str(tmp_path / "data"), "--out", str(tmp_path / "out"), "--workers", "1"])
    ph = json.loads((tmp_path / "out" / "bench_photos.json").read_text())["photos"][0]
    with Image.open(tmp_path / "out" / "watches" / "a.jpg") as im:
        upright = ImageOps.exif_transpose(im)
    w, h = upright.size
    assert 7.9e6 <= w * h <= 12.2e6 and [w, h] == ph["size"]
    x, y, iw, ih = ph["item_box"]
    assert max(iw, ih) == pytest.approx(ph["scale"] * min(w, h), abs=2)
    centre = np.asarray(upright.crop((x + iw // 3, y + ih // 3, x + 2 * iw // 3, y + 2 * ih // 3)), float)
    assert centre[..., 2].mean() > centre[..., 0].mean() + 40  # the blue square is there


def test_sideways_photos_carry_orientation_and_turn_upright(tiny_dataset, tmp_path):
    upright = _run(tiny_dataset / "test", tmp_path / "up", "--sideways-share", "0", "--workers", "1")
    sideways = _run(tiny_dataset / "test", tmp_path / "side", "--sideways-share", "1", "--workers", "1")
    assert all(ph["orientation"] == 1 for ph in upright["photos"])
    assert {ph["orientation"] for ph in sideways["photos"]} <= {3, 6, 8}
    for up, side in zip(upright["photos"], sideways["photos"]):
        # The orientation is drawn apart from everything else: same size, item, noise.
        assert {k: v for k, v in up.items() if k not in ("orientation", "stored_size", "bytes")} == \
               {k: v for k, v in side.items() if k not in ("orientation", "stored_size", "bytes")}
        with Image.open(tmp_path / "side" / side["output"]) as im:
            assert im.getexif().get(0x0112) == side["orientation"]
            w, h = side["size"]
            assert im.size == ((h, w) if side["orientation"] in (6, 8) else (w, h))
            turned = ImageOps.exif_transpose(im)
        with Image.open(tmp_path / "up" / up["output"]) as im:
            assert im.getexif().get(0x0112, 1) == 1
            reference = im.copy()
        assert turned.size == reference.size
        # Same picture up to JPEG coding the turned blocks differently: compared at 1/8 size,
        # where that (and the noise) averages out, and much closer than the picture upside down.
        small = [np.asarray(i.reduce(8), float) for i in (turned, reference, turned.rotate(180))]
        same, flipped = np.abs(small[0] - small[1]).mean(), np.abs(small[2] - small[1]).mean()
        assert same < 1.5 and same < flipped / 3


def test_same_seed_same_bytes_whatever_the_workers_other_seed_differs(tiny_dataset, tmp_path, small_run):
    out0, report0 = small_run
    again = _run(tiny_dataset / "test", tmp_path / "again", "--seed", "0", "--workers", "2")
    other = _run(tiny_dataset / "test", tmp_path / "other", "--seed", "1", "--workers", "1")
    for ph in report0["photos"]:
        first = (out0 / ph["output"]).read_bytes()
        assert (tmp_path / "again" / ph["output"]).read_bytes() == first
        assert (tmp_path / "other" / ph["output"]).read_bytes() != first
    assert again["photos"] == report0["photos"]
    assert other["photos"] != report0["photos"]


def test_refuses_a_folder_without_class_folders(tmp_path):
    (tmp_path / "loose.jpg").write_bytes(b"")
    with pytest.raises(SystemExit, match="no class folders"):
        bench_photos.main(["--data", str(tmp_path), "--out", str(tmp_path / "out")])
