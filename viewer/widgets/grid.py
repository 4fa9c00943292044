"""Four panes in a 2×2 grid sharing one zoom and pan (ViewBoxes linked on both axes)."""
from __future__ import annotations

from typing import Optional

import pyqtgraph as pg
from PySide6.QtWidgets import QVBoxLayout, QWidget

from viewer.widgets.panes import (
    PaneViewBox,
    follow_zoom_smoothing,
    make_graphics_widget,
    show_stale,
)
from viewer.widgets.pyramid import Pyramid, PyramidImageItem
from viewer.worker.jobs import PANES


class GridView(QWidget):
    """All four panes at once; dragging or zooming any of them moves all of them."""

    def __init__(self) -> None:
        super().__init__()
        self.canvas = make_graphics_widget()
        self.captions: dict[str, pg.LabelItem] = {}
        self.box: dict[str, PaneViewBox] = {}
        self.items: dict[str, PyramidImageItem] = {}
        for i, pane in enumerate(PANES):
            row, col = divmod(i, 2)
            self.captions[pane] = self.canvas.ci.addLabel("", row=2 * row, col=col, size="10pt")
            box = PaneViewBox()
            self.canvas.ci.addItem(box, row=2 * row + 1, col=col)
            item = PyramidImageItem()
            box.addItem(item)
            self.box[pane], self.items[pane] = box, item
            if i:
                box.setXLink(self.box[PANES[0]])
                box.setYLink(self.box[PANES[0]])
        for i in range(2):  # equal panes, whatever the captions' widths
            self.canvas.ci.layout.setColumnStretchFactor(i, 1)
            self.canvas.ci.layout.setColumnPreferredWidth(i, 100)
            self.canvas.ci.layout.setRowStretchFactor(2 * i + 1, 1)
        follow_zoom_smoothing(self.canvas, self.box[PANES[0]])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)

    def boxes(self) -> list[PaneViewBox]:
        return list(self.box.values())

    def primary(self) -> PaneViewBox:
        return self.box[PANES[0]]

    def set_image(self, pane: str, pyramid: Optional[Pyramid]) -> None:
        self.items[pane].set_pyramid(pyramid)

    def set_stale(self, pane: str, stale: bool) -> None:
        show_stale(self.items[pane], stale)

    def set_caption(self, pane: str, text: str) -> None:
        self.captions[pane].setText(text)

    def pane_at(self, box: PaneViewBox, x: float) -> Optional[str]:
        return next((pane for pane, b in self.box.items() if b is box), None)
