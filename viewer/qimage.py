"""Conversions between uint8 RGB numpy arrays and QImage/QPixmap."""
from __future__ import annotations

import numpy as np
from PySide6.QtGui import QImage, QPixmap


def to_qimage(rgb: np.ndarray) -> QImage:
    """A QImage that owns a copy of the pixels of an H×W×3 uint8 array."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w = rgb.shape[:2]
    return QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def to_pixmap(rgb: np.ndarray) -> QPixmap:
    return QPixmap.fromImage(to_qimage(rgb))


def from_qimage(image: QImage) -> np.ndarray:
    """The RGB pixels of any QImage as an H×W×3 uint8 array."""
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    h, w = image.height(), image.width()
    buf = np.frombuffer(image.constBits(), dtype=np.uint8, count=image.bytesPerLine() * h)
    return buf.reshape(h, image.bytesPerLine())[:, : 3 * w].reshape(h, w, 3).copy()


def fit_for_display(rgb: np.ndarray, max_width: int, max_height: int) -> np.ndarray:
    """``rgb`` shrunk by a whole factor (every n-th pixel) until it fits max_width × max_height:
    enough for a picture painted smaller than its pixels anyway, and cheap on a 12 MP photo."""
    h, w = rgb.shape[:2]
    factor = max(1, -(-w // max(1, max_width)), -(-h // max(1, max_height)))
    return rgb if factor == 1 else np.ascontiguousarray(rgb[::factor, ::factor])
