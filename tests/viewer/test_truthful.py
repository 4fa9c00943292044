"""What the window says stays true: sizes, ranges, which result a pane shows; and what a user
opens, moves or closes behaves (issue 38's defects, one test each)."""
from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication

from tests.viewer.support import IDLE_TIMEOUT_MS, open_window, settings_in
from viewer.widgets.controls import ControlPanel, ControlValues
from viewer.widgets.loupe import MAX_PANE_PX
from viewer.widgets.panes import Crop
from viewer.window.main_window import MainWindow
from viewer.window.settings import ViewerSettings
from viewer.window.shortcuts import SHORTCUTS


@pytest.fixture
def window(qtbot, tmp_path, tiny_engine, samples):
    return open_window(qtbot, tmp_path, tiny_engine)


def test_quit_in_the_middle_of_an_encode_closes_at_once_and_ends_the_worker(qtbot, tmp_path, tiny_engine, samples,
                                                                              monkeypatch):
    encode = tiny_engine.encode

    def slow_encode(*args, cancel=None, **kwargs):  # an encode of a large photo: many tiles
        for _ in range(600):
            cancel.check()
            time.sleep(0.01)
        return encode(*args, cancel=cancel, **kwargs)

    monkeypatch.setattr(tiny_engine, "encode", slow_encode)
    window = MainWindow(lambda device: tiny_engine, settings_in(tmp_path), samples_dir=tmp_path / "samples")
    window.show()
    window.start()
    qtbot.waitUntil(lambda: window.status.label.text() == "encoding…" and window.info is not None, timeout=10_000)
    start = time.perf_counter()
    window.close()  # returns at once: the window hides, the close completes when the worker has stopped
    assert time.perf_counter() - start < 0.5 and not window.isVisible()
    qtbot.waitUntil(window.host.finished, timeout=2_000)
    qtbot.waitUntil(lambda: not window.isVisible() and window._closing, timeout=2_000)
    assert time.perf_counter() - start < 1.5


def test_the_classical_pane_says_same_size_only_when_the_codec_can_reach_it(window):
    classical, hfd = window.classical, window.encoded.nbytes
    caption = window.caption("classical")
    if classical.over_target:  # tiny images: JPEG's headers alone outweigh the .hfd file
        assert "smallest file" in caption and "× larger" in caption and "same size" not in caption
    else:
        assert "same size" in caption and classical.nbytes >= 0.95 * hfd


def test_changing_only_the_codec_redoes_only_the_classical_pane_and_marks_it_stale_meanwhile(window, qtbot):
    request_id, refined = window.request.request_id, window.raw["refined"]
    with qtbot.waitSignal(window.worker.classical_ready, timeout=IDLE_TIMEOUT_MS):
        window.controls.codec.setCurrentIndex(window.controls.codec.findData("webp"))
        assert "classical" in window.stale and "earlier result" in window.caption("classical")
        assert window.caption("classical").split("·")[1].strip().startswith("JPEG")  # what it still shows
    qtbot.waitUntil(lambda: "classical" not in window.stale, timeout=IDLE_TIMEOUT_MS)
    assert window.caption("classical").split("·")[1].strip().startswith("WebP")
    assert window.request.request_id == request_id and window.raw["refined"] is refined


def test_the_bitrate_slider_spans_what_this_photo_can_reach(window):
    low, high = window.encoded.reach
    assert window.controls.bpp.range() == (low, high)


def test_a_remembered_bitrate_below_the_slider_survives_the_model_loading(qtbot):
    panel = ControlPanel(ControlValues(bpp=0.0086))
    qtbot.addWidget(panel)  # a widget outliving the QApplication crashes the interpreter's exit
    assert panel.values().bpp == 0.0086
    panel.set_bpp_reach(0.05, 1.2)  # this photo's range
    assert panel.values().bpp == 0.0086 and panel.bpp.value() == pytest.approx(0.05)


