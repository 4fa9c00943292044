"""The loupe: one crop shown from every pane side by side, enlarged by a whole number so
each image pixel becomes an exact square of screen pixels."""
from __future__ import annotations

from typing import Optional

import numpy as np
from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from viewer.qimage import to_pixmap
from viewer.widgets.panes import Crop
from viewer.worker.jobs import PANES

TARGET_PX = 320  # the loupe picks a magnification that makes the crop about this big
MAX_PANE_PX = 1024  # no magnified crop is drawn larger than this (four of them share a screen)


def auto_magnification(crop: Crop) -> int:
    return int(max(1, min(max_magnification(crop), TARGET_PX // max(crop.width, crop.height))))


def max_magnification(crop: Crop) -> int:
    """The largest whole factor that keeps the enlarged crop within MAX_PANE_PX (at least 1)."""
    return int(max(1, min(32, MAX_PANE_PX // max(crop.width, crop.height))))


def magnify(rgb: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement by an integer factor (every pixel becomes factor×factor)."""
    return np.repeat(np.repeat(rgb, factor, axis=0), factor, axis=1)


class LoupeWindow(QWidget):
    """A tool window; the main window feeds it the pane images whenever they change. Esc closes it;
    its magnification is capped so that four enlarged crops fit a screen."""

    closed = Signal()

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent, Qt.WindowType.Tool)
        self.setWindowTitle("Loupe")
        self.crop: Optional[Crop] = None
        self._images: dict[str, Optional[np.ndarray]] = {p: None for p in PANES}
        self._captions: dict[str, str] = {p: "" for p in PANES}
        self.magnification = QSpinBox()
        self.magnification.setRange(1, 32)
        self.magnification.setPrefix("×")
        self.magnification.setToolTip("Each image pixel is shown as this many screen pixels across.")
        self.magnification.valueChanged.connect(self._render)
        self.where = QLabel()
        header = QHBoxLayout()
        header.addWidget(self.where, 1)
        header.addWidget(QLabel("Magnification"))
        header.addWidget(self.magnification)
        grid = QGridLayout()
        self.titles: dict[str, QLabel] = {}
        self.views: dict[str, QLabel] = {}
        for i, pane in enumerate(PANES):
            row, col = divmod(i, 2)
            self.titles[pane] = QLabel()
            self.views[pane] = QLabel()
            self.views[pane].setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
            grid.addWidget(self.titles[pane], 2 * row, col)
            grid.addWidget(self.views[pane], 2 * row + 1, col)
        layout = QVBoxLayout(self)
        layout.addLayout(header)
        layout.addLayout(grid)

    def set_crop(self, crop: Crop) -> None:
        self.crop = crop
        self.magnification.blockSignals(True)
        self.magnification.setMaximum(max_magnification(crop))
        self.magnification.setValue(auto_magnification(crop))
        self.magnification.blockSignals(False)
        self._render()

    def set_image(self, pane: str, rgb: Optional[np.ndarray], caption: str) -> None:
        self._images[pane] = rgb
        self._captions[pane] = caption
        if self.isVisible():
            self._render_pane(pane)

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        self._render()

    def event(self, event: QEvent) -> bool:
        # Esc is also the main window's Stop shortcut, which would take it first: here it closes the loupe
        if event.type() == QEvent.Type.ShortcutOverride and event.key() == Qt.Key.Key_Escape:
            event.accept()
            return True
        return super().event(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Escape:
            self.close()
        else:
            super().keyPressEvent(event)

    def closeEvent(self, event) -> None:  # noqa: N802
        super().closeEvent(event)
        self.closed.emit()

    def _render(self) -> None:
        if self.crop is None:
            return
        c = self.crop
        self.where.setText(f"Crop x {c.x0}–{c.x1 - 1}, y {c.y0}–{c.y1 - 1} ({c.width}×{c.height} px)")
        for pane in PANES:
            self._render_pane(pane)
        self.adjustSize()

    def _render_pane(self, pane: str) -> None:
        rgb = self._images[pane]
        self.titles[pane].setText(self._captions[pane])
        if self.crop is None or rgb is None or rgb.shape[0] < self.crop.y1 or rgb.shape[1] < self.crop.x1:
            self.views[pane].clear()
            self.views[pane].setText("—")
            return
        self.views[pane].setPixmap(to_pixmap(magnify(self.crop.of(rgb), self.magnification.value())))
