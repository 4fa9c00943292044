"""Tiles for the codec's transforms, so memory is bounded whatever the image size.

Every transform of the autoencoder is a stack of local convolutions: an output element depends
only on inputs within its receptive field. So a large grid is cut into tiles, each computed from
its own region plus a margin wider than that field and cropped back to the tile. Tiles line up
with every stride of the stack (they start on multiples of the coarsest grid), so each one sees
exactly the inputs the whole-grid computation would, and a tile that touches the grid's edge
sees the same zero padding there. What differs is only the order of floating-point sums inside
a convolution: the tests bound it.

Where a tile computation decides bits (the entropy model's scales), the encoder and the decoder
cut the same tiles from the same grid, so they compute the same numbers; an image that fits in
one tile is computed exactly as before tiling existed."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator


@dataclass(frozen=True)
class Span:
    """One tile along an axis: it owns [start, stop) and is computed from [lo, hi), the span
    widened by the margin and clipped to the grid."""

    start: int
    stop: int
    lo: int
    hi: int

    @property
    def inner(self) -> slice:
        """Where the owned part sits inside the computed region."""
        return slice(self.start - self.lo, self.stop - self.lo)

    def scaled(self, factor: int) -> "Span":
        """The same span on a grid ``factor`` times finer."""
        return Span(self.start * factor, self.stop * factor, self.lo * factor, self.hi * factor)


def spans(size: int, tile: int, margin: int) -> list[Span]:
    """Tiles of ``tile`` elements (the last one shorter) covering [0, size), each with ``margin``
    more on both sides where the grid has them. One span when ``size <= tile``."""
    if tile < 1 or margin < 0:
        raise ValueError(f"tile must be ≥ 1 and margin ≥ 0, got {tile}, {margin}")
    return [Span(start, min(start + tile, size), max(0, start - margin), min(size, start + tile + margin))
            for start in range(0, size, tile)]


def grid(height: int, width: int, tile: int, margin: int) -> Iterator[tuple[Span, Span]]:
    """(rows, columns) of every tile of a height × width grid, row by row."""
    columns = spans(width, tile, margin)
    for rows in spans(height, tile, margin):
        for cols in columns:
            yield rows, cols
