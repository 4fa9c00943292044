"""The main window driven like a user would, with tiny random-init weights on the CPU."""
from __future__ import annotations

import json
import re
from dataclasses import replace

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from engine.api import Engine
from engine.codec.images import load_image
from engine.evaluation import metrics
from engine.testing import write_tiny_weights
from tests.viewer.support import (
    IDLE_TIMEOUT_MS,
    image_to_viewport,
    open_window,
    press_drag_release,
)
from viewer.qimage import from_qimage
from viewer.widgets.loupe import magnify
from viewer.window import main_window
from viewer.worker.jobs import PANES, STEP_PERCEPTUAL_CROP
from viewer.worker.thread import centre_crops


@pytest.fixture
def window(qtbot, tmp_path, tiny_engine, samples):
    return open_window(qtbot, tmp_path, tiny_engine)


def plain(html: str) -> str:
    return re.sub(r"<[^>]+>", "", html)


def steps_of(window, qtbot, change) -> tuple[list[int], int]:
    """Make ``change`` and return the step indices streamed for the decode it starts, and its id."""
    seen: list[tuple[int, int]] = []
    window.worker.step.connect(lambda rid, report: seen.append((rid, report.index)))  # runs on the worker thread
    with qtbot.waitSignal(window.decode_ended, timeout=IDLE_TIMEOUT_MS,
                          check_params_cb=lambda rid, outcome: rid == window.request.request_id):
        change()
    rid = window.request.request_id
    return [index for r, index in seen if r == rid], rid


def test_opens_the_first_sample_and_fills_every_pane(window, samples):
    np.testing.assert_array_equal(window.raw["original"], load_image(samples[0]).rgb)
    for pane in PANES:
        assert window.raw[pane].shape == window.raw["original"].shape, pane
    assert f"{window.encoded.nbytes:,} bytes" in plain(window.controls.file_label.text())
    assert float(window.table.text("ae", "PSNR ↑")) == pytest.approx(window.stats["ae"].psnr, abs=0.01)
    assert float(window.table.text("classical", "bpp")) > 0
    assert " dB" in window.caption("refined") and window.caption("refined").startswith("3 · Refined")
    assert window.status.label.text().startswith("done")
    assert len(window.rate_plot.points()) > 0


def test_bitrate_slider_encodes_again_and_shows_the_real_file(window, qtbot):
    old = window.request.request_id
    with qtbot.waitSignal(window.decode_ended, timeout=IDLE_TIMEOUT_MS,
                          check_params_cb=lambda rid, outcome: rid > old):
        window.controls.bpp.setValue(0.6)
    assert window.request.bpp == pytest.approx(0.6, rel=0.01)
    encoded = window.encoded
    assert f"{encoded.nbytes:,} bytes · {encoded.bpp:.3f} bpp" in plain(window.controls.file_label.text())
    assert window.stats["ae"].nbytes == encoded.nbytes and window.stats["ae"].bpp == pytest.approx(encoded.bpp)
    assert window.rate_plot.current.value() == pytest.approx(encoded.bpp)  # the real file's bpp, on the curve


def test_optimising_the_encoding_makes_a_new_file_and_shows_its_progress(window, qtbot, monkeypatch):
    monkeypatch.setattr(main_window, "DEFAULT_OPTIMISE_STEPS", 3)  # the shipped count takes minutes on a CPU
    shown = []
    optimising = window.status.optimising
    monkeypatch.setattr(window.status, "optimising", lambda done, total: shown.append((done, total)) or
                        optimising(done, total))
    plain_file, old = window.encoded, window.request.request_id
    with qtbot.waitSignal(window.decode_ended, timeout=IDLE_TIMEOUT_MS,
                          check_params_cb=lambda rid, outcome: rid > old):
        window.controls.optimise.click()
    assert window.request.optimise_steps == 3
    assert window.encoded.data != plain_file.data
    assert f"{window.encoded.nbytes:,} bytes" in plain(window.controls.file_label.text())
    assert shown and shown[-1][0] == shown[-1][1] and shown[-1][1] in (3, 9)
    assert window.status.label.text().startswith("done")


