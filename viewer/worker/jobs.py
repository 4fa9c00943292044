"""The messages that travel between the window and the engine worker: plain data, no Qt."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from engine.api import DecodeSettings

# Pane names in display order; number keys 1-4 follow this order.
PANES: tuple[str, ...] = ("original", "ae", "refined", "classical")
CODECS: tuple[str, ...] = ("jpeg", "webp", "avif")
CODEC_LABELS = {"jpeg": "JPEG", "webp": "WebP", "avif": "AVIF"}
# ST-LPIPS after every step is scored on this centre window: 0.1 s on a 2-core CPU, against
# 0.9 s for a whole 768×512 frame (the table shows the full score when the decode ends).
STEP_PERCEPTUAL_CROP = 256


@dataclass(frozen=True)
class OpenedImage:
    """What the worker read from disk; ``key`` identifies it in every later request. A photo has
    ``rgb``; a .hfd file has ``hfd`` (its bytes) and no original, ``rgb`` None."""

    key: int
    path: Path
    rgb: Optional[np.ndarray]
    file_bytes: int
    had_alpha: bool
    width: int
    height: int
    hfd: Optional[bytes] = None


@dataclass(frozen=True)
class DecodeRequest:
    """Everything one live decode needs; only the newest request is ever run. With ``hfd`` the
    file is decoded as it is (no original, no bitrate, no classical codec to match)."""

    request_id: int
    image_key: int
    rgb: Optional[np.ndarray]
    bpp: float
    settings: DecodeSettings
    codec: str
    optimise_steps: int = 0  # encoder-side latent optimisation (0: off)
    hfd: Optional[bytes] = None


@dataclass(frozen=True)
class ClassicalRequest:
    """The classical pane alone (another "Compare with" codec for the same .hfd file)."""

    request_id: int
    image_key: int
    rgb: np.ndarray
    codec: str
    nbytes: int


@dataclass(frozen=True)
class RateRequest:
    """A rate sweep of the current image: autoencoder and classical codec at each target bpp."""

    request_id: int
    image_key: int
    rgb: np.ndarray
    codec: str
    bpps: tuple[float, ...]


@dataclass(frozen=True)
class MapRequest:
    """False-colour difference maps: for each pane, |a − b| of two images (on the map's scale)."""

    request_id: int
    pairs: tuple[tuple[str, np.ndarray, np.ndarray], ...]  # (pane, a, b); pane "original": invented detail


@dataclass(frozen=True)
class ExportRequest:
    """Write a file: a PNG of one image, the .hfd bytes, or a side-by-side sheet of captioned images."""

    path: Path
    image: Optional[np.ndarray] = None
    data: Optional[bytes] = None
    panels: tuple[tuple[str, np.ndarray], ...] = ()


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
    windows: int = 0  # MS-SSIM and ST-LPIPS on this many fixed crops (0: the whole image)


@dataclass(frozen=True)
class ClassicalPane:
    """What the classical pane shows: which codec, its file size and whether it could match."""

    codec: str
    nbytes: int
    quality: int
    over_target: bool  # even its smallest file is larger than the .hfd file
    target_bytes: int = 0  # the size of the .hfd file it was matched to


@dataclass(frozen=True)
class StepReport:
    """One finished sampler step as the window sees it (of one tile, for a decode in tiles)."""

    index: int
    total: int
    elapsed_s: float
    estimate: np.ndarray
    psnr: Optional[float]
    perceptual: Optional[float] = None  # ST-LPIPS of the centre crop (STEP_PERCEPTUAL_CROP), if measured
    tiles: int = 1  # how many tiles the decode runs in


@dataclass(frozen=True)
class RatePoint:
    """One point of the rate plot: what the autoencoder and the classical codec reach at a size."""

    target_bpp: float
    ae_bpp: float
    ae_psnr: float
    classical_bpp: float
    classical_psnr: float
