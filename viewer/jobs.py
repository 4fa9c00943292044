"""The messages that travel between the window and the engine worker: plain data, no Qt."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

# ST-LPIPS after every step is scored on this centre window: 0.1 s on a 2-core CPU, against
# 0.9 s for a whole 768×512 frame (the table shows the whole-frame score when the decode ends).
STEP_PERCEPTUAL_CROP = 256

from engine.api import DecodeSettings

# Pane names in display order; number keys 1-4 follow this order.
PANES: tuple[str, ...] = ("original", "ae", "refined", "classical")
CODECS: tuple[str, ...] = ("jpeg", "webp", "avif")
CODEC_LABELS = {"jpeg": "JPEG", "webp": "WebP", "avif": "AVIF"}


@dataclass(frozen=True)
class OpenedImage:
    """An image the worker has read from disk; ``key`` identifies it in every later request."""

    key: int
    path: Path
    rgb: np.ndarray
    file_bytes: int
    had_alpha: bool


@dataclass(frozen=True)
class DecodeRequest:
    """Everything one live decode needs; only the newest request is ever run."""

    request_id: int
    image_key: int
    rgb: np.ndarray
    bpp: float
    settings: DecodeSettings
    codec: str
    optimise_steps: int = 0  # encoder-side latent optimisation (0: off)


@dataclass(frozen=True)
class RateRequest:
    """A rate sweep of the current image: autoencoder and classical codec at each target bpp."""

    request_id: int
    image_key: int
    rgb: np.ndarray
    codec: str
    bpps: tuple[float, ...]


@dataclass(frozen=True)
class PaneStats:
    """Numbers shown for one pane; None means "not measured (yet)"."""

    nbytes: Optional[int] = None
    bpp: Optional[float] = None
    psnr: Optional[float] = None
    ms_ssim: Optional[float] = None
    perceptual: Optional[float] = None
    note: str = ""  # e.g. the classical codec's quality setting
    complete: bool = False  # the slow metrics were tried: a None among them means "not available"


@dataclass(frozen=True)
class StepReport:
    """One finished sampler step as the window sees it."""

    index: int
    total: int
    elapsed_s: float
    estimate: np.ndarray
    psnr: float
    perceptual: Optional[float] = None  # ST-LPIPS of the centre crop (STEP_PERCEPTUAL_CROP), if available


@dataclass(frozen=True)
class RatePoint:
    """One point of the rate plot: what the autoencoder and the classical codec reach at a size."""

    target_bpp: float
    ae_bpp: float
    ae_psnr: float
    classical_bpp: float
    classical_psnr: float
