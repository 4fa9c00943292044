"""The building block of every image view: a pyqtgraph ViewBox that shows an image with
square pixels, zooms on the wheel, pans on drag, and draws a crop rectangle on
Shift+drag (or plain drag while the loupe tool is on)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QGraphicsRectItem

PANE_TITLES = {
    "original": "Original",
    "ae": "Autoencoder only",
    "refined": "Refined (learned decoder)",
    "classical": "Classical codec, same size",
}

PANE_SHORT = {"original": "1 Original", "ae": "2 Autoencoder", "refined": "3 Refined", "classical": "4 Classical"}


@dataclass(frozen=True)
class Camera:
    """A view position that survives switching layouts: centre and image pixels per screen pixel."""

    cx: float
    cy: float
    upp: float


@dataclass(frozen=True)
class Crop:
    """A rectangle of whole image pixels: columns x0..x1-1, rows y0..y1-1."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    def of(self, image: np.ndarray) -> np.ndarray:
        return image[self.y0:self.y1, self.x0:self.x1]


def crop_from_rect(rect: QRectF, width: int, height: int) -> Optional[Crop]:
    """Snap a rectangle in image coordinates outward to whole pixels inside the image."""
    x0 = max(0, int(np.floor(rect.left())))
    y0 = max(0, int(np.floor(rect.top())))
    x1 = min(width, int(np.ceil(rect.right())))
    y1 = min(height, int(np.ceil(rect.bottom())))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return Crop(x0, y0, x1, y1)


class PaneViewBox(pg.ViewBox):
    """ViewBox for images: y down, locked aspect, crop-by-drag, pixel readout under the cursor."""

    crop_drawn = Signal(object)  # QRectF in image coordinates
    hovered = Signal(float, float)  # image coordinates under the cursor

    def __init__(self) -> None:
        super().__init__(lockAspect=True, invertY=True, enableMenu=False, defaultPadding=0.0)
        self.crop_tool = False
        self._band = QGraphicsRectItem()
        pen = QPen(QColor(255, 220, 0))
        pen.setCosmetic(True)
        pen.setWidth(2)
        self._band.setPen(pen)
        self._band.setZValue(1000)
        self._band.hide()
        self.addItem(self._band, ignoreBounds=True)

    def mouseDragEvent(self, ev, axis=None) -> None:  # noqa: N802 (Qt naming)
        drawing = self.crop_tool or bool(ev.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        if ev.button() != Qt.MouseButton.LeftButton or not drawing:
            super().mouseDragEvent(ev, axis)
            return
        ev.accept()
        rect = QRectF(self.mapToView(ev.buttonDownPos()), self.mapToView(ev.pos())).normalized()
        if ev.isFinish():
            self._band.hide()
            self.crop_drawn.emit(rect)
        else:
            self._band.setRect(rect)
            self._band.show()

    def hoverEvent(self, ev) -> None:  # noqa: N802
        if not ev.isExit():
            p = self.mapToView(ev.pos())
            self.hovered.emit(p.x(), p.y())

    def camera(self) -> Camera:
        rect = self.viewRect()
        width_px = max(1.0, self.width())
        return Camera(rect.center().x(), rect.center().y(), rect.width() / width_px)

    def set_camera(self, cam: Camera) -> None:
        half_w = self.width() * cam.upp / 2
        half_h = self.height() * cam.upp / 2
        self.setRange(xRange=(cam.cx - half_w, cam.cx + half_w),
                      yRange=(cam.cy - half_h, cam.cy + half_h), padding=0)

    def fit(self, width: int, height: int) -> None:
        self.setRange(QRectF(0, 0, width, height), padding=0.0)

    def one_to_one(self) -> None:
        """One image pixel per physical screen pixel, keeping the centre."""
        cam = self.camera()
        self.set_camera(Camera(cam.cx, cam.cy, self.screen_scale()))

    def screen_scale(self) -> float:
        views = self.scene().views() if self.scene() is not None else []
        return views[0].devicePixelRatioF() if views else 1.0


STALE_OPACITY = 0.4  # a pane still showing an earlier result is drawn this faint


def show_stale(item: pg.ImageItem, stale: bool) -> None:
    """Draw ``item`` faint while it shows an earlier result."""
    item.setOpacity(STALE_OPACITY if stale else 1.0)


def make_graphics_widget() -> pg.GraphicsLayoutWidget:
    """A dark canvas whose smoothing follows the zoom: filtered when shrinking, nearest when enlarging."""
    widget = pg.GraphicsLayoutWidget()
    widget.setBackground(QColor(32, 32, 32))
    widget.ci.setContentsMargins(2, 2, 2, 2)
    widget.ci.setSpacing(2)
    return widget


def follow_zoom_smoothing(widget: pg.GraphicsView, box: PaneViewBox) -> None:
    """Smooth the image while it is shown smaller than 1:1 and show exact pixels above 1:1."""

    def update(*_args) -> None:
        widget.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, box.camera().upp > 1.0)

    box.sigRangeChanged.connect(update)
