"""Saving what the window shows: pane PNGs, the real .hfd file, the labelled comparison sheet."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QThread

from engine.codec.images import load_image
from tests.viewer.support import open_window
from viewer.qimage import from_qimage
from viewer.window.export import CAPTION_PX, GAP_PX, compose_comparison
from viewer.worker.jobs import PANES


@pytest.fixture
def window(qtbot, tmp_path, tiny_engine, samples):
    return open_window(qtbot, tmp_path, tiny_engine)


def saved(qtbot, window, save, path) -> None:
    """Saves go through the worker (a 12 MP PNG takes seconds): wait until it says the file is written."""
    with qtbot.waitSignal(window.worker.saved, timeout=10_000, check_params_cb=lambda p: p == str(path)):
        save(path)


def test_a_saved_pane_is_exactly_what_it_shows(window, tmp_path, qtbot):
    for pane in ("refined", "classical"):
        path = tmp_path / f"{pane}.png"
        saved(qtbot, window, lambda p, pane=pane: window.save_pane(pane, p), path)
        np.testing.assert_array_equal(load_image(path).rgb, window.raw[pane])
    window.set_maps(True)
    qtbot.waitUntil(lambda: window.shown_image("original") is not None, timeout=10_000)
    saved(qtbot, window, lambda p: window.save_pane("original", p), tmp_path / "invented.png")
    np.testing.assert_array_equal(load_image(tmp_path / "invented.png").rgb, window.shown_image("original"))


def test_a_save_that_fails_says_so_in_the_window(window, tmp_path, qtbot):
    with qtbot.waitSignal(window.worker.save_failed, timeout=10_000):
        window.save_pane("refined", tmp_path / "no-such-folder" / "x.png")
    qtbot.waitUntil(lambda: "Could not save x.png" in window.banner.text(), timeout=2000)


def test_the_window_hears_of_a_save_on_its_own_thread(window, tmp_path, qtbot, monkeypatch):
    """The worker's "saved" signal must reach the window queued: run on the worker's thread, the
    status-bar message touched widgets from there (Qt warned about children across threads)."""
    threads = []
    bar = window.statusBar()
    monkeypatch.setattr(bar, "showMessage", lambda *args: threads.append(QThread.currentThread()))
    saved(qtbot, window, lambda p: window.save_pane("refined", p), tmp_path / "r.png")
    qtbot.waitUntil(lambda: bool(threads), timeout=2000)
    assert threads == [window.thread()]


def test_the_saved_hfd_file_decodes_to_the_autoencoder_pane(window, tmp_path, tiny_engine, qtbot):
    path = tmp_path / "image.hfd"
    saved(qtbot, window, window.save_hfd, path)
    assert path.read_bytes() == window.encoded.data
    np.testing.assert_array_equal(tiny_engine.decode_ae(path.read_bytes()), window.raw["ae"])


def test_comparison_sheet_holds_every_pane_under_its_caption(window, tmp_path, qtbot):
    path = tmp_path / "sheet.png"
    saved(qtbot, window, window.save_comparison, path)
    sheet = load_image(path).rgb
    h, w = window.raw["original"].shape[:2]
    assert sheet.shape == (2 * (h + CAPTION_PX) + 3 * GAP_PX, 2 * w + 3 * GAP_PX, 3)
    for i, pane in enumerate(PANES):
        row, col = divmod(i, 2)
        y = GAP_PX + row * (h + CAPTION_PX + GAP_PX) + CAPTION_PX
        x = GAP_PX + col * (w + GAP_PX)
        np.testing.assert_array_equal(sheet[y:y + h, x:x + w], window.raw[pane], err_msg=pane)
        caption_strip = sheet[y - CAPTION_PX:y, x:x + w]
        assert caption_strip.max() > 128, f"no caption text above {pane}"


def test_compose_handles_an_odd_number_of_panels():
    image = np.full((10, 12, 3), 200, np.uint8)
    sheet = from_qimage(compose_comparison([("a", image), ("b", image), ("c", image)]))
    assert sheet.shape == (2 * (10 + CAPTION_PX) + 3 * GAP_PX, 2 * 12 + 3 * GAP_PX, 3)
