"""Fixtures of the viewer tests: one tiny-weights engine per module, and sample photos."""
from __future__ import annotations

from pathlib import Path

import pytest

from engine.api import Engine
from engine.testing import write_tiny_weights
from tests.viewer.support import make_samples


@pytest.fixture(scope="module")
def tiny_engine(tmp_path_factory):
    """One engine with tiny random-init weights per test module (windows share it, one at a time)."""
    return Engine(weights_dir=write_tiny_weights(tmp_path_factory.mktemp("weights")), device="cpu")


@pytest.fixture
def samples(tmp_path) -> list[Path]:
    return make_samples(tmp_path / "samples")


@pytest.fixture(scope="session", autouse=True)
def no_widget_outlives_the_application():
    """A top-level widget a test forgot to hand to qtbot would be destroyed after the QApplication
    at the interpreter's exit, which segfaults the whole run: delete any such widget while Qt is up."""
    yield
    from PySide6.QtCore import QEvent
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        return
    for widget in app.topLevelWidgets():
        widget.deleteLater()
    app.sendPostedEvents(None, QEvent.Type.DeferredDelete.value)
