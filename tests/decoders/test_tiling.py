"""Tile-by-tile decoding: the plan, the compositing, and a decoder run over many tiles."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.decoders.score_decoder import ScoreDecoder
from engine.decoders.tiling import (
    Tile,
    composite,
    pad_to_multiple,
    plan,
    tile_seed,
    tile_starts,
)
from engine.decoders.unet import ConditionalUNet
from engine.errors import Cancelled
from engine.progress import CancelToken
from engine.testing import TINY_UNET


def test_tile_starts_cover_the_image_with_the_requested_overlap():
    for size, tile, overlap in [(300, 64, 16), (64, 64, 16), (65, 64, 16), (1000, 768, 96)]:
        starts = tile_starts(size, tile, overlap)
        assert starts[0] == 0 and starts[-1] + tile >= size
        assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))


def test_the_plan_is_raster_order_and_names_the_overlaps_with_finished_tiles():
    tiles = plan(100, 130, tile=64, overlap=16)
    assert [(t.top, t.left) for t in tiles] == [(0, 0), (0, 33), (0, 66), (36, 0), (36, 33), (36, 66)]
    assert tiles[0].overlap_top == tiles[0].overlap_left == 0
    assert (tiles[4].overlap_top, tiles[4].overlap_left) == (28, 31)
    assert plan(40, 50, tile=64, overlap=16) == [Tile(0, 0, 0, 40, 50, 0, 0)]  # one tile: the whole image
    with pytest.raises(ValueError, match="overlap 64 must be in"):
        plan(100, 100, tile=64, overlap=64)


def test_compositing_the_same_values_gives_them_back_and_a_new_tile_fades_in_over_the_old():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (100, 130, 3), dtype=np.uint8)
    out = np.zeros_like(image)
    for t in plan(100, 130, tile=64, overlap=16):
        composite(out, t, image[t.rows, t.cols])
    np.testing.assert_array_equal(out, image)  # agreeing tiles leave no trace of the cut

    first, second = plan(64, 112, tile=64, overlap=16)
    out = np.zeros((64, 112, 3), np.uint8)
    composite(out, first, np.zeros((64, 64, 3), np.uint8))
    composite(out, second, np.full((64, 64, 3), 200, np.uint8))
    row = out[10, :, 0].astype(int)
    assert row[second.left] == 0 and row[first.right - 1] == 200  # its padded border is hidden, then it takes over
    assert (np.diff(row) >= 0).all()  # a ramp, no step


def test_pad_to_multiple_reflects_and_falls_back_to_replicate():
    x = torch.arange(12.0).reshape(1, 1, 3, 4)
    padded = pad_to_multiple(x, 4)
    assert padded.shape == (1, 1, 4, 4) and torch.equal(padded[..., 3, :], x[..., 1, :])
    assert pad_to_multiple(x, 8).shape == (1, 1, 8, 8)


def test_each_tile_draws_its_own_noise_and_a_one_tile_decode_keeps_the_seed():
    tiles = plan(100, 130, tile=64, overlap=16)
    seeds = {tile_seed(5, t, len(tiles)) for t in tiles}
    assert len(seeds) == len(tiles) and tile_seed(5, tiles[0], 1) == 5


def decoder() -> ScoreDecoder:
    torch.manual_seed(0)
    net = ConditionalUNet(TINY_UNET)
    with torch.no_grad():
        torch.nn.init.normal_(net.head.weight, std=0.05)
    return ScoreDecoder(net, "flow")


def test_a_tiled_decode_is_seeded_and_reports_each_tiles_steps():
    dec = decoder()
    image = (np.random.default_rng(1).random((90, 120, 3)) * 255).astype(np.uint8)
    whole = dec.refine_image(image, steps=2, seed=3, noise=0.0, tile=128)  # one tile
    x = torch.from_numpy(image).permute(2, 0, 1)[None] / 255
    single = (dec.refine(x, steps=2, seed=3) * 255).round().byte()[0].permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(whole, single)  # one tile is the whole-image decode
    reports = []
    tiled = dec.refine_image(image, steps=2, seed=3, noise=0.0, tile=64, overlap=16, on_step=reports.append)
    assert [(r.index, r.total) for r in reports] == [(i, 12) for i in range(1, 13)]
    assert [r.region for r in reports[::2]] == [(t.top, t.left) for t in plan(90, 120, 64, 16)]
    assert reports[0].estimate.shape == (64, 64, 3)
    np.testing.assert_array_equal(tiled, dec.refine_image(image, steps=2, seed=3, noise=0.0, tile=64, overlap=16))
    assert not np.array_equal(tiled, dec.refine_image(image, steps=2, seed=4, noise=0.0, tile=64, overlap=16))


def test_a_cancel_stops_a_tiled_decode_before_its_next_tile():
    dec, token = decoder(), CancelToken()
    image = np.zeros((90, 120, 3), np.uint8)
    seen = []

    def cancel_after_first_tile(info):
        seen.append(info.region)
        if info.index == 2:
            token.cancel()

    with pytest.raises(Cancelled):
        dec.refine_image(image, steps=2, tile=64, overlap=16, on_step=cancel_after_first_tile, cancel=token)
    assert set(seen) == {(0, 0)}
