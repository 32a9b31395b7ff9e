"""The photo as the model sees it: upright whatever its EXIF orientation, and a large JPEG
decoded at the DCT scale the Rust pipeline picks (classifier/tests/parity.rs holds the two
together pixel by pixel)."""
from __future__ import annotations

import pytest
from PIL import Image

from autorma_models.preprocess import draft_scale, load_rgb

# Quadrant colours of the stored photo: top-left, top-right, bottom-left, bottom-right.
RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def quadrants(w: int, h: int) -> Image.Image:
    img = Image.new("RGB", (w, h), WHITE)
    img.paste(RED, (0, 0, w // 2, h // 2))
    img.paste(GREEN, (w // 2, 0, w, h // 2))
    img.paste(BLUE, (0, h // 2, w // 2, h))
    return img


def shown_at(orientation: int, x: int, y: int, w: int, h: int) -> tuple[int, int]:
    """Where stored pixel (x, y) is shown, by the EXIF specification (not by Pillow)."""
    return {
        1: (x, y), 2: (w - 1 - x, y), 3: (w - 1 - x, h - 1 - y), 4: (x, h - 1 - y),
        5: (y, x), 6: (h - 1 - y, x), 7: (h - 1 - y, w - 1 - x), 8: (y, w - 1 - x),
    }[orientation]


def save(img: Image.Image, path, orientation: int | None = None) -> None:
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    kwargs = {"quality": 90} if path.suffix == ".jpg" else {"lossless": True} if path.suffix == ".webp" else {}
    img.save(path, exif=exif.tobytes(), **kwargs)


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_comes_out_upright(tmp_path, suffix, orientation):
    w, h = 64, 32
    stored = quadrants(w, h)
    path = tmp_path / f"o{orientation}{suffix}"
    save(stored, path, orientation)
    shown = load_rgb(path)
    assert shown.size == ((h, w) if orientation >= 5 else (w, h))
    for x, y in [(w // 4, h // 4), (3 * w // 4, h // 4), (w // 4, 3 * h // 4), (3 * w // 4, 3 * h // 4)]:
        want, got = stored.getpixel((x, y)), shown.getpixel(shown_at(orientation, x, y, w, h))
        assert all(abs(a - b) <= 8 for a, b in zip(want, got)), (orientation, (x, y), want, got)


def test_a_broken_exif_block_leaves_the_photo_as_stored(tmp_path):
    path = tmp_path / "broken.jpg"
    quadrants(64, 32).save(path, quality=90, exif=b"Exif\x00\x00MM\x00\x2a\xff\xff\xff\xf0garbage")
    shown = load_rgb(path)
    assert shown.size == (64, 32)
    assert shown.getpixel((8, 8))[0] > 128 and shown.getpixel((8, 8))[1] < 128


def test_draft_scale_keeps_the_long_side():
    assert draft_scale(3024, 4032, 128) == 8
    assert draft_scale(1000, 100, 128) == 2
    assert draft_scale(4000, 5, 128) == 4
    assert draft_scale(225, 300, 128) == 1


def test_a_large_jpeg_is_decoded_at_its_draft_scale_then_turned(tmp_path):
    path = tmp_path / "phone.jpg"
    save(quadrants(2001, 333), path, orientation=6)
    # 1/8 of 2001 x 333 leaves 251, under 2 x 128: 1/4 it is, rounded up to 501 x 84, turned.
    assert load_rgb(path, min_long_side=128).size == (84, 501)
    assert load_rgb(path).size == (333, 2001)
