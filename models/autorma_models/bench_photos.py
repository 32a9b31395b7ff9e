"""Turns a class-folder split of catalogue photos into "bench-style" photos: what a returns
bench sends when it photographs an item with a phone or a fixed camera.

    python -m autorma_models.bench_photos --data ../shared/datasets/fashion5/test --out /tmp/bench-test --seed 0

The catalogue photos the classifier is trained and judged on are small (about 60x80 to
224x224), centred and on white. Bench photos are 8 to 12 megapixel, the item sits anywhere at
any size on a grey, beige, dark, wooden, fabric or cutting-mat surface, under uneven light and
white balance, with sensor noise, JPEG artefacts, and often stored sideways with an EXIF
Orientation tag. This script makes such photos from a split, so the whole pipeline (decode,
orientation, downscale, model) can be judged on inputs shaped like the real ones.

Each input `<data>/<class>/<name>` gives `<out>/<class>/<stem>.jpg`. The item is cut from its
white background with a soft mask (near-white pixels connected to the photo's border, so a
white shirt keeps its inside), scaled so its long side is 35-85 % of the frame's short side and
placed anywhere fully inside the frame. Everything is drawn from a numpy Generator seeded by
(seed, class, file name), so the same input, seed and flags give byte-identical photos whatever
`--workers` is. `<out>/bench_photos.json` records the arguments and every photo's drawn
parameters, so a figure can be traced back to the photo that made it.
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import json
import math
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from statistics import NormalDist

import numpy as np
from PIL import Image, ImageDraw

from . import data
from .preprocess import load_rgb

# Phone sensor sizes, landscape (w, h), with how often each is drawn: 4:3 mostly, some 16:9.
# All are 8 to 12 MP as phones label them (3264x2448 is 7.99 MP, 4032x3024 is 12.19 MP).
SIZES = (
    ((4032, 3024), 0.30),  # 12 MP, most phones' main camera
    ((4000, 3000), 0.25),  # 12 MP
    ((3648, 2736), 0.12),  # 10 MP
    ((3264, 2448), 0.18),  # 8 MP, older phones and fixed bench cameras
    ((4032, 2268), 0.08),  # 16:9 crop of 12 MP
    ((3840, 2160), 0.07),  # 16:9, 4K video-frame cameras
)
PORTRAIT_SHARE = 0.6  # items are often shot with the phone held upright
SCALE_RANGE = (0.35, 0.85)  # item long side / frame short side

# Orientation tag -> the transpose that stores an upright photo so that a viewer applying the
# tag shows it upright again (the inverse of what `ImageOps.exif_transpose` applies).
STORE = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}
ORIENTATIONS = ((6, 0.7), (8, 0.2), (3, 0.1))  # 6 is a phone held upright, home button down

# Plain surfaces: base colour (RGB). Each photo jitters it a little.
PLAIN = {
    "light_grey": (205, 205, 202),
    "beige": (214, 198, 170),
    "dark_mat": (48, 48, 50),
    "blue_grey": (112, 124, 138),
}
TEXTURED = ("wood", "fabric", "cutting_mat")
BACKGROUNDS = tuple(PLAIN) + TEXTURED

# Near-white cut-out, in levels of 255 - min(R, G, B): below LO is background, above HI is item,
# between is a soft edge (JPEG ringing and anti-aliasing around the item).
WHITE_LO, WHITE_HI = 8, 28
STRIP = 64  # rows per step of the light and noise pass; a multiple of the 4-row chroma blocks


def photo_rngs(seed: int, cls: str, name: str) -> tuple[np.random.Generator, ...]:
    """Three Generators (parameters, background texture, noise) for one photo. Seeded through
    sha256, not hash(), which Python salts per process; split so a change in how a texture is
    drawn cannot move the drawn sizes, positions or orientation."""
    key = hashlib.sha256(f"{seed}/{cls}/{name}".encode()).digest()
    ss = np.random.SeedSequence(int.from_bytes(key[:16], "little"))
    return tuple(np.random.default_rng(s) for s in ss.spawn(3))


def _pick(rng: np.random.Generator, table):
    values, weights = zip(*table)
    w = np.asarray(weights, float)
    return values[int(rng.choice(len(values), p=w / w.sum()))]


def draw_params(rng: np.random.Generator, sideways_share: float = 0.5, max_megapixels: float | None = None) -> dict:
    """Everything about one photo that is drawn, not computed. Every draw happens whatever the
    flags, in a fixed order, so `--sideways-share` and `--max-megapixels` change only what they
    name and the rest of the photo stays the same."""
    (w, h) = _pick(rng, SIZES)
    portrait = bool(rng.random() < PORTRAIT_SHARE)
    scale = float(rng.uniform(*SCALE_RANGE))
    pos = [float(v) for v in rng.random(2)]  # fraction of the free room left of / above the item
    background = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    brightness = float(rng.uniform(0.75, 1.2))
    gains = [float(v) for v in rng.uniform(0.9, 1.1, 3)]
    vignette = float(rng.uniform(0.05, 0.15))  # corner darkening per axis; (1 - v)^2 at a corner
    noise_sigma = float(rng.uniform(2.0, 8.0))
    quality = int(rng.integers(75, 96))
    sideways = bool(rng.random() < sideways_share)
    orientation = _pick(rng, ORIENTATIONS)
    if portrait:
        w, h = h, w
    if max_megapixels and w * h > max_megapixels * 1e6:
        # Test-only shrink, same aspect.
        f = math.sqrt(max_megapixels * 1e6 / (w * h))
        w, h = max(16, int(w * f)), max(16, int(h * f))
    return {
        "size": [w, h],
        "scale": round(scale, 4),
        "position_frac": [round(v, 4) for v in pos],
        "background": background,
        "brightness": round(brightness, 4),
        "gains": [round(g, 4) for g in gains],
        "vignette": round(vignette, 4),
        "noise_sigma": round(noise_sigma, 3),
        "quality": quality,
        "orientation": orientation if sideways else 1,
    }


def _border_flood(mask: np.ndarray) -> np.ndarray:
    """The part of `mask` 4-connected to the image border (vectorised geodesic dilation; the
    inputs are at most a few hundred pixels, so the loop runs a few hundred cheap steps)."""
    reach = np.zeros_like(mask)
    reach[[0, -1], :] = mask[[0, -1], :]
    reach[:, [0, -1]] = mask[:, [0, -1]]
    while True:
        grown = (reach | _touches(reach)) & mask
        if np.array_equal(grown, reach):
            return reach
        reach = grown


def cutout(img: Image.Image) -> tuple[Image.Image, Image.Image, float]:
    """The item cropped to its bounding box, its soft alpha mask ('L') and the share of the
    input's pixels that are item.

    Background is the near-white reachable from the photo's border, so white parts inside
    the item stay (and white enclosed by the item, such as inside a bag's handle, stays as a
    light patch). The item's outermost pixels and the near-white around them are mixtures of
    item and catalogue white (anti-aliasing, JPEG ringing); pasted as they are, they draw a
    white outline, magnified by the upscale. So their colour is taken from the item pixels
    just inside, and their opacity from how much of that colour they hold."""
    a = np.asarray(img, np.float32)
    dist = 255 - a.min(axis=2)
    background = _border_flood(dist < WHITE_HI)
    if background.all():  # an all-white photo: keep it whole, as a white patch
        return img, Image.new("L", img.size, 255), 0.0
    solid = ~background
    core = solid & ~_touches(background)
    if not core.any():  # an item one or two pixels thin
        core = solid
    inner, reached = _bleed(a, core)
    # pixel = alpha * inner + (1 - alpha) * white, summed over channels; unreliable where the
    # inner colour is itself near white, where the plain near-white ramp is used instead.
    held = (255 - inner).sum(axis=2)
    unmixed = np.clip((255 - a).sum(axis=2) / np.maximum(held, 1), 0, 1)
    ramp = np.clip((dist - WHITE_LO) / (WHITE_HI - WHITE_LO), 0.0, 1.0)
    alpha = np.where(background, ramp, 1.0)
    alpha = np.where(reached & ~core & (held > 45), unmixed, alpha)
    alpha[background & ~reached] = 0  # specks of JPEG ringing away from the item
    alpha[core] = 1
    ys, xs = np.nonzero(alpha > 0.1)
    box = (max(xs.min() - 1, 0), max(ys.min() - 1, 0), min(xs.max() + 2, img.width), min(ys.max() + 2, img.height))
    rgb = Image.fromarray(np.clip(np.where(reached[..., None], inner, a) + 0.5, 0, 255).astype(np.uint8))
    mask = Image.fromarray(np.round(alpha * 255).astype(np.uint8))
    return rgb.crop(box), mask.crop(box), float((alpha > 0.5).mean())


def _shifts():
    """(destination, source) slice pairs for the four 4-neighbour shifts of a 2-D array."""
    fwd, back = np.s_[1:], np.s_[:-1]
    return (((fwd,), (back,)), ((back,), (fwd,)), ((slice(None), fwd), (slice(None), back)),
            ((slice(None), back), (slice(None), fwd)))


def _touches(mask: np.ndarray) -> np.ndarray:
    """Pixels with a 4-neighbour in `mask`."""
    out = np.zeros_like(mask)
    for dst, src in _shifts():
        out[dst] |= mask[src]
    return out


def _bleed(rgb: np.ndarray, solid: np.ndarray, steps: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Spreads the colours of `solid` pixels `steps` pixels outwards (each new pixel takes the
    mean of its filled 4-neighbours); returns the colours and which pixels were reached."""
    rgb, filled = rgb.copy(), solid.copy()
    for _ in range(steps):
        acc = np.zeros_like(rgb)
        cnt = np.zeros(solid.shape, np.float32)
        for dst, src in _shifts():
            acc[dst] += rgb[src] * filled[src][..., None]
            cnt[dst] += filled[src]
        new = ~filled & (cnt > 0)
        rgb[new] = acc[new] / cnt[new][:, None]
        filled |= new
    return rgb, filled


