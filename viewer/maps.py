"""Difference maps for display: per-pixel |a − b| shown in false colour.

The numbers are plain array arithmetic (no model maths): an error map compares a pane
with the original, on one fixed scale so the panes can be compared; the "invented
detail" map compares the refined pane with the autoencoder image (what the decoder
added without any bits), on a scale fitted to it, since it is usually much fainter."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg

ERROR_MAX = 32.0  # 8-bit levels shown as the brightest colour in error maps; larger errors saturate
SCALES = (2.0, 4.0, 8.0, 16.0, 32.0, 64.0)  # the scales an invented-detail map may take
_LUT = (pg.colormap.get("inferno").getLookupTable(0.0, 1.0, 256, alpha=False)).astype(np.uint8)


def abs_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean absolute difference over the colour channels, float32 H×W, in 8-bit levels."""
    return np.abs(a.astype(np.int16) - b.astype(np.int16)).mean(axis=2, dtype=np.float32)


def false_colour(values: np.ndarray, vmax: float = ERROR_MAX) -> np.ndarray:
    """Map values in [0, vmax] to the inferno palette: uint8 H×W×3."""
    index = np.clip(values * (255.0 / vmax), 0, 255).astype(np.uint8)
    return _LUT[index]


def fitted_scale(values: np.ndarray) -> float:
    """The smallest of SCALES that covers 99.5 % of the values (so a few outliers saturate)."""
    high = float(np.percentile(values, 99.5)) if values.size else 0.0
    return next((s for s in SCALES if s >= high), SCALES[-1])


def error_image(image: np.ndarray, original: np.ndarray) -> np.ndarray:
    return false_colour(abs_difference(image, original), ERROR_MAX)


def invented_image(refined: np.ndarray, autoencoder: np.ndarray) -> tuple[np.ndarray, float]:
    """The invented-detail map and the scale it is drawn on."""
    values = abs_difference(refined, autoencoder)
    scale = fitted_scale(values)
    return false_colour(values, scale), scale


def colour_bar(width: int, height: int) -> np.ndarray:
    """A horizontal legend strip of the palette, uint8 height×width×3."""
    ramp = np.linspace(0, 1, width, dtype=np.float32)
    return np.repeat(false_colour(ramp, 1.0)[None], height, axis=0)
