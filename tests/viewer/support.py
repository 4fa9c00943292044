"""Shared helpers for the viewer tests (the fixtures are in conftest.py): sample folders, a
window factory and mouse drags that go through Qt's real event path."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Optional

import numpy as np
from PySide6.QtCore import QEvent, QPoint, QPointF, QSettings, Qt
from PySide6.QtGui import QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication, QWidget

from engine.api import Engine
from engine.codec.images import save_png
from tests.support import photo_like
from viewer.window.main_window import MainWindow
from viewer.window.settings import ViewerSettings

SAMPLE_SHAPES = ((64, 96), (80, 112))  # small enough for a 2-core CPU, big enough for the tiny model
IDLE_TIMEOUT_MS = 60_000


def make_samples(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (h, w) in enumerate(SAMPLE_SHAPES):
        path = folder / f"sample{i}.png"
        save_png(path, photo_like(h, w, seed=i))
        paths.append(path)
    return paths


def settings_in(folder: Path) -> QSettings:
    """A QSettings in its own ini file, so tests never touch the user's settings."""
    return QSettings(str(folder / "viewer.ini"), QSettings.Format.IniFormat)


def open_window(qtbot, tmp_path: Path, engine: Engine, steps: Optional[int] = 4) -> MainWindow:
    """A shown main window on the first sample, after its first decode and rate sweep;
    ``steps`` (if given) is written to its settings first, to keep decodes short."""
    store = settings_in(tmp_path)
    if steps is not None:
        remembered = ViewerSettings(store)
        remembered.set_controls(replace(remembered.controls(), steps=steps))
    window = MainWindow(lambda device: engine, store, samples_dir=tmp_path / "samples", rate_points=3)
    qtbot.addWidget(window)
    window.resize(1100, 760)
    window.show()
    with qtbot.waitSignal(window.idle, timeout=IDLE_TIMEOUT_MS):
        window.start()
    return window


def press_drag_release(widget: QWidget, start: QPointF, end: QPointF,
                       modifiers: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier, steps: int = 6) -> None:
    """A left-button drag from ``start`` to ``end`` (widget coordinates) through QApplication.sendEvent."""
    def send(kind: QEvent.Type, pos: QPointF, button: Qt.MouseButton, buttons: Qt.MouseButton) -> None:
        global_pos = QPointF(widget.mapToGlobal(pos.toPoint()))
        QApplication.sendEvent(widget, QMouseEvent(kind, pos, global_pos, button, buttons, modifiers))

    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    send(QEvent.Type.MouseButtonPress, start, left, left)
    for i in range(1, steps + 1):
        send(QEvent.Type.MouseMove, start + (end - start) * (i / steps), none, left)
    send(QEvent.Type.MouseButtonRelease, end, left, none)


def wheel(widget: QWidget, pos: QPointF, notches: int) -> None:
    """Turn the mouse wheel over ``pos`` (positive = away from the user = zoom in)."""
    event = QWheelEvent(pos, QPointF(widget.mapToGlobal(pos.toPoint())), QPoint(0, 0), QPoint(0, 120 * notches),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)


def image_to_viewport(canvas, box, x: float, y: float) -> QPointF:
    """Where image coordinate (x, y) of ``box`` lies in ``canvas``'s viewport."""
    scene = box.mapViewToScene(QPointF(x, y))
    return QPointF(canvas.mapFromScene(scene))


def random_image(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
