"""What an operation on an image will need in memory, checked before it allocates anything large.

Every stage works in tiles (engine/codec/tiles.py, engine/decoders/tiling.py), so what grows with
the image is a few arrays per pixel: the uint8 image itself, the latent grids (160 values per
16×16 pixels: fp32 symbols, means and ŷ, a uint8 table index) and the uint8 results. The
estimate is those bytes per pixel plus one tile's working set, measured on photos
(benchmarks/results/large-images.md); the budget is the memory the system reports available,
or $HFD_MEMORY_LIMIT (e.g. "4G") where that is lower. A refusal says what it would need."""
from __future__ import annotations

import os
from pathlib import Path

from engine.errors import HfdError

GIB = 2 ** 30
# Bytes per image pixel each operation holds at its peak, beyond the loaded models, and one tile's
# working set (the largest of g_a/g_s on 768² pixels, the float64 entropy model on 1024² pixels
# and a 768² decoder tile). Measured at 12 and 48 MP, compress grows by about 11 bytes a pixel and
# decode by about 13. Encoder-side latent optimisation is the exception: it back-propagates
# through the whole image at once.
BYTES_PER_PIXEL = {"compress": 16, "decode": 16, "refine": 12, "optimise": 600}
TILE_WORKING_SET = 1.0 * GIB
WHAT = {"compress": "compressing", "decode": "decoding", "refine": "refining",
        "optimise": "optimising the latents of"}


class MemoryBudgetError(HfdError):
    """An operation would need more memory than the machine has available."""


def parse_size(text: str) -> int:
    """'4G', '512M', '2.5G' or a number of bytes."""
    text = text.strip().upper().removesuffix("B")
    scale = {"K": 2 ** 10, "M": 2 ** 20, "G": GIB, "T": 2 ** 40}.get(text[-1:], 1)
    number = text[:-1] if scale != 1 else text
    try:
        return int(float(number) * scale)
    except ValueError:
        raise HfdError(f"HFD_MEMORY_LIMIT must be a size such as 4G or 512M, got {text!r}") from None


def available() -> int:
    """Bytes this process may still use: MemAvailable of /proc/meminfo (else free physical pages),
    capped by $HFD_MEMORY_LIMIT."""
    found = None
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found = int(line.split()[1]) * 1024
    if found is None:
        try:
            found = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            found = 2 ** 62  # no way to know: do not refuse
    limit = os.environ.get("HFD_MEMORY_LIMIT")
    return min(found, parse_size(limit)) if limit else found


def needed(operation: str, height: int, width: int) -> int:
    """Estimated peak bytes of ``operation`` ("compress", "decode", "refine") on a height × width image."""
    return int(BYTES_PER_PIXEL[operation] * height * width + TILE_WORKING_SET)


def require(operation: str, height: int, width: int) -> None:
    """Raise MemoryBudgetError, naming both figures, if ``operation`` would not fit."""
    need, have = needed(operation, height, width), available()
    if need > have:
        raise MemoryBudgetError(f"{WHAT[operation]} a {width}×{height} image needs about {need / GIB:.1f} GiB of "
                                f"memory; {have / GIB:.1f} GiB are available")
