"""A horizontal slider over a float range (linear or logarithmic) with its value printed beside it."""
from __future__ import annotations

import math

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSlider, QWidget

TICKS = 1000
STEP_TICKS = 10  # an arrow key moves 1 % of the range: a change one can see (a tick is 0.1 %)


class _Slider(QSlider):
    """A slider that ignores the mouse wheel unless it has the focus: the side panel scrolls under
    the wheel, and a slider passing under the pointer must not change on the way."""

    def wheelEvent(self, event) -> None:  # noqa: N802
        if self.hasFocus():
            super().wheelEvent(event)
        else:
            event.ignore()


class FloatSlider(QWidget):
    """``valueChanged(float)`` fires while dragging; ``fmt`` formats the printed value."""

    valueChanged = Signal(float)  # noqa: N815 (Qt naming)

    def __init__(self, lo: float, hi: float, value: float, fmt: str = "{:.2f}", log: bool = False) -> None:
        super().__init__()
        self._lo, self._hi, self._log, self._fmt = lo, hi, log, fmt
        self.slider = _Slider(Qt.Orientation.Horizontal)
        self.slider.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # focus by click or Tab, not by the wheel
        self.slider.setRange(0, TICKS)
        self.slider.setSingleStep(STEP_TICKS)
        self.slider.setPageStep(TICKS // 20)
        self.label = QLabel()
        self.label.setMinimumWidth(64)
        self.label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.label)
        self.slider.valueChanged.connect(self._on_tick)
        self.setValue(value)

    def setRange(self, lo: float, hi: float) -> None:  # noqa: N802
        value = self.value()
        self._lo, self._hi = lo, hi
        self.setValue(min(max(value, lo), hi))

    def range(self) -> tuple[float, float]:
        return self._lo, self._hi

    def value(self) -> float:
        return self._from_tick(self.slider.value())

    def setValue(self, value: float) -> None:  # noqa: N802
        self.slider.setValue(self._to_tick(value))
        self._show(self.value())

    def setToolTip(self, text: str) -> None:  # noqa: N802
        super().setToolTip(text)
        self.slider.setToolTip(text)

    def _to_tick(self, value: float) -> int:
        if self._hi <= self._lo:
            return 0
        value = min(max(value, self._lo), self._hi)
        if self._log:
            frac = math.log(value / self._lo) / math.log(self._hi / self._lo)
        else:
            frac = (value - self._lo) / (self._hi - self._lo)
        return round(frac * TICKS)

    def _from_tick(self, tick: int) -> float:
        frac = tick / TICKS
        if self._log:
            return self._lo * (self._hi / self._lo) ** frac
        return self._lo + frac * (self._hi - self._lo)

    def _on_tick(self, tick: int) -> None:
        value = self._from_tick(tick)
        self._show(value)
        self.valueChanged.emit(value)

    def _show(self, value: float) -> None:
        self.label.setText(self._fmt.format(value))