@functools.lru_cache(maxsize=1)
def _normal_quantiles() -> np.ndarray:
    """The standard normal's 65536 quantiles at (i + 0.5) / 65536. Indexing them with uniform
    16-bit draws samples a Gaussian (cut at +-4.3 sigma) about twice as fast as numpy's
    standard_normal, which dominated the time of a 12 MP photo."""
    nd = NormalDist()
    return np.array([nd.inv_cdf((i + 0.5) / 65536) for i in range(65536)], np.float32)


def _uniform16(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return np.frombuffer(rng.bytes(2 * math.prod(shape)), "<u2").reshape(shape)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: tuple[int, int]) -> np.ndarray:
    """Low-frequency noise (about unit spread): a coarse random grid, bicubic-upsampled."""
    coarse = Image.fromarray(rng.standard_normal(cells).astype(np.float32), "F")
    return np.asarray(coarse.resize((shape[1], shape[0]), Image.BICUBIC))


def _tinted(value: np.ndarray, size: tuple[int, int], dark, light) -> Image.Image:
    """A [0, 1] field upscaled to `size` and mapped onto the colour ramp dark -> light. The
    field is upscaled as one 8-bit channel and coloured by lookup, both in C, which is several
    times cheaper than colouring floats first."""
    field = Image.fromarray(np.clip(value * 255 + 0.5, 0, 255).astype(np.uint8)).resize(size, Image.BILINEAR)
    ramp = np.linspace(0, 1, 256)
    return Image.merge("RGB", [field.point([int(round(d + t * (l - d))) for t in ramp])
                               for d, l in zip(dark, light)])


