"""Difference maps: the numbers are |a − b| per pixel; the colours follow one fixed palette."""
from __future__ import annotations

import numpy as np

from viewer.maps import (
    ERROR_MAX,
    SCALES,
    abs_difference,
    colour_bar,
    error_image,
    false_colour,
    fitted_scale,
    invented_image,
)


def test_abs_difference_is_mean_absolute_difference_over_channels():
    a = np.zeros((2, 3, 3), np.uint8)
    b = np.zeros((2, 3, 3), np.uint8)
    b[0, 1] = (255, 0, 3)
    a[1, 2] = (9, 9, 9)
    diff = abs_difference(a, b)
    assert diff.shape == (2, 3) and diff.dtype == np.float32
    assert diff[0, 1] == 86 and diff[1, 2] == 9
    assert diff.sum() == 95
    np.testing.assert_array_equal(diff, abs_difference(b, a))  # symmetric, no uint8 wrap-around


def test_false_colour_maps_zero_to_the_darkest_and_saturates_above_the_maximum():
    values = np.array([[0.0, ERROR_MAX / 2, ERROR_MAX, 10 * ERROR_MAX]], np.float32)
    rgb = false_colour(values)
    assert rgb.shape == (1, 4, 3) and rgb.dtype == np.uint8
    brightness = rgb.astype(int).sum(axis=2)[0]
    assert brightness[0] < brightness[1] < brightness[2]
    np.testing.assert_array_equal(rgb[0, 2], rgb[0, 3])


def test_identical_images_give_a_uniform_map():
    image = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    rgb = error_image(image, image)
    assert (rgb == rgb[0, 0]).all()
    np.testing.assert_array_equal(rgb[0, 0], false_colour(np.zeros((1, 1)))[0, 0])


def test_colour_bar_runs_from_dark_to_bright():
    bar = colour_bar(50, 4)
    assert bar.shape == (4, 50, 3)
    assert bar[0, 0].astype(int).sum() < bar[0, -1].astype(int).sum()


def test_the_invented_detail_map_gets_a_scale_that_fits_it():
    base = np.full((20, 20, 3), 100, np.uint8)
    faint = base.copy()
    faint[:10] += 3  # half the image changed by 3 levels
    rgb, scale = invented_image(faint, base)
    assert scale == 4.0
    np.testing.assert_array_equal(rgb[0, 0], false_colour(np.array([[3.0]]), 4.0)[0, 0])
    assert fitted_scale(np.full((4, 4), 1000.0)) == SCALES[-1]
    assert fitted_scale(np.zeros((4, 4))) == SCALES[0]
