"""One large pane; number keys flip it between the four images (flicker comparison)."""
from __future__ import annotations

from typing import Optional

from PySide6.QtWidgets import QVBoxLayout, QWidget

from viewer.widgets.panes import (
    PaneViewBox,
    follow_zoom_smoothing,
    make_graphics_widget,
    show_stale,
)
from viewer.widgets.pyramid import Pyramid, PyramidImageItem
from viewer.worker.jobs import PANES


class FlickerView(QWidget):
    """Shows one pane at a time at full size; the zoom stays put when the pane changes. Each pane
    has its own image item, already rendered, so a flicker key only swaps which one is visible."""

    def __init__(self) -> None:
        super().__init__()
        self.canvas = make_graphics_widget()
        self.caption = self.canvas.ci.addLabel("", row=0, col=0, size="11pt")
        self.box = PaneViewBox()
        self.canvas.ci.addItem(self.box, row=1, col=0)
        self.items = {pane: PyramidImageItem() for pane in PANES}
        for item in self.items.values():
            self.box.addItem(item)
        follow_zoom_smoothing(self.canvas, self.box)
        self.current = PANES[0]
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

    def set_image(self, pane: str, pyramid: Optional[Pyramid]) -> None:
        self.items[pane].set_pyramid(pyramid)

    def set_stale(self, pane: str, stale: bool) -> None:
        show_stale(self.items[pane], stale)

    def set_caption(self, pane: str, text: str) -> None:
        self._captions[pane] = text
        if pane == self.current:
            self._show()

    def pane_at(self, box: PaneViewBox, x: float) -> Optional[str]:
        return self.current

    def _show(self) -> None:
        for pane, item in self.items.items():
            item.setVisible(pane == self.current)
        self.caption.setText(f"{self._captions[self.current]}   <span style='color:#999'>(keys 1–4 switch)</span>")
