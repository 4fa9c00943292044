"""Writing what the window shows to files: a pane as PNG, and a labelled side-by-side sheet."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPainter

from viewer.qimage import to_qimage

CAPTION_PX = 28
GAP_PX = 8


def save_png(rgb: np.ndarray, path: str | Path) -> None:
    if not to_qimage(rgb).save(str(path), "PNG"):
        raise OSError(f"could not write {path}")


def compose_comparison(panels: Sequence[tuple[str, np.ndarray]], columns: int = 2) -> QImage:
    """Images in a grid, each with its caption above it, on a dark sheet."""
    h, w = panels[0][1].shape[:2]
    rows = (len(panels) + columns - 1) // columns
    cols = min(columns, len(panels))
    sheet = QImage(cols * w + (cols + 1) * GAP_PX, rows * (h + CAPTION_PX) + (rows + 1) * GAP_PX,
                   QImage.Format.Format_RGB888)
    sheet.fill(QColor(24, 24, 24))
    painter = QPainter(sheet)
    font = QFont()
    font.setPixelSize(int(CAPTION_PX * 0.6))
    painter.setFont(font)
    painter.setPen(QColor(235, 235, 235))
    for i, (caption, rgb) in enumerate(panels):
        row, col = divmod(i, columns)
        x = GAP_PX + col * (w + GAP_PX)
        y = GAP_PX + row * (h + CAPTION_PX + GAP_PX)
        painter.drawText(QRect(x, y, w, CAPTION_PX), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                         caption)
        painter.drawImage(x, y + CAPTION_PX, to_qimage(rgb))
    painter.end()
    return sheet
