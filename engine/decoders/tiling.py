"""Run a post-filter or a whole sampler over an image of any size, one overlapping tile at a time.

Memory is bounded by one tile's work whatever the image size: the inputs and the output stay
uint8, and each tile is made float, decoded to the end (every sampler step) and composited into
the output before the next one starts. A tile's border, where its convolutions saw padding and
its GroupNorm other statistics than its neighbour's, is cross-faded into the tiles decoded before
it: raster order means only the tiles above and to the left are finished, so each new tile fades
in over them across their overlap (``composite``). Overlap, not an alternating grid offset,
because the decoders run 1–4 steps, too few for offsets to average seams away.

An image no larger than one tile is decoded whole, exactly as without tiling. Tiles are cut and
seeded the same way on every device, so a seed gives the same decode on any of them."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

# 768² tiles, overlapping by 96 px: a 768×512 photo is one tile; a 12 MP photo 30, about 1.3×
# the whole-image work (512² tiles cost 1.4× already at 768×512).
DEFAULT_TILE = 768
DEFAULT_OVERLAP = 96


@dataclass(frozen=True)
class Tile:
    """One tile: its pixels [top, bottom) × [left, right), its place in raster order, and the
    finished tiles it overlaps (the one above and the one to its left, if any)."""

    index: int
    top: int
    left: int
    bottom: int
    right: int
    overlap_top: int  # rows shared with the tile above (0 at the top of the image)
    overlap_left: int  # columns shared with the tile to the left

    @property
    def rows(self) -> slice:
        return slice(self.top, self.bottom)

    @property
    def cols(self) -> slice:
        return slice(self.left, self.right)


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles covering [0, size), spread evenly, neighbours overlapping ≥ ``overlap``."""
    if size <= tile:
        return [0]
    count = math.ceil((size - overlap) / (tile - overlap))
    return [round(i * (size - tile) / (count - 1)) for i in range(count)]


def plan(height: int, width: int, tile: int = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP) -> list[Tile]:
    """The tiles of a height × width image in raster order."""
    if not 0 <= overlap < tile:
        raise ValueError(f"tile overlap {overlap} must be in [0, {tile})")
    rows, cols = tile_starts(height, tile, overlap), tile_starts(width, tile, overlap)
    th, tw = min(tile, height), min(tile, width)
    tiles = []
    for i, top in enumerate(rows):
        for j, left in enumerate(cols):
            above = rows[i - 1] + th - top if i else 0
            before = cols[j - 1] + tw - left if j else 0
            tiles.append(Tile(len(tiles), top, left, top + th, left + tw, above, before))
    return tiles


def _fade_in(n: int, overlap: int) -> np.ndarray:
    """Weights of the new tile along one axis: 0 over the first quarter of the overlap (where its
    convolutions saw padding), a linear ramp over the middle half, 1 from there on."""
    weights = np.ones(n, dtype=np.float32)
    if overlap:
        margin, fade = overlap // 4, max(1, overlap - 2 * (overlap // 4))
        d = np.arange(n, dtype=np.float32) + 0.5
        weights = np.clip((d - margin) / fade, 0.0, 1.0)
    return weights


def composite(out: np.ndarray, tile: Tile, rgb: np.ndarray) -> None:
    """Write a decoded tile (uint8 h×w×3) into ``out`` (uint8 H×W×3), faded in over the finished
    tiles above and to the left across their overlap."""
    if not (tile.overlap_top or tile.overlap_left):
        out[tile.rows, tile.cols] = rgb
        return
    h, w = rgb.shape[:2]
    alpha = _fade_in(h, tile.overlap_top)[:, None] * _fade_in(w, tile.overlap_left)[None, :]
    old = out[tile.rows, tile.cols].astype(np.float32)
    out[tile.rows, tile.cols] = np.rint(old + alpha[..., None] * (rgb.astype(np.float32) - old)).astype(np.uint8)


def crop_tensor(image: np.ndarray, tile: Tile, device: torch.device) -> torch.Tensor:
    """The tile of a uint8 H×W×3 image as a float 1×3×h×w tensor in [0, 1] on ``device``."""
    part = np.ascontiguousarray(image[tile.rows, tile.cols])
    return torch.from_numpy(part).to(device).permute(2, 0, 1)[None].float().div_(255)


def to_uint8_image(x: torch.Tensor) -> np.ndarray:
    """1×3×H×W in [0, 1] → H×W×3 uint8 (rounded)."""
    return (x[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad the bottom and right of ``x`` to multiples of ``multiple``: reflect, or replicate where the image is too small to reflect."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def tile_seed(seed: int, tile: Tile, count: int) -> int:
    """The seed of one tile's noise: the decode's own for a one-tile image, else one drawn from
    (seed, tile index), so neighbouring tiles do not repeat each other's noise."""
    if count == 1:
        return seed
    return int(np.random.SeedSequence([seed, tile.index]).generate_state(1, dtype=np.uint64)[0] >> 1)
