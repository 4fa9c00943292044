"""The image views without an engine: linked zoom, camera across layouts, crops, the loupe."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from tests.viewer.support import (
    image_to_viewport,
    press_drag_release,
    random_image,
    wheel,
)
from viewer.qimage import from_qimage
from viewer.widgets.loupe import LoupeWindow, auto_magnification, magnify
from viewer.widgets.panes import Crop
from viewer.widgets.views import ComparisonViews
from viewer.worker.jobs import PANES


@pytest.fixture
def views(qtbot):
    widget = ComparisonViews()
    qtbot.addWidget(widget)
    widget.resize(800, 600)
    widget.show()
    qtbot.waitExposed(widget)
    images = {pane: random_image(seed=i) for i, pane in enumerate(PANES)}
    for pane, image in images.items():
        widget.set_image(pane, image)
    qtbot.wait(20)  # the first fit runs from the event loop
    widget.images = images
    return widget


def test_zooming_one_pane_moves_all_of_them(views, qtbot):
    boxes = views.grid.box
    before = {p: b.camera() for p, b in boxes.items()}
    boxes["classical"].scaleBy(s=(0.25, 0.25), center=(20, 10))
    qtbot.wait(10)
    for pane, box in boxes.items():
        cam = box.camera()
        assert cam.upp == pytest.approx(before[pane].upp * 0.25, rel=0.02), pane
        assert (cam.cx, cam.cy) == pytest.approx((boxes["classical"].camera().cx, boxes["classical"].camera().cy),
                                                 abs=0.5), pane


def test_camera_survives_layout_switches(views, qtbot):
    box, canvas = views.grid.box["ae"], views.grid.canvas
    wheel(canvas.viewport(), image_to_viewport(canvas, box, 40, 30), 3)
    qtbot.wait(10)
    assert not views.auto_fit
    cam = views.camera()
    for mode in ("flicker", "split", "grid"):
        views.set_mode(mode)
        qtbot.wait(20)
        now = views.camera()
        assert (now.cx, now.cy, now.upp) == pytest.approx((cam.cx, cam.cy, cam.upp), rel=1e-3), mode


def test_the_image_stays_fitted_while_the_window_resizes_until_the_user_zooms(views, qtbot):
    full = views.camera().upp
    views.resize(400, 300)
    qtbot.wait(20)
    assert views.camera().upp > full * 1.5  # refitted: more image pixels per screen pixel
    box, canvas = views.grid.box["original"], views.grid.canvas
    wheel(canvas.viewport(), image_to_viewport(canvas, box, 30, 20), 2)
    views.resize(800, 600)
    qtbot.wait(20)
    kept = views.current_box().viewRect()
    assert not views.auto_fit
    views.fit()
    assert views.auto_fit
    fitted = views.current_box().viewRect()
    assert abs(kept.center().x() - fitted.center().x()) > 0.5  # the user's view was kept, not refitted


def test_one_to_one_shows_one_image_pixel_per_screen_pixel(views, qtbot):
    views.one_to_one()
    qtbot.wait(10)
    assert views.camera().upp == pytest.approx(1.0, rel=1e-3)


def test_flicker_shows_the_chosen_pane(views):
    views.show_pane("refined")
    assert views.mode == "flicker"
    np.testing.assert_array_equal(views.flicker.items["refined"].pyramid.image, views.images["refined"])
    assert [p for p, item in views.flicker.items.items() if item.isVisible()] == ["refined"]


def test_split_view_clips_the_left_pane_at_the_divider(views, qtbot):
    views.set_mode("split")
    views.split.set_panes("ae", "classical")
    views.split.divider.setValue(20)
    qtbot.wait(10)
    assert views.split._clip.rect().width() == pytest.approx(20)
    assert views.split.pane_at(views.split.box, 10) == "ae"
    assert views.split.pane_at(views.split.box, 30) == "classical"
    np.testing.assert_array_equal(views.split.left_item.pyramid.image, views.images["ae"])
    np.testing.assert_array_equal(views.split.right_item.pyramid.image, views.images["classical"])


def test_shift_drag_on_a_pane_draws_a_crop_in_image_pixels(views, qtbot):
    box, canvas = views.grid.box["refined"], views.grid.canvas
    start = image_to_viewport(canvas, box, 10.2, 5.5)
    end = image_to_viewport(canvas, box, 30.7, 20.1)
    with qtbot.waitSignal(views.crop_drawn, timeout=2000) as blocker:
        press_drag_release(canvas.viewport(), start, end, Qt.KeyboardModifier.ShiftModifier)
    assert blocker.args[0] == Crop(10, 5, 31, 21)


def test_plain_drag_pans_instead_of_cropping(views, qtbot):
    box, canvas = views.grid.box["ae"], views.grid.canvas
    before = box.camera()
    crops = []
    views.crop_drawn.connect(crops.append)
    press_drag_release(canvas.viewport(), image_to_viewport(canvas, box, 30, 20),
                       image_to_viewport(canvas, box, 20, 20))
    qtbot.wait(10)
    assert crops == []
    assert box.camera().cx == pytest.approx(before.cx + 10, abs=0.5)


def test_loupe_pixels_equal_the_source_pixels(views, qtbot):
    loupe = LoupeWindow()
    qtbot.addWidget(loupe)
    crop = Crop(5, 7, 21, 19)
    for pane in PANES:
        loupe.set_image(pane, views.images[pane], pane)
    loupe.set_crop(crop)
    loupe.show()
    factor = loupe.magnification.value()
    assert factor == auto_magnification(crop) > 1
    for pane in PANES:
        shown = from_qimage(loupe.views[pane].pixmap().toImage())
        np.testing.assert_array_equal(shown, magnify(crop.of(views.images[pane]), factor))
        np.testing.assert_array_equal(shown[::factor, ::factor], crop.of(views.images[pane]))
