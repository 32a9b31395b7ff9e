"""The preprocessing contract of `model.json`, in Python.

Training, evaluation and the parity fixtures for the Rust pipeline all call these functions,
so the tensor a model is trained on is the tensor it is judged and served on.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from PIL import Image

_FILTERS = {"bilinear": Image.BILINEAR}


@dataclass(frozen=True)
class PreprocessSpec:
    """Mirrors `model.json`'s `input_size` + `preprocessing` (see models/PACKAGE.md)."""

    size: int = 128
    background: tuple[int, int, int] = (255, 255, 255)
    resize_filter: str = "bilinear"
    scale: float = 1.0 / 255.0
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    def to_json(self) -> dict:
        return {
            "color": "rgb",
            "letterbox": "pad_to_square_centered",
            "background": list(self.background),
            "resize_filter": self.resize_filter,
            "scale": self.scale,
            "mean": list(self.mean),
            "std": list(self.std),
            "layout": "NCHW",
        }

    @classmethod
    def from_model_json(cls, meta: dict) -> "PreprocessSpec":
        p = meta["preprocessing"]
        if p.get("letterbox") != "pad_to_square_centered" or p.get("layout") != "NCHW":
            raise ValueError(f"unsupported preprocessing in model.json: {p}")
        return cls(
            size=int(meta["input_size"]),
            background=tuple(p["background"]),
            resize_filter=p["resize_filter"],
            scale=float(p["scale"]),
            mean=tuple(p["mean"]),
            std=tuple(p["std"]),
        )


# EXIF orientation (tag 0x0112) -> the transpose that makes the photo upright, as
# `ImageOps.exif_transpose` does; the Rust pipeline applies the same eight.
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def draft_scale(width: int, height: int, min_long_side: int) -> int:
    """The JPEG scale 1/a to decode at: the largest a of 8, 4 and 2 whose scaled long side
    ceil(long / a) is still at least twice `min_long_side` and whose short side keeps a pixel per
    a; else 1 (the margin keeps the resize that follows close to a full decode's; no catalogue
    photo is scaled). The Rust twin is `jpeg_draft_scale` (classifier/src/preprocess/decode.rs)."""
    long, short = max(width, height), min(width, height)
    for a in (8, 4, 2):
        if -(-long // a) >= 2 * min_long_side and short >= a:
            return a
    return 1


def exif_orientation(img: Image.Image) -> int:
    """The photo's EXIF orientation, 1 (upright) when it has none or it cannot be read."""
    try:
        value = img.getexif().get(0x0112, 1)
    except Exception:  # a broken EXIF block is ignored, as the Rust pipeline ignores it
        return 1
    return value if isinstance(value, int) else 1


def load_rgb(path, background=(255, 255, 255), min_long_side: int | None = None) -> Image.Image:
    """Decodes a photo to upright 8-bit RGB; transparency is composited onto `background`.

    With `min_long_side` (the model's input size), a JPEG is decoded at the DCT scale
    `draft_scale` picks: Pillow's `draft` asked for (w // a, h // a) picks that same a, so the
    pixels are libjpeg-turbo's scaled ones, as in the Rust pipeline."""
    with Image.open(path) as img:
        if min_long_side and img.format == "JPEG" and img.mode in ("RGB", "L"):
            a = draft_scale(img.width, img.height, min_long_side)
            if a > 1:
                img.draft(None, (img.width // a, img.height // a))
        img.load()
        orientation = exif_orientation(img)
        if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
            rgba = img.convert("RGBA")
            canvas = Image.new("RGBA", rgba.size, tuple(background) + (255,))
            rgb = Image.alpha_composite(canvas, rgba).convert("RGB")
        else:
            rgb = img.convert("RGB")
    method = _UPRIGHT.get(orientation)
    return rgb.transpose(method) if method is not None else rgb


def letterbox_resize(img: Image.Image, spec: PreprocessSpec) -> np.ndarray:
    """Pads to a centred square on the background, resizes; returns uint8 HWC."""
    w, h = img.size
    m = max(w, h)
    square = Image.new("RGB", (m, m), tuple(spec.background))
    square.paste(img, ((m - w) // 2, (m - h) // 2))
    resized = square.resize((spec.size, spec.size), _FILTERS[spec.resize_filter])
    return np.asarray(resized, dtype=np.uint8)


def normalise(hwc_uint8: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """uint8 HWC (or NHWC) -> float32 CHW (or NCHW), scaled and standardised."""
    x = hwc_uint8.astype(np.float32) * np.float32(spec.scale)
    x = (x - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    return np.ascontiguousarray(np.moveaxis(x, -1, -3))


def preprocess_file(path, spec: PreprocessSpec) -> np.ndarray:
    """One photo on disk -> the float32 CHW tensor the model takes."""
    return normalise(letterbox_resize(load_rgb(path, spec.background, spec.size), spec), spec)
