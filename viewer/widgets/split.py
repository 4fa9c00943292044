"""Swipe comparison: two chosen panes in one view, split by a draggable vertical line."""
from __future__ import annotations

from typing import Optional

import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import (
    QComboBox,
    QGraphicsItem,
    QGraphicsRectItem,
    QHBoxLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from viewer.widgets.panes import (
    PANE_SHORT,
    PaneViewBox,
    follow_zoom_smoothing,
    make_graphics_widget,
    show_stale,
)
from viewer.widgets.pyramid import Pyramid, PyramidImageItem
from viewer.worker.jobs import PANES


class SplitView(QWidget):
    """Left of the line shows one pane, right of it another; the line is dragged with the mouse."""

    def __init__(self) -> None:
        super().__init__()
        self.canvas = make_graphics_widget()
        self.left_caption = self.canvas.ci.addLabel("", row=0, col=0, size="10pt", justify="left")
        self.right_caption = self.canvas.ci.addLabel("", row=0, col=1, size="10pt", justify="right")
        self.box = PaneViewBox()
        self.canvas.ci.addItem(self.box, row=1, col=0, colspan=2)
        self.right_item = PyramidImageItem()
        self.box.addItem(self.right_item)
        # The left image is a child of a rectangle that clips it at the divider.
        self._clip = QGraphicsRectItem()
        self._clip.setPen(QPen(Qt.PenStyle.NoPen))
        self._clip.setFlag(QGraphicsItem.GraphicsItemFlag.ItemClipsChildrenToShape)
        self.box.addItem(self._clip, ignoreBounds=True)
        self.left_item = PyramidImageItem()
        self.left_item.setParentItem(self._clip)
        self.divider = pg.InfiniteLine(angle=90, movable=True, pen=pg.mkPen(QColor(255, 220, 0), width=2),
                                       hoverPen=pg.mkPen(QColor(255, 255, 255), width=3))
        self.divider.setZValue(10)
        self.box.addItem(self.divider, ignoreBounds=True)
        self.divider.sigPositionChanged.connect(self._update_clip)
        follow_zoom_smoothing(self.canvas, self.box)

        self.left_choice = self._pane_combo("classical")
        self.right_choice = self._pane_combo("refined")
        header = QHBoxLayout()
        header.setContentsMargins(6, 2, 6, 2)
        header.addWidget(QLabel("Left:"))
        header.addWidget(self.left_choice)
        header.addStretch(1)
        header.addWidget(QLabel("drag the yellow line"))
        header.addStretch(1)
        header.addWidget(QLabel("Right:"))
        header.addWidget(self.right_choice)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(header)
        layout.addWidget(self.canvas)

        self._images: dict[str, Optional[Pyramid]] = {p: None for p in PANES}
        self._captions: dict[str, str] = {p: "" for p in PANES}
        self._stale: dict[str, bool] = {p: False for p in PANES}
        self._size: Optional[tuple[int, int]] = None

    def _pane_combo(self, initial: str) -> QComboBox:
        combo = QComboBox()
        for pane in PANES:
            combo.addItem(PANE_SHORT[pane], pane)
        combo.setCurrentIndex(PANES.index(initial))
        combo.currentIndexChanged.connect(self._refresh)
        return combo

    @property
    def left(self) -> str:
        return self.left_choice.currentData()

    @property
    def right(self) -> str:
        return self.right_choice.currentData()

    def boxes(self) -> list[PaneViewBox]:
        return [self.box]

    def primary(self) -> PaneViewBox:
        return self.box

    def set_panes(self, left: str, right: str) -> None:
        self.left_choice.setCurrentIndex(PANES.index(left))
        self.right_choice.setCurrentIndex(PANES.index(right))

    def set_image(self, pane: str, pyramid: Optional[Pyramid]) -> None:
        self._images[pane] = pyramid
        shape = None if pyramid is None else pyramid.image.shape
        if shape is not None and self._size != (shape[1], shape[0]):
            self._size = (shape[1], shape[0])
            self.divider.setBounds((0, self._size[0]))
            self.divider.setValue(self._size[0] / 2)
        if pane in (self.left, self.right):
            self._refresh()

    def set_caption(self, pane: str, text: str) -> None:
        self._captions[pane] = text
        if pane in (self.left, self.right):
            self._show_captions()

    def set_stale(self, pane: str, stale: bool) -> None:
        self._stale[pane] = stale
        if pane in (self.left, self.right):
            self._refresh()

    def pane_at(self, box: PaneViewBox, x: float) -> Optional[str]:
        return self.left if x < self.divider.value() else self.right

    def _refresh(self) -> None:
        for item, pane in ((self.left_item, self.left), (self.right_item, self.right)):
            if item.pyramid is not self._images[pane]:
                item.set_pyramid(self._images[pane])
            show_stale(item, self._stale[pane])
        self._show_captions()
        self._update_clip()

    def _show_captions(self) -> None:
        self.left_caption.setText(f"◀ {self._captions[self.left]}")
        self.right_caption.setText(f"{self._captions[self.right]} ▶")

    def _update_clip(self) -> None:
        height = self._size[1] if self._size else 0
        self._clip.setRect(QRectF(0, 0, max(0.0, self.divider.value()), height))