def _upscale(rgb: np.ndarray, size: tuple[int, int]) -> Image.Image:
    return Image.fromarray(np.clip(rgb + 0.5, 0, 255).astype(np.uint8)).resize(size, Image.BILINEAR)


def background(kind: str, size: tuple[int, int], rng: np.random.Generator) -> tuple[Image.Image, dict]:
    """A procedurally drawn bench surface of `size` (w, h) and what was drawn. Smooth fields are
    made at 1/4 to 1/64 of the size and upscaled in C; only the cutting-mat lines are drawn at
    full size, because they must stay sharp."""
    w, h = size
    jitter = rng.uniform(-10, 10) + rng.uniform(-4, 4, 3)  # mostly lighter/darker, a little tint
    if kind in PLAIN:
        colour = np.clip(np.asarray(PLAIN[kind]) + jitter, 0, 255)
        sh, sw = h // 64 + 2, w // 64 + 2
        gy, gx = rng.uniform(-0.08, 0.08, 2)  # light falling off across the bench
        yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32)
        shade = 1 + gy * (yy / sh - 0.5) + gx * (xx / sw - 0.5) + 0.015 * _smooth_noise(rng, (sh, sw), (4, 4))
        return _upscale(colour * shade[..., None], size), {"kind": kind, "colour": [int(c) for c in colour]}
    if kind == "wood":
        # Boards along x (transposed half the time): growth rings as |sin| bands (broad light
        # early wood, thin dark late wood) warped by low-frequency noise, fine grain lines that
        # follow the warp, and a dark seam between boards. Drawn at 1/4 size.
        along_y = bool(rng.random() < 0.5)
        sh, sw = (w // 4, h // 4) if along_y else (h // 4, w // 4)
        period = rng.uniform(10, 25)
        y = np.arange(sh, dtype=np.float32)[:, None]
        warp = _smooth_noise(rng, (sh, sw), (6, 4)) * period * 1.5
        rings = np.abs(np.sin(np.pi * (y + warp) / period)) ** 0.4
        fine = _normal_quantiles()[_uniform16(rng, (sh + 1,))]
        grain = np.interp(y + 0.3 * warp, np.arange(sh + 1), fine).astype(np.float32)
        board = rng.uniform(0.12, 0.3) * sh
        seam = ((y % board) < 1.5).astype(np.float32)
        value = 0.3 + 0.4 * rings + 0.08 * grain - 0.45 * seam
        if along_y:
            value = value.T
        dark = np.clip(np.array([95, 60, 35]) + jitter, 0, 255)
        light = np.clip(np.array([185, 140, 95]) + jitter, 0, 255)
        return _tinted(value, size, dark, light), {"kind": kind, "along_y": along_y,
                                                   "period_px": round(float(period * 4), 1)}
    if kind == "fabric":
        # A fine weave (product of sines, period 6-12 px at full size), thread noise and mottling.
        sh, sw = h // 2, w // 2
        period = rng.uniform(3, 6)
        y = np.arange(sh, dtype=np.float32)[:, None]
        x = np.arange(sw, dtype=np.float32)[None, :]
        weave = np.sin(2 * np.pi * x / period) * np.sin(2 * np.pi * y / period)
        value = (0.55 + 0.12 * weave + 0.08 * _normal_quantiles()[_uniform16(rng, (sh, sw))]
                 + 0.06 * _smooth_noise(rng, (sh, sw), (6, 6)))
        base = [(60, 75, 110), (120, 120, 118), (190, 180, 160), (70, 90, 70)][int(rng.integers(4))]
        base = np.clip(np.asarray(base) + jitter, 0, 255)
        return _tinted(value, size, base * 0.5, np.minimum(base * 1.4, 255)), {
            "kind": kind, "colour": [int(c) for c in base], "period_px": round(float(period * 2), 1)}
    if kind == "cutting_mat":
        # A 1 cm grid (about 2-3.5 % of the short side) with every fifth line stronger, slightly
        # turned, on green, grey or blue.
        base = [(40, 95, 70), (55, 58, 62), (35, 65, 105)][int(rng.integers(3))]
        base = np.clip(np.asarray(base) + jitter, 0, 255)
        img = _upscale(np.broadcast_to(base, (4, 4, 3)).astype(np.float32), size)
        step = rng.uniform(0.02, 0.035) * min(w, h)
        angle = np.deg2rad(rng.uniform(-6, 6))
        d = np.array([np.cos(angle), np.sin(angle)])  # direction of one family of lines
        n = np.array([-d[1], d[0]])
        centre, reach = np.array([w / 2, h / 2]), math.hypot(w, h)
        line = tuple(int(v) for v in np.minimum(base + 90, 255))
        major = tuple(int(v) for v in np.minimum(base + 140, 255))
        width = max(1, round(step / 30))
        draw = ImageDraw.Draw(img)
        k = int(reach / step / 2) + 1
        for u, v in ((d, n), (n, d)):
            for i in range(-k, k + 1):
                o = centre + i * step * v
                p0, p1 = o - reach * u, o + reach * u
                draw.line([tuple(p0), tuple(p1)], fill=major if i % 5 == 0 else line,
                          width=width * 2 if i % 5 == 0 else width)
        return img, {"kind": kind, "colour": [int(c) for c in base], "grid_px": round(float(step), 1),
                     "angle_deg": round(float(np.rad2deg(angle)), 2)}
    raise ValueError(f"unknown background kind {kind!r}")


def render(item: Image.Image, params: dict, rng_bg: np.random.Generator,
           rng_noise: np.random.Generator) -> tuple[Image.Image, dict]:
    """The upright bench photo for one catalogue photo, and what was computed (item box)."""
    w, h = params["size"]
    canvas, bg_info = background(params["background"], (w, h), rng_bg)

    rgb, alpha, item_share = cutout(item)
    long_side = params["scale"] * min(w, h)
    f = long_side / max(rgb.size)
    iw, ih = max(1, round(rgb.width * f)), max(1, round(rgb.height * f))
    x = round(params["position_frac"][0] * (w - iw))
    y = round(params["position_frac"][1] * (h - ih))
    canvas.paste(rgb.resize((iw, ih), Image.BICUBIC), (x, y), alpha.resize((iw, ih), Image.BILINEAR))

    # Exposure, white balance and a vignette as one separable gain per pixel and channel, then
    # Gaussian sensor noise: luma per pixel plus chroma per 4x4 block (phone noise after
    # demosaicing and denoising is mostly luma, its colour noise blotchy), weighted so each
    # channel's spread is noise_sigma. Done in strips of STRIP rows so the float work stays in
    # cache; the strip size is fixed, so the draws are too.
    src = np.asarray(canvas)
    dst = np.empty_like(src)
    v = params["vignette"]
    vy = 1 - v * np.linspace(-1, 1, h, dtype=np.float32) ** 2
    vx = 1 - v * np.linspace(-1, 1, w, dtype=np.float32) ** 2
    gain_x = (vx[:, None] * (params["brightness"] * np.asarray(params["gains"], np.float32)))[None]
    z = _normal_quantiles()
    luma_lut = z * np.float32(0.9 * params["noise_sigma"]) + np.float32(0.5)  # +0.5: rounds in the cast
    chroma_lut = z * np.float32(0.436 * params["noise_sigma"])
    cw = -(-w // 4)
    for r0 in range(0, h, STRIP):
        r1 = min(r0 + STRIP, h)
        px = src[r0:r1].astype(np.float32)
        px *= vy[r0:r1, None, None]
        px *= gain_x
        noise = chroma_lut[_uniform16(rng_noise, (-(-(r1 - r0) // 4), cw, 3))]
        noise = np.repeat(np.repeat(noise, 4, 0), 4, 1)[: r1 - r0, :w]
        noise += luma_lut[_uniform16(rng_noise, (r1 - r0, w))][..., None]
        px += noise
        np.clip(px, 0, 255, out=px)
        dst[r0:r1] = px
    out = Image.fromarray(dst)
    return out, {"background_detail": bg_info, "item_box": [x, y, iw, ih], "item_share_of_input": round(item_share, 4)}


def make_photo(job: tuple) -> dict:
    """Worker: renders and writes one photo; returns its record for bench_photos.json."""
    src, rel_out, out_root, cls, seed, sideways_share, max_mp = job
    rng_params, rng_bg, rng_noise = photo_rngs(seed, cls, Path(src).name)
    params = draw_params(rng_params, sideways_share, max_mp)
    upright, computed = render(load_rgb(src), params, rng_bg, rng_noise)
    exif = Image.Exif()
    exif[0x0112] = params["orientation"]
    exif[0x0131] = "autorma_models.bench_photos"  # Software: marks the photo as synthetic
    o = params["orientation"]
    stored = upright.transpose(STORE[o]) if o in STORE else upright
    path = Path(out_root) / rel_out
    stored.save(path, "JPEG", quality=params["quality"], exif=exif)
    return {"source": f"{cls}/{Path(src).name}", "output": rel_out, **params,
            "stored_size": list(stored.size), **computed, "bytes": path.stat().st_size}


def run(data_dir: Path, out: Path, seed: int = 0, sideways_share: float = 0.5, limit: int | None = None,
        workers: int = 2, max_megapixels: float | None = None) -> dict:
    data_dir, out = Path(data_dir), Path(out)
    if not data_dir.is_dir() or not any(p.is_dir() for p in data_dir.iterdir()):
        raise SystemExit(f"`{data_dir}` has no class folders: --data must be a split folder with one "
                         "folder per class, e.g. ../shared/datasets/fashion5/test")
    try:
        paths, labels, classes = data.scan(data_dir)
    except ValueError as e:
        raise SystemExit(f"{e}; --data must be one split (e.g. fashion5/test), not the data set root")
    jobs, seen = [], set()
    for idx, cls in enumerate(classes):
        chosen = [p for p, l in zip(paths, labels) if l == idx][:limit]
        (out / cls).mkdir(parents=True, exist_ok=True)
        for p in chosen:
            rel = f"{cls}/{p.stem}.jpg"
            if rel in seen:  # a.png beside a.jpg would silently overwrite each other
                raise SystemExit(f"two photos in `{data_dir / cls}` share the stem `{p.stem}`")
            seen.add(rel)
            jobs.append((str(p), rel, str(out), cls, seed, sideways_share, max_megapixels))
    if workers <= 1:
        records = [make_photo(j) for j in jobs]
    else:
        # Each worker writes its own photo, so only the small records cross processes.
        with ProcessPoolExecutor(max_workers=workers) as pool:
            records = list(pool.map(make_photo, jobs, chunksize=1))
    report = {
        "tool": "autorma_models.bench_photos",
        "args": {"data": str(data_dir), "out": str(out), "seed": seed, "sideways_share": sideways_share,
                 "limit": limit, "max_megapixels": max_megapixels},
        "seed": seed,
        "classes": classes,
        "num_photos": len(records),
        "photos": records,
    }
    (out / "bench_photos.json").write_text(json.dumps(report, indent=1) + "\n")
    return report


def _share(text: str) -> float:
    v = float(text)
    if not 0 <= v <= 1:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return v


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True,
                   help="split folder with one sub-folder per class, e.g. ../shared/datasets/fashion5/test")
    p.add_argument("--out", type=Path, required=True,
                   help="output folder; gets <class>/<stem>.jpg per input and bench_photos.json "
                        "(existing files of the same name are overwritten)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed; with the same inputs and flags the photos are byte-identical (default 0)")
    p.add_argument("--sideways-share", type=_share, default=0.5,
                   help="share of photos stored sideways with an EXIF Orientation tag (6 mostly, also "
                        "8 and 3), as phones store them; 0 stores all upright (default 0.5)")
    p.add_argument("--limit", type=int, default=None,
                   help="use only the first N photos (sorted by name) of each class, for quick runs")
    p.add_argument("--workers", type=int, default=2,
                   help="processes rendering photos in parallel; does not change the output (default 2)")
    p.add_argument("--max-megapixels", type=float, default=None,
                   help="shrink any photo above this many megapixels, keeping its aspect and all other "
                        "draws; for fast tests only (default: none, real 8-12 MP sizes)")
    a = p.parse_args(argv)
    if a.limit is not None and a.limit < 1:
        p.error("--limit must be at least 1")
    t0 = time.perf_counter()
    r = run(a.data, a.out, a.seed, a.sideways_share, a.limit, a.workers, a.max_megapixels)
    dt = time.perf_counter() - t0
    n = r["num_photos"]
    mb = sum(ph["bytes"] for ph in r["photos"]) / max(n, 1) / 1e6
    sideways = sum(ph["orientation"] != 1 for ph in r["photos"])
    print(f"wrote {n} bench photos ({sideways} sideways, {mb:.2f} MB mean) to {a.out} in {dt:.1f} s "
          f"({dt / max(n, 1):.2f} s per photo with {a.workers} worker(s))", file=sys.stderr)


if __name__ == "__main__":
    main()
