"""One large pane; number keys flip it between the four images (flicker comparison)."""
from __future__ import annotations

from typing import Optional

import numpy as np
from PySide6.QtWidgets import QVBoxLayout, QWidget

from .jobs import PANES
from .panes import (
    PaneViewBox,
    follow_zoom_smoothing,
    make_graphics_widget,
    make_image_item,
)


class FlickerView(QWidget):
    """Shows one pane at a time at full size; the zoom stays put when the pane changes."""

    def __init__(self) -> None:
        super().__init__()
        self.canvas = make_graphics_widget()
        self.caption = self.canvas.ci.addLabel("", row=0, col=0, size="11pt")
        self.box = PaneViewBox()
        self.canvas.ci.addItem(self.box, row=1, col=0)
        self.item = make_image_item()
        self.box.addItem(self.item)
        follow_zoom_smoothing(self.canvas, self.box)
        self.current = PANES[0]
        self._images: dict[str, Optional[np.ndarray]] = {p: None for p in PANES}
        self._captions: dict[str, str] = {p: "" for p in PANES}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)

    def boxes(self) -> list[PaneViewBox]:
        return [self.box]

    def primary(self) -> PaneViewBox:
        return self.box

    def show_pane(self, pane: str) -> None:
        self.current = pane
        self._show()

    def set_image(self, pane: str, rgb: Optional[np.ndarray]) -> None:
        self._images[pane] = rgb
        if pane == self.current:
            self._show()

    def set_caption(self, pane: str, text: str) -> None:
        self._captions[pane] = text
        if pane == self.current:
            self._show()

    def pane_at(self, box: PaneViewBox, x: float) -> Optional[str]:
        return self.current

    def _show(self) -> None:
        rgb = self._images[self.current]
        if rgb is None:
            self.item.clear()
        else:
            self.item.setImage(rgb, levels=(0, 255))
        self.caption.setText(f"{self._captions[self.current]}   <span style='color:#999'>(keys 1–4 switch)</span>")
