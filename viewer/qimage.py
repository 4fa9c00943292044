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
