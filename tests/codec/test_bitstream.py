import struct
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.codec.bitstream import (
    FORMAT_VERSION,
    MAGIC,
    HfdHeader,
    check_model,
    check_payload,
    pack,
    sealed_checksum,
    unpack,
)
from engine.codec.images import Colour
from engine.errors import BitstreamError, ModelMismatchError

HEADER = HfdHeader(model_id="hyperprior-m192", weights_hash="0123456789ABCDEF", rate=0.3, width=640,
                   height=480, colour="gray", latent_crc=0xDEADBEEF)
SEGMENTS = [b"hyper-latent bytes", b"", bytes(range(256)) * 3]


def _with_crc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def test_round_trip_keeps_header_and_segments(tmp_path):
    data = pack(HEADER, SEGMENTS)
    path = tmp_path / "x.hfd"
    path.write_bytes(data)
    assert path.stat().st_size == len(data)
    header, segments = unpack(path.read_bytes())
    assert header == HEADER
    assert segments == SEGMENTS
    assert header.weights_hash == "0123456789abcdef"
    assert header.colour is Colour.GRAY and header.format_version == FORMAT_VERSION
    assert header.rate == pytest.approx(0.3, abs=1e-7) and header.rate == struct.unpack("<f", struct.pack("<f", 0.3))[0]


def test_file_size_is_header_plus_payload():
    data = pack(HEADER, SEGMENTS)
    fixed = 4 + 1 + 1 + len(HEADER.model_id) + 8 + 4 + 4 + 4 + 1 + 4 + 1 + 4 * len(SEGMENTS) + 4
    assert len(data) == fixed + sum(map(len, SEGMENTS))
    assert data.startswith(MAGIC)


def test_a_version_1_file_is_refused_with_what_to_do():
    data = bytearray(pack(HEADER, SEGMENTS))
    assert data[len(MAGIC)] == FORMAT_VERSION == 3
    data[len(MAGIC)] = 1
    data[-4:] = zlib.crc32(data[:-4]).to_bytes(4, "little")
    with pytest.raises(BitstreamError, match=r"earlier hfd release \(format v1\); this build reads v2 and v3: "
                                             "decode it with that release, or compress the original again"):
        unpack(bytes(data))


def test_no_segments_round_trip():
    assert unpack(pack(HEADER, [])) == (HEADER, [])


@pytest.mark.parametrize("field, value, message", [
    ("model_id", "", "model id"), ("model_id", "naïve", "model id"), ("model_id", "m" * 65, "model id"),
    ("weights_hash", "0123", "weights hash"), ("weights_hash", "0123456789abcdeg", "weights hash"),
    ("rate", 1.5, "rate"), ("rate", float("nan"), "rate"), ("width", 0, "width"), ("height", (1 << 20) + 1, "height"),
    ("colour", "cmyk", "colour"), ("latent_crc", -1, "latent checksum"), ("format_version", 1, r"format v2..v3"),
])
def test_header_rejects_values_it_cannot_store(field, value, message):
    fields = dict(HEADER.__dict__, **{field: value})
    with pytest.raises(ValueError, match=message):
        HfdHeader(**fields)


def test_header_names_no_more_pixels_than_the_encoder_takes():
    with pytest.raises(ValueError, match="65535×65535 is 4295 MP, over the 268 MP limit of .hfd files"):
        HfdHeader(**dict(HEADER.__dict__, width=65535, height=65535))
    crafted = bytearray(pack(HEADER, SEGMENTS))
    struct.pack_into("<II", crafted, 4 + 2 + len(HEADER.model_id) + 8 + 4, 65535, 65535)
    crafted[-4:] = zlib.crc32(crafted[:-4]).to_bytes(4, "little")
    with pytest.raises(BitstreamError, match="invalid header: 65535×65535 is 4295 MP, over the 268 MP limit"):
        unpack(bytes(crafted))


def test_a_non_ascii_model_id_is_named_in_the_projects_words():
    crafted = bytearray(pack(HEADER, SEGMENTS))
    crafted[6] = 0xF0
    crafted[-4:] = zlib.crc32(crafted[:-4]).to_bytes(4, "little")
    with pytest.raises(BitstreamError, match=r"^invalid header: the model id is not printable ASCII$"):
        unpack(bytes(crafted))


def test_the_payload_checksum_covers_every_field_that_changes_the_decode():
    symbols = 0x1234
    fields = dict(model_id=HEADER.model_id, weights_hash=HEADER.weights_hash, rate=HEADER.rate, width=640,
                  height=480, colour="gray")
    header = HfdHeader(**fields, latent_crc=sealed_checksum(symbols, **fields))
    check_payload(header, 0, symbols)
    with pytest.raises(BitstreamError, match="payload checksum mismatch"):
        check_payload(header, 0, symbols ^ 1)
    for field, value in (("rate", 0.31), ("width", 641), ("height", 479), ("colour", "rgb"),
                         ("model_id", "hyperprior-m193"), ("weights_hash", "0123456789abcdee")):
        edited = HfdHeader(**dict(header.__dict__, **{field: value}))  # the same payload checksum
        with pytest.raises(BitstreamError, match="header was edited"):
            check_payload(edited, 0, symbols)


