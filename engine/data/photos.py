"""Training photos: loading, the ≥2× downscale every lossy source needs, a fixed split by
photo, and random crops with flips.

A folder with ``train/`` and ``val/`` subfolders is used as split; the photos of a ``train/``
alone, or of any other folder, are split by a hash of each file name, so crops of one photo
never land in both."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from PIL import Image, ImageOps

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".ppm"}


def list_images(folder: str | Path) -> list[Path]:
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def is_validation(path: Path, fraction: float = 0.1) -> bool:
    digest = hashlib.sha256(path.name.encode()).digest()
    return int.from_bytes(digest[:4], "big") < fraction * 2 ** 32


def split_photos(folder: str | Path, val_fraction: float = 0.1) -> tuple[list[Path], list[Path]]:
    """(training, validation) photos. Only ``train/`` and ``val/`` are read where ``train/`` exists,
    so a held-out ``test/`` beside them (``hfd data fetch``, ``hfd data pack``) is never trained on."""
    folder = Path(folder)
    if (folder / "train").is_dir() and (folder / "val").is_dir():
        return list_images(folder / "train"), list_images(folder / "val")
    photos = list_images(folder / "train" if (folder / "train").is_dir() else folder)
    val = [p for p in photos if is_validation(p, val_fraction)]
    return [p for p in photos if not is_validation(p, val_fraction)], val


def load_downscaled(path: Path, factor: float, min_side: int) -> np.ndarray:
    """RGB uint8, EXIF-oriented, Lanczos-downscaled by ``factor`` (never below ``min_side``)."""
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im).convert("RGB")
        w, h = im.size
        f = min(factor, min(w, h) / min_side) if min(w, h) / factor < min_side else factor
        if f > 1:
            im = im.resize((round(w / f), round(h / f)), Image.LANCZOS)
        return np.asarray(im, dtype=np.uint8).copy()


@dataclass
class PhotoSet:
    """Photos held in memory as uint8 arrays, after the downscale."""

    images: list[np.ndarray]
    paths: list[Path]

    @classmethod
    def load(cls, paths: list[Path], downscale: float = 2.0, min_side: int = 256) -> "PhotoSet":
        images = [load_downscaled(p, downscale, min_side) for p in paths]
        return cls(images, list(paths))

    def crops(self, size: int, batch: int, seed: int, min_scale: float = 1.0) -> Iterator[torch.Tensor]:
        """Endless batches (N,3,size,size) in [0,1]: random photo, random crop, random flip.

        ``min_scale`` < 1 also shrinks each crop by a random factor in [min_scale, 1] (a region of
        size/scale px, Lanczos-resampled to size): the same scene at other distances, which keeps
        a discriminator from memorising ~200 photos. Never enlarged: that would invent blur."""
        if not 0 < min_scale <= 1:
            raise ValueError(f"min_scale must be in (0, 1], got {min_scale}")
        rng = np.random.default_rng(seed)
        usable = [im for im in self.images if min(im.shape[:2]) >= size]
        if not usable:
            raise ValueError(f"no photo is at least {size}px on its short side")
        while True:
            out = np.empty((batch, size, size, 3), dtype=np.uint8)
            for i in range(batch):
                im = usable[rng.integers(len(usable))]
                scale = rng.uniform(min_scale, 1.0) if min_scale < 1 else 1.0
                side = min(round(size / scale), *im.shape[:2])
                y = rng.integers(im.shape[0] - side + 1)
                x = rng.integers(im.shape[1] - side + 1)
                crop = im[y:y + side, x:x + side]
                if side != size:
                    crop = np.asarray(Image.fromarray(crop).resize((size, size), Image.LANCZOS))
                out[i] = crop[:, ::-1] if rng.random() < 0.5 else crop
            yield torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(255)
