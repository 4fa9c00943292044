"""The numbers beside the pictures: size and quality of every pane against the original."""
from __future__ import annotations

from typing import Optional

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QTableWidget,
    QTableWidgetItem,
)

from viewer.captions import human_size
from viewer.widgets.panes import PANE_SHORT
from viewer.worker.jobs import PANES, PaneStats

COLUMNS = ("Bytes", "bpp", "PSNR ↑", "MS-SSIM ↑", "ST-LPIPS ↓")
COLUMN_TIPS = (
    "Size of the file that produced this pane (every byte counted).",
    "Bits per pixel: bytes × 8 / (width × height).",
    "Peak signal-to-noise ratio against the original in dB (higher = closer pixel by pixel).",
    "Multi-scale structural similarity against the original (1 = identical structure).",
    "Shift-tolerant LPIPS, a learned perceptual distance (lower = looks closer to the original).",
)


def format_bpp(bpp: float) -> str:
    return f"{bpp:.3f}" if bpp < 10 else f"{bpp:.1f}"


class StatsTable(QTableWidget):
    """One row per pane; cells show "…" while a number is being computed, "n/a" if it cannot be."""

    def __init__(self) -> None:
        super().__init__(len(PANES), len(COLUMNS))
        self.setHorizontalHeaderLabels(COLUMNS)
        self.setVerticalHeaderLabels([PANE_SHORT[p] for p in PANES])
        for col, tip in enumerate(COLUMN_TIPS):
            self.horizontalHeaderItem(col).setToolTip(tip)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.horizontalHeader().setMinimumSectionSize(56)
        self.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.perceptual_note = "metric package missing: reinstall with pip install -e ."
        self.clear_numbers()
        self.fit_height()

    def fit_height(self) -> None:
        """Exactly as tall as its rows: no empty white area below them."""
        self.resizeRowsToContents()
        rows = sum(self.rowHeight(r) for r in range(self.rowCount()))
        self.setFixedHeight(self.horizontalHeader().sizeHint().height() + rows + 2 * self.frameWidth())

    def clear_numbers(self) -> None:
        for row in range(len(PANES)):
            for col in range(len(COLUMNS)):
                self._set(row, col, "")

    def set_original(self, file_bytes: int, width: int, height: int, hfd: bool = False) -> None:
        """The source file's row; ``hfd``: a .hfd file was opened, so there is no original and no
        pane can be measured."""
        row = PANES.index("original")
        if hfd:
            self._set(row, 0, "—", "A .hfd file was opened: the original is not in it.")
            self._set(row, 1, "—")
        else:
            self._set(row, 0, human_size(file_bytes), "Size of the source file on disk.")
            self._set(row, 1, format_bpp(file_bytes * 8 / (width * height)))
        for col in (2, 3, 4):
            self._set(row, col, "—", "The reference every other pane is measured against.")

    def set_stats(self, pane: str, stats: PaneStats) -> None:
        row = PANES.index(pane)
        final = stats.complete
        missing = "n/a" if final else "…"
        self._set(row, 0, human_size(stats.nbytes) if stats.nbytes is not None else "…",
                  stats.note or None)
        self._set(row, 1, format_bpp(stats.bpp) if stats.bpp is not None else "…")
        self._set(row, 2, f"{stats.psnr:.2f}" if stats.psnr is not None else ("n/a" if final else "…"))
        where = (f"On {stats.windows} fixed 256×256 crops of the image (a large image is scored on a bounded "
                 "sample); PSNR on all of it.") if stats.windows else None
        self._set(row, 3, f"{stats.ms_ssim:.4f}" if stats.ms_ssim is not None else missing, where)
        self._set(row, 4, f"{stats.perceptual:.4f}" if stats.perceptual is not None else missing,
                  self.perceptual_note if final and stats.perceptual is None else where)

    def mark_pending(self, pane: str) -> None:
        row = PANES.index(pane)
        for col in range(2, len(COLUMNS)):
            self._set(row, col, "…")

    def text(self, pane: str, column: str) -> str:
        item = self.item(PANES.index(pane), COLUMNS.index(column))
        return item.text() if item is not None else ""

    def _set(self, row: int, col: int, text: str, tip: Optional[str] = None) -> None:
        item = QTableWidgetItem(text)
        item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if tip:
            item.setToolTip(tip)
        self.setItem(row, col, item)
