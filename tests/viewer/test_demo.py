"""Demo mode: full screen, classical vs learned at the same size, keyboard only."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from engine.api import DecodeSettings
from tests.viewer.support import IDLE_TIMEOUT_MS, open_window
from viewer.captions import demo_texts, human_size, pane_title
from viewer.qimage import from_qimage
from viewer.widgets.controls import ControlValues
from viewer.worker.jobs import ClassicalPane


@pytest.fixture
def window(qtbot, tmp_path, tiny_engine, samples):
    return open_window(qtbot, tmp_path, tiny_engine)


def test_demo_opens_full_screen_with_both_pictures_and_closes_on_escape(window, qtbot):
    qtbot.keyClick(window, Qt.Key.Key_F11)
    demo = window.demo.window
    assert demo is not None and demo.isFullScreen()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is demo, timeout=2000)
    classical = window.classical
    assert demo.headline.text() == demo_texts(classical, window.encoded.nbytes, window.refined_shown)[0]
    assert demo.left_caption.text() == f"JPEG, {human_size(classical.nbytes)}"
    assert demo.right_caption.text().startswith("Learned decoder") and "refining" not in demo.right_caption.text()
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


def test_demo_texts_say_same_size_only_when_the_files_are():
    settings = ControlValues(decoder="flow", steps=4, realism_auto=False).settings()
    same = ClassicalPane("webp", 7100, 40, over_target=False)
    headline, left, right = demo_texts(same, 7213, settings, "refining 2/4")
    assert headline == "Same 7.2 KB file: WebP | learned decoder"
    assert left == "WebP, 7.1 KB" and right == "Learned decoder (rectified flow, 4 steps) — refining 2/4"
    too_big = ClassicalPane("avif", 5400, 0, over_target=True)
    assert demo_texts(too_big, 685, settings)[0] == ("AVIF cannot go this small: its smallest file is 5.4 KB, "
                                                     "7.9× the learned decoder's 685 B")
    coarse = ClassicalPane("jpeg", 5000, 3, over_target=False)
    assert demo_texts(coarse, 7213, settings)[0] == "JPEG 5.0 KB | learned decoder 7.2 KB"


def demo_pixels(picture) -> np.ndarray:
    return from_qimage(picture.image)


def test_the_refined_title_says_when_the_decode_is_blended_with_the_autoencoders():
    full = DecodeSettings("diffusion", steps=2, realism=1.0)
    assert pane_title("refined", "jpeg", full, maps=False) == "Refined (diffusion, 2 steps)"
    one = DecodeSettings("flow", steps=1, realism=1.0)
    assert pane_title("refined", "jpeg", one, maps=False) == "Refined (rectified flow, 1 step)"
    blended = DecodeSettings("flow", steps=8, realism=0.5)
    assert pane_title("refined", "jpeg", blended, maps=False) == "Refined (rectified flow, 8 steps, realism 0.5)"
    assert demo_texts(None, 1000, blended)[2] == "Learned decoder (rectified flow, 8 steps, realism 0.5)"
    auto = DecodeSettings("flow", steps=8, realism=None)  # before the file's rate has picked the blend
    assert pane_title("refined", "jpeg", auto, maps=False) == "Refined (rectified flow, 8 steps, realism auto)"


def test_the_classical_caption_says_same_size_only_within_a_few_percent():
    settings = DecodeSettings("flow", steps=2)
    title = lambda pane, hfd: pane_title("classical", "avif", settings, False, pane, hfd)  # noqa: E731
    assert title(ClassicalPane("avif", 9800, 30, False), 10_000) == "AVIF, same size"
    assert title(ClassicalPane("avif", 5400, 0, True), 685) == "AVIF's smallest file, 5.4 KB: 7.9× larger"
    assert title(ClassicalPane("jpeg", 12_400, 2, False), 88_300) == (
        "JPEG, 12.4 KB: 86 % smaller (its next quality is larger)")
    assert title(None, 10_000) == "AVIF (finding the file of the same size…)"
