"""Demo mode: full screen, two big pictures (classical codec vs learned decoder at the same
file size) with plain captions, driven by the keyboard alone: DemoWindow is the screen,
DemoMode connects it to the main window."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Protocol

import numpy as np
from PySide6.QtCore import QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QGuiApplication, QKeyEvent, QPainter
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from engine.api import DecodeSettings
from viewer.captions import demo_texts
from viewer.qimage import fit_for_display, to_qimage
from viewer.samples import sample_paths
from viewer.worker.jobs import ClassicalPane


class DemoHost(Protocol):
    """What demo mode reads of the main window and asks of it."""

    raw: dict[str, Optional[np.ndarray]]
    classical: Optional[ClassicalPane]
    refined_shown: Optional[DecodeSettings]
    decode_busy: bool
    encoded: Any  # engine.api.Encoded or None
    last_step: Any  # StepReport or None
    image: Any  # OpenedImage or None
    samples_dir: Path

    def refined_settings(self) -> DecodeSettings: ...
    def open_path(self, path: Path | str) -> None: ...
    def screen(self) -> Any: ...
    def activateWindow(self) -> None: ...  # noqa: N802

AUTO_ADVANCE_MS = 12_000


class PictureWidget(QWidget):
    """Paints an image as large as fits, keeping its aspect; exact pixels when enlarged."""

    def __init__(self) -> None:
        super().__init__()
        self.image = None
        self.setMinimumSize(200, 150)

    def set_image(self, rgb: Optional[np.ndarray]) -> None:
        # at most the screen's size: a 12 MP photo is not converted, nor scaled on every paint, whole
        screen = QGuiApplication.primaryScreen()
        limit = (screen.geometry().width(), screen.geometry().height()) if screen is not None else (1920, 1080)
        self.image = to_qimage(fit_for_display(rgb, *limit)) if rgb is not None else None
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(0, 0, 0))
        if self.image is None:
            return
        w, h = self.image.width(), self.image.height()
        scale = min(self.width() / w, self.height() / h)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, scale < 1)
        target = QRectF((self.width() - w * scale) / 2, (self.height() - h * scale) / 2, w * scale, h * scale)
        painter.drawImage(target, self.image)


def _label(size_px: int, colour: str) -> QLabel:
    label = QLabel()
    font = QFont()
    font.setPixelSize(size_px)
    label.setFont(font)
    label.setStyleSheet(f"color:{colour}; background:black;")
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setWordWrap(True)  # a long caption wraps instead of widening the window past the screen
    return label


class DemoWindow(QWidget):
    """``advance(+1/-1)`` asks for another sample; ``left`` is emitted when the demo ends."""

    advance = Signal(int)
    left = Signal()

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.setWindowTitle("hfd demo")
        self.setStyleSheet("background:black;")
        self.headline = _label(34, "#ffffff")
        self.left_picture, self.right_picture = PictureWidget(), PictureWidget()
        self.left_caption, self.right_caption = _label(22, "#dddddd"), _label(22, "#ffcc66")
        self.hint = _label(14, "#777777")
        pictures = QHBoxLayout()
        for picture, caption in ((self.left_picture, self.left_caption), (self.right_picture, self.right_caption)):
            column = QVBoxLayout()
            column.addWidget(picture, 1)
            column.addWidget(caption)
            pictures.addLayout(column, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 16, 24, 12)
        layout.addWidget(self.headline)
        layout.addLayout(pictures, 1)
        layout.addWidget(self.hint)
        self.timer = QTimer(self)
        self.timer.setInterval(AUTO_ADVANCE_MS)
        self.timer.timeout.connect(lambda: self.advance.emit(1))
        self._show_hint()

    def set_pictures(self, left: Optional[np.ndarray], right: Optional[np.ndarray]) -> None:
        self.left_picture.set_image(left)
        self.right_picture.set_image(right)

    def set_texts(self, headline: str, left_caption: str, right_caption: str) -> None:
        self.headline.setText(headline)
        self.left_caption.setText(left_caption)
        self.right_caption.setText(right_caption)

    @property
    def auto_advance(self) -> bool:
        return self.timer.isActive()

    def set_auto_advance(self, on: bool) -> None:
        if on:
            self.timer.start()
        else:
            self.timer.stop()
        self._show_hint()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        key = event.key()
        if key in (Qt.Key.Key_Escape, Qt.Key.Key_F11):
            self.close()
        elif key in (Qt.Key.Key_Right, Qt.Key.Key_Space, Qt.Key.Key_PageDown):
            self._step(1)
        elif key in (Qt.Key.Key_Left, Qt.Key.Key_PageUp):
            self._step(-1)
        elif key == Qt.Key.Key_A:
            self.set_auto_advance(not self.auto_advance)
        else:
            super().keyPressEvent(event)

    def closeEvent(self, event) -> None:  # noqa: N802
        self.timer.stop()
        super().closeEvent(event)
        self.left.emit()

    def _step(self, delta: int) -> None:
        if self.auto_advance:
            self.timer.start()  # a manual step restarts the countdown
        self.advance.emit(delta)

    def _show_hint(self) -> None:
        auto = "on" if self.auto_advance else "off"
        self.hint.setText(f"→ / Space next   ← previous   A auto-advance ({auto})   Esc leave")


class DemoMode:
    """Opens the demo window over a main window, feeds it that window's pictures, and turns
    its arrow keys into "open the next sample"."""

    def __init__(self, main: DemoHost) -> None:
        self.main = main
        self.window: Optional[DemoWindow] = None

    @property
    def active(self) -> bool:
        return self.window is not None

    def enter(self) -> None:
        if self.window is None:
            self.window = DemoWindow()
            self.window.advance.connect(self._advance)
            self.window.left.connect(self._on_left)
        self.update()
        screen = self.main.screen()
        if screen is not None:  # without a window manager, full screen alone keeps the natural size
            self.window.setGeometry(screen.geometry())
        self.window.showFullScreen()
        self.window.activateWindow()

    def leave(self) -> None:
        if self.window is not None:
            self.window.close()

    def update(self) -> None:
        """Show the main window's current classical and refined pictures, with their captions."""
        if self.window is None:
            return
        main = self.main
        progress = ""
        step = main.last_step
        if main.decode_busy and step is not None and step.index < step.total:
            progress = f"refining {step.index}/{step.total}"
        nbytes = main.classical.target_bytes if main.classical is not None else None
        settings = main.refined_shown or main.refined_settings()
        self.window.set_texts(*demo_texts(main.classical, nbytes, settings, progress))
        self.window.set_pictures(main.raw["classical"], main.raw["refined"])

    def _advance(self, delta: int) -> None:
        samples = sample_paths(self.main.samples_dir)
        if not samples:
            return
        current = self.main.image.path.resolve() if self.main.image else None
        index = next((i for i, p in enumerate(samples) if p.resolve() == current), -1 if delta > 0 else 0)
        self.main.open_path(samples[(index + delta) % len(samples)])

    def _on_left(self) -> None:
        if self.window is not None:
            self.window.deleteLater()
            self.window = None
        self.main.activateWindow()