def test_a_hfd_file_opens_and_shows_the_panes_that_make_sense(window, qtbot, tmp_path):
    path = tmp_path / "opened.hfd"
    path.write_bytes(window.encoded.data)
    with qtbot.waitSignal(window.decode_ended, timeout=IDLE_TIMEOUT_MS):
        window.open_path(path)
    assert window.image.hfd is not None and window.raw["original"] is None and window.raw["classical"] is None
    assert window.raw["ae"] is not None and window.raw["refined"] is not None
    assert window.caption("original").startswith("1 · Original: not available")
    assert not window.controls.bpp.isEnabled() and not window.controls.codec.isEnabled()
    assert window.encoded.data == path.read_bytes()


def test_the_loupe_is_capped_and_esc_closes_it(window, qtbot):
    window.show_loupe(Crop(0, 0, 3, 3))  # a tiny crop would ask for ×32 and more
    qtbot.waitUntil(window.loupe.isVisible, timeout=2000)
    assert window.loupe.magnification.value() * 3 <= MAX_PANE_PX
    window.show_loupe(Crop(0, 0, 60, 40))
    assert window.loupe.magnification.maximum() * 60 <= MAX_PANE_PX
    qtbot.keyClick(window.loupe, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not window.loupe.isVisible(), timeout=2000)


def test_no_gpu_entry_without_cuda(qtbot):
    panel = ControlPanel(ControlValues(), devices=("auto", "cpu"))
    qtbot.addWidget(panel)
    assert [panel.device.itemData(i) for i in range(panel.device.count())] == ["auto", "cpu"]


def test_the_wheel_passing_over_a_slider_does_not_move_it_and_an_arrow_key_moves_it_visibly(qtbot):
    panel = ControlPanel(ControlValues())
    qtbot.addWidget(panel)
    panel.show()
    slider = panel.noise.slider
    before = slider.value()
    wheel = QWheelEvent(QPointF(5, 5), QPointF(slider.mapToGlobal(QPoint(5, 5))), QPoint(0, 0), QPoint(0, 120),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(slider, wheel)
    assert slider.value() == before
    slider.setFocus()
    qtbot.keyClick(slider, Qt.Key.Key_Right)
    assert panel.noise.value() - 0.0 == pytest.approx(0.01)  # 1 % of the range, shown as 0.01


def test_with_maps_on_the_pixel_readout_gives_the_difference_not_the_colour(window, qtbot):
    window.set_maps(True)
    qtbot.waitUntil(lambda: window.shown_image("ae") is not None, timeout=10_000)
    window._on_hover("ae", 5, 7)
    a, b = window.raw["ae"][7, 5].astype(int), window.raw["original"][7, 5].astype(int)
    assert f"2: Δ {np.abs(a - b).mean():.1f}" in window.pixel_readout.text()


def test_help_names_its_list_and_about_names_the_device(window):
    assert SHORTCUTS["help"][1] == "Keyboard shortcuts"
    from viewer.window.about import model_facts_html

    assert "Running on</td><td>the CPU" in model_facts_html(window.info, window.device)


def test_an_image_is_remembered_with_its_bitrate(qtbot, tmp_path):
    store = settings_in(tmp_path)
    ViewerSettings(store).set_controls(replace(ControlValues(), bpp=0.0086))
    assert ViewerSettings(store).controls().bpp == 0.0086


def test_opening_another_image_clears_the_file_label_until_its_own_file_exists(window, qtbot, samples, monkeypatch):
    assert "bytes" in window.controls.file_label.text()
    seen = []
    monkeypatch.setattr(window.worker, "request_decode", lambda request: seen.append(window.controls.file_label.text()))
    with qtbot.waitSignal(window.worker.opened, timeout=IDLE_TIMEOUT_MS):
        window.open_path(samples[1])
    qtbot.waitUntil(lambda: bool(seen), timeout=5000)
    assert seen[0] == "file: not encoded yet"
