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


def load_rgb(path, background=(255, 255, 255)) -> Image.Image:
    """Decodes a photo to 8-bit RGB; transparency is composited onto `background`."""
    with Image.open(path) as img:
        img.load()
        if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
            rgba = img.convert("RGBA")
            canvas = Image.new("RGBA", rgba.size, tuple(background) + (255,))
            return Image.alpha_composite(canvas, rgba).convert("RGB")
        return img.convert("RGB")


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
    return normalise(letterbox_resize(load_rgb(path, spec.background), spec), spec)
