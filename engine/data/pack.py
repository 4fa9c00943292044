"""`hfd data pack`: turn fetched photos into a compact training pack with a fixed split.

Every source photo is already lossy, so each is downscaled by at least 2× (area reduction, then
Lanczos), which averages the source's block artefacts away, and re-encoded as a 4:4:4 JPEG at
high quality. Photos go to DST/train or DST/val by a hash of the file name (the same rule as
engine.dataset), so a photo never contributes to both; the held-out photos of SRC/test (from
another package, see data_fetch) go to DST/test, which training never reads; licences are
copied along. A marker file says what was done, so training uses a pack's photos at their
packed size rather than downscaling them a second time (``training_downscale``)."""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from PIL import Image, ImageOps

from engine.data.photos import is_validation, list_images
from engine.errors import HfdError, SettingsError

MIN_DOWNSCALE = 2.0
MARKER = "pack.json"


@dataclass(frozen=True)
class PackReport:
    train: int
    val: int
    test: int
    nbytes: int


def packed_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """Size after shrinking by at least 2× and until the longer side fits ``max_side``."""
    scale = min(1 / MIN_DOWNSCALE, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def pack_photo(source: Path, destination: Path, max_side: int, quality: int) -> None:
    with Image.open(source) as image:
        image = ImageOps.exif_transpose(image).convert("RGB")
        # reducing_gap: box-filter down to within 2× of the target first (exact area averaging),
        # then Lanczos for the rest.
        small = image.resize(packed_size(*image.size, max_side), Image.LANCZOS, reducing_gap=2.0)
    small.save(destination, "JPEG", quality=quality, subsampling=0, optimize=True)


def pack_photos(src: str | Path, dst: str | Path, max_side: int = 768, quality: int = 95,
                val_fraction: float = 0.1, log: Callable[[str], None] = print) -> PackReport:
    """Pack the photos of ``src`` (or of ``src/train`` when it exists) into ``dst/train`` and
    ``dst/val``, and those of ``src/test`` into ``dst/test``. Re-running overwrites with identical
    results."""
    if max_side < 64:
        raise SettingsError(f"--max-side must be at least 64 px, got {max_side}")
    if not 50 <= quality <= 100:
        raise SettingsError(f"pack quality must be within 50..100, got {quality}")
    src, dst = Path(src), Path(dst)
    photos = list_images(src / "train" if (src / "train").is_dir() else src)
    if not photos:
        raise HfdError(f"no images found in {src}")
    held_out = list_images(src / "test") if (src / "test").is_dir() else []
    for group in (photos, held_out):
        stems = [p.stem for p in group]
        duplicates = sorted({s for s in stems if stems.count(s) > 1})
        if duplicates:
            raise HfdError(f"photos would collide after packing (same name, other suffix): {', '.join(duplicates[:3])}")
    assignments = [("val" if is_validation(p, val_fraction) else "train", p) for p in photos]
    assignments += [("test", p) for p in held_out]
    counts = {"train": 0, "val": 0, "test": 0}
    for split in counts:
        if split != "test" or held_out:
            (dst / split).mkdir(parents=True, exist_ok=True)
    for split, photo in assignments:
        pack_photo(photo, dst / split / f"{photo.stem}.jpg", max_side, quality)
        counts[split] += 1
    if (src / "licenses").is_dir():
        shutil.copytree(src / "licenses", dst / "licenses", dirs_exist_ok=True)
    (dst / MARKER).write_text(json.dumps({"min_downscale": MIN_DOWNSCALE, "max_side": max_side, "quality": quality,
                                          "val_fraction": val_fraction}, indent=1) + "\n")
    nbytes = sum(p.stat().st_size for split in counts for p in (dst / split).glob("*.jpg"))
    test = f" + {counts['test']} test" if held_out else ""
    log(f"packed {counts['train']} train + {counts['val']} val{test} photos, {nbytes / 2**20:.1f} MiB, into {dst}")
    return PackReport(counts["train"], counts["val"], counts["test"], nbytes)


def is_pack(folder: str | Path) -> bool:
    """Whether ``folder`` was written by ``pack_photos`` (its marker is there)."""
    return (Path(folder) / MARKER).is_file()


def training_downscale(folder: str | Path) -> float:
    """The downscale training applies by default to the photos of ``folder``: none for a pack, whose
    photos are already ≥2× downscaled (a second 2× would train on textures half the size of those the
    codec sees at the pack's resolution), MIN_DOWNSCALE for any other folder of lossy photos."""
    return 1.0 if is_pack(folder) else MIN_DOWNSCALE
