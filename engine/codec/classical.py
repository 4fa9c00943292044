"""Classical codecs (JPEG, WebP, AVIF through Pillow) at a chosen quality or a matched file size.

They are the "same number of bytes" reference that the app and the evaluation put next to the
learned codec. Every encoder uses 4:2:0 chroma subsampling, as deployed codecs do by default."""
from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image

from engine.errors import ImageError, SettingsError

Codec = Literal["jpeg", "webp", "avif"]
CODECS: tuple[str, ...] = ("jpeg", "webp", "avif")

# Usable quality range per codec (Pillow's JPEG tables degenerate above 95).
QUALITY_RANGE: dict[str, tuple[int, int]] = {"jpeg": (1, 95), "webp": (0, 100), "avif": (0, 100)}


@dataclass(frozen=True)
class ClassicalResult:
    """One classical encode: the file, its decode, and whether it had to exceed the target size."""

    codec: str
    quality: int
    data: bytes
    rgb: np.ndarray  # uint8 H×W×3, the decoded file
    over_target: bool = False  # even the lowest quality was larger than the target

    @property
    def nbytes(self) -> int:
        return len(self.data)

    @property
    def bpp(self) -> float:
        height, width = self.rgb.shape[:2]
        return self.nbytes * 8 / (height * width)


def _check_rgb(rgb: np.ndarray) -> None:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ImageError(f"expected a uint8 H×W×3 array, got {getattr(rgb, 'dtype', type(rgb))} "
                         f"{getattr(rgb, 'shape', '')}")


def _check_codec(codec: str) -> tuple[int, int]:
    if codec not in QUALITY_RANGE:
        raise SettingsError(f"unknown classical codec {codec!r}; choose one of {', '.join(QUALITY_RANGE)}")
    return QUALITY_RANGE[codec]


def encode_classical(rgb: np.ndarray, codec: Codec, quality: int) -> bytes:
    """Encode ``rgb`` with a classical codec at a quality inside ``QUALITY_RANGE[codec]``."""
    _check_rgb(rgb)
    low, high = _check_codec(codec)
    if not low <= quality <= high:
        raise SettingsError(f"{codec} quality {quality} is outside {low}..{high}")
    image = Image.fromarray(rgb, "RGB")
    buffer = io.BytesIO()
    if codec == "jpeg":
        image.save(buffer, "JPEG", quality=int(quality), subsampling=2, optimize=True)
    elif codec == "webp":
        image.save(buffer, "WEBP", quality=int(quality), method=4)  # lossy WebP is always 4:2:0
    else:
        image.save(buffer, "AVIF", quality=int(quality), subsampling="4:2:0", speed=6)
    return buffer.getvalue()


def decode_classical(data: bytes) -> np.ndarray:
    """Decode a JPEG, WebP or AVIF file to a uint8 H×W×3 RGB array."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB")).copy()
    except (OSError, ValueError) as exc:
        raise ImageError(f"cannot decode classical image: {exc}") from exc


def match_size(rgb: np.ndarray, codec: Codec, target_bytes: int) -> ClassicalResult:
    """The highest-quality ``codec`` file of at most ``target_bytes`` bytes.

    Binary search over the quality, assuming size grows with quality (true up to small
    wiggles for all three codecs). When even the lowest quality is larger than the target,
    that smallest file is returned with ``over_target=True``."""
    low, high = _check_codec(codec)
    if target_bytes <= 0:
        raise SettingsError(f"target size must be positive, got {target_bytes} bytes")
    sizes: dict[int, bytes] = {}

    def encoded(quality: int) -> bytes:
        if quality not in sizes:
            sizes[quality] = encode_classical(rgb, codec, quality)
        return sizes[quality]

    if len(encoded(low)) > target_bytes:
        best, over = low, True
    else:
        best, over = low, False  # invariant: ``best`` fits
        lo, hi = low + 1, high
        while lo <= hi:
            mid = (lo + hi) // 2
            if len(encoded(mid)) <= target_bytes:
                best, lo = mid, mid + 1
            else:
                hi = mid - 1
    data = encoded(best)
    return ClassicalResult(codec=codec, quality=best, data=data, rgb=decode_classical(data), over_target=over)
