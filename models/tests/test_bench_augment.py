"""The bench-style augmentation: items cut from their white, placed in frames between white bars."""
from __future__ import annotations

import torch

from autorma_models.bench_augment import BenchAugment, item_masks


def _photos() -> torch.Tensor:
    """Four 64 px catalogue-like photos: a dark ring enclosing white, a thin bar, a white shirt
    outlined in grey (white inside its outline), and an all-white photo."""
    x = torch.full((4, 3, 64, 64), 255, dtype=torch.uint8)
    x[0, :, 16:48, 16:48] = 20
    x[0, :, 24:40, 24:40] = 255  # white enclosed by the item
    x[1, :, 30:34, 8:56] = 60
    x[2, :, 10:54, 20:44] = 120
    x[2, :, 12:52, 22:42] = 250  # near-white inside, not reachable from the border
    return x


def test_masks_cut_the_white_reachable_from_the_border_and_keep_what_the_item_encloses():
    alpha, boxes = item_masks(_photos())
    assert alpha.shape == (4, 1, 64, 64) and alpha.dtype == torch.uint8
    assert alpha[0, 0, 0, 0] == 0 and alpha[0, 0, 20, 20] == 255
    assert alpha[0, 0, 32, 32] == 255, "white enclosed by the item is part of it"
    assert alpha[2, 0, 30, 30] == 255, "a white shirt keeps its inside"
    assert boxes[0].tolist() == [16, 16, 48, 48]
    assert boxes[1].tolist() == [8, 30, 56, 34]
    # An all-white photo keeps its whole frame, as a white patch.
    assert (alpha[3] == 255).all() and boxes[3].tolist() == [0, 0, 64, 64]


def test_bench_shots_put_the_item_in_a_frame_between_pure_white_bars():
    x = _photos()
    alpha, boxes = item_masks(x)
    source = x.float() / 255
    torch.manual_seed(0)
    out = BenchAugment(1.0)(source.repeat(8, 1, 1, 1), torch.zeros(32, 3, 64, 64), alpha.repeat(8, 1, 1, 1),
                            boxes.repeat(8, 1))
    assert out.shape == (32, 3, 64, 64) and 0 <= out.min() and out.max() <= 1
    # Every frame is 4:3 or 16:9, so one side has bars of the letterbox's white; inside, a surface.
    for i, img in enumerate(out):
        white = (img == 1).all(0)
        rows_white, cols_white = white.all(1), white.all(0)  # rows, columns entirely white
        assert rows_white[:4].all() or cols_white[:4].all(), "bars on the top or the left"
        assert rows_white[-4:].all() or cols_white[-4:].all(), "bars on the bottom or the right"
        # 4:3 leaves 16 of 64 lines to the bars, 16:9 28; the frame between them is a surface.
        bars = max(rows_white.sum(), cols_white.sum())
        assert 14 <= bars <= 30, f"photo {i}: {bars} white lines"
    # The dark ring of photo 0 (768 pixels) is in each of its frames, at 30-90 % of the frame's short
    # side (48 pixels at most): at most (0.9 * 48)^2 * 3/4 pixels.
    dark = (out[0::4].max(1).values < 0.2).flatten(1).sum(1)
    assert (dark > 50).all() and (dark < 0.81 * 48 * 48 * 0.75).all(), dark


def test_photos_not_picked_are_what_the_catalogue_augmentation_made():
    x = _photos()
    alpha, boxes = item_masks(x)
    rest = torch.rand(4, 3, 64, 64)
    assert torch.equal(BenchAugment(0.0)(x.float() / 255, rest, alpha, boxes), rest)
    torch.manual_seed(1)
    mixed = BenchAugment(0.5)(x.float().repeat(16, 1, 1, 1) / 255, rest.repeat(16, 1, 1, 1),
                              alpha.repeat(16, 1, 1, 1), boxes.repeat(16, 1))
    kept = [(m == r).all().item() for m, r in zip(mixed, rest.repeat(16, 1, 1, 1))]
    assert 16 < sum(kept) < 48, "about half are bench shots"
