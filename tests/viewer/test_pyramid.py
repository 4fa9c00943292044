"""Large images are shown through a pyramid: a pane renders about what the screen can show, never
a 12 MP image averaged down on the GUI thread, and its coordinates stay the full image's pixels."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6.QtCore import QRectF

from tests.viewer.support import random_image
from viewer.widgets.pyramid import BUILD_HERE_PIXELS, Pyramid, PyramidImageItem, half_size, level_count


def test_half_size_is_the_rounded_box_average():
    rgb = np.array([[[0, 10, 255], [1, 10, 255], [9, 9, 9]],
                    [[2, 11, 255], [2, 12, 254], [9, 9, 9]],
                    [[7, 7, 7], [7, 7, 7], [7, 7, 7]]], dtype=np.uint8)  # 3×3: the odd row and column drop
    half = half_size(rgb)
    assert half.shape == (1, 1, 3) and half.dtype == np.uint8
    assert half[0, 0].tolist() == [round(5 / 4), round(43 / 4), round(1019 / 4)]


def test_levels_halve_down_to_a_screenful():
    assert level_count(512, 768) == 3  # 768 → 384 → 192
    assert level_count(3000, 4000) == 5
    assert level_count(100, 200) == 1
    pyramid = Pyramid(random_image(512, 768))  # small: averaged at once
    assert pyramid.averaged
    assert [level.shape[:2] for level in pyramid.levels] == [(512, 768), (256, 384), (128, 192)]
    np.testing.assert_array_equal(pyramid.levels[1], half_size(pyramid.image))
    assert pyramid.level(1.0)[0] == 1 and pyramid.level(3.9)[0] == 2 and pyramid.level(1000.0)[0] == 4


def test_a_large_image_is_averaged_off_the_gui_thread(qtbot):
    rgb = random_image(1200, 1000)
    assert rgb.shape[0] * rgb.shape[1] > BUILD_HERE_PIXELS
    pyramid = Pyramid(rgb)
    if not pyramid.averaged:
        # until then every n-th pixel stands in, at the same shapes the averaged levels will have
        assert pyramid.levels[1].shape[:2] == (600, 500)
        with qtbot.waitSignal(pyramid.updated, timeout=5000):
            pass
    assert pyramid.averaged
    np.testing.assert_array_equal(pyramid.levels[1], half_size(rgb))


@pytest.fixture
def view(qtbot):
    widget = pg.GraphicsLayoutWidget()
    widget.resize(400, 300)
    box = widget.addViewBox()
    item = PyramidImageItem()
    box.addItem(item)
    widget.show()
    qtbot.waitExposed(widget)
    return widget, box, item


def test_a_pane_renders_the_level_its_zoom_needs_over_the_full_extent(view, qtbot):
    widget, box, item = view
    rgb = random_image(3000, 4000)
    pyramid = Pyramid(rgb)
    item.set_pyramid(pyramid)
    qtbot.waitUntil(lambda: pyramid.averaged, timeout=5000)
    box.setRange(QRectF(0, 0, 4000, 3000), padding=0)
    qtbot.wait(20)
    assert any(np.shares_memory(item.image, level) for level in pyramid.levels[1:])
    assert item.image.shape[1] <= 2 * widget.width()  # zoomed out: a level near the screen's size
    extent = item.mapRectToView(item.boundingRect())
    assert (extent.left(), extent.top(), extent.width(), extent.height()) == pytest.approx((0, 0, 4000, 3000), abs=1)
    box.setRange(QRectF(1000, 1000, 200, 150), padding=0)  # enlarged: the full image's own pixels
    qtbot.wait(20)
    assert item.image.shape == rgb.shape and np.shares_memory(item.image, rgb)
    extent = item.mapRectToView(item.boundingRect())
    assert (extent.width(), extent.height()) == pytest.approx((4000, 3000), abs=1)


def test_a_new_image_replaces_the_shown_one_and_none_clears_it(view, qtbot):
    _, box, item = view
    first, second = Pyramid(random_image(64, 80, seed=1)), Pyramid(random_image(64, 80, seed=2))
    item.set_pyramid(first)
    item.set_pyramid(second)
    box.setRange(QRectF(0, 0, 80, 64), padding=0)
    qtbot.wait(20)
    assert item.pyramid is second
    np.testing.assert_array_equal(item.image, second.image)
    item.set_pyramid(None)
    assert item.image is None
