"""Images in and out of the engine: any Pillow-readable file becomes an sRGB uint8 H×W×3
array, and results are written back as PNG without ever leaving a half-written file.

Transparent images are composited over white: pixels the source left transparent come
out white, and partly transparent ones are blended with white by their alpha."""
from __future__ import annotations

import io
import os
import secrets
import warnings
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

try:
    from PIL import ImageCms
except ImportError:  # Pillow built without littlecms: colour profiles are then ignored
    ImageCms = None

from engine.errors import HfdError, ImageError

# The largest image the codec takes in and the largest a .hfd header may name (one limit for both):
# a medium-format photo (~150 MP) fits; whether the machine has the memory is checked apart.
MAX_PIXELS = 1 << 28
# Pillow's own guard against decompression bombs warns above MAX_IMAGE_PIXELS and refuses twice
# that; its default (89 MP) would refuse photos this codec takes, so it is raised to the codec's
# limit. load_image checks MAX_PIXELS (or its caller's limit) itself, before any pixel is decoded.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS

# 16-bit grayscale modes. "I" (32-bit) is how Pillow holds 16-bit gray from some formats,
# so it is scaled as 16-bit too.
_GRAY16_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}


class Colour(str, Enum):
    """What the source image was: colour, or gray (every pixel neutral, R = G = B)."""

    RGB = "rgb"
    GRAY = "gray"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class LoadedImage:
    """A decoded input: ``rgb`` is uint8 H×W×3, C-contiguous and writable, in sRGB where a
    profile allowed it."""

    rgb: np.ndarray
    colour: Colour
    had_alpha: bool


def load_image(source: str | Path | bytes, max_pixels: int = MAX_PIXELS) -> LoadedImage:
    """Decode a file path or the bytes of a file into an sRGB uint8 RGB array.

    EXIF orientation is applied. Grayscale becomes three equal channels; 16-bit and float
    samples are scaled to 8 bits (float data is taken as 0..1, or as 0..255 when it exceeds
    1; Pillow itself keeps the high byte of 16-bit colour PNGs). Palette, CMYK and other
    modes are converted to RGB. Alpha is composited over white. An embedded ICC profile is
    converted to sRGB when Pillow has littlecms; without it, or when the profile cannot be
    used, the values are kept as stored. Multi-frame files give their first frame.
    ``colour`` is gray when every resulting pixel is neutral (R = G = B): every grayscale
    source, and colour files that hold a gray picture.

    Raises ImageError (one line) for a missing, empty, unreadable, truncated, zero-size or
    over-``max_pixels`` image; the pixel limit is checked before any pixel is decoded."""
    name, stream = _open_source(source)
    # Pillow's format plugins signal a malformed file with many exception types (OSError,
    # SyntaxError, struct.error, IndexError, ...): around its calls, any Exception means
    # the file cannot be decoded.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the check below decides
            image = Image.open(stream)
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{name} is too large: over twice the {MAX_PIXELS / 1e6:.1f}-megapixel limit") from exc
    except UnidentifiedImageError as exc:
        raise ImageError(f"{name} is not an image, or its format is not supported") from exc
    except Exception as exc:
        raise ImageError(f"cannot read {name}: {_one_line(exc)}") from exc
    with image:
        _check_size(name, image.size, max_pixels)
        icc = image.info.get("icc_profile")
        try:
            image.load()
            image = ImageOps.exif_transpose(image)
        except MemoryError as exc:
            raise ImageError(f"{name} does not fit in memory") from exc
        except Exception as exc:
            raise ImageError(f"cannot decode {name} (truncated or corrupt): {_one_line(exc)}") from exc
    base, alpha = _to_8bit(image)
    rgb = _replicate_gray(np.asarray(_to_srgb(base, icc)))
    if alpha is not None:
        rgb = _over_white(rgb, alpha)
    colour = Colour.GRAY if _is_neutral(rgb) else Colour.RGB
    return LoadedImage(np.require(rgb, np.uint8, ["C_CONTIGUOUS", "WRITEABLE"]), colour, alpha is not None)