def test_a_version_2_file_is_still_read_its_checksum_covering_the_symbols_alone():
    old = HfdHeader(**dict(HEADER.__dict__, latent_crc=0x1234, format_version=2))
    header, segments = unpack(pack(old, SEGMENTS))
    assert header.format_version == 2 and segments == SEGMENTS
    check_payload(header, 0x1234, 0x5678)  # v2 checks the ŷ symbols' CRC alone


def test_pack_rejects_too_many_segments():
    with pytest.raises(ValueError, match="at most 255 segments"):
        pack(HEADER, [b""] * 256)


def test_empty_and_foreign_files():
    with pytest.raises(BitstreamError, match="empty file"):
        unpack(b"")
    with pytest.raises(BitstreamError, match=r"not a \.hfd file"):
        unpack(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(BitstreamError, match=r"not a \.hfd file"):
        unpack(b"H")


def test_newer_and_unknown_versions():
    data = bytearray(pack(HEADER, SEGMENTS))
    data[4] = 7
    with pytest.raises(BitstreamError, match=r"written by a newer hfd \(format v7\); this build reads up to v3"):
        unpack(bytes(data))
    data[4] = 0
    with pytest.raises(BitstreamError, match="unknown .hfd format version 0"):
        unpack(bytes(data))


@pytest.mark.parametrize("cut, part", [
    (2, "magic"), (4, "format version"), (6, "model id"), (25, "header fields"),
    (53, "length of segment 2 of 3"), (60, "payload segment 1 of 3"), (-2, "file checksum"),
])
def test_truncation_names_the_part(cut, part):
    data = pack(HEADER, SEGMENTS)
    with pytest.raises(BitstreamError, match=f"truncated .hfd file: cut off in the {part}"):
        unpack(data[:cut])


def test_flipped_payload_bit_is_reported_corrupt():
    data = bytearray(pack(HEADER, SEGMENTS))
    data[70] ^= 0x10
    with pytest.raises(BitstreamError, match=r"corrupt .hfd file \(checksum mismatch\)"):
        unpack(bytes(data))


def test_trailing_garbage():
    with pytest.raises(BitstreamError, match="3 bytes of trailing garbage"):
        unpack(pack(HEADER, SEGMENTS) + b"abc")


def test_lengths_that_do_not_add_up():
    data = bytearray(pack(HEADER, [b"abcd", b"efgh"]))
    lengths_at = len(data) - 4 - 8 - 8
    struct.pack_into("<I", data, lengths_at, 0xFFFFFFF0)  # absurd first length
    with pytest.raises(BitstreamError, match="truncated .hfd file: cut off in the payload segment 1 of 2"):
        unpack(bytes(data))
    struct.pack_into("<I", data, lengths_at, 1)
    with pytest.raises(BitstreamError, match="3 bytes of trailing garbage"):
        unpack(bytes(data))


def test_valid_checksum_over_invalid_fields_is_still_rejected():
    body = pack(HEADER, [])[:-4]
    bad_colour = bytearray(body)
    bad_colour[-6] = 9  # colour code sits before the latent checksum and segment count
    with pytest.raises(BitstreamError, match="unknown colour code 9"):
        unpack(_with_crc(bytes(bad_colour)))
    zero_width = bytearray(body)
    struct.pack_into("<I", zero_width, len(body) - 10, 0)  # height
    with pytest.raises(BitstreamError, match="invalid header: height must be in 1..1048576, got 0"):
        unpack(_with_crc(bytes(zero_width)))


def test_check_model():
    check_model(HEADER, "hyperprior-m192", "0123456789abcdef")
    with pytest.raises(ModelMismatchError, match=r"file was written by model hyperprior-m192 "
                                                 r"\(weights 0123456789abcdef\); loaded model is other "
                                                 r"\(weights ffffffffffffffff\)"):
        check_model(HEADER, "other", "FFFFFFFFFFFFFFFF")
    with pytest.raises(ModelMismatchError):
        check_model(HEADER, "hyperprior-m192", "0123456789abcdee")


def _unpack_only_raises_bitstream_error(data: bytes) -> None:
    try:
        header, segments = unpack(data)
    except BitstreamError as exc:
        assert "\n" not in str(exc)
    else:
        assert pack(header, segments) == data  # anything accepted is a well-formed file


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_random_bytes_only_raise_bitstream_error(data):
    _unpack_only_raises_bitstream_error(data)
    _unpack_only_raises_bitstream_error(MAGIC + data)
    _unpack_only_raises_bitstream_error(MAGIC + bytes([FORMAT_VERSION]) + data)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_mutated_valid_files_only_raise_bitstream_error(data):
    valid = pack(HEADER, SEGMENTS)
    mutated = bytearray(valid)
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["flip", "set", "cut", "insert", "delete"]))
        at = data.draw(st.integers(0, max(len(mutated) - 1, 0)))
        if kind == "flip" and mutated:
            mutated[at] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "set" and mutated:
            mutated[at] = data.draw(st.integers(0, 255))
        elif kind == "cut":
            del mutated[at:]
        elif kind == "insert":
            mutated[at:at] = data.draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del mutated[at:at + data.draw(st.integers(1, 8))]
    _unpack_only_raises_bitstream_error(bytes(mutated))
