"""Difference maps for display: per-pixel |a − b| shown in false colour.

The numbers are plain array arithmetic (no model maths): an error map compares a pane
with the original; the "invented detail" map compares the refined pane with the
autoencoder image, i.e. what the decoder added without any bits."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg

MAP_MAX = 48.0  # 8-bit levels mapped to the brightest colour; larger differences saturate
_LUT = (pg.colormap.get("inferno").getLookupTable(0.0, 1.0, 256, alpha=False)).astype(np.uint8)


def abs_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean absolute difference over the colour channels, float32 H×W, in 8-bit levels."""
    return np.abs(a.astype(np.int16) - b.astype(np.int16)).mean(axis=2, dtype=np.float32)


def false_colour(values: np.ndarray, vmax: float = MAP_MAX) -> np.ndarray:
    """Map values in [0, vmax] to the inferno palette: uint8 H×W×3."""
    index = np.clip(values * (255.0 / vmax), 0, 255).astype(np.uint8)
    return _LUT[index]


def difference_image(a: np.ndarray, b: np.ndarray, vmax: float = MAP_MAX) -> np.ndarray:
    return false_colour(abs_difference(a, b), vmax)


def colour_bar(width: int, height: int) -> np.ndarray:
    """A horizontal legend strip of the palette, uint8 height×width×3."""
    ramp = np.linspace(0, MAP_MAX, width, dtype=np.float32)
    return np.repeat(false_colour(ramp)[None], height, axis=0)