def test_changing_steps_streams_exactly_that_many_steps(window, qtbot):
    steps, _ = steps_of(window, qtbot, lambda: window.controls.steps.setValue(5))
    assert steps == [1, 2, 3, 4, 5]
    assert window.step_plot.points()[0] == [1, 2, 3, 4, 5]
    perceptual = window.step_plot.perceptual_points()
    assert [step for step, _ in perceptual] == [1, 2, 3, 4, 5] and all(0 <= v <= 1.5 for _, v in perceptual)
    # the dashed curve is the centre crop's score, and its axis says so
    crops = centre_crops(window.raw["refined"], window.raw["original"])
    assert perceptual[-1][1] == pytest.approx(metrics.st_lpips(*crops), abs=1e-6)
    assert window.step_plot.getPlotItem().getAxis("right").labelText == f"ST-LPIPS, centre {STEP_PERCEPTUAL_CROP}² ↓"
    assert window.status.label.text() == f"done: 5 steps in {window.last_step.elapsed_s:.1f} s"


def test_stop_cancels_the_running_decode_and_keeps_the_last_estimate(window, qtbot):
    window.controls.set_values(replace(window.controls.values(), steps=256))
    window.request_decode()
    qtbot.waitUntil(lambda: window.last_step is not None, timeout=IDLE_TIMEOUT_MS)
    with qtbot.waitSignal(window.decode_ended, timeout=IDLE_TIMEOUT_MS) as blocker:
        window.status.stop.click()
    assert blocker.args[1] == "stopped"
    assert window.last_step.index < 256
    assert window.status.label.text().startswith(f"stopped at step {window.last_step.index}/256")
    assert not window.status.stop.isEnabled()


def test_moving_a_control_mid_decode_cancels_it_and_runs_only_the_newest(window, qtbot):
    window.controls.steps.blockSignals(True)
    window.controls.steps.setValue(256)
    window.controls.steps.blockSignals(False)
    window.request_decode()
    qtbot.waitUntil(lambda: window.last_step is not None, timeout=IDLE_TIMEOUT_MS)
    first = window.request.request_id
    cancelled, finished = [], []
    window.worker.decode_cancelled.connect(cancelled.append)
    window.worker.decode_finished.connect(finished.append)
    window.controls.steps.setValue(3)  # cancels request `first`...
    window.controls.seed.setValue(11)  # ...and this one supersedes the steps=3 request before it runs
    qtbot.waitUntil(lambda: window.request.request_id in finished, timeout=IDLE_TIMEOUT_MS)
    assert first in cancelled
    assert finished == [window.request.request_id]  # nothing older finished
    assert window.request.settings.seed == 11 and window.request.settings.steps == 3


def test_a_corrupt_file_shows_a_message_and_keeps_the_previous_image(window, qtbot, tmp_path):
    before = window.raw["original"].copy()
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    with qtbot.waitSignal(window.idle, timeout=IDLE_TIMEOUT_MS):
        window.open_path(bad)
    assert "broken.png" in window.banner.text() and not window.banner.isHidden()
    np.testing.assert_array_equal(window.raw["original"], before)
    assert window.image.path.name == "sample0.png"


def test_dropping_a_file_opens_it(window, qtbot, samples):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(samples[1]))])
    event = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton,
                       Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(window.idle, timeout=IDLE_TIMEOUT_MS):
        window.dropEvent(event)
    assert window.image.path == samples[1]
    np.testing.assert_array_equal(window.raw["original"], load_image(samples[1]).rgb)
    assert window.settings.recent_files()[0] == samples[1].resolve()


def test_number_keys_flicker_between_panes(window, qtbot):
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_3)
    assert window.views.mode == "flicker" and window.views.flicker.current == "refined"
    qtbot.keyClick(window, Qt.Key.Key_2)
    np.testing.assert_array_equal(window.views.flicker.items["ae"].pyramid.image, window.raw["ae"])
    assert [p for p, item in window.views.flicker.items.items() if item.isVisible()] == ["ae"]
    qtbot.keyClick(window, Qt.Key.Key_G)
    assert window.views.mode == "grid"


def test_loupe_shows_exact_pixels_and_follows_the_decode(window, qtbot):
    box, canvas = window.views.grid.box["ae"], window.views.grid.canvas
    press_drag_release(canvas.viewport(), image_to_viewport(canvas, box, 4, 6),
                       image_to_viewport(canvas, box, 20, 18), Qt.KeyboardModifier.ShiftModifier)
    qtbot.waitUntil(window.loupe.isVisible, timeout=2000)
    crop, factor = window.loupe.crop, window.loupe.magnification.value()
    for pane in PANES:
        shown = from_qimage(window.loupe.views[pane].pixmap().toImage())
        np.testing.assert_array_equal(shown, magnify(crop.of(window.raw[pane]), factor), err_msg=pane)
    old = window.raw["refined"].copy()
    with qtbot.waitSignal(window.idle, timeout=IDLE_TIMEOUT_MS):
        window.controls.seed.setValue(window.controls.seed.value() + 1)
    assert not np.array_equal(old, window.raw["refined"])
    shown = from_qimage(window.loupe.views["refined"].pixmap().toImage())
    np.testing.assert_array_equal(shown, magnify(crop.of(window.raw["refined"]), factor))


