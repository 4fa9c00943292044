"""The strip under the images: what the decoder is doing now, how far along, how fast."""
from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from viewer.captions import count


class DecodeStatus(QWidget):
    """Progress bar, "step 5/16 · 41 ms/step" and a Stop button."""

    stop_clicked = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.bar = QProgressBar()
        self.bar.setTextVisible(False)
        self.bar.setMaximumHeight(14)
        self.label = QLabel("idle")
        self.label.setMinimumWidth(260)
        self.stop = QPushButton("Stop")
        self.stop.setToolTip("Stop the running decode (Esc). The last estimate stays on screen.")
        self.stop.setEnabled(False)
        self.stop.clicked.connect(self.stop_clicked)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 2, 6, 2)
        layout.addWidget(self.label)
        layout.addWidget(self.bar, 1)
        layout.addWidget(self.stop)
        self._last_elapsed = 0.0

    def started(self, what: str, total: int) -> None:
        self.bar.setRange(0, max(1, total))
        self.bar.setValue(0)
        self.label.setText(what)
        self.stop.setEnabled(True)
        self._last_elapsed = 0.0

    def stepped(self, index: int, total: int, elapsed_s: float, tiles: int = 1) -> None:
        self.bar.setRange(0, total)
        self.bar.setValue(index)
        if tiles > 1:  # a large image: each tile runs every step, and lands when done
            steps = total // tiles
            self.label.setText(f"refining: tile {index // steps}/{tiles} ({count(steps, 'step')} each) · {elapsed_s:.1f} s")
            return
        per_step = (elapsed_s - self._last_elapsed) * 1000
        self._last_elapsed = elapsed_s
        self.label.setText(f"refining: step {index}/{total} · {per_step:.0f} ms/step · {elapsed_s:.1f} s")

    def optimising(self, done: int, total: int) -> None:
        self.bar.setRange(0, total)
        self.bar.setValue(done)
        self.label.setText(f"optimising the encoding: step {done}/{total}")

    def finished(self, text: str) -> None:
        self.label.setText(text)
        self.stop.setEnabled(False)
        self.bar.setValue(self.bar.maximum())

    def stopped(self, text: str) -> None:
        self.label.setText(text)
        self.stop.setEnabled(False)
