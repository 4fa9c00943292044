import numpy as np
import pytest

from engine.codec.classical import (
    QUALITY_RANGE,
    decode_classical,
    encode_classical,
    match_size,
)
from engine.errors import ImageError, SettingsError
from tests.support import photo_like

CODECS = ["jpeg", "webp", "avif"]
# How far below the target a matched file may land: AVIF's quality maps onto 64 quantizer
# levels, so one step changes the size by 5-10 %; JPEG and WebP steps are finer at 1 bpp.
SLACK = {"jpeg": 0.03, "webp": 0.03, "avif": 0.10}


@pytest.fixture(scope="module")
def image():
    return photo_like(192, 256)


@pytest.mark.parametrize("codec", CODECS)
def test_round_trip_keeps_shape_and_is_close(image, codec):
    decoded = decode_classical(encode_classical(image, codec, 80))
    assert decoded.shape == image.shape and decoded.dtype == np.uint8
    error = np.abs(decoded.astype(int) - image.astype(int)).mean()
    assert error < 12


@pytest.mark.parametrize("codec", CODECS)
def test_size_grows_with_quality(image, codec):
    low, high = QUALITY_RANGE[codec]
    sizes = [len(encode_classical(image, codec, q)) for q in np.linspace(low, high, 5).astype(int)]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1] / 3


@pytest.mark.parametrize("codec", CODECS)
def test_match_size_lands_just_below_target(image, codec):
    target = int(1.0 * image.shape[0] * image.shape[1] / 8)  # 1 bpp
    result = match_size(image, codec, target)
    assert not result.over_target
    assert (1 - SLACK[codec]) * target <= result.nbytes <= target
    assert result.rgb.shape == image.shape
    assert result.bpp == pytest.approx(result.nbytes * 8 / (192 * 256))
    # Best quality that fits: one step up no longer fits.
    if result.quality < QUALITY_RANGE[codec][1]:
        assert len(encode_classical(image, codec, result.quality + 1)) > target


def test_match_size_is_monotone_in_target(image):
    qualities = [match_size(image, "webp", t).quality for t in (3000, 6000, 12000)]
    assert qualities == sorted(qualities) and qualities[0] < qualities[-1]


def test_unreachable_target_returns_smallest_file_flagged(image):
    result = match_size(image, "jpeg", 50)
    assert result.over_target and result.quality == QUALITY_RANGE["jpeg"][0]
    assert result.nbytes == len(encode_classical(image, "jpeg", 1))


def test_errors_name_the_problem(image):
    with pytest.raises(SettingsError, match="unknown classical codec 'bpg'"):
        encode_classical(image, "bpg", 50)
    with pytest.raises(SettingsError, match="jpeg quality 0 is outside 1..95"):
        encode_classical(image, "jpeg", 0)
    with pytest.raises(ImageError, match="uint8"):
        encode_classical(image.astype(np.float32), "jpeg", 50)
    with pytest.raises(ImageError, match="cannot decode"):
        decode_classical(b"not an image")
