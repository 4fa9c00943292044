"""Large images on screen through a pyramid of half-size levels, made off the GUI thread.

Shown smaller than 1:1, a pyqtgraph ImageItem averages the whole image down to the screen on every
render: about 0.3 s on the GUI thread for a 12 MP photo, each time a pane's image changes (every
streamed estimate of a decode). A pane instead shows the pyramid level nearest the zoom, so what
is rendered is never much larger than the screen. Levels are 2×2 box averages; for a large image
a background thread makes them (numpy leaves the GIL while it sums) and until they arrive the
pane shows every n-th pixel of the full image, which costs nothing."""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, QPointF, QRectF, Signal

SMALLEST_SIDE = 256  # levels are halved until the longer side is at most this
BUILD_HERE_PIXELS = 1_000_000  # up to this size the levels are made at once (a few ms)

_builder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hfd-display")


def half_size(rgb: np.ndarray) -> np.ndarray:
    """The 2×2 box average of a uint8 H×W×3 image (a last odd row or column is dropped), rounded."""
    h, w = rgb.shape[0] // 2 * 2, rgb.shape[1] // 2 * 2
    total = rgb[0:h:2, 0:w:2].astype(np.uint16)
    total += rgb[1:h:2, 0:w:2]
    total += rgb[0:h:2, 1:w:2]
    total += rgb[1:h:2, 1:w:2]
    total += 2
    total >>= 2
    return total.astype(np.uint8)


def level_count(height: int, width: int) -> int:
    """How many levels an image has, the full image included."""
    return 1 + max(0, math.ceil(math.log2(max(height, width, 1) / SMALLEST_SIDE)))


class Pyramid(QObject):
    """One image and its half-size levels. ``updated`` fires (on the GUI thread) when the
    box-averaged levels replace the quick every-n-th-pixel ones."""

    updated = Signal()

    def __init__(self, rgb: np.ndarray) -> None:
        super().__init__()
        self.image = rgb
        count = level_count(*rgb.shape[:2])
        self.levels: list[np.ndarray] = [rgb] + [rgb[::2 ** k, ::2 ** k] for k in range(1, count)]
        self.averaged = count == 1
        self._dropped = False  # set on the GUI thread, read by the builder: one flag, no lock needed
        if count > 1:
            if rgb.shape[0] * rgb.shape[1] <= BUILD_HERE_PIXELS:
                self._build()
            else:
                _builder.submit(self._build)

    def drop(self) -> None:
        """This image is no longer shown: skip its levels if they are not made yet."""
        self._dropped = True

    def _build(self) -> None:
        levels = [self.image]
        for _ in range(1, len(self.levels)):
            if self._dropped:
                return
            levels.append(half_size(levels[-1]))
        self.levels, self.averaged = levels, True
        self.updated.emit()

    def level(self, image_px_per_screen_px: float) -> tuple[int, np.ndarray]:
        """(factor, level): the coarsest level with at least one of its pixels per screen pixel."""
        top = len(self.levels) - 1
        if not math.isfinite(image_px_per_screen_px):
            k = top
        else:
            k = min(top, 0 if image_px_per_screen_px < 2 else int(math.log2(image_px_per_screen_px)))
        return 2 ** k, self.levels[k]


class PyramidImageItem(pg.ImageItem):
    """An ImageItem for uint8 RGB that shows a Pyramid's level nearest the view's zoom, placed
    over the full image's extent, so view coordinates stay the full image's pixels. Enlarged,
    the full image's pixels are drawn unfiltered."""

    def __init__(self) -> None:
        super().__init__(axisOrder="row-major", autoDownsample=True)
        self.pyramid: Optional[Pyramid] = None
        self._shown: Optional[np.ndarray] = None

    def set_pyramid(self, pyramid: Optional[Pyramid]) -> None:
        """Show ``pyramid`` (None: show nothing)."""
        if self.pyramid is not None:
            self.pyramid.updated.disconnect(self._on_levels_ready)
        self.pyramid = pyramid
        self._shown = None
        if pyramid is None:
            self.clear()
            return
        pyramid.updated.connect(self._on_levels_ready)
        self._show_level()

    def _on_levels_ready(self) -> None:
        self._shown = None
        self._show_level()

    def viewTransformChanged(self) -> None:  # noqa: N802 (pyqtgraph's hook for zoom changes)
        if self.pyramid is not None:
            self._show_level()
        super().viewTransformChanged()

    def _image_px_per_screen_px(self) -> float:
        """Full-image pixels per device pixel now; a large number before the item is on screen,
        so that an unseen pane holds its smallest level."""
        origin, step = self.mapToDevice(QPointF(0, 0)), self.mapToDevice(QPointF(1, 0))
        if origin is None or step is None or self.image is None:
            return math.inf
        device_px_per_item_unit = math.hypot(step.x() - origin.x(), step.y() - origin.y())
        item_unit = self.pyramid.image.shape[1] / self.image.shape[1]  # full-image pixels per item unit
        return math.inf if device_px_per_item_unit == 0 else item_unit / device_px_per_item_unit

    def _show_level(self) -> None:
        full = self.pyramid.image
        _, level = self.pyramid.level(self._image_px_per_screen_px())
        if level is self._shown:
            return
        self._shown = level
        self.setImage(level, levels=(0, 255))
        self.setRect(QRectF(0, 0, full.shape[1], full.shape[0]))
