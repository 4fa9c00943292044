"""The central area: grid, flicker and split layouts of the same four panes, one camera.

The grid's panes are linked ViewBoxes; switching layout carries the camera (centre and
scale) across, so zoom and pan survive every switch."""
from __future__ import annotations

from typing import Optional

import numpy as np
from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QStackedWidget

from viewer.widgets.flicker import FlickerView
from viewer.widgets.grid import GridView
from viewer.widgets.panes import Camera, PaneViewBox, crop_from_rect
from viewer.widgets.pyramid import Pyramid
from viewer.widgets.split import SplitView
from viewer.worker.jobs import PANES

MODES = ("grid", "flicker", "split")


class ComparisonViews(QStackedWidget):
    """Holds what each pane shows and forwards it to the visible layout."""

    crop_drawn = Signal(object)  # Crop
    hovered = Signal(str, int, int)  # pane, column, row (inside the image)
    mode_changed = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self.grid = GridView()
        self.flicker = FlickerView()
        self.split = SplitView()
        self._pages = {"grid": self.grid, "flicker": self.flicker, "split": self.split}
        for page in self._pages.values():
            self.addWidget(page)
            for box in page.boxes():
                box.crop_drawn.connect(self._on_crop_drawn)
                box.hovered.connect(lambda x, y, b=box, p=page: self._on_hover(p, b, x, y))
                box.sigRangeChangedManually.connect(self._on_user_zoom)
                box.sigResized.connect(self._on_resized)
        self.mode = "grid"
        self.auto_fit = True  # keep fitting the image to the view until the user zooms or pans
        self._pyramids: dict[str, Optional[Pyramid]] = {p: None for p in PANES}
        self._size: Optional[tuple[int, int]] = None

    # ---- content -----------------------------------------------------------------------
    def set_image(self, pane: str, rgb: Optional[np.ndarray]) -> None:
        if rgb is self.image(pane):
            return  # results are new arrays, never edited: the same array is the same picture
        if self._pyramids[pane] is not None:
            self._pyramids[pane].drop()
        self._pyramids[pane] = None if rgb is None else Pyramid(rgb)
        for page in self._pages.values():
            page.set_image(pane, self._pyramids[pane])
        if rgb is not None and self._size != (rgb.shape[1], rgb.shape[0]):
            self._size = (rgb.shape[1], rgb.shape[0])
            self.auto_fit = True
            QTimer.singleShot(0, self.fit)

    def image(self, pane: str) -> Optional[np.ndarray]:
        pyramid = self._pyramids[pane]
        return None if pyramid is None else pyramid.image

    def set_caption(self, pane: str, text: str) -> None:
        for page in self._pages.values():
            page.set_caption(pane, text)

    def set_stale(self, pane: str, stale: bool) -> None:
        """Dim a pane that still shows an earlier result."""
        for page in self._pages.values():
            page.set_stale(pane, stale)

    # ---- layout and camera -------------------------------------------------------------
    def set_mode(self, mode: str) -> None:
        if mode == self.mode:
            return
        cam = None if self.auto_fit else self.camera()
        self.mode = mode
        self.setCurrentWidget(self._pages[mode])
        # The page gets its real size only once it is laid out: place the image after that.
        QTimer.singleShot(0, self.fit if cam is None else lambda: self.set_camera(cam))
        self.mode_changed.emit(mode)

    def show_pane(self, pane: str) -> None:
        """Flicker: show ``pane`` alone, large."""
        self.flicker.show_pane(pane)
        if self.mode == "flicker":
            self.mode_changed.emit(self.mode)  # same layout, another pane
        self.set_mode("flicker")

    def current_box(self) -> PaneViewBox:
        return self._pages[self.mode].primary()

    def camera(self) -> Optional[Camera]:
        return self.current_box().camera() if self._size else None

    def set_camera(self, cam: Camera) -> None:
        self.auto_fit = False
        self.current_box().set_camera(cam)

    def fit(self) -> None:
        """Show the whole image, and keep doing so as the window resizes, until the user zooms."""
        self.auto_fit = True
        if self._size:
            self.current_box().fit(*self._size)

    def one_to_one(self) -> None:
        self.auto_fit = False
        self.current_box().one_to_one()

    def _on_user_zoom(self, *_args) -> None:
        self.auto_fit = False

    def _on_resized(self, *_args) -> None:
        if self.auto_fit and self._size:
            self.current_box().fit(*self._size)

    def set_crop_tool(self, on: bool) -> None:
        for page in self._pages.values():
            for box in page.boxes():
                box.crop_tool = on

    # ---- mouse -------------------------------------------------------------------------
    def _on_crop_drawn(self, rect) -> None:
        if self._size:
            crop = crop_from_rect(rect, *self._size)
            if crop is not None:
                self.crop_drawn.emit(crop)

    def _on_hover(self, page, box: PaneViewBox, x: float, y: float) -> None:
        if not self._size or not (0 <= x < self._size[0] and 0 <= y < self._size[1]):
            return
        pane = page.pane_at(box, x)
        if pane is not None:
            self.hovered.emit(pane, int(x), int(y))