def save_png(path: str | Path, rgb: np.ndarray, colour: Colour | str = Colour.RGB, fast: bool = False) -> None:
    """Write ``rgb`` (uint8 H×W×3) as a PNG, atomically. ``colour="gray"`` writes a one-channel
    PNG holding the rounded mean of the three channels. ``fast``: the lightest compression (a 12 MP
    photo in about a second instead of many; the file is larger)."""
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or 0 in rgb.shape:
        raise ValueError(f"save_png expects a non-empty uint8 H×W×3 array, got {rgb.dtype} {rgb.shape}")
    if Colour(colour) is Colour.GRAY:
        image = Image.fromarray(np.rint(rgb.mean(axis=2)).astype(np.uint8), "L")
    else:
        image = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1 if fast else 6)
    atomic_write_bytes(path, buffer.getvalue())


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that the path holds either its old state or all of ``data``:
    write a temporary file in the same folder, flush it to disk, then rename it over the path."""
    path = Path(path)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        # os.open with 0o666 lets the umask set the final permissions, as for a plain open()
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temp, path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise HfdError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _open_source(source: str | Path | bytes) -> tuple[str, io.BytesIO | Path]:
    """Return a display name and something Image.open reads, after the cheap file checks."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise ImageError("image data is empty (0 bytes)")
        return "image data", io.BytesIO(bytes(source))
    path = Path(source)
    if not path.exists():
        raise ImageError(f"image not found: {path}")
    if not path.is_file():
        raise ImageError(f"{path} is not a file")
    if path.stat().st_size == 0:
        raise ImageError(f"{path} is empty (0 bytes)")
    return str(path), path


def _check_size(name: str, size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageError(f"{name} has a zero dimension ({width}×{height})")
    if width * height > max_pixels:
        raise ImageError(f"{name} is too large: {width}×{height} = {width * height / 1e6:.1f} megapixels, "
                         f"limit {max_pixels / 1e6:.1f}")


def _to_8bit(image: Image.Image) -> tuple[Image.Image, np.ndarray | None]:
    """Reduce any mode to 8-bit L, RGB or CMYK, with alpha (uint8 H×W) split off."""
    mode = image.mode
    if mode in _GRAY16_MODES:
        return _gray_from_float(np.asarray(image).astype(np.float32) / 65535.0), None
    if mode == "F":
        values = np.nan_to_num(np.asarray(image, dtype=np.float32))
        scale = 255.0 if values.max(initial=0.0) > 1.0 else 1.0
        return _gray_from_float(values / scale), None
    if mode in ("L", "RGB", "CMYK"):
        return image, None
    if mode in ("LA", "La"):
        image = image.convert("LA")  # La is premultiplied; LA has straight alpha
        return image.getchannel("L"), np.asarray(image.getchannel("A"))
    has_alpha = mode in ("RGBA", "RGBa", "PA") or (mode == "P" and "transparency" in image.info)
    if has_alpha:
        rgba = image.convert("RGBA")
        return rgba.convert("RGB"), np.asarray(rgba.getchannel("A"))
    if mode == "1":
        return image.convert("L"), None
    return image.convert("RGB"), None  # RGBX, YCbCr, HSV, LAB, P without transparency


def _gray_from_float(unit: np.ndarray) -> Image.Image:
    return Image.fromarray(np.rint(np.clip(unit, 0.0, 1.0) * 255.0).astype(np.uint8), "L")


def _to_srgb(image: Image.Image, icc: bytes | None) -> Image.Image:
    """Convert an 8-bit L/RGB/CMYK image to sRGB through its profile (L stays L)."""
    if icc and ImageCms is not None:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            if "srgb" in ImageCms.getProfileDescription(source).lower():
                return image if image.mode != "CMYK" else image.convert("RGB")
            converted = ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"),
                                                  outputMode="RGB")
            if image.mode == "L":  # keep gray sources exactly neutral
                return _gray_from_float(np.asarray(converted, dtype=np.float32).mean(axis=2) / 255.0)
            return converted
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            pass  # unusable or mismatched profile: keep the stored values
    return image if image.mode in ("L", "RGB") else image.convert("RGB")


def _replicate_gray(array: np.ndarray) -> np.ndarray:
    return np.repeat(array[:, :, None], 3, axis=2) if array.ndim == 2 else array


def _over_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha.astype(np.float32)[:, :, None] / 255.0
    return np.rint(rgb.astype(np.float32) * a + 255.0 * (1.0 - a)).astype(np.uint8)


def _is_neutral(rgb: np.ndarray) -> bool:
    return bool(np.array_equal(rgb[:, :, 0], rgb[:, :, 1]) and np.array_equal(rgb[:, :, 1], rgb[:, :, 2]))


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
