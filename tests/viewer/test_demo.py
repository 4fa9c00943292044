"""Demo mode: full screen, classical vs learned at the same size, keyboard only."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from engine.api import DecodeSettings
from tests.viewer.support import IDLE_TIMEOUT_MS, open_window
from viewer.captions import demo_texts, human_size, pane_title
from viewer.controls import ControlValues
from viewer.qimage import from_qimage


@pytest.fixture
def window(qtbot, tmp_path, tiny_engine, samples):
    return open_window(qtbot, tmp_path, tiny_engine)


def test_demo_opens_full_screen_with_both_pictures_and_closes_on_escape(window, qtbot):
    qtbot.keyClick(window, Qt.Key.Key_F11)
    demo = window.demo.window
    assert demo is not None and demo.isFullScreen()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is demo, timeout=2000)
    size = human_size(window.encoded.nbytes)
    assert demo.headline.text() == f"Same {size} file: JPEG | learned decoder"
    assert demo.left_caption.text() == "JPEG" and demo.right_caption.text().startswith("Learned decoder")
    np.testing.assert_array_equal(demo_pixels(demo.left_picture), window.raw["classical"])
    np.testing.assert_array_equal(demo_pixels(demo.right_picture), window.raw["refined"])
    qtbot.keyClick(demo, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not window.demo.active, timeout=2000)


def test_arrow_keys_move_through_the_samples(window, qtbot, samples):
    window.enter_demo()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window.demo.window, timeout=2000)
    with qtbot.waitSignal(window.idle, timeout=IDLE_TIMEOUT_MS):
        qtbot.keyClick(window.demo.window, Qt.Key.Key_Right)
    assert window.image.path == samples[1]
    with qtbot.waitSignal(window.idle, timeout=IDLE_TIMEOUT_MS):
        qtbot.keyClick(window.demo.window, Qt.Key.Key_Space)
    assert window.image.path == samples[0]  # wraps around
    qtbot.keyClick(window.demo.window, Qt.Key.Key_A)
    assert window.demo.window.auto_advance and "auto-advance (on)" in window.demo.window.hint.text()
    qtbot.keyClick(window.demo.window, Qt.Key.Key_F11)
    qtbot.waitUntil(lambda: not window.demo.active, timeout=2000)


def test_demo_texts_speak_in_file_sizes():
    settings = ControlValues(decoder="flow", steps=4, realism_auto=False).settings()
    headline, left, right = demo_texts("webp", 7213, settings, "refining 2/4")
    assert headline == "Same 7.2 KB file: WebP | learned decoder"
    assert left == "WebP" and right == "Learned decoder (rectified flow, 4 steps) — refining 2/4"


def demo_pixels(picture) -> np.ndarray:
    return from_qimage(picture.image)


def test_the_refined_title_says_when_the_decode_is_blended_with_the_autoencoders():
    full = DecodeSettings("diffusion", steps=2, realism=1.0)
    assert pane_title("refined", "jpeg", full, maps=False) == "Refined (diffusion, 2 steps)"
    blended = DecodeSettings("flow", steps=8, realism=0.5)
    assert pane_title("refined", "jpeg", blended, maps=False) == "Refined (rectified flow, 8 steps, realism 0.5)"
    assert demo_texts("jpeg", 1000, blended)[2] == "Learned decoder (rectified flow, 8 steps, realism 0.5)"
    auto = DecodeSettings("flow", steps=8, realism=None)  # before the file's rate has picked the blend
    assert pane_title("refined", "jpeg", auto, maps=False) == "Refined (rectified flow, 8 steps, realism auto)"
