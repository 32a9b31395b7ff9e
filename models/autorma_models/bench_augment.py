"""Bench-style augmentation: catalogue photos made to look like a returns bench's shots, on
whole batches on the training device.

A catalogue photo is the item, centred and large, on white. A bench photo, once the pipeline has
letterboxed it to the model's square, is a 4:3 or 16:9 frame between white bars, the item
somewhere in it at a third to four fifths of the frame's short side, on a grey, beige, dark,
coloured or patterned surface, under uneven light and white balance, with some noise. This
module draws such frames at random from the training photos themselves: each item is cut from
its white background once (`item_masks`), then every batch places it anew (`BenchAugment`).

The kinds of change follow `bench_photos` (the generator the bench-style val and test sets come
from), but nothing is shared with it: the surfaces here are generic fields and patterns drawn at
the model's resolution, so a model that holds on the generator's photos has not just learnt its
particular surfaces.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# Near-white cut-out, in levels of 255 - min(R, G, B), as bench_photos cuts its items: below LO
# is background, above HI is item, between is the soft edge.
WHITE_LO, WHITE_HI = 8, 28


def _touches(mask: torch.Tensor) -> torch.Tensor:
    """Pixels with a 4-neighbour in `mask` (N x H x W, bool)."""
    out = torch.zeros_like(mask)
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    out[:, :, 1:] |= mask[:, :, :-1]
    out[:, :, :-1] |= mask[:, :, 1:]
    return out


@torch.no_grad()
def item_masks(x_uint8: torch.Tensor, chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """The item's soft mask (N x 1 x H x W, uint8, 255 = item) and its box (N x 4: x0, y0, x1, y1
    in pixels, end exclusive) for letterboxed catalogue photos (N x 3 x H x W, uint8).

    Background is the near-white 4-connected to the photo's border, so white inside an item (a
    white shirt's front) stays item. A photo that is all background keeps its whole frame as the
    item, as a white patch."""
    masks, boxes = [], []
    for i in range(0, x_uint8.shape[0], chunk):
        x = x_uint8[i:i + chunk]
        dist = 255 - x.min(dim=1).values.int()
        near_white = dist < WHITE_HI
        reach = torch.zeros_like(near_white)
        reach[:, [0, -1], :] = near_white[:, [0, -1], :]
        reach[:, :, [0, -1]] = near_white[:, :, [0, -1]]
        while True:  # geodesic dilation: at most a few hundred cheap steps at 128 px
            grown = (reach | _touches(reach)) & near_white
            if torch.equal(grown, reach):
                break
            reach = grown
        ramp = ((dist - WHITE_LO).clamp(0, WHITE_HI - WHITE_LO) * 255 // (WHITE_HI - WHITE_LO)).to(torch.uint8)
        alpha = torch.where(reach, ramp, torch.full_like(ramp, 255))
        solid = alpha > 25
        empty = ~solid.flatten(1).any(1)
        alpha[empty] = 255
        solid[empty] = True
        rows, cols = solid.any(2), solid.any(1)
        h, w = alpha.shape[1:]
        ar_h, ar_w = torch.arange(h), torch.arange(w)
        y0 = torch.where(rows, ar_h, h).min(1).values
        y1 = torch.where(rows, ar_h, -1).max(1).values + 1
        x0 = torch.where(cols, ar_w, w).min(1).values
        x1 = torch.where(cols, ar_w, -1).max(1).values + 1
        masks.append(alpha.unsqueeze(1))
        boxes.append(torch.stack([x0, y0, x1, y1], 1))
    return torch.cat(masks), torch.cat(boxes)


def _coords(s: int, dev) -> torch.Tensor:
    """`s` positions from -1 to 1 (both ends included): where gradients, vignettes and patterns
    are drawn."""
    return torch.linspace(-1, 1, s, device=dev)


def _plane(s: int, dev) -> tuple[torch.Tensor, torch.Tensor]:
    """(y, x) of every pixel of an `s` x `s` square, in `_coords`."""
    return torch.meshgrid(_coords(s, dev), _coords(s, dev), indexing="ij")


def _u(b: int, lo: float, hi: float, dev) -> torch.Tensor:
    return torch.empty(b, device=dev).uniform_(lo, hi)


class BenchAugment:
    """Turns a random share (`prob`) of a batch into bench shots.

    Batches are float in [0, 1] (N x 3 x S x S): `source` the photos as loaded, `rest` what the
    photos not picked become (the catalogue augmentation's output); `alpha` and `boxes` come from
    `item_masks` for the same photos."""

    # Frame shapes (short side / long side) with how often each is drawn, and the share shot
    # portrait, as phones and bench cameras take them.
    ASPECTS = ((3 / 4, 0.8), (9 / 16, 0.2))
    PORTRAIT_SHARE = 0.5
    SCALE = (0.3, 0.9)  # item long side / frame short side

    def __init__(self, prob: float):
        self.prob = prob

    def __call__(self, source: torch.Tensor, rest: torch.Tensor, alpha_uint8: torch.Tensor | None,
                 boxes: torch.Tensor | None) -> torch.Tensor:
        pick = torch.nonzero(torch.rand(source.shape[0], device=source.device) < self.prob).flatten()
        if len(pick) == 0:
            return rest
        out = rest.clone()
        out[pick] = self.shoot(source[pick], alpha_uint8[pick], boxes[pick])
        return out

    def shoot(self, x: torch.Tensor, alpha_uint8: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Every photo of `x` as a bench shot."""
        b, _, s, _ = x.shape
        dev = x.device
        frame_x, frame_y = self._frames(b, dev)
        item, alpha = self._place(x, alpha_uint8.float() / 255, boxes.to(dev).float(), frame_x, frame_y)
        out = alpha * item + (1 - alpha) * self._surfaces(b, s, dev)
        out = self._light(out, frame_x, frame_y)
        # Outside the frame is the pipeline's letterbox: pure white, untouched by the camera.
        coord = (torch.arange(s, device=dev).float() + 0.5) / s * 2 - 1
        inside = ((coord.view(1, 1, s, 1).abs() <= frame_y.view(b, 1, 1, 1))
                  & (coord.view(1, 1, 1, s).abs() <= frame_x.view(b, 1, 1, 1)))
        return torch.where(inside, out.clamp(0, 1), torch.ones_like(out))

    def _frames(self, b: int, dev) -> tuple[torch.Tensor, torch.Tensor]:
        """Half-extents of each photo's frame in the letterboxed square ([-1, 1] coordinates)."""
        ratios = torch.tensor([r for r, _ in self.ASPECTS], device=dev)
        weights = torch.tensor([w for _, w in self.ASPECTS], device=dev)
        short = ratios[torch.multinomial(weights, b, replacement=True)]
        portrait = torch.rand(b, device=dev) < self.PORTRAIT_SHARE
        one = torch.ones_like(short)
        return torch.where(portrait, short, one), torch.where(portrait, one, short)

    def _place(self, x, alpha, boxes, frame_x, frame_y):
        """The item scaled, turned a little, mirrored half the time and moved anywhere inside its
        frame; returns the sampled colours and the item's mask at the new place."""
        b, _, s, _ = x.shape
        dev = x.device
        # Box centre and half-extents in [-1, 1] coordinates (align_corners=False).
        cx, cy = (boxes[:, 0] + boxes[:, 2]) / s - 1, (boxes[:, 1] + boxes[:, 3]) / s - 1
        hw, hh = (boxes[:, 2] - boxes[:, 0]) / s, (boxes[:, 3] - boxes[:, 1]) / s
        long_out = _u(b, *self.SCALE, dev) * torch.minimum(frame_x, frame_y)  # half-extent
        k = long_out / torch.maximum(hw, hh)
        room_x = (frame_x - k * hw).clamp(min=0)
        room_y = (frame_y - k * hh).clamp(min=0)
        ox = (torch.rand(b, device=dev) * 2 - 1) * room_x
        oy = (torch.rand(b, device=dev) * 2 - 1) * room_y
        angle = _u(b, -8, 8, dev) * math.pi / 180
        flip = torch.where(torch.rand(b, device=dev) < 0.5, -1.0, 1.0)
        cos, sin = torch.cos(angle) / k, torch.sin(angle) / k
        # Output -> input: in = centre_in + R(angle) * diag(flip, 1) * (out - centre_out) / k.
        a = torch.stack([torch.stack([cos * flip, -sin], 1), torch.stack([sin * flip, cos], 1)], 1)
        t = torch.stack([cx, cy], 1) - (a @ torch.stack([ox, oy], 1).unsqueeze(2)).squeeze(2)
        grid = F.affine_grid(torch.cat([a, t.unsqueeze(2)], 2), [b, 1, s, s], align_corners=False)
        item = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        mask = F.grid_sample(alpha, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return item, mask

    def _surfaces(self, b: int, s: int, dev) -> torch.Tensor:
        """A surface per photo: a neutral or coloured base under a light gradient and a mottle,
        with a pattern on about half (stripes like wood grain or weave, a grid like a cutting mat,
        or grain)."""
        neutral = _u(b, 0.12, 0.9, dev).view(b, 1) + _u(b * 3, -0.05, 0.05, dev).view(b, 3)
        warm = _u(b, 0, 0.08, dev).view(b, 1) * torch.tensor([1.0, 0.3, -1.0], device=dev)
        coloured = 0.5 * torch.rand(b, 3, device=dev) * _u(b, 0.3, 1.4, dev).view(b, 1) + 0.15
        base = torch.where((torch.rand(b, device=dev) < 0.65).view(b, 1), neutral + warm, coloured)
        yy, xx = _plane(s, dev)
        shade = (1 + _u(b, -0.12, 0.12, dev).view(b, 1, 1) * xx + _u(b, -0.12, 0.12, dev).view(b, 1, 1) * yy
                 + 0.04 * F.interpolate(torch.randn(b, 1, 4, 4, device=dev), size=(s, s), mode="bicubic",
                                        align_corners=False)[:, 0])
        pattern = torch.zeros(b, s, s, device=dev)
        kind = torch.randint(0, 6, (b,), device=dev)  # 0-2: plain, 3: stripes, 4: grid, 5: grain
        for k, draw in ((3, self._stripes), (4, self._grid), (5, self._grain)):
            sel = torch.nonzero(kind == k).flatten()
            if len(sel):
                pattern[sel] = _u(len(sel), 0.03, 0.15, dev).view(-1, 1, 1) * draw(len(sel), s, dev)
        return (base.view(b, 3, 1, 1) * (shade + pattern).unsqueeze(1)).clamp(0, 1)

    @staticmethod
    def _axes(b: int, s: int, dev) -> tuple[torch.Tensor, torch.Tensor]:
        """Coordinates along and across a random direction per photo ([-1, 1] square)."""
        yy, xx = _plane(s, dev)
        phi = _u(b, 0, math.pi, dev).view(b, 1, 1)
        cos, sin = torch.cos(phi), torch.sin(phi)
        return xx * cos + yy * sin, -xx * sin + yy * cos

    def _stripes(self, b: int, s: int, dev) -> torch.Tensor:
        """Bands 2-10 px apart, warped a little: wood grain, a weave, corrugated card."""
        _, across = self._axes(b, s, dev)
        px = 2.0 / s  # one pixel in these coordinates
        warp = F.interpolate(torch.randn(b, 1, 3, 3, device=dev), size=(s, s), mode="bicubic", align_corners=False)
        return torch.sin(2 * math.pi * (across + px * 3 * warp[:, 0]) / (px * _u(b, 2, 10, dev).view(b, 1, 1)))

    def _grid(self, b: int, s: int, dev) -> torch.Tensor:
        """Light one-pixel lines 4-24 px apart both ways, slightly turned: a cutting mat."""
        along, across = self._axes(b, s, dev)
        step = 2.0 / s * _u(b, 4, 24, dev).view(b, 1, 1)
        on_line = lambda u: ((u / step) % 1 < 2.0 / s / step).float()  # noqa: E731 (used twice)
        return torch.maximum(on_line(along), on_line(across)) * 2 - 0.3

    @staticmethod
    def _grain(b: int, s: int, dev) -> torch.Tensor:
        return torch.randn(b, s, s, device=dev)

    def _light(self, x, frame_x, frame_y):
        """Exposure, white balance, a vignette over the frame, and sensor noise left after the
        downscale."""
        b, _, s, _ = x.shape
        dev = x.device
        gain = _u(b, 0.7, 1.25, dev).view(b, 1, 1, 1) * _u(b * 3, 0.88, 1.12, dev).view(b, 3, 1, 1)
        coord = _coords(s, dev)
        v = _u(b, 0, 0.15, dev).view(b, 1, 1, 1)
        vy = 1 - v * (coord.view(1, 1, s, 1) / frame_y.view(b, 1, 1, 1)).clamp(-1, 1) ** 2
        vx = 1 - v * (coord.view(1, 1, 1, s) / frame_x.view(b, 1, 1, 1)).clamp(-1, 1) ** 2
        noise = torch.randn_like(x) * _u(b, 0, 0.02, dev).view(b, 1, 1, 1)
        return x * gain * vy * vx + noise
