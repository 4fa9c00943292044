"""Saving what the window shows: pane PNGs, the real .hfd file, the labelled comparison sheet."""
from __future__ import annotations

import numpy as np
import pytest

from engine.codec.images import load_image
from tests.viewer.support import open_window
from viewer.export import CAPTION_PX, GAP_PX, compose_comparison
from viewer.jobs import PANES
from viewer.qimage import from_qimage


@pytest.fixture
def window(qtbot, tmp_path, tiny_engine, samples):
    return open_window(qtbot, tmp_path, tiny_engine)


def test_a_saved_pane_is_exactly_what_it_shows(window, tmp_path):
    for pane in ("refined", "classical"):
        path = tmp_path / f"{pane}.png"
        window.save_pane(pane, path)
        np.testing.assert_array_equal(load_image(path).rgb, window.raw[pane])
    window.set_maps(True)
    window.save_pane("original", tmp_path / "invented.png")
    np.testing.assert_array_equal(load_image(tmp_path / "invented.png").rgb, window.shown_image("original"))


def test_the_saved_hfd_file_decodes_to_the_autoencoder_pane(window, tmp_path, tiny_engine):
    path = tmp_path / "image.hfd"
    window.save_hfd(path)
    assert path.read_bytes() == window.encoded.data
    np.testing.assert_array_equal(tiny_engine.decode_ae(path.read_bytes()), window.raw["ae"])


def test_comparison_sheet_holds_every_pane_under_its_caption(window, tmp_path):
    path = tmp_path / "sheet.png"
    window.save_comparison(path)
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