def test_maps_show_errors_and_invented_detail(window, qtbot):
    window.set_maps(True)  # the worker computes them: a 12 MP map takes seconds
    qtbot.waitUntil(lambda: all(window.shown_image(p) is not None for p in PANES), timeout=10_000)
    assert window.caption("original").startswith("1 · Invented detail")
    assert window.views.grid.items["ae"].pyramid.image.shape == window.raw["ae"].shape
    from viewer.maps import error_image, invented_image
    invented, scale = invented_image(window.raw["refined"], window.raw["ae"])
    np.testing.assert_array_equal(window.shown_image("original"), invented)
    assert f"0 … {scale:g}+ levels" in window.caption("original")
    np.testing.assert_array_equal(window.shown_image("classical"),
                                  error_image(window.raw["classical"], window.raw["original"]))
    window.set_maps(False)
    np.testing.assert_array_equal(window.shown_image("ae"), window.raw["ae"])


def test_controls_and_view_are_remembered(window, qtbot, tmp_path, tiny_engine):
    window.controls.steps.setValue(9)
    window.set_mode("split")
    qtbot.waitUntil(lambda: not window.decode_busy, timeout=IDLE_TIMEOUT_MS)
    window.close()
    again = open_window(qtbot, tmp_path, tiny_engine, steps=None)
    assert again.controls.values().steps == 9
    assert again.views.mode == "split"


def test_clicking_the_rate_plot_picks_that_bitrate(window, qtbot):
    plot = window.rate_plot
    box = plot.getPlotItem().getViewBox()
    y = box.viewRect().center().y()
    where = plot.mapFromScene(box.mapViewToScene(QPointF(0.4, y)))
    old = window.request.request_id
    with qtbot.waitSignal(window.decode_ended, timeout=IDLE_TIMEOUT_MS,
                          check_params_cb=lambda rid, outcome: rid > old):
        qtbot.mouseClick(plot.viewport(), Qt.MouseButton.LeftButton, pos=where)
    assert window.request.bpp == pytest.approx(0.4, rel=0.03)
    assert window.controls.values().bpp == window.request.bpp


def test_the_toolbar_shows_which_layout_and_pane_are_on(window, qtbot):
    window.views.show_pane("classical")
    assert window.actions_by_name["pane_4"].isChecked() and not window.actions_by_name["grid"].isChecked()
    window.views.show_pane("ae")
    assert window.actions_by_name["pane_2"].isChecked() and not window.actions_by_name["pane_4"].isChecked()
    window.set_mode("split")
    assert window.actions_by_name["split"].isChecked()


def test_auto_realism_follows_the_rate_of_each_file(qtbot, tmp_path, samples):
    weights = write_tiny_weights(tmp_path / "weights")
    (weights / "decode_defaults.json").write_text(json.dumps(
        {decoder: {"steps": 2, "shift": 0.0, "noise": 0.0, "realism": [[0.0, 1.0], [1.0, 0.0]]}
         for decoder in ("diffusion", "flow")}))
    window = open_window(qtbot, tmp_path, Engine(weights, device="cpu"), steps=None)
    assert window.controls.values().realism_auto and not window.controls.realism.isEnabled()

    def check() -> float:
        realism = round(1.0 - window.encoded.rate, 3)  # this schedule: 1 − rate
        assert window.request.settings.realism == pytest.approx(realism)
        assert window.controls.realism.value() == pytest.approx(realism, abs=0.01)
        assert f"realism {realism:g})" in window.caption("refined")
        return realism

    first = check()
    old = window.request.request_id
    with qtbot.waitSignal(window.decode_ended, timeout=IDLE_TIMEOUT_MS, check_params_cb=lambda rid, outcome: rid > old):
        window.controls.bpp.setValue(window.controls.bpp.range()[1])
    assert check() < first  # more bits, a higher rate, less invented detail
    assert window.controls.values().realism_auto  # showing the blend is not a user's choice
