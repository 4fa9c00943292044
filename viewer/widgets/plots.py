"""Live plots: the refined pane's PSNR and perceptual score after each sampler step, and the
image's rate curve (autoencoder and classical codec across bitrates; a click there picks the
bitrate)."""
from __future__ import annotations

from typing import Optional

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor

from viewer.worker.jobs import STEP_PERCEPTUAL_CROP, RatePoint

AE_COLOUR = QColor(90, 160, 255)
REFINED_COLOUR = QColor(255, 170, 60)
CLASSICAL_COLOUR = QColor(200, 200, 200)
PERCEPTUAL_COLOUR = QColor(150, 220, 120)


def _style(widget: pg.PlotWidget, title: str, x_label: str, y_label: str, legend: bool) -> None:
    widget.setBackground(QColor(32, 32, 32))
    widget.setTitle(title, size="9pt")
    widget.setLabel("bottom", x_label)
    widget.setLabel("left", y_label)
    widget.showGrid(x=True, y=True, alpha=0.2)
    widget.setMenuEnabled(False)
    for axis in ("bottom", "left"):
        widget.getAxis(axis).enableAutoSIPrefix(False)
    if legend:
        widget.addLegend(offset=(-4, -4), labelTextSize="8pt")


class StepPlot(pg.PlotWidget):
    """The refined estimate after each finished step: PSNR against the original (left axis,
    solid) and ST-LPIPS of the centre crop (right axis, dashed; lower is better)."""

    def __init__(self) -> None:
        super().__init__()
        # The table's ST-LPIPS is of the whole image; per step only the centre crop is measured
        # (fast enough to keep up with the sampler), so the right axis says so: the two differ.
        # (A longer title would widen the plot past its dock.)
        _style(self, "Each step: PSNR ─, ST-LPIPS ┄", "step", "PSNR dB", legend=False)
        self.setToolTip(f"The refined estimate after each sampler step. Solid: PSNR against the original "
                        f"(left axis, higher is better). Dashed: ST-LPIPS of the centre "
                        f"{STEP_PERCEPTUAL_CROP}×{STEP_PERCEPTUAL_CROP} crop (right axis, lower is better).")
        self.curve = self.plot([], [], pen=pg.mkPen(REFINED_COLOUR, width=2), symbol="o", symbolSize=4,
                               symbolBrush=REFINED_COLOUR)
        self.ae_line = pg.InfiniteLine(angle=0, pen=pg.mkPen(AE_COLOUR, style=Qt.PenStyle.DashLine),
                                       label="autoencoder", labelOpts={"color": AE_COLOUR, "position": 0.8,
                                                                          "anchors": [(1, 0), (1, 0)]})
        self.ae_line.hide()
        self.addItem(self.ae_line)
        # A second ViewBox sharing the x axis carries the perceptual score on the right axis.
        item = self.getPlotItem()
        self.perceptual_view = pg.ViewBox()
        item.showAxis("right")
        item.scene().addItem(self.perceptual_view)
        item.getAxis("right").linkToView(self.perceptual_view)
        item.getAxis("right").setLabel(f"ST-LPIPS, centre {STEP_PERCEPTUAL_CROP}² ↓")
        item.getAxis("right").enableAutoSIPrefix(False)
        self.perceptual_view.setXLink(item)
        item.vb.sigResized.connect(
            lambda: self.perceptual_view.setGeometry(item.vb.sceneBoundingRect()))
        self.perceptual_curve = pg.PlotDataItem([], [], pen=pg.mkPen(PERCEPTUAL_COLOUR, width=2,
                                                                     style=Qt.PenStyle.DashLine),
                                                symbol="t", symbolSize=5, symbolBrush=PERCEPTUAL_COLOUR)
        self.perceptual_view.addItem(self.perceptual_curve)
        self._x: list[int] = []
        self._y: list[float] = []
        self._perceptual: list[tuple[int, float]] = []

    def reset(self, total: int) -> None:
        self._x, self._y, self._perceptual = [], [], []
        self.curve.setData([], [])
        self.perceptual_curve.setData([], [])
        self.setXRange(0.5, max(2, total) + 0.5, padding=0)
        major = max(1, int(np.ceil(total / 8)))  # whole steps only, about eight labels
        self.getAxis("bottom").setTickSpacing(major, major)

    def add_point(self, step: int, psnr: float, perceptual: Optional[float] = None) -> None:
        self._x.append(step)
        self._y.append(psnr)
        self.curve.setData(self._x, self._y)
        if perceptual is not None:
            self._perceptual.append((step, perceptual))
            self.perceptual_curve.setData(*zip(*self._perceptual))

    def set_autoencoder_psnr(self, psnr: Optional[float]) -> None:
        if psnr is None:
            self.ae_line.hide()
        else:
            self.ae_line.setValue(psnr)
            self.ae_line.show()

    def points(self) -> tuple[list[int], list[float]]:
        return list(self._x), list(self._y)

    def perceptual_points(self) -> list[tuple[int, float]]:
        return list(self._perceptual)


class RatePlot(pg.PlotWidget):
    """PSNR against bpp for this image; clicking anywhere picks that bitrate."""

    bpp_clicked = Signal(float)

    def __init__(self) -> None:
        super().__init__()
        _style(self, "Rate: click to pick the bitrate", "bits per pixel", "PSNR dB", legend=True)
        self.ae_curve = self.plot([], [], pen=pg.mkPen(AE_COLOUR, width=2), symbol="o", symbolSize=5,
                                  symbolBrush=AE_COLOUR, name="autoencoder")
        self.classical_curve = self.plot([], [], pen=pg.mkPen(CLASSICAL_COLOUR, width=2), symbol="s",
                                         symbolSize=5, symbolBrush=CLASSICAL_COLOUR, name="classical")
        self.refined_point = self.plot([], [], pen=None, symbol="star", symbolSize=12,
                                       symbolBrush=REFINED_COLOUR, name="refined (now)")
        self.current = pg.InfiniteLine(angle=90, pen=pg.mkPen(REFINED_COLOUR, width=1))
        self.addItem(self.current)
        self._points: list[RatePoint] = []
        self.scene().sigMouseClicked.connect(self._on_click)

    def reset(self, codec_label: str) -> None:
        self._points = []
        self.ae_curve.setData([], [])
        self.classical_curve.setData([], [])
        self.refined_point.setData([], [])
        legend = self.getPlotItem().legend
        legend.removeItem(self.classical_curve)
        legend.addItem(self.classical_curve, codec_label)

    def add_point(self, point: RatePoint) -> None:
        self._points.append(point)
        self._points.sort(key=lambda p: p.target_bpp)
        self.ae_curve.setData([p.ae_bpp for p in self._points], [p.ae_psnr for p in self._points])
        self.classical_curve.setData([p.classical_bpp for p in self._points],
                                     [p.classical_psnr for p in self._points])

    def set_current(self, bpp: float, refined_psnr: Optional[float] = None) -> None:
        self.current.setValue(bpp)
        self.refined_point.setData([bpp] if refined_psnr is not None else [],
                                   [refined_psnr] if refined_psnr is not None else [])

    def points(self) -> list[RatePoint]:
        return list(self._points)

    def _on_click(self, event) -> None:
        box = self.getPlotItem().getViewBox()
        if event.button() != Qt.MouseButton.LeftButton or not box.sceneBoundingRect().contains(event.scenePos()):
            return
        x = box.mapSceneToView(event.scenePos()).x()
        if x > 0:
            self.bpp_clicked.emit(float(x))
