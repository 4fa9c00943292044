"""Run the decoder network over an image of any size in fixed-size, overlapping tiles.

Memory is bounded by ``batch`` tiles of ``tile``² pixels whatever the image size. Tiles
overlap by at least ``overlap`` pixels and are cross-faded (see blend_window), so each
tile's border, where its convolutions saw padding and its GroupNorm saw other
statistics than its neighbour's, fades out. Overlap, not an alternating grid offset,
because the flow decoder is used with 1–4 steps, too few for offsets to average seams
away.

A pixel covered by one tile gets that tile's value exactly (the weights normalise), so
a pointwise network gives the same result tiled and whole."""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F

from engine.decoders.unet import NetworkFn
from engine.errors import SettingsError
from engine.progress import CancelToken, check_cancel


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles covering [0, size), spread evenly, neighbours overlapping ≥ ``overlap``."""
    if size <= tile:
        return [0]
    count = math.ceil((size - overlap) / (tile - overlap))
    return [round(i * (size - tile) / (count - 1)) for i in range(count)]


def blend_window(height: int, width: int, overlap: int) -> torch.Tensor:
    """height×width blending weights for tiles that overlap their neighbours by ``overlap``.

    Along each axis, by distance d from the tile edge: a margin of overlap/4 with weight
    ~0 (there the tile's convolutions saw padding instead of image), then a linear
    crossfade over overlap/2, then 1. Two neighbours' weights sum to 1 across their
    overlap. The margin's weight is tiny but positive, so a pixel that only one tile
    covers (at the image border) still gets that tile's value."""
    def axis(n: int) -> torch.Tensor:
        if overlap == 0:
            return torch.ones(n)
        margin, fade = overlap // 4, overlap - 2 * (overlap // 4)
        d = torch.minimum(torch.arange(n), torch.arange(n).flip(0)).float() + 0.5
        return ((d - margin) / fade).clamp(1e-3, 1.0)
    return axis(height)[:, None] * axis(width)[None, :]


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad the bottom and right of ``x`` to multiples of ``multiple``: reflect, or replicate where the image is too small to reflect."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def tiled(fn: NetworkFn, tile: int = 512, overlap: int = 64, batch: int = 1, multiple: int = 16,
          cancel: Optional[CancelToken] = None) -> NetworkFn:
    """Wrap a network (z, x_ae, level) -> out so it runs in blended ``tile``² tiles, ``batch`` at a time.

    ``tile`` must be a multiple of the network's input ``multiple``. Images no larger
    than a tile run whole (padded to the multiple). ``cancel`` is checked between
    batches, so a cancel takes effect before a step on a huge image finishes."""
    if tile < multiple or tile % multiple:
        raise SettingsError(f"tile size {tile} must be a positive multiple of {multiple}")
    if not 0 <= overlap < tile:
        raise SettingsError(f"tile overlap {overlap} must be in [0, {tile})")
    if batch < 1:
        raise SettingsError(f"tile batch {batch} must be at least 1")

    def run(z: torch.Tensor, x_ae: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        n, _, h, w = z.shape
        z, x_ae = pad_to_multiple(z, multiple), pad_to_multiple(x_ae, multiple)
        big_h, big_w = z.shape[-2:]
        if big_h <= tile and big_w <= tile:
            return fn(z, x_ae, level).float()[..., :h, :w]
        th, tw = min(tile, big_h), min(tile, big_w)
        window = blend_window(th, tw, overlap).to(z.device)
        out = torch.zeros(z.shape, device=z.device)
        weight = torch.zeros((big_h, big_w), device=z.device)
        spots = [(i, y, x) for i in range(n) for y in tile_starts(big_h, th, overlap)
                 for x in tile_starts(big_w, tw, overlap)]
        for b in range(0, len(spots), batch):
            check_cancel(cancel)
            chunk = spots[b:b + batch]
            zs = torch.stack([z[i, :, y:y + th, x:x + tw] for i, y, x in chunk])
            cs = torch.stack([x_ae[i, :, y:y + th, x:x + tw] for i, y, x in chunk])
            result = fn(zs, cs, level[[i for i, _, _ in chunk]]).float()
            for r, (i, y, x) in zip(result, chunk):
                out[i, :, y:y + th, x:x + tw] += r * window
                if i == 0:
                    weight[y:y + th, x:x + tw] += window
        return (out / weight)[..., :h, :w]

    return run
