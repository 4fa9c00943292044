import io
import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageCms

from engine.codec import images
from engine.codec.images import Colour, atomic_write_bytes, load_image, save_png
from engine.errors import HfdError, ImageError


def _png_bytes(image: Image.Image, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **params)
    return buffer.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _raw_png(width: int, height: int, bit_depth: int, colour_type: int, rows: bytes) -> bytes:
    """A PNG written by hand, for what Pillow will not write (16-bit colour, lying headers)."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(rows))
            + _png_chunk(b"IEND", b""))


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _icc_profile(colour_space: bytes, tags: dict[bytes, bytes]) -> bytes:
    """A minimal ICC v2 display profile, so colour management is tested against known curves."""
    table_end = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for signature, data in tags.items():
        table += signature + struct.pack(">II", table_end + len(body), len(data))
        body += data + b"\0" * (-len(data) % 4)
    d50 = _s15(0.9642) + _s15(1.0) + _s15(0.8249)
    header = (struct.pack(">I", table_end + len(body)) + b"\0" * 4 + struct.pack(">I", 0x02100000) + b"mntr"
              + colour_space + b"XYZ " + b"\0" * 12 + b"acsp" + b"\0" * 28 + d50 + b"\0" * 48)
    return header + struct.pack(">I", len(tags)) + table + body


def _xyz(x: float, y: float, z: float) -> bytes:
    return b"XYZ \0\0\0\0" + _s15(x) + _s15(y) + _s15(z)


def _desc(text: str) -> bytes:
    ascii_text = text.encode() + b"\0"
    return b"desc\0\0\0\0" + struct.pack(">I", len(ascii_text)) + ascii_text + b"\0" * (8 + 3 + 67)


LINEAR_CURVE = b"curv\0\0\0\0" + struct.pack(">IH", 1, 256) + b"\0\0"  # gamma 1.0
LINEAR_RGB_PROFILE = _icc_profile(b"RGB ", {
    b"desc": _desc("linear test RGB"), b"wtpt": _xyz(0.9642, 1.0, 0.8249),
    b"rXYZ": _xyz(0.4361, 0.2225, 0.0139), b"gXYZ": _xyz(0.3851, 0.7169, 0.0971),
    b"bXYZ": _xyz(0.1431, 0.0606, 0.7141),
    b"rTRC": LINEAR_CURVE, b"gTRC": LINEAR_CURVE, b"bTRC": LINEAR_CURVE})
LINEAR_GRAY_PROFILE = _icc_profile(b"GRAY", {
    b"desc": _desc("linear test gray"), b"wtpt": _xyz(0.9642, 1.0, 0.8249), b"kTRC": LINEAR_CURVE})
LINEAR_128_IN_SRGB = 188  # sRGB encoding of linear 128/255


def _checker(height: int = 6, width: int = 8) -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_rgb_png_round_trips_exactly_from_path_and_bytes(tmp_path):
    rgb = _checker()
    path = tmp_path / "a.png"
    Image.fromarray(rgb).save(path)
    for source in (path, str(path), path.read_bytes()):
        loaded = load_image(source)
        assert loaded.rgb.dtype == np.uint8 and loaded.rgb.flags.c_contiguous and loaded.rgb.flags.writeable
        np.testing.assert_array_equal(loaded.rgb, rgb)
        assert loaded.colour is Colour.RGB and not loaded.had_alpha


def test_grayscale_is_replicated_and_reported_gray():
    gray = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    loaded = load_image(_png_bytes(Image.fromarray(gray, "L")))
    assert loaded.colour == "gray" and str(loaded.colour) == "gray"
    np.testing.assert_array_equal(loaded.rgb, np.repeat(gray[:, :, None], 3, axis=2))


def test_16bit_gray_is_scaled_not_clipped():
    wide = np.array([[0, 257 * 128, 65535, 300]], dtype=np.uint16)
    image = Image.fromarray(wide)
    assert image.mode == "I;16"
    loaded = load_image(_png_bytes(image))
    np.testing.assert_array_equal(loaded.rgb[0, :, 0], [0, 128, 255, 1])
    assert loaded.colour is Colour.GRAY


def test_16bit_colour_png_keeps_its_high_byte():
    samples = np.array([[[65535, 257 * 128, 257], [0, 65535, 0]]], dtype=">u2")
    rows = b"".join(b"\0" + row.tobytes() for row in samples)
    loaded = load_image(_raw_png(2, 1, 16, 2, rows))
    np.testing.assert_array_equal(loaded.rgb[0], [[255, 128, 1], [0, 255, 0]])


@pytest.mark.parametrize("values, expected", [([0.0, 0.5, 1.0], [0, 128, 255]), ([0.0, 100.0, 300.0], [0, 100, 255])])
def test_float_images_scale_from_unit_or_byte_range(tmp_path, values, expected):
    path = tmp_path / "f.tif"
    Image.fromarray(np.array([values], dtype=np.float32), "F").save(path)
    np.testing.assert_array_equal(load_image(path).rgb[0, :, 1], expected)


def test_palette_with_transparency_is_composited_over_white():
    image = Image.new("P", (2, 1))
    image.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    image.putdata([0, 1])
    loaded = load_image(_png_bytes(image, transparency=0))
    np.testing.assert_array_equal(loaded.rgb[0], [[255, 255, 255], [200, 100, 50]])
    assert loaded.had_alpha and loaded.colour is Colour.RGB


def test_palette_without_transparency_keeps_its_colours():
    image = Image.new("P", (2, 1))
    image.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    image.putdata([1, 0])
    loaded = load_image(_png_bytes(image))
    np.testing.assert_array_equal(loaded.rgb[0], [[200, 100, 50], [10, 20, 30]])
    assert not loaded.had_alpha


def test_rgba_is_composited_over_white():
    rgba = np.array([[[0, 0, 0, 0], [10, 200, 30, 255], [0, 100, 200, 128]]], dtype=np.uint8)
    loaded = load_image(_png_bytes(Image.fromarray(rgba, "RGBA")))
    a = 128 / 255
    blended = np.rint(np.array([0, 100, 200]) * a + 255 * (1 - a))
    np.testing.assert_array_equal(loaded.rgb[0], [[255, 255, 255], [10, 200, 30], blended])
    assert loaded.had_alpha


def test_gray_with_alpha_stays_gray():
    la = np.array([[[50, 0], [50, 255]]], dtype=np.uint8)
    loaded = load_image(_png_bytes(Image.fromarray(la, "LA")))
    np.testing.assert_array_equal(loaded.rgb[0, :, 0], [255, 50])
    assert loaded.colour is Colour.GRAY and loaded.had_alpha


def test_cmyk_jpeg_becomes_rgb():
    cmyk = np.zeros((16, 32, 4), dtype=np.uint8)
    cmyk[:, 16:] = [0, 255, 255, 0]  # full magenta + yellow = red
    buffer = io.BytesIO()
    Image.fromarray(cmyk, "CMYK").save(buffer, "JPEG", quality=95)
    loaded = load_image(buffer.getvalue())
    assert np.abs(loaded.rgb[4:12, 2:12].astype(int) - 255).max() <= 3
    assert np.abs(loaded.rgb[4:12, 20:30].astype(int) - [255, 0, 0]).max() <= 3


def test_exif_orientation_is_applied():
    rgb = np.zeros((2, 4, 3), dtype=np.uint8)
    rgb[0, 0] = [255, 0, 0]  # top-left marker
    exif = Image.Exif()
    exif[0x0112] = 6  # stored image must be rotated 90° clockwise to display
    loaded = load_image(_png_bytes(Image.fromarray(rgb), exif=exif))
    assert loaded.rgb.shape == (4, 2, 3)
    np.testing.assert_array_equal(loaded.rgb[0, 1], [255, 0, 0])


def test_icc_profile_is_converted_to_srgb():
    rgb = np.full((2, 2, 3), 128, dtype=np.uint8)
    loaded = load_image(_png_bytes(Image.fromarray(rgb), icc_profile=LINEAR_RGB_PROFILE))
    assert np.abs(loaded.rgb.astype(int) - LINEAR_128_IN_SRGB).max() <= 2


def test_gray_icc_profile_is_converted_and_stays_neutral():
    gray = np.full((2, 2), 128, dtype=np.uint8)
    loaded = load_image(_png_bytes(Image.fromarray(gray, "L"), icc_profile=LINEAR_GRAY_PROFILE))
    assert loaded.colour is Colour.GRAY
    assert abs(int(loaded.rgb[0, 0, 0]) - LINEAR_128_IN_SRGB) <= 2


@pytest.mark.parametrize("profile", [ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes(),
                                     b"not a profile", LINEAR_GRAY_PROFILE])
def test_srgb_unusable_or_mismatched_profiles_keep_values(profile):
    rgb = _checker()
    loaded = load_image(_png_bytes(Image.fromarray(rgb), icc_profile=profile))
    np.testing.assert_array_equal(loaded.rgb, rgb)


def test_missing_directory_and_empty_inputs(tmp_path):
    with pytest.raises(ImageError, match="image not found: .*nope.png"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="is not a file"):
        load_image(tmp_path)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageError, match=r"empty \(0 bytes\)"):
        load_image(tmp_path / "empty.png")
    with pytest.raises(ImageError, match="empty"):
        load_image(b"")


def test_not_an_image(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("just some text\n")
    with pytest.raises(ImageError, match="is not an image"):
        load_image(path)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_image(fmt):
    buffer = io.BytesIO()
    Image.fromarray(_checker(64, 64)).save(buffer, fmt)
    data = buffer.getvalue()
    with pytest.raises(ImageError, match=r"truncated or corrupt") as info:
        load_image(data[: len(data) // 2])
    assert "\n" not in str(info.value)


def test_pixel_limit_is_checked_from_the_header_before_decoding():
    lying = _raw_png(20_000, 15_000, 8, 2, b"\0" * 10)  # 300 MP claimed, almost no data
    with pytest.raises(ImageError, match=r"too large: 20000×15000 = 300.0 megapixels, limit 268.4"):
        load_image(lying)
    with pytest.raises(ImageError, match="too large"):
        load_image(_png_bytes(Image.fromarray(_checker(10, 20))), max_pixels=199)
    assert load_image(_png_bytes(Image.fromarray(_checker(10, 20))), max_pixels=200).rgb.shape == (10, 20, 3)


def test_a_decompression_bomb_is_refused_by_the_codecs_own_limit_before_decoding():
    with pytest.raises(ImageError, match=r"^image data is too large: over twice the 268.4-megapixel limit$"):
        load_image(_raw_png(30_000, 30_000, 8, 2, b"\0" * 10))


def test_zero_dimension_is_rejected(monkeypatch):
    # Pillow's own plugins refuse such headers; the guard covers any that do not.
    monkeypatch.setattr(images.Image, "open", lambda _stream: Image.new("RGB", (0, 4)))
    with pytest.raises(ImageError, match=r"zero dimension \(0×4\)"):
        load_image(b"anything")


def test_save_png_round_trips_rgb_and_gray(tmp_path):
    rgb = _checker()
    save_png(tmp_path / "c.png", rgb)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "c.png")), rgb)
    near_gray = np.stack([np.full((3, 4), 100), np.full((3, 4), 101), np.full((3, 4), 103)], axis=2).astype(np.uint8)
    save_png(tmp_path / "g.png", near_gray, colour="gray")
    written = Image.open(tmp_path / "g.png")
    assert written.mode == "L"
    assert (np.asarray(written) == 101).all()


def test_save_png_rejects_non_images(tmp_path):
    with pytest.raises(ValueError, match="uint8 H×W×3"):
        save_png(tmp_path / "x.png", np.zeros((4, 4, 3), dtype=np.float32))
    assert not (tmp_path / "x.png").exists()


def test_failed_write_leaves_old_contents_and_no_temp_file(tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")

    def failing_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(HfdError, match=f"cannot write {target}: No space left on device"):
        save_png(target, _checker())
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_atomic_write_bytes_replaces_and_reports_bad_folders(tmp_path):
    target = tmp_path / "f.hfd"
    atomic_write_bytes(target, b"one")
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.hfd"]
    with pytest.raises(HfdError, match="cannot write .*missing.*No such file"):
        atomic_write_bytes(tmp_path / "missing" / "f.hfd", b"x")


def test_colour_files_holding_a_gray_picture_are_gray():
    gray = np.repeat(np.arange(24, dtype=np.uint8).reshape(4, 6, 1) * 10, 3, axis=2)
    assert load_image(_png_bytes(Image.fromarray(gray))).colour is Colour.GRAY
    gray[2, 3, 0] += 1
    assert load_image(_png_bytes(Image.fromarray(gray))).colour is Colour.RGB
