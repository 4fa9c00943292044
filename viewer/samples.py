"""The sample photos shipped in assets/samples/ (listed in the Samples menu)."""
from __future__ import annotations

from pathlib import Path

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "assets" / "samples"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".ppm", ".avif")


def sample_paths(folder: Path = SAMPLES_DIR) -> list[Path]:
    """Image files in ``folder``, sorted by name; empty if the folder is missing."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
